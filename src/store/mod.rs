//! Node state in sled: identity and other small typed records under versioned keys, and the
//! kept room messages (`history`).

pub mod history;

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
        // No background flush: every writer flushes what it wrote (records and the identity
        // at once, kept messages within 50 ms, `node::history_io`). sled's flusher wakes on its
        // period whether or not anything was written, with an fsync each time: at the 50 ms
        // that kept messages need, 40 wake-ups a second of an idle node.
        let db = sled::Config::new()
            .path(data_dir.join("state"))
            .flush_every_ms(None)
            .open()?;
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

/// Prefix of relay health records (`v1/relay/<url>`, JSON).
const PREFIX_RELAY: &[u8] = b"v1/relay/";
/// The cached extended relay list (JSON array of URLs).
const KEY_RELAY_LIST: &[u8] = b"v1/relay-list";

impl Store {
    /// Every stored relay record that decodes as `T` (the relay pool keeps its health records
    /// here; the store does not need to know their shape).
    pub fn relay_records<T: serde::de::DeserializeOwned>(&self) -> Vec<T> {
        self.db
            .scan_prefix(PREFIX_RELAY)
            .filter_map(|r| r.ok())
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect()
    }

    /// Saves relay records, each under its relay's URL.
    pub fn save_relay_records<'a, T: serde::Serialize + 'a>(
        &self,
        records: impl IntoIterator<Item = (&'a str, &'a T)>,
    ) -> Result<(), StoreError> {
        for (url, record) in records {
            let mut key = PREFIX_RELAY.to_vec();
            key.extend_from_slice(url.as_bytes());
            self.db
                .insert(key, serde_json::to_vec(record).unwrap_or_default())?;
        }
        self.db.flush()?;
        Ok(())
    }

    /// The cached extended relay list.
    pub fn relay_list(&self) -> Vec<String> {
        self.db
            .get(KEY_RELAY_LIST)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default()
    }

    /// Replaces the cached extended relay list.
    pub fn save_relay_list(&self, urls: &[String]) -> Result<(), StoreError> {
        self.db
            .insert(KEY_RELAY_LIST, serde_json::to_vec(urls).unwrap_or_default())?;
        self.db.flush()?;
        Ok(())
    }
}

/// Opens the store a test has just dropped in the same process. sled's background flusher holds
/// the file lock for up to one flush interval after the last handle goes (a restarted daemon is a
/// new process and never meets this), so the reopen waits for it, 5 s at most.
#[cfg(test)]
pub(crate) fn reopen(data_dir: &Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open(data_dir) {
            Ok(store) => return store,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopen: {e:?}"),
        }
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

    #[test]
    fn relay_records_persist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let h = serde_json::json!({"url": "ws://a", "score": 0.5});
        store.save_relay_records([("ws://a", &h)]).expect("save");
        store
            .save_relay_list(&["wss://x".into()])
            .expect("save list");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.relay_records::<serde_json::Value>(), vec![h]);
        assert_eq!(store.relay_list(), vec!["wss://x".to_string()]);
    }
}
