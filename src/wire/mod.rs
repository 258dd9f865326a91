//! Sans-IO codecs for Trystero's wire: topics, SDP encryption, outer frames, action chunks.

pub mod cell;
pub mod chunk;
pub mod e2e;
pub mod frame;
pub mod history;
pub mod reassembly;
pub mod roster;
pub mod sdp_crypto;
pub mod topic;

pub use chunk::{ActionChunk, Payload, encode_payload};
pub use frame::OuterFrame;
pub use reassembly::{Assembled, Reassembler, ReassemblyError, Step};
