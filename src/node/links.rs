//! Links: a peer's one live connection per app. Their lifecycle lives here: the duplicate-link
//! race, presence and frames arriving, the watchdog's ping and timeout, the restart probe and
//! idle close, and the periodic tick that drives them.

use super::*;

impl Node {
    /// Removes a link: its rooms lose the peer, signaling may dial again.
    pub(super) fn drop_link(
        &self,
        st: &mut State,
        lk: &LinkKey,
        reason: LeaveReason,
        effects: &mut Vec<Effect>,
    ) {
        let Some(link) = st.links.remove(lk) else {
            return;
        };
        if let Some(c) = st.conns.remove(&link.conn)
            && let Some(pc) = c.pc
        {
            effects.push(Effect::Close {
                pc,
                delay: Duration::ZERO,
            });
        }
        let LinkKey { app, peer } = lk;
        let keys: Vec<RoomKey> = st.rooms.keys().filter(|k| k.app == *app).cloned().collect();
        let now = Instant::now();
        for key in keys {
            let Some(entry) = st.rooms.get_mut(&key) else {
                continue;
            };
            let was_joined = entry.room.is_joined(peer);
            let outs = entry.room.detach(peer, reason);
            entry.signal.set_linked(peer, false);
            if was_joined {
                entry.signal.restart_burst(now);
            }
            self.apply_outputs(st, &key, outs, effects);
        }
    }

