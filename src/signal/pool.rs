//! The relay pool's state machine, with no sockets: which relays are connected, waiting to
//! reconnect or retired; which relays each room uses; where to publish; how to read a failed
//! publish; when to reconnect, when to release a relay no room needs any more, and when to top
//! the pool up from the extended list.
//!
//! Which relays a room uses: the *shared* relays (configured ones, the embedded relay, and
//! those added from the extended list) carry every room; with no relay configured, each app's
//! rooms also use Trystero's default relays for that app ([`super::defaults`]), so the pool is
//! the union over the apps the node serves. Every relay is subscribed to the topics of the
//! rooms it carries, and a room publishes only on its relays.
//!
//! Why it exists apart from the driver: these are the pool's decisions, and they need tests
//! that do not open a WebSocket. The driver (`super::driver`) reports what nostr-sdk saw and
//! carries out what this module returns. Times are passed in: `now` (monotonic) for
//! reconnect timers, `wall` (ms since the epoch) for health records, which are persisted.
//! How the pool reads to a person (`status`, `meshrtc relays`) is in `view`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use nostr_sdk::RelayUrl;

use super::AppTopic;
use super::defaults::AppRelays;
use super::health::{Decision, RelayHealth};
use super::rules::{RelayRules, SubPlan, plan_subscriptions, sub_id};

/// First reconnect delay; doubles per failure up to [`RECONNECT_CAP`], with jitter.
pub const RECONNECT_FIRST: Duration = Duration::from_secs(1);
/// Longest reconnect delay.
pub const RECONNECT_CAP: Duration = Duration::from_secs(60);
/// A connect reported by nobody after this long is checked against nostr-sdk's own state.
const CONNECT_CHECK_AFTER: Duration = Duration::from_secs(2);
/// A relay no room has needed for this long is disconnected (an app that leaves and joins
/// again soon, as a reloaded page does, finds its relays still connected).
pub const RELEASE_AFTER: Duration = Duration::from_secs(60);

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
    /// Relays no room has needed for [`RELEASE_AFTER`]: disconnect and forget them (already
    /// out of the pool).
    pub release: Vec<String>,
}

/// Options of the pool's policy.
#[derive(Debug, Clone)]
pub struct PoolPolicy {
    /// Healthy relays wanted per app (or in all, without per-app relays) before the extended
    /// list is used.
    pub min_relays: usize,
    /// Whether the extended list is used.
    pub extended: bool,
    /// How each app's relays are picked (Trystero's defaults, `relayConfig.redundancy` of
    /// them): set when no relay is configured. None: every room uses the shared relays only.
    pub app_relays: Option<AppRelays>,
}

/// What the driver must do after the subscription changed.
#[derive(Debug, Default, PartialEq)]
pub struct Routing {
    /// Relays a room now needs that the pool does not have: add them.
    pub add: Vec<String>,
    /// Connected relays whose subscriptions changed, with what to send.
    pub subscribe: Vec<(String, SubChange)>,
}

/// The subscriptions to place on one relay: each `REQ` replaces the one of the same id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubChange {
    /// Subscription ids with their topics (one filter each), to send.
    pub reqs: Vec<(String, Vec<String>)>,
    /// Subscription ids to close.
    pub close: Vec<String>,
}

impl SubChange {
    /// Every topic subscribed.
    pub fn topics(&self) -> Vec<String> {
        self.reqs
            .iter()
            .flat_map(|(_, t)| t.iter().cloned())
            .collect()
    }
}

/// A relay whose subscriptions are placed, as the pool routes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayUp {
    /// The topics subscribed on it (empty: none, for now).
    pub topics: Vec<String>,
    /// The subscriptions to send.
    pub subs: SubChange,
    /// The apps whose rooms it carries; None for a shared relay (every room).
    pub apps: Option<Vec<String>>,
}

/// What a relay's NIP-11 rules change.
#[derive(Debug, Clone, PartialEq)]
pub enum RulesApplied {
    /// The relay was connected and waiting for its rules: it is up now.
    Up(RelayUp),
    /// Its subscriptions change to fit the rules.
    Resubscribe(SubChange),
}

/// Where an event goes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishPlan {
    /// Relays to publish to.
    pub targets: Vec<String>,
    /// Relays that would have been but the event exceeds their `max_message_length` (counted).
    pub too_large: Vec<String>,
}

