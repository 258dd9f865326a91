//! What one room holds, per channel tag, and which entries go when a channel or the room is over
//! its limits. Pure: the store feeds it what it wrote and deletes what it answers.

use std::collections::{BTreeMap, VecDeque};

use super::{Cursor, KeepRule};

/// Entries to delete, oldest first.
pub type Prune = Vec<Cursor>;

/// One channel's entries: (cursor, bytes), oldest first.
#[derive(Debug, Default, Clone)]
struct Channel {
    entries: VecDeque<(Cursor, u64)>,
}

/// A room's kept entries, as far as limits are concerned.
#[derive(Debug, Default, Clone)]
pub struct RoomIndex {
    channels: BTreeMap<[u8; 8], Channel>,
    bytes: u64,
    count: u64,
}

/// Totals of a room's history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Entries held.
    pub messages: u64,
    /// Bytes they take (stored values).
    pub bytes: u64,
    /// Oldest and newest cursors.
    pub oldest: Option<Cursor>,
    /// Newest cursor.
    pub newest: Option<Cursor>,
}

impl RoomIndex {
    /// Records an entry that is in the store (at start, in any order per channel is fine only
    /// if fed in cursor order, as a sled scan does).
    pub fn insert(&mut self, tag: [u8; 8], cursor: Cursor, bytes: u64) {
        self.channels
            .entry(tag)
            .or_default()
            .entries
            .push_back((cursor, bytes));
        self.bytes += bytes;
        self.count += 1;
    }

    /// Takes entries out for the limits: the channel's rule (count, age as of `now`), then the
    /// room's byte budget, oldest across channels first. The caller deletes what is returned.
    pub fn enforce(
        &mut self,
        tag: [u8; 8],
        rule: Option<KeepRule>,
        budget: u64,
        now: Cursor,
    ) -> Prune {
        let mut gone = Vec::new();
        if let Some(rule) = rule {
            let floor = rule
                .max_age
                .map(|age| now.minus_micros(age.as_micros() as u64));
            while let Some(&(cursor, _)) = self.front(tag) {
                let over_count = rule
                    .max_messages
                    .is_some_and(|max| self.len_of(tag) as u64 > max);
                let too_old = floor.is_some_and(|f| cursor < f);
                if !(over_count || too_old) {
                    break;
                }
                self.pop(tag, &mut gone);
            }
        }
        while self.bytes > budget {
            let Some(oldest) = self
                .channels
                .iter()
                .filter_map(|(t, c)| c.entries.front().map(|(cur, _)| (*cur, *t)))
                .min()
                .map(|(_, t)| t)
            else {
                break;
            };
            self.pop(oldest, &mut gone);
        }
        gone.sort_unstable();
        gone
    }

    /// Bytes the room's entries take.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The room's oldest entry's cursor, across channels.
    pub fn oldest(&self) -> Option<Cursor> {
        self.channels
            .values()
            .filter_map(|c| c.entries.front().map(|(cur, _)| *cur))
            .min()
    }

    /// Takes out the room's oldest entry (for a budget across rooms); the caller deletes it.
    pub fn pop_oldest(&mut self) -> Option<Cursor> {
        let tag = self
            .channels
            .iter()
            .filter_map(|(t, c)| c.entries.front().map(|(cur, _)| (*cur, *t)))
            .min()
            .map(|(_, t)| t)?;
        let mut gone = Vec::new();
        self.pop(tag, &mut gone);
        gone.pop()
    }

    /// Entries older than each channel's age limit (`rules` by tag), for a periodic sweep.
    pub fn expire(&mut self, rules: &BTreeMap<[u8; 8], KeepRule>, now: Cursor) -> Prune {
        let mut gone = Vec::new();
        for (tag, rule) in rules {
            let Some(age) = rule.max_age else { continue };
            let floor = now.minus_micros(age.as_micros() as u64);
            while self.front(*tag).is_some_and(|(c, _)| *c < floor) {
                self.pop(*tag, &mut gone);
            }
        }
        gone.sort_unstable();
        gone
    }

    /// Forgets a channel (its entries are deleted by the caller).
    pub fn clear(&mut self, tag: [u8; 8]) -> Prune {
        let Some(ch) = self.channels.remove(&tag) else {
            return Vec::new();
        };
        for (_, b) in &ch.entries {
            self.bytes -= b;
            self.count -= 1;
        }
        ch.entries.into_iter().map(|(c, _)| c).collect()
    }

    /// Totals of the room, and of one channel when `tag` is given.
    pub fn totals(&self, tag: Option<[u8; 8]>) -> Totals {
        let mut t = Totals::default();
        for (_, ch) in self
            .channels
            .iter()
            .filter(|(k, _)| tag.is_none_or(|x| x == **k))
        {
            t.messages += ch.entries.len() as u64;
            t.bytes += ch.entries.iter().map(|(_, b)| b).sum::<u64>();
            if let Some((first, _)) = ch.entries.front() {
                t.oldest = Some(t.oldest.map_or(*first, |o| o.min(*first)));
            }
            if let Some((last, _)) = ch.entries.back() {
                t.newest = Some(t.newest.map_or(*last, |n| n.max(*last)));
            }
        }
        t
    }

    /// Channel tags held.
    pub fn tags(&self) -> impl Iterator<Item = &[u8; 8]> {
        self.channels.keys()
    }

    fn front(&self, tag: [u8; 8]) -> Option<&(Cursor, u64)> {
        self.channels.get(&tag).and_then(|c| c.entries.front())
    }

    fn len_of(&self, tag: [u8; 8]) -> usize {
        self.channels.get(&tag).map_or(0, |c| c.entries.len())
    }

    fn pop(&mut self, tag: [u8; 8], gone: &mut Vec<Cursor>) {
        let Some(ch) = self.channels.get_mut(&tag) else {
            return;
        };
        if let Some((cursor, bytes)) = ch.entries.pop_front() {
            self.bytes -= bytes;
            self.count -= 1;
            gone.push(cursor);
        }
        if ch.entries.is_empty() {
            self.channels.remove(&tag);
        }
    }
}
