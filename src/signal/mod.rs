//! Nostr signaling: message content, the per-room state machine, relay health and pool policy,
//! and the relay driver.

pub mod content;
pub mod driver;
pub mod embedded;
pub mod health;
pub mod pool;
pub mod state;
