//! The node side of cells rooms: checks arriving cell frames, sends notices, and carries out
//! what the overlay router asks for (open or close links, send, deliver).

use super::*;

impl Node {
    /// A cell frame arrived from a joined peer: check it, then let the overlay route it.
    pub(super) fn on_cell_frame(
        &self,
        st: &mut State,
        key: &RoomKey,
        peer: &str,
        bytes: &[u8],
        effects: &mut Vec<Effect>,
    ) {
        let Some(cells) = st.rooms.get_mut(key).and_then(|e| e.cells.as_mut()) else {
            count(st, DropReason::CellNotCellsRoom);
            return;
        };
        let frame = match CellFrame::decode(bytes) {
            Ok(f) => f,
            Err(_) => {
                count(st, DropReason::CellMalformed);
                return;
            }
        };
        let now = Instant::now();
        tracing::debug!(
            from = peer,
            origin = %hex4(&frame.origin),
            seq = frame.seq,
            ttl = frame.ttl,
            hops = frame.hops,
            fanout = frame.fanout,
            "cell frame in"
        );
        // Duplicates are dropped before the (costly) signature check; a forged frame can only
        // collide with one already seen, so it cannot suppress a genuine one.
        if cells.mesh().seen(&frame.origin, frame.seq, frame.ttl) {
            count(st, DropReason::CellDuplicate);
            return;
        }
        if frame.verify(cells.salt()).is_err() {
            count(st, DropReason::CellBadSignature);
            return;
        }
        match cells.mesh().on_frame(peer, frame, now) {
            Ok(outs) => self.apply_mesh(st, key, outs, effects),
            Err(drop) => count(st, drop.counter()),
        }
    }

    /// Sends an overlay notice (gone / alive) from this node to the whole room.
    pub(super) fn cell_notice(
        &self,
        st: &mut State,
        key: &RoomKey,
        body: Vec<u8>,
        effects: &mut Vec<Effect>,
    ) {
        let Some(cells) = st.rooms.get_mut(key).and_then(|e| e.cells.as_mut()) else {
            return;
        };
        let outs = cells.originate(&self.identity.keys, Vec::new(), body, Instant::now());
        self.apply_mesh(st, key, outs, effects);
    }

    /// Carries out what a cells room's overlay asked for.
    pub(super) fn apply_mesh(
        &self,
        st: &mut State,
        key: &RoomKey,
        outputs: Vec<MeshOutput>,
        effects: &mut Vec<Effect>,
    ) {
        let now = Instant::now();
        for o in outputs {
            match o {
                MeshOutput::Open(peer) => {
                    self.signal_room(st, key, |s| s.dial(&peer, now), effects);
                }
                MeshOutput::Close(peer) => {
                    let lk = LinkKey::new(&key.app, &peer);
                    // Links are shared by the app's rooms: only close one this room alone uses.
                    if st
                        .links
                        .get(&lk)
                        .is_some_and(|l| l.rooms.iter().all(|r| *r == key.room))
                    {
                        if let Some(e) = st.rooms.get_mut(key)
                            && let Some(link) = st.links.get(&lk)
                        {
                            for f in e.room.leave_frames(&lk.peer) {
                                let _ = link.tx.try_send(f);
                            }
                        }
                        self.drop_link(st, &lk, LeaveReason::Leave, effects);
                    }
                }
                MeshOutput::Send(peer, frame) => {
                    let Some(e) = st.rooms.get_mut(key) else {
                        continue;
                    };
                    let frames = e.room.cell_frames(frame.encode());
                    tracing::debug!(
                        to = %peer,
                        origin = %hex4(&frame.origin),
                        seq = frame.seq,
                        ttl = frame.ttl,
                        fanout = frame.fanout,
                        "cell frame out"
                    );
                    match st.links.get(&LinkKey::new(&key.app, &peer)) {
                        Some(link) => {
                            for f in frames {
                                if link.tx.try_send(f).is_err() {
                                    tracing::warn!(to = %peer, "cell frame: link queue full");
                                    count(st, DropReason::LinkQueueFull);
                                    break;
                                }
                            }
                        }
                        None => {
                            tracing::warn!(to = %peer, "cell frame: no link");
                            count(st, DropReason::SendNoLink)
                        }
                    }
                }
                MeshOutput::Deliver(frame) => {
                    let Some(e) = st.rooms.get_mut(key) else {
                        continue;
                    };
                    let Some(cells) = e.cells.as_mut() else {
                        continue;
                    };
                    let Some(from) = cells.origin_id(&frame.origin) else {
                        count(st, DropReason::CellBadOrigin);
                        continue;
                    };
                    if from == self.identity.peer_id {
                        continue;
                    }
                    tracing::debug!(from = %from, origin = %hex4(&frame.origin), seq = frame.seq, "cell frame delivered");
                    cells.heard_member(&from, now);
                    match frame.payload.split_first() {
                        Some((&cells::NOTICE_GONE, ids)) => {
                            let mut me_named = false;
                            for id in cells::parse_gone(ids) {
                                let linked = st.links.contains_key(&LinkKey::new(&key.app, &id));
                                if id == self.identity.peer_id {
                                    me_named = true;
                                } else if !linked {
                                    cells.suspect(&id, now);
                                }
                            }
                            if me_named {
                                self.cell_notice(st, key, vec![cells::NOTICE_ALIVE], effects);
                            }
                            continue;
                        }
                        Some((&cells::NOTICE_ALIVE, _)) => continue,
                        _ => {}
                    }
                    match e.room.open_cell_payload(&frame.payload) {
                        Ok((channel, payload, meta)) => Self::emit(
                            st,
                            key,
                            EventKind::Message {
                                channel,
                                from,
                                local: false,
                                payload,
                                meta,
                            },
                        ),
                        Err(name) => count(st, name),
                    }
                }
            }
        }
    }
}

/// The first bytes of an origin key, enough to tell origins apart in a debug log.
fn hex4(key: &[u8; 32]) -> String {
    key[..4].iter().map(|b| format!("{b:02x}")).collect()
}
