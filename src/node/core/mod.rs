//! The node's sans-IO core: every decision the node makes, with no socket, task or clock in it.
//!
//! Why it exists: the node is where the protocol cores meet — rooms ([`crate::room`]), signaling
//! ([`crate::signal::state`]), the cells census and overlay ([`super::cells`], [`crate::mesh`]) —
//! and that meeting is where races live (a duplicate link, a restarted peer, a frame before its
//! link). Here it is plain state driven by inputs with `now` passed in, so the deterministic
//! harness (`super::harness`) can replay any schedule from a seed.
//!
//! Inputs from the world (relay events, link events, received frames, the results of effects,
//! ticks) are one [`Input`] enum handled by [`Core::handle`]; calls that answer in place (API
//! calls, status) are methods. Outputs are [`Effect`]s the driver (`super::Node`) carries out.
//! One rule keeps it readable: a handler never calls another handler. What a core returns
//! (room outputs, signaling actions, overlay outputs) becomes [`Work`] on one queue, and
//! [`Core::drain`] dispatches it; handlers may use the small state primitives (`drop_link`,
//! `signal_room`, `emit`) that change state and push work, nothing more.
//!
//! Who owns what: `rooms` (sessions, join, leave, subscribe), `dials` (signaling actions and
//! the connection table), `links` (link lifecycle: duplicate-link race, frames, watchdog,
//! restart probe, idle close, the tick), `outputs` (a room's outputs to links and sessions),
//! `send` (direct or overlay, plain or sealed, local echo, ping), `info` (peers and status),
//! `state` (the shared tables), `lifecycle` (the hooks and their order). The features each have
//! one folder: `media/` (tracks, negotiation, their tables), `history/` (what is kept, keepers,
//! catch-up), `cells.rs` with `cells/` (the census, admission, the overlay on the node); and
//! `delivery` and `requests` one file each.

pub mod cells;
mod delivery;
mod dials;
pub mod events;
pub(crate) mod history;
mod ice;
mod info;
mod input;
mod lifecycle;
pub(crate) mod limits;
mod links;
pub(crate) mod media;
mod outputs;
pub mod requests;
pub(crate) mod rooms;
mod rpc;
mod send;
mod state;
pub mod types;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngCore as _, SeedableRng as _};

use crate::drops::DropReason;
use crate::ids::ConnId;
use crate::mesh::MeshOutput;
use crate::room::{Output, RoomLimits};
use crate::signal::RelayCommand;
use crate::signal::state::Action;

use crate::ids::Identity;
use events::{SessionEvent, SessionId};
pub use input::Input;
pub use limits::AppLimits;
pub use media::TrackRef;
pub use rpc::RequestSpec;
pub use send::SendPlan;
use state::State;
pub(crate) use state::{LinkKey, RoomKey};

/// Frames queued per link before app sends wait (the driver sizes link writers with it).
pub(crate) const LINK_QUEUE: usize = 1_024;
/// Remote candidates held until the remote description is set.
const MAX_HELD_CANDIDATES: usize = 64;
/// A link that carries no room is closed after this long.
const IDLE_LINK: Duration = Duration::from_secs(5);
/// How long a linked peer that re-announced has to prove it is still there.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest the core sleeps between ticks.
const TICK_MAX: Duration = Duration::from_millis(500);
/// How often a cells room ticks while it settles and redials.
const CELLS_TICK: Duration = Duration::from_millis(250);

/// The limits and timers the core runs with (the driver makes them from the daemon's
/// configuration: `node::core_config`).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Per-room limits: message size, handshake and reassembly timeouts.
    pub limits: RoomLimits,
    /// Connection attempts a room may have pending.
    pub max_pending_dials: usize,
    /// A quiet link is pinged after this long.
    pub ping_after: Duration,
    /// A link quiet for this long is dead.
    pub dead_after: Duration,
    /// After a failed attempt with a peer, try it again through TURN only (TURN servers are
    /// configured and the policy allows other candidates).
    pub relay_fallback: bool,
    /// Most bytes one room's kept history may take.
    pub history_budget: u64,
    /// Most bytes of partial messages buffered across all rooms.
    pub reassembly_budget: usize,
    /// What one app id may hold: sessions, rooms, local tracks, kept channels.
    pub app_limits: AppLimits,
    /// Most bytes every room's kept history may take together on disk.
    pub history_node_budget: u64,
}

