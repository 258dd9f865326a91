//! The node's identity: a persistent signing key and the peer id derived from it.

use nostr_sdk::{Keys, PublicKey, SecretKey};
use sha2::{Digest as _, Sha512};

use crate::store::{Store, StoreError};
use crate::wire::topic::{PEER_ID_LEN, id_from_bytes};

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

impl Identity {
    /// Loads the node's key from the store, creating it on first start.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        let secret = store.identity_secret(|| Keys::generate().secret_key().to_secret_bytes())?;
        let key = SecretKey::from_slice(&secret).map_err(|_| StoreError::Corrupt("identity"))?;
        let keys = Keys::new(key);
        let peer_id = peer_id_for(&keys.public_key());
        Ok(Identity { keys, peer_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::topic::is_valid_peer_id;

    #[test]
    fn id_is_stable_and_checkable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Identity::load(&Store::open(dir.path()).expect("open")).expect("identity");
        let b = Identity::load(&crate::store::reopen(dir.path())).expect("identity");
        assert_eq!(a.peer_id, b.peer_id);
        assert!(is_valid_peer_id(&a.peer_id));
        assert_eq!(peer_id_for(&a.keys.public_key()), a.peer_id);
        assert_ne!(peer_id_for(&Keys::generate().public_key()), a.peer_id);
    }
}
