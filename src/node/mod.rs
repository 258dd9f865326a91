//! The node: the driver that gives the sans-IO [`core`] its inputs and carries out its effects.
//!
//! Why two halves: every decision (rooms, dials, links, the watchdog, the overlay) lives in
//! [`core::Core`], which the deterministic harness drives without sockets; this half owns what
//! cannot be pure — peer connections, link writers, session queues, the relay driver, the
//! clock — and only moves bytes. One mutex holds both; it is never held across an `.await`,
//! and effects run under it (they never block: frames are `try_send`, slow work is spawned), so
//! a session sees events in the order the core decided them.
//!
//! Files: `api` (the public calls: sessions, join, send, ping, peers, status), `effects` (running
//! effects and feeding their results back), `hooks` (for tests), `types` (public types),
//! `cells` (a cells room's census), `session` (event queues), `identity`.

mod api;
pub mod core;
pub use core::cells;
mod effects;
#[cfg(test)]
mod harness;
mod history;
mod history_io;
mod hooks;
pub mod identity;
mod media;
pub mod session;
pub mod turn;
mod types;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::signal::driver::{self, DriverEvent, SignalHandle};
use crate::transport::turn_tcp::{TurnTcpShim, TurnTls};
use crate::transport::{
    Channel, ConnId, Connection, SendWindow, Transport, TransportConfig, TransportEvent,
};
use crate::wire::e2e::E2eKey;
pub use core::media::{KEYFRAME_GAP, SurfacedTrack, TrackRequest};
pub use core::requests::Outcome;
use core::{Core, CoreConfig, Input};
pub use core::{Observer, RequestSpec};
use identity::Identity;
use session::{SessionId, SessionQueue};
pub use types::{JoinOptions, NodeError, PeerInfo, RoomInfo, Since, StatusInfo};

/// The I/O handles the core names by id.
#[derive(Default)]
struct Io {
    /// Peer connections, from the offer or answer until closed.
    pcs: HashMap<ConnId, Connection>,
    /// Data channels that opened (with their windows), until the core makes them links (or
    /// refuses them).
    channels: HashMap<ConnId, (Channel, Arc<SendWindow>)>,
    /// Link writers.
    writers: HashMap<ConnId, LinkWriter>,
    /// Session event queues.
    queues: HashMap<SessionId, Arc<SessionQueue>>,
    /// Apps waiting for a pong.
    pings: HashMap<u64, oneshot::Sender<Duration>>,
    /// Local and remote tracks.
    media: media::MediaIo,
    /// Kept room messages (durable channels), on the store's own thread.
    history: Option<history_io::HistoryIo>,
}

/// A link's writer task, as the node reaches it.
struct LinkWriter {
    /// The queue its frames wait in.
    frames: mpsc::Sender<Bytes>,
    /// Liveness frames, written before anything waiting in `frames`.
    first: mpsc::Sender<Bytes>,
    /// The window it paces itself to.
    window: Arc<SendWindow>,
    /// The data channel it writes to (read for the link's health).
    channel: crate::transport::Channel,
}

/// What the node's mutex guards.
/// What a password room's end-to-end key derives from (the key cache's key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct E2eKeyId {
    app: String,
    room: String,
    password: String,
}

struct Inner {
    core: Core,
    io: Io,
}

/// The node: one peer in every room it holds.
pub struct Node {
    peer_id: String,
    config: Config,
    inner: Mutex<Inner>,
    transport: Transport,
    signal: SignalHandle,
    started: Instant,
    me: Weak<Node>,
    wake: tokio::sync::Notify,
    e2e_keys: Mutex<HashMap<E2eKeyId, E2eKey>>,
    /// Raw frames received, recorded only once a test asks for it (see `hooks`).
    frame_tap: hooks::FrameTap,
    /// Loopback stand-ins for TURN servers reached over TCP (alive as long as the node).
    _turn_shims: Vec<TurnTcpShim>,
    /// What each TURN server last said (see `turn`).
    turn: std::sync::Mutex<Vec<turn::TurnServerStatus>>,
    /// The node's runtime, for results that threads outside it hand back.
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.peer_id)
            .finish()
    }
}

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The core's part of the daemon's configuration.
pub fn core_config(config: &Config) -> CoreConfig {
    CoreConfig {
        limits: crate::room::RoomLimits {
            max_message: config.max_message_size,
            handshake_timeout: Duration::from_millis(config.handshake_timeout_ms),
            reassembly_timeout: Duration::from_millis(config.reassembly_timeout_ms),
        },
        max_pending_dials: config.max_pending_dials,
        ping_after: Duration::from_millis(config.ping_after_ms),
        dead_after: Duration::from_millis(config.dead_after_ms),
        history_budget: config.history_budget_mib.saturating_mul(1 << 20),
        reassembly_budget: usize::try_from(config.reassembly_budget_mib)
            .unwrap_or(usize::MAX)
            .saturating_mul(1 << 20),
        app_limits: core::AppLimits {
            sessions: config.max_app_sessions,
            rooms: config.max_app_rooms,
            tracks: config.max_app_tracks,
            keep_rules: config.max_app_keep_rules,
        },
        history_node_budget: config.history_node_budget_mib.saturating_mul(1 << 20),
        relay_fallback: config.ice_transport_policy == crate::transport::ice::IcePolicy::All
            && config
                .effective_ice_servers()
                .is_ok_and(|servers| crate::transport::ice::has_turn(&servers)),
    }
}

