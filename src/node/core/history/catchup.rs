//! Catching up from keepers: a session joining with `since` in a room where this node keeps
//! nothing asks up to [`KEEPERS_ASKED`] keepers for what they kept (`Request`, paged
//! `Entries`), checks every signature, and delivers the pages merged in the order their
//! origins signed them, each message once, flagged `history`. A keeper that leaves or stops
//! answering is replaced; what it already served is still delivered.
//!
//! What a keeper cannot do: put words in a signer's mouth (signatures cover origin, sequence
//! and message, and the time used is the signed sequence's); date an entry in the future to
//! make the next keeper skip everything (refused beyond [`CLOCK_SKEW_MS`], and only signed
//! times move the resume point); pass an unsigned entry off as someone else's (it is delivered
//! as the keeper's, `verified = false`); hide what another keeper holds (two are asked).

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::time::{Duration, Instant};

use nostr_sdk::PublicKey;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::drops::DropReason;
use crate::ids::peer_id_for;
use crate::node::core::events::{EventKind, SessionId};
use crate::node::core::{Core, RoomKey};
use crate::wire::Payload;
use crate::wire::e2e;
use crate::wire::history::{self as wire, HistMsg, OriginSig, WireEntry};

/// Keepers one catch-up reads from at once (merged; what one hides, the other shows).
const KEEPERS_ASKED: usize = 2;
/// A keeper that has not answered a request for this long is asked again…
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// …and after this many unanswered asks it is given up (another keeper is asked if any).
const ASKS_BEFORE_GIVING_UP: u32 = 3;
/// How long a finished catch-up still keeps live copies of its messages away.
const DEDUP_AFTER: Duration = Duration::from_secs(30);
/// Entries dated further than this past the node's clock are refused.
pub(in crate::node::core) const CLOCK_SKEW_MS: u64 = 10 * 60 * 1_000;
/// A replacement keeper is asked from this long before the newest signed time delivered
/// (origins' clocks differ; what comes twice is dropped by digest).
const RESUME_MARGIN_MS: u64 = 60 * 1_000;

/// One entry of a page, checked, waiting for its turn in the merge.
struct Checked {
    /// Who it is delivered as: the signer, or the keeper for an unsigned entry.
    from: String,
    /// Its time (ms): the signed sequence's, or the keeper's word when unsigned.
    time_ms: u64,
    verified: bool,
    channel: String,
    payload: Payload,
    meta: Option<Value>,
    digest: [u8; 32],
}

/// One keeper a catch-up reads from.
pub(crate) struct Source {
    keeper: String,
    /// Its cursor to go on from.
    cursor: u64,
    /// A request is out and not answered yet.
    awaiting: bool,
    asked_at: Instant,
    asks: u32,
    /// It said it has nothing more (or left, or was given up).
    done: bool,
    /// Checked entries of its last page not yet merged.
    pending: VecDeque<Checked>,
}

/// A session catching up from keepers.
pub(crate) struct Catchup {
    pub session: SessionId,
    pub handle: u32,
    /// Channels it receives (empty: all).
    pub channels: BTreeSet<String>,
    /// Origin time floor (ms) for keepers asked from now on.
    after_ms: u64,
    sources: Vec<Source>,
    /// Keepers asked already (not asked twice).
    tried: BTreeSet<String>,
    /// Newest signed time delivered (a replacement keeper resumes from there).
    last_ms: u64,
    /// Digests of what it was given, live or from history.
    seen: HashSet<[u8; 32]>,
    /// When the merge ended; the digests stay a while, so that a late live copy of a message
    /// it was given from history (a cells room replays recent frames to new links) is not
    /// delivered twice.
    done_at: Option<Instant>,
    /// Deliver only entries whose origin signature verified.
    verified_only: bool,
}

impl Catchup {
    fn request(&self, cursor: u64) -> HistMsg {
        HistMsg::Request {
            after_ms: self.after_ms,
            after_cursor: cursor,
            channels: self.channels.iter().cloned().collect(),
        }
    }

    fn reads_from(&self, keeper: &str) -> bool {
        self.done_at.is_none()
            && self
                .sources
                .iter()
                .any(|s| s.keeper == keeper && s.awaiting && !s.done)
    }

