//! meshrtc: one shared peer-to-peer mesh node per machine, on Trystero's wire.

pub mod api;
pub mod client;
pub mod config;
pub mod mesh;
pub mod node;
pub mod proto;
pub mod room;
pub mod signal;
pub mod sim;
pub mod store;
pub mod transport;
pub mod wire;
