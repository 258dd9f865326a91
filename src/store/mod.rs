//! Node state in sled: identity and other small typed records under versioned keys.

use std::path::Path;

/// Key of the node's 32-byte signing secret.
const KEY_IDENTITY: &[u8] = b"v1/identity/secret";

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (disk, lock held by another daemon, corruption).
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record has the wrong shape.
    #[error("state store: corrupt record {0}")]
    Corrupt(&'static str),
}

/// The node's persistent state.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
}

impl Store {
    /// Opens (or creates) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(data_dir.join("state")).open()?;
        Ok(Store { db })
    }

    /// The node's signing secret, created (with `generate`) on first use.
    pub fn identity_secret(
        &self,
        generate: impl FnOnce() -> [u8; 32],
    ) -> Result<[u8; 32], StoreError> {
        if let Some(v) = self.db.get(KEY_IDENTITY)? {
            return v
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("identity"));
        }
        let secret = generate();
        self.db.insert(KEY_IDENTITY, &secret[..])?;
        self.db.flush()?;
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Store::open(dir.path())
            .expect("open")
            .identity_secret(|| [7; 32])
            .expect("secret");
        let b = Store::open(dir.path())
            .expect("reopen")
            .identity_secret(|| [9; 32])
            .expect("secret");
        assert_eq!(a, [7; 32]);
        assert_eq!(b, [7; 32]);
    }
}
