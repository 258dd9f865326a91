//! The relay driver: publishes and subscribes through nostr-sdk, checks every event's signature.
//!
//! Thin on purpose: all decisions live in [`super::state`] and the node.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_wsocket::Message;
use futures::StreamExt as _;
use nostr_sdk::pool::transport::error::TransportError;
use nostr_sdk::pool::transport::websocket::{
    DefaultWebsocketTransport, WebSocketSink, WebSocketStream, WebSocketTransport,
};
use nostr_sdk::pool::{ConnectionMode, RelayPoolNotification};
use nostr_sdk::util::BoxedFuture;
use nostr_sdk::{
    Alphabet, Client, ClientOptions, Event, EventBuilder, JsonUtil, Keys, Kind, RelayMessage,
    RelayOptions, RelayStatus, SingleLetterTag, SubscriptionId, Tag, TagKind, Timestamp, Url,
};
use tokio::sync::mpsc;

use crate::wire::topic::topic_kind;

/// Subscription id of the node's one subscription.
const SUBSCRIPTION: &str = "meshrtc";

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
}

/// Commands for the driver.
#[derive(Debug)]
pub enum Command {
    /// Sign and publish `content` on `topic`, to one relay or to all.
    Publish {
        /// Topic (`x` tag); the kind derives from it.
        topic: String,
        /// Content JSON.
        content: String,
        /// Only this relay, if given.
        relay: Option<String>,
    },
    /// Replace the subscription with these topics (empty: unsubscribe).
    Subscribe(Vec<String>),
}

/// Counters of the driver.
#[derive(Debug, Default)]
pub struct SignalCounters {
    /// Events whose id or signature did not verify.
    pub bad_signature: AtomicU64,
    /// Events without a topic we listen on.
    pub unknown_topic: AtomicU64,
    /// Publishes no relay accepted.
    pub publish_failed: AtomicU64,
}

/// A relay and its connection state.
#[derive(Debug, Clone)]
pub struct RelayState {
    /// URL.
    pub url: String,
    /// State name (connected, connecting, disconnected, ...).
    pub state: String,
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
    /// Counters shared with the driver.
    pub counters: Arc<SignalCounters>,
}

impl SignalHandle {
    /// Queues a command.
    pub fn send(&self, cmd: Command) {
        let _ = self.commands.send(cmd);
    }

    /// Relays and their states.
    pub async fn relays(&self) -> Vec<RelayState> {
        let mut out: Vec<RelayState> = self
            .client
            .pool()
            .all_relays()
            .await
            .into_iter()
            .map(|(url, relay)| RelayState {
                url: url.to_string(),
                state: status_name(relay.status()).to_owned(),
            })
            .collect();
        out.sort_by(|a, b| a.url.cmp(&b.url));
        out
    }

    /// Closes every relay connection.
    pub async fn shutdown(&self) {
        self.client.shutdown().await;
    }
}

fn status_name(s: RelayStatus) -> &'static str {
    match s {
        RelayStatus::Initialized => "initialized",
        RelayStatus::Pending => "pending",
        RelayStatus::Connecting => "connecting",
        RelayStatus::Connected => "connected",
        RelayStatus::Disconnected => "disconnected",
        RelayStatus::Terminated => "terminated",
        RelayStatus::Banned => "banned",
        RelayStatus::Sleeping => "sleeping",
    }
}

fn build_event(keys: &Keys, topic: &str, content: &str) -> Option<Event> {
    EventBuilder::new(Kind::Custom(topic_kind(topic)), content)
        .tag(Tag::custom(TagKind::x(), [topic.to_owned()]))
        .sign_with_keys(keys)
        .ok()
}

