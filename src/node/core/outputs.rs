//! A room's outputs: frames onto links, events to the sessions that joined it.

use super::{Core, Effect, LinkKey, RoomKey};
use crate::drops::DropReason;
use crate::node::core::events::{EventKind, SessionId};
use crate::room::{Output, RoomEvent};

impl Core {
    /// Hands an event to every session of the room that wants it.
    pub(super) fn emit(&mut self, key: &RoomKey, kind: EventKind) {
        self.emit_except(key, kind, &[]);
    }

    /// Hands an event to every session of the room that wants it, except these.
    fn emit_except(&mut self, key: &RoomKey, kind: EventKind, except: &[SessionId]) {
        let Some(entry) = self.st.rooms.get(key) else {
            return;
        };
        let channel = match &kind {
            EventKind::Message { channel, .. } | EventKind::Progress { channel, .. } => {
                Some(channel.as_str())
            }
            _ => None,
        };
        for (session, sr) in &entry.sessions {
            if channel.is_some_and(|c| !sr.wants(c)) || except.contains(session) {
                continue;
            }
            self.effects
                .push(Effect::deliver(*session, sr.handle, key, kind.clone()));
        }
    }

    /// Hands a peer's message to the sessions, kept first if its channel is (`cell`: the
    /// signature of the cell frame that carried it, and the frame payload it covers).
    pub(super) fn emit_message(
        &mut self,
        key: &RoomKey,
        channel: String,
        from: String,
        payload: crate::wire::Payload,
        meta: Option<serde_json::Value>,
        cell: Option<(crate::wire::history::OriginSig, Vec<u8>)>,
    ) {
        let verified = cell.is_some();
        self.traffic.message_in(payload.wire_len());
        let (kept, catching_up) = self.st.rooms.get(key).map_or((false, false), |e| {
            (
                e.history.keep.contains_key(&channel),
                !e.history.catchups.is_empty(),
            )
        });
        let message = (kept || catching_up)
            .then(|| crate::wire::e2e::encode_message(&channel, &payload, meta.as_ref()));
        let (signed, framed) = match (&message, cell) {
            (Some(_), Some((sig, frame))) if kept => (Some(sig), Some(frame)),
            (Some(m), None) if kept => (self.take_signature(key, &from, m), None),
            _ => (None, None),
        };
        let had_it = match &message {
            Some(m) if catching_up => self.seen_live(key, &from, m),
            _ => Vec::new(),
        };
        let cursor = self.keep(
            key,
            super::history::Incoming {
                channel: &channel,
                from: &from,
                payload: &payload,
                meta: meta.as_ref(),
                verified,
                signed,
                framed,
            },
        );
        let kind = EventKind::Message {
            channel,
            from: from.into(),
            local: false,
            payload,
            meta,
            cursor,
            history: false,
            verified: false,
        };
        if had_it.is_empty() {
            self.emit(key, kind);
        } else {
            self.count(DropReason::HistoryDuplicate);
            self.emit_except(key, kind, &had_it);
        }
    }

    /// Handler: a room's outputs.
    pub(super) fn apply_outputs(&mut self, key: &RoomKey, outputs: Vec<Output>) {
        for o in outputs {
            match o {
                Output::Send(peer, frame) => {
                    match self.st.link_conn(&LinkKey::new(&key.app, &peer)) {
                        Some(conn) => self.frames(conn, vec![frame]),
                        None => self.count(DropReason::SendNoLink),
                    }
                }
                Output::SendFirst(peer, frame) => {
                    match self.st.link_conn(&LinkKey::new(&key.app, &peer)) {
                        Some(conn) => self.effects.push(Effect::FrameFirst { conn, frame }),
                        None => self.count(DropReason::SendNoLink),
                    }
                }
                Output::Drop(reason) => self.count(reason),
                Output::Cell(peer, bytes) => self.on_cell_frame(key, &peer, &bytes),
                Output::Roster(peer, bytes) => self.on_roster(key, &peer, &bytes),
                Output::Inventory(peer, bytes) => self.on_inventory(key, &peer, &bytes),
                Output::History(peer, bytes) => self.on_history(key, &peer, &bytes, self.now),
                Output::Event(ev) => self.room_event(key, ev),
                Output::Capable(peer, version) => self.peer_capable(key, &peer, version),
            }
        }
    }

    /// A peer sent meshrtc capabilities in a room: its link (one per app) gets the wide window,
    /// and from version 2 on, messages it is sent are kept until it acknowledges them.
    fn peer_capable(&mut self, key: &RoomKey, peer: &str, version: u32) {
        let lk = LinkKey::new(&key.app, peer);
        let Some(link) = self.st.links.get_mut(&lk) else {
            return;
        };
        if !std::mem::replace(&mut link.daemon, true) {
            let conn = link.conn;
            link.acks = version >= 2;
            self.effect(Effect::OpenWindow { conn });
            if version >= 2 {
                self.delivery_link_up(&lk, conn);
            }
        }
    }

    fn room_event(&mut self, key: &RoomKey, ev: RoomEvent) {
        match ev {
            RoomEvent::PeerJoin(peer, security) => self.peer_joined(key, &peer, security),
            RoomEvent::PeerLeave(peer, reason) => self.peer_left(key, &peer, reason),
            RoomEvent::Message {
                channel,
                from,
                payload,
                meta,
            } => {
                if let Some((channel, from, payload, meta)) =
                    self.take_request(key, channel, from, payload, meta)
                {
                    self.emit_message(key, channel, from, payload, meta, None);
                }
            }
            RoomEvent::Progress {
                channel,
                from,
                fraction,
                meta,
            } => {
                let meta = self.progress_meta(key, &channel, meta);
                self.emit(
                    key,
                    EventKind::Progress {
                        channel,
                        from: from.into(),
                        fraction,
                        meta,
                    },
                )
            }
            RoomEvent::Response {
                from,
                payload,
                meta,
            } => self.on_response(key, &from, payload, meta),
            RoomEvent::Error {
                code,
                message,
                peer,
            } => self.emit(
                key,
                EventKind::Error {
                    code: code.to_owned(),
                    message,
                    peer: peer.into(),
                },
            ),
            RoomEvent::Pong(peer) => self.pong(key, &peer),
            RoomEvent::Media(peer, wire) => self.on_media_wire(key, &peer, wire),
        }
    }

    fn pong(&mut self, key: &RoomKey, peer: &str) {
        let now = self.now;
        let Some(e) = self.st.rooms.get_mut(key) else {
            return;
        };
        let rtt = e.room.take_ping(peer, now);
        let waiter = e
            .ping_waiters
            .get_mut(peer)
            .and_then(|q| q.pop_front())
            .flatten();
        if let Some(rtt) = rtt {
            self.traffic.rtt(rtt);
            e.rtts.insert(peer.to_owned(), rtt.as_secs_f64() * 1000.0);
            if let Some(waiter) = waiter {
                self.effects.push(Effect::Pong { waiter, rtt });
            }
        } else if let Some(waiter) = waiter {
            self.effects.push(Effect::PingLost { waiter });
        }
    }
}
