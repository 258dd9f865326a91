//! Cellular overlay for large rooms, as a sans-IO core: no async, no sockets, time passed in.
//!
//! Inputs are topology changes (computed from the room's roster), link up/down, received frames
//! and clock ticks; outputs are links to open or close, frames to send and messages to deliver.
//! The daemon drives [`router::Mesh`]; the simulator (`meshrtc-sim`) drives it and the seed
//! system's algorithm ([`genos::GenosPeer`]) through the same [`Overlay`] trait.

pub mod admission;
pub mod genos;
pub mod plumtree;
mod replay;
pub mod roster;
pub mod router;
pub mod topology;

use std::sync::Arc;
use std::time::Instant;

use crate::wire::cell::CellFrame;

pub use router::{Mesh, MeshConfig, MeshDrop};
pub use topology::{CellSize, Member, Topology, placement};

/// What an overlay asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeshOutput {
    /// Make sure a link to this peer exists.
    Open(String),
    /// Close the link to this peer.
    Close(String),
    /// Send a frame over the link to this peer.
    Send(String, CellFrame),
    /// Hand the frame's payload to the local room.
    Deliver(CellFrame),
    /// Tell this peer which recent frames we hold (it asks for those it lacks).
    Have(String, Vec<FrameId>),
    /// Ask this peer for these frames.
    Want(String, Vec<FrameId>),
}

pub use crate::wire::cell::FrameId;

/// One peer's view of an overlay algorithm.
pub trait Overlay {
    /// The shared, precomputed topology the algorithm works from.
    type Topology;
    /// A new topology is in force.
    fn set_topology(&mut self, topo: Arc<Self::Topology>, now: Instant) -> Vec<MeshOutput>;
    /// A link came up.
    fn link_up(&mut self, peer: &str, now: Instant) -> Vec<MeshOutput>;
    /// A link came up to a peer that joined when the origins' clocks read `joined_seq` (frame
    /// sequence numbers are those clocks): what was sent before is not its business.
    fn link_up_since(&mut self, peer: &str, now: Instant, joined_seq: u64) -> Vec<MeshOutput> {
        let _ = joined_seq;
        self.link_up(peer, now)
    }
    /// A link went down.
    fn link_down(&mut self, peer: &str, now: Instant) -> Vec<MeshOutput>;
    /// The next sequence number for a frame this peer originates.
    fn next_seq(&mut self, clock_us: u64) -> u64;
    /// Sends a frame this peer originates (already signed by the caller).
    fn originate(&mut self, frame: CellFrame, now: Instant) -> Vec<MeshOutput>;
    /// A frame arrived over the link to `from` (its signature already checked by the caller).
    fn on_frame(
        &mut self,
        from: &str,
        frame: CellFrame,
        now: Instant,
    ) -> Result<Vec<MeshOutput>, MeshDrop>;
    /// A peer said which recent frames it holds.
    fn on_have(&mut self, from: &str, ids: &[FrameId], now: Instant) -> Vec<MeshOutput> {
        let _ = (from, ids, now);
        Vec::new()
    }
    /// A peer asked for frames.
    fn on_want(&mut self, from: &str, ids: &[FrameId], now: Instant) -> Vec<MeshOutput> {
        let _ = (from, ids, now);
        Vec::new()
    }
    /// Time passed.
    fn tick(&mut self, now: Instant) -> Vec<MeshOutput>;
    /// Links up.
    fn link_count(&self) -> usize;
    /// Estimated bytes of state this peer holds for the overlay.
    fn memory_bytes(&self) -> usize;
}
