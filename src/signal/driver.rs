//! The relay driver: runs the relay pool over nostr-sdk.
//!
//! Every relay is connected and used independently. What to do — which relays each room
//! uses, what each relay is subscribed to, reconnect when, publish where, retire whom, release
//! whom, top up from the extended list — is decided by the sans-IO
//! [`super::pool::RelayPool`] (with [`super::health`]); this file only talks to nostr-sdk and
//! reports back. Every incoming event's signature is checked before nostr-sdk sees it, so bad
//! ones are counted. Protocol decisions stay in [`super::state`] and the node.
//!
//! The driver and every relay connection run on their own thread with its own runtime: a
//! relay's flood (reading, parsing, checking signatures) then costs that thread, never the
//! runtime that carries peers' data channels.

use std::collections::HashSet;
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

use super::AppTopic;
use super::health::{Decision, RelayHealth};
use super::pool::{Added, PoolPolicy, RelayNote, RelayPool, RulesApplied, SubChange};
pub use super::pool::{RelayPhase, RelayState, normalize};
use super::rules::{INFO_MAX_BYTES, INFO_TIMEOUT, RelayRules, info_url, is_our_sub};
use super::verified::VerifiedIds;
use crate::store::Store;
use crate::wire::topic::topic_kind;

/// How often health records are written to the store.
const PERSIST_EVERY: Duration = Duration::from_secs(10);

/// What the driver reports to the node.
#[derive(Debug, Clone)]
pub enum DriverEvent {
    /// A verified signaling event.
    Event(Incoming),
    /// A relay (re)connected and has our subscription: announces can reach it now.
    RelayUp {
        /// The relay.
        relay: String,
        /// The apps whose rooms it carries; None: every room (a shared relay).
        apps: Option<Vec<String>>,
    },
}

pub use super::Incoming;

pub use super::RelayCommand as Command;

/// Counters of the driver.
#[derive(Debug, Default)]
pub struct SignalCounters {
    /// Events whose id or signature did not verify.
    pub bad_signature: AtomicU64,
    /// Events without a topic we listen on.
    pub unknown_topic: AtomicU64,
    /// Events beyond a connection's budget for their topic, dropped unverified.
    pub rate_limited: AtomicU64,
    /// Publishes no relay accepted.
    pub publish_failed: AtomicU64,
    /// Events not sent to some relay: longer than its `max_message_length`.
    pub too_large: AtomicU64,
    /// Relays retired for misbehaving.
    pub relays_retired: AtomicU64,
    /// Failed refreshes of the extended relay list.
    pub relay_list_failed: AtomicU64,
}

impl SignalCounters {
    /// The counters under their drop names, as `status` shows them.
    pub fn snapshot(&self) -> [(crate::drops::DropReason, u64); 7] {
        use crate::drops::DropReason as D;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            (D::EventBadSignature, get(&self.bad_signature)),
            (D::EventUnknownTopic, get(&self.unknown_topic)),
            (D::EventRateLimited, get(&self.rate_limited)),
            (D::PublishFailed, get(&self.publish_failed)),
            (D::EventTooLarge, get(&self.too_large)),
            (D::RelayRetired, get(&self.relays_retired)),
            (D::RelayListFailed, get(&self.relay_list_failed)),
        ]
    }
}

