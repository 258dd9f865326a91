//! meshrtc: one shared peer-to-peer mesh node per machine, on Trystero's wire.

pub mod config;
pub mod node;
pub mod room;
pub mod signal;
pub mod store;
pub mod transport;
pub mod wire;
pub mod api;
pub mod client;
pub mod proto;
