//! Catch-up between peers: a node that keeps channels says so to every peer (`Keeps`); senders
//! sign their messages on those channels for the keepers (`Sig`, sent just before the message on
//! the same ordered link); a node joining with `since` that keeps nothing itself asks a keeper
//! for what it kept (`Request`, paged `Entries`), checks every signature, drops duplicates and
//! delivers in order, flagged `history`. A keeper that leaves halfway is replaced by another.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nostr_sdk::PublicKey;

use crate::drops::DropReason;
use crate::ids::peer_id_for;
use crate::node::core::events::{EventKind, PeerType};
use crate::node::core::{Core, Effect, LinkKey, RoomKey};
use crate::room::MrAction;
use crate::wire::Payload;
use crate::wire::e2e;
use crate::wire::history::{self as wire, HistMsg, OriginSig};

/// Signatures held per peer while their messages are on the way.
const SIGS_PER_PEER: usize = 32;
/// Stored bytes a keeper reads for one peer's catch-up requests per second, and at most in
/// one burst: a peer's requests cost the keeper bounded work whatever they ask for.
const SERVE_BYTES_PER_SEC: i64 = 8 << 20;
const SERVE_BURST: i64 = 8 << 20;
/// What a request costs at least (a seek and a reply), so empty answers are budgeted too.
const REQUEST_COST: i64 = 16 << 10;
/// Pages read at once, node-wide (each on a blocking thread, away from the node's lock).
const READING_AT_ONCE: usize = 2;
/// How often waiting requests are looked at again.
const DEFERRED_TICK: Duration = Duration::from_millis(20);
/// One peer's budget for catch-up reads (a token bucket in stored bytes).
pub(crate) struct ServeBudget {
    tokens: i64,
    at: Instant,
    /// A page for this peer is being read (one at a time per peer).
    reading: bool,
    /// When its last page started: the peer served longest ago goes first.
    last_start: Instant,
}

impl ServeBudget {
    fn new(now: Instant) -> Self {
        ServeBudget {
            tokens: SERVE_BURST,
            at: now,
            reading: false,
            last_start: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let ms = now.saturating_duration_since(self.at).as_millis() as i64;
        self.tokens = (self.tokens + SERVE_BYTES_PER_SEC * ms / 1_000).min(SERVE_BURST);
        self.at = now;
    }

    fn ready(&self) -> bool {
        !self.reading && self.tokens > 0
    }
}

impl Core {
    pub(in crate::node::core) fn send_hist(&mut self, key: &RoomKey, peer: &str, msg: &HistMsg) {
        self.send_hist_bytes(key, peer, msg.encode());
    }

    /// The same with the message already encoded.
    fn send_hist_bytes(&mut self, key: &RoomKey, peer: &str, encoded: Vec<u8>) {
        let Some(conn) = self.st.link_conn(&LinkKey::new(&key.app, peer)) else {
            return;
        };
        let Some(e) = self.st.rooms.get_mut(key) else {
            return;
        };
        let frames = e.room.mr_frames(MrAction::History, encoded);
        self.frames(conn, frames);
    }

    /// A peer joined: tell it what this node keeps.
    pub(in crate::node::core) fn history_peer_joined(&mut self, key: &RoomKey, peer: &str) {
        let Some(e) = self.st.rooms.get(key) else {
            return;
        };
        if e.history.keep.is_empty() {
            return;
        }
        let keeps = HistMsg::Keeps(e.history.keep.keys().cloned().collect());
        self.send_hist(key, peer, &keeps);
    }

    /// The kept channels changed: tell every joined peer.
    pub(in crate::node::core) fn announce_keeps(&mut self, key: &RoomKey) {
        let Some(e) = self.st.rooms.get(key) else {
            return;
        };
        let keeps = HistMsg::Keeps(e.history.keep.keys().cloned().collect());
        let peers: Vec<String> = e.room.joined_peers().map(str::to_owned).collect();
        for p in peers {
            self.send_hist(key, &p, &keeps);
        }
    }