/// What the core asks of the world. The driver runs them in order, under the same lock that
/// fed the input, so a session sees its events in the order the core decided them.
#[derive(Debug)]
pub enum Effect {
    /// Publish or subscribe on the relays.
    Relay(RelayCommand),
    /// Create a peer connection for `conn` and an offer; answer with [`Input::OfferMade`].
    Offer {
        /// The connection attempt.
        conn: ConnId,
        /// Use only relayed candidates (an earlier attempt with this peer failed).
        relay_only: bool,
    },
    /// Create a peer connection for `conn` answering `sdp`; answer with [`Input::AnswerMade`].
    Answer {
        /// The connection attempt.
        conn: ConnId,
        /// The remote offer.
        sdp: String,
        /// Use only relayed candidates (an earlier attempt with this peer failed).
        relay_only: bool,
    },
    /// Apply the remote answer; answer with [`Input::RemoteSet`].
    ApplyAnswer {
        /// The connection attempt.
        conn: ConnId,
        /// The remote answer.
        sdp: String,
    },
    /// Add a remote ICE candidate (JSON).
    AddCandidate {
        /// The connection.
        conn: ConnId,
        /// The candidate as Trystero sends it.
        json: String,
    },
    /// The connection is now a link: start writing its frames on its data channel.
    StartLink {
        /// The connection.
        conn: ConnId,
    },
    /// The link's peer is a meshrtc daemon: open its send window wide.
    OpenWindow {
        /// The link's connection.
        conn: ConnId,
    },
    /// Queue frames on a link (never waits; a full queue is counted).
    Frames {
        /// The link's connection.
        conn: ConnId,
        /// Outer frames, in order.
        frames: Vec<Bytes>,
    },
    /// Queue a kept message's frames on a link, waiting while its queue is full: unlike
    /// [`Effect::Frames`], none may be cut (a message missing a frame would never complete).
    FramesKept {
        /// The link's connection.
        conn: ConnId,
        /// Outer frames, in order.
        frames: Vec<Bytes>,
    },
    /// Queue a liveness frame (a watchdog ping, a pong) ahead of the link's queued data: a
    /// link busy with a bulk message must not look dead because its ping waits behind it.
    FrameFirst {
        /// The link's connection.
        conn: ConnId,
        /// One outer frame.
        frame: Bytes,
    },
    /// A link to a peer that cannot acknowledge (a Trystero page) is going down: count the
    /// frames its queue still holds as lost (`frames_lost_on_close`).
    CountUnsent {
        /// The link's connection.
        conn: ConnId,
    },
    /// Close a connection after `delay`.
    Close {
        /// The connection.
        conn: ConnId,
        /// Lets frames already queued (a leave, a duplicate's last data) go out first.
        delay: Duration,
    },
    /// Store a kept message (encode it with a fresh nonce) and apply the room's limits.
    Keep(history::KeptMessage),
    /// Deliver a room's kept messages after `after` to a session, oldest first, flagged
    /// `history`, before anything that follows.
    Replay {
        /// The session.
        session: SessionId,
        /// The room's history id.
        room: [u8; 16],
        /// The room's history key.
        key: crate::history::HistoryKey,
        /// Replay what was kept after this cursor.
        after: crate::history::Cursor,
        /// Which entries the session gets, and how each is told ([`history::Replay::event`]).
        to: history::Replay,
    },
    /// Read a page of a room's kept messages for a peer's catch-up request and hand it to
    /// [`Core::history_page`].
    ServeHistory {
        /// The room's app id.
        app: String,
        /// The room's id.
        room_id: String,
        /// The peer asking.
        peer: String,
        /// The room's history id.
        room: [u8; 16],
        /// The room's history key.
        key: crate::history::HistoryKey,
        /// Read what was kept after this cursor.
        from: crate::history::Cursor,
        /// Only messages kept after this (ms).
        after_ms: u64,
        /// Only these channels.
        channels: std::collections::BTreeSet<String>,
    },
    /// Hand an event to a local session.
    Deliver {
        /// The session.
        session: SessionId,
        /// The event.
        event: SessionEvent,
    },
    /// A session is gone: close its queue.
    CloseSession {
        /// The session.
        session: SessionId,
    },
    /// An app's ping was answered.
    Pong {
        /// The waiter [`Core::ping`] returned.
        waiter: u64,
        /// Round trip.
        rtt: Duration,
    },
    /// An app's ping will never be answered (the peer left).
    PingLost {
        /// The waiter [`Core::ping`] returned.
        waiter: u64,
    },
    /// Add a local track to a link (a renegotiation follows).
    AddTrack {
        /// The link's connection.
        conn: ConnId,
        /// The local track's id.
        track: crate::ids::TrackId,
        /// What it is.
        spec: crate::codec::TrackSpec,
    },
    /// Take a local track off a link.
    RemoveTrack {
        /// The link's connection.
        conn: ConnId,
        /// The local track's id.
        track: crate::ids::TrackId,
    },
    /// Make a renegotiation offer; answer with [`Input::MediaOfferMade`].
    MediaOffer {
        /// The link's connection.
        conn: ConnId,
    },
    /// Answer a renegotiation offer (rolling ours back first); answer with
    /// [`Input::MediaAnswerMade`].
    MediaAnswer {
        /// The link's connection.
        conn: ConnId,
        /// The remote offer.
        sdp: String,
        /// Roll a colliding local offer back first.
        rollback: bool,
    },
    /// Apply the answer to our renegotiation; answer with [`Input::MediaAnswerApplied`].
    MediaApplyAnswer {
        /// The link's connection.
        conn: ConnId,
        /// The remote answer.
        sdp: String,
    },
}

