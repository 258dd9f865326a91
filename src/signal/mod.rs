//! Nostr signaling: message content, the per-room state machine, relay health and pool policy,
//! Trystero's default relays per app, and the relay driver.

pub mod budget;
pub mod content;
pub mod defaults;
pub mod driver;
pub mod embedded;
pub mod health;
pub mod pool;
pub mod relay_socket;
pub mod rules;
pub mod state;
pub mod verified;

/// What a room's signaling asks of the relay pool: the one message from the sans-IO state
/// machine ([`state::Action::Relay`]) through the node to the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayCommand {
    /// Sign and publish `content` on `topic`, to one relay or to all of the app's.
    Publish {
        /// The app whose room publishes: the pool publishes on that app's relays.
        app: String,
        /// Topic (`x` tag); the kind derives from it.
        topic: String,
        /// Content JSON.
        content: String,
        /// Only this relay, if given (and usable for the app).
        relay: Option<String>,
    },
    /// Replace the subscription with these topics (empty: unsubscribe); each is subscribed on
    /// its app's relays only.
    Subscribe(Vec<AppTopic>),
}

/// A topic the node listens on, with the app whose room it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AppTopic {
    /// The app id of the room.
    pub app: String,
    /// The topic (`x` tag).
    pub topic: String,
}

/// A signaling event from a relay, signature already verified.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Relay it came through.
    pub relay: String,
    /// Value of its `x` tag.
    pub topic: String,
    /// Event content.
    pub content: String,
    /// The event's author (x-only public key).
    pub pubkey: [u8; 32],
}
