//! A room's outputs: frames onto links, events to the sessions that joined it.

use super::*;

impl Node {
    pub(super) fn emit(st: &State, key: &RoomKey, kind: EventKind) {
        let Some(entry) = st.rooms.get(key) else {
            return;
        };
        for (sid, sr) in &entry.sessions {
            if let EventKind::Message { channel, .. } | EventKind::Progress { channel, .. } = &kind
                && !(sr.channels.is_empty() || sr.channels.contains(channel))
            {
                continue;
            }
            if let Some(s) = st.sessions.get(sid) {
                s.queue.push(SessionEvent {
                    room: sr.handle,
                    app: key.app.clone(),
                    room_id: key.room.clone(),
                    kind: kind.clone(),
                });
            }
        }
    }

    pub(super) fn apply_outputs(
        &self,
        st: &mut State,
        key: &RoomKey,
        outputs: Vec<Output>,
        effects: &mut Vec<Effect>,
    ) {
        let app = &key.app;
        for o in outputs {
            match o {
                Output::Send(peer, frame) => match st.links.get(&LinkKey::new(app, &peer)) {
                    Some(link) => {
                        if link.tx.try_send(frame).is_err() {
                            count(st, DropReason::LinkQueueFull);
                        }
                    }
                    None => count(st, DropReason::SendNoLink),
                },
                Output::Drop(name) => count(st, name),
                Output::Cell(peer, bytes) => self.on_cell_frame(st, key, &peer, &bytes, effects),
                Output::Event(ev) => match ev {
                    RoomEvent::PeerJoin(p, security) => {
                        if let Some(link) = st.links.get_mut(&LinkKey::new(app, &p)) {
                            link.rooms.insert(key.room.clone());
                            link.idle_since = None;
                        }
                        if let Some(cells) = st.rooms.get_mut(key).and_then(|e| e.cells.as_mut())
                            && cells.is_member(&p)
                        {
                            cells.link_up(&p, Instant::now());
                        }
                        Self::emit(st, key, EventKind::PeerJoin(p, security));
                    }
                    RoomEvent::PeerLeave(p, reason) => {
                        if let Some(link) = st.links.get_mut(&LinkKey::new(app, &p)) {
                            link.rooms.remove(&key.room);
                            if link.rooms.is_empty() {
                                link.idle_since = Some(Instant::now());
                            }
                        }
                        if let Some(e) = st.rooms.get_mut(key) {
                            e.rtts.remove(&p);
                            e.ping_waiters.remove(&p);
                            if let Some(cells) = e.cells.as_mut() {
                                let dead = reason == LeaveReason::Timeout;
                                if cells.link_down(&p, dead, Instant::now()) {
                                    self.cell_notice(
                                        st,
                                        key,
                                        cells::gone_notice(std::slice::from_ref(&p)),
                                        effects,
                                    );
                                }
                            }
                        }
                        Self::emit(st, key, EventKind::PeerLeave(p, reason));
                    }
                    RoomEvent::Message {
                        channel,
                        from,
                        payload,
                        meta,
                    } => {
                        Self::emit(
                            st,
                            key,
                            EventKind::Message {
                                channel,
                                from,
                                local: false,
                                payload,
                                meta,
                            },
                        );
                    }
                    RoomEvent::Progress {
                        channel,
                        from,
                        fraction,
                        meta,
                    } => {
                        Self::emit(
                            st,
                            key,
                            EventKind::Progress {
                                channel,
                                from,
                                fraction,
                                meta,
                            },
                        );
                    }
                    RoomEvent::Error {
                        code,
                        message,
                        peer,
                    } => {
                        Self::emit(
                            st,
                            key,
                            EventKind::Error {
                                code: code.to_owned(),
                                message,
                                peer,
                            },
                        );
                    }
                    RoomEvent::Pong(p) => {
                        if let Some(e) = st.rooms.get_mut(key) {
                            let rtt = e.room.take_ping(&p, Instant::now());
                            let waiter = e
                                .ping_waiters
                                .get_mut(&p)
                                .and_then(|q| q.pop_front())
                                .flatten();
                            if let Some(rtt) = rtt {
                                e.rtts.insert(p.clone(), rtt.as_secs_f64() * 1000.0);
                                if let Some(w) = waiter {
                                    let _ = w.send(rtt);
                                }
                            }
                        }
                    }
                },
            }
        }
    }
}
