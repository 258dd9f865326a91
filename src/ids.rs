//! Ids as types (pure): a number that names a connection, a session or a local track, or a
//! string that names a peer, cannot be passed where another is meant; and the node's identity,
//! whose peer id derives from its public key.

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

/// A peer's id (20 symbols of Trystero's alphabet, or a page's own), as a type: a peer is never
/// taken for an app, a room or a channel. It reads as a `&str` where one is wanted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PeerId(String);

impl PeerId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned string (for the wire and the proto).
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::ops::Deref for PeerId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for PeerId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for PeerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<String> for PeerId {
    fn from(id: String) -> Self {
        PeerId(id)
    }
}

impl From<&str> for PeerId {
    fn from(id: &str) -> Self {
        PeerId(id.to_owned())
    }
}

impl From<&String> for PeerId {
    fn from(id: &String) -> Self {
        PeerId(id.clone())
    }
}

impl From<PeerId> for String {
    fn from(id: PeerId) -> Self {
        id.0
    }
}

impl PartialEq<str> for PeerId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for PeerId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for PeerId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<PeerId> for String {
    fn eq(&self, other: &PeerId) -> bool {
        *self == other.0
    }
}

impl PartialEq<PeerId> for &str {
    fn eq(&self, other: &PeerId) -> bool {
        *self == other.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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
