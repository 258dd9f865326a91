//! The node: rooms, local sessions, links and their fan-out.
//!
//! All state sits behind one mutex that is never held across an `.await`; protocol decisions
//! come from the sans-IO cores ([`crate::room`], [`crate::signal::state`]) and are turned into
//! [`Effect`]s that run after the lock is released.

pub mod cells;
mod hooks;
pub mod identity;
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
use crate::signal::content::Signal;
use crate::signal::driver::{self, Command, DriverEvent, Incoming, RelayState, SignalHandle};
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

/// (app id, room id).
type RoomKey = (String, String);

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
/// (app id, peer id).
type LinkKey = (String, String);

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
    Publish {
        topic: String,
        content: String,
        relay: Option<String>,
    },
    Subscribe(Vec<String>),
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
    frame_tap: Mutex<Option<hooks::RecordedFrames>>,
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
            frame_tap: Mutex::new(None),
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

    // ---- sessions ---------------------------------------------------------------------------

    /// Opens a local session; its events arrive on the returned queue.
    pub fn open_session(&self) -> (SessionId, Arc<SessionQueue>) {
        let id = self.new_id();
        let queue = Arc::new(SessionQueue::new(self.config.session_queue));
        self.lock().sessions.insert(
            id,
            SessionEntry {
                queue: queue.clone(),
                rooms: HashMap::new(),
                next_handle: 1,
            },
        );
        (id, queue)
    }

    /// Closes a session and leaves its rooms.
    pub fn close_session(&self, session: SessionId) {
        let handles: Vec<u32> = match self.lock().sessions.get(&session) {
            Some(s) => s.rooms.keys().copied().collect(),
            None => return,
        };
        for h in handles {
            let _ = self.leave(session, h);
        }
        if let Some(s) = self.lock().sessions.remove(&session) {
            s.queue.close();
        }
    }

    /// Joins a room for a session; returns the session's handle of the room.
    pub async fn join(
        &self,
        session: SessionId,
        app: &str,
        room_id: &str,
        opts: &JoinOptions,
    ) -> Result<u32, NodeError> {
        let (password, require_e2e) = (opts.password.as_str(), opts.require_e2e);
        if app.is_empty() || room_id.is_empty() || app.len() > 256 || room_id.len() > 256 {
            return Err(NodeError::InvalidArgument(
                "app and room must be 1 to 256 bytes".into(),
            ));
        }
        if require_e2e && password.is_empty() {
            return Err(NodeError::InvalidArgument(
                "require_e2e needs a password: the end-to-end key derives from it".into(),
            ));
        }
        let e2e = if password.is_empty() {
            None
        } else {
            Some(self.e2e_key(app, room_id, password).await)
        };
        self.join_with_key(session, app, room_id, opts, e2e)
    }

    /// The end-to-end key of a password room, derived off the runtime (slow KDF) and cached.
    async fn e2e_key(&self, app: &str, room_id: &str, password: &str) -> crate::wire::e2e::E2eKey {
        let id = (app.to_owned(), room_id.to_owned(), password.to_owned());
        if let Some(k) = self
            .e2e_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return k.clone();
        }
        let (a, r, p) = id.clone();
        let key = tokio::task::spawn_blocking(move || crate::wire::e2e::derive_key(&p, &a, &r))
            .await
            .unwrap_or_else(|_| crate::wire::e2e::derive_key(&id.2, &id.0, &id.1));
        self.e2e_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, key.clone());
        key
    }

    #[allow(clippy::too_many_arguments)]
    fn join_with_key(
        &self,
        session: SessionId,
        app: &str,
        room_id: &str,
        opts: &JoinOptions,
        e2e: Option<crate::wire::e2e::E2eKey>,
    ) -> Result<u32, NodeError> {
        let (password, channels, require_e2e) =
            (opts.password.as_str(), &opts.channels, opts.require_e2e);
        let key: RoomKey = (app.to_owned(), room_id.to_owned());
        let now = Instant::now();
        let mut effects = Vec::new();
        let handle;
        {
            let mut st = self.lock();
            let st = &mut *st;
            if !st.sessions.contains_key(&session) {
                return Err(NodeError::NotFound("unknown session".into()));
            }
            if let Some(entry) = st.rooms.get(&key)
                && entry.password != password
            {
                return Err(NodeError::PasswordConflict);
            }
            let Some(sess) = st.sessions.get_mut(&session) else {
                return Err(NodeError::NotFound("unknown session".into()));
            };
            if let Some((h, _)) = sess.rooms.iter().find(|(_, k)| **k == key) {
                return Ok(*h);
            }
            handle = sess.next_handle;
            sess.next_handle += 1;
            sess.rooms.insert(handle, key.clone());
            let queue = sess.queue.clone();
            let is_new = !st.rooms.contains_key(&key);
            if is_new {
                let limits = RoomLimits {
                    max_message: self.config.max_message_size,
                    handshake_timeout: Duration::from_millis(self.config.handshake_timeout_ms),
                    reassembly_timeout: Duration::from_millis(self.config.reassembly_timeout_ms),
                };
                let room = Room::new(&self.identity.peer_id, app, room_id, password, limits, e2e);
                let signal = RoomSignal::new(
                    &self.identity.peer_id,
                    app,
                    room_id,
                    password,
                    self.config.max_pending_dials,
                    now,
                );
                for t in signal.topics() {
                    st.topics.insert(t.to_owned(), key.clone());
                }
                let mut signal = signal;
                let cells = opts.cells.map(|size| {
                    signal.set_dial_filter(Some(HashSet::new()));
                    CellRoom::new(
                        &self.identity.peer_id,
                        &self.identity.keys.public_key(),
                        signal.root_topic().as_bytes(),
                        size,
                        now,
                    )
                });
                st.tokens.insert(room.token().to_owned(), key.clone());
                st.rooms.insert(
                    key.clone(),
                    RoomEntry {
                        room,
                        signal,
                        password: password.to_owned(),
                        sessions: HashMap::new(),
                        rtts: HashMap::new(),
                        ping_waiters: HashMap::new(),
                        cells,
                    },
                );
                effects.push(Effect::Subscribe(st.topics.keys().cloned().collect()));
            }
            let Some(entry) = st.rooms.get_mut(&key) else {
                return Err(NodeError::NotFound("room vanished".into()));
            };
            if require_e2e {
                entry.room.require_e2e();
            }
            entry.sessions.insert(
                session,
                SessionRoom {
                    handle,
                    channels: channels.iter().cloned().collect(),
                },
            );
            for peer in entry.room.joined_peers() {
                let security = entry
                    .room
                    .peer_security(peer)
                    .unwrap_or(Security::Transport);
                queue.push(SessionEvent {
                    room: handle,
                    app: app.to_owned(),
                    room_id: room_id.to_owned(),
                    kind: EventKind::PeerJoin(peer.to_owned(), security),
                });
            }
            if is_new {
                // Links of this app learn about the room; their peers attach on our presence.
                let presence = entry.room.presence_frame(true);
                let peers: Vec<String> = st
                    .links
                    .iter()
                    .filter(|((a, _), _)| a == app)
                    .map(|((_, p), _)| p.clone())
                    .collect();
                for peer in peers {
                    if let Some(link) = st.links.get(&(app.to_owned(), peer.clone())) {
                        let _ = link.tx.try_send(presence.clone());
                    }
                    self.signal_room(
                        st,
                        &key,
                        |s| {
                            s.set_linked(&peer, true);
                            Vec::new()
                        },
                        &mut effects,
                    );
                }
                let actions = st
                    .rooms
                    .get_mut(&key)
                    .map(|e| e.signal.tick(now))
                    .unwrap_or_default();
                self.apply_actions(st, &key, actions, &mut effects);
            }
        }
        self.run_effects(effects);
        self.wake.notify_one();
        Ok(handle)
    }

    /// Leaves a room a session joined.
    pub fn leave(&self, session: SessionId, handle: u32) -> Result<(), NodeError> {
        let mut effects = Vec::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            let key = st
                .sessions
                .get_mut(&session)
                .and_then(|s| s.rooms.remove(&handle))
                .ok_or_else(|| NodeError::NotFound(format!("room handle {handle} not joined")))?;
            let empty = match st.rooms.get_mut(&key) {
                Some(e) => {
                    e.sessions.remove(&session);
                    e.sessions.is_empty()
                }
                None => false,
            };
            if empty && let Some(mut entry) = st.rooms.remove(&key) {
                for t in entry.signal.topics() {
                    st.topics.remove(t);
                }
                st.tokens.remove(entry.room.token());
                effects.push(Effect::Subscribe(st.topics.keys().cloned().collect()));
                let now = Instant::now();
                for ((app, peer), link) in st.links.iter_mut() {
                    if *app != key.0 {
                        continue;
                    }
                    for f in entry.room.leave_frames(peer) {
                        let _ = link.tx.try_send(f);
                    }
                    link.rooms.remove(&key.1);
                    if link.rooms.is_empty() {
                        link.idle_since = Some(now);
                    }
                }
                // Dials this room started are abandoned.
                let dead: Vec<ConnId> = st
                    .conns
                    .iter()
                    .filter(|(_, c)| !c.open && c.app == key.0 && c.room == key.1)
                    .map(|(id, _)| *id)
                    .collect();
                for id in dead {
                    if let Some(c) = st.conns.remove(&id)
                        && let Some(pc) = c.pc
                    {
                        effects.push(Effect::Close {
                            pc,
                            delay: Duration::ZERO,
                        });
                    }
                }
            }
        }
        self.run_effects(effects);
        Ok(())
    }

    /// Counts a drop observed outside the node (API layers).
    pub fn count_drop(&self, name: DropReason) {
        count(&mut self.lock(), name);
    }

    /// The (app, room) a session's room handle refers to.
    pub fn room_of(&self, session: SessionId, handle: u32) -> Result<(String, String), NodeError> {
        self.lock()
            .sessions
            .get(&session)
            .and_then(|s| s.rooms.get(&handle))
            .cloned()
            .ok_or_else(|| NodeError::NotFound(format!("room handle {handle} not joined")))
    }

    /// Changes which channels a session receives in a room (empty: all).
    pub fn subscribe(
        &self,
        session: SessionId,
        handle: u32,
        channels: &[String],
    ) -> Result<(), NodeError> {
        let mut st = self.lock();
        let key = st
            .sessions
            .get(&session)
            .and_then(|s| s.rooms.get(&handle))
            .cloned()
            .ok_or_else(|| NodeError::NotFound(format!("room handle {handle} not joined")))?;
        if let Some(sr) = st
            .rooms
            .get_mut(&key)
            .and_then(|e| e.sessions.get_mut(&session))
        {
            sr.channels = channels.iter().cloned().collect();
        }
        Ok(())
    }

    /// Sends a message; returns the peers it was handed to.
    pub async fn send(
        &self,
        session: SessionId,
        handle: u32,
        channel: &str,
        payload: Payload,
        meta: Option<Value>,
        targets: &[String],
    ) -> Result<Vec<String>, NodeError> {
        let mut deliveries: Vec<(String, mpsc::Sender<Bytes>)> = Vec::new();
        let frames;
        {
            let mut st = self.lock();
            let st = &mut *st;
            let key = st
                .sessions
                .get(&session)
                .and_then(|s| s.rooms.get(&handle))
                .cloned()
                .ok_or_else(|| NodeError::NotFound(format!("room handle {handle} not joined")))?;
            let Some(entry) = st.rooms.get_mut(&key) else {
                return Err(NodeError::NotFound("room not held".into()));
            };
            // A send to connected targets stays direct; the overlay carries the rest.
            let direct = !targets.is_empty()
                && targets
                    .iter()
                    .all(|t| *t == self.identity.peer_id || entry.room.is_joined(t));
            if entry.cells.is_some() && !direct {
                return self.send_cells(st, &key, session, channel, payload, meta, targets);
            }
            let joined: Vec<String> = entry.room.joined_peers().map(str::to_owned).collect();
            let self_id = self.identity.peer_id.as_str();
            let remote_targets: Vec<String> = if targets.is_empty() {
                joined.clone()
            } else {
                for t in targets {
                    if t != self_id && !joined.contains(t) {
                        return Err(NodeError::NotFound(format!("peer {t} is not in the room")));
                    }
                }
                targets.iter().filter(|t| *t != self_id).cloned().collect()
            };
            // Plain frames always (they validate the send); sealed ones only if an e2e peer gets it.
            let plain = entry.room.encode_app(channel, &payload, meta.as_ref())?;
            let wants_sealed = remote_targets
                .iter()
                .any(|p| entry.room.peer_security(p) == Some(crate::room::Security::E2e));
            let sealed = if wants_sealed {
                Some(entry.room.encode_sealed(channel, &payload, meta.as_ref())?)
            } else {
                None
            };
            let security: HashMap<String, bool> = remote_targets
                .iter()
                .map(|p| {
                    (
                        p.clone(),
                        entry.room.peer_security(p) == Some(crate::room::Security::E2e),
                    )
                })
                .collect();
            frames = (plain, sealed, security);
            self.echo_local(st, &key, session, channel, &payload, meta.as_ref(), targets);
            for peer in remote_targets {
                if let Some(link) = st.links.get(&(key.0.clone(), peer.clone())) {
                    deliveries.push((peer, link.tx.clone()));
                }
            }
        }
        let (plain, sealed, security) = frames;
        let mut delivered = Vec::with_capacity(deliveries.len());
        for (peer, tx) in deliveries {
            let frames = match (&sealed, security.get(&peer)) {
                (Some(sealed), Some(true)) => sealed,
                _ => &plain,
            };
            for f in frames {
                if tx.send(f.clone()).await.is_err() {
                    return Err(NodeError::LinkClosed(peer));
                }
            }
            delivered.push(peer);
        }
        Ok(delivered)
    }

    /// Other local sessions in the room see a send (unless it targets only remote peers).
    #[allow(clippy::too_many_arguments)]
    fn echo_local(
        &self,
        st: &State,
        key: &RoomKey,
        session: SessionId,
        channel: &str,
        payload: &Payload,
        meta: Option<&Value>,
        targets: &[String],
    ) {
        let self_id = self.identity.peer_id.as_str();
        if !(targets.is_empty() || targets.iter().any(|t| t == self_id)) {
            return;
        }
        let Some(entry) = st.rooms.get(key) else {
            return;
        };
        for (sid, sr) in &entry.sessions {
            if *sid == session || !(sr.channels.is_empty() || sr.channels.contains(channel)) {
                continue;
            }
            if let Some(s) = st.sessions.get(sid) {
                s.queue.push(SessionEvent {
                    room: sr.handle,
                    app: key.0.clone(),
                    room_id: key.1.clone(),
                    kind: EventKind::Message {
                        channel: channel.to_owned(),
                        from: self_id.to_owned(),
                        local: true,
                        payload: payload.clone(),
                        meta: meta.cloned(),
                    },
                });
            }
        }
    }

    /// A send in a cells room: one signed frame, routed by the overlay; returns the links it
    /// left on.
    #[allow(clippy::too_many_arguments)]
    fn send_cells(
        &self,
        st: &mut State,
        key: &RoomKey,
        session: SessionId,
        channel: &str,
        payload: Payload,
        meta: Option<Value>,
        targets: &[String],
    ) -> Result<Vec<String>, NodeError> {
        let self_id = self.identity.peer_id.clone();
        let now = Instant::now();
        let Some(entry) = st.rooms.get_mut(key) else {
            return Err(NodeError::NotFound("room not held".into()));
        };
        let body = entry.room.cell_payload(channel, &payload, meta.as_ref())?;
        let Some(cells) = entry.cells.as_mut() else {
            return Err(NodeError::NotFound("room has no cells".into()));
        };
        for t in targets {
            if *t != self_id && !cells.is_member(t) {
                return Err(NodeError::NotFound(format!("peer {t} is not in the room")));
            }
        }
        let remote: Vec<String> = targets.iter().filter(|t| **t != self_id).cloned().collect();
        let mut outs = Vec::new();
        if targets.is_empty() || !remote.is_empty() {
            outs = cells.originate(&self.identity.keys, remote, body, now);
        }
        let sent_to: Vec<String> = outs
            .iter()
            .filter_map(|o| match o {
                MeshOutput::Send(p, _) => Some(p.clone()),
                _ => None,
            })
            .collect();
        self.echo_local(st, key, session, channel, &payload, meta.as_ref(), targets);
        let mut effects = Vec::new();
        self.apply_mesh(st, key, outs, &mut effects);
        // Originating only sends frames; nothing here needs the lock released first.
        debug_assert!(effects.is_empty());
        Ok(sent_to)
    }

    /// Joined peers of a room.
    pub fn peers(&self, app: &str, room_id: &str) -> Result<Vec<PeerInfo>, NodeError> {
        let st = self.lock();
        let entry = st
            .rooms
            .get(&(app.to_owned(), room_id.to_owned()))
            .ok_or_else(|| NodeError::NotFound(format!("room {app}/{room_id} not held")))?;
        let now = Instant::now();
        let mut out: Vec<PeerInfo> = entry
            .room
            .joined_peers()
            .map(|p| PeerInfo {
                id: p.to_owned(),
                rtt_ms: entry.rtts.get(p).copied().unwrap_or(0.0),
                connected_ms: st
                    .links
                    .get(&(app.to_owned(), p.to_owned()))
                    .map_or(0, |l| {
                        now.saturating_duration_since(l.connected_at).as_millis() as u64
                    }),
                security: entry.room.peer_security(p).unwrap_or(Security::Transport),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Measures the round trip to a peer of a room.
    pub async fn ping(&self, app: &str, room_id: &str, peer: &str) -> Result<Duration, NodeError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.lock();
            let st = &mut *st;
            let key = (app.to_owned(), room_id.to_owned());
            let entry = st
                .rooms
                .get_mut(&key)
                .ok_or_else(|| NodeError::NotFound(format!("room {app}/{room_id} not held")))?;
            let frame = entry
                .room
                .ping(peer, Instant::now())
                .ok_or_else(|| NodeError::NotFound(format!("peer {peer} is not in the room")))?;
            entry
                .ping_waiters
                .entry(peer.to_owned())
                .or_default()
                .push_back(Some(tx));
            match st.links.get(&(app.to_owned(), peer.to_owned())) {
                Some(link) => {
                    let _ = link.tx.try_send(frame);
                }
                None => return Err(NodeError::LinkClosed(peer.to_owned())),
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(rtt)) => Ok(rtt),
            Ok(Err(_)) => Err(NodeError::LinkClosed(peer.to_owned())),
            Err(_) => Err(NodeError::Timeout(format!(
                "no pong from {peer} within 10 s"
            ))),
        }
    }

    /// Relays and their states.
    pub async fn relays(&self) -> Vec<RelayState> {
        self.signal.relays().await
    }

    /// The node at a glance.
    pub async fn status(&self) -> StatusInfo {
        let relays = self.signal.relays().await;
        let st = self.lock();
        let mut rooms: Vec<RoomInfo> = st
            .rooms
            .iter()
            .map(|((app, room), e)| {
                let mut peers: Vec<String> = e.room.joined_peers().map(str::to_owned).collect();
                peers.sort();
                RoomInfo {
                    app: app.clone(),
                    room: room.clone(),
                    sessions: e.sessions.len() as u32,
                    password: !e.password.is_empty(),
                    e2e_peers: peers
                        .iter()
                        .filter(|p| e.room.peer_security(p) == Some(crate::room::Security::E2e))
                        .cloned()
                        .collect(),
                    require_e2e: e.room.requires_e2e(),
                    cells: e.cells.as_ref().map(CellRoom::info),
                    peers,
                }
            })
            .collect();
        rooms.sort_by(|a, b| (&a.app, &a.room).cmp(&(&b.app, &b.room)));
        let mut drops = st.drops.clone();
        let c = &self.signal.counters;
        for (name, v) in [
            (
                DropReason::EventBadSignature,
                c.bad_signature.load(Ordering::Relaxed),
            ),
            (
                DropReason::EventUnknownTopic,
                c.unknown_topic.load(Ordering::Relaxed),
            ),
            (
                DropReason::PublishFailed,
                c.publish_failed.load(Ordering::Relaxed),
            ),
            (
                DropReason::RelayRetired,
                c.relays_retired.load(Ordering::Relaxed),
            ),
            (
                DropReason::RelayListFailed,
                c.relay_list_failed.load(Ordering::Relaxed),
            ),
        ] {
            if v > 0 {
                *drops.entry(name).or_insert(0) += v;
            }
        }
        StatusInfo {
            peer_id: self.identity.peer_id.clone(),
            relays,
            rooms,
            drops,
            uptime_ms: self.started.elapsed().as_millis() as u64,
            sessions: st.sessions.len() as u32,
            links: st.links.len() as u32,
            pending_dials: st.conns.values().filter(|c| !c.open).count() as u32,
        }
    }

    /// Says goodbye to every peer, closes links and relays.
    pub async fn shutdown(&self) {
        let mut pcs = Vec::new();
        let writers: Vec<mpsc::Sender<Bytes>>;
        {
            let mut st = self.lock();
            let st = &mut *st;
            for ((app, room_id), entry) in st.rooms.iter_mut() {
                let peers: Vec<String> = entry.room.joined_peers().map(str::to_owned).collect();
                for peer in peers {
                    if let Some(link) = st.links.get(&(app.clone(), peer.clone())) {
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

    // ---- internals ----------------------------------------------------------------------------

    fn signal_room(
        &self,
        st: &mut State,
        key: &RoomKey,
        f: impl FnOnce(&mut RoomSignal) -> Vec<Action>,
        effects: &mut Vec<Effect>,
    ) {
        let actions = match st.rooms.get_mut(key) {
            Some(e) => f(&mut e.signal),
            None => return,
        };
        self.apply_actions(st, key, actions, effects);
    }

    fn emit(st: &State, key: &RoomKey, kind: EventKind) {
        let Some(entry) = st.rooms.get(key) else {
            return;
        };
        for (sid, sr) in &entry.sessions {
            if let EventKind::Message { channel, .. } | EventKind::Progress { channel, .. } = &kind
                && !(sr.channels.is_empty() || sr.channels.contains(channel))
            {
                continue;
            }
            if let Some(s) = st.sessions.get(sid) {
                s.queue.push(SessionEvent {
                    room: sr.handle,
                    app: key.0.clone(),
                    room_id: key.1.clone(),
                    kind: kind.clone(),
                });
            }
        }
    }

    fn apply_actions(
        &self,
        st: &mut State,
        key: &RoomKey,
        actions: Vec<Action>,
        effects: &mut Vec<Effect>,
    ) {
        let (app, room_id) = key;
        for action in actions {
            match action {
                Action::Publish {
                    topic,
                    content,
                    relay,
                } => effects.push(Effect::Publish {
                    topic,
                    content,
                    relay,
                }),
                Action::Seen { peer } => Self::emit(st, key, EventKind::PeerSeen(peer)),
                Action::StartOffer { peer, offer_id } => {
                    let lk = (app.clone(), peer.clone());
                    // One dial per room; dials of other rooms may race, the first link wins.
                    if st.links.contains_key(&lk)
                        || st
                            .conns
                            .values()
                            .any(|c| c.app == *app && c.peer == peer && c.room == *room_id)
                    {
                        continue;
                    }
                    let id = self.new_id();
                    tracing::debug!(room = %room_id, peer = %peer, offer_id = %offer_id, "dialing");
                    st.conns.insert(
                        id,
                        Conn {
                            app: app.clone(),
                            peer,
                            offer_id,
                            room: room_id.clone(),
                            pc: None,
                            remote_set: false,
                            held_candidates: Vec::new(),
                            open: false,
                        },
                    );
                    effects.push(Effect::Offer { conn: id });
                }
                Action::AcceptOffer {
                    peer,
                    offer_id,
                    sdp,
                } => {
                    let lk = (app.clone(), peer.clone());
                    if st.links.contains_key(&lk) {
                        // The peer lost its side of the link (restart): replace ours.
                        self.drop_link(st, &lk, LeaveReason::Link, effects);
                        count(st, DropReason::LinkReplaced);
                    }
                    let stale: Vec<ConnId> = st
                        .conns
                        .iter()
                        .filter(|(_, c)| c.app == *app && c.peer == peer && !c.open)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in stale {
                        if let Some(c) = st.conns.remove(&id)
                            && let Some(pc) = c.pc
                        {
                            effects.push(Effect::Close {
                                pc,
                                delay: Duration::ZERO,
                            });
                        }
                    }
                    let id = self.new_id();
                    st.conns.insert(
                        id,
                        Conn {
                            app: app.clone(),
                            peer,
                            offer_id,
                            room: room_id.clone(),
                            pc: None,
                            remote_set: false,
                            held_candidates: Vec::new(),
                            open: false,
                        },
                    );
                    effects.push(Effect::Answer { conn: id, sdp });
                }
                Action::ApplyAnswer {
                    peer,
                    offer_id,
                    sdp,
                } => {
                    if let Some((id, c)) = st
                        .conns
                        .iter()
                        .find(|(_, c)| c.app == *app && c.peer == peer && c.offer_id == offer_id)
                        && let Some(pc) = c.pc.clone()
                    {
                        effects.push(Effect::ApplyAnswer { conn: *id, pc, sdp });
                    }
                }
                Action::AddCandidate {
                    peer,
                    offer_id,
                    candidate,
                } => {
                    if let Some(c) = st
                        .conns
                        .values_mut()
                        .find(|c| c.app == *app && c.peer == peer && c.offer_id == offer_id)
                    {
                        match (&c.pc, c.remote_set) {
                            (Some(pc), true) => effects.push(Effect::AddCandidate {
                                pc: pc.clone(),
                                json: candidate,
                            }),
                            _ if c.held_candidates.len() < MAX_HELD_CANDIDATES => {
                                c.held_candidates.push(candidate)
                            }
                            _ => count(st, DropReason::CandidateOverflow),
                        }
                    }
                }
                Action::CancelDial { peer, offer_id } => {
                    let ids: Vec<ConnId> = st
                        .conns
                        .iter()
                        .filter(|(_, c)| {
                            c.app == *app && c.peer == peer && c.offer_id == offer_id && !c.open
                        })
                        .map(|(id, _)| *id)
                        .collect();
                    for id in ids {
                        if let Some(c) = st.conns.remove(&id)
                            && let Some(pc) = c.pc
                        {
                            effects.push(Effect::Close {
                                pc,
                                delay: Duration::ZERO,
                            });
                        }
                    }
                }
                Action::Drop(name) => {
                    tracing::debug!(room = %room_id, drop = name.name(), "signal dropped");
                    count(st, name);
                    if matches!(
                        name,
                        DropReason::OfferUndecryptable | DropReason::AnswerUndecryptable
                    ) && st.rooms.get(key).is_some_and(|e| !e.password.is_empty())
                    {
                        Self::emit(
                            st,
                            key,
                            EventKind::Error {
                                code: "password_mismatch".into(),
                                message: "a peer's signaling could not be decrypted: it uses a different password".into(),
                                peer: String::new(),
                            },
                        );
                    }
                }
            }
        }
    }

    fn apply_outputs(
        &self,
        st: &mut State,
        key: &RoomKey,
        outputs: Vec<Output>,
        effects: &mut Vec<Effect>,
    ) {
        let app = &key.0;
        for o in outputs {
            match o {
                Output::Send(peer, frame) => match st.links.get(&(app.clone(), peer)) {
                    Some(link) => {
                        if link.tx.try_send(frame).is_err() {
                            count(st, DropReason::LinkQueueFull);
                        }
                    }
                    None => count(st, DropReason::SendNoLink),
                },
                Output::Drop(name) => count(st, name),
                Output::Cell(peer, bytes) => self.on_cell_frame(st, key, &peer, &bytes, effects),
                Output::Event(ev) => match ev {
                    RoomEvent::PeerJoin(p, security) => {
                        if let Some(link) = st.links.get_mut(&(app.clone(), p.clone())) {
                            link.rooms.insert(key.1.clone());
                            link.idle_since = None;
                        }
                        if let Some(cells) = st.rooms.get_mut(key).and_then(|e| e.cells.as_mut())
                            && cells.is_member(&p)
                        {
                            cells.link_up(&p, Instant::now());
                        }
                        Self::emit(st, key, EventKind::PeerJoin(p, security));
                    }
                    RoomEvent::PeerLeave(p, reason) => {
                        if let Some(link) = st.links.get_mut(&(app.clone(), p.clone())) {
                            link.rooms.remove(&key.1);
                            if link.rooms.is_empty() {
                                link.idle_since = Some(Instant::now());
                            }
                        }
                        if let Some(e) = st.rooms.get_mut(key) {
                            e.rtts.remove(&p);
                            e.ping_waiters.remove(&p);
                            if let Some(cells) = e.cells.as_mut() {
                                let dead = reason == LeaveReason::Timeout;
                                if cells.link_down(&p, dead, Instant::now()) {
                                    self.cell_notice(
                                        st,
                                        key,
                                        cells::gone_notice(std::slice::from_ref(&p)),
                                        effects,
                                    );
                                }
                            }
                        }
                        Self::emit(st, key, EventKind::PeerLeave(p, reason));
                    }
                    RoomEvent::Message {
                        channel,
                        from,
                        payload,
                        meta,
                    } => {
                        Self::emit(
                            st,
                            key,
                            EventKind::Message {
                                channel,
                                from,
                                local: false,
                                payload,
                                meta,
                            },
                        );
                    }
                    RoomEvent::Progress {
                        channel,
                        from,
                        fraction,
                        meta,
                    } => {
                        Self::emit(
                            st,
                            key,
                            EventKind::Progress {
                                channel,
                                from,
                                fraction,
                                meta,
                            },
                        );
                    }
                    RoomEvent::Error {
                        code,
                        message,
                        peer,
                    } => {
                        Self::emit(
                            st,
                            key,
                            EventKind::Error {
                                code: code.to_owned(),
                                message,
                                peer,
                            },
                        );
                    }
                    RoomEvent::Pong(p) => {
                        if let Some(e) = st.rooms.get_mut(key) {
                            let rtt = e.room.take_ping(&p, Instant::now());
                            let waiter = e
                                .ping_waiters
                                .get_mut(&p)
                                .and_then(|q| q.pop_front())
                                .flatten();
                            if let Some(rtt) = rtt {
                                e.rtts.insert(p.clone(), rtt.as_secs_f64() * 1000.0);
                                if let Some(w) = waiter {
                                    let _ = w.send(rtt);
                                }
                            }
                        }
                    }
                },
            }
        }
    }

    /// A cell frame arrived from a joined peer: check it, then let the overlay route it.
    fn on_cell_frame(
        &self,
        st: &mut State,
        key: &RoomKey,
        peer: &str,
        bytes: &[u8],
        effects: &mut Vec<Effect>,
    ) {
        let Some(cells) = st.rooms.get_mut(key).and_then(|e| e.cells.as_mut()) else {
            count(st, DropReason::CellNotCellsRoom);
            return;
        };
        let frame = match CellFrame::decode(bytes) {
            Ok(f) => f,
            Err(_) => {
                count(st, DropReason::CellMalformed);
                return;
            }
        };
        let now = Instant::now();
        // Duplicates are dropped before the (costly) signature check; a forged frame can only
        // collide with one already seen, so it cannot suppress a genuine one.
        if cells.mesh().seen(&frame.origin, frame.seq) {
            count(st, DropReason::CellDuplicate);
            return;
        }
        if frame.verify(cells.salt()).is_err() {
            count(st, DropReason::CellBadSignature);
            return;
        }
        match cells.mesh().on_frame(peer, frame, now) {
            Ok(outs) => self.apply_mesh(st, key, outs, effects),
            Err(drop) => count(st, drop.counter()),
        }
    }

    /// Sends an overlay notice (gone / alive) from this node to the whole room.
    fn cell_notice(&self, st: &mut State, key: &RoomKey, body: Vec<u8>, effects: &mut Vec<Effect>) {
        let Some(cells) = st.rooms.get_mut(key).and_then(|e| e.cells.as_mut()) else {
            return;
        };
        let outs = cells.originate(&self.identity.keys, Vec::new(), body, Instant::now());
        self.apply_mesh(st, key, outs, effects);
    }

    /// Carries out what a cells room's overlay asked for.
    fn apply_mesh(
        &self,
        st: &mut State,
        key: &RoomKey,
        outputs: Vec<MeshOutput>,
        effects: &mut Vec<Effect>,
    ) {
        let now = Instant::now();
        for o in outputs {
            match o {
                MeshOutput::Open(peer) => {
                    self.signal_room(st, key, |s| s.dial(&peer, now), effects);
                }
                MeshOutput::Close(peer) => {
                    let lk = (key.0.clone(), peer);
                    // Links are shared by the app's rooms: only close one this room alone uses.
                    if st
                        .links
                        .get(&lk)
                        .is_some_and(|l| l.rooms.iter().all(|r| *r == key.1))
                    {
                        if let Some(e) = st.rooms.get_mut(key)
                            && let Some(link) = st.links.get(&lk)
                        {
                            for f in e.room.leave_frames(&lk.1) {
                                let _ = link.tx.try_send(f);
                            }
                        }
                        self.drop_link(st, &lk, LeaveReason::Leave, effects);
                    }
                }
                MeshOutput::Send(peer, frame) => {
                    let Some(e) = st.rooms.get_mut(key) else {
                        continue;
                    };
                    let frames = e.room.cell_frames(frame.encode());
                    match st.links.get(&(key.0.clone(), peer)) {
                        Some(link) => {
                            for f in frames {
                                if link.tx.try_send(f).is_err() {
                                    count(st, DropReason::LinkQueueFull);
                                    break;
                                }
                            }
                        }
                        None => count(st, DropReason::SendNoLink),
                    }
                }
                MeshOutput::Deliver(frame) => {
                    let Some(e) = st.rooms.get_mut(key) else {
                        continue;
                    };
                    let Some(cells) = e.cells.as_mut() else {
                        continue;
                    };
                    let Some(from) = cells.origin_id(&frame.origin) else {
                        count(st, DropReason::CellBadOrigin);
                        continue;
                    };
                    if from == self.identity.peer_id {
                        continue;
                    }
                    cells.heard_member(&from, now);
                    match frame.payload.split_first() {
                        Some((&cells::NOTICE_GONE, ids)) => {
                            let mut me_named = false;
                            for id in cells::parse_gone(ids) {
                                let linked = st.links.contains_key(&(key.0.clone(), id.clone()));
                                if id == self.identity.peer_id {
                                    me_named = true;
                                } else if !linked {
                                    cells.suspect(&id, now);
                                }
                            }
                            if me_named {
                                self.cell_notice(st, key, vec![cells::NOTICE_ALIVE], effects);
                            }
                            continue;
                        }
                        Some((&cells::NOTICE_ALIVE, _)) => continue,
                        _ => {}
                    }
                    match e.room.open_cell_payload(&frame.payload) {
                        Ok((channel, payload, meta)) => Self::emit(
                            st,
                            key,
                            EventKind::Message {
                                channel,
                                from,
                                local: false,
                                payload,
                                meta,
                            },
                        ),
                        Err(name) => count(st, name),
                    }
                }
            }
        }
    }

    /// Removes a link: its rooms lose the peer, signaling may dial again.
    fn drop_link(
        &self,
        st: &mut State,
        lk: &LinkKey,
        reason: LeaveReason,
        effects: &mut Vec<Effect>,
    ) {
        let Some(link) = st.links.remove(lk) else {
            return;
        };
        if let Some(c) = st.conns.remove(&link.conn)
            && let Some(pc) = c.pc
        {
            effects.push(Effect::Close {
                pc,
                delay: Duration::ZERO,
            });
        }
        let (app, peer) = lk;
        let keys: Vec<RoomKey> = st.rooms.keys().filter(|(a, _)| a == app).cloned().collect();
        let now = Instant::now();
        for key in keys {
            let Some(entry) = st.rooms.get_mut(&key) else {
                continue;
            };
            let was_joined = entry.room.is_joined(peer);
            let outs = entry.room.detach(peer, reason);
            entry.signal.set_linked(peer, false);
            if was_joined {
                entry.signal.restart_burst(now);
            }
            self.apply_outputs(st, &key, outs, effects);
        }
    }

    /// A relay came up: announce every room again so peers behind it find us.
    fn restart_bursts(&self) {
        let now = Instant::now();
        for entry in self.lock().rooms.values_mut() {
            entry.signal.restart_burst(now);
        }
        self.wake.notify_one();
    }

    fn on_incoming(&self, msg: Incoming) {
        tracing::debug!(topic = %msg.topic, relay = %msg.relay, "signal in");
        let mut effects = Vec::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            let Some(key) = st.topics.get(&msg.topic).cloned() else {
                count(st, DropReason::EventUnknownTopic);
                return;
            };
            let signal = match Signal::parse(&msg.content) {
                Ok(s) => s,
                Err(_) => {
                    count(st, DropReason::EventBadContent);
                    return;
                }
            };
            let peer = signal.peer().to_owned();
            if let Some(entry) = st.rooms.get_mut(&key)
                && let Some(cells) = entry.cells.as_mut()
                && cells.heard(&peer, &msg.pubkey, Instant::now()) == cells::Heard::Newcomer
            {
                // Back in the census while still linked (it was suspected and forgotten, or it
                // joined before we heard it): the overlay must route over that link again.
                if entry.room.is_joined(&peer) {
                    cells.link_up(&peer, Instant::now());
                }
                if matches!(signal, Signal::Announce { .. }) && cells.should_greet(&peer) {
                    // Announces are ephemeral: without a greeting a newcomer would not hear of
                    // us until our next one, up to a minute later.
                    let actions = entry.signal.greet(&peer, Instant::now());
                    self.apply_actions(st, &key, actions, &mut effects);
                }
            }
            let lk = (key.0.clone(), peer.clone());
            // A linked peer that announces again may have restarted: probe the link.
            if let Signal::Announce { .. } = signal
                && let Some(link) = st.links.get_mut(&lk)
                && link.probe_deadline.is_none()
            {
                let now = Instant::now();
                link.probe_deadline = Some(now + PROBE_TIMEOUT);
                if let Some(entry) = st.rooms.get_mut(&key)
                    && let Some(frame) = entry.room.ping(&peer, now)
                {
                    entry
                        .ping_waiters
                        .entry(peer.clone())
                        .or_default()
                        .push_back(None);
                    let _ = link.tx.try_send(frame);
                }
            }
            let now = Instant::now();
            let topic = msg.topic;
            let relay = Some(msg.relay);
            self.signal_room(
                st,
                &key,
                |s| s.on_signal(&topic, signal, relay, now),
                &mut effects,
            );
        }
        self.run_effects(effects);
    }

    fn on_transport(&self, ev: TransportEvent) {
        let mut effects = Vec::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            match ev {
                TransportEvent::Candidate(id, json) => {
                    let Some(c) = st.conns.get(&id) else { return };
                    let key = (c.app.clone(), c.room.clone());
                    let (peer, offer_id) = (c.peer.clone(), c.offer_id.clone());
                    self.signal_room(
                        st,
                        &key,
                        |s| s.local_candidate(&peer, &offer_id, &json),
                        &mut effects,
                    );
                }
                TransportEvent::Open(id, channel) => self.on_open(st, id, channel, &mut effects),
                TransportEvent::Message(id, bytes) => self.on_frame(st, id, &bytes, &mut effects),
                TransportEvent::Closed(id) => {
                    let Some(c) = st.conns.get(&id) else { return };
                    let lk = (c.app.clone(), c.peer.clone());
                    if c.open {
                        self.drop_link(st, &lk, LeaveReason::Link, &mut effects);
                    } else if let Some(c) = st.conns.remove(&id) {
                        let key = (c.app.clone(), c.room.clone());
                        let (peer, offer_id) = (c.peer.clone(), c.offer_id.clone());
                        // Announce again so the peer answers with a fresh attempt.
                        self.signal_room(
                            st,
                            &key,
                            |s| {
                                s.dial_failed(&peer, &offer_id);
                                s.restart_burst(Instant::now());
                                Vec::new()
                            },
                            &mut effects,
                        );
                        if let Some(pc) = c.pc {
                            effects.push(Effect::Close {
                                pc,
                                delay: Duration::ZERO,
                            });
                        }
                        count(st, DropReason::DialFailed);
                    }
                }
            }
        }
        self.run_effects(effects);
    }

    fn on_open(&self, st: &mut State, id: ConnId, channel: Channel, effects: &mut Vec<Effect>) {
        let Some(c) = st.conns.get_mut(&id) else {
            return;
        };
        if c.open {
            return;
        }
        c.open = true;
        let lk = (c.app.clone(), c.peer.clone());
        let offer_id = c.offer_id.clone();
        let signaled_room = (c.app.clone(), c.room.clone());
        if let Some(existing) = st.links.get(&lk).map(|l| l.conn) {
            // Two dials of different rooms both connected: both sides keep the smaller offer id.
            let existing_offer = st
                .conns
                .get(&existing)
                .map(|c| c.offer_id.clone())
                .unwrap_or_default();
            if existing_offer <= offer_id {
                if let Some(pc) = st.conns.remove(&id).and_then(|c| c.pc) {
                    effects.push(Effect::Close {
                        pc,
                        delay: Duration::from_millis(500),
                    });
                }
                count(st, DropReason::LinkDuplicate);
                return;
            }
            self.drop_link(st, &lk, LeaveReason::Link, effects);
            count(st, DropReason::LinkDuplicate);
        }
        let (tx, rx) = mpsc::channel(LINK_QUEUE);
        transport::spawn_writer(channel, rx);
        let now = Instant::now();
        let (app, peer) = lk.clone();
        let keys: Vec<RoomKey> = st
            .rooms
            .keys()
            .filter(|(a, _)| *a == app)
            .cloned()
            .collect();
        for key in &keys {
            if let Some(entry) = st.rooms.get(key) {
                let _ = tx.try_send(entry.room.presence_frame(true));
            }
        }
        st.links.insert(
            lk.clone(),
            Link {
                conn: id,
                tx,
                rooms: HashSet::new(),
                connected_at: now,
                last_rx: now,
                last_ping: None,
                probe_deadline: None,
                idle_since: Some(now),
            },
        );
        for key in keys {
            let peer = peer.clone();
            self.signal_room(
                st,
                &key,
                |s| {
                    s.set_linked(&peer, true);
                    Vec::new()
                },
                effects,
            );
        }
        // The room whose signaling made this link has the peer: start its handshake now rather
        // than only on the peer's presence frame, which a browser may send before it has tied
        // the connection to the room.
        if let Some(entry) = st.rooms.get_mut(&signaled_room)
            && !entry.room.is_attached(&peer)
        {
            let outs = entry.room.attach(&peer, now);
            if let Some(link) = st.links.get_mut(&lk) {
                link.idle_since = None;
            }
            self.apply_outputs(st, &signaled_room, outs, effects);
        }
        tracing::info!(app = %app, peer = %peer, "link up");
    }

    fn on_frame(&self, st: &mut State, id: ConnId, bytes: &[u8], effects: &mut Vec<Effect>) {
        let Some(c) = st.conns.get(&id) else { return };
        let lk = (c.app.clone(), c.peer.clone());
        if let Some(tap) = self
            .frame_tap
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            tap.push((lk.1.clone(), bytes.to_vec()));
        }
        let now = Instant::now();
        match st.links.get_mut(&lk) {
            Some(link) if link.conn == id => {
                link.last_rx = now;
                link.probe_deadline = None;
            }
            _ => {
                // Data on a connection that lost a duplicate-link race (or has not opened yet).
                count(st, DropReason::FrameStaleLink);
                return;
            }
        }
        let frame = match OuterFrame::decode(bytes) {
            Ok(f) => f,
            Err(_) => {
                count(st, DropReason::FrameMalformed);
                return;
            }
        };
        let (token, data, joined) = match frame {
            OuterFrame::Data { token, chunk } => (token, Some(chunk), true),
            OuterFrame::Presence { joined, token } => (token, None, joined),
        };
        let Some(key) = std::str::from_utf8(token)
            .ok()
            .and_then(|t| st.tokens.get(t))
            .cloned()
            .filter(|k| k.0 == lk.0)
        else {
            count(st, DropReason::FrameUnknownRoom);
            return;
        };
        let peer = lk.1.clone();
        let Some(entry) = st.rooms.get_mut(&key) else {
            return;
        };
        let mut outs = Vec::new();
        if data.is_none() && joined {
            outs.extend(entry.room.on_presence(&peer, now));
        } else if joined && !entry.room.is_attached(&peer) {
            outs.extend(entry.room.attach(&peer, now));
        }
        if joined
            && entry.room.is_attached(&peer)
            && let Some(link) = st.links.get_mut(&lk)
        {
            link.idle_since = None;
        }
        let Some(entry) = st.rooms.get_mut(&key) else {
            return;
        };
        match data {
            Some(chunk) => outs.extend(entry.room.on_chunk(&peer, chunk, now)),
            None if !joined => outs.extend(entry.room.detach(&peer, LeaveReason::Leave)),
            None => {}
        }
        self.apply_outputs(st, &key, outs, effects);
    }

    fn tick(&self) -> Instant {
        let now = Instant::now();
        let mut effects = Vec::new();
        let mut next = now + Duration::from_millis(500);
        {
            let mut st = self.lock();
            let st = &mut *st;
            let keys: Vec<RoomKey> = st.rooms.keys().cloned().collect();
            for key in keys {
                self.signal_room(st, &key, |s| s.tick(now), &mut effects);
                if let Some(entry) = st.rooms.get_mut(&key) {
                    let outs = entry.room.tick(now);
                    next = next.min(entry.signal.next_deadline());
                    self.apply_outputs(st, &key, outs, &mut effects);
                }
                let State { rooms, links, .. } = &mut *st;
                if let Some(entry) = rooms.get_mut(&key)
                    && let Some(cells) = entry.cells.as_mut()
                {
                    let room = &entry.room;
                    let before = Arc::as_ptr(cells.mesh().topology());
                    let outs = cells.tick(now, |p| {
                        links.contains_key(&(key.0.clone(), p.to_owned())) && room.is_joined(p)
                    });
                    if Arc::as_ptr(cells.mesh().topology()) != before {
                        // Announcers the new topology wants are dialled; linked peers never are.
                        entry.signal.set_dial_filter(Some(cells.wanted()));
                        let info = cells.info();
                        Self::emit(st, &key, EventKind::MeshState(info));
                    }
                    // Settling and redials run on this tick; keep it coming while they are due.
                    next = next.min(now + Duration::from_millis(250));
                    self.apply_mesh(st, &key, outs, &mut effects);
                }
            }
            let ping_after = Duration::from_millis(self.config.ping_after_ms);
            let dead_after = Duration::from_millis(self.config.dead_after_ms);
            let mut dead = Vec::new();
            for (lk, link) in st.links.iter_mut() {
                let quiet = now.saturating_duration_since(link.last_rx);
                if quiet >= dead_after || link.probe_deadline.is_some_and(|d| now >= d) {
                    dead.push((lk.clone(), LeaveReason::Timeout));
                } else if link
                    .idle_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= IDLE_LINK)
                {
                    dead.push((lk.clone(), LeaveReason::Leave));
                } else if quiet >= ping_after
                    && link
                        .last_ping
                        .is_none_or(|t| now.saturating_duration_since(t) >= ping_after)
                {
                    let room = link.rooms.iter().next().cloned();
                    if let Some(room) = room
                        && let Some(entry) = st.rooms.get_mut(&(lk.0.clone(), room))
                        && let Some(frame) = entry.room.ping(&lk.1, now)
                    {
                        entry
                            .ping_waiters
                            .entry(lk.1.clone())
                            .or_default()
                            .push_back(None);
                        let _ = link.tx.try_send(frame);
                        link.last_ping = Some(now);
                    }
                }
            }
            for (lk, reason) in dead {
                if reason == LeaveReason::Timeout {
                    count(st, DropReason::LinkTimeout);
                }
                self.drop_link(st, &lk, reason, &mut effects);
            }
        }
        self.run_effects(effects);
        next.max(now + Duration::from_millis(10))
    }

    fn run_effects(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Publish {
                    topic,
                    content,
                    relay,
                } => self.signal.send(Command::Publish {
                    topic,
                    content,
                    relay,
                }),
                Effect::Subscribe(topics) => self.signal.send(Command::Subscribe(topics)),
                Effect::Close { pc, delay } => {
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = pc.close().await;
                    });
                }
                Effect::AddCandidate { pc, json } => {
                    let me = self.me.clone();
                    tokio::spawn(async move {
                        if transport::add_candidate(&pc, &json).await.is_err()
                            && let Some(node) = me.upgrade()
                        {
                            count(&mut node.lock(), DropReason::CandidateRejected);
                        }
                    });
                }
                Effect::Offer { conn } => {
                    let me = self.me.clone();
                    let transport = self.transport.clone();
                    tokio::spawn(async move {
                        let result = transport.offer(conn).await;
                        if let Some(node) = me.upgrade() {
                            node.dial_ready(conn, result, false);
                        }
                    });
                }
                Effect::Answer { conn, sdp } => {
                    let me = self.me.clone();
                    let transport = self.transport.clone();
                    tokio::spawn(async move {
                        let result = transport.answer(conn, sdp).await;
                        if let Some(node) = me.upgrade() {
                            node.dial_ready(conn, result, true);
                        }
                    });
                }
                Effect::ApplyAnswer { conn, pc, sdp } => {
                    let me = self.me.clone();
                    tokio::spawn(async move {
                        let ok = transport::apply_answer(&pc, sdp).await.is_ok();
                        if let Some(node) = me.upgrade() {
                            node.remote_set(conn, ok);
                        }
                    });
                }
            }
        }
    }

    /// A local offer or answer is ready (or failed).
    fn dial_ready(
        &self,
        conn: ConnId,
        result: Result<(Connection, String), transport::TransportError>,
        answerer: bool,
    ) {
        let mut effects = Vec::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            let Some(c) = st.conns.get_mut(&conn) else {
                // The attempt was cancelled meanwhile.
                if let Ok((pc, _)) = result {
                    tokio::spawn(async move {
                        let _ = pc.close().await;
                    });
                }
                return;
            };
            match result {
                Ok((pc, sdp)) => {
                    c.pc = Some(pc.clone());
                    let key = (c.app.clone(), c.room.clone());
                    let (peer, offer_id) = (c.peer.clone(), c.offer_id.clone());
                    if answerer {
                        c.remote_set = true;
                        for json in c.held_candidates.drain(..) {
                            effects.push(Effect::AddCandidate {
                                pc: pc.clone(),
                                json,
                            });
                        }
                        self.signal_room(
                            st,
                            &key,
                            |s| s.answer_ready(&peer, &offer_id, &sdp),
                            &mut effects,
                        );
                    } else {
                        self.signal_room(
                            st,
                            &key,
                            |s| s.offer_ready(&peer, &offer_id, &sdp),
                            &mut effects,
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "connection setup failed");
                    if let Some(c) = st.conns.remove(&conn) {
                        let key = (c.app.clone(), c.room.clone());
                        self.signal_room(
                            st,
                            &key,
                            |s| {
                                s.dial_failed(&c.peer, &c.offer_id);
                                Vec::new()
                            },
                            &mut effects,
                        );
                    }
                    count(st, DropReason::DialFailed);
                }
            }
        }
        self.run_effects(effects);
    }

    /// The remote answer was applied: held candidates can go in.
    fn remote_set(&self, conn: ConnId, ok: bool) {
        let mut effects = Vec::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            if !ok {
                count(st, DropReason::AnswerRejected);
                return;
            }
            let Some(c) = st.conns.get_mut(&conn) else {
                return;
            };
            c.remote_set = true;
            if let Some(pc) = c.pc.clone() {
                for json in c.held_candidates.drain(..) {
                    effects.push(Effect::AddCandidate {
                        pc: pc.clone(),
                        json,
                    });
                }
            }
        }
        self.run_effects(effects);
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
