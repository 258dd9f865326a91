//! Effects: what the core decided, carried out — the only code here that touches the
//! transport or the relays. Slow work (offers, answers, closing) is spawned and its result fed
//! back to the core as an input.

use std::time::Instant;

use tokio::sync::mpsc;

use super::core::{Effect, Input, LINK_QUEUE};
use super::history_io::HistoryJob;
use super::{Inner, LinkWriter, Node};

/// Liveness frames a link's writer holds ahead of its data (a ping and a pong at a time, with
/// room to spare).
const FIRST_QUEUE: usize = 16;
use crate::drops::DropReason;
use crate::transport::{self, ConnId};

impl Node {
    /// Runs the core's pending effects in order (under the lock that fed it), and those that
    /// running them made the core decide (a history page read here is then sent).
    pub(super) fn run_effects(&self, inner: &mut Inner) {
        loop {
            let effects = inner.core.take_effects();
            if effects.is_empty() {
                return;
            }
            for effect in effects {
                self.run_effect(inner, effect);
            }
        }
    }

    fn run_effect(&self, inner: &mut Inner, effect: Effect) {
        let io = &mut inner.io;
        match effect {
            Effect::Relay(command) => self.signal.send(command),
            Effect::Offer { conn, relay_only } => self.make_offer(conn, relay_only),
            Effect::Answer {
                conn,
                sdp,
                relay_only,
            } => self.make_answer(conn, sdp, relay_only),
            Effect::ApplyAnswer { conn, sdp } => {
                let Some(pc) = io.pcs.get(&conn).cloned() else {
                    return;
                };
                let me = self.me.clone();
                tokio::spawn(async move {
                    let ok = transport::apply_answer(&pc, sdp).await.is_ok();
                    if let Some(node) = me.upgrade() {
                        node.feed(|core, now| core.handle(Input::RemoteSet { conn, ok }, now));
                    }
                });
            }
            Effect::AddCandidate { conn, json } => {
                let Some(pc) = io.pcs.get(&conn).cloned() else {
                    return;
                };
                let me = self.me.clone();
                tokio::spawn(async move {
                    if transport::add_candidate(&pc, &json).await.is_err()
                        && let Some(node) = me.upgrade()
                    {
                        node.feed(|core, _| core.count(DropReason::CandidateRejected));
                    }
                });
            }
            Effect::StartLink { conn } => {
                if let Some((channel, window)) = io.channels.remove(&conn) {
                    let (tx, rx) = mpsc::channel(LINK_QUEUE);
                    let (first_tx, first_rx) = mpsc::channel(FIRST_QUEUE);
                    transport::spawn_writer(channel.clone(), window.clone(), rx, first_rx);
                    io.writers.insert(
                        conn,
                        LinkWriter {
                            frames: tx,
                            first: first_tx,
                            window,
                            channel,
                        },
                    );
                }
            }
            Effect::OpenWindow { conn } => {
                // Relayed paths too: since the engine sends relayed packets as it makes them
                // (vendor/webrtc/PATCH.md) and holds T3 retransmissions to cwnd, a TURN server's
                // small buffer costs fast retransmits, not stalls (BENCHMARKS.md).
                if let Some(writer) = io.writers.get(&conn) {
                    writer.window.open_for_daemon();
                }
            }
            Effect::Frames { conn, frames } => {
                let Some(writer) = io.writers.get(&conn) else {
                    return;
                };
                for frame in frames {
                    if writer.frames.try_send(frame).is_err() {
                        inner.core.count(DropReason::LinkQueueFull);
                        break;
                    }
                }
            }
            Effect::FramesKept { conn, frames } => {
                let Some(writer) = io.writers.get(&conn) else {
                    return;
                };
                let mut frames = frames.into_iter();
                while let Some(frame) = frames.next() {
                    match writer.frames.try_send(frame) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(frame)) => {
                            // The rest waits for room, in order, off the node's lock.
                            let tx = writer.frames.clone();
                            let rest: Vec<_> = std::iter::once(frame).chain(frames).collect();
                            tokio::spawn(async move {
                                for f in rest {
                                    if tx.send(f).await.is_err() {
                                        return;
                                    }
                                }
                            });
                            return;
                        }
                        // The link is closing: the messages stay kept for the next one.
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
            }
            Effect::FrameFirst { conn, frame } => {
                if let Some(writer) = io.writers.get(&conn)
                    && writer.first.try_send(frame).is_err()
                {
                    inner.core.count(DropReason::LinkQueueFull);
                }
            }
            Effect::CountUnsent { conn } => {
                if let Some(writer) = io.writers.get(&conn) {
                    let queued = writer.frames.max_capacity() - writer.frames.capacity();
                    if queued > 0 {
                        inner
                            .core
                            .count_n(DropReason::FramesLostOnClose, queued as u64);
                    }
                }
            }
            Effect::Close { conn, delay } => {
                io.media.forget(conn);
                if let Some(writer) = io.writers.remove(&conn) {
                    writer.window.close();
                }
                io.channels.remove(&conn);
                if let Some(pc) = io.pcs.remove(&conn) {
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = pc.close().await;
                    });
                }
            }
            Effect::Keep(kept) => {
                if let Some(history) = &io.history {
                    history.send(HistoryJob::Keep(kept));
                }
            }
            Effect::Replay {
                session,
                room,
                key,
                after,
                to,
            } => {
                let (Some(history), Some(queue)) = (&io.history, io.queues.get(&session)) else {
                    return;
                };
                // Read on the store's thread; live events wait behind it in the queue.
                let hold = queue.hold();
                history.send(HistoryJob::Replay {
                    room,
                    key,
                    after,
                    to,
                    queue: queue.clone(),
                    hold,
                });
            }
            Effect::ServeHistory {
                app,
                room_id,
                peer,
                room,
                key,
                from,
                after_ms,
                channels,
            } => {
                let reader = io.history.as_ref().map(|h| h.reader());
                let me = self.me.clone();
                // Read (and open) on a low-priority reader thread: a peer's request never holds
                // the lock, and waits when the cores are short.
                let read = move || {
                    let page = match &reader {
                        Some(r) => crate::history::page(
                            r.after(&room, from),
                            &key,
                            from,
                            after_ms,
                            &channels,
                        ),
                        None => crate::history::page(
                            std::iter::empty::<(crate::history::Cursor, Vec<u8>)>(),
                            &key,
                            from,
                            after_ms,
                            &channels,
                        ),
                    };
                    // Applied on the node's runtime: a low-priority thread holding the node's
                    // lock would make everything wait for it.
                    let Some(node) = me.upgrade() else { return };
                    let runtime = node.runtime.clone();
                    runtime.spawn(async move {
                        let mut inner = node.lock();
                        inner
                            .core
                            .history_page(&app, &room_id, &peer, page, Instant::now());
                        node.run_effects(&mut inner);
                    });
                };
                // Once the messages kept before the request are stored: the page has them.
                match &io.history {
                    Some(history) => history.send(HistoryJob::Then(Box::new(move || {
                        crate::background::spawn_read(read)
                    }))),
                    None => crate::background::spawn_read(read),
                }
            }
            Effect::Deliver { session, event } => {
                if let Some(queue) = io.queues.get(&session) {
                    queue.push(event);
                }
            }
            Effect::CloseSession { session } => {
                if let Some(queue) = io.queues.remove(&session) {
                    queue.close();
                }
            }
            Effect::Pong { waiter, rtt } => {
                if let Some(tx) = io.pings.remove(&waiter) {
                    let _ = tx.send(rtt);
                }
            }
            Effect::PingLost { waiter } => {
                io.pings.remove(&waiter);
            }
            media @ (Effect::AddTrack { .. }
            | Effect::RemoveTrack { .. }
            | Effect::MediaOffer { .. }
            | Effect::MediaAnswer { .. }
            | Effect::MediaApplyAnswer { .. }) => self.run_media_effect(inner, media),
        }
    }

    fn make_offer(&self, conn: ConnId, relay_only: bool) {
        let me = self.me.clone();
        let transport = self.transport.clone();
        tokio::spawn(async move {
            let result = transport.offer_with(conn, relay_only).await;
            if let Some(node) = me.upgrade() {
                node.dial_made(conn, result, false);
            }
        });
    }

    fn make_answer(&self, conn: ConnId, sdp: String, relay_only: bool) {
        let me = self.me.clone();
        let transport = self.transport.clone();
        tokio::spawn(async move {
            let result = transport.answer_with(conn, sdp, relay_only).await;
            if let Some(node) = me.upgrade() {
                node.dial_made(conn, result, true);
            }
        });
    }

    /// An offer or answer is made (or failed): the connection is kept and the core told.
    fn dial_made(
        &self,
        conn: ConnId,
        result: Result<(transport::Connection, String), transport::TransportError>,
        answerer: bool,
    ) {
        let mut inner = self.lock();
        let sdp = match result {
            Ok((pc, sdp)) => {
                inner.io.pcs.insert(conn, pc);
                Ok(sdp)
            }
            Err(e) => Err(e.to_string()),
        };
        let now = Instant::now();
        if answerer {
            inner.core.handle(Input::AnswerMade { conn, sdp }, now);
        } else {
            inner.core.handle(Input::OfferMade { conn, sdp }, now);
        }
        self.run_effects(&mut inner);
    }
}