impl Effect {
    /// An event for one session's handle of a room.
    pub(super) fn deliver(
        session: SessionId,
        handle: u32,
        key: &RoomKey,
        kind: events::EventKind,
    ) -> Effect {
        let event = events::SessionEvent {
            room: handle,
            app: key.app.clone(),
            room_id: key.room.clone(),
            kind,
        };
        Effect::Deliver { session, event }
    }
}

/// Work produced by a handler for another: the queue that replaces handlers calling handlers.
#[derive(Debug)]
enum Work {
    /// A room's signaling actions.
    Signal(RoomKey, Vec<Action>),
    /// A room's outputs.
    Room(RoomKey, Vec<Output>),
    /// A cells room's overlay outputs.
    Mesh(RoomKey, Vec<MeshOutput>),
    /// An overlay notice this node originates.
    Notice(RoomKey, Vec<u8>),
    /// A cells room's census grew: held frames whose sender and origin are known now are
    /// judged again.
    Release(RoomKey),
    /// A frame that came before its connection opened, handled now that it has.
    Frame(ConnId, bytes::Bytes),
}

/// The node's state and decisions.
pub struct Core {
    identity: Identity,
    config: CoreConfig,
    rng: StdRng,
    next_id: u64,
    /// The time of the input being handled.
    now: Instant,
    /// Wall-clock microseconds at `epoch` (cell frame sequence numbers are wall-clock based).
    wall_at_epoch: u64,
    epoch: Instant,
    st: State,
    work: VecDeque<Work>,
    effects: Vec<Effect>,
    /// The newest history cursor given out.
    last_cursor: crate::history::Cursor,
    /// Catch-up pages being read for peers now (node-wide, bounded).
    history_reading: usize,
    /// Partial messages buffered across every room, against `config.reassembly_budget`.
    reassembly: crate::wire::reassembly::NodeBudget,
    /// Where traffic and latencies are reported (the driver's `/metrics` counters); nothing it
    /// is told feeds back into a decision.
    traffic: Box<dyn Observer>,
    /// When the last tick asked for the next one.
    next_tick: Instant,
    /// The random pick of the room being ticked (the cells roster swap's partner).
    tick_pick: usize,
}

