//! The node: rooms, local sessions, links and their fan-out.
//!
//! All state sits behind one mutex that is never held across an `.await`; protocol decisions
//! come from the sans-IO cores ([`crate::room`], [`crate::signal::state`], [`crate::mesh`]) and
//! are turned into [`Effect`]s that run after the lock is released.
//!
//! This file holds the state and the node's lifecycle (start, the event loop, shutdown); the
//! handlers are split by what they own: `rooms` (sessions join, leave, subscribe), `send`
//! (direct or overlay, plain or sealed, ping), `outputs` (a room's frames and events), `dials`
//! (signaling actions and the connection table), `links` (the link lifecycle and the tick),
//! `overlay` (cells rooms), `effects` (the awaited work), `info` (peers, relays, status), and
//! `hooks` (for tests). Handlers still call each other under the lock; turning them into one
//! sans-IO core with a work queue is the next step (issue 11).

pub mod cells;
mod dials;
mod effects;
mod hooks;
pub mod identity;
mod info;
mod links;
mod outputs;
mod overlay;
mod rooms;
mod send;
pub mod session;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::drops::DropReason;
use crate::mesh::{CellSize, MeshOutput, Overlay};
use crate::room::{LeaveReason, Output, Room, RoomEvent, RoomLimits, Security, SendError};
use crate::signal::RelayCommand;
use crate::signal::content::Signal;
use crate::signal::driver::{self, DriverEvent, Incoming, RelayState, SignalHandle};
use crate::signal::state::{Action, RoomSignal};
use crate::transport::{
    self, Channel, ConnId, Connection, Transport, TransportConfig, TransportEvent,
};
use crate::wire::Payload;
use crate::wire::cell::CellFrame;
use crate::wire::frame::OuterFrame;
use cells::{CellInfo, CellRoom};
use identity::Identity;
use session::{EventKind, SessionEvent, SessionId, SessionQueue};

/// Frames queued per link before app sends wait.
const LINK_QUEUE: usize = 1_024;
/// Remote candidates held until the remote description is set.
const MAX_HELD_CANDIDATES: usize = 64;
/// A link that carries no room is closed after this long.
const IDLE_LINK: Duration = Duration::from_secs(5);
/// How long a linked peer that re-announced has to prove it is still there.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A room on this node: its app id and room id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RoomKey {
    app: String,
    room: String,
}

impl RoomKey {
    fn new(app: &str, room: &str) -> Self {
        RoomKey {
            app: app.to_owned(),
            room: room.to_owned(),
        }
    }
}

/// How a session joins a room.
#[derive(Debug, Clone, Default)]
pub struct JoinOptions {
    /// Room password ("" for none).
    pub password: String,
    /// Channels the session receives; empty for all.
    pub channels: Vec<String>,
    /// Refuse peers that cannot encrypt end to end.
    pub require_e2e: bool,
    /// Use the cellular overlay, with this cell sizing.
    pub cells: Option<CellSize>,
}
/// A link: one peer within one app (an app's rooms share their links to a peer).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LinkKey {
    app: String,
    peer: String,
}

impl LinkKey {
    fn new(app: &str, peer: &str) -> Self {
        LinkKey {
            app: app.to_owned(),
            peer: peer.to_owned(),
        }
    }
}

/// Errors of node operations, with stable codes for the API.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Bad argument from the app.
    #[error("{0}")]
    InvalidArgument(String),
    /// The room handle or room is unknown.
    #[error("{0}")]
    NotFound(String),
    /// The room is held with another password.
    #[error("room is already joined on this node with a different password")]
    PasswordConflict,
    /// The message is too large or malformed.
    #[error("{0}")]
    Send(#[from] SendError),
    /// A peer did not answer in time.
    #[error("{0}")]
    Timeout(String),
    /// The link to a peer closed during the operation.
    #[error("link to {0} closed")]
    LinkClosed(String),
}

