//! The relay driver: an adaptive pool of Nostr relays over nostr-sdk.
//!
//! Every relay is connected and used independently; reconnects use jittered exponential
//! back-off; misbehaving relays are retired or throttled by [`super::health`]; an extended list
//! tops the pool up when too few relays are healthy. Every incoming event's signature is checked
//! before nostr-sdk sees it, so bad ones are counted. Protocol decisions stay in
//! [`super::state`] and the node.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_wsocket::Message;
use futures::StreamExt as _;
use nostr_sdk::pool::monitor::{Monitor, MonitorNotification};
use nostr_sdk::pool::transport::error::TransportError;
use nostr_sdk::pool::transport::websocket::{
    DefaultWebsocketTransport, WebSocketSink, WebSocketStream, WebSocketTransport,
};
use nostr_sdk::pool::{ConnectionMode, RelayPoolNotification};
use nostr_sdk::util::BoxedFuture;
use nostr_sdk::{
    Alphabet, Client, ClientOptions, Event, EventBuilder, JsonUtil, Keys, Kind, PublicKey,
    RelayMessage, RelayOptions, RelayStatus, SingleLetterTag, SubscriptionId, Tag, TagKind,
    Timestamp, Url,
};
use tokio::sync::mpsc;

use super::health::{Decision, RelayHealth};
pub use super::pool::normalize;
use super::pool::{RECONNECT_CAP, backoff};
use crate::store::Store;
use crate::wire::topic::topic_kind;

/// Subscription id of the node's one subscription.
const SUBSCRIPTION: &str = "meshrtc";
/// How often health records are written to the store.
const PERSIST_EVERY: Duration = Duration::from_secs(10);

/// What the driver reports to the node.
#[derive(Debug, Clone)]
pub enum DriverEvent {
    /// A verified signaling event.
    Event(Incoming),
    /// A relay (re)connected and has our subscription: announces can reach it now.
    RelayUp(String),
}

/// A signaling event from a relay, signature already verified.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Relay it came through.
    pub relay: String,
    /// Value of its `x` tag.
    pub topic: String,
    /// Event content.
    pub content: String,
    /// The event's author (x-only public key).
    pub pubkey: [u8; 32],
}

pub use super::RelayCommand as Command;

/// Counters of the driver.
#[derive(Debug, Default)]
pub struct SignalCounters {
    /// Events whose id or signature did not verify.
    pub bad_signature: AtomicU64,
    /// Events without a topic we listen on.
    pub unknown_topic: AtomicU64,
    /// Publishes no relay accepted.
    pub publish_failed: AtomicU64,
    /// Relays retired for misbehaving.
    pub relays_retired: AtomicU64,
    /// Failed refreshes of the extended relay list.
    pub relay_list_failed: AtomicU64,
}

impl SignalCounters {
    /// The counters under their drop names, as `status` shows them.
    pub fn snapshot(&self) -> [(crate::drops::DropReason, u64); 5] {
        use crate::drops::DropReason as D;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (D::EventBadSignature, get(&self.bad_signature)),
            (D::EventUnknownTopic, get(&self.unknown_topic)),
            (D::PublishFailed, get(&self.publish_failed)),
            (D::RelayRetired, get(&self.relays_retired)),
            (D::RelayListFailed, get(&self.relay_list_failed)),
        ]
    }
}

/// A relay as `status` and `relays` show it.
#[derive(Debug, Clone)]
pub struct RelayState {
    /// URL.
    pub url: String,
    /// connected, connecting, disconnected, rate-limited or retired.
    pub state: String,
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
    /// Last error.
    pub last_error: Option<String>,
    /// When (ms since the epoch).
    pub last_error_at: Option<u64>,
}

/// Options of the relay pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Relays to connect at start.
    pub relays: Vec<String>,
    /// Healthy relays wanted before the extended list is used.
    pub min_relays: usize,
    /// Whether the extended list is used and refreshed.
    pub extended: bool,
    /// Where the extended list comes from.
    pub list_url: String,
    /// Refresh period of the extended list.
    pub list_refresh: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    Connecting(Instant),
    Connected,
    Waiting { retry_at: Instant, failures: u32 },
    Retired,
}

