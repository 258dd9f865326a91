//! What the core tells local sessions: the events of their rooms, and who a peer is.

use serde_json::Value;

pub use crate::ids::PeerId;
use crate::room::{LeaveReason, Security};
use crate::wire::Payload;

pub use crate::ids::SessionId;

/// What kind of peer an event names, as far as the node knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerType {
    /// Only seen announcing on a relay.
    Unknown,
    /// A member of the room.
    Member,
    /// A member that keeps channels of the room for peers catching up.
    Keeper,
}

/// What a session hears about one of its rooms.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A peer completed the handshake, with how its payloads are protected and what it is.
    PeerJoin(PeerId, Security, PeerType),
    /// A peer left, and why.
    PeerLeave(PeerId, LeaveReason),
    /// A peer announced itself for the first time, or a joined peer declared it keeps channels.
    PeerSeen(PeerId, PeerType),
    /// A cells room: a link to a member came up or went down.
    MeshPeerState {
        /// The member.
        peer: PeerId,
        /// The link is up.
        linked: bool,
        /// Its cell in the topology in force.
        cell: u32,
        /// It sits in another cell (a bridge link).
        bridge: bool,
    },
    /// A channel message.
    Message {
        /// Channel name.
        channel: String,
        /// Sender peer id (the node's own id for local sends).
        from: PeerId,
        /// Sent by another session on this node.
        local: bool,
        /// Payload.
        payload: Payload,
        /// Metadata.
        meta: Option<Value>,
        /// Its place in the room's kept history (0: its channel is not kept).
        cursor: crate::history::Cursor,
        /// Replayed from the node's history, not live.
        history: bool,
        /// For history: the origin's signature was checked (false: an origin that cannot sign,
        /// such as a Trystero page).
        verified: bool,
    },
    /// Receive progress of a chunked message.
    Progress {
        /// Channel name.
        channel: String,
        /// Sender.
        from: PeerId,
        /// 0.0..=1.0.
        fraction: f32,
        /// Metadata.
        meta: Option<Value>,
    },
    /// A room-level problem.
    Error {
        /// Stable code.
        code: String,
        /// Human message.
        message: String,
        /// Peer concerned, if any.
        peer: PeerId,
    },
    /// This many events were dropped because the session did not keep up.
    Lagged(u64),
    /// A cells room's topology changed.
    MeshState(crate::node::core::cells::CellInfo),
    /// A peer's media stream arrived (its first track, with the stream's metadata).
    StreamAdd {
        /// The sending peer.
        peer: PeerId,
        /// The media stream id.
        stream_id: String,
        /// The sender's metadata.
        meta: Option<Value>,
    },
    /// A peer's track arrived.
    TrackAdd {
        /// The sending peer.
        peer: PeerId,
        /// The media stream id.
        stream_id: String,
        /// The track id.
        track_id: String,
        /// Its codec.
        codec: crate::codec::Codec,
        /// The sender's metadata.
        meta: Option<Value>,
    },
    /// One of this session's tracks is negotiated with a peer: media written now reaches it.
    TrackReady {
        /// The local track's id.
        track: crate::ids::TrackId,
        /// The peer.
        peer: PeerId,
    },
    /// A peer asks for a keyframe of one of this session's tracks (RTCP PLI or FIR): the next
    /// frame written should be one.
    KeyframeWanted {
        /// The local track's id.
        track: crate::ids::TrackId,
        /// The peer.
        peer: PeerId,
    },
    /// A peer's track ended.
    TrackRemove {
        /// The sending peer.
        peer: PeerId,
        /// The track id.
        track_id: String,
    },
    /// A peer's request on a channel this session serves: answer it by `id`.
    Request {
        /// The node's handle of the request (what the answer names).
        id: u64,
        /// Channel (the page's request action).
        channel: String,
        /// The requester.
        from: PeerId,
        /// The request's data.
        payload: Payload,
        /// The requester's own metadata (Trystero's `m`).
        meta: Option<Value>,
    },
    /// Messages this session sent `peer` on `channel` were not delivered: its link went down
    /// while they were in flight and it did not come back in time.
    Undelivered {
        /// The peer.
        peer: PeerId,
        /// The channel they were sent on.
        channel: String,
        /// How many messages.
        messages: u64,
        /// Their bytes as sent.
        bytes: u64,
    },
    /// How one target of this session's request ended.
    Response {
        /// The app's id of the request (its `request_id`).
        request: u64,
        /// The target.
        peer: PeerId,
        /// The reply, a rejection, a timeout or a departure.
        outcome: Outcome,
    },
}

/// An event for one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvent {
    /// The session's handle of the room (0 for session-wide events).
    pub room: u32,
    /// App id.
    pub app: String,
    /// Room id.
    pub room_id: String,
    /// What happened.
    pub kind: EventKind,
}

/// How one target of an outgoing request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The peer answered with this value.
    Fulfilled(Payload),
    /// The peer's handler failed with this message.
    Rejected(String),
    /// No answer before the deadline.
    Timeout,
    /// The peer was not in the room, or left before answering.
    Disconnected,
}