/// What the core reports as it works, for metrics; every method does nothing by default.
pub trait Observer: Send {
    /// A channel message of `bytes` arrived from a peer.
    fn message_in(&self, _bytes: usize) {}
    /// A message of `bytes` left for `peers` peers.
    fn message_out(&self, _bytes: usize, _peers: usize) {}
    /// A room announce was published to the relays.
    fn announce(&self) {}
    /// A ping's round trip.
    fn rtt(&self, _rtt: std::time::Duration) {}
    /// From a connection attempt's start to the peer's join.
    fn join(&self, _latency: std::time::Duration) {}
}

/// Reports nothing (the harness, and a core before the driver gives it its counters).
struct Unobserved;

impl Observer for Unobserved {}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("peer_id", &self.identity.peer_id)
            .finish()
    }
}

impl Core {
    /// A core with no rooms; `wall_us` is the wall clock (µs since the epoch) at `now`; `seed`
    /// draws every random choice (offer ids, challenges).
    pub fn new(
        identity: Identity,
        config: CoreConfig,
        now: Instant,
        wall_us: u64,
        seed: u64,
    ) -> Self {
        Core {
            identity,
            reassembly: crate::wire::reassembly::NodeBudget::new(config.reassembly_budget),
            config,
            rng: StdRng::seed_from_u64(seed),
            next_id: 1,
            now,
            wall_at_epoch: wall_us,
            epoch: now,
            st: State::default(),
            work: VecDeque::new(),
            effects: Vec::new(),
            last_cursor: crate::history::Cursor::default(),
            history_reading: 0,
            traffic: Box::new(Unobserved),
            next_tick: now,
            tick_pick: 0,
        }
    }

    /// Reports traffic and latencies to `observer` from now on.
    pub fn observe(&mut self, observer: Box<dyn Observer>) {
        self.traffic = observer;
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> &str {
        &self.identity.peer_id
    }

    /// The effects decided so far, in order; the driver runs them.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Counts a drop observed outside the core (the API layers, a full link queue).
    pub fn count(&mut self, reason: DropReason) {
        *self.st.drops.entry(reason).or_insert(0) += 1;
    }

    /// Counts `n` drops of one kind.
    pub fn count_n(&mut self, reason: DropReason, n: u64) {
        *self.st.drops.entry(reason).or_insert(0) += n;
    }

    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn seed(&mut self) -> u64 {
        self.rng.next_u64()
    }

    pub(crate) fn wall_us(&self) -> u64 {
        let since = self.now.saturating_duration_since(self.epoch);
        self.wall_at_epoch + since.as_micros() as u64
    }

    fn effect(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    fn frames(&mut self, conn: ConnId, frames: Vec<Bytes>) {
        if !frames.is_empty() {
            self.effects.push(Effect::Frames { conn, frames });
        }
    }

    fn close(&mut self, conn: ConnId, delay: Duration) {
        self.effects.push(Effect::Close { conn, delay });
    }

    /// Starts handling an input at `now`.
    fn at(&mut self, now: Instant) {
        self.now = now;
    }

    /// Dispatches queued work until none is left.
    fn drain(&mut self) {
        while let Some(work) = self.work.pop_front() {
            match work {
                Work::Signal(key, actions) => self.apply_actions(&key, actions),
                Work::Room(key, outputs) => self.apply_outputs(&key, outputs),
                Work::Mesh(key, outputs) => self.apply_mesh(&key, outputs),
                Work::Notice(key, body) => self.originate_notice(&key, body),
                Work::Release(key) => self.release_held(&key),
                Work::Frame(conn, bytes) => self.frame_in(conn, &bytes),
            }
        }
    }
}
