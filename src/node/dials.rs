//! Signaling to connections: carries out a room's signaling actions (publish, dial, answer,
//! candidates), routes relay events to rooms, and tracks the connection table until a
//! connection becomes a link.

use super::*;

impl Node {
    pub(super) fn signal_room(
        &self,
        st: &mut State,
        key: &RoomKey,
        f: impl FnOnce(&mut RoomSignal) -> Vec<Action>,
        effects: &mut Vec<Effect>,
    ) {
        let actions = match st.rooms.get_mut(key) {
            Some(e) => f(&mut e.signal),
            None => return,
        };
        self.apply_actions(st, key, actions, effects);
    }

    pub(super) fn apply_actions(
        &self,
        st: &mut State,
        key: &RoomKey,
        actions: Vec<Action>,
        effects: &mut Vec<Effect>,
    ) {
        let RoomKey { app, room: room_id } = key;
        for action in actions {
            match action {
                Action::Relay(command) => effects.push(Effect::Relay(command)),
                Action::Seen { peer } => Self::emit(st, key, EventKind::PeerSeen(peer)),
                Action::StartOffer { peer, offer_id } => {
                    let lk = LinkKey::new(app, &peer);
                    // One dial per room; dials of other rooms may race, the first link wins.
                    if st.links.contains_key(&lk)
                        || st
                            .conns
                            .values()
                            .any(|c| c.app == *app && c.peer == peer && c.room == *room_id)
                    {
                        continue;
                    }
                    let id = self.new_id();
                    tracing::debug!(room = %room_id, peer = %peer, offer_id = %offer_id, "dialing");
                    st.conns.insert(
                        id,
                        Conn {
                            app: app.clone(),
                            peer,
                            offer_id,
                            room: room_id.clone(),
                            pc: None,
                            remote_set: false,
                            held_candidates: Vec::new(),
                            open: false,
                        },
                    );
                    effects.push(Effect::Offer { conn: id });
                }
                Action::AcceptOffer {
                    peer,
                    offer_id,
                    sdp,
                } => {
                    let lk = LinkKey::new(app, &peer);
                    if st.links.contains_key(&lk) {
                        // The peer lost its side of the link (restart): replace ours.
                        self.drop_link(st, &lk, LeaveReason::Link, effects);
                        count(st, DropReason::LinkReplaced);
                    }
                    let stale: Vec<ConnId> = st
                        .conns
                        .iter()
                        .filter(|(_, c)| c.app == *app && c.peer == peer && !c.open)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in stale {
                        if let Some(c) = st.conns.remove(&id)
                            && let Some(pc) = c.pc
                        {
                            effects.push(Effect::Close {
                                pc,
                                delay: Duration::ZERO,
                            });
                        }
                    }
                    let id = self.new_id();
                    st.conns.insert(
                        id,
                        Conn {
                            app: app.clone(),
                            peer,
                            offer_id,
                            room: room_id.clone(),
                            pc: None,
                            remote_set: false,
                            held_candidates: Vec::new(),
                            open: false,
                        },
                    );
                    effects.push(Effect::Answer { conn: id, sdp });
                }
                Action::ApplyAnswer {
                    peer,
                    offer_id,
                    sdp,
                } => {
                    if let Some((id, c)) = st
                        .conns
                        .iter()
                        .find(|(_, c)| c.app == *app && c.peer == peer && c.offer_id == offer_id)
                        && let Some(pc) = c.pc.clone()
                    {
                        effects.push(Effect::ApplyAnswer { conn: *id, pc, sdp });
                    }
                }
                Action::AddCandidate {
                    peer,
                    offer_id,
                    candidate,
                } => {
                    if let Some(c) = st
                        .conns
                        .values_mut()
                        .find(|c| c.app == *app && c.peer == peer && c.offer_id == offer_id)
                    {
                        match (&c.pc, c.remote_set) {
                            (Some(pc), true) => effects.push(Effect::AddCandidate {
                                pc: pc.clone(),
                                json: candidate,
                            }),
                            _ if c.held_candidates.len() < MAX_HELD_CANDIDATES => {
                                c.held_candidates.push(candidate)
                            }
                            _ => count(st, DropReason::CandidateOverflow),
                        }
                    }
                }
                Action::CancelDial { peer, offer_id } => {
                    let ids: Vec<ConnId> = st
                        .conns
                        .iter()
                        .filter(|(_, c)| {
                            c.app == *app && c.peer == peer && c.offer_id == offer_id && !c.open
                        })
                        .map(|(id, _)| *id)
                        .collect();
                    for id in ids {
                        if let Some(c) = st.conns.remove(&id)
                            && let Some(pc) = c.pc
                        {
                            effects.push(Effect::Close {
                                pc,
                                delay: Duration::ZERO,
                            });
                        }
                    }
                }
                Action::Drop(name) => {
                    tracing::debug!(room = %room_id, drop = name.name(), "signal dropped");
                    count(st, name);
                    if matches!(
                        name,
                        DropReason::OfferUndecryptable | DropReason::AnswerUndecryptable
                    ) && st.rooms.get(key).is_some_and(|e| !e.password.is_empty())
                    {
                        Self::emit(
                            st,
                            key,
                            EventKind::Error {
                                code: "password_mismatch".into(),
                                message: "a peer's signaling could not be decrypted: it uses a different password".into(),
                                peer: String::new(),
                            },
                        );
                    }
                }
            }
        }
    }

