//! Trystero 0.25.4's default relays (*pure*): which public Nostr relays a Trystero page uses
//! for an app when it is given none.
//!
//! Why it exists: a page with no `relayConfig.urls` takes `redundancy` (default 5) relays from a
//! 28-entry list, shuffled with a seed derived from its app id. A daemon that used any other
//! list would rarely share a relay with such a page, and the two would never meet. With no
//! relay configured, the daemon gives each app's rooms exactly the relays this module picks.
//!
//! The selection, as the 0.25.4 package computes it (read from its `dist/`, reimplemented):
//! - seed = the sum of the app id's UTF-16 code units (not bytes, not code points), modulo
//!   2^53 - 1 (`Number.MAX_SAFE_INTEGER`);
//! - a Fisher–Yates shuffle from the end of the list: for `i` from 28 down to 1, draw
//!   `r = frac(sin(seed) * 10^4)` with `seed` incremented after each draw, swap element `i - 1`
//!   with element `floor(r * i)`;
//! - the first `redundancy` entries (all 28 when it is larger).
//!
//! Only the last bit of `sin` could differ between libms (V8's, glibc's); for every seed an app
//! id of at most 256 bytes can give (below 2^24) the picks were checked to be the same with
//! Node 20's `Math.sin` and glibc's, and the unit tests below pin the seeds where they come
//! closest to flipping.

/// Redundancy of a Trystero page that sets none: relays per app.
pub const TRYSTERO_REDUNDANCY: usize = 5;

/// Trystero 0.25.4's default relay list (`defaultRelayUrls` of `@trystero-p2p/nostr`), in its
/// order: the shuffle depends on it.
pub const TRYSTERO_RELAYS: [&str; 28] = [
    "wss://basspistol.org",
    "wss://bucket.coracle.social",
    "wss://chorus.pjv.me",
    "wss://koru.bitcointxoko.org",
    "wss://nos.lol",
    "wss://nostr-01.uid.ovh",
    "wss://nostr-01.yakihonne.com",
    "wss://nostr-relay.corb.net",
    "wss://nostr.data.haus",
    "wss://nostr.islandarea.net",
    "wss://nostr.sathoarder.com",
    "wss://nostr.tegila.com.br",
    "wss://nostr.vulpem.com",
    "wss://purplerelay.com",
    "wss://relay-can.zombi.cloudrodion.com",
    "wss://relay-rpi.edufeed.org",
    "wss://relay.agorist.space",
    "wss://relay.artio.inf.unibe.ch",
    "wss://relay.mostr.pub",
    "wss://relay.mostro.network",
    "wss://relay.sigit.io",
    "wss://relay02.lnfi.network",
    "wss://schnorr.me",
    "wss://social.amanah.eblessing.co",
    "wss://staging.yabu.me",
    "wss://strfry.shock.network",
    "wss://top.testrelay.top",
    "wss://yabu.me/v2",
];

/// `Number.MAX_SAFE_INTEGER`, the modulus of the seed.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The shuffle's seed for an app id: its UTF-16 code units summed (an astral character counts
/// as its two surrogates), modulo 2^53 - 1.
pub fn app_seed(app: &str) -> u64 {
    app.encode_utf16()
        .fold(0u64, |sum, unit| (sum + u64::from(unit)) % MAX_SAFE_INTEGER)
}

/// The order in which a list of `len` entries comes out of the shuffle seeded with `seed`:
/// `order[k]` is the index of the entry that ends up at position `k`.
pub fn shuffled_order(len: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    // The seed is a double in the original; every seed below 2^53 is exact as one.
    let mut next = seed as f64;
    let mut draw = || {
        let x = next.sin() * 1e4;
        next += 1.0;
        x - x.floor()
    };
    for i in (1..=len).rev() {
        // `r < 1`, so `r * i < i`; the cast truncates a non-negative value, as floor does.
        let j = (draw() * i as f64).floor() as usize;
        order.swap(i - 1, j.min(i - 1));
    }
    order
}

/// The relays a default Trystero 0.25.4 page of `app` uses when its `relayConfig.redundancy`
/// is `redundancy` (5 when unset), in Trystero's order.
pub fn trystero_relays(app: &str, redundancy: usize) -> Vec<&'static str> {
    shuffled_order(TRYSTERO_RELAYS.len(), app_seed(app))
        .into_iter()
        .take(redundancy)
        .map(|i| TRYSTERO_RELAYS[i])
        .collect()
}

/// How each app's relays are picked when no relay is configured: `redundancy` of `list`,
/// shuffled as Trystero shuffles its defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRelays {
    /// The list picked from, in order (the shuffle depends on it).
    pub list: Vec<String>,
    /// How many each app uses.
    pub redundancy: usize,
}

impl AppRelays {
    /// Trystero 0.25.4's own list.
    pub fn trystero(redundancy: usize) -> Self {
        AppRelays {
            list: TRYSTERO_RELAYS.iter().map(|u| u.to_string()).collect(),
            redundancy,
        }
    }

