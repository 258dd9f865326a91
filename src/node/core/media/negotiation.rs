//! Perfect negotiation on each link over `@_signal`, as Trystero does it: the link's first
//! offerer ignores a colliding offer, the other side rolls back; refused rounds are retried and
//! an offer nobody answers is made again.

use std::time::Instant;

use crate::drops::DropReason;
use crate::ids::ConnId;
use crate::node::core::events::EventKind;
use crate::node::core::{Core, Effect, LinkKey};
use crate::room::media::{MediaWire, SignalKind};

/// Refused renegotiation rounds in a row after which a link stops retrying (until its tracks
/// change again).
const MAX_NEGOTIATION_RETRIES: u32 = 3;
/// How long an offer may wait for its answer before it is made again (a peer whose engine
/// refused to answer it never will).
pub const OFFER_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Core {
    /// Input: the connection's tracks changed and it must renegotiate.
    pub(in crate::node::core) fn negotiation_needed(&mut self, conn: ConnId, now: Instant) {
        self.at(now);
        let Some(lk) = self.st.link_of(conn) else {
            return;
        };
        let Some(link) = self.st.links.get_mut(&lk) else {
            return;
        };
        link.nego.failures = 0;
        if link.nego.making_offer || link.nego.offer_out {
            link.nego.again = true;
            return;
        }
        link.nego.making_offer = true;
        link.nego.superseded = false;
        self.effect(Effect::MediaOffer { conn });
    }

    /// Input: our renegotiation offer is made (or failed).
    pub(in crate::node::core) fn media_offer_made(
        &mut self,
        conn: ConnId,
        sdp: Result<String, String>,
        now: Instant,
    ) {
        self.at(now);
        let Some(lk) = self.st.link_of(conn) else {
            return;
        };
        let Some(link) = self.st.links.get_mut(&lk) else {
            return;
        };
        link.nego.making_offer = false;
        if std::mem::take(&mut link.nego.superseded) {
            return;
        }
        match sdp {
            Ok(sdp) => {
                link.nego.offer_out = true;
                link.nego.offer_at = Some(self.now);
                link.nego.offered = self
                    .st
                    .media
                    .local_tracks
                    .iter()
                    .filter(|(_, t)| t.on.contains(&conn))
                    .map(|(id, _)| *id)
                    .collect();
                self.send_signal(&lk, conn, SignalKind::Offer, sdp);
            }
            Err(e) => {
                tracing::warn!(error = %e, "renegotiation offer failed");
                self.negotiation_failed(&lk, conn);
            }
        }
    }

    /// Timer: offers unanswered for too long are made again (the peer could not answer them).
    pub(in crate::node::core) fn unanswered_offers(&mut self) {
        let now = self.now;
        let late: Vec<LinkKey> = self
            .st
            .links
            .iter()
            .filter(|(_, l)| {
                l.nego.offer_out
                    && l.nego
                        .offer_at
                        .is_some_and(|at| now.saturating_duration_since(at) >= OFFER_ANSWER_TIMEOUT)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for lk in late {
            let Some(conn) = self.st.link_conn(&lk) else {
                continue;
            };
            tracing::debug!(peer = %lk.peer, "renegotiation offer unanswered: made again");
            if let Some(link) = self.st.links.get_mut(&lk) {
                link.nego.offer_out = false;
                link.nego.offer_at = None;
            }
            self.negotiation_failed(&lk, conn);
        }
    }

    /// The engine refused a step of a round: the round is tried again, a few times.
    fn negotiation_failed(&mut self, lk: &LinkKey, conn: ConnId) {
        self.count(DropReason::MediaNegotiationFailed);
        let Some(link) = self.st.links.get_mut(lk) else {
            return;
        };
        link.nego.failures += 1;
        if link.nego.failures <= MAX_NEGOTIATION_RETRIES {
            link.nego.again = true;
        }
        self.negotiate_again(lk, conn);
    }

    /// Input: our answer to a renegotiation is made (or failed).
    pub(in crate::node::core) fn media_answer_made(
        &mut self,
        conn: ConnId,
        sdp: Result<String, String>,
        now: Instant,
    ) {
        self.at(now);
        let Some(lk) = self.st.link_of(conn) else {
            return;
        };
        match sdp {
            Ok(sdp) => {
                tracing::debug!(%conn, bytes = sdp.len(), "media answer out");
                self.send_signal(&lk, conn, SignalKind::Answer, sdp)
            }
            Err(e) => {
                tracing::warn!(error = %e, "renegotiation answer failed");
                // The peer's offer stays unanswered; our own offer makes the round again.
                self.negotiation_failed(&lk, conn);
                return;
            }
        }
        self.negotiate_again(&lk, conn);
    }

    /// Input: the remote answer to our renegotiation was applied (or refused).
    pub(in crate::node::core) fn media_answer_applied(
        &mut self,
        conn: ConnId,
        ok: bool,
        now: Instant,
    ) {
        self.at(now);
        let Some(lk) = self.st.link_of(conn) else {
            return;
        };
        if !ok {
            self.negotiation_failed(&lk, conn);
            return;
        }
        if let Some(link) = self.st.links.get_mut(&lk) {
            link.nego.failures = 0;
        }
        self.tracks_ready(&lk);
        self.negotiate_again(&lk, conn);
    }

    /// The tracks our answered offer carried flow now: their apps may start writing (told once
    /// per track and link).
    fn tracks_ready(&mut self, lk: &LinkKey) {
        let offered: Vec<crate::ids::TrackId> = match self.st.links.get_mut(lk) {
            Some(link) => {
                let offered = std::mem::take(&mut link.nego.offered);
                offered
                    .into_iter()
                    .filter(|id| link.nego.ready.insert(*id))
                    .collect()
            }
            None => return,
        };
        for id in offered {
            let peer = lk.peer.clone();
            self.tell_track_owner(id, EventKind::TrackReady { track: id, peer });
        }
    }

    fn negotiate_again(&mut self, lk: &LinkKey, conn: ConnId) {
        let Some(link) = self.st.links.get_mut(lk) else {
            return;
        };
        if link.nego.again && !link.nego.making_offer && !link.nego.offer_out {
            link.nego.again = false;
            link.nego.making_offer = true;
            self.effect(Effect::MediaOffer { conn });
        }
    }

    /// Sends a `@_signal` on a room the peer is joined in.
    fn send_signal(&mut self, lk: &LinkKey, conn: ConnId, kind: SignalKind, sdp: String) {
        let rooms = self.st.rooms_of(&lk.app);
        let Some(key) = rooms.iter().find(|k| {
            self.st
                .rooms
                .get(*k)
                .is_some_and(|e| e.room.is_joined(&lk.peer))
        }) else {
            return;
        };
        let Some(entry) = self.st.rooms.get_mut(key) else {
            return;
        };
        let frames = entry.room.media_frames(&MediaWire::Signal { kind, sdp });
        self.frames(conn, frames);
    }

    pub(in crate::node::core) fn on_media_signal(
        &mut self,
        lk: &LinkKey,
        conn: ConnId,
        kind: SignalKind,
        sdp: String,
    ) {
        if kind != SignalKind::Candidate {
            self.end_unsent_tracks(conn, &sdp);
        }
        let initiator = self.st.conns.get(&conn).is_some_and(|c| c.initiator);
        let Some(link) = self.st.links.get_mut(lk) else {
            return;
        };
        match kind {
            SignalKind::Offer => {
                let collision = link.nego.making_offer || link.nego.offer_out;
                if collision && initiator {
                    // The link's first offerer keeps its own offer; the other side yields.
                    self.count(DropReason::MediaOfferIgnored);
                    return;
                }
                let rollback = link.nego.offer_out || link.nego.making_offer;
                if collision {
                    link.nego.superseded = link.nego.making_offer;
                    link.nego.offer_out = false;
                    link.nego.again = true;
                }
                self.effect(Effect::MediaAnswer {
                    conn,
                    sdp,
                    rollback,
                });
            }
            SignalKind::Answer => {
                if link.nego.offer_out {
                    link.nego.offer_out = false;
                    self.effect(Effect::MediaApplyAnswer { conn, sdp });
                }
            }
            SignalKind::Candidate => self.effect(Effect::AddCandidate { conn, json: sdp }),
        }
    }
}
