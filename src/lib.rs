//! meshrtc: one shared peer-to-peer mesh node per machine, on Trystero's wire.
//!
//! Layout, from the bytes on the wire up to the API (sans-IO cores are marked *pure*: inputs,
//! outputs and time passed in, no sockets, driven by unit tests):
//!
//! - [`wire`] (*pure*): Trystero's codecs — topics, SDP encryption, outer frames, action
//!   chunks, reassembly — plus meshrtc's end-to-end envelope and signed cell frames.
//! - [`signal`]: discovery over Nostr relays. `content` and `state` (*pure*: one room's
//!   announces, offers and answers) and `health` (*pure*: relay scoring); `driver` runs the relay
//!   pool with nostr-sdk; `embedded` is the nostr-relay-builder relay.
//! - [`room`] (*pure*): one room on a set of links — handshake, password proof, ping, leave,
//!   channels, E2E sealing.
//! - [`mesh`] (*pure*): the cellular overlay of large rooms (topology, router) and the GenosRTC
//!   baseline; [`sim`] runs both on a virtual network.
//! - [`transport`]: webrtc-rs peer connections and the one data channel.
//! - [`node`]: where the cores meet — rooms, local sessions, dials and links, the watchdog, the
//!   cells census; the only place that owns sockets and relays. `hooks` serves tests.
//! - [`api`]: the gRPC service and the WebSocket bridge, one [`proto`] schema for both.
//! - [`drops`]: the named counters of refused input, as status shows them.
//! - [`store`], [`config`], [`client`]: sled state, configuration, the gRPC client of the CLI.

pub mod api;
pub mod client;
pub mod config;
pub mod drops;
pub mod mesh;
pub mod node;
pub mod proto;
pub mod room;
pub mod signal;
pub mod sim;
pub mod store;
pub mod transport;
pub mod wire;
