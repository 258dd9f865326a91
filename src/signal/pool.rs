//! The relay pool's state machine, with no sockets: which relays are connected, waiting to
//! reconnect or retired; where to publish; how to read a failed publish; when to reconnect
//! and when to top the pool up from the extended list.
//!
//! Why it exists apart from the driver: these are the pool's decisions, and they need tests
//! that do not open a WebSocket. The driver (`super::driver`) reports what nostr-sdk saw and
//! carries out what this module returns. Times are passed in: `now` (monotonic) for
//! reconnect timers, `wall` (ms since the epoch) for health records, which are persisted.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use nostr_sdk::RelayUrl;

use super::health::{Decision, RelayHealth};

/// First reconnect delay; doubles per failure up to [`RECONNECT_CAP`], with jitter.
pub const RECONNECT_FIRST: Duration = Duration::from_secs(1);
/// Longest reconnect delay.
pub const RECONNECT_CAP: Duration = Duration::from_secs(60);
/// A connect reported by nobody after this long is checked against nostr-sdk's own state.
const CONNECT_CHECK_AFTER: Duration = Duration::from_secs(2);

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

/// Whether a publish failure was the relay's own refusal (`OK false` with a NIP-01 prefix such
/// as `blocked:` or `rate-limited:`), as opposed to a timeout or "not connected", which are
/// transient and judged by the connection state instead.
pub fn refused_by_relay(why: &str) -> bool {
    why.split_once(": ").is_some_and(|(p, _)| {
        !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c == '-')
    })
}

/// Where a relay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayPhase {
    /// Connected and usable.
    Connected,
    /// Connected, but asked us to slow down: not published to until the back-off ends.
    RateLimited,
    /// A connect is under way.
    Connecting,
    /// Down; a reconnect is scheduled.
    Disconnected,
    /// Misbehaved; not used again for its cooldown.
    Retired,
}

impl RelayPhase {
    /// The phase's stable name (status and scripts key on it).
    pub fn name(self) -> &'static str {
        match self {
            RelayPhase::Connected => "connected",
            RelayPhase::RateLimited => "rate-limited",
            RelayPhase::Connecting => "connecting",
            RelayPhase::Disconnected => "disconnected",
            RelayPhase::Retired => "retired",
        }
    }
}

/// A relay as `status` and `relays` show it.
#[derive(Debug, Clone)]
pub struct RelayState {
    /// URL.
    pub url: String,
    /// Where it stands.
    pub state: RelayPhase,
    /// Last connect latency.
    pub latency_ms: Option<u64>,
    /// Health score (higher is better; -1 retired).
    pub score: f64,
    /// Events received through it.
    pub events_in: u64,
    /// Events it accepted from us.
    pub events_out: u64,
    /// Events it refused.
    pub events_rejected: u64,
    /// The same three counts since this process started (the ones above persist).
    pub this_process: super::health::ProcessCounts,
    /// Last error.
    pub last_error: Option<String>,
    /// When (ms since the epoch).
    pub last_error_at: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    Connecting(Instant),
    Connected,
    Waiting { retry_at: Instant, failures: u32 },
    Retired,
}

/// What to do about a relay someone asked to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Connect it.
    Connect,
    /// It is on its retirement cooldown: leave it alone.
    Cooldown,
}

