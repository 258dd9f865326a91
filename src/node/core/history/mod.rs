//! Durable channels in the core: which messages a room keeps (with their cursors), and the
//! replays of resuming sessions. The store itself is the driver's (`store::history`); the core
//! only decides, so a replay is ordered with live events by the order of effects.

mod catchup;
mod keepers;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::history::{Cursor, Entry, HistoryKey, KeepRule};
use crate::node::core::events::SessionId;
use crate::node::core::types::Since;
use crate::node::core::{Core, Effect, RoomKey};
use crate::wire::Payload;
use crate::wire::history::OriginSig;
use catchup::Catchup;
use serde_json::Value;

/// A room's history: where it is filed, its key, what it keeps, and catch-up with peers.
pub(crate) struct RoomHistory {
    /// The id its entries are filed under.
    pub id: [u8; 16],
    /// Seals (password rooms) and tags its entries.
    pub key: HistoryKey,
    /// What origin signatures bind a message to (the room's root topic).
    pub salt: Vec<u8>,
    /// Kept channels: the union of what the sessions that joined asked for.
    pub keep: BTreeMap<String, KeepRule>,
    /// Peers that keep channels, and which.
    pub keepers: BTreeMap<String, BTreeSet<String>>,
    /// Origin signatures received, per peer, waiting for their message: (digest, signature).
    pub sigs: BTreeMap<String, VecDeque<([u8; 32], OriginSig)>>,
    /// Each requesting peer's budget for catch-up reads.
    pub served: BTreeMap<String, keepers::ServeBudget>,
    /// Sessions catching up from a keeper.
    pub catchups: Vec<Catchup>,
    /// A request per peer waiting for its budget or a reading slot (a newer one replaces it):
    /// (cursor to scan from, after_ms, channels).
    pub deferred: BTreeMap<String, (Cursor, u64, BTreeSet<String>)>,
    /// Our last origin sequence number in this room.
    pub seq: u64,
}

impl RoomHistory {
    /// The history of a room (sealed with a key derived from the room key in password rooms).
    pub fn new(key: &RoomKey, room_key: Option<&[u8; 32]>, salt: &[u8]) -> Self {
        RoomHistory {
            id: crate::history::room_id(&key.app, &key.room),
            key: match room_key {
                Some(k) => HistoryKey::password_room(k),
                None => HistoryKey::open_room(&key.app, &key.room),
            },
            salt: salt.to_vec(),
            keep: BTreeMap::new(),
            keepers: BTreeMap::new(),
            sigs: BTreeMap::new(),
            served: BTreeMap::new(),
            catchups: Vec::new(),
            deferred: BTreeMap::new(),
            seq: 0,
        }
    }

    /// Adds a session's rules (two rules for a channel keep what either asked for); true when a
    /// channel was not kept before.
    pub fn add_rules(&mut self, rules: &[(String, KeepRule)]) -> bool {
        let before = self.keep.len();
        for (channel, rule) in rules {
            self.keep
                .entry(channel.clone())
                .and_modify(|r| *r = r.union(*rule))
                .or_insert(*rule);
        }
        self.keep.len() > before
    }

    /// What a joined peer is: a keeper once it declared kept channels, else a member.
    pub fn peer_type(&self, peer: &str) -> crate::node::core::events::PeerType {
        use crate::node::core::events::PeerType;
        if self.keepers.contains_key(peer) {
            PeerType::Keeper
        } else {
            PeerType::Member
        }
    }
}

/// A message on its way to the sessions, as the history sees it.
pub(in crate::node::core) struct Incoming<'a> {
    pub channel: &'a str,
    pub from: &'a str,
    pub payload: &'a Payload,
    pub meta: Option<&'a Value>,
    pub verified: bool,
    pub signed: Option<OriginSig>,
    /// The cell frame payload `signed` covers (cells rooms).
    pub framed: Option<Vec<u8>>,
}

/// A message to keep: stored (encrypted with a fresh nonce) and the room's limits applied.
#[derive(Debug)]
pub struct KeptMessage {
    /// The room's history id.
    pub room: [u8; 16],
    /// The room's history key.
    pub key: HistoryKey,
    /// The message's cursor.
    pub cursor: Cursor,
    /// The message (boxed: it is much larger than the other effects).
    pub entry: Box<Entry>,
    /// Its channel's rule.
    pub rule: KeepRule,
    /// The room's and the node's byte budgets.
    pub budgets: crate::history::Budgets,
}

