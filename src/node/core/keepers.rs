//! Catch-up between peers: a node that keeps channels says so to every peer (`Keeps`); senders
//! sign their messages on those channels for the keepers (`Sig`, sent just before the message on
//! the same ordered link); a node joining with `since` that keeps nothing itself asks a keeper
//! for what it kept (`Request`, paged `Entries`), checks every signature, drops duplicates and
//! delivers in order, flagged `history`. A keeper that leaves halfway is replaced by another.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nostr_sdk::PublicKey;
use sha2::{Digest as _, Sha256};

use super::{Core, Effect, LinkKey, RoomKey};
use crate::drops::DropReason;
use crate::node::identity::peer_id_for;
use crate::node::session::{EventKind, PeerType, SessionId};
use crate::room::MrAction;
use crate::wire::Payload;
use crate::wire::e2e;
use crate::wire::history::{self as wire, HistMsg, OriginSig, WireEntry};

/// Signatures held per peer while their messages are on the way.
const SIGS_PER_PEER: usize = 32;
/// Catch-up requests a keeper serves per peer: a burst, then one per this interval (requests
/// beyond it wait, one per peer).
const REQUEST_BURST: u32 = 8;
const REQUEST_EVERY: Duration = Duration::from_millis(20);
/// A keeper that has not answered a request for this long is asked again (another one if it
/// left).
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// How long a finished catch-up still keeps live copies of its messages away.
const DEDUP_AFTER: Duration = Duration::from_secs(30);

/// A session catching up from a keeper.
pub(crate) struct Catchup {
    pub session: SessionId,
    pub handle: u32,
    /// Channels it receives (empty: all).
    pub channels: BTreeSet<String>,
    /// Origin time floor (ms).
    pub after_ms: u64,
    /// The keeper asked, and its cursor to go on from.
    pub keeper: Option<String>,
    pub cursor: u64,
    /// Newest origin time delivered (a new keeper resumes from there).
    pub last_ms: u64,
    /// Digests of what it was given, live or from history.
    pub seen: HashSet<[u8; 32]>,
    /// When the pending request went out.
    pub asked_at: Option<Instant>,
    /// When the last page came; the digests stay a while, so that a late live copy of a
    /// message it was given from history (a cells room replays recent frames to new links) is
    /// not delivered twice.
    pub done_at: Option<Instant>,
    /// Deliver only entries whose origin signature verified.
    pub verified_only: bool,
}

/// Whether a cell frame signature (a broadcast: no targets) covers this signed frame body.
fn frame_signature_holds(salt: &[u8], sig: &OriginSig, body: &[u8]) -> bool {
    crate::wire::cell::CellFrame::verify_body(salt, &sig.key, sig.seq, &sig.sig, body).is_some()
}

/// Identity of a message for dedup: its origin and its bytes.
fn seen_digest(origin: &str, message: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((origin.len() as u32).to_be_bytes());
    h.update(origin.as_bytes());
    h.update(message);
    h.finalize().into()
}

impl Core {
    fn send_hist(&mut self, key: &RoomKey, peer: &str, msg: &HistMsg) {
        let Some(conn) = self.st.link_conn(&LinkKey::new(&key.app, peer)) else {
            return;
        };
        let Some(e) = self.st.rooms.get_mut(key) else {
            return;
        };
        let frames = e.room.mr_frames(MrAction::History, msg.encode());
        self.frames(conn, frames);
    }