#[derive(Debug, Default)]
struct PoolState {
    health: HashMap<String, RelayHealth>,
    links: HashMap<String, Link>,
    extended: Vec<String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Checks every incoming event before nostr-sdk sees it, so bad signatures are counted, not just logged.
#[derive(Debug)]
struct VerifyingTransport {
    counters: Arc<SignalCounters>,
}

impl WebSocketTransport for VerifyingTransport {
    fn support_ping(&self) -> bool {
        true
    }

    fn connect<'a>(
        &'a self,
        url: &'a Url,
        mode: &'a ConnectionMode,
        timeout: Duration,
    ) -> BoxedFuture<'a, Result<(WebSocketSink, WebSocketStream), TransportError>> {
        Box::pin(async move {
            let (sink, stream) = DefaultWebsocketTransport
                .connect(url, mode, timeout)
                .await?;
            let counters = self.counters.clone();
            let stream = stream.filter(move |msg| {
                let keep = match msg {
                    Ok(Message::Text(text)) => match RelayMessage::from_json(text) {
                        Ok(RelayMessage::Event { event, .. }) => {
                            let ok = event.verify().is_ok();
                            if !ok {
                                counters.bad_signature.fetch_add(1, Ordering::Relaxed);
                            }
                            ok
                        }
                        _ => true,
                    },
                    _ => true,
                };
                std::future::ready(keep)
            });
            Ok((sink, Box::pin(stream) as WebSocketStream))
        })
    }
}

/// Handle to the running driver.
#[derive(Debug, Clone)]
pub struct SignalHandle {
    commands: mpsc::UnboundedSender<Command>,
    client: Client,
    pool: Arc<Mutex<PoolState>>,
    store: Option<Store>,
    /// Counters shared with the driver.
    pub counters: Arc<SignalCounters>,
}

impl SignalHandle {
    /// Queues a command.
    pub fn send(&self, cmd: Command) {
        let _ = self.commands.send(cmd);
    }

    /// Relays, best first.
    pub async fn relays(&self) -> Vec<RelayState> {
        let now = now_ms();
        let pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<RelayState> = pool
            .links
            .iter()
            .map(|(url, link)| {
                let h = pool
                    .health
                    .get(url)
                    .cloned()
                    .unwrap_or_else(|| RelayHealth::new(url));
                let state = match link {
                    Link::Retired => "retired",
                    Link::Connected if !h.may_publish(now) => "rate-limited",
                    Link::Connected => "connected",
                    Link::Connecting(_) => "connecting",
                    Link::Waiting { .. } => "disconnected",
                };
                RelayState {
                    url: url.clone(),
                    state: state.to_owned(),
                    latency_ms: h.connect_latency_ms,
                    score: h.score(now),
                    events_in: h.events_in,
                    events_out: h.published_ok,
                    events_rejected: h.published_rejected,
                    last_error: h.last_error.clone(),
                    last_error_at: h.last_error_at,
                }
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.url.cmp(&b.url)));
        out
    }

    /// Saves health records and closes every relay connection.
    pub async fn shutdown(&self) {
        persist(&self.pool, self.store.as_ref());
        self.client.shutdown().await;
    }
}

fn persist(pool: &Mutex<PoolState>, store: Option<&Store>) {
    let Some(store) = store else { return };
    let pool = pool.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = store.save_relay_records(pool.health.values().map(|h| (h.url.as_str(), h))) {
        tracing::warn!(error = %e, "saving relay health failed");
    }
}

fn build_event(keys: &Keys, topic: &str, content: &str) -> Option<Event> {
    EventBuilder::new(Kind::Custom(topic_kind(topic)), content)
        .tag(Tag::custom(TagKind::x(), [topic.to_owned()]))
        .sign_with_keys(keys)
        .ok()
}

