//! Links: a peer's one live connection per app. Their lifecycle lives here: the duplicate-link
//! race, presence and frames arriving, the watchdog's ping and timeout, the restart probe and
//! idle close, and the periodic tick that drives them.

use bytes::Bytes;
use std::time::{Duration, Instant};

use super::state::Link;
use super::{Core, Effect, IDLE_LINK, LinkKey, RoomKey, TICK_MAX, Work};
use crate::drops::DropReason;
use crate::ids::ConnId;
use crate::room::LeaveReason;
use crate::wire::frame::OuterFrame;

/// A connection attempt that has neither opened nor failed after this long is abandoned. The
/// signaling state times out its own dials sooner; this catches the attempts it stopped
/// tracking — an offer answered just before another room's link to the same peer came up is
/// never answered back, and its peer connection would otherwise wait forever.
const STALE_ATTEMPT: Duration = Duration::from_secs(30);
/// With TURN to fall back on, how long a direct attempt may run its ICE checks before both
/// ends give it up for a relay-only one. Direct paths (host, server-reflexive) connect within
/// a few round trips; the engine itself would declare the attempt failed only after 15 s.
const DIRECT_PATIENCE: Duration = Duration::from_secs(4);
/// How long a connection that lost the duplicate-link race stays open: its last frames (often
/// the peer's handshake) must not be cut mid-flight.
const DUPLICATE_GRACE: Duration = Duration::from_millis(500);
/// How long an unopened attempt may outlive a link to the same peer. Rooms of one app dial a
/// peer at once and the peer closes the losers on its side (`accept_offer`); ours then never
/// connect, and their ICE agents retried every 20 ms for 20 s — 50 STUN requests a second per
/// leftover, most of an idle daemon's CPU after a batch of joins. A duplicate that can open does
/// so well within this (loopback: ~100 ms; through TURN: under 2 s in the turn bench).
const SUPERSEDED_AFTER: Duration = Duration::from_secs(3);

/// Frames a connection keeps that arrive before its channel is reported open, and their bytes.
const EARLY_FRAMES: usize = 64;
const EARLY_BYTES: usize = 256 << 10;

impl Core {
    /// Removes a link (only if it is still on `conn`, when given): its rooms lose the peer and
    /// signaling may dial again.
    pub(super) fn drop_link(&mut self, lk: &LinkKey, conn: Option<ConnId>, reason: LeaveReason) {
        if conn.is_some_and(|c| self.st.link_conn(lk) != Some(c)) {
            return;
        }
        let Some(link) = self.st.links.remove(lk) else {
            return;
        };
        tracing::debug!(app = %lk.app, peer = %lk.peer, ?reason, "link down");
        self.st.conns.remove(&link.conn);
        if !link.acks {
            self.effect(Effect::CountUnsent { conn: link.conn });
        }
        self.close(link.conn, Duration::ZERO);
        self.link_down(lk, link.conn);
        let now = self.now;
        for key in self.st.rooms_of(&lk.app) {
            let Some(entry) = self.st.rooms.get_mut(&key) else {
                continue;
            };
            // A peer still handshaking counts too: its link died before the join, and it may
            // be waiting to hear us again to dial afresh.
            let was_attached = entry.room.is_attached(&lk.peer);
            let outs = entry.room.detach(&lk.peer, reason);
            entry.signal.set_linked(&lk.peer, false);
            if was_attached {
                entry.signal.restart_burst(now);
            }
            self.work.push_back(Work::Room(key, outs));
        }
    }