impl NodeError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            NodeError::InvalidArgument(_) => "invalid_argument",
            NodeError::NotFound(_) => "not_found",
            NodeError::PasswordConflict => "password_conflict",
            NodeError::Send(SendError::TooLarge { .. }) => "message_too_large",
            NodeError::Send(SendError::BadChannel(_)) => "invalid_channel",
            NodeError::Send(SendError::MetaTooLarge) => "meta_too_large",
            NodeError::Timeout(_) => "timeout",
            NodeError::LinkClosed(_) => "link_closed",
        }
    }
}

/// A peer of a room, for `Peers`.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Peer id.
    pub id: String,
    /// Last measured round trip (ms), 0 if none.
    pub rtt_ms: f64,
    /// Time since the link came up (ms).
    pub connected_ms: u64,
    /// How its payloads are protected.
    pub security: Security,
}

/// A room, for `Status`.
#[derive(Debug, Clone)]
pub struct RoomInfo {
    /// App id.
    pub app: String,
    /// Room id.
    pub room: String,
    /// Joined peers.
    pub peers: Vec<String>,
    /// Local sessions in the room.
    pub sessions: u32,
    /// Whether it has a password.
    pub password: bool,
    /// Peers whose payloads are sealed end to end.
    pub e2e_peers: Vec<String>,
    /// Whether peers without end-to-end encryption are refused.
    pub require_e2e: bool,
    /// Where this node sits, in a cells room.
    pub cells: Option<CellInfo>,
}

/// The node at a glance.
#[derive(Debug, Clone)]
pub struct StatusInfo {
    /// This node's peer id.
    pub peer_id: String,
    /// Relays and their states.
    pub relays: Vec<RelayState>,
    /// Rooms held.
    pub rooms: Vec<RoomInfo>,
    /// Named drop counters.
    pub drops: BTreeMap<DropReason, u64>,
    /// Uptime.
    pub uptime_ms: u64,
    /// Local sessions.
    pub sessions: u32,
    /// Live links.
    pub links: u32,
    /// Connection attempts in progress.
    pub pending_dials: u32,
}

struct SessionRoom {
    handle: u32,
    channels: HashSet<String>,
}

struct RoomEntry {
    room: Room,
    signal: RoomSignal,
    password: String,
    sessions: HashMap<SessionId, SessionRoom>,
    rtts: HashMap<String, f64>,
    ping_waiters: HashMap<String, VecDeque<Option<oneshot::Sender<Duration>>>>,
    cells: Option<CellRoom>,
}

struct SessionEntry {
    queue: Arc<SessionQueue>,
    rooms: HashMap<u32, RoomKey>,
    next_handle: u32,
}

/// One connection attempt or live connection.
struct Conn {
    app: String,
    peer: String,
    offer_id: String,
    /// Room whose signaling created it.
    room: String,
    pc: Option<Connection>,
    remote_set: bool,
    held_candidates: Vec<String>,
    open: bool,
}

struct Link {
    conn: ConnId,
    tx: mpsc::Sender<Bytes>,
    rooms: HashSet<String>,
    connected_at: Instant,
    last_rx: Instant,
    last_ping: Option<Instant>,
    probe_deadline: Option<Instant>,
    idle_since: Option<Instant>,
}

#[derive(Default)]
struct State {
    rooms: HashMap<RoomKey, RoomEntry>,
    topics: HashMap<String, RoomKey>,
    tokens: HashMap<String, RoomKey>,
    sessions: HashMap<SessionId, SessionEntry>,
    conns: HashMap<ConnId, Conn>,
    links: HashMap<LinkKey, Link>,
    drops: BTreeMap<DropReason, u64>,
}

/// Work to do once the state lock is released.
enum Effect {
    Relay(RelayCommand),
    Offer {
        conn: ConnId,
    },
    Answer {
        conn: ConnId,
        sdp: String,
    },
    ApplyAnswer {
        conn: ConnId,
        pc: Connection,
        sdp: String,
    },
    AddCandidate {
        pc: Connection,
        json: String,
    },
    Close {
        pc: Connection,
        delay: Duration,
    },
}