/// A resuming session's replay: which kept entries it gets and how each is told. Both drivers
/// (the node's and the harness's) read the entries and ask this, so the rule lives once.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// The session's handle of the room.
    pub handle: u32,
    /// The room's app id.
    pub app: String,
    /// The room's id.
    pub room_id: String,
    /// Channels the session receives (empty: all).
    pub channels: BTreeSet<String>,
    /// This node's peer id (its own messages are replayed as local).
    pub me: String,
    /// Skip entries whose origin was not verified.
    pub verified_only: bool,
}

impl Replay {
    /// The event a kept entry at `cursor` becomes for the session, if it gets it.
    pub fn event(
        &self,
        cursor: Cursor,
        e: Entry,
    ) -> Option<crate::node::core::events::SessionEvent> {
        if !self.channels.is_empty() && !self.channels.contains(&e.channel)
            || self.verified_only && !e.verified
        {
            return None;
        }
        Some(crate::node::core::events::SessionEvent {
            room: self.handle,
            app: self.app.clone(),
            room_id: self.room_id.clone(),
            kind: crate::node::core::events::EventKind::Message {
                local: e.origin == self.me,
                channel: e.channel,
                from: e.origin.into(),
                payload: e.payload,
                meta: e.meta,
                cursor,
                history: true,
                verified: e.verified,
            },
        })
    }
}

impl Core {
    /// Cursors go on after the newest the store holds (the driver tells, once, at start).
    pub fn seed_cursor(&mut self, last: Cursor) {
        self.last_cursor = self.last_cursor.max(last);
    }

    fn next_cursor(&mut self) -> Cursor {
        self.last_cursor = Cursor::from_micros(self.wall_us().max(self.last_cursor.micros() + 1));
        self.last_cursor
    }

    /// Keeps a message if its room keeps its channel; returns its cursor (zero: not kept).
    pub(in crate::node::core) fn keep(&mut self, key: &RoomKey, m: Incoming<'_>) -> Cursor {
        let Some((rule, room, history_key)) = self.st.rooms.get(key).and_then(|e| {
            let rule = e.history.keep.get(m.channel).copied()?;
            Some((rule, e.history.id, e.history.key.clone()))
        }) else {
            return Cursor::default();
        };
        let cursor = self.next_cursor();
        let effect = Effect::Keep(KeptMessage {
            room,
            key: history_key,
            cursor,
            entry: Box::new(Entry {
                channel: m.channel.to_owned(),
                origin: m.from.to_owned(),
                origin_seq: m.signed.map_or(0, |s| s.seq),
                origin_ms: self.wall_us() / 1_000,
                payload: m.payload.clone(),
                meta: m.meta.cloned(),
                verified: m.verified || m.signed.is_some(),
                signed: m.signed,
                framed: m.framed,
            }),
            rule,
            budgets: crate::history::Budgets {
                room: self.config.history_budget,
                node: self.config.history_node_budget,
            },
        });
        self.effect(effect);
        cursor
    }

    /// Replays a room's kept messages to a session, before anything live: from this node's
    /// own history when it keeps channels of the room, else from a keeper among its peers.
    pub(in crate::node::core) fn replay(
        &mut self,
        session: SessionId,
        handle: u32,
        key: &RoomKey,
        since: Since,
        verified_only: bool,
    ) {
        let after = match since {
            Since::All => Cursor::default(),
            Since::Cursor(c) => c,
            Since::Age(age) => {
                Cursor::from_micros(self.wall_us()).minus_micros(age.as_micros() as u64)
            }
        };
        let Some(entry) = self.st.rooms.get(key) else {
            return;
        };
        if entry.history.keep.is_empty() {
            self.catch_up(key, session, handle, after.micros() / 1_000, verified_only);
            return;
        }
        let channels: BTreeSet<String> = entry
            .sessions
            .get(&session)
            .map(|sr| sr.channels.clone())
            .unwrap_or_default();
        let effect = Effect::Replay {
            session,
            room: entry.history.id,
            key: entry.history.key.clone(),
            after,
            to: Replay {
                handle,
                app: key.app.clone(),
                room_id: key.room.clone(),
                channels,
                me: self.identity.peer_id.clone(),
                verified_only,
            },
        };
        self.effect(effect);
    }

    /// The history key and kept channel names of a room this node holds.
    pub fn history_of(&self, app: &str, room: &str) -> Option<(HistoryKey, Vec<String>)> {
        let entry = self.st.rooms.get(&RoomKey::new(app, room))?;
        Some((
            entry.history.key.clone(),
            entry.history.keep.keys().cloned().collect(),
        ))
    }
}
