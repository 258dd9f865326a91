//! Kept room messages in sled: one tree, keys `room id (16 bytes) | cursor (u64 BE)`, values as
//! `history` lays them out. The per-room indexes that decide pruning are rebuilt by one scan at
//! open, which also drops damaged values (a crash mid-write, a bad disk) with a log line.

use std::collections::BTreeMap;

use super::{Store, StoreError};
use crate::history::{self, Cursor, KeepRule, RoomIndex, Totals};

pub use crate::history::Budgets;

/// Name of the sled tree.
const TREE: &str = "history/v1";

/// The kept messages of every room, and their indexes.
#[derive(Debug)]
pub struct HistoryStore {
    tree: sled::Tree,
    rooms: BTreeMap<[u8; 16], RoomIndex>,
    last: Cursor,
    damaged: u64,
}

fn key(room: &[u8; 16], cursor: Cursor) -> [u8; 24] {
    let mut k = [0; 24];
    k[..16].copy_from_slice(room);
    k[16..].copy_from_slice(&cursor.micros().to_be_bytes());
    k
}

fn split(k: &[u8]) -> Option<([u8; 16], Cursor)> {
    let room: [u8; 16] = k.get(..16)?.try_into().ok()?;
    let cursor = Cursor(u64::from_be_bytes(k.get(16..24)?.try_into().ok()?));
    (k.len() == 24).then_some((room, cursor))
}

/// Reads kept values without the store's indexes: cheap to clone, safe on any thread (sled
/// trees are), so a keeper reads a peer's catch-up page on a blocking thread.
#[derive(Debug, Clone)]
pub struct HistoryReader {
    tree: sled::Tree,
}

impl HistoryReader {
    /// The values of a room kept after `after`, oldest first.
    pub fn after(
        &self,
        room: &[u8; 16],
        after: Cursor,
    ) -> impl Iterator<Item = (Cursor, sled::IVec)> + use<> {
        let from = key(room, Cursor(after.micros().saturating_add(1)));
        let to = key(room, Cursor(u64::MAX));
        self.tree
            .range(from..=to)
            .filter_map(|r| r.ok())
            .filter_map(|(k, v)| split(&k).map(|(_, c)| (c, v)))
    }
}

impl HistoryStore {
    /// Opens the history of a store, checking every value.
    pub fn open(store: &Store) -> Result<HistoryStore, StoreError> {
        Self::from_tree(store.db.open_tree(TREE)?)
    }

    /// A history kept in memory only (nodes started without a data directory).
    pub fn temporary() -> Result<HistoryStore, StoreError> {
        let db = sled::Config::new().temporary(true).open()?;
        Self::from_tree(db.open_tree(TREE)?)
    }

    fn from_tree(tree: sled::Tree) -> Result<HistoryStore, StoreError> {
        let mut rooms: BTreeMap<[u8; 16], RoomIndex> = BTreeMap::new();
        let mut bad = Vec::new();
        let mut last = Cursor::default();
        for item in tree.iter() {
            let (k, v) = item?;
            match (split(&k), history::check(&v)) {
                (Some((room, cursor)), Ok(tag)) => {
                    rooms
                        .entry(room)
                        .or_default()
                        .insert(tag, cursor, v.len() as u64);
                    last = last.max(cursor);
                }
                _ => bad.push(k),
            }
        }
        let damaged = bad.len() as u64;
        for k in bad {
            tree.remove(k)?;
        }
        if damaged > 0 {
            tracing::warn!(damaged, "history: dropped damaged entries found at start");
        }
        Ok(HistoryStore {
            tree,
            rooms,
            last,
            damaged,
        })
    }

    /// Damaged entries dropped at open.
    pub fn damaged(&self) -> u64 {
        self.damaged
    }

    /// The newest cursor held (cursors go on from there after a restart).
    pub fn last_cursor(&self) -> Cursor {
        self.last
    }