    /// A peer joined: tell it what this node keeps.
    pub(super) fn history_peer_joined(&mut self, key: &RoomKey, peer: &str) {
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
    pub(super) fn announce_keeps(&mut self, key: &RoomKey) {
        let Some(e) = self.st.rooms.get(key) else {
            return;
        };
        let keeps = HistMsg::Keeps(e.history.keep.keys().cloned().collect());
        let peers: Vec<String> = e.room.joined_peers().map(str::to_owned).collect();
        for p in peers {
            self.send_hist(key, &p, &keeps);
        }
    }

    /// A peer left: it keeps nothing any more, and catch-ups from it go to another keeper.
    pub(super) fn history_peer_left(&mut self, key: &RoomKey, peer: &str) {
        let Some(h) = self.st.rooms.get_mut(key).map(|e| &mut e.history) else {
            return;
        };
        h.keepers.remove(peer);
        h.sigs.remove(peer);
        h.served.remove(peer);
        for c in h.catchups.iter_mut().filter(|c| c.done_at.is_none()) {
            if c.keeper.as_deref() == Some(peer) {
                c.keeper = None;
                c.cursor = 0;
                c.after_ms = c.after_ms.max(c.last_ms.saturating_sub(1));
            }
        }
        self.start_catchups(key);
    }

    /// Frames that sign a message for the keepers of its channel, and the signature for our own
    /// kept copy; `None` when nobody keeps the channel.
    pub(super) fn sign_for_keepers(
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
    pub(super) fn take_signature(
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

    /// Records a live message in the sessions catching up (so history does not repeat it);
    /// returns the sessions that already had it from history (it is not delivered to them).
    pub(super) fn seen_live(
        &mut self,
        key: &RoomKey,
        from: &str,
        message: &[u8],
    ) -> Vec<SessionId> {
        let Some(h) = self.st.rooms.get_mut(key).map(|e| &mut e.history) else {
            return Vec::new();
        };
        let d = seen_digest(from, message);
        let mut had = Vec::new();
        for c in h.catchups.iter_mut() {
            if !c.seen.insert(d) {
                had.push(c.session);
            }
        }
        had
    }

    /// A durable-channel message from a joined peer.
    pub(super) fn on_history(&mut self, key: &RoomKey, peer: &str, bytes: &[u8], now: Instant) {
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
                    self.emit(key, EventKind::PeerSeen(peer.to_owned(), PeerType::Keeper));
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
                h.deferred
                    .insert(peer.to_owned(), (after_ms, after_cursor, channels));
                self.serve_deferred(key, now);
            }
            HistMsg::Entries {
                done,
                next_cursor,
                entries,
            } => self.on_entries(key, peer, done, next_cursor, entries),
        }
    }

    /// Serves the waiting requests whose peers' rates allow.
    fn serve_deferred(&mut self, key: &RoomKey, now: Instant) {
        let Some(h) = self.st.rooms.get_mut(key).map(|e| &mut e.history) else {
            return;
        };
        let mut due = Vec::new();
        for (peer, request) in std::mem::take(&mut h.deferred) {
            let (since, used) = h.served.entry(peer.clone()).or_insert((now, 0));
            let refill = (now.saturating_duration_since(*since).as_millis()
                / REQUEST_EVERY.as_millis()) as u32;
            if refill > 0 {
                *used = used.saturating_sub(refill);
                *since = now;
            }
            if *used >= REQUEST_BURST {
                h.deferred.insert(peer, request);
                continue;
            }
            *used += 1;
            due.push((peer, request));
        }
        for (peer, (after_ms, after_cursor, channels)) in due {
            let effect = Effect::ServeHistory {
                app: key.app.clone(),
                room_id: key.room.clone(),
                peer,
                room: h.id,
                key: h.key.clone(),
                after_cursor,
                after_ms,
                channels,
            };
            self.effects.push(effect);
        }
    }

    /// Time passed: waiting requests are served as rates allow, and requests a keeper did not
    /// answer are made again. Returns when to come back.
    pub(super) fn history_tick(&mut self, key: &RoomKey, now: Instant) -> Option<Instant> {
        self.serve_deferred(key, now);
        let h = &mut self.st.rooms.get_mut(key)?.history;
        h.catchups.retain(|c| {
            c.done_at
                .is_none_or(|at| now.saturating_duration_since(at) < DEDUP_AFTER)
        });
        let mut again = Vec::new();
        for c in h.catchups.iter_mut().filter(|c| c.done_at.is_none()) {
            if c.asked_at
                .is_some_and(|at| now.saturating_duration_since(at) >= ANSWER_WITHIN)
                && let Some(k) = &c.keeper
            {
                c.asked_at = Some(now);
                again.push((
                    k.clone(),
                    HistMsg::Request {
                        after_ms: c.after_ms,
                        after_cursor: c.cursor,
                        channels: c.channels.iter().cloned().collect(),
                    },
                ));
            }
        }
        let busy = !h.deferred.is_empty();
        let waiting = !h.catchups.is_empty();
        for (p, ask) in again {
            self.send_hist(key, &p, &ask);
        }
        if busy {
            Some(now + REQUEST_EVERY)
        } else if waiting {
            Some(now + ANSWER_WITHIN)
        } else {
            None
        }
    }

    /// The driver read a page for a peer's request: send it.
    pub fn history_page(&mut self, app: &str, room: &str, peer: &str, page: HistMsg) {
        self.send_hist(&RoomKey::new(app, room), peer, &page);
        self.drain();
    }

    /// Starts a session's catch-up from the room's keepers.
    pub(super) fn catch_up(
        &mut self,
        key: &RoomKey,
        session: SessionId,
        handle: u32,
        after_ms: u64,
        verified_only: bool,
    ) {
        let Some(e) = self.st.rooms.get_mut(key) else {
            return;
        };
        let channels = e
            .sessions
            .get(&session)
            .map(|sr| sr.channels.clone())
            .unwrap_or_default();
        e.history.catchups.push(Catchup {
            session,
            handle,
            channels,
            after_ms,
            keeper: None,
            cursor: 0,
            last_ms: 0,
            seen: HashSet::new(),
            verified_only,
            asked_at: None,
            done_at: None,
        });
        self.start_catchups(key);
    }

    /// Asks a keeper for every catch-up that has none.
    fn start_catchups(&mut self, key: &RoomKey) {
        let Some(e) = self.st.rooms.get_mut(key) else {
            return;
        };
        let mut asks = Vec::new();
        for c in e.history.catchups.iter_mut().filter(|c| c.keeper.is_none()) {
            let keeper = e.history.keepers.iter().find(|(p, chans)| {
                e.room.is_joined(p)
                    && (c.channels.is_empty() || c.channels.iter().any(|ch| chans.contains(ch)))
            });
            if let Some((p, _)) = keeper {
                c.keeper = Some(p.clone());
                c.asked_at = Some(self.now);
                asks.push((
                    p.clone(),
                    HistMsg::Request {
                        after_ms: c.after_ms,
                        after_cursor: c.cursor,
                        channels: c.channels.iter().cloned().collect(),
                    },
                ));
            }
        }
        for (p, ask) in asks {
            self.send_hist(key, &p, &ask);
        }
    }

    /// A page from a keeper: checked, deduplicated and delivered to the sessions it was for.
    fn on_entries(
        &mut self,
        key: &RoomKey,
        peer: &str,
        done: bool,
        next_cursor: u64,
        entries: Vec<WireEntry>,
    ) {
        let Some(e) = self.st.rooms.get_mut(key) else {
            return;
        };
        // A page nobody asked this peer for costs nothing: dropped before any signature check.
        let asked = e
            .history
            .catchups
            .iter()
            .any(|c| c.keeper.as_deref() == Some(peer) && c.done_at.is_none());
        if !asked {
            self.count(DropReason::HistoryUnsolicited);
            return;
        }
        let salt = e.history.salt.clone();
        // Decide once per entry: its signature and its content.
        let mut checked = Vec::with_capacity(entries.len());
        let mut bad = 0;
        for w in entries {
            let verified = match &w.signed {
                Some(sig) => {
                    let origin = PublicKey::from_slice(&sig.key)
                        .ok()
                        .map(|k| peer_id_for(&k));
                    let valid = if w.framed {
                        frame_signature_holds(&salt, sig, &w.message)
                    } else {
                        wire::verify(&salt, sig, &w.message)
                    };
                    if origin.as_deref() != Some(w.origin.as_str()) || !valid {
                        bad += 1;
                        continue;
                    }
                    true
                }
                None => false,
            };
            let opened = if w.framed {
                // The signed body: the frame's hop limit, then its payload.
                w.message
                    .split_first()
                    .and_then(|(_, payload)| e.room.open_cell_payload(payload).ok())
            } else {
                e2e::decode_message(&w.message).ok()
            };
            match opened {
                Some((channel, payload, meta)) => {
                    let plain = e2e::encode_message(&channel, &payload, meta.as_ref());
                    let d = seen_digest(&w.origin, &plain);
                    checked.push((w, verified, channel, payload, meta, d));
                }
                None => bad += 1,
            }
        }
        let mut deliveries = Vec::new();
        let mut dups = 0;
        let mut next = Vec::new();
        for c in e
            .history
            .catchups
            .iter_mut()
            .filter(|c| c.keeper.as_deref() == Some(peer) && c.done_at.is_none())
        {
            for (w, verified, channel, payload, meta, d) in &checked {
                if !c.channels.is_empty() && !c.channels.contains(channel) {
                    continue;
                }
                if c.verified_only && !verified {
                    continue;
                }
                if !c.seen.insert(*d) {
                    dups += 1;
                    continue;
                }
                c.last_ms = c.last_ms.max(w.origin_ms);
                deliveries.push((
                    c.session,
                    c.handle,
                    EventKind::Message {
                        channel: channel.clone(),
                        from: w.origin.clone(),
                        local: false,
                        payload: payload.clone(),
                        meta: meta.clone(),
                        cursor: 0,
                        history: true,
                        verified: *verified,
                    },
                ));
            }
            c.cursor = next_cursor;
            c.asked_at = Some(self.now);
            if !done {
                next.push(HistMsg::Request {
                    after_ms: c.after_ms,
                    after_cursor: next_cursor,
                    channels: c.channels.iter().cloned().collect(),
                });
            }
        }
        if done {
            let now = self.now;
            for c in e.history.catchups.iter_mut() {
                if c.keeper.as_deref() == Some(peer) && c.done_at.is_none() {
                    c.done_at = Some(now);
                }
            }
        }
        for _ in 0..bad {
            self.count(DropReason::HistoryBadSignature);
        }
        for _ in 0..dups {
            self.count(DropReason::HistoryDuplicate);
        }
        for (session, handle, kind) in deliveries {
            self.effect(super::outputs::deliver(session, handle, key, kind));
        }
        // One request per page, whatever the number of sessions waiting on this keeper.
        if let Some(ask) = next.into_iter().next() {
            self.send_hist(key, peer, &ask);
        }
    }
}