/// Options of the relay pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Relays every room uses, connected at start.
    pub relays: Vec<String>,
    /// How each app's relays are picked (no relay configured); None: no per-app relays.
    pub app_relays: Option<super::defaults::AppRelays>,
    /// Healthy relays wanted before the extended list is used.
    pub min_relays: usize,
    /// Whether the extended list is used and refreshed.
    pub extended: bool,
    /// Where the extended list comes from.
    pub list_url: String,
    /// Refresh period of the extended list.
    pub list_refresh: Duration,
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
    /// Shared by every relay's connection: the copies other relays deliver cost a hash.
    verified: Arc<Mutex<VerifiedIds>>,
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
            let (sink, stream) = match mode {
                ConnectionMode::Direct => super::relay_socket::connect(url, timeout).await?,
                _ => {
                    DefaultWebsocketTransport
                        .connect(url, mode, timeout)
                        .await?
                }
            };
            let counters = self.counters.clone();
            let verified = self.verified.clone();
            let mut budget = super::budget::EventBudget::default();
            let stream = stream.filter(move |msg| {
                let keep = match msg {
                    // Budgeted on a scan for the topic, before any parse: a flood costs a
                    // substring search per event beyond the budget.
                    Ok(Message::Text(text))
                        if super::budget::looks_like_event(text)
                            && !budget.admit(
                                super::budget::scan_topic(text).unwrap_or(""),
                                std::time::Instant::now(),
                            ) =>
                    {
                        counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                    Ok(Message::Text(text)) => match RelayMessage::from_json(text) {
                        Ok(RelayMessage::Event { event, .. }) => {
                            let ok = verified
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .check(&event)
                                .is_good();
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
    pool: Arc<Mutex<RelayPool>>,
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
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .states(now_ms())
    }

    /// Saves health records and closes every relay connection.
    pub async fn shutdown(&self) {
        persist(&self.pool, self.store.as_ref());
        self.client.shutdown().await;
    }
}

fn persist(pool: &Mutex<RelayPool>, store: Option<&Store>) {
    let Some(store) = store else { return };
    let pool = pool.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = store.save_relay_records(pool.records()) {
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

/// Reads a relay's NIP-11 document (`Accept: application/nostr+json` on its http(s) URL),
/// within [`INFO_TIMEOUT`] and [`INFO_MAX_BYTES`]; a relay without one has no known limits.
pub async fn fetch_rules(url: &str) -> RelayRules {
    let wall = now_ms();
    match fetch_info(url).await {
        Ok(body) => {
            RelayRules::parse(&body, wall).unwrap_or_else(|e| RelayRules::unreadable(&e, wall))
        }
        Err(e) => RelayRules::unreadable(&e.to_string(), wall),
    }
}

async fn fetch_info(url: &str) -> anyhow::Result<Vec<u8>> {
    let Some(http) = info_url(url) else {
        anyhow::bail!("no http(s) address for {url}");
    };
    let client = reqwest::Client::builder().timeout(INFO_TIMEOUT).build()?;
    let mut response = client
        .get(http)
        .header(reqwest::header::ACCEPT, "application/nostr+json")
        .send()
        .await?
        .error_for_status()?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > INFO_MAX_BYTES {
            anyhow::bail!("relay information over {INFO_MAX_BYTES} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
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
    pool: Arc<Mutex<RelayPool>>,
    counters: Arc<SignalCounters>,
    incoming: mpsc::UnboundedSender<DriverEvent>,
    /// NIP-11 rules read, back to the run loop.
    rules: mpsc::UnboundedSender<(String, RelayRules)>,
    store: Option<Store>,
}

impl Driver {
    fn lock(&self) -> std::sync::MutexGuard<'_, RelayPool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn add(&self, url: &str) {
        let opts = RelayOptions::new().reconnect(false);
        if let Err(e) = self.client.pool().add_relay(url, opts).await {
            tracing::warn!(relay = %url, error = %e, "invalid relay url");
            return;
        }
        if self.lock().add(url, Instant::now(), now_ms()) == Added::Cooldown {
            tracing::info!(relay = %url, "relay is on its cooldown; not connecting");
            return;
        }
        if self.lock().wants_rules(url, now_ms()) {
            let (tx, url) = (self.rules.clone(), url.to_owned());
            tokio::spawn(async move {
                let rules = fetch_rules(&url).await;
                let _ = tx.send((url, rules));
            });
        }
        self.connect(url);
    }

    fn connect(&self, url: &str) {
        let client = self.client.clone();
        let url = url.to_owned();
        tokio::spawn(async move {
            let _ = client.connect_relay(url.as_str()).await;
        });
    }

    /// Disconnects a relay the pool has retired.
    fn drop_retired(&self, url: &str) {
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

    fn publish(&self, app: &str, topic: &str, content: &str, relay: Option<String>) {
        let Some(event) = build_event(&self.keys, topic, content) else {
            return;
        };
        // `["EVENT",<event>]`: what a relay's max_message_length measures.
        let len = event.as_json().len() + 10;
        let (plan, expect_echo) = {
            let mut pool = self.lock();
            // Only events on our own topics come back through our subscription.
            let echo = pool.listens(topic);
            (
                pool.publish_plan(app, relay.as_deref(), len, now_ms()),
                echo,
            )
        };
        if !plan.too_large.is_empty() {
            self.counters.too_large.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(relays = ?plan.too_large, len, "event over the relays' max_message_length");
        }
        let targets = plan.targets;
        if targets.is_empty() {
            self.counters.publish_failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let client = self.client.clone();
        let pool = self.pool.clone();
        let counters = self.counters.clone();
        let store = self.store.clone();
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
            let accepted: Vec<String> = out.success.iter().map(|u| u.to_string()).collect();
            let failed: Vec<(String, String)> = out
                .failed
                .iter()
                .map(|(u, why)| (u.to_string(), why.clone()))
                .collect();
            let retire = pool
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .on_publish_result(
                    &event.id.to_hex(),
                    &accepted,
                    &failed,
                    expect_echo,
                    now_ms(),
                );
            if !retire.is_empty() {
                persist(&pool, store.as_ref());
            }
            for url in retire {
                counters.relays_retired.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(relay = %url, "relay refused our event; retired for this session");
                let _ = client.disconnect_relay(url.as_str()).await;
            }
        });
    }

    async fn subscribe_all(&mut self, topics: Vec<AppTopic>) {
        let routing = self.lock().set_topics(topics, Instant::now());
        for url in routing.add {
            self.add(&url).await;
        }
        for (url, change) in routing.subscribe {
            self.subscribe_relay(&url, &change).await;
        }
    }

    /// Places the pool's subscriptions on one relay: each REQ replaces the one of its id.
    async fn subscribe_relay(&self, url: &str, change: &SubChange) {
        if !change.close.is_empty()
            && let Ok(relay) = self.client.relay(url).await
        {
            for id in &change.close {
                let _ = relay.unsubscribe(&SubscriptionId::new(id)).await;
            }
        }
        for (id, topics) in &change.reqs {
            let _ = self
                .client
                .pool()
                .subscribe_with_id_to(
                    [url],
                    SubscriptionId::new(id),
                    filter_for(topics),
                    Default::default(),
                )
                .await;
        }
    }

    /// A relay's NIP-11 rules were read.
    async fn on_rules(&mut self, url: String, rules: RelayRules) {
        if let Some(e) = &rules.fetch_error {
            tracing::debug!(relay = %url, error = %e, "no relay information document");
        }
        let applied = self.lock().on_rules(&url, rules);
        match applied {
            Some(RulesApplied::Up(up)) => {
                tracing::info!(relay = %url, "relay connected");
                self.subscribe_relay(&url, &up.subs).await;
                let _ = self.incoming.send(DriverEvent::RelayUp {
                    relay: url,
                    apps: up.apps,
                });
            }
            Some(RulesApplied::Resubscribe(change)) => self.subscribe_relay(&url, &change).await,
            None => {}
        }
    }

    async fn on_status(&mut self, url: String, status: RelayStatus) {
        match status {
            RelayStatus::Connected => {
                let Some(up) = self.lock().on_connected(&url, Instant::now()) else {
                    return;
                };
                tracing::info!(relay = %url, "relay connected");
                self.subscribe_relay(&url, &up.subs).await;
                let _ = self.incoming.send(DriverEvent::RelayUp {
                    relay: url,
                    apps: up.apps,
                });
            }
            RelayStatus::Disconnected | RelayStatus::Terminated | RelayStatus::Banned => {
                let delay =
                    self.lock()
                        .on_disconnected(&url, Instant::now(), now_ms(), rand::random());
                if let Some(delay) = delay {
                    tracing::info!(relay = %url, retry_in_ms = delay.as_millis() as u64, "relay down");
                }
            }
            _ => {}
        }
    }

    fn on_relay_message(&self, url: &str, message: &RelayMessage<'_>) {
        let id;
        let note = match message {
            RelayMessage::Notice(m) => RelayNote::Notice(m),
            RelayMessage::Closed {
                subscription_id,
                message,
            } if is_our_sub(subscription_id.as_str()) => RelayNote::Closed(message),
            RelayMessage::Event { event, .. } => {
                id = event.id.to_hex();
                RelayNote::Event {
                    id: &id,
                    ours: event.pubkey == self.our_key,
                }
            }
            _ => return,
        };
        if self.lock().on_note(url, note, now_ms()) == Decision::Retire {
            self.drop_retired(url);
        }
    }

    /// Reconnects due relays, checks slow connects, tops the pool up from the extended list,
    /// releases relays no room needs.
    async fn tick(&mut self) {
        let work = self.lock().tick(Instant::now(), now_ms());
        for url in work.release {
            tracing::info!(relay = %url, "no room uses this relay any more; disconnecting");
            let _ = self.client.remove_relay(url.as_str()).await;
        }
        // Reconcile with nostr-sdk in case a status change was missed.
        for url in work.check {
            if let Ok(relay) = self.client.relay(url.as_str()).await
                && relay.status() == RelayStatus::Connected
            {
                self.on_status(url, RelayStatus::Connected).await;
            }
        }
        for url in work.reconnect {
            self.connect(&url);
        }
        for url in work.add {
            tracing::info!(relay = %url, "adding a relay from the extended list");
            self.add(&url).await;
        }
    }
}

/// Starts the driver on its own thread: connects to the relays and forwards verified events to
/// `incoming`. The thread ends after [`SignalHandle::shutdown`] or when every handle is gone.
pub async fn spawn(
    keys: Keys,
    options: PoolOptions,
    store: Option<Store>,
    incoming: mpsc::UnboundedSender<DriverEvent>,
) -> SignalHandle {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("meshrtc-signal".into())
        .spawn(move || {
            crate::background::lower_priority();
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "signaling runtime failed to start");
                    return;
                }
            };
            runtime.block_on(async move {
                let (handle, running) = start(keys, options, store, incoming).await;
                let _ = ready_tx.send(handle);
                running.await;
            });
        });
    if let Err(e) = thread {
        panic!("the signaling thread could not start: {e}");
    }
    match ready_rx.await {
        Ok(handle) => handle,
        Err(_) => panic!("the signaling thread stopped while starting"),
    }
}

/// Builds the client and the driver on the current (signaling) runtime; the future returned
/// runs the driver until shutdown.
async fn start(
    keys: Keys,
    options: PoolOptions,
    store: Option<Store>,
    incoming: mpsc::UnboundedSender<DriverEvent>,
) -> (SignalHandle, impl std::future::Future<Output = ()>) {
    let counters = Arc::new(SignalCounters::default());
    let client = Client::builder()
        .monitor(Monitor::new(1024))
        .signer(keys.clone())
        // NIP-42: a relay that asks is answered with the node's key (the one that signs its
        // events), and the refused REQ or EVENT is sent again.
        .opts(ClientOptions::new().automatic_authentication(true))
        .websocket_transport(VerifyingTransport {
            counters: counters.clone(),
            verified: Arc::default(),
        })
        .build();
    let (records, extended) = match &store {
        Some(store) => (
            store.relay_records::<RelayHealth>(),
            if options.extended {
                store.relay_list()
            } else {
                Vec::new()
            },
        ),
        None => (Vec::new(), Vec::new()),
    };
    let policy = PoolPolicy {
        min_relays: options.min_relays,
        extended: options.extended,
        app_relays: options.app_relays,
    };
    let state = RelayPool::new(policy, records, extended);
    let pool = Arc::new(Mutex::new(state));
    let (tx, rx) = mpsc::unbounded_channel();
    let (rules_tx, rules_rx) = mpsc::unbounded_channel();
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
        rules: rules_tx,
        store: store.clone(),
    };
    // Best first: relays that served well last time are tried before the others.
    let relays = driver.lock().startup_order(&options.relays, now_ms());
    for url in &relays {
        driver.add(url).await;
    }
    if options.extended {
        tokio::spawn(refresh_relay_list(
            handle.clone(),
            options.list_url.clone(),
            options.list_refresh,
        ));
    }
    let running = async move {
        if let Some(statuses) = statuses {
            run(driver, rx, rules_rx, notifications, statuses, store).await;
        }
    };
    (handle, running)
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
                    .set_extended(list);
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
    mut rules: mpsc::UnboundedReceiver<(String, RelayRules)>,
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
                Some(Command::Publish { app, topic, content, relay }) => driver.publish(&app, &topic, &content, relay),
                Some(Command::Subscribe(topics)) => driver.subscribe_all(topics).await,
            },
            Some((url, r)) = rules.recv() => driver.on_rules(url, r).await,
            note = notifications.recv() => match note {
                Ok(RelayPoolNotification::Event { relay_url, event, .. }) => {
                    let topic = event.tags.find(TagKind::x()).and_then(|t| t.content()).map(str::to_owned);
                    let relay = normalize(relay_url.as_str());
                    match (topic, relay) {
                        (Some(topic), Some(relay)) if driver.lock().carries(&relay, &topic) => {
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
