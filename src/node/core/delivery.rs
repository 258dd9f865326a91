//! Delivery between daemons: what a link still held when it died is sent again on the next
//! one, and what never arrives is reported to its sender.
//!
//! Why it exists: SCTP is reliable only within one association. When a link dies (a relayed
//! path's timeout, a network change) the messages it still held are gone, and `send` had
//! already said they left. Between two daemons each message is numbered (see
//! [`crate::wire::frame`]'s tracked frames) and kept in the peer's [`Outbox`] until the
//! receiver's [`Inbox`] acknowledges it; a new link to the same peer carries the rest again,
//! and the receiver drops numbers it already has. Messages whose peer does not come back
//! within [`GIVE_UP`] become an `Undelivered` event for the session that sent them. A
//! Trystero page cannot acknowledge, so what its link held is only counted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Core, Effect, LinkKey, RoomKey};
use crate::drops::DropReason;
use crate::ids::ConnId;
use crate::node::core::events::{EventKind, SessionId};
use crate::wire::frame;

/// Bytes of unacknowledged messages kept per peer, and over every peer; a send beyond either
/// goes untracked (counted).
const OUTBOX_BYTES: usize = 64 << 20;
const NODE_OUTBOX_BYTES: usize = 256 << 20;
/// Bytes of kept messages sent again on a new link before their acknowledgements are awaited
/// (well inside the link's frame queue, so none is dropped for a full queue).
const RESEND_WINDOW: usize = 1 << 20;
/// How long kept messages wait for their peer to come back before their sender is told.
pub(super) const GIVE_UP: Duration = Duration::from_secs(30);
/// How far past the acknowledged number a message may be. Concurrent sends can be handed to a
/// link out of order, by a few; a peer claiming more is not an honest daemon.
const MAX_AHEAD: u64 = 4_096;
/// While messages arrive, an acknowledgement goes out at least this often…
const ACK_EVERY: Duration = Duration::from_millis(20);
/// …or after this many messages.
const ACK_AFTER: u32 = 32;
/// How long a receiver remembers a peer whose link is down (to drop what it sends again).
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// One kept message.
struct Pending {
    seq: u64,
    frames: Arc<Vec<Bytes>>,
    bytes: usize,
    session: SessionId,
    handle: u32,
    room: RoomKey,
    channel: String,
}

/// What this node sent one daemon peer and has not seen acknowledged.
pub(super) struct Outbox {
    epoch: u64,
    next_seq: u64,
    pending: VecDeque<Pending>,
    bytes: usize,
    /// The link the first `sent` messages went out on; `None` while the peer is unlinked.
    conn: Option<ConnId>,
    sent: usize,
    /// Bytes of the first `sent` messages.
    in_flight: usize,
    /// When the peer's link went down with messages kept.
    down_since: Option<Instant>,
}

impl Outbox {
    fn new(epoch: u64, conn: ConnId) -> Self {
        Outbox {
            epoch,
            next_seq: 1,
            pending: VecDeque::new(),
            bytes: 0,
            conn: Some(conn),
            sent: 0,
            in_flight: 0,
            down_since: None,
        }
    }
}

/// What this node received from one daemon peer.
pub(super) struct Inbox {
    epoch: u64,
    /// Every message up to this one arrived (0: none yet).
    upto: u64,
    /// Messages past `upto` that arrived early.
    above: BTreeSet<u64>,
    unacked: u32,
    last_ack: Option<Instant>,
    down_since: Option<Instant>,
}

impl Inbox {
    fn new(epoch: u64, upto: u64) -> Self {
        Inbox {
            epoch,
            upto,
            above: BTreeSet::new(),
            unacked: 0,
            last_ack: None,
            down_since: None,
        }
    }
}

/// The delivery tables.
#[derive(Default)]
pub(super) struct Delivery {
    outboxes: BTreeMap<LinkKey, Outbox>,
    inboxes: BTreeMap<LinkKey, Inbox>,
    /// Bytes kept over every outbox.
    kept: usize,
}