    fn active(&self) -> usize {
        self.sources.iter().filter(|s| !s.done).count()
    }
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

/// Why an entry of a page is not delivered.
enum Refused {
    BadSignature,
    FromTheFuture,
}

impl Core {
    /// Starts a session's catch-up from the room's keepers.
    pub(in crate::node::core) fn catch_up(
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
            sources: Vec::new(),
            tried: BTreeSet::new(),
            last_ms: 0,
            seen: HashSet::new(),
            done_at: None,
            verified_only,
        });
        self.start_catchups(key);
    }

    /// Asks keepers for every unfinished catch-up reading from fewer than
    /// [`KEEPERS_ASKED`].
    pub(in crate::node::core) fn start_catchups(&mut self, key: &RoomKey) {
        let now = self.now;
        let Some(e) = self.st.rooms.get_mut(key) else {
            return;
        };
        let mut asks = Vec::new();
        for c in e
            .history
            .catchups
            .iter_mut()
            .filter(|c| c.done_at.is_none())
        {
            let candidates: Vec<String> = e
                .history
                .keepers
                .iter()
                .filter(|(p, chans)| {
                    e.room.is_joined(p)
                        && !c.tried.contains(*p)
                        && (c.channels.is_empty() || c.channels.iter().any(|ch| chans.contains(ch)))
                })
                .map(|(p, _)| p.clone())
                .collect();
            for p in candidates {
                if c.active() >= KEEPERS_ASKED {
                    break;
                }
                c.tried.insert(p.clone());
                asks.push((p.clone(), c.request(0)));
                c.sources.push(Source {
                    keeper: p,
                    cursor: 0,
                    awaiting: true,
                    asked_at: now,
                    asks: 1,
                    done: false,
                    pending: VecDeque::new(),
                });
            }
        }
        for (p, ask) in asks {
            self.send_hist(key, &p, &ask);
        }
    }

    /// A keeper left: its unfinished sources end (what they already served is still merged)
    /// and catch-ups left without one resume from another keeper.
    pub(in crate::node::core) fn catchups_keeper_left(&mut self, key: &RoomKey, peer: &str) {
        let Some(h) = self.st.rooms.get_mut(key).map(|e| &mut e.history) else {
            return;
        };
        for c in h.catchups.iter_mut().filter(|c| c.done_at.is_none()) {
            let mut lost = false;
            for s in c.sources.iter_mut().filter(|s| s.keeper == peer && !s.done) {
                s.done = true;
                s.awaiting = false;
                lost = true;
            }
            if lost {
                c.tried.remove(peer);
                c.after_ms = c.after_ms.max(c.last_ms.saturating_sub(RESUME_MARGIN_MS));
            }
        }
        self.start_catchups(key);
        self.merge_catchups(key);
    }

    /// Time passed: keepers that did not answer are asked again, then given up; finished
    /// catch-ups forget their digests. Returns whether any catch-up is still going on.
    pub(in crate::node::core) fn catchups_tick(&mut self, key: &RoomKey, now: Instant) -> bool {
        let Some(h) = self.st.rooms.get_mut(key).map(|e| &mut e.history) else {
            return false;
        };
        h.catchups.retain(|c| {
            c.done_at
                .is_none_or(|at| now.saturating_duration_since(at) < DEDUP_AFTER)
        });
        let mut again = Vec::new();
        let mut gave_up = 0;
        for c in h.catchups.iter_mut().filter(|c| c.done_at.is_none()) {
            let mut retry = Vec::new();
            for s in c.sources.iter_mut().filter(|s| s.awaiting && !s.done) {
                if now.saturating_duration_since(s.asked_at) < ANSWER_WITHIN {
                    continue;
                }
                if s.asks >= ASKS_BEFORE_GIVING_UP {
                    s.done = true;
                    s.awaiting = false;
                    gave_up += 1;
                    continue;
                }
                s.asks += 1;
                s.asked_at = now;
                retry.push((s.keeper.clone(), s.cursor));
            }
            for (k, cursor) in retry {
                again.push((k, c.request(cursor)));
            }
        }
        let waiting = !h.catchups.is_empty();
        for _ in 0..gave_up {
            self.count(DropReason::HistoryKeeperSilent);
        }
        for (p, ask) in again {
            self.send_hist(key, &p, &ask);
        }
        if gave_up > 0 {
            self.start_catchups(key);
            self.merge_catchups(key);
        }
        waiting
    }

    /// Records a live message in the sessions catching up (so history does not repeat it);
    /// returns the sessions that already had it from history (it is not delivered to them).
    pub(in crate::node::core) fn seen_live(
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

    /// A page from a keeper: checked, and queued for the merge of the catch-ups reading from
    /// it.
    pub(in crate::node::core) fn on_entries(
        &mut self,
        key: &RoomKey,
        peer: &str,
        done: bool,
        next_cursor: u64,
        entries: Vec<WireEntry>,
    ) {
        let wall_ms = self.wall_us() / 1_000;
        let Some(e) = self.st.rooms.get_mut(key) else {
            return;
        };
        // A page nobody asked this peer for costs nothing: dropped before any signature check.
        if !e.history.catchups.iter().any(|c| c.reads_from(peer)) {
            self.count(DropReason::HistoryUnsolicited);
            return;
        }
        let salt = e.history.salt.clone();
        let mut refused = Vec::new();
        let mut checked = Vec::with_capacity(entries.len());
        for w in entries {
            match check_entry(&salt, &e.room, peer, w, wall_ms) {
                Ok(c) => checked.push(c),
                Err(r) => refused.push(r),
            }
        }
        for c in e.history.catchups.iter_mut().filter(|c| c.reads_from(peer)) {
            let Some(s) = c
                .sources
                .iter_mut()
                .find(|s| s.keeper == peer && s.awaiting && !s.done)
            else {
                continue;
            };
            s.awaiting = false;
            s.done = done;
            s.cursor = next_cursor;
            for x in &checked {
                if (!c.channels.is_empty() && !c.channels.contains(&x.channel))
                    || (c.verified_only && !x.verified)
                {
                    continue;
                }
                s.pending.push_back(Checked {
                    from: x.from.clone(),
                    time_ms: x.time_ms,
                    verified: x.verified,
                    channel: x.channel.clone(),
                    payload: x.payload.clone(),
                    meta: x.meta.clone(),
                    digest: x.digest,
                });
            }
        }
        for r in refused {
            self.count(match r {
                Refused::BadSignature => DropReason::HistoryBadSignature,
                Refused::FromTheFuture => DropReason::HistoryFromTheFuture,
            });
        }
        self.merge_catchups(key);
    }

    /// Delivers what every source of each catch-up has in time order, as far as no source
    /// still owes a page; asks drained sources for their next page; ends merges with nothing
    /// left.
    fn merge_catchups(&mut self, key: &RoomKey) {
        let now = self.now;
        let Some(h) = self.st.rooms.get_mut(key).map(|e| &mut e.history) else {
            return;
        };
        let mut deliveries = Vec::new();
        let mut asks: Vec<(String, HistMsg)> = Vec::new();
        let mut dups = 0;
        for c in h.catchups.iter_mut().filter(|c| c.done_at.is_none()) {
            loop {
                if c.sources.iter().any(|s| !s.done && s.pending.is_empty()) {
                    break;
                }
                let next = c
                    .sources
                    .iter_mut()
                    .filter(|s| !s.pending.is_empty())
                    .min_by_key(|s| s.pending.front().map_or(u64::MAX, |x| x.time_ms));
                let Some(x) = next.and_then(|s| s.pending.pop_front()) else {
                    break;
                };
                if !c.seen.insert(x.digest) {
                    dups += 1;
                    continue;
                }
                if x.verified {
                    c.last_ms = c.last_ms.max(x.time_ms);
                }
                deliveries.push((
                    c.session,
                    c.handle,
                    EventKind::Message {
                        channel: x.channel,
                        from: x.from.into(),
                        local: false,
                        payload: x.payload,
                        meta: x.meta,
                        cursor: crate::history::Cursor::default(),
                        history: true,
                        verified: x.verified,
                    },
                ));
            }
            for s in c
                .sources
                .iter_mut()
                .filter(|s| !s.done && !s.awaiting && s.pending.is_empty())
            {
                s.awaiting = true;
                s.asked_at = now;
                s.asks = 1;
                let ask = HistMsg::Request {
                    after_ms: c.after_ms,
                    after_cursor: s.cursor,
                    channels: c.channels.iter().cloned().collect(),
                };
                // One request per page, whatever the number of sessions reading a keeper.
                if !asks.iter().any(|(k, _)| *k == s.keeper) {
                    asks.push((s.keeper.clone(), ask));
                }
            }
            let drained = c.sources.iter().all(|s| s.done && s.pending.is_empty());
            if drained && !c.sources.is_empty() {
                c.done_at = Some(now);
            }
        }
        for _ in 0..dups {
            self.count(DropReason::HistoryDuplicate);
        }
        for (session, handle, kind) in deliveries {
            self.effect(crate::node::core::Effect::deliver(
                session, handle, key, kind,
            ));
        }
        for (p, ask) in asks {
            self.send_hist(key, &p, &ask);
        }
    }
}