    /// The relays of `app`, in Trystero's order.
    pub fn for_app(&self, app: &str) -> Vec<String> {
        shuffled_order(self.list.len(), app_seed(app))
            .into_iter()
            .take(self.redundancy)
            .map(|i| self.list[i].clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from the 0.25.4 package's own `getRelays(config, defaultRelayUrls, 5, true)`,
    /// run with Node 20.
    #[test]
    fn app_ids_pick_what_trystero_picks() {
        let cases: &[(&str, u64, usize, &[&str])] = &[
            (
                "san_narciso_3d",
                1414,
                5,
                &[
                    "wss://staging.yabu.me",
                    "wss://relay.sigit.io",
                    "wss://relay-can.zombi.cloudrodion.com",
                    "wss://purplerelay.com",
                    "wss://relay.artio.inf.unibe.ch",
                ],
            ),
            (
                "trystero",
                908,
                5,
                &[
                    "wss://schnorr.me",
                    "wss://nostr-relay.corb.net",
                    "wss://staging.yabu.me",
                    "wss://basspistol.org",
                    "wss://strfry.shock.network",
                ],
            ),
            (
                "héllo wörld",
                1383,
                5,
                &[
                    "wss://top.testrelay.top",
                    "wss://nostr.vulpem.com",
                    "wss://chorus.pjv.me",
                    "wss://purplerelay.com",
                    "wss://social.amanah.eblessing.co",
                ],
            ),
            (
                // An astral character counts as two UTF-16 code units.
                "😀 emoji",
                112_753,
                5,
                &[
                    "wss://top.testrelay.top",
                    "wss://purplerelay.com",
                    "wss://koru.bitcointxoko.org",
                    "wss://relay.agorist.space",
                    "wss://social.amanah.eblessing.co",
                ],
            ),
            (
                "日本語アプリ",
                125_458,
                3,
                &[
                    "wss://nostr.tegila.com.br",
                    "wss://bucket.coracle.social",
                    "wss://basspistol.org",
                ],
            ),
            ("zz", 244, 1, &["wss://relay02.lnfi.network"]),
            (
                "",
                0,
                5,
                &[
                    "wss://relay-rpi.edufeed.org",
                    "wss://staging.yabu.me",
                    "wss://nostr.islandarea.net",
                    "wss://schnorr.me",
                    "wss://nostr.data.haus",
                ],
            ),
        ];
        for (app, seed, n, want) in cases {
            assert_eq!(app_seed(app), *seed, "{app:?}");
            assert_eq!(trystero_relays(app, *n), *want, "{app:?}");
        }
    }

    /// The draws below 2^24 that come within 1e-9 of flipping a pick (`sin(k) * 10^4` or a
    /// multiple of its fraction next to an integer), found by scanning every seed with Node's
    /// `Math.sin`; every shuffle that draws at one of them, folded into FNV-1a over the
    /// picked indices, as the 0.25.4 package shuffles them (`getRelays` over the indices 0..28
    /// with an app id whose code units sum to the seed).
    #[test]
    fn near_ties_fall_as_in_trystero() {
        const CLOSE: [u64; 16] = [
            573_204, 1_469_267, 1_626_603, 2_618_670, 4_325_024, 4_846_147, 5_799_956, 5_992_555,
            9_096_722, 9_936_976, 10_265_498, 11_411_906, 14_146_072, 15_078_672, 15_334_624,
            15_684_849,
        ];
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for k in CLOSE {
            for seed in k - 27..=k {
                for i in shuffled_order(28, seed) {
                    h ^= i as u64;
                    h = h.wrapping_mul(0x100_0000_01b3);
                }
            }
        }
        assert_eq!(h, 0xb0f9_3e46_5ff6_18e7);
    }

    #[test]
    fn a_redundancy_past_the_list_takes_all_of_it_shuffled() {
        let all = trystero_relays("x", 40);
        assert_eq!(all, trystero_relays("x", 28));
        assert_eq!(all.len(), 28);
        assert_eq!(
            &all[..4],
            [
                "wss://relay.mostr.pub",
                "wss://relay.sigit.io",
                "wss://bucket.coracle.social",
                "wss://nostr.tegila.com.br",
            ]
        );
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(sorted, TRYSTERO_RELAYS, "a permutation of the list");
        assert!(trystero_relays("x", 0).is_empty());
    }

    #[test]
    fn another_list_is_shuffled_the_same_way() {
        assert_eq!(
            AppRelays::trystero(5).for_app("trystero"),
            trystero_relays("trystero", 5)
        );
        let list: Vec<String> = (0..3).map(|i| format!("ws://127.0.0.1:{i}")).collect();
        let picks = AppRelays {
            list,
            redundancy: 2,
        };
        // Trystero's `shuffle([0, 1, 2], strToNum(app))`, first two.
        assert_eq!(
            picks.for_app("a"),
            vec!["ws://127.0.0.1:1".to_owned(), "ws://127.0.0.1:2".to_owned()]
        );
    }
}