/// Starts the driver: connects to `relays` and forwards verified events to `incoming`.
pub async fn spawn(
    keys: Keys,
    relays: &[String],
    incoming: mpsc::UnboundedSender<DriverEvent>,
) -> SignalHandle {
    let counters = Arc::new(SignalCounters::default());
    let opts = ClientOptions::new().automatic_authentication(false);
    let client = Client::builder()
        .monitor(nostr_sdk::pool::monitor::Monitor::new(1024))
        .signer(keys.clone())
        .opts(opts)
        .websocket_transport(VerifyingTransport {
            counters: counters.clone(),
        })
        .build();
    for url in relays {
        let ro = RelayOptions::new()
            .retry_interval(Duration::from_secs(2))
            .adjust_retry_interval(true);
        if let Err(e) = client.pool().add_relay(url.as_str(), ro).await {
            tracing::warn!(relay = %url, error = %e, "invalid relay url");
        }
    }
    client.connect().await;
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = SignalHandle {
        commands: tx,
        client: client.clone(),
        counters: counters.clone(),
    };
    tokio::spawn(run(client, keys, rx, incoming, counters));
    handle
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

async fn run(
    client: Client,
    keys: Keys,
    mut commands: mpsc::UnboundedReceiver<Command>,
    incoming: mpsc::UnboundedSender<DriverEvent>,
    counters: Arc<SignalCounters>,
) {
    let mut notifications = client.notifications();
    let mut statuses = match client.monitor() {
        Some(m) => m.subscribe(),
        None => return,
    };
    let mut topics: Vec<String> = Vec::new();
    let sub_id = SubscriptionId::new(SUBSCRIPTION);
    // Safety net for subscriptions that failed on a relay for reasons other than its state.
    let mut resubscribe = tokio::time::interval(Duration::from_secs(2));
    let mut subscribed: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                None => break,
                Some(Command::Publish { topic, content, relay }) => {
                    let Some(event) = build_event(&keys, &topic, &content) else { continue };
                    tracing::debug!(topic = %topic, content = %content.chars().take(80).collect::<String>(), "publish");
                    let client = client.clone();
                    let counters = counters.clone();
                    tokio::spawn(async move {
                        let result = match relay {
                            Some(url) => client.send_event_to([url.as_str()], &event).await,
                            None => client.send_event(&event).await,
                        };
                        if !result.is_ok_and(|out| !out.success.is_empty()) {
                            counters.publish_failed.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                Some(Command::Subscribe(new_topics)) => {
                    topics = new_topics;
                    subscribed.clear();
                    if topics.is_empty() {
                        client.unsubscribe(&sub_id).await;
                    } else if let Ok(out) = client.subscribe_with_id(sub_id.clone(), filter_for(&topics), None).await {
                        subscribed.extend(out.success.iter().map(|u| u.to_string()));
                    }
                }
            },
            note = notifications.recv() => match note {
                Ok(RelayPoolNotification::Event { relay_url, event, .. }) => {
                    let topic = event.tags.find(TagKind::x()).and_then(|t| t.content()).map(str::to_owned);
                    match topic {
                        Some(topic) if topics.contains(&topic) => {
                            let _ = incoming.send(DriverEvent::Event(Incoming { relay: relay_url.to_string(), topic, content: event.content.clone() }));
                        }
                        _ => { counters.unknown_topic.fetch_add(1, Ordering::Relaxed); }
                    }
                }
                Ok(RelayPoolNotification::Shutdown) => break,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(dropped = n, "relay notifications lagged");
                }
                Err(_) => break,
            },
            status = statuses.recv() => {
                let Ok(nostr_sdk::pool::monitor::MonitorNotification::StatusChanged { relay_url, status }) = status else { continue };
                let name = relay_url.to_string();
                if status != RelayStatus::Connected {
                    subscribed.remove(&name);
                    continue;
                }
                tracing::info!(relay = %name, "relay connected");
                if !topics.is_empty()
                    && client.pool().subscribe_with_id_to([relay_url.clone()], sub_id.clone(), filter_for(&topics), Default::default()).await.is_ok()
                {
                    subscribed.insert(name.clone());
                }
                let _ = incoming.send(DriverEvent::RelayUp(name));
            }
            _ = resubscribe.tick() => {
                // A relay that was down when we subscribed never gets the REQ: send it once it is up.
                if topics.is_empty() { continue; }
                for (url, relay) in client.pool().all_relays().await {
                    let name = url.to_string();
                    if relay.status() == RelayStatus::Connected && !subscribed.contains(&name) {
                        if client.pool().subscribe_with_id_to([url.clone()], sub_id.clone(), filter_for(&topics), Default::default()).await.is_ok() {
                            subscribed.insert(name);
                        }
                    } else if relay.status() != RelayStatus::Connected {
                        subscribed.remove(&name);
                    }
                }
            }
        }
    }
}