/// Checks one entry of a keeper's page: its signature (the signer must be the origin it
/// names), its date, and its content.
fn check_entry(
    salt: &[u8],
    room: &crate::room::Room,
    keeper: &str,
    w: WireEntry,
    wall_ms: u64,
) -> Result<Checked, Refused> {
    let (from, time_ms, verified) = match &w.signed {
        Some(sig) => {
            let origin = PublicKey::from_slice(&sig.key)
                .ok()
                .map(|k| peer_id_for(&k));
            let valid = if w.framed {
                frame_signature_holds(salt, sig, &w.message)
            } else {
                wire::verify(salt, sig, &w.message)
            };
            if origin.as_deref() != Some(w.origin.as_str()) || !valid {
                return Err(Refused::BadSignature);
            }
            // Origins sign their wall clock (µs) as the sequence.
            (w.origin.clone(), sig.seq / 1_000, true)
        }
        // Unsigned: only the keeper vouches for it.
        None => (keeper.to_owned(), w.origin_ms, false),
    };
    if time_ms > wall_ms.saturating_add(CLOCK_SKEW_MS) {
        return Err(Refused::FromTheFuture);
    }
    let opened = if w.framed {
        // The signed body: the frame's hop limit, then its payload.
        w.message
            .split_first()
            .and_then(|(_, payload)| room.open_cell_payload(payload).ok())
    } else {
        e2e::decode_message(&w.message).ok()
    };
    let Some((channel, payload, meta)) = opened else {
        return Err(Refused::BadSignature);
    };
    let plain = e2e::encode_message(&channel, &payload, meta.as_ref());
    Ok(Checked {
        digest: seen_digest(&w.origin, &plain),
        from,
        time_ms,
        verified,
        channel,
        payload,
        meta,
    })
}
