//! Nostr signaling: message content, the per-room state machine, relay health and pool policy,
//! and the relay driver.

pub mod budget;
pub mod content;
pub mod driver;
pub mod embedded;
pub mod health;
pub mod pool;
pub mod state;

/// What a room's signaling asks of the relay pool: the one message from the sans-IO state
/// machine ([`state::Action::Relay`]) through the node to the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayCommand {
    /// Sign and publish `content` on `topic`, to one relay or to all.
    Publish {
        /// Topic (`x` tag); the kind derives from it.
        topic: String,
        /// Content JSON.
        content: String,
        /// Only this relay, if given (and usable).
        relay: Option<String>,
    },
    /// Replace the subscription with these topics (empty: unsubscribe).
    Subscribe(Vec<String>),
}