/// A message a relay sent us, as the pool needs it.
#[derive(Debug, Clone, Copy)]
pub enum RelayNote<'a> {
    /// `NOTICE`.
    Notice(&'a str),
    /// `CLOSED` of our subscription.
    Closed(&'a str),
    /// An event (`ours` when we signed it: an echo).
    Event {
        /// Event id, hex.
        id: &'a str,
        /// Signed by us.
        ours: bool,
    },
}

/// The periodic work the driver must do.
#[derive(Debug, Default, PartialEq)]
pub struct PoolTick {
    /// Relays whose reconnect is due.
    pub reconnect: Vec<String>,
    /// Relays connecting for a while: ask nostr-sdk whether they are up.
    pub check: Vec<String>,
    /// Relays from the extended list to add (the pool is short of healthy ones).
    pub add: Vec<String>,
}

/// Options of the pool's policy.
#[derive(Debug, Clone, Copy)]
pub struct PoolPolicy {
    /// Healthy relays wanted before the extended list is used.
    pub min_relays: usize,
    /// Whether the extended list is used.
    pub extended: bool,
}

/// The relay pool's state.
#[derive(Debug)]
pub struct RelayPool {
    policy: PoolPolicy,
    health: HashMap<String, RelayHealth>,
    links: BTreeMap<String, Link>,
    extended: Vec<String>,
}

impl RelayPool {
    /// A pool that remembers `records` (persisted health) and knows the `extended` list.
    pub fn new(policy: PoolPolicy, records: Vec<RelayHealth>, extended: Vec<String>) -> Self {
        RelayPool {
            policy,
            health: records.into_iter().map(|h| (h.url.clone(), h)).collect(),
            links: BTreeMap::new(),
            extended,
        }
    }

    /// The configured relays, normalized, deduplicated, those that served well last time first.
    pub fn startup_order(&self, relays: &[String], wall: u64) -> Vec<String> {
        let mut out: Vec<String> = relays.iter().filter_map(|u| normalize(u)).collect();
        out.sort();
        out.dedup();
        let score = |u: &String| self.health.get(u).map_or(0.5, |h| h.score(wall));
        out.sort_by(|a, b| score(b).total_cmp(&score(a)));
        out
    }

    /// A relay is added to the pool.
    pub fn add(&mut self, url: &str, now: Instant, wall: u64) -> Added {
        if self.health.get(url).is_some_and(|h| h.is_retired(wall)) {
            self.links.insert(url.to_owned(), Link::Retired);
            return Added::Cooldown;
        }
        self.links.insert(url.to_owned(), Link::Connecting(now));
        self.health
            .entry(url.to_owned())
            .or_insert_with(|| RelayHealth::new(url));
        Added::Connect
    }

    /// The relay is retired for this session (its record keeps the cooldown).
    pub fn retire(&mut self, url: &str) {
        self.links.insert(url.to_owned(), Link::Retired);
    }

    /// Relays to publish to: `relay` alone if it is usable, else every usable one.
    pub fn publish_targets(&self, relay: Option<&str>, wall: u64) -> Vec<String> {
        let usable: Vec<String> = self
            .links
            .iter()
            .filter(|(url, link)| {
                **link == Link::Connected
                    && self.health.get(*url).is_none_or(|h| h.may_publish(wall))
            })
            .map(|(u, _)| u.clone())
            .collect();
        match relay.and_then(normalize) {
            Some(r) if usable.contains(&r) => vec![r],
            _ => usable,
        }
    }

    /// Relays answered a publish of `event_id`; returns the relays to retire (already marked).
    pub fn on_publish_result(
        &mut self,
        event_id: &str,
        accepted: &[String],
        failed: &[(String, String)],
        expect_echo: bool,
        wall: u64,
    ) -> Vec<String> {
        for url in accepted {
            if let Some(h) = normalize(url).and_then(|u| self.health.get_mut(&u)) {
                h.on_publish(event_id, true, expect_echo, "", wall);
            }
        }
        let mut retire = Vec::new();
        for (url, why) in failed {
            let Some(url) = normalize(url) else {
                continue;
            };
            let Some(h) = self.health.get_mut(&url) else {
                continue;
            };
            if !refused_by_relay(why) {
                h.on_disconnected(why, wall);
            } else if h.on_publish(event_id, false, expect_echo, why, wall) == Decision::Retire {
                retire.push(url);
            }
        }
        for url in &retire {
            self.retire(url);
        }
        retire
    }

    /// The relay connected; false when it is retired (the driver should drop it again).
    pub fn on_connected(&mut self, url: &str, now: Instant) -> bool {
        if self.links.get(url) == Some(&Link::Retired) {
            return false;
        }
        let latency = match self.links.get(url) {
            Some(Link::Connecting(since)) => {
                now.saturating_duration_since(*since).as_millis() as u64
            }
            _ => 0,
        };
        self.links.insert(url.to_owned(), Link::Connected);
        self.health
            .entry(url.to_owned())
            .or_insert_with(|| RelayHealth::new(url))
            .on_connected(latency);
        true
    }

    /// The relay went down; returns the reconnect delay (`jitter` in `[0, 1)`), or None when
    /// it is retired or unknown.
    pub fn on_disconnected(
        &mut self,
        url: &str,
        now: Instant,
        wall: u64,
        jitter: f64,
    ) -> Option<Duration> {
        let failures = match self.links.get(url) {
            Some(Link::Retired) | None => return None,
            Some(Link::Waiting { failures, .. }) => *failures,
            Some(Link::Connected) => 0,
            Some(Link::Connecting(_)) => 1,
        };
        let delay = backoff(failures, jitter);
        self.links.insert(
            url.to_owned(),
            Link::Waiting {
                retry_at: now + delay,
                failures: failures + 1,
            },
        );
        if let Some(h) = self.health.get_mut(url) {
            h.on_disconnected("disconnected", wall);
        }
        Some(delay)
    }

    /// A relay sent a message; `Retire` when it should go (already marked).
    pub fn on_note(&mut self, url: &str, note: RelayNote<'_>, wall: u64) -> Decision {
        let Some(h) = self.health.get_mut(url) else {
            return Decision::Keep;
        };
        let decision = match note {
            RelayNote::Notice(m) => h.on_notice(m, wall),
            RelayNote::Closed(m) => h.on_closed(m, wall),
            RelayNote::Event { id, ours } => {
                h.on_event(id, ours);
                Decision::Keep
            }
        };
        if decision == Decision::Retire {
            self.retire(url);
        }
        decision
    }

    /// The subscription's topics changed: echoes of earlier events are no longer expected.
    pub fn forget_echoes(&mut self) {
        for h in self.health.values_mut() {
            h.forget_echoes();
        }
    }

    /// Ages health records; returns due reconnects (marked connecting), connects to check, and
    /// extended-list relays to add.
    pub fn tick(&mut self, now: Instant, wall: u64) -> PoolTick {
        for h in self.health.values_mut() {
            h.tick(wall);
        }
        let mut out = PoolTick::default();
        for (url, link) in self.links.iter_mut() {
            match *link {
                Link::Waiting { retry_at, .. } if retry_at <= now => {
                    *link = Link::Connecting(now);
                    out.reconnect.push(url.clone());
                }
                Link::Connecting(since)
                    if now.saturating_duration_since(since) > CONNECT_CHECK_AFTER =>
                {
                    out.check.push(url.clone());
                }
                _ => {}
            }
        }
        if self.policy.extended {
            let live = self
                .links
                .values()
                .filter(|l| matches!(l, Link::Connected | Link::Connecting(_)))
                .count();
            let deficit = self.policy.min_relays.saturating_sub(live);
            let mut candidates: Vec<(f64, &String)> = self
                .extended
                .iter()
                .filter(|u| !self.links.contains_key(*u))
                .map(|u| (self.health.get(u).map_or(0.5, |h| h.score(wall)), u))
                .filter(|(score, _)| *score >= 0.0)
                .collect();
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
            out.add = candidates
                .into_iter()
                .take(deficit)
                .map(|(_, u)| u.clone())
                .collect();
        }
        out
    }

    /// Replaces the extended list.
    pub fn set_extended(&mut self, list: Vec<String>) {
        self.extended = list;
    }

    /// Relays and their states, best first.
    pub fn states(&self, wall: u64) -> Vec<RelayState> {
        let mut out: Vec<RelayState> = self
            .links
            .iter()
            .map(|(url, link)| {
                let fresh;
                let h = match self.health.get(url) {
                    Some(h) => h,
                    None => {
                        fresh = RelayHealth::new(url);
                        &fresh
                    }
                };
                let state = match link {
                    Link::Retired => RelayPhase::Retired,
                    Link::Connected if !h.may_publish(wall) => RelayPhase::RateLimited,
                    Link::Connected => RelayPhase::Connected,
                    Link::Connecting(_) => RelayPhase::Connecting,
                    Link::Waiting { .. } => RelayPhase::Disconnected,
                };
                RelayState {
                    url: url.clone(),
                    state,
                    latency_ms: h.connect_latency_ms,
                    score: h.score(wall),
                    events_in: h.events_in,
                    events_out: h.published_ok,
                    events_rejected: h.published_rejected,
                    this_process: h.this_process,
                    last_error: h.last_error.clone(),
                    last_error_at: h.last_error_at,
                }
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.url.cmp(&b.url)));
        out
    }

    /// Health records to persist.
    pub fn records(&self) -> impl Iterator<Item = (&str, &RelayHealth)> {
        self.health.values().map(|h| (h.url.as_str(), h))
    }
}

#[cfg(test)]
mod tests;