/// The relay pool's state.
#[derive(Debug)]
pub struct RelayPool {
    policy: PoolPolicy,
    health: HashMap<String, RelayHealth>,
    links: BTreeMap<String, Link>,
    extended: Vec<String>,
    /// Relays every room uses (configured, embedded, added from the extended list).
    shared: BTreeSet<String>,
    /// The topics the node listens on, with their rooms' apps.
    topics: BTreeMap<String, String>,
    /// The per-app relays (normalized) of every app that has a topic.
    apps: BTreeMap<String, Vec<String>>,
    /// How each connected relay was last subscribed.
    subscribed: BTreeMap<String, SubPlan>,
    /// Relays whose NIP-11 rules are being read for the first time: not subscribed before.
    rules_pending: BTreeSet<String>,
    /// Relays in the pool that no room needs, since when.
    unneeded: BTreeMap<String, Instant>,
}

impl RelayPool {
    /// A pool that remembers `records` (persisted health) and knows the `extended` list.
    pub fn new(policy: PoolPolicy, records: Vec<RelayHealth>, extended: Vec<String>) -> Self {
        RelayPool {
            policy,
            health: records.into_iter().map(|h| (h.url.clone(), h)).collect(),
            links: BTreeMap::new(),
            extended,
            shared: BTreeSet::new(),
            topics: BTreeMap::new(),
            apps: BTreeMap::new(),
            subscribed: BTreeMap::new(),
            rules_pending: BTreeSet::new(),
            unneeded: BTreeMap::new(),
        }
    }

    /// The configured relays, shared by every room from now on: normalized, deduplicated,
    /// those that served well last time first.
    pub fn startup_order(&mut self, relays: &[String], wall: u64) -> Vec<String> {
        let mut out: Vec<String> = relays.iter().filter_map(|u| normalize(u)).collect();
        out.sort();
        out.dedup();
        let score = |u: &String| self.health.get(u).map_or(0.5, |h| h.score(wall));
        out.sort_by(|a, b| score(b).total_cmp(&score(a)));
        self.shared.extend(out.iter().cloned());
        out
    }