    /// Stores a value and applies the channel's rule, the room's byte budget, and the byte
    /// budget of every room together (the oldest entry of any room goes first).
    pub fn append(
        &mut self,
        room: &[u8; 16],
        cursor: Cursor,
        value: &[u8],
        rule: Option<KeepRule>,
        budgets: Budgets,
    ) -> Result<(), StoreError> {
        let tag = history::check(value).map_err(|_| StoreError::Corrupt("history value"))?;
        self.tree.insert(key(room, cursor), value)?;
        self.last = self.last.max(cursor);
        let index = self.rooms.entry(*room).or_default();
        index.insert(tag, cursor, value.len() as u64);
        let gone = index.enforce(tag, rule, budgets.room, cursor);
        self.delete(room, &gone)?;
        self.enforce_node(budgets.node)
    }

    /// Drops the oldest entries across rooms until all of them fit `budget`.
    fn enforce_node(&mut self, budget: u64) -> Result<(), StoreError> {
        let mut total: u64 = self.rooms.values().map(RoomIndex::bytes).sum();
        let mut gone: BTreeMap<[u8; 16], Vec<Cursor>> = BTreeMap::new();
        while total > budget {
            let Some(room) = self
                .rooms
                .iter()
                .filter_map(|(r, ix)| ix.oldest().map(|c| (c, *r)))
                .min()
                .map(|(_, r)| r)
            else {
                break;
            };
            let Some(ix) = self.rooms.get_mut(&room) else {
                break;
            };
            let before = ix.bytes();
            let Some(cursor) = ix.pop_oldest() else {
                break;
            };
            total -= before - ix.bytes();
            gone.entry(room).or_default().push(cursor);
        }
        for (room, cursors) in gone {
            self.delete(&room, &cursors)?;
        }
        Ok(())
    }

    /// Drops what is older than each channel's age limit.
    pub fn expire(
        &mut self,
        room: &[u8; 16],
        rules: &BTreeMap<[u8; 8], KeepRule>,
        now: Cursor,
    ) -> Result<(), StoreError> {
        let Some(index) = self.rooms.get_mut(room) else {
            return Ok(());
        };
        let gone = index.expire(rules, now);
        self.delete(room, &gone)
    }

