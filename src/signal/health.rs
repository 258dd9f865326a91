//! Relay health: what each relay did, a score, and the policy for misbehaving relays.
//!
//! Sans-IO: the driver reports connects, publish results, NOTICE/CLOSED messages, received
//! events and echoes of our own events; this module decides whether a relay is usable.
//! Times are wall-clock milliseconds (they are persisted across restarts).

use serde::{Deserialize, Serialize};

/// Retired relays stay out this long (persisted, so a restart does not retry them at once).
pub const RETIRE_COOLDOWN_MS: u64 = 6 * 60 * 60 * 1000;
/// First publish back-off after `rate-limited:`.
pub const RATE_LIMIT_FIRST_MS: u64 = 60_000;
/// Longest publish back-off after repeated `rate-limited:`.
pub const RATE_LIMIT_MAX_MS: u64 = 15 * 60_000;
/// An accepted event of ours that has not come back through the subscription after this long
/// counts as dropped by the relay.
pub const ECHO_TIMEOUT_MS: u64 = 5_000;

/// How a relay message reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Proof of work demanded (`pow: N bits needed` or a `pow:` prefix).
    Pow,
    /// `rate-limited:` prefix.
    RateLimited,
    /// `duplicate:` prefix (harmless).
    Duplicate,
    /// `auth-required:` prefix: nostr-sdk answers the relay's NIP-42 `AUTH` with the node's key
    /// and subscribes or publishes again.
    AuthRequired,
    /// Any other refusal.
    Refused,
}

/// Classifies the text of an `OK false`, `NOTICE` or `CLOSED` message.
pub fn classify(message: &str) -> Verdict {
    let m = message.trim().to_ascii_lowercase();
    if m.starts_with("pow:")
        || (m.contains("pow") && m.contains("bits"))
        || m.contains("proof of work")
    {
        Verdict::Pow
    } else if m.starts_with("rate-limited:") {
        Verdict::RateLimited
    } else if m.starts_with("duplicate:") {
        Verdict::Duplicate
    } else if m.starts_with("auth-required:") {
        Verdict::AuthRequired
    } else {
        Verdict::Refused
    }
}

/// What the driver should do with a relay after an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Keep using it.
    Keep,
    /// Disconnect it for this session; `retired_until` is set.
    Retire,
}

/// Health record of one relay (persisted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RelayHealth {
    /// Relay URL.
    pub url: String,
    /// Milliseconds the last successful connect took.
    pub connect_latency_ms: Option<u64>,
    /// Successful connects.
    pub connects: u64,
    /// Events this relay accepted from us.
    pub published_ok: u64,
    /// Events this relay refused.
    pub published_rejected: u64,
    /// Events received through this relay.
    pub events_in: u64,
    /// Our own accepted events that never came back.
    pub echo_misses: u64,
    /// Our own accepted events that came back.
    pub echo_hits: u64,
    /// Last error text.
    pub last_error: Option<String>,
    /// When the last error happened (ms since the epoch).
    pub last_error_at: Option<u64>,
    /// Not used before this time (ms since the epoch).
    pub retired_until: Option<u64>,
    /// No publishing before this time (ms since the epoch).
    pub rate_limited_until: Option<u64>,
    /// Current rate-limit back-off.
    pub rate_backoff_ms: u64,
    /// Its NIP-11 rules, when read ([`super::rules`]).
    pub rules: Option<super::rules::RelayRules>,
    /// Events not sent to it because they exceed its `max_message_length`.
    pub events_too_large: u64,
    /// Events in, accepted and refused since this process started (the fields above persist
    /// across restarts; metrics counters must not).
    #[serde(skip)]
    pub this_process: ProcessCounts,
    #[serde(skip)]
    echo_pending: Vec<(String, u64)>,
    /// Our events that came back before the relay's OK did (a relay may deliver first).
    #[serde(skip)]
    early_echoes: Vec<String>,
}

/// A relay's event counts since this process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessCounts {
    /// Events received through it.
    pub events_in: u64,
    /// Events it accepted from us.
    pub published_ok: u64,
    /// Events it refused.
    pub published_rejected: u64,
}

impl RelayHealth {
    /// A fresh record.
    pub fn new(url: &str) -> Self {
        RelayHealth {
            url: url.to_owned(),
            ..Default::default()
        }
    }

    fn error(&mut self, text: &str, now: u64) {
        self.last_error = Some(text.chars().take(200).collect());
        self.last_error_at = Some(now);
    }

    fn retire(&mut self, text: &str, now: u64) -> Decision {
        self.error(text, now);
        self.retired_until = Some(now + RETIRE_COOLDOWN_MS);
        Decision::Retire
    }