impl Node {
    /// Starts the node: relay driver, transport and the event loop.
    pub async fn start(
        identity: Identity,
        config: Config,
        store: Option<crate::store::Store>,
    ) -> Arc<Node> {
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        let (transport_tx, transport_rx) = mpsc::unbounded_channel();
        let options = driver::PoolOptions {
            relays: config.effective_relays(),
            app_relays: config.app_relays(),
            min_relays: config.min_relays,
            extended: config.use_extended_relays(),
            list_url: config.relay_list_url.clone(),
            list_refresh: Duration::from_secs(config.relay_list_refresh_secs.max(60)),
        };
        let history = match store
            .as_ref()
            .map(crate::store::history::HistoryStore::open)
        {
            Some(Ok(h)) => Some(h),
            Some(Err(e)) => {
                tracing::error!(error = %e, "history store unavailable: kept channels live in memory");
                crate::store::history::HistoryStore::temporary().ok()
            }
            None => crate::store::history::HistoryStore::temporary().ok(),
        };
        let signal = driver::spawn(identity.keys.clone(), options, store, incoming_tx).await;
        let mut ice = config.ice_settings(&identity.peer_id).unwrap_or_else(|e| {
            tracing::error!(error = %e, "ICE servers ignored");
            Default::default()
        });
        let mut turn_shims = Vec::new();
        for url in ice.tcp_turn_servers() {
            let tls = match url.scheme {
                crate::transport::ice::Scheme::Turns => {
                    match TurnTls::new(&url.host, config.turn_tls_ca.as_deref()) {
                        Ok(t) => Some(t),
                        Err(e) => {
                            tracing::error!(%url, error = %e, "TURN over TLS unavailable");
                            continue;
                        }
                    }
                }
                _ => None,
            };
            match TurnTcpShim::start(url.authority(), tls).await {
                Ok(shim) => {
                    ice.tcp_shims.insert(url.to_string(), shim.local_addr());
                    turn_shims.push(shim);
                }
                Err(e) => tracing::error!(%url, error = %e, "TURN over TCP unavailable"),
            }
        }
        let transport = Transport::new(
            TransportConfig {
                ice_addr: config.ice_addr,
                ice,
                resolve_mdns: config.resolve_mdns(),
                media_repair: config.media_repair,
            },
            transport_tx,
        );
        let now = Instant::now();
        let mut core = Core::new(
            identity.clone(),
            core_config(&config),
            now,
            wall_us(),
            rand::random(),
        );
        if let Some(h) = &history {
            core.seed_cursor(h.last_cursor());
        }
        let runtime = tokio::runtime::Handle::current();
        let node = Arc::new_cyclic(|me: &Weak<Node>| Node {
            peer_id: identity.peer_id.clone(),
            config,
            inner: Mutex::new(Inner {
                core,
                io: Io {
                    history: history.and_then(|store| {
                        let (me, runtime) = (me.clone(), runtime.clone());
                        let report = move |report| {
                            let me = me.clone();
                            runtime.spawn(async move {
                                if let Some(node) = me.upgrade() {
                                    node.feed(|core, now| core.handle(Input::Store(report), now));
                                }
                            });
                        };
                        history_io::HistoryIo::spawn(store, report)
                            .inspect_err(
                                |e| tracing::error!(error = %e, "history: no store thread"),
                            )
                            .ok()
                    }),
                    ..Io::default()
                },
            }),
            transport,
            signal,
            started: now,
            me: me.clone(),
            wake: tokio::sync::Notify::new(),
            e2e_keys: Mutex::new(HashMap::new()),
            frame_tap: hooks::FrameTap::default(),
            _turn_shims: turn_shims,
            runtime,
            turn: Default::default(),
        });
        turn::spawn(&node);
        tokio::spawn(run_loop(Arc::downgrade(&node), incoming_rx, transport_rx));
        node
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn turn_lock(&self) -> MutexGuard<'_, Vec<turn::TurnServerStatus>> {
        self.turn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Feeds the core one input and runs the effects it decided, under one lock.
    fn feed<R>(&self, input: impl FnOnce(&mut Core, Instant) -> R) -> R {
        let mut inner = self.lock();
        let result = input(&mut inner.core, Instant::now());
        self.run_effects(&mut inner);
        result
    }

    /// Says goodbye to every peer, closes links and relays.
    pub async fn shutdown(&self) {
        let (flushed, done) = oneshot::channel();
        let (pcs, writers, channels) = {
            let mut inner = self.lock();
            inner.core.shutdown();
            self.run_effects(&mut inner);
            // After every message kept so far (the store's thread works in order).
            if let Some(h) = &inner.io.history {
                h.send(history_io::HistoryJob::Flush { reply: flushed });
            }
            let pcs: Vec<Connection> = inner.io.pcs.drain().map(|(_, pc)| pc).collect();
            let (writers, channels): (Vec<mpsc::Sender<Bytes>>, Vec<crate::transport::Channel>) =
                inner
                    .io
                    .writers
                    .drain()
                    .map(|(_, w)| (w.frames, w.channel))
                    .unzip();
            (pcs, writers, channels)
        };
        // The goodbyes must be on the wire before the connections close: wait (up to 0.6 s) until
        // every link's writer has taken its queue and SCTP has had every byte acknowledged (a
        // close drops what it still holds), then as long as Trystero waits after @_leave before
        // detaching.
        let drained = async {
            while writers.iter().any(|w| w.capacity() < w.max_capacity()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            for c in &channels {
                while c.outstanding_bytes().await.is_ok_and(|n| n > 0) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(600), drained).await;
        drop(writers);
        tokio::time::sleep(Duration::from_millis(120)).await;
        let closes = pcs.into_iter().map(|pc| async move {
            let _ = tokio::time::timeout(Duration::from_millis(500), pc.close()).await;
        });
        let _ = tokio::time::timeout(Duration::from_secs(2), done).await;
        futures::future::join_all(closes).await;
        let _ = tokio::time::timeout(Duration::from_millis(500), self.signal.shutdown()).await;
    }

    fn on_transport(&self, ev: TransportEvent) {
        match ev {
            TransportEvent::Candidate(id, json) => self.feed(|core, now| {
                core.handle(
                    Input::LocalCandidate {
                        conn: id,
                        json: &json,
                    },
                    now,
                )
            }),
            TransportEvent::Open(id, channel, window) => {
                let mut inner = self.lock();
                inner.io.channels.insert(id, (channel, window));
                inner.core.handle(Input::ChannelOpen(id), Instant::now());
                self.run_effects(&mut inner);
                // Not made a link (a duplicate, or already open): the channel is not needed.
                inner.io.channels.remove(&id);
            }
            // The message is dropped once handled, which gives its bytes back to its link's
            // inbound budget (`transport::INBOUND_LINK_BYTES`).
            TransportEvent::Message(id, message) => self.feed(|core, now| {
                if self.frame_tap.is_on()
                    && let Some(peer) = core.conn_peer(id)
                {
                    self.frame_tap.record(peer, message.bytes());
                }
                core.handle(
                    Input::Frame {
                        conn: id,
                        bytes: &message,
                    },
                    now,
                )
            }),
            TransportEvent::Closed(id) => {
                self.feed(|core, now| core.handle(Input::Closed(id), now))
            }
            // The driver tells the core itself once a track was added or removed; the engine's
            // own signal comes as well, and answering both renegotiates twice for one change,
            // which lost remote tracks in the media benchmark.
            TransportEvent::NegotiationNeeded(id) => {
                tracing::trace!(conn = %id, "engine asks for negotiation");
            }
            TransportEvent::Track(id, track) => self.on_remote_track(id, track),
            TransportEvent::GatheringComplete(_) => {}
        }
    }
}

async fn run_loop(
    node: Weak<Node>,
    mut incoming: mpsc::UnboundedReceiver<DriverEvent>,
    mut transport: mpsc::UnboundedReceiver<TransportEvent>,
) {
    let mut next = Instant::now();
    loop {
        let sleep = tokio::time::sleep_until(next.into());
        let Some(wake) = node.upgrade() else { break };
        tokio::select! {
            _ = wake.wake.notified() => {
                next = Instant::now();
            }
            msg = incoming.recv() => {
                let (Some(msg), Some(n)) = (msg, node.upgrade()) else { break };
                match msg {
                    DriverEvent::Event(ev) => {
                        n.feed(|core, now| core.handle(Input::Relay(ev), now));
                        // Signaling can wait a turn; peers' frames and API calls should not
                        // wait behind a relay's burst (up to the runtime's budget of events).
                        drop(n);
                        tokio::task::yield_now().await;
                    }
                    DriverEvent::RelayUp { apps, .. } => {
                        n.feed(|core, now| core.handle(
                            Input::RelayUp {
                                apps: apps.as_deref(),
                            },
                            now,
                        ));
                        n.wake.notify_one();
                    }
                }
            }
            ev = transport.recv() => {
                let (Some(ev), Some(n)) = (ev, node.upgrade()) else { break };
                n.on_transport(ev);
            }
            _ = sleep => {
                let Some(n) = node.upgrade() else { break };
                next = n.feed(|core, now| {
                    core.handle(Input::Tick, now);
                    core.next_tick()
                });
            }
        }
    }
}