/// How a send to a daemon peer goes.
pub(super) enum Tracked {
    /// Hand these (numbered) frames to the link now.
    Now(Arc<Vec<Bytes>>),
    /// Kept, behind messages waiting to be sent again: they go in order.
    Queued,
    /// Not kept (the peer's outbox is full): hand the plain frames over.
    Untracked,
}

/// A tracked frame's verdict.
pub(super) enum Arrival {
    /// New: handle the inner frame.
    New,
    /// Already had, or not believable: dropped.
    Dropped,
}

fn number(epoch: u64, seq: u64, frames: &[Bytes]) -> Arc<Vec<Bytes>> {
    let last = frames.len().saturating_sub(1);
    Arc::new(
        frames
            .iter()
            .enumerate()
            .map(|(i, f)| Bytes::from(frame::encode_tracked(epoch, seq, i == last, f)))
            .collect(),
    )
}

impl Core {
    /// Keeps a message to a daemon peer until it is acknowledged, numbering its frames.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn track_send(
        &mut self,
        lk: &LinkKey,
        conn: ConnId,
        session: SessionId,
        handle: u32,
        room: &RoomKey,
        channel: &str,
        frames: &Arc<Vec<Bytes>>,
    ) -> Tracked {
        let bytes: usize = frames.iter().map(Bytes::len).sum();
        if !self.st.delivery.outboxes.contains_key(lk) {
            let epoch = self.seed();
            self.st
                .delivery
                .outboxes
                .insert(lk.clone(), Outbox::new(epoch, conn));
        }
        let d = &mut self.st.delivery;
        let Some(ob) = d.outboxes.get_mut(lk) else {
            return Tracked::Untracked;
        };
        if ob.bytes + bytes > OUTBOX_BYTES || d.kept + bytes > NODE_OUTBOX_BYTES {
            self.count(DropReason::OutboxFull);
            return Tracked::Untracked;
        }
        let seq = ob.next_seq;
        ob.next_seq += 1;
        let numbered = number(ob.epoch, seq, frames);
        ob.pending.push_back(Pending {
            seq,
            frames: numbered.clone(),
            bytes,
            session,
            handle,
            room: room.clone(),
            channel: channel.to_owned(),
        });
        ob.bytes += bytes;
        d.kept += bytes;
        if ob.conn == Some(conn) && ob.sent + 1 == ob.pending.len() {
            ob.sent += 1;
            ob.in_flight += bytes;
            Tracked::Now(numbered)
        } else {
            Tracked::Queued
        }
    }

    /// A daemon peer's link is up and it takes tracked frames: send again what it may lack,
    /// and tell it what we have of its messages.
    pub(super) fn delivery_link_up(&mut self, lk: &LinkKey, conn: ConnId) {
        if let Some(ob) = self.st.delivery.outboxes.get_mut(lk) {
            ob.conn = Some(conn);
            ob.sent = 0;
            ob.in_flight = 0;
            ob.down_since = None;
            // Ahead of what is sent again: the receiver may have restarted (it knows nothing
            // of our numbering) or may still wait for messages we gave up on.
            let next = ob.pending.front().map_or(ob.next_seq, |p| p.seq);
            let base = frame::encode_base(ob.epoch, next);
            self.effect(Effect::FrameFirst {
                conn,
                frame: base.into(),
            });
        }
        self.pump(lk);
        if let Some(ib) = self.st.delivery.inboxes.get_mut(lk) {
            ib.down_since = None;
            ib.unacked = 0;
            ib.last_ack = Some(self.now);
            let ack = frame::encode_ack(ib.epoch, ib.upto);
            self.effect(Effect::FrameFirst {
                conn,
                frame: ack.into(),
            });
        }
    }

    /// A peer's link went down: its kept messages wait for the next one.
    pub(super) fn delivery_link_down(&mut self, lk: &LinkKey) {
        let now = self.now;
        if let Some(ob) = self.st.delivery.outboxes.get_mut(lk) {
            ob.conn = None;
            ob.sent = 0;
            ob.in_flight = 0;
            if !ob.pending.is_empty() && ob.down_since.is_none() {
                ob.down_since = Some(now);
            }
        }
        if let Some(ib) = self.st.delivery.inboxes.get_mut(lk) {
            ib.down_since = Some(now);
        }
    }

    /// Sends kept messages that are waiting, within [`RESEND_WINDOW`].
    fn pump(&mut self, lk: &LinkKey) {
        let Some(ob) = self.st.delivery.outboxes.get_mut(lk) else {
            return;
        };
        let Some(conn) = ob.conn else { return };
        let mut out = Vec::new();
        while ob.sent < ob.pending.len() && ob.in_flight < RESEND_WINDOW {
            let p = &ob.pending[ob.sent];
            out.extend(p.frames.iter().cloned());
            ob.in_flight += p.bytes;
            ob.sent += 1;
        }
        if !out.is_empty() {
            self.effect(Effect::FramesKept { conn, frames: out });
        }
    }

    /// Input (from a frame): the peer has our messages of `epoch` up to `upto`.
    pub(super) fn on_ack(&mut self, lk: &LinkKey, epoch: u64, upto: u64) {
        let d = &mut self.st.delivery;
        let Some(ob) = d.outboxes.get_mut(lk) else {
            self.count(DropReason::AckUnexpected);
            return;
        };
        if ob.epoch != epoch {
            self.count(DropReason::AckUnexpected);
            return;
        }
        while ob.pending.front().is_some_and(|p| p.seq <= upto) {
            if let Some(p) = ob.pending.pop_front() {
                ob.bytes -= p.bytes;
                d.kept -= p.bytes;
                if ob.sent > 0 {
                    ob.sent -= 1;
                    ob.in_flight = ob.in_flight.saturating_sub(p.bytes);
                }
            }
        }
        self.pump(lk);
    }

    /// Input (from a frame): the sender's oldest kept message is `next`; nothing before it is
    /// coming.
    pub(super) fn on_base(&mut self, lk: &LinkKey, epoch: u64, next: u64) {
        let upto = next.saturating_sub(1);
        match self.st.delivery.inboxes.get_mut(lk) {
            Some(ib) if ib.epoch == epoch => {
                if upto > ib.upto {
                    ib.upto = upto;
                    ib.above = ib.above.split_off(&(upto + 1));
                    while ib.above.remove(&(ib.upto + 1)) {
                        ib.upto += 1;
                    }
                }
            }
            _ => {
                self.st
                    .delivery
                    .inboxes
                    .insert(lk.clone(), Inbox::new(epoch, upto));
            }
        }
    }

    /// Input (from a frame): a tracked frame of message `seq` arrived. Says whether its inner
    /// frame is new; a message's last frame counts it as received.
    pub(super) fn on_tracked(
        &mut self,
        lk: &LinkKey,
        conn: ConnId,
        epoch: u64,
        seq: u64,
        last: bool,
    ) -> Arrival {
        let now = self.now;
        // A numbering not announced by a base (which comes first on every link) starts here.
        let ib = self
            .st
            .delivery
            .inboxes
            .entry(lk.clone())
            .or_insert_with(|| Inbox::new(epoch, seq.saturating_sub(1)));
        if ib.epoch != epoch {
            *ib = Inbox::new(epoch, seq.saturating_sub(1));
        }
        if seq == 0 || seq <= ib.upto || ib.above.contains(&seq) {
            self.count(DropReason::FrameDuplicate);
            return Arrival::Dropped;
        }
        if seq > ib.upto + MAX_AHEAD {
            self.count(DropReason::FrameTrackedAhead);
            return Arrival::Dropped;
        }
        if last {
            if seq == ib.upto + 1 {
                ib.upto = seq;
                while ib.above.remove(&(ib.upto + 1)) {
                    ib.upto += 1;
                }
            } else {
                ib.above.insert(seq);
            }
            ib.unacked += 1;
            let due = ib.unacked >= ACK_AFTER
                || ib
                    .last_ack
                    .is_none_or(|t| now.duration_since(t) >= ACK_EVERY);
            if due {
                ib.unacked = 0;
                ib.last_ack = Some(now);
                let ack = frame::encode_ack(ib.epoch, ib.upto);
                self.effect(Effect::FrameFirst {
                    conn,
                    frame: ack.into(),
                });
            }
        }
        Arrival::New
    }

    /// Timers: acknowledgements still owed, messages whose peer did not come back, and
    /// peers long gone. Returns when it wants the next tick.
    pub(super) fn delivery_tick(&mut self) -> Option<Instant> {
        let now = self.now;
        let mut next: Option<Instant> = None;
        let mut acks = Vec::new();
        for (lk, ib) in &mut self.st.delivery.inboxes {
            if ib.unacked == 0 || ib.down_since.is_some() {
                continue;
            }
            if let Some(conn) = self.st.links.get(lk).map(|l| l.conn) {
                ib.unacked = 0;
                ib.last_ack = Some(now);
                acks.push((conn, frame::encode_ack(ib.epoch, ib.upto)));
            }
        }
        for (conn, ack) in acks {
            self.effect(Effect::FrameFirst {
                conn,
                frame: ack.into(),
            });
        }
        let expired: Vec<LinkKey> = self
            .st
            .delivery
            .outboxes
            .iter()
            .filter_map(|(lk, ob)| {
                let since = ob.down_since?;
                if now.duration_since(since) >= GIVE_UP {
                    Some(lk.clone())
                } else {
                    let at = since + GIVE_UP;
                    next = Some(next.map_or(at, |n| n.min(at)));
                    None
                }
            })
            .collect();
        for lk in expired {
            self.give_up(&lk);
        }
        let d = &mut self.st.delivery;
        // An unlinked peer with nothing kept needs no numbering: a later one starts afresh.
        d.outboxes
            .retain(|_, ob| !(ob.pending.is_empty() && ob.conn.is_none()));
        d.inboxes.retain(|_, ib| {
            ib.down_since
                .is_none_or(|t| now.duration_since(t) < FORGET_AFTER)
        });
        next
    }

    /// The peer did not come back in time: every session whose messages it kept is told, one
    /// event per room and channel.
    fn give_up(&mut self, lk: &LinkKey) {
        let d = &mut self.st.delivery;
        let Some(ob) = d.outboxes.get_mut(lk) else {
            return;
        };
        ob.down_since = None;
        d.kept -= ob.bytes;
        ob.bytes = 0;
        let pending = std::mem::take(&mut ob.pending);
        let mut told: BTreeMap<(SessionId, u32, RoomKey, String), (u64, u64)> = BTreeMap::new();
        for p in pending {
            let e = told
                .entry((p.session, p.handle, p.room, p.channel))
                .or_default();
            e.0 += 1;
            e.1 += p.bytes as u64;
        }
        for ((session, handle, room, channel), (messages, bytes)) in told {
            self.count_n(DropReason::MessageUndelivered, messages);
            let kind = EventKind::Undelivered {
                peer: lk.peer.clone(),
                channel,
                messages,
                bytes,
            };
            self.effect(Effect::deliver(session, handle, &room, kind));
        }
    }

    /// Kept messages and their bytes, over every peer (for status).
    pub fn undelivered_kept(&self) -> (usize, usize) {
        self.st
            .delivery
            .outboxes
            .values()
            .fold((0, 0), |(m, b), ob| (m + ob.pending.len(), b + ob.bytes))
    }
}
