//! Relay-pool policy that needs no sockets: the canonical form of a relay URL and the
//! reconnect backoff (randomness passed in, so tests pin it).

use std::time::Duration;

use nostr_sdk::RelayUrl;

/// First reconnect delay; doubles per failure up to [`RECONNECT_CAP`], with jitter.
pub const RECONNECT_FIRST: Duration = Duration::from_secs(1);
/// Longest reconnect delay.
pub const RECONNECT_CAP: Duration = Duration::from_secs(60);

/// Canonical form of a relay URL (as nostr-sdk prints it).
pub fn normalize(url: &str) -> Option<String> {
    RelayUrl::parse(url)
        .ok()
        .map(|u| u.to_string().trim_end_matches('/').to_owned())
}

/// Delay before reconnect attempt `failures + 1`; `jitter` in `[0, 1)` picks the point in the
/// upper half of the nominal delay.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let exp = RECONNECT_FIRST
        .saturating_mul(1u32 << failures.min(6))
        .min(RECONNECT_CAP);
    // Full jitter over the upper half: relays restarted together are not stormed together.
    exp.mul_f64(0.5 + jitter.clamp(0.0, 1.0) * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_to_the_cap() {
        for failures in 0..10 {
            let nominal = RECONNECT_FIRST
                .saturating_mul(1 << failures.min(6))
                .min(RECONNECT_CAP);
            for jitter in [0.0, 0.3, 0.999] {
                let d = backoff(failures, jitter);
                assert!(d >= nominal / 2 && d <= nominal, "{failures}: {d:?}");
            }
            assert_eq!(backoff(failures, 0.0), nominal / 2);
        }
        assert!(backoff(20, 1.0) <= RECONNECT_CAP);
    }

    #[test]
    fn urls_are_normalized() {
        assert_eq!(
            normalize("ws://127.0.0.1:7777"),
            normalize("ws://127.0.0.1:7777/")
        );
        assert!(normalize("not a url").is_none());
    }
}
