//! The core's public types: how a session joins, errors with stable codes, and what `peers`
//! reports.

use super::cells::CellInfo;
use crate::mesh::CellSize;
use crate::room::{Security, SendError};

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
    /// Channels whose messages the node keeps, and how many or how long.
    pub keep: Vec<(String, crate::history::KeepRule)>,
    /// Replay what the node holds of kept channels after this point, then go on live.
    pub since: Option<Since>,
    /// In that replay, skip messages whose origin's signature could not be checked.
    pub verified_only: bool,
    /// Channels whose requests (Trystero request actions) this session answers.
    pub serve: Vec<String>,
}

/// Where a resuming app's replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Everything held.
    All,
    /// After this cursor (the last one the app saw).
    Cursor(crate::history::Cursor),
    /// What was kept in this last span of time.
    Age(std::time::Duration),
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
    /// The node's own state store failed.
    #[error("state store: {0}")]
    Store(String),
    /// The session may not make this request (e.g. a page of another origin asking for the
    /// node's status).
    #[error("{0}")]
    Forbidden(String),
    /// The app is at one of its limits (the message names it).
    #[error("{0}")]
    ResourceExhausted(String),
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
            NodeError::Store(_) => "store_failed",
            NodeError::Forbidden(_) => "forbidden",
            NodeError::ResourceExhausted(_) => "resource_exhausted",
        }
    }
}

/// A peer of a room, for `Peers`.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Peer id.
    pub id: crate::ids::PeerId,
    /// Last measured round trip (ms), 0 if none.
    pub rtt_ms: f64,
    /// Time since the link came up (ms).
    pub connected_ms: u64,
    /// How its payloads are protected.
    pub security: Security,
    /// The network path its link took (filled in by the driver from the engine's statistics).
    pub path: Option<crate::link::LinkPath>,
    /// Channels it keeps (a keeper).
    pub keeps: Vec<String>,
    /// Its link's layers and where its bytes wait (filled in by the driver).
    pub health: Option<crate::link::LinkHealth>,
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

/// Why no TURN server works, as apps are told (only when none does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceProblem {
    /// The error code apps see (`turn_auth_failed`, `turn_unreachable`, `turn_failed`).
    pub code: String,
    /// What failed and what it means for connecting.
    pub message: String,
}

/// What went wrong on the history store's thread (told back to the core to be counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreReport {
    /// A kept message could not be stored.
    WriteFailed,
    /// Entries of a replay that did not open.
    Unreadable(u64),
}