    /// Input: a connection's data channel opened.
    pub(super) fn on_open(&mut self, conn: ConnId, now: Instant) {
        self.at(now);
        let Some(c) = self.st.conns.get_mut(&conn) else {
            self.close(conn, Duration::ZERO);
            return;
        };
        if c.open {
            return;
        }
        c.open = true;
        let (lk, signaled_room, offer_id) = (c.link_key(), c.room_key(), c.offer_id.clone());
        if let Some(existing) = self.st.link_conn(&lk) {
            // Two dials of different rooms both connected: both sides keep the smaller offer id.
            let existing_offer = self.st.conns.get(&existing).map(|c| c.offer_id.as_str());
            if existing_offer.is_some_and(|o| o <= offer_id.as_str()) {
                self.st.conns.remove(&conn);
                self.close(conn, DUPLICATE_GRACE);
                self.count(DropReason::LinkDuplicate);
                return;
            }
            self.drop_link(&lk, Some(existing), LeaveReason::Link);
            self.count(DropReason::LinkDuplicate);
        }
        self.link_up(conn, &lk, &signaled_room);
        let early = self
            .st
            .conns
            .get_mut(&conn)
            .map(|c| std::mem::take(&mut c.early))
            .unwrap_or_default();
        for frame in early {
            self.work.push_back(Work::Frame(conn, frame));
        }
        self.drain();
    }

    fn link_up(&mut self, conn: ConnId, lk: &LinkKey, signaled_room: &RoomKey) {
        let now = self.now;
        self.effect(Effect::StartLink { conn });
        let keys = self.st.rooms_of(&lk.app);
        let mut presence = Vec::with_capacity(keys.len());
        for key in &keys {
            if let Some(entry) = self.st.rooms.get_mut(key) {
                presence.push(entry.room.presence_frame(true));
                entry.signal.set_linked(&lk.peer, true);
            }
        }
        self.frames(conn, presence);
        // A link is up: whatever failed before, the next attempt with this peer starts direct.
        self.st.relay_next.remove(lk);
        self.st.links.insert(
            lk.clone(),
            Link {
                conn,
                rooms: Default::default(),
                connected_at: now,
                last_rx: now,
                last_ping: None,
                probe_deadline: None,
                idle_since: Some(now),
                nego: Default::default(),
                daemon: false,
                acks: false,
            },
        );
        // The room whose signaling made this link has the peer: start its handshake now rather
        // than only on the peer's presence frame, which a browser may send before it has tied
        // the connection to the room.
        if let Some(entry) = self.st.rooms.get_mut(signaled_room)
            && !entry.room.is_attached(&lk.peer)
        {
            let outs = entry.room.attach(&lk.peer, now);
            if let Some(link) = self.st.links.get_mut(lk) {
                link.idle_since = None;
            }
            self.work.push_back(Work::Room(signaled_room.clone(), outs));
        }
        tracing::info!(app = %lk.app, peer = %lk.peer, "link up");
    }

    /// Input: a connection closed (or failed before it opened).
    pub(super) fn on_closed(&mut self, conn: ConnId, now: Instant) {
        self.at(now);
        let Some(c) = self.st.conns.get(&conn) else {
            return;
        };
        if c.open {
            let lk = c.link_key();
            self.drop_link(&lk, Some(conn), LeaveReason::Link);
        } else {
            // The next attempt with this peer goes through TURN only (see `relay_next`).
            let relay_only_next = self.config.relay_fallback && c.ready;
            self.abandon_attempt(conn, relay_only_next, true, DropReason::DialFailed);
        }
        self.drain();
    }

    /// Input: a frame arrived on a connection.
    pub(super) fn on_frame(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        self.at(now);
        let Some(c) = self.st.conns.get_mut(&conn) else {
            return;
        };
        // The engine may hand over the peer's first frames (its presence and handshake) before
        // it says the channel opened: they wait for the open rather than being lost, which left
        // a page's join waiting for a handshake that never came.
        if !c.open {
            if c.early.len() < EARLY_FRAMES
                && c.early.iter().map(|f| f.len()).sum::<usize>() + bytes.len() <= EARLY_BYTES
            {
                c.early.push(Bytes::copy_from_slice(bytes));
            } else {
                self.count(DropReason::FrameEarlyOverflow);
            }
            return;
        }
        self.frame_in(conn, bytes);
        self.drain();
    }

