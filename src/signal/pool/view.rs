//! The pool as `status` and `meshrtc relays` show it: each relay's phase, health and rules.

use super::{Link, RelayPool};
use crate::signal::health::RelayHealth;
use crate::signal::rules::{ReadOnly, RelayRules};

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
    pub this_process: crate::signal::health::ProcessCounts,
    /// Last error.
    pub last_error: Option<String>,
    /// When (ms since the epoch).
    pub last_error_at: Option<u64>,
    /// Its NIP-11 rules, when read.
    pub rules: Option<RelayRules>,
    /// Why the node does not publish to it, if it does not.
    pub read_only: Option<ReadOnly>,
    /// Events not sent to it: longer than its `max_message_length`.
    pub events_too_large: u64,
    /// Topics its subscription limits leave unheard there.
    pub topics_left_out: usize,
}

impl RelayPool {
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
                let rules = h.rules.clone();
                RelayState {
                    read_only: rules.as_ref().and_then(RelayRules::read_only),
                    rules,
                    events_too_large: h.events_too_large,
                    topics_left_out: self.subscribed.get(url).map_or(0, |p| p.left_out.len()),
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
}
