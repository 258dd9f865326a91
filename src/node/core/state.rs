//! The core's tables: rooms, sessions, connection attempts and links, drop counters.
//!
//! None of them holds an I/O handle: connections, link writers and session queues belong to
//! the driver and are named here by id.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use crate::drops::DropReason;
use crate::ids::{ConnId, PeerId};
use crate::node::core::cells::CellRoom;
use crate::node::core::events::SessionId;
use crate::room::Room;
use crate::signal::state::RoomSignal;

/// A room on this node: its app id and room id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RoomKey {
    pub app: String,
    pub room: String,
}

impl RoomKey {
    pub fn new(app: &str, room: &str) -> Self {
        RoomKey {
            app: app.to_owned(),
            room: room.to_owned(),
        }
    }
}

/// A link: one peer within one app (an app's rooms share their links to a peer).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct LinkKey {
    pub app: String,
    pub peer: PeerId,
}

impl LinkKey {
    pub fn new(app: &str, peer: &str) -> Self {
        LinkKey {
            app: app.to_owned(),
            peer: peer.into(),
        }
    }
}

/// A session's membership of a room.
pub(super) struct SessionRoom {
    pub handle: u32,
    /// Channels it receives; empty for all.
    pub channels: BTreeSet<String>,
    /// Channels whose requests it answers (Trystero request actions).
    pub serves: BTreeSet<String>,
}

impl SessionRoom {
    pub fn wants(&self, channel: &str) -> bool {
        self.channels.is_empty() || self.channels.contains(channel)
    }
}

/// A room held by the node, shared by the sessions that joined it.
pub(super) struct RoomEntry {
    pub room: Room,
    pub signal: RoomSignal,
    pub password: String,
    pub sessions: BTreeMap<SessionId, SessionRoom>,
    pub rtts: BTreeMap<String, f64>,
    /// Pings in flight per peer, oldest first; `Some` is an app's waiter, `None` the watchdog's.
    pub ping_waiters: BTreeMap<String, VecDeque<Option<u64>>>,
    pub cells: Option<CellRoom>,
    /// What the room keeps of its channels.
    pub history: super::history::RoomHistory,
    /// Request actions in flight, both ways.
    pub requests: super::requests::Requests,
}

/// A local session: its room handles.
pub(super) struct SessionEntry {
    pub rooms: BTreeMap<u32, RoomKey>,
    pub next_handle: u32,
}

/// One connection attempt or live connection.
pub(super) struct Conn {
    /// The app and peer it links.
    pub link: LinkKey,
    pub offer_id: String,
    /// Room (of `link.app`) whose signaling created it.
    pub room: String,
    /// The driver has a peer connection for it (offer or answer made).
    pub ready: bool,
    pub remote_set: bool,
    pub held_candidates: Vec<String>,
    pub open: bool,
    /// When the attempt began: one that neither opens nor fails is swept after a while.
    pub started: Instant,
    /// This side made the link's first offer (it ignores colliding renegotiation offers).
    pub initiator: bool,
    /// Only relayed candidates are used.
    pub relay_only: bool,
    /// When both descriptions were in place and ICE could begin.
    pub negotiated_at: Option<Instant>,
    /// Frames that arrived before the channel was reported open (bounded).
    pub early: Vec<bytes::Bytes>,
}

impl Conn {
    pub fn new(app: &str, peer: String, offer_id: String, room: &str, started: Instant) -> Self {
        Conn {
            link: LinkKey {
                app: app.to_owned(),
                peer: peer.into(),
            },
            offer_id,
            room: room.to_owned(),
            ready: false,
            remote_set: false,
            held_candidates: Vec::new(),
            open: false,
            started,
            initiator: false,
            relay_only: false,
            negotiated_at: None,
            early: Vec::new(),
        }
    }

    pub fn room_key(&self) -> RoomKey {
        RoomKey::new(&self.link.app, &self.room)
    }

    pub fn link_key(&self) -> LinkKey {
        self.link.clone()
    }
}

/// A live link.
pub(super) struct Link {
    pub conn: ConnId,
    /// Rooms in which the peer has joined over this link.
    pub rooms: BTreeSet<String>,
    pub connected_at: Instant,
    pub last_rx: Instant,
    pub last_ping: Option<Instant>,
    pub probe_deadline: Option<Instant>,
    pub idle_since: Option<Instant>,
    /// Where media renegotiation stands on this link.
    pub nego: super::media::Negotiation,
    /// The peer sent meshrtc capabilities: its send window is open wide.
    pub daemon: bool,
    /// The peer acknowledges tracked messages (capabilities version 2).
    pub acks: bool,
}

#[derive(Default)]
pub(super) struct State {
    pub rooms: BTreeMap<RoomKey, RoomEntry>,
    pub topics: BTreeMap<String, RoomKey>,
    pub tokens: BTreeMap<String, RoomKey>,
    pub sessions: BTreeMap<SessionId, SessionEntry>,
    pub conns: BTreeMap<ConnId, Conn>,
    pub links: BTreeMap<LinkKey, Link>,
    pub drops: BTreeMap<DropReason, u64>,
    /// Local and remote tracks (the media feature's tables).
    pub media: super::media::MediaState,
    /// A problem with the ICE servers every session of every room is told of (code, message).
    pub ice_problem: Option<super::types::IceProblem>,
    /// Peers whose last connection attempt failed: the next one uses relayed candidates only.
    pub relay_next: BTreeSet<LinkKey>,
    /// Messages kept for daemon peers until acknowledged, and what they sent us.
    pub delivery: super::delivery::Delivery,
}

impl State {
    /// Rooms of one app, in a stable order.
    pub fn rooms_of(&self, app: &str) -> Vec<RoomKey> {
        let mut keys: Vec<RoomKey> = self
            .rooms
            .keys()
            .filter(|k| k.app == app)
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// The room a session's handle names.
    pub fn room_of(&self, session: SessionId, handle: u32) -> Option<&RoomKey> {
        self.sessions
            .get(&session)
            .and_then(|s| s.rooms.get(&handle))
    }

    /// The link a connection carries, if it is the live one.
    pub fn link_of(&self, conn: ConnId) -> Option<LinkKey> {
        let lk = self.conns.get(&conn)?.link_key();
        (self.links.get(&lk)?.conn == conn).then_some(lk)
    }

    /// The link's connection, if the peer is linked.
    pub fn link_conn(&self, lk: &LinkKey) -> Option<ConnId> {
        self.links.get(lk).map(|l| l.conn)
    }
}