    /// A peer left: it keeps nothing any more, and catch-ups reading from it go on with
    /// another keeper.
    pub(in crate::node::core) fn history_peer_left(&mut self, key: &RoomKey, peer: &str) {
        let Some(h) = self.st.rooms.get_mut(key).map(|e| &mut e.history) else {
            return;
        };
        h.keepers.remove(peer);
        h.sigs.remove(peer);
        h.served.remove(peer);
        h.deferred.remove(peer);
        self.catchups_keeper_left(key, peer);
    }

    /// Frames that sign a message for the keepers of its channel, and the signature for our own
    /// kept copy; `None` when nobody keeps the channel.
    pub(in crate::node::core) fn sign_for_keepers(
        &mut self,
        key: &RoomKey,
        channel: &str,
        payload: &Payload,
        meta: Option<&serde_json::Value>,
    ) -> Option<(OriginSig, Vec<Bytes>, BTreeSet<String>)> {
        let wall = self.wall_us();
        let keys = self.identity.keys.clone();
        let e = self.st.rooms.get_mut(key)?;
        let keepers: BTreeSet<String> = e
            .history
            .keepers
            .iter()
            .filter(|(_, chans)| chans.contains(channel))
            .map(|(p, _)| p.clone())
            .collect();
        if keepers.is_empty() && !e.history.keep.contains_key(channel) {
            return None;
        }
        e.history.seq = wall.max(e.history.seq + 1);
        let message = e2e::encode_message(channel, payload, meta);
        let (digest, sig) = wire::sign(&keys, &e.history.salt, e.history.seq, &message);
        let frames = e
            .room
            .mr_frames(MrAction::History, HistMsg::Sig { digest, sig }.encode());
        Some((sig, frames, keepers))
    }

    /// The origin signature that came just before this message from `from`, if it verifies.
    pub(in crate::node::core) fn take_signature(
        &mut self,
        key: &RoomKey,
        from: &str,
        message: &[u8],
    ) -> Option<OriginSig> {
        let h = &mut self.st.rooms.get_mut(key)?.history;
        let queue = h.sigs.get_mut(from)?;
        let (digest, sig) = *queue.front()?;
        if wire::message_digest(&h.salt, &sig.key, sig.seq, message) != digest {
            return None;
        }
        queue.pop_front();
        let origin = PublicKey::from_slice(&sig.key)
            .ok()
            .map(|k| peer_id_for(&k));
        (origin.as_deref() == Some(from) && wire::verify(&h.salt, &sig, message)).then_some(sig)
    }

    /// A durable-channel message from a joined peer.
    pub(in crate::node::core) fn on_history(
        &mut self,
        key: &RoomKey,
        peer: &str,
        bytes: &[u8],
        now: Instant,
    ) {
        let Some(msg) = HistMsg::decode(bytes) else {
            self.count(DropReason::HistoryMalformed);
            return;
        };
        let Some(h) = self.st.rooms.get_mut(key).map(|e| &mut e.history) else {
            return;
        };
        match msg {
            HistMsg::Keeps(channels) => {
                let became_keeper = if channels.is_empty() {
                    h.keepers.remove(peer);
                    false
                } else {
                    h.keepers
                        .insert(peer.to_owned(), channels.into_iter().collect())
                        .is_none()
                };
                if became_keeper {
                    self.emit(
                        key,
                        EventKind::PeerSeen(crate::ids::PeerId::from(peer), PeerType::Keeper),
                    );
                }
                self.start_catchups(key);
            }
            HistMsg::Sig { digest, sig } => {
                let queue = h.sigs.entry(peer.to_owned()).or_insert_with(VecDeque::new);
                queue.push_back((digest, sig));
                if queue.len() > SIGS_PER_PEER {
                    queue.pop_front();
                    self.count(DropReason::HistorySigUnmatched);
                }
            }
            HistMsg::Request {
                after_ms,
                after_cursor,
                channels,
            } => {
                if h.keep.is_empty() {
                    self.count(DropReason::HistoryRequestRefused);
                    return;
                }
                let channels: BTreeSet<String> = if channels.is_empty() {
                    h.keep.keys().cloned().collect()
                } else {
                    channels
                        .into_iter()
                        .filter(|c| h.keep.contains_key(c))
                        .collect()
                };
                let from =
                    crate::history::scan_from(crate::history::Cursor(after_cursor), after_ms);
                if h.deferred
                    .insert(peer.to_owned(), (from, after_ms, channels))
                    .is_some()
                {
                    self.count(DropReason::HistoryRequestReplaced);
                }
                self.serve_deferred(key, now);
            }
            HistMsg::Entries {
                done,
                next_cursor,
                entries,
            } => self.on_entries(key, peer, done, next_cursor, entries),
        }
    }