    fn delete(&mut self, room: &[u8; 16], cursors: &[Cursor]) -> Result<(), StoreError> {
        if cursors.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for c in cursors {
            batch.remove(&key(room, *c));
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// The values of a room kept after `after`, oldest first.
    pub fn after(
        &self,
        room: &[u8; 16],
        after: Cursor,
    ) -> impl Iterator<Item = (Cursor, sled::IVec)> + use<> {
        self.reader().after(room, after)
    }

    /// A read-only handle for serving catch-up pages away from the node's lock.
    pub fn reader(&self) -> HistoryReader {
        HistoryReader {
            tree: self.tree.clone(),
        }
    }

    /// Totals of a room (of one channel when its tag is given).
    pub fn totals(&self, room: &[u8; 16], tag: Option<[u8; 8]>) -> Totals {
        self.rooms
            .get(room)
            .map(|ix| ix.totals(tag))
            .unwrap_or_default()
    }

    /// Channel tags a room holds.
    pub fn tags(&self, room: &[u8; 16]) -> Vec<[u8; 8]> {
        self.rooms
            .get(room)
            .map(|ix| ix.tags().copied().collect())
            .unwrap_or_default()
    }

    /// Removes one channel of a room; returns how many entries went.
    pub fn clear(&mut self, room: &[u8; 16], tag: [u8; 8]) -> Result<usize, StoreError> {
        let gone = self
            .rooms
            .get_mut(room)
            .map(|ix| ix.clear(tag))
            .unwrap_or_default();
        self.delete(room, &gone)?;
        Ok(gone.len())
    }

    /// Writes what is buffered to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.tree.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Entry, HistoryKey};
    use crate::wire::Payload;

    fn value(key: &HistoryKey, channel: &str, text: &str) -> Vec<u8> {
        let e = Entry {
            channel: channel.into(),
            origin: "p".into(),
            origin_seq: 1,
            origin_ms: 1,
            payload: Payload::Text(text.into()),
            meta: None,
            verified: true,
            signed: None,
            framed: None,
        };
        history::encode(&e, key, rand::random())
    }

    #[test]
    fn entries_survive_reopen_and_damaged_ones_are_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let room = history::room_id("app", "r");
        let k = HistoryKey::open_room("app", "r");
        {
            let store = Store::open(dir.path()).expect("open");
            let mut h = HistoryStore::open(&store).expect("history");
            for i in 1..=5 {
                h.append(
                    &room,
                    Cursor(i),
                    &value(&k, "chat", &format!("m{i}")),
                    None,
                    Budgets {
                        room: u64::MAX,
                        node: u64::MAX,
                    },
                )
                .expect("append");
            }
            // A value cut short on disk, as a crash mid-write or a bad sector leaves it.
            let mut cut = value(&k, "chat", "m6");
            cut.truncate(cut.len() - 3);
            h.tree
                .insert(key(&room, Cursor(6)), cut)
                .expect("raw insert");
            h.flush().expect("flush");
        }
        let store = crate::store::reopen(dir.path());
        let h = HistoryStore::open(&store).expect("history");
        assert_eq!(h.damaged(), 1);
        assert_eq!(h.last_cursor(), Cursor(5));
        let after: Vec<u64> = h.after(&room, Cursor(2)).map(|(c, _)| c.micros()).collect();
        assert_eq!(after, vec![3, 4, 5]);
        assert_eq!(h.totals(&room, None).messages, 5);
    }

    #[test]
    fn the_budget_holds_and_channels_clear() {
        let mut h = HistoryStore::temporary().expect("temporary");
        let room = history::room_id("app", "r");
        let k = HistoryKey::open_room("app", "r");
        let size = value(&k, "chat", "0123456789").len() as u64;
        for i in 1..=100 {
            let budgets = Budgets {
                room: size * 10,
                node: u64::MAX,
            };
            h.append(
                &room,
                Cursor(i),
                &value(&k, "chat", "0123456789"),
                None,
                budgets,
            )
            .expect("append");
            assert!(h.totals(&room, None).bytes <= size * 10);
        }
        assert_eq!(
            h.after(&room, Cursor(0)).next().map(|(c, _)| c),
            Some(Cursor(91))
        );
        assert_eq!(h.clear(&room, k.tag("chat")).expect("clear"), 10);
        assert_eq!(h.after(&room, Cursor(0)).count(), 0);
    }

    #[test]
    fn every_rooms_history_together_stays_within_the_node_budget_oldest_first() {
        let mut h = HistoryStore::temporary().expect("temporary");
        let (a, b) = (history::room_id("app", "a"), history::room_id("app", "b"));
        let k = HistoryKey::open_room("app", "a");
        let size = value(&k, "chat", "0123456789").len() as u64;
        let budgets = Budgets {
            room: u64::MAX,
            node: size * 10,
        };
        // Room a fills the budget first; room b's entries then push a's oldest out.
        for i in 1..=10 {
            h.append(
                &a,
                Cursor(i),
                &value(&k, "chat", "0123456789"),
                None,
                budgets,
            )
            .expect("append");
        }
        for i in 11..=15 {
            h.append(
                &b,
                Cursor(i),
                &value(&k, "chat", "0123456789"),
                None,
                budgets,
            )
            .expect("append");
        }
        let total = h.totals(&a, None).bytes + h.totals(&b, None).bytes;
        assert!(total <= size * 10);
        assert_eq!(h.totals(&b, None).messages, 5);
        assert_eq!(
            h.after(&a, Cursor(0)).next().map(|(c, _)| c),
            Some(Cursor(6))
        );
    }
}
