//! Signaling to connections: carries out a room's signaling actions (publish, dial, answer,
//! candidates), routes relay events to rooms, and keeps the connection table until a
//! connection becomes a link.

use std::time::{Duration, Instant};

use super::state::Conn;
use super::{Core, Effect, LinkKey, MAX_HELD_CANDIDATES, PROBE_TIMEOUT, RoomKey, Work};
use crate::drops::DropReason;
use crate::ids::ConnId;
use crate::mesh::admission::Source;
use crate::node::core::cells::Heard;
use crate::node::core::events::{EventKind, PeerType};
use crate::room::LeaveReason;
use crate::signal::Incoming;
use crate::signal::content::Signal;
use crate::signal::state::{Action, RoomSignal};

impl Core {
    /// Runs `f` on a room's signaling and queues the actions it returns.
    pub(super) fn signal_room(
        &mut self,
        key: &RoomKey,
        f: impl FnOnce(&mut RoomSignal) -> Vec<Action>,
    ) {
        if let Some(e) = self.st.rooms.get_mut(key) {
            let actions = f(&mut e.signal);
            if !actions.is_empty() {
                self.work.push_back(Work::Signal(key.clone(), actions));
            }
        }
    }

    /// Handler: a room's signaling actions.
    pub(super) fn apply_actions(&mut self, key: &RoomKey, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Relay(command) => self.effect(Effect::Relay(command)),
                Action::Announce(command) => {
                    self.traffic.announce();
                    self.effect(Effect::Relay(command))
                }
                Action::Seen { peer } => {
                    self.emit(key, EventKind::PeerSeen(peer.into(), PeerType::Unknown))
                }
                Action::StartOffer { peer, offer_id } => self.start_offer(key, peer, offer_id),
                Action::AcceptOffer {
                    peer,
                    offer_id,
                    sdp,
                } => self.accept_offer(key, peer, offer_id, sdp),
                Action::ApplyAnswer {
                    peer,
                    offer_id,
                    sdp,
                } => {
                    if let Some(conn) = self.find_conn(&key.app, &peer, &offer_id)
                        && self.st.conns.get(&conn).is_some_and(|c| c.ready)
                    {
                        self.effect(Effect::ApplyAnswer { conn, sdp });
                    }
                }
                Action::AddCandidate {
                    peer,
                    offer_id,
                    candidate,
                } => self.remote_candidate(key, &peer, &offer_id, candidate),
                Action::CancelDial { peer, offer_id } => {
                    let ids: Vec<ConnId> = self
                        .st
                        .conns
                        .iter()
                        .filter(|(_, c)| {
                            c.link.app == key.app
                                && c.link.peer == peer
                                && c.offer_id == offer_id
                                && !c.open
                        })
                        .map(|(id, _)| *id)
                        .collect();
                    for id in ids {
                        self.st.conns.remove(&id);
                        self.close(id, Duration::ZERO);
                    }
                }
                Action::Drop(reason) => self.signal_dropped(key, reason),
            }
        }
    }

    fn find_conn(&self, app: &str, peer: &str, offer_id: &str) -> Option<ConnId> {
        self.st
            .conns
            .iter()
            .find(|(_, c)| c.link.app == app && c.link.peer == peer && c.offer_id == offer_id)
            .map(|(id, _)| *id)
    }

    fn start_offer(&mut self, key: &RoomKey, peer: String, offer_id: String) {
        // One dial per room; dials of other rooms may race, the first link wins.
        if self.st.links.contains_key(&LinkKey::new(&key.app, &peer))
            || self
                .st
                .conns
                .values()
                .any(|c| c.link.app == key.app && c.link.peer == peer && c.room == key.room)
        {
            return;
        }
        let id = ConnId(self.new_id());
        tracing::debug!(room = %key.room, peer = %peer, offer_id = %offer_id, "dialing");
        let relay_only = self.relay_next(&key.app, &peer);
        let mut conn = Conn::new(&key.app, peer, offer_id, &key.room, self.now);
        conn.initiator = true;
        conn.relay_only = relay_only;
        self.st.conns.insert(id, conn);
        self.effect(Effect::Offer {
            conn: id,
            relay_only,
        });
    }

    fn accept_offer(&mut self, key: &RoomKey, peer: String, offer_id: String, sdp: String) {
        let lk = LinkKey::new(&key.app, &peer);
        if self.st.links.contains_key(&lk) {
            // The peer lost its side of the link (restart): replace ours.
            self.drop_link(&lk, None, LeaveReason::Link);
            self.count(DropReason::LinkReplaced);
        }
        let stale: Vec<ConnId> = self
            .st
            .conns
            .iter()
            .filter(|(_, c)| c.link.app == key.app && c.link.peer == peer && !c.open)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.st.conns.remove(&id);
            self.close(id, Duration::ZERO);
        }
        let id = ConnId(self.new_id());
        let relay_only = self.relay_next(&key.app, &peer);
        let mut conn = Conn::new(&key.app, peer, offer_id, &key.room, self.now);
        conn.relay_only = relay_only;
        self.st.conns.insert(id, conn);
        self.effect(Effect::Answer {
            conn: id,
            sdp,
            relay_only,
        });
    }

    fn remote_candidate(&mut self, key: &RoomKey, peer: &str, offer_id: &str, json: String) {
        let Some(conn) = self.find_conn(&key.app, peer, offer_id) else {
            tracing::debug!(peer, offer_id, "remote candidate for no connection");
            return;
        };
        tracing::debug!(%conn, candidate = %json, "remote candidate");
        let Some(c) = self.st.conns.get_mut(&conn) else {
            return;
        };
        if c.ready && c.remote_set {
            self.effect(Effect::AddCandidate { conn, json });
        } else if c.held_candidates.len() < MAX_HELD_CANDIDATES {
            c.held_candidates.push(json);
        } else {
            self.count(DropReason::CandidateOverflow);
        }
    }

    fn signal_dropped(&mut self, key: &RoomKey, reason: DropReason) {
        tracing::debug!(room = %key.room, drop = reason.name(), "signal dropped");
        self.count(reason);
        if matches!(
            reason,
            DropReason::OfferUndecryptable | DropReason::AnswerUndecryptable
        ) && self
            .st
            .rooms
            .get(key)
            .is_some_and(|e| !e.password.is_empty())
        {
            self.emit(
                key,
                EventKind::Error {
                    code: "password_mismatch".into(),
                    message:
                        "a peer's signaling could not be decrypted: it uses a different password"
                            .into(),
                    peer: crate::ids::PeerId::default(),
                },
            );
        }
    }

    /// Input: a verified relay event.
    pub(super) fn on_relay_event(&mut self, msg: Incoming, now: Instant) {
        self.at(now);
        tracing::debug!(topic = %msg.topic, relay = %msg.relay, "signal in");
        let Some(key) = self.st.topics.get(&msg.topic).cloned() else {
            self.count(DropReason::EventUnknownTopic);
            return;
        };
        let Ok(signal) = Signal::parse(&msg.content) else {
            self.count(DropReason::EventBadContent);
            return;
        };
        let peer = signal.peer().to_owned();
        let announce = matches!(signal, Signal::Announce { .. });
        self.census_heard(&key, &peer, &msg.pubkey, announce);
        if announce {
            self.probe_if_linked(&key, &peer);
        }
        let relay = Some(msg.relay);
        let topic = msg.topic;
        self.signal_room(&key, |s| s.on_signal(&topic, signal, relay, now));
        self.drain();
    }

    /// A cells room hears of a peer; a newcomer may be greeted and, if still linked, routed to.
    fn census_heard(&mut self, key: &RoomKey, peer: &str, author: &[u8; 32], announce: bool) {
        let now = self.now;
        let Some(entry) = self.st.rooms.get_mut(key) else {
            return;
        };
        let Some(cells) = entry.cells.as_mut() else {
            return;
        };
        // A peer we are linked to in this room is no hearsay; any other comes through relays.
        let source = if entry.room.is_joined(peer) {
            Source::Own
        } else {
            Source::Relay
        };
        match cells.heard(peer, author, source, now) {
            Heard::Newcomer => {}
            Heard::Refused(reason) => {
                self.count(reason);
                return;
            }
            Heard::Member | Heard::Stranger => return,
        }
        self.work.push_back(Work::Release(key.clone()));
        if announce && cells.should_greet(peer) {
            // Announces are ephemeral: without a greeting a newcomer would not hear of us
            // until our next one, up to a minute later.
            let actions = entry.signal.greet(peer, now);
            self.work.push_back(Work::Signal(key.clone(), actions));
        }
        // Back in the census while still linked (it was suspected and forgotten, or it joined
        // before we heard it): the overlay must route over that link again.
        if entry.room.is_joined(peer) {
            self.cells_link_up(key, peer, now);
        }
    }

    /// A linked peer that announces again may have restarted: probe the link.
    fn probe_if_linked(&mut self, key: &RoomKey, peer: &str) {
        let now = self.now;
        let lk = LinkKey::new(&key.app, peer);
        let Some(link) = self.st.links.get_mut(&lk) else {
            return;
        };
        if link.probe_deadline.is_some() {
            return;
        }
        link.probe_deadline = Some(now + PROBE_TIMEOUT);
        let conn = link.conn;
        if let Some(entry) = self.st.rooms.get_mut(key)
            && let Some(frame) = entry.room.ping(peer, now)
        {
            entry
                .ping_waiters
                .entry(peer.to_owned())
                .or_default()
                .push_back(None);
            self.frames(conn, vec![frame]);
        }
    }

    /// Input: the driver made the local offer (`Ok(sdp)`) or could not.
    pub(super) fn offer_ready(&mut self, conn: ConnId, sdp: Result<String, String>, now: Instant) {
        self.dial_ready(conn, sdp, false, now);
    }

    /// Input: the driver made the local answer (`Ok(sdp)`) or could not.
    pub(super) fn answer_ready(&mut self, conn: ConnId, sdp: Result<String, String>, now: Instant) {
        self.dial_ready(conn, sdp, true, now);
    }

    fn dial_ready(
        &mut self,
        conn: ConnId,
        sdp: Result<String, String>,
        answerer: bool,
        now: Instant,
    ) {
        self.at(now);
        let Some(c) = self.st.conns.get_mut(&conn) else {
            // The attempt was cancelled meanwhile.
            self.close(conn, Duration::ZERO);
            return;
        };
        let key = c.room_key();
        let (peer, offer_id) = (c.link.peer.clone(), c.offer_id.clone());
        match sdp {
            Ok(sdp) => {
                c.ready = true;
                if answerer {
                    c.remote_set = true;
                    c.negotiated_at = Some(now);
                    let held = std::mem::take(&mut c.held_candidates);
                    for json in held {
                        self.effect(Effect::AddCandidate { conn, json });
                    }
                    self.signal_room(&key, |s| s.answer_ready(&peer, &offer_id, &sdp));
                } else {
                    self.signal_room(&key, |s| s.offer_ready(&peer, &offer_id, &sdp));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "connection setup failed");
                self.st.conns.remove(&conn);
                self.close(conn, Duration::ZERO);
                if let Some(e) = self.st.rooms.get_mut(&key) {
                    e.signal.dial_failed(&peer, &offer_id);
                }
                self.count(DropReason::DialFailed);
            }
        }
        self.drain();
    }

    /// Input: the remote answer was applied (or refused): held candidates can go in.
    pub(super) fn remote_set(&mut self, conn: ConnId, ok: bool, now: Instant) {
        self.at(now);
        if !ok {
            self.count(DropReason::AnswerRejected);
            return;
        }
        let Some(c) = self.st.conns.get_mut(&conn) else {
            return;
        };
        c.remote_set = true;
        c.negotiated_at = Some(now);
        let held = std::mem::take(&mut c.held_candidates);
        for json in held {
            self.effect(Effect::AddCandidate { conn, json });
        }
    }

    /// Input: a local ICE candidate of a connection.
    pub(super) fn local_candidate(&mut self, conn: ConnId, json: &str, now: Instant) {
        self.at(now);
        let Some(c) = self.st.conns.get(&conn) else {
            return;
        };
        let key = c.room_key();
        let (peer, offer_id) = (c.link.peer.clone(), c.offer_id.clone());
        tracing::debug!(%conn, candidate = json, "local candidate");
        self.signal_room(&key, |s| s.local_candidate(&peer, &offer_id, json));
        self.drain();
    }

    /// Whether the next attempt with `peer` should use only relayed candidates: an attempt
    /// with it failed and TURN servers are configured (webrtc 0.21 connects through TURN
    /// reliably only when relayed candidates are all it has).
    fn relay_next(&self, app: &str, peer: &str) -> bool {
        self.config.relay_fallback && self.st.relay_next.contains(&LinkKey::new(app, peer))
    }

    /// Input: a relay (re)connected: announce again every room it carries (those of `apps`, or
    /// every room for a relay all rooms use) so peers behind it find us.
    pub(super) fn relay_up(&mut self, apps: Option<&[String]>, now: Instant) {
        self.at(now);
        for (key, entry) in self.st.rooms.iter_mut() {
            if apps.is_none_or(|apps| apps.contains(&key.app)) {
                entry.signal.restart_burst(now);
            }
        }
    }
}
