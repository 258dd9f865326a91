//! meshrtc: one shared peer-to-peer mesh node per machine, on Trystero's wire.
//!
//! Layout, from the bytes on the wire up to the API (sans-IO cores are marked *pure*: inputs,
//! outputs and time passed in, no sockets, driven by unit tests):
//!
//! - [`wire`] (*pure*): Trystero's codecs — topics, SDP encryption, outer frames, action
//!   chunks, reassembly — plus meshrtc's end-to-end envelope and signed cell frames.
//! - [`signal`]: discovery over Nostr relays. `content` and `state` (*pure*: one room's
//!   announces, offers and answers), `health` (*pure*: relay scoring), `defaults` (*pure*:
//!   Trystero's default relays per app) and `pool` (*pure*: the relay pool's state machine,
//!   which relays each room uses); `driver` runs the pool with nostr-sdk (I/O only); `embedded`
//!   is the nostr-relay-builder relay.
//! - [`room`] (*pure*): one room on a set of links — handshake, password proof, ping, leave,
//!   channels, E2E sealing, and Trystero's media messages (`room::media`).
//! - [`mesh`] (*pure*): the cellular overlay of large rooms (topology, router) and the GenosRTC
//!   baseline; [`sim`] runs both on a virtual network.
//! - [`transport`]: webrtc-rs peer connections, the one data channel, and media tracks
//!   (`transport::media`: local and remote tracks, renegotiation steps).
//! - [`node`]: where the cores meet. `node::core` (*pure*) holds the node's state and every
//!   decision — rooms, sessions, dials and links, the watchdog, the cells census and overlay
//!   (`core::cells`) — fed one `core::Input` at a time by `Core::handle(input, now)` and
//!   answering with effects, with its own event (`core::events`), error and info
//!   (`core::types`) types. Features answer lifecycle hooks (peer joined or left, link down,
//!   room closed, tick) called by one dispatcher in a stated order (`core::lifecycle`). `Node`
//!   is the thin driver that owns sockets, relays and session queues and runs those effects;
//!   `node::history_io` is the history store's own thread (keeps, replays and listings off the
//!   node's lock). `harness` (tests only) wires many cores on a virtual network with faults;
//!   `hooks` serves end-to-end tests.
//! - [`api`]: the gRPC service and the WebSocket bridge, one [`proto`] schema for both.
//! - [`history`] (*pure*): durable channels — keep rules, the stored value layout (sealed in
//!   password rooms), pruning, catch-up pages, the per-channel listing; `store::history` is its
//!   sled I/O and `node::core` decides what is kept, replayed and served.
//! - [`codec`] (*pure*): codecs, media kinds and what a local track is.
//! - [`drops`]: the named counters of refused input, as status shows them.
//! - [`link`] (*pure*): a link's path and its layers' health, as `peers` reports them.
//! - [`ids`] (*pure*): connection, session and local track ids as types, the node's identity
//!   and peer ids (history cursors are `history::Cursor`).
//! - [`background`]: the low-priority threads for work done for others (relays, catch-up reads).
//! - [`store`], [`config`]: sled state, configuration.
//! - [`client`]: the Rust client library (connect, `Session`: join, send, events, replies); the
//!   CLI is one user of it, `examples/chat.rs` another.

pub mod api;
pub mod background;
pub mod client;
pub mod codec;
pub mod config;
pub mod drops;
pub mod history;
pub mod ids;
pub mod link;
pub mod mesh;
pub mod metrics;
pub mod node;
pub mod proto;
pub mod room;
pub mod signal;
pub mod sim;
pub mod store;
pub mod transport;
pub mod wire;