    /// Whether the relay is on its retirement cooldown.
    pub fn is_retired(&self, now: u64) -> bool {
        self.retired_until.is_some_and(|t| now < t)
    }

    /// Whether we may publish to it now.
    pub fn may_publish(&self, now: u64) -> bool {
        !self.is_retired(now) && self.rate_limited_until.is_none_or(|t| now >= t)
    }

    /// A connect succeeded after `latency_ms`.
    pub fn on_connected(&mut self, latency_ms: u64) {
        self.connects += 1;
        self.connect_latency_ms = Some(latency_ms);
    }

    /// A connect or the connection failed.
    pub fn on_disconnected(&mut self, reason: &str, now: u64) {
        // A retired relay keeps the reason it was retired for.
        if !self.is_retired(now) {
            self.error(reason, now);
        }
    }

    /// The relay answered a publish of `event_id`; `expect_echo` when we subscribe to its topic.
    pub fn on_publish(
        &mut self,
        event_id: &str,
        accepted: bool,
        expect_echo: bool,
        message: &str,
        now: u64,
    ) -> Decision {
        if accepted {
            self.published_ok += 1;
            self.this_process.published_ok += 1;
            self.rate_backoff_ms = 0;
            if !expect_echo {
                return Decision::Keep;
            }
            if let Some(i) = self.early_echoes.iter().position(|id| id == event_id) {
                self.early_echoes.remove(i);
                self.echo_hits += 1;
                return Decision::Keep;
            }
            self.echo_pending.push((event_id.to_owned(), now));
            if self.echo_pending.len() > 64 {
                self.echo_pending.remove(0);
            }
            return Decision::Keep;
        }
        match classify(message) {
            Verdict::Duplicate => Decision::Keep,
            Verdict::RateLimited => {
                self.published_rejected += 1;
                self.this_process.published_rejected += 1;
                self.rate_backoff_ms = if self.rate_backoff_ms == 0 {
                    RATE_LIMIT_FIRST_MS
                } else {
                    (self.rate_backoff_ms * 2).min(RATE_LIMIT_MAX_MS)
                };
                self.rate_limited_until = Some(now + self.rate_backoff_ms);
                self.error(message, now);
                Decision::Keep
            }
            // nostr-sdk already authenticated and sent it again: the relay still refuses us.
            Verdict::Pow | Verdict::Refused | Verdict::AuthRequired => {
                self.published_rejected += 1;
                self.this_process.published_rejected += 1;
                self.retire(message, now)
            }
        }
    }

    /// A NOTICE arrived.
    pub fn on_notice(&mut self, message: &str, now: u64) -> Decision {
        match classify(message) {
            Verdict::Pow => self.retire(message, now),
            _ => {
                self.error(message, now);
                Decision::Keep
            }
        }
    }

    /// Our subscription was CLOSED by the relay.
    pub fn on_closed(&mut self, message: &str, now: u64) -> Decision {
        // An `auth-required:` close is followed by nostr-sdk's AUTH and a new REQ.
        if matches!(
            classify(message),
            Verdict::RateLimited | Verdict::AuthRequired
        ) {
            self.error(message, now);
            return Decision::Keep;
        }
        self.retire(
            if message.is_empty() {
                "subscription closed"
            } else {
                message
            },
            now,
        )
    }

    /// An event arrived through this relay; `ours` when it is one of our own.
    pub fn on_event(&mut self, event_id: &str, ours: bool) {
        if ours {
            if let Some(i) = self.echo_pending.iter().position(|(id, _)| id == event_id) {
                self.echo_pending.remove(i);
                self.echo_hits += 1;
            } else {
                self.early_echoes.push(event_id.to_owned());
                if self.early_echoes.len() > 64 {
                    self.early_echoes.remove(0);
                }
            }
        } else {
            self.events_in += 1;
            self.this_process.events_in += 1;
        }
    }

    /// Our subscription changed: events published for topics we no longer hear cannot come
    /// back, so nothing pending is held against the relay.
    pub fn forget_echoes(&mut self) {
        self.echo_pending.clear();
        self.early_echoes.clear();
    }

    /// Counts accepted events that never came back.
    pub fn tick(&mut self, now: u64) {
        let before = self.echo_pending.len();
        self.echo_pending
            .retain(|(_, at)| now.saturating_sub(*at) < ECHO_TIMEOUT_MS);
        let missed = (before - self.echo_pending.len()) as u64;
        if missed > 0 {
            self.echo_misses += missed;
            self.error("accepted events were never delivered", now);
        }
    }