fn filter_for(topics: &[String]) -> nostr_sdk::Filter {
    let kinds: HashSet<u16> = topics.iter().map(|t| topic_kind(t)).collect();
    nostr_sdk::Filter::new()
        .kinds(kinds.into_iter().map(Kind::Custom))
        .since(Timestamp::now())
        .custom_tags(
            SingleLetterTag::lowercase(Alphabet::X),
            topics.iter().cloned(),
        )
}

/// Fetches a relay list in nostr.watch's format: a JSON array of relay URLs.
pub async fn fetch_relay_list(url: &str) -> anyhow::Result<Vec<String>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    let body = client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    if body.len() > 4 << 20 {
        anyhow::bail!("relay list larger than 4 MiB");
    }
    let list: Vec<serde_json::Value> = serde_json::from_slice(&body)?;
    let mut out: Vec<String> = list
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|u| u.starts_with("wss://") || u.starts_with("ws://"))
        .filter_map(normalize)
        .collect();
    out.dedup();
    if out.is_empty() {
        anyhow::bail!("relay list has no relay URLs");
    }
    Ok(out)
}

struct Driver {
    client: Client,
    keys: Keys,
    our_key: PublicKey,
    pool: Arc<Mutex<PoolState>>,
    counters: Arc<SignalCounters>,
    incoming: mpsc::UnboundedSender<DriverEvent>,
    topics: Vec<String>,
    sub_id: SubscriptionId,
    options: PoolOptions,
    store: Option<Store>,
}

impl Driver {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn add(&self, url: &str) {
        let opts = RelayOptions::new().reconnect(false);
        if let Err(e) = self.client.pool().add_relay(url, opts).await {
            tracing::warn!(relay = %url, error = %e, "invalid relay url");
            return;
        }
        {
            let mut pool = self.lock();
            if pool.health.get(url).is_some_and(|h| h.is_retired(now_ms())) {
                pool.links.insert(url.to_owned(), Link::Retired);
                tracing::info!(relay = %url, "relay is on its cooldown; not connecting");
                return;
            }
            pool.links
                .insert(url.to_owned(), Link::Connecting(Instant::now()));
            pool.health
                .entry(url.to_owned())
                .or_insert_with(|| RelayHealth::new(url));
        }
        let client = self.client.clone();
        let url = url.to_owned();
        tokio::spawn(async move {
            let _ = client.connect_relay(url.as_str()).await;
        });
    }

    fn retire(&self, url: &str) {
        self.lock().links.insert(url.to_owned(), Link::Retired);
        // The cooldown must survive a crash right after this.
        persist(&self.pool, self.store.as_ref());
        self.counters.relays_retired.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(relay = %url, "relay retired for this session");
        let client = self.client.clone();
        let url = url.to_owned();
        tokio::spawn(async move {
            let _ = client.disconnect_relay(url.as_str()).await;
        });
    }