    /// The per-app relays of `app`, normalized (none without per-app relays).
    fn relays_of_app(&self, app: &str) -> Vec<String> {
        if let Some(relays) = self.apps.get(app) {
            return relays.clone();
        }
        match &self.policy.app_relays {
            Some(picks) => picks
                .for_app(app)
                .iter()
                .filter_map(|u| normalize(u))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Whether `url` carries `app`'s rooms.
    fn carries_app(&self, url: &str, app: &str) -> bool {
        self.shared.contains(url)
            || self
                .apps
                .get(app)
                .is_some_and(|r| r.iter().any(|u| u == url))
    }

    /// The topics `url` should be subscribed to: those of the rooms it carries.
    fn topics_of(&self, url: &str) -> Vec<String> {
        self.topics
            .iter()
            .filter(|(_, app)| self.carries_app(url, app))
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// The rules `url` published (none known: no limits).
    fn rules_of(&self, url: &str) -> RelayRules {
        self.health
            .get(url)
            .and_then(|h| h.rules.clone())
            .unwrap_or_default()
    }

    /// How `url`'s topics fit its rules.
    fn plan_of(&self, url: &str) -> SubPlan {
        plan_subscriptions(&self.topics_of(url), &self.rules_of(url))
    }

    /// Replans `url`'s subscriptions; the change to send, if any.
    fn replan(&mut self, url: &str) -> Option<SubChange> {
        let plan = self.plan_of(url);
        let old = self.subscribed.get(url);
        if old == Some(&plan) {
            return None;
        }
        let before = old.map_or(0, |p| p.reqs.len());
        let change = SubChange {
            reqs: plan
                .reqs
                .iter()
                .enumerate()
                .map(|(i, t)| (sub_id(i), t.clone()))
                .collect(),
            close: (plan.reqs.len()..before).map(sub_id).collect(),
        };
        self.subscribed.insert(url.to_owned(), plan);
        Some(change)
    }

    /// The apps whose rooms `url` carries; None for a shared relay.
    fn apps_of(&self, url: &str) -> Option<Vec<String>> {
        (!self.shared.contains(url)).then(|| {
            self.apps
                .iter()
                .filter(|(_, relays)| relays.iter().any(|u| u == url))
                .map(|(app, _)| app.clone())
                .collect()
        })
    }

    /// Whether an event on `topic` that came through `url` is one the node listens for there.
    pub fn carries(&self, url: &str, topic: &str) -> bool {
        self.topics
            .get(topic)
            .is_some_and(|app| self.carries_app(url, app))
    }

    /// Whether the node listens on `topic` (its own events on it come back as echoes).
    pub fn listens(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }

    /// Relays some room needs: the shared ones and every app's.
    fn needed(&self) -> BTreeSet<&String> {
        self.shared
            .iter()
            .chain(self.apps.values().flatten())
            .collect()
    }

    /// Whether some room needs `url`.
    fn is_needed(&self, url: &str) -> bool {
        self.shared.contains(url) || self.apps.values().flatten().any(|u| u == url)
    }

    /// The node's topics changed: each is routed to its app's relays (and the shared ones).
    /// Returns the relays to add and the connected relays to subscribe anew.
    pub fn set_topics(&mut self, topics: Vec<AppTopic>, now: Instant) -> Routing {
        let topics: BTreeMap<String, String> =
            topics.into_iter().map(|t| (t.topic, t.app)).collect();
        if topics != self.topics {
            self.forget_echoes();
        }
        let apps: BTreeSet<&String> = topics.values().collect();
        let apps: BTreeMap<String, Vec<String>> = apps
            .into_iter()
            .map(|app| (app.clone(), self.relays_of_app(app)))
            .collect();
        self.topics = topics;
        self.apps = apps;
        let needed: BTreeSet<String> = self.needed().into_iter().cloned().collect();
        let mut out = Routing {
            add: needed
                .iter()
                .filter(|u| !self.links.contains_key(*u))
                .cloned()
                .collect(),
            subscribe: Vec::new(),
        };
        for url in self.links.keys() {
            if needed.contains(url) {
                self.unneeded.remove(url);
            } else {
                self.unneeded.entry(url.clone()).or_insert(now);
            }
        }
        let connected: Vec<String> = self
            .links
            .iter()
            .filter(|(u, l)| **l == Link::Connected && !self.rules_pending.contains(*u))
            .map(|(u, _)| u.clone())
            .collect();
        for url in connected {
            if let Some(change) = self.replan(&url) {
                out.subscribe.push((url, change));
            }
        }
        out
    }

    /// A relay is added to the pool.
    pub fn add(&mut self, url: &str, now: Instant, wall: u64) -> Added {
        if self.health.get(url).is_some_and(|h| h.is_retired(wall)) {
            self.links.insert(url.to_owned(), Link::Retired);
            return Added::Cooldown;
        }
        self.links.insert(url.to_owned(), Link::Connecting(now));
        if !self.is_needed(url) {
            self.unneeded.entry(url.to_owned()).or_insert(now);
        }
        self.health
            .entry(url.to_owned())
            .or_insert_with(|| RelayHealth::new(url));
        Added::Connect
    }

    /// Whether the driver should read `url`'s NIP-11 rules now (never read, or stale). Never
    /// read: the relay is not subscribed until [`RelayPool::on_rules`] (the read is bounded).
    pub fn wants_rules(&mut self, url: &str, wall: u64) -> bool {
        let rules = self.health.get(url).and_then(|h| h.rules.as_ref());
        if rules.is_none() {
            self.rules_pending.insert(url.to_owned());
        }
        rules.is_none_or(|r| r.stale(wall))
    }

    /// `url`'s NIP-11 rules were read (or could not be: [`RelayRules::unreadable`]); what that
    /// changes for a connected relay.
    pub fn on_rules(&mut self, url: &str, rules: RelayRules) -> Option<RulesApplied> {
        let waiting = self.rules_pending.remove(url);
        let h = self.health.get_mut(url)?;
        h.rules = Some(rules);
        if self.links.get(url) != Some(&Link::Connected) {
            return None;
        }
        if waiting {
            let subs = self.replan(url).unwrap_or_default();
            return Some(RulesApplied::Up(RelayUp {
                topics: subs.topics(),
                subs,
                apps: self.apps_of(url),
            }));
        }
        self.replan(url).map(RulesApplied::Resubscribe)
    }

    /// The relay is retired for this session (its record keeps the cooldown).
    pub fn retire(&mut self, url: &str) {
        self.links.insert(url.to_owned(), Link::Retired);
    }

    /// Relays to publish to for a room of `app`: `relay` alone if it is usable and one of the
    /// app's, else every usable one of the app's. Read-only relays are never used.
    pub fn publish_targets(&self, app: &str, relay: Option<&str>, wall: u64) -> Vec<String> {
        self.select(app, relay, 0, wall).targets
    }

    /// [`RelayPool::publish_targets`] for a message of `len` bytes: relays whose
    /// `max_message_length` it exceeds are skipped (and counted), so a preferred one that cannot
    /// take it gives way to the others.
    pub fn publish_plan(
        &mut self,
        app: &str,
        relay: Option<&str>,
        len: usize,
        wall: u64,
    ) -> PublishPlan {
        let plan = self.select(app, relay, len, wall);
        for url in &plan.too_large {
            if let Some(h) = self.health.get_mut(url) {
                h.events_too_large += 1;
            }
        }
        plan
    }

    fn select(&self, app: &str, relay: Option<&str>, len: usize, wall: u64) -> PublishPlan {
        let own = self.relays_of_app(app);
        let (usable, too_large): (Vec<String>, Vec<String>) = self
            .links
            .iter()
            .filter(|(url, link)| {
                **link == Link::Connected
                    // Not before its rules say whether it may be written to.
                    && !self.rules_pending.contains(*url)
                    && (self.shared.contains(*url) || own.contains(url))
                    && self.health.get(*url).is_none_or(|h| {
                        h.may_publish(wall)
                            && h.rules.as_ref().is_none_or(|r| r.read_only().is_none())
                    })
            })
            .map(|(u, _)| u.clone())
            .partition(|u| {
                self.health
                    .get(u)
                    .and_then(|h| h.rules.as_ref())
                    .is_none_or(|r| r.takes(len))
            });
        let targets = match relay.and_then(normalize) {
            Some(r) if usable.contains(&r) => vec![r],
            _ => usable,
        };
        PublishPlan { targets, too_large }
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

    /// The relay connected: the subscriptions to place on it and the apps whose rooms should
    /// announce again; None when it is retired or released (the driver should drop it again),
    /// or while its rules are being read for the first time ([`RelayPool::on_rules`] then).
    pub fn on_connected(&mut self, url: &str, now: Instant) -> Option<RelayUp> {
        match self.links.get(url) {
            Some(Link::Retired) | None => return None,
            _ => {}
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
        if self.rules_pending.contains(url) {
            // Subscribed once its rules are read (`on_rules`).
            return None;
        }
        // A new connection holds none of our subscriptions.
        self.subscribed.remove(url);
        let subs = self.replan(url).unwrap_or_default();
        Some(RelayUp {
            topics: subs.topics(),
            subs,
            apps: self.apps_of(url),
        })
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
        self.subscribed.remove(url);
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

    /// Ages health records; returns due reconnects (marked connecting), connects to check,
    /// extended-list relays to add (marked shared), and relays to release (removed).
    pub fn tick(&mut self, now: Instant, wall: u64) -> PoolTick {
        for h in self.health.values_mut() {
            h.tick(wall);
        }
        let mut out = PoolTick::default();
        let released: Vec<String> = self
            .unneeded
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= RELEASE_AFTER)
            .map(|(u, _)| u.clone())
            .collect();
        for url in released {
            self.unneeded.remove(&url);
            self.subscribed.remove(&url);
            self.rules_pending.remove(&url);
            self.links.remove(&url);
            out.release.push(url);
        }
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
            let live = |url: &String| {
                matches!(
                    self.links.get(url),
                    Some(Link::Connected | Link::Connecting(_))
                )
            };
            let shared = self.shared.iter().filter(|u| live(u)).count();
            // Per-app relays: the app worst off decides (an app without rooms needs none);
            // without them, every relay in the pool counts.
            let deficit = if self.policy.app_relays.is_some() {
                self.apps
                    .values()
                    .map(|relays| {
                        let own = relays
                            .iter()
                            .filter(|u| live(u) && !self.shared.contains(*u))
                            .count();
                        self.policy.min_relays.saturating_sub(shared + own)
                    })
                    .max()
                    .unwrap_or(0)
            } else {
                let all = self.links.keys().filter(|u| live(u)).count();
                self.policy.min_relays.saturating_sub(all)
            };
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
            self.shared.extend(out.add.iter().cloned());
        }
        out
    }

    /// Replaces the extended list.
    pub fn set_extended(&mut self, list: Vec<String>) {
        self.extended = list;
    }

    /// Health records to persist.
    pub fn records(&self) -> impl Iterator<Item = (&str, &RelayHealth)> {
        self.health.values().map(|h| (h.url.as_str(), h))
    }
}

mod view;
pub use view::{RelayPhase, RelayState};

#[cfg(test)]
mod tests;
