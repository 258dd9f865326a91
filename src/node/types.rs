//! The node's public types: what `status` reports, and (from the core) join options, errors with
//! stable codes and what `peers` reports.

use std::collections::BTreeMap;

use crate::drops::DropReason;
use crate::signal::driver::RelayState;

pub use super::core::types::{JoinOptions, NodeError, PeerInfo, RoomInfo, Since};

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
    /// TURN servers and what they last said.
    pub turn: Vec<crate::node::turn::TurnServerStatus>,
    /// Links whose path runs through a TURN allocation of this node.
    pub links_relayed: u32,
}
