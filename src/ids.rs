//! Ids as types (pure): a number that names a connection, a session or a local track cannot be
//! passed where another is meant; and the node's identity, whose peer id derives from its public key.

use std::fmt;

use nostr_sdk::{Keys, PublicKey};
use sha2::{Digest as _, Sha512};

use crate::wire::topic::{PEER_ID_LEN, id_from_bytes};

/// Identifies one connection attempt; events carry it so stale connections are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ConnId(pub u64);

/// Identifies a local session (one app connection to the node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SessionId(pub u64);

/// Identifies a track this node publishes (a local track an app or page added).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TrackId(pub u64);

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The node's signing key and peer id.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Signs every Nostr event the node publishes.
    pub keys: Keys,
    /// 20 symbols of the Trystero alphabet, derived from the public key.
    pub peer_id: String,
}

/// Derives the peer id of a public key: SHA-512 of a domain tag and the key, mapped onto the alphabet.
pub fn peer_id_for(public_key: &PublicKey) -> String {
    let mut counter = 0u32;
    loop {
        let mut h = Sha512::new();
        h.update(b"meshrtc/peer-id/v1");
        h.update(public_key.to_bytes());
        h.update(counter.to_be_bytes());
        if let Some(id) = id_from_bytes(&h.finalize(), PEER_ID_LEN) {
            return id;
        }
        counter += 1;
    }
}