    pub(super) fn on_transport(&self, ev: TransportEvent) {
        let mut effects = Vec::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            match ev {
                TransportEvent::Candidate(id, json) => {
                    let Some(c) = st.conns.get(&id) else { return };
                    let key = RoomKey::new(&c.app, &c.room);
                    let (peer, offer_id) = (c.peer.clone(), c.offer_id.clone());
                    self.signal_room(
                        st,
                        &key,
                        |s| s.local_candidate(&peer, &offer_id, &json),
                        &mut effects,
                    );
                }
                TransportEvent::Open(id, channel) => self.on_open(st, id, channel, &mut effects),
                TransportEvent::Message(id, bytes) => self.on_frame(st, id, &bytes, &mut effects),
                TransportEvent::Closed(id) => {
                    let Some(c) = st.conns.get(&id) else { return };
                    let lk = LinkKey::new(&c.app, &c.peer);
                    if c.open {
                        self.drop_link(st, &lk, LeaveReason::Link, &mut effects);
                    } else if let Some(c) = st.conns.remove(&id) {
                        let key = RoomKey::new(&c.app, &c.room);
                        let (peer, offer_id) = (c.peer.clone(), c.offer_id.clone());
                        // Announce again so the peer answers with a fresh attempt.
                        self.signal_room(
                            st,
                            &key,
                            |s| {
                                s.dial_failed(&peer, &offer_id);
                                s.restart_burst(Instant::now());
                                Vec::new()
                            },
                            &mut effects,
                        );
                        if let Some(pc) = c.pc {
                            effects.push(Effect::Close {
                                pc,
                                delay: Duration::ZERO,
                            });
                        }
                        count(st, DropReason::DialFailed);
                    }
                }
            }
        }
        self.run_effects(effects);
    }

    pub(super) fn on_open(
        &self,
        st: &mut State,
        id: ConnId,
        channel: Channel,
        effects: &mut Vec<Effect>,
    ) {
        let Some(c) = st.conns.get_mut(&id) else {
            return;
        };
        if c.open {
            return;
        }
        c.open = true;
        let lk = LinkKey::new(&c.app, &c.peer);
        let offer_id = c.offer_id.clone();
        let signaled_room = RoomKey::new(&c.app, &c.room);
        if let Some(existing) = st.links.get(&lk).map(|l| l.conn) {
            // Two dials of different rooms both connected: both sides keep the smaller offer id.
            let existing_offer = st
                .conns
                .get(&existing)
                .map(|c| c.offer_id.clone())
                .unwrap_or_default();
            if existing_offer <= offer_id {
                if let Some(pc) = st.conns.remove(&id).and_then(|c| c.pc) {
                    effects.push(Effect::Close {
                        pc,
                        delay: Duration::from_millis(500),
                    });
                }
                count(st, DropReason::LinkDuplicate);
                return;
            }
            self.drop_link(st, &lk, LeaveReason::Link, effects);
            count(st, DropReason::LinkDuplicate);
        }
        let (tx, rx) = mpsc::channel(LINK_QUEUE);
        transport::spawn_writer(channel, rx);
        let now = Instant::now();
        let LinkKey { app, peer } = lk.clone();
        let keys: Vec<RoomKey> = st.rooms.keys().filter(|k| k.app == app).cloned().collect();
        for key in &keys {
            if let Some(entry) = st.rooms.get(key) {
                let _ = tx.try_send(entry.room.presence_frame(true));
            }
        }
        st.links.insert(
            lk.clone(),
            Link {
                conn: id,
                tx,
                rooms: HashSet::new(),
                connected_at: now,
                last_rx: now,
                last_ping: None,
                probe_deadline: None,
                idle_since: Some(now),
            },
        );
        for key in keys {
            let peer = peer.clone();
            self.signal_room(
                st,
                &key,
                |s| {
                    s.set_linked(&peer, true);
                    Vec::new()
                },
                effects,
            );
        }
        // The room whose signaling made this link has the peer: start its handshake now rather
        // than only on the peer's presence frame, which a browser may send before it has tied
        // the connection to the room.
        if let Some(entry) = st.rooms.get_mut(&signaled_room)
            && !entry.room.is_attached(&peer)
        {
            let outs = entry.room.attach(&peer, now);
            if let Some(link) = st.links.get_mut(&lk) {
                link.idle_since = None;
            }
            self.apply_outputs(st, &signaled_room, outs, effects);
        }
        tracing::info!(app = %app, peer = %peer, "link up");
    }

    pub(super) fn on_frame(
        &self,
        st: &mut State,
        id: ConnId,
        bytes: &[u8],
        effects: &mut Vec<Effect>,
    ) {
        let Some(c) = st.conns.get(&id) else { return };
        let lk = LinkKey::new(&c.app, &c.peer);
        self.frame_tap.record(&lk.peer, bytes);
        let now = Instant::now();
        match st.links.get_mut(&lk) {
            Some(link) if link.conn == id => {
                link.last_rx = now;
                link.probe_deadline = None;
            }
            _ => {
                // Data on a connection that lost a duplicate-link race (or has not opened yet).
                count(st, DropReason::FrameStaleLink);
                return;
            }
        }
        let frame = match OuterFrame::decode(bytes) {
            Ok(f) => f,
            Err(_) => {
                count(st, DropReason::FrameMalformed);
                return;
            }
        };
        let (token, data, joined) = match frame {
            OuterFrame::Data { token, chunk } => (token, Some(chunk), true),
            OuterFrame::Presence { joined, token } => (token, None, joined),
        };
        let Some(key) = std::str::from_utf8(token)
            .ok()
            .and_then(|t| st.tokens.get(t))
            .cloned()
            .filter(|k| k.app == lk.app)
        else {
            count(st, DropReason::FrameUnknownRoom);
            return;
        };
        let peer = lk.peer.clone();
        let Some(entry) = st.rooms.get_mut(&key) else {
            return;
        };
        let mut outs = Vec::new();
        if data.is_none() && joined {
            outs.extend(entry.room.on_presence(&peer, now));
        } else if joined && !entry.room.is_attached(&peer) {
            outs.extend(entry.room.attach(&peer, now));
        }
        if joined
            && entry.room.is_attached(&peer)
            && let Some(link) = st.links.get_mut(&lk)
        {
            link.idle_since = None;
        }
        let Some(entry) = st.rooms.get_mut(&key) else {
            return;
        };
        match data {
            Some(chunk) => outs.extend(entry.room.on_chunk(&peer, chunk, now)),
            None if !joined => outs.extend(entry.room.detach(&peer, LeaveReason::Leave)),
            None => {}
        }
        self.apply_outputs(st, &key, outs, effects);
    }

    pub(super) fn tick(&self) -> Instant {
        let now = Instant::now();
        let mut effects = Vec::new();
        let mut next = now + Duration::from_millis(500);
        {
            let mut st = self.lock();
            let st = &mut *st;
            let keys: Vec<RoomKey> = st.rooms.keys().cloned().collect();
            for key in keys {
                self.signal_room(st, &key, |s| s.tick(now), &mut effects);
                if let Some(entry) = st.rooms.get_mut(&key) {
                    let outs = entry.room.tick(now);
                    next = next.min(entry.signal.next_deadline());
                    self.apply_outputs(st, &key, outs, &mut effects);
                }
                let State { rooms, links, .. } = &mut *st;
                if let Some(entry) = rooms.get_mut(&key)
                    && let Some(cells) = entry.cells.as_mut()
                {
                    let room = &entry.room;
                    let before = Arc::as_ptr(cells.mesh().topology());
                    let outs = cells.tick(now, |p| {
                        links.contains_key(&LinkKey::new(&key.app, p)) && room.is_joined(p)
                    });
                    if Arc::as_ptr(cells.mesh().topology()) != before {
                        // Announcers the new topology wants are dialled; linked peers never are.
                        entry.signal.set_dial_filter(Some(cells.wanted()));
                        let info = cells.info();
                        Self::emit(st, &key, EventKind::MeshState(info));
                    }
                    // Settling and redials run on this tick; keep it coming while they are due.
                    next = next.min(now + Duration::from_millis(250));
                    self.apply_mesh(st, &key, outs, &mut effects);
                }
            }
            let ping_after = Duration::from_millis(self.config.ping_after_ms);
            let dead_after = Duration::from_millis(self.config.dead_after_ms);
            let mut dead = Vec::new();
            for (lk, link) in st.links.iter_mut() {
                let quiet = now.saturating_duration_since(link.last_rx);
                if quiet >= dead_after || link.probe_deadline.is_some_and(|d| now >= d) {
                    dead.push((lk.clone(), LeaveReason::Timeout));
                } else if link
                    .idle_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= IDLE_LINK)
                {
                    dead.push((lk.clone(), LeaveReason::Leave));
                } else if quiet >= ping_after
                    && link
                        .last_ping
                        .is_none_or(|t| now.saturating_duration_since(t) >= ping_after)
                {
                    let room = link.rooms.iter().next().cloned();
                    if let Some(room) = room
                        && let Some(entry) = st.rooms.get_mut(&RoomKey::new(&lk.app, &room))
                        && let Some(frame) = entry.room.ping(&lk.peer, now)
                    {
                        entry
                            .ping_waiters
                            .entry(lk.peer.clone())
                            .or_default()
                            .push_back(None);
                        let _ = link.tx.try_send(frame);
                        link.last_ping = Some(now);
                    }
                }
            }
            for (lk, reason) in dead {
                if reason == LeaveReason::Timeout {
                    count(st, DropReason::LinkTimeout);
                }
                self.drop_link(st, &lk, reason, &mut effects);
            }
        }
        self.run_effects(effects);
        next.max(now + Duration::from_millis(10))
    }
}