    /// A frame on a connection that is open: to its room, if it is the peer's link.
    pub(super) fn frame_in(&mut self, conn: ConnId, bytes: &[u8]) {
        let now = self.now;
        let Some(lk) = self.st.conns.get(&conn).map(|c| c.link_key()) else {
            return;
        };
        match self.st.links.get_mut(&lk) {
            Some(link) if link.conn == conn => {
                link.last_rx = now;
                link.probe_deadline = None;
            }
            _ => {
                // Data on a connection that lost a duplicate-link race (or has not opened yet).
                self.count(DropReason::FrameStaleLink);
                return;
            }
        }
        let Ok(frame) = OuterFrame::decode(bytes) else {
            self.count(DropReason::FrameMalformed);
            return;
        };
        let (token, chunk, joined) = match frame {
            OuterFrame::Data { token, chunk } => (token, Some(chunk), true),
            OuterFrame::Presence { joined, token } => (token, None, joined),
            OuterFrame::Tracked {
                epoch,
                seq,
                last,
                inner,
            } => {
                if let super::delivery::Arrival::Dropped =
                    self.on_tracked(&lk, conn, epoch, seq, last)
                {
                    return;
                }
                match OuterFrame::decode(inner) {
                    Ok(OuterFrame::Data { token, chunk }) => (token, Some(chunk), true),
                    _ => {
                        self.count(DropReason::FrameMalformed);
                        return;
                    }
                }
            }
            OuterFrame::Ack { epoch, upto } => {
                self.on_ack(&lk, epoch, upto);
                return;
            }
            OuterFrame::Base { epoch, next } => {
                self.on_base(&lk, epoch, next);
                return;
            }
        };
        let Some(key) = std::str::from_utf8(token)
            .ok()
            .and_then(|t| self.st.tokens.get(t))
            .filter(|k| k.app == lk.app)
            .cloned()
        else {
            self.count(DropReason::FrameUnknownRoom);
            return;
        };
        let Some(entry) = self.st.rooms.get_mut(&key) else {
            return;
        };
        let peer = &lk.peer;
        let mut outs = Vec::new();
        if chunk.is_none() && joined {
            outs.extend(entry.room.on_presence(peer, now));
        } else if joined && !entry.room.is_attached(peer) {
            outs.extend(entry.room.attach(peer, now));
        }
        let attached = joined && entry.room.is_attached(peer);
        match chunk {
            Some(chunk) => outs.extend(entry.room.on_chunk(peer, chunk, now)),
            None if !joined => outs.extend(entry.room.detach(peer, LeaveReason::Leave)),
            None => {}
        }
        if attached && let Some(link) = self.st.links.get_mut(&lk) {
            link.idle_since = None;
        }
        self.work.push_back(Work::Room(key, outs));
    }

    /// Input: time passed. Runs every room's timers and the link watchdog; returns when the
    /// core wants the next tick.
    pub(super) fn tick(&mut self, now: Instant) -> Instant {
        self.at(now);
        let mut next = now + TICK_MAX;
        let keys: Vec<RoomKey> = self.st.rooms.keys().cloned().collect();
        for key in keys {
            next = next.min(self.tick_room(&key));
        }
        self.watchdog();
        self.sweep_attempts();
        self.unanswered_offers();
        if let Some(at) = self.delivery_tick() {
            next = next.min(at);
        }
        self.drain();
        next.max(now + Duration::from_millis(10))
    }

    /// A room's signaling, handshake and overlay timers; returns its next deadline.
    fn tick_room(&mut self, key: &RoomKey) -> Instant {
        let now = self.now;
        // Drawn for every room, cells or not, so the draws' order does not depend on which
        // rooms are cells rooms (the harness replays schedules from a seed).
        self.tick_pick = self.seed() as usize;
        let Some(entry) = self.st.rooms.get_mut(key) else {
            return now + TICK_MAX;
        };
        let actions = entry.signal.tick(now);
        self.work.push_back(Work::Signal(key.clone(), actions));
        let outs = entry.room.tick(now);
        self.work.push_back(Work::Room(key.clone(), outs));
        let next = entry.signal.next_deadline();
        self.features_tick(key, now).map_or(next, |at| next.min(at))
    }