    /// Higher is better: delivery, acceptance, speed; retired relays sort last.
    pub fn score(&self, now: u64) -> f64 {
        if self.is_retired(now) {
            return -1.0;
        }
        let delivered = (self.echo_hits as f64 + 1.0)
            / (self.echo_hits as f64 + self.echo_misses as f64 * 4.0 + 1.0);
        let accepted = (self.published_ok as f64 + 1.0)
            / (self.published_ok as f64 + self.published_rejected as f64 + 1.0);
        let speed = match self.connect_latency_ms {
            Some(ms) => 1.0 / (1.0 + ms as f64 / 500.0),
            None => 0.5,
        };
        let limited = if self.may_publish(now) { 1.0 } else { 0.5 };
        delivered * (accepted * 0.6 + speed * 0.4) * limited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify("pow: 28 bits needed"), Verdict::Pow);
        assert_eq!(classify("pow: required a difficulty >= 8"), Verdict::Pow);
        assert_eq!(classify("rate-limited: slow down"), Verdict::RateLimited);
        assert_eq!(
            classify("duplicate: already have this event"),
            Verdict::Duplicate
        );
        assert_eq!(classify("blocked: not on the list"), Verdict::Refused);
        assert_eq!(
            classify("auth-required: you must auth"),
            Verdict::AuthRequired
        );
    }

    #[test]
    fn pow_and_refusals_retire_with_cooldown() {
        let mut h = RelayHealth::new("ws://a");
        assert_eq!(h.on_notice("pow: 20 bits needed", 1_000), Decision::Retire);
        assert!(h.is_retired(1_000 + RETIRE_COOLDOWN_MS - 1));
        assert!(!h.is_retired(1_000 + RETIRE_COOLDOWN_MS));
        let mut h = RelayHealth::new("ws://b");
        assert_eq!(
            h.on_publish("e", false, true, "blocked: no", 5),
            Decision::Retire
        );
        assert_eq!(h.last_error.as_deref(), Some("blocked: no"));
        let mut h = RelayHealth::new("ws://c");
        // nostr-sdk answers the AUTH and subscribes again.
        assert_eq!(
            h.on_closed("auth-required: you must auth", 5),
            Decision::Keep
        );
        assert_eq!(h.on_closed("error: shut down", 5), Decision::Retire);
        assert_eq!(
            h.on_publish("e", false, true, "duplicate: have it", 5),
            Decision::Keep
        );
    }

    #[test]
    fn rate_limit_backs_off_doubling_to_a_cap() {
        let mut h = RelayHealth::new("ws://a");
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            assert_eq!(
                h.on_publish("e", false, true, "rate-limited: slow down", now),
                Decision::Keep
            );
            assert!(!h.may_publish(now));
            let until = h.rate_limited_until.unwrap_or(0);
            waits.push((until - now) / 1000);
            now = until;
            assert!(h.may_publish(now));
        }
        assert_eq!(waits, vec![60, 120, 240, 480, 900, 900]);
        h.on_publish("e", true, true, "", now);
        assert_eq!(h.rate_backoff_ms, 0);
    }

    #[test]
    fn an_echo_before_the_ok_and_a_changed_subscription_are_not_misses() {
        let mut h = RelayHealth::new("ws://fast");
        h.on_event("early", true);
        h.on_publish("early", true, true, "", 0);
        h.on_publish("left-room", true, true, "", 0);
        h.forget_echoes();
        h.tick(ECHO_TIMEOUT_MS);
        assert_eq!((h.echo_hits, h.echo_misses), (1, 0));
        assert!(h.last_error.is_none());
    }

    #[test]
    fn silent_droppers_score_lower() {
        let mut good = RelayHealth::new("ws://good");
        let mut bad = RelayHealth::new("ws://bad");
        for (i, h) in [&mut good, &mut bad].into_iter().enumerate() {
            h.on_connected(20);
            for n in 0..5 {
                h.on_publish(&format!("e{n}"), true, true, "", 0);
                if i == 0 {
                    h.on_event(&format!("e{n}"), true);
                }
            }
            h.tick(ECHO_TIMEOUT_MS);
        }
        assert_eq!((good.echo_hits, good.echo_misses), (5, 0));
        assert_eq!((bad.echo_hits, bad.echo_misses), (0, 5));
        assert!(
            good.score(0) > bad.score(0) * 2.0,
            "{} vs {}",
            good.score(0),
            bad.score(0)
        );
        assert!(bad.last_error.is_some());
    }

    #[test]
    fn persists_as_json() {
        let mut h = RelayHealth::new("ws://a");
        h.on_connected(12);
        let text = serde_json::to_string(&h).expect("json");
        let back: RelayHealth = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, h);
    }
}