/// The node: one peer in every room it holds.
pub struct Node {
    identity: Identity,
    config: Config,
    state: Mutex<State>,
    transport: Transport,
    signal: SignalHandle,
    started: Instant,
    next_id: AtomicU64,
    me: Weak<Node>,
    wake: tokio::sync::Notify,
    e2e_keys: Mutex<HashMap<(String, String, String), crate::wire::e2e::E2eKey>>,
    /// Raw frames received, recorded only once a test asks for it (see `hooks`).
    frame_tap: hooks::FrameTap,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.identity.peer_id)
            .finish()
    }
}

fn count(state: &mut State, name: DropReason) {
    *state.drops.entry(name).or_insert(0) += 1;
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
        let relays = config.effective_relays();
        let options = driver::PoolOptions {
            relays,
            min_relays: config.min_relays,
            extended: config.use_extended_relays(),
            list_url: config.relay_list_url.clone(),
            list_refresh: Duration::from_secs(config.relay_list_refresh_secs.max(60)),
        };
        let signal = driver::spawn(identity.keys.clone(), options, store, incoming_tx).await;
        let transport = Transport::new(
            TransportConfig {
                ice_addr: config.ice_addr,
                ice_servers: config.effective_ice_servers(),
                resolve_mdns: config.resolve_mdns(),
            },
            transport_tx,
        );
        let node = Arc::new_cyclic(|me| Node {
            identity,
            config,
            state: Mutex::new(State::default()),
            transport,
            signal,
            started: Instant::now(),
            next_id: AtomicU64::new(1),
            me: me.clone(),
            wake: tokio::sync::Notify::new(),
            e2e_keys: Mutex::new(HashMap::new()),
            frame_tap: hooks::FrameTap::default(),
        });
        tokio::spawn(run_loop(Arc::downgrade(&node), incoming_rx, transport_rx));
        node
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> &str {
        &self.identity.peer_id
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Says goodbye to every peer, closes links and relays.
    pub async fn shutdown(&self) {
        let mut pcs = Vec::new();
        let writers: Vec<mpsc::Sender<Bytes>>;
        {
            let mut st = self.lock();
            let st = &mut *st;
            for (RoomKey { app, room: room_id }, entry) in st.rooms.iter_mut() {
                let peers: Vec<String> = entry.room.joined_peers().map(str::to_owned).collect();
                for peer in peers {
                    if let Some(link) = st.links.get(&LinkKey::new(app, &peer)) {
                        for f in entry.room.leave_frames(&peer) {
                            let _ = link.tx.try_send(f);
                        }
                    }
                    let _ = room_id;
                }
            }
            for (_, c) in st.conns.drain() {
                if let Some(pc) = c.pc {
                    pcs.push(pc);
                }
            }
            writers = st.links.drain().map(|(_, l)| l.tx).collect();
            for s in st.sessions.values() {
                s.queue.close();
            }
        }
        // The goodbyes must be on the wire before the connections close: wait (up to 0.6 s) until
        // every link's writer has taken its queue, then as long as Trystero waits after
        // @_leave before detaching.
        let drained = async {
            while writers.iter().any(|w| w.capacity() < w.max_capacity()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(600), drained).await;
        drop(writers);
        tokio::time::sleep(Duration::from_millis(120)).await;
        let closes = pcs.into_iter().map(|pc| async move {
            let _ = tokio::time::timeout(Duration::from_millis(500), pc.close()).await;
        });
        futures::future::join_all(closes).await;
        let _ = tokio::time::timeout(Duration::from_millis(500), self.signal.shutdown()).await;
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
                    DriverEvent::Event(ev) => n.on_incoming(ev),
                    DriverEvent::RelayUp(_) => n.restart_bursts(),
                }
            }
            ev = transport.recv() => {
                let (Some(ev), Some(n)) = (ev, node.upgrade()) else { break };
                n.on_transport(ev);
            }
            _ = sleep => {
                let Some(n) = node.upgrade() else { break };
                next = n.tick();
            }
        }
    }
}