    pub(super) fn on_incoming(&self, msg: Incoming) {
        tracing::debug!(topic = %msg.topic, relay = %msg.relay, "signal in");
        let mut effects = Vec::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            let Some(key) = st.topics.get(&msg.topic).cloned() else {
                count(st, DropReason::EventUnknownTopic);
                return;
            };
            let signal = match Signal::parse(&msg.content) {
                Ok(s) => s,
                Err(_) => {
                    count(st, DropReason::EventBadContent);
                    return;
                }
            };
            let peer = signal.peer().to_owned();
            if let Some(entry) = st.rooms.get_mut(&key)
                && let Some(cells) = entry.cells.as_mut()
                && cells.heard(&peer, &msg.pubkey, Instant::now()) == cells::Heard::Newcomer
            {
                // Back in the census while still linked (it was suspected and forgotten, or it
                // joined before we heard it): the overlay must route over that link again.
                if entry.room.is_joined(&peer) {
                    cells.link_up(&peer, Instant::now());
                }
                if matches!(signal, Signal::Announce { .. }) && cells.should_greet(&peer) {
                    // Announces are ephemeral: without a greeting a newcomer would not hear of
                    // us until our next one, up to a minute later.
                    let actions = entry.signal.greet(&peer, Instant::now());
                    self.apply_actions(st, &key, actions, &mut effects);
                }
            }
            let lk = LinkKey::new(&key.app, &peer);
            // A linked peer that announces again may have restarted: probe the link.
            if let Signal::Announce { .. } = signal
                && let Some(link) = st.links.get_mut(&lk)
                && link.probe_deadline.is_none()
            {
                let now = Instant::now();
                link.probe_deadline = Some(now + PROBE_TIMEOUT);
                if let Some(entry) = st.rooms.get_mut(&key)
                    && let Some(frame) = entry.room.ping(&peer, now)
                {
                    entry
                        .ping_waiters
                        .entry(peer.clone())
                        .or_default()
                        .push_back(None);
                    let _ = link.tx.try_send(frame);
                }
            }
            let now = Instant::now();
            let topic = msg.topic;
            let relay = Some(msg.relay);
            self.signal_room(
                st,
                &key,
                |s| s.on_signal(&topic, signal, relay, now),
                &mut effects,
            );
        }
        self.run_effects(effects);
    }

    /// A local offer or answer is ready (or failed).
    pub(super) fn dial_ready(
        &self,
        conn: ConnId,
        result: Result<(Connection, String), transport::TransportError>,
        answerer: bool,
    ) {
        let mut effects = Vec::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            let Some(c) = st.conns.get_mut(&conn) else {
                // The attempt was cancelled meanwhile.
                if let Ok((pc, _)) = result {
                    tokio::spawn(async move {
                        let _ = pc.close().await;
                    });
                }
                return;
            };
            match result {
                Ok((pc, sdp)) => {
                    c.pc = Some(pc.clone());
                    let key = RoomKey::new(&c.app, &c.room);
                    let (peer, offer_id) = (c.peer.clone(), c.offer_id.clone());
                    if answerer {
                        c.remote_set = true;
                        for json in c.held_candidates.drain(..) {
                            effects.push(Effect::AddCandidate {
                                pc: pc.clone(),
                                json,
                            });
                        }
                        self.signal_room(
                            st,
                            &key,
                            |s| s.answer_ready(&peer, &offer_id, &sdp),
                            &mut effects,
                        );
                    } else {
                        self.signal_room(
                            st,
                            &key,
                            |s| s.offer_ready(&peer, &offer_id, &sdp),
                            &mut effects,
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "connection setup failed");
                    if let Some(c) = st.conns.remove(&conn) {
                        let key = RoomKey::new(&c.app, &c.room);
                        self.signal_room(
                            st,
                            &key,
                            |s| {
                                s.dial_failed(&c.peer, &c.offer_id);
                                Vec::new()
                            },
                            &mut effects,
                        );
                    }
                    count(st, DropReason::DialFailed);
                }
            }
        }
        self.run_effects(effects);
    }

    /// The remote answer was applied: held candidates can go in.
    pub(super) fn remote_set(&self, conn: ConnId, ok: bool) {
        let mut effects = Vec::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            if !ok {
                count(st, DropReason::AnswerRejected);
                return;
            }
            let Some(c) = st.conns.get_mut(&conn) else {
                return;
            };
            c.remote_set = true;
            if let Some(pc) = c.pc.clone() {
                for json in c.held_candidates.drain(..) {
                    effects.push(Effect::AddCandidate {
                        pc: pc.clone(),
                        json,
                    });
                }
            }
        }
        self.run_effects(effects);
    }

    /// A relay came up: announce every room again so peers behind it find us.
    pub(super) fn restart_bursts(&self) {
        let now = Instant::now();
        for entry in self.lock().rooms.values_mut() {
            entry.signal.restart_burst(now);
        }
        self.wake.notify_one();
    }
}