    fn publish(&self, topic: &str, content: &str, relay: Option<String>) {
        let Some(event) = build_event(&self.keys, topic, content) else {
            return;
        };
        let now = now_ms();
        let usable: Vec<String> = {
            let pool = self.lock();
            pool.links
                .iter()
                .filter(|(url, link)| {
                    **link == Link::Connected
                        && pool.health.get(*url).is_none_or(|h| h.may_publish(now))
                })
                .map(|(u, _)| u.clone())
                .collect()
        };
        let targets: Vec<String> = match relay.and_then(|r| normalize(&r)) {
            Some(r) if usable.contains(&r) => vec![r],
            _ => usable,
        };
        if targets.is_empty() {
            self.counters.publish_failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let client = self.client.clone();
        let pool = self.pool.clone();
        let counters = self.counters.clone();
        let store = self.store.clone();
        let event_id = event.id.to_hex();
        // Only events on our own topics come back through our subscription.
        let expect_echo = self.topics.iter().any(|t| t == topic);
        tokio::spawn(async move {
            let Ok(out) = client
                .send_event_to(targets.iter().map(String::as_str), &event)
                .await
            else {
                counters.publish_failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            if out.success.is_empty() {
                counters.publish_failed.fetch_add(1, Ordering::Relaxed);
            }
            let now = now_ms();
            let mut retire = Vec::new();
            {
                let mut p = pool.lock().unwrap_or_else(|p| p.into_inner());
                for url in &out.success {
                    if let Some(h) = normalize(url.as_str()).and_then(|u| p.health.get_mut(&u)) {
                        h.on_publish(&event_id, true, expect_echo, "", now);
                    }
                }
                for (url, why) in &out.failed {
                    let Some(url) = normalize(url.as_str()) else {
                        continue;
                    };
                    let Some(h) = p.health.get_mut(&url) else {
                        continue;
                    };
                    // Only the relay's own OK-false messages carry a NIP-01 prefix; timeouts and
                    // "not connected" are transient and judged by the connection state instead.
                    let from_relay = why.split_once(": ").is_some_and(|(p, _)| {
                        !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                    });
                    if !from_relay {
                        h.on_disconnected(why, now);
                    } else if h.on_publish(&event_id, false, expect_echo, why, now)
                        == Decision::Retire
                    {
                        retire.push(url);
                    }
                }
            }
            if !retire.is_empty() {
                persist(&pool, store.as_ref());
            }
            for url in retire {
                pool.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .links
                    .insert(url.clone(), Link::Retired);
                counters.relays_retired.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(relay = %url, "relay refused our event; retired for this session");
                let _ = client.disconnect_relay(url.as_str()).await;
            }
        });
    }

    async fn subscribe_all(&mut self, topics: Vec<String>) {
        if topics != self.topics {
            let mut pool = self.lock();
            for h in pool.health.values_mut() {
                h.forget_echoes();
            }
        }
        self.topics = topics;
        if self.topics.is_empty() {
            self.client.unsubscribe(&self.sub_id).await;
        } else {
            let _ = self
                .client
                .subscribe_with_id(self.sub_id.clone(), filter_for(&self.topics), None)
                .await;
        }
    }

    async fn on_status(&mut self, url: String, status: RelayStatus) {
        let now = now_ms();
        match status {
            RelayStatus::Connected => {
                {
                    let mut pool = self.lock();
                    if pool.links.get(&url) == Some(&Link::Retired) {
                        return;
                    }
                    let latency = match pool.links.get(&url) {
                        Some(Link::Connecting(since)) => since.elapsed().as_millis() as u64,
                        _ => 0,
                    };
                    pool.links.insert(url.clone(), Link::Connected);
                    pool.health
                        .entry(url.clone())
                        .or_insert_with(|| RelayHealth::new(&url))
                        .on_connected(latency);
                }
                tracing::info!(relay = %url, "relay connected");
                if !self.topics.is_empty() {
                    let _ = self
                        .client
                        .pool()
                        .subscribe_with_id_to(
                            [url.as_str()],
                            self.sub_id.clone(),
                            filter_for(&self.topics),
                            Default::default(),
                        )
                        .await;
                }
                let _ = self.incoming.send(DriverEvent::RelayUp(url));
            }
            RelayStatus::Disconnected | RelayStatus::Terminated | RelayStatus::Banned => {
                let mut pool = self.lock();
                let failures = match pool.links.get(&url) {
                    Some(Link::Retired) | None => return,
                    Some(Link::Waiting { failures, .. }) => *failures,
                    Some(Link::Connected) => 0,
                    Some(Link::Connecting(_)) => 1,
                };
                let delay = backoff(failures, rand::random());
                pool.links.insert(
                    url.clone(),
                    Link::Waiting {
                        retry_at: Instant::now() + delay,
                        failures: failures + 1,
                    },
                );
                if let Some(h) = pool.health.get_mut(&url) {
                    h.on_disconnected("disconnected", now);
                }
                tracing::info!(relay = %url, retry_in_ms = delay.as_millis() as u64, "relay down");
            }
            _ => {}
        }
    }

    fn on_relay_message(&self, url: &str, message: &RelayMessage<'_>) {
        let now = now_ms();
        let decision = {
            let mut pool = self.lock();
            let Some(h) = pool.health.get_mut(url) else {
                return;
            };
            match message {
                RelayMessage::Notice(m) => h.on_notice(m, now),
                RelayMessage::Closed {
                    subscription_id,
                    message,
                } if subscription_id.as_ref() == &self.sub_id => h.on_closed(message, now),
                RelayMessage::Event { event, .. } => {
                    h.on_event(&event.id.to_hex(), event.pubkey == self.our_key);
                    Decision::Keep
                }
                _ => Decision::Keep,
            }
        };
        if decision == Decision::Retire {
            self.retire(url);
        }
    }

    /// Reconnects due relays, ages echoes, tops the pool up from the extended list.
    async fn tick(&mut self) {
        let now = Instant::now();
        let wall = now_ms();
        let (due, deficit, candidates) = {
            let mut pool = self.lock();
            for h in pool.health.values_mut() {
                h.tick(wall);
            }
            let due: Vec<String> = pool
                .links
                .iter()
                .filter(|(_, l)| matches!(l, Link::Waiting { retry_at, .. } if *retry_at <= now))
                .map(|(u, _)| u.clone())
                .collect();
            for url in &due {
                if let Some(Link::Waiting { failures, .. }) = pool.links.get(url).copied() {
                    pool.links.insert(
                        url.clone(),
                        Link::Waiting {
                            retry_at: now + RECONNECT_CAP,
                            failures,
                        },
                    );
                }
            }
            let live = pool
                .links
                .values()
                .filter(|l| matches!(l, Link::Connected | Link::Connecting(_)))
                .count();
            let deficit = if self.options.extended {
                self.options.min_relays.saturating_sub(live)
            } else {
                0
            };
            let mut candidates: Vec<(f64, String)> = pool
                .extended
                .iter()
                .filter(|u| !pool.links.contains_key(*u))
                .map(|u| (pool.health.get(u).map_or(0.5, |h| h.score(wall)), u.clone()))
                .filter(|(score, _)| *score >= 0.0)
                .collect();
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
            (due, deficit, candidates)
        };
        // Reconcile with nostr-sdk in case a status change was missed.
        let connecting: Vec<String> = self
            .lock()
            .links
            .iter()
            .filter(|(_, l)| matches!(l, Link::Connecting(since) if since.elapsed() > Duration::from_secs(2)))
            .map(|(u, _)| u.clone())
            .collect();
        for url in connecting {
            if let Ok(relay) = self.client.relay(url.as_str()).await
                && relay.status() == RelayStatus::Connected
            {
                self.on_status(url, RelayStatus::Connected).await;
            }
        }
        for url in due {
            self.lock().links.insert(url.clone(), Link::Connecting(now));
            let client = self.client.clone();
            tokio::spawn(async move {
                let _ = client.connect_relay(url.as_str()).await;
            });
        }
        for (_, url) in candidates.into_iter().take(deficit) {
            tracing::info!(relay = %url, "adding a relay from the extended list");
            self.add(&url).await;
        }
    }
}

/// Starts the driver: connects to the relays and forwards verified events to `incoming`.
pub async fn spawn(
    keys: Keys,
    options: PoolOptions,
    store: Option<Store>,
    incoming: mpsc::UnboundedSender<DriverEvent>,
) -> SignalHandle {
    let counters = Arc::new(SignalCounters::default());
    let client = Client::builder()
        .monitor(Monitor::new(1024))
        .signer(keys.clone())
        .opts(ClientOptions::new().automatic_authentication(false))
        .websocket_transport(VerifyingTransport {
            counters: counters.clone(),
        })
        .build();
    let mut state = PoolState::default();
    if let Some(store) = &store {
        for h in store.relay_records::<RelayHealth>() {
            state.health.insert(h.url.clone(), h);
        }
        if options.extended {
            state.extended = store.relay_list();
        }
    }
    let pool = Arc::new(Mutex::new(state));
    let (tx, rx) = mpsc::unbounded_channel();
    // Listen before connecting anything: a status change sent earlier would be lost.
    let notifications = client.notifications();
    let statuses = client.monitor().map(|m| m.subscribe());
    let handle = SignalHandle {
        commands: tx,
        client: client.clone(),
        pool: pool.clone(),
        store: store.clone(),
        counters: counters.clone(),
    };
    let driver = Driver {
        our_key: keys.public_key(),
        client,
        keys,
        pool,
        counters,
        incoming,
        topics: Vec::new(),
        sub_id: SubscriptionId::new(SUBSCRIPTION),
        options,
        store: store.clone(),
    };
    // Best first: relays that served well last time are tried before the others.
    let mut relays: Vec<String> = driver
        .options
        .relays
        .iter()
        .filter_map(|u| normalize(u))
        .collect();
    relays.dedup();
    {
        let pool = driver.lock();
        let now = now_ms();
        relays.sort_by(|a, b| {
            let score = |u: &String| pool.health.get(u).map_or(0.5, |h| h.score(now));
            score(b).total_cmp(&score(a))
        });
    }
    for url in &relays {
        driver.add(url).await;
    }
    if driver.options.extended {
        tokio::spawn(refresh_relay_list(
            handle.clone(),
            driver.options.list_url.clone(),
            driver.options.list_refresh,
        ));
    }
    if let Some(statuses) = statuses {
        tokio::spawn(run(driver, rx, notifications, statuses, store));
    }
    handle
}

async fn refresh_relay_list(handle: SignalHandle, url: String, every: Duration) {
    loop {
        match fetch_relay_list(&url).await {
            Ok(list) => {
                tracing::info!(relays = list.len(), "extended relay list refreshed");
                if let Some(store) = &handle.store
                    && let Err(e) = store.save_relay_list(&list)
                {
                    tracing::warn!(error = %e, "caching the relay list failed");
                }
                handle
                    .pool
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extended = list;
            }
            Err(e) => {
                handle
                    .counters
                    .relay_list_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %url, error = %e, "relay list refresh failed; keeping the cached list");
            }
        }
        tokio::time::sleep(every).await;
    }
}

async fn run(
    mut driver: Driver,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut notifications: tokio::sync::broadcast::Receiver<RelayPoolNotification>,
    mut statuses: tokio::sync::broadcast::Receiver<MonitorNotification>,
    store: Option<Store>,
) {
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    let mut last_persist = Instant::now();
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                None => break,
                Some(Command::Publish { topic, content, relay }) => driver.publish(&topic, &content, relay),
                Some(Command::Subscribe(topics)) => driver.subscribe_all(topics).await,
            },
            note = notifications.recv() => match note {
                Ok(RelayPoolNotification::Event { relay_url, event, .. }) => {
                    let topic = event.tags.find(TagKind::x()).and_then(|t| t.content()).map(str::to_owned);
                    match topic {
                        Some(topic) if driver.topics.contains(&topic) => {
                            let _ = driver.incoming.send(DriverEvent::Event(Incoming { relay: relay_url.to_string(), topic, content: event.content.clone(), pubkey: event.pubkey.to_bytes() }));
                        }
                        _ => { driver.counters.unknown_topic.fetch_add(1, Ordering::Relaxed); }
                    }
                }
                Ok(RelayPoolNotification::Message { relay_url, message }) => {
                    if let Some(url) = normalize(relay_url.as_str()) {
                        driver.on_relay_message(&url, &message);
                    }
                }
                Ok(RelayPoolNotification::Shutdown) => break,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::warn!(dropped = n, "relay notifications lagged"),
                Err(_) => break,
            },
            status = statuses.recv() => {
                if let Ok(MonitorNotification::StatusChanged { relay_url, status }) = status
                    && let Some(url) = normalize(relay_url.as_str())
                {
                    driver.on_status(url, status).await;
                }
            }
            _ = ticker.tick() => {
                driver.tick().await;
                if last_persist.elapsed() >= PERSIST_EVERY {
                    persist(&driver.pool, store.as_ref());
                    last_persist = Instant::now();
                }
            }
        }
    }
}