    /// Serves the waiting requests whose peers' budgets allow, the peer served longest ago
    /// first, while fewer than [`READING_AT_ONCE`] pages are being read.
    fn serve_deferred(&mut self, key: &RoomKey, now: Instant) {
        let Some(h) = self.st.rooms.get_mut(key).map(|e| &mut e.history) else {
            return;
        };
        let mut ready: Vec<(Instant, String)> = Vec::new();
        for peer in h.deferred.keys() {
            let b = h
                .served
                .entry(peer.clone())
                .or_insert_with(|| ServeBudget::new(now));
            b.refill(now);
            if b.ready() {
                ready.push((b.last_start, peer.clone()));
            }
        }
        ready.sort();
        let mut due = Vec::new();
        for (_, peer) in ready {
            if self.history_reading >= READING_AT_ONCE {
                break;
            }
            let (Some(request), Some(b)) = (h.deferred.remove(&peer), h.served.get_mut(&peer))
            else {
                continue;
            };
            b.reading = true;
            b.last_start = now;
            b.tokens -= REQUEST_COST;
            self.history_reading += 1;
            due.push((peer, request));
        }
        for (peer, (from, after_ms, channels)) in due {
            let effect = Effect::ServeHistory {
                app: key.app.clone(),
                room_id: key.room.clone(),
                peer,
                room: h.id,
                key: h.key.clone(),
                from,
                after_ms,
                channels,
            };
            self.effects.push(effect);
        }
    }

    /// Time passed: waiting requests are served as budgets allow, and catch-ups go on.
    /// Returns when to come back.
    pub(in crate::node::core) fn history_tick(
        &mut self,
        key: &RoomKey,
        now: Instant,
    ) -> Option<Instant> {
        self.serve_deferred(key, now);
        let waiting = self.catchups_tick(key, now);
        let busy = self
            .st
            .rooms
            .get(key)
            .is_some_and(|e| !e.history.deferred.is_empty());
        if busy {
            Some(now + DEFERRED_TICK)
        } else if waiting {
            Some(now + Duration::from_secs(1))
        } else {
            None
        }
    }

    /// The driver read a page for a peer's request (away from the node's lock): its cost is
    /// charged to the peer's budget, the page sent, and waiting requests served.
    pub fn history_page(
        &mut self,
        app: &str,
        room: &str,
        peer: &str,
        page: crate::history::ServedPage,
        now: Instant,
    ) {
        self.now = now;
        self.history_reading = self.history_reading.saturating_sub(1);
        let key = RoomKey::new(app, room);
        if let Some(b) = self
            .st
            .rooms
            .get_mut(&key)
            .and_then(|e| e.history.served.get_mut(peer))
        {
            b.reading = false;
            b.refill(now);
            b.tokens -= page.cost as i64;
        }
        self.send_hist_bytes(&key, peer, page.encoded);
        // A slot is free: the waiting requests of every room may go on.
        let rooms: Vec<RoomKey> = self
            .st
            .rooms
            .iter()
            .filter(|(_, e)| !e.history.deferred.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for k in rooms {
            self.serve_deferred(&k, now);
        }
        self.drain();
    }
}
