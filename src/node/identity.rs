//! The node's identity kept in its store: the signing key is made once and loaded after (the
//! type and the peer id derivation are pure, in `crate::ids`).

use nostr_sdk::{Keys, SecretKey};

use crate::store::{Store, StoreError};

pub use crate::ids::{Identity, peer_id_for};

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