    /// Closes connection attempts that hang, and direct attempts too slow when TURN is there.
    fn sweep_attempts(&mut self) {
        let now = self.now;
        if self.config.relay_fallback {
            let slow: Vec<ConnId> = self
                .st
                .conns
                .iter()
                .filter(|(_, c)| !c.open && !c.relay_only)
                .filter(|(_, c)| {
                    c.negotiated_at
                        .is_some_and(|t| now.saturating_duration_since(t) >= DIRECT_PATIENCE)
                })
                .map(|(id, _)| *id)
                .collect();
            for id in slow {
                tracing::debug!(conn = ?id, "no direct path: retrying through TURN only");
                self.abandon_attempt(id, true, true, DropReason::DirectPathTimeout);
            }
        }
        let stale: Vec<ConnId> = self
            .st
            .conns
            .iter()
            .filter(|(_, c)| !c.open && now.saturating_duration_since(c.started) >= STALE_ATTEMPT)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.abandon_attempt(id, false, false, DropReason::DialTimeout);
        }
        let superseded: Vec<ConnId> = self
            .st
            .conns
            .iter()
            .filter(|(_, c)| {
                !c.open
                    && now.saturating_duration_since(c.started) >= SUPERSEDED_AFTER
                    && self.st.links.get(&c.link_key()).is_some_and(|l| {
                        now.saturating_duration_since(l.connected_at) >= SUPERSEDED_AFTER
                    })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in superseded {
            // The peer is linked, so signaling has no dial of it left to retry.
            self.abandon_attempt(id, false, false, DropReason::DialSuperseded);
        }
    }

    /// Gives up a connection attempt that never opened: signaling may dial again (announcing at
    /// once when `announce_again`, so the peer answers with a fresh attempt), the next attempt
    /// goes through TURN only when `relay_only_next`, and the reason is counted.
    fn abandon_attempt(
        &mut self,
        id: ConnId,
        relay_only_next: bool,
        announce_again: bool,
        reason: DropReason,
    ) {
        let Some(c) = self.st.conns.remove(&id) else {
            return;
        };
        if relay_only_next {
            self.st.relay_next.insert(c.link_key());
        }
        if let Some(e) = self.st.rooms.get_mut(&c.room_key()) {
            e.signal.dial_failed(&c.link.peer, &c.offer_id);
            if announce_again {
                e.signal.restart_burst(self.now);
            }
        }
        self.close(id, Duration::ZERO);
        self.count(reason);
    }

    /// Pings quiet links, closes dead and idle ones.
    fn watchdog(&mut self) {
        let now = self.now;
        let (ping_after, dead_after) = (self.config.ping_after, self.config.dead_after);
        let mut dead = Vec::new();
        let mut pings = Vec::new();
        for (lk, link) in self.st.links.iter_mut() {
            let quiet = now.saturating_duration_since(link.last_rx);
            if quiet >= dead_after || link.probe_deadline.is_some_and(|d| now >= d) {
                dead.push((lk.clone(), link.conn, LeaveReason::Timeout));
            } else if link
                .idle_since
                .is_some_and(|t| now.saturating_duration_since(t) >= IDLE_LINK)
            {
                dead.push((lk.clone(), link.conn, LeaveReason::Leave));
            } else if quiet >= ping_after
                && link
                    .last_ping
                    .is_none_or(|t| now.saturating_duration_since(t) >= ping_after)
                && let Some(room) = link.rooms.iter().next()
            {
                pings.push((RoomKey::new(&lk.app, room), lk.peer.clone(), link.conn));
                link.last_ping = Some(now);
            }
        }
        for (key, peer, conn) in pings {
            if let Some(entry) = self.st.rooms.get_mut(&key)
                && let Some(frame) = entry.room.ping(&peer, now)
            {
                entry
                    .ping_waiters
                    .entry(peer.into())
                    .or_default()
                    .push_back(None);
                self.effects.push(Effect::FrameFirst { conn, frame });
            }
        }
        for (lk, conn, reason) in dead {
            if reason == LeaveReason::Timeout {
                self.count(DropReason::LinkTimeout);
            }
            self.drop_link(&lk, Some(conn), reason);
        }
    }
}
