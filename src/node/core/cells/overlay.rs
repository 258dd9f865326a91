//! The node side of cells rooms: checks arriving cell frames, originates notices, and carries
//! out what the overlay router asks for (open or close links, send, deliver).

use crate::drops::DropReason;
use crate::mesh::roster::RosterOut;
use crate::mesh::{MeshOutput, Overlay as _};
use crate::node::core::cells;
use crate::node::core::cells::Admit;
use crate::node::core::events::EventKind;
use crate::node::core::{CELLS_TICK, Core, LinkKey, RoomKey, Work};
use crate::room::{LeaveReason, MrAction};
use crate::wire::cell::{
    CellFrame, CellFrameError, InventoryKind, decode_inventory, encode_inventory,
};
use crate::wire::roster::RosterMsg;

impl Core {
    /// A cell frame arrived from a joined peer: decode it, then judge it.
    pub(in crate::node::core) fn on_cell_frame(&mut self, key: &RoomKey, peer: &str, bytes: &[u8]) {
        if self.st.rooms.get(key).is_none_or(|e| e.cells.is_none()) {
            self.count(DropReason::CellNotCellsRoom);
            return;
        }
        let frame = match CellFrame::decode(bytes) {
            Ok(frame) => frame,
            Err(CellFrameError::Version(v)) => {
                tracing::debug!(from = peer, version = v, "cell frame of another version");
                self.count(DropReason::CellVersionRefused);
                return;
            }
            Err(_) => {
                self.count(DropReason::CellMalformed);
                return;
            }
        };
        tracing::debug!(
            from = peer,
            origin = %hex4(&frame.origin),
            seq = frame.seq,
            max_hops = frame.max_hops,
            hops = frame.hops,
            fanout = frame.fanout,
            "cell frame in"
        );
        self.admit_cell_frame(key, peer, frame);
    }

    /// Judges a cell frame (see `cells::admit`: overlay links and member origins only), then
    /// queues what the overlay makes of it.
    fn admit_cell_frame(&mut self, key: &RoomKey, peer: &str, frame: CellFrame) {
        let (now, wall_secs) = (self.now, self.wall_us() / 1_000_000);
        let Some(entry) = self.st.rooms.get_mut(key) else {
            return;
        };
        let Some(cells) = entry.cells.as_mut() else {
            return;
        };
        let (frame, newcomer) = match cells.admit(peer, frame, now, wall_secs) {
            Admit::Pass { frame, newcomer } => (frame, newcomer),
            Admit::Held => return,
            Admit::Drop(reason) => {
                self.count(reason);
                return;
            }
        };
        if let Some(id) = newcomer {
            // Its hello made the origin a member: a link to it is an overlay link now (the
            // frame may have come over it), and frames waiting for it are judged again.
            if entry.room.is_joined(&id) {
                self.cells_link_up(key, &id, now);
            } else {
                self.work.push_back(Work::Release(key.clone()));
            }
        }
        let Some(cells) = self.st.rooms.get_mut(key).and_then(|e| e.cells.as_mut()) else {
            return;
        };
        match cells.mesh().on_frame(peer, frame, now) {
            Ok(outs) => self.work.push_back(Work::Mesh(key.clone(), outs)),
            Err(drop) => self.count(drop.counter()),
        }
    }

    /// Handler: frames that waited for their sender or origin, known now, are judged again.
    pub(in crate::node::core) fn release_held(&mut self, key: &RoomKey) {
        let Some(cells) = self.st.rooms.get_mut(key).and_then(|e| e.cells.as_mut()) else {
            return;
        };
        for (peer, frame) in cells.take_released() {
            self.admit_cell_frame(key, &peer, frame);
        }
    }

    /// A member's link in a cells room is up: the overlay may route over it (and replays recent
    /// frames to it), the roster swaps digests over it, and our hello goes out once.
    pub(in crate::node::core) fn cells_link_up(
        &mut self,
        key: &RoomKey,
        peer: &str,
        now: std::time::Instant,
    ) {
        let Some(cells) = self.st.rooms.get_mut(key).and_then(|e| e.cells.as_mut()) else {
            return;
        };
        let outs = cells.link_up(peer, now);
        let sync = cells.roster_link_up(peer);
        let hello = cells.hello();
        self.work.push_back(Work::Mesh(key.clone(), outs));
        self.apply_roster(key, sync);
        if let Some(body) = hello {
            self.work.push_back(Work::Notice(key.clone(), body));
        }
        self.tell_mesh_peer(key, peer, true);
        self.work.push_back(Work::Release(key.clone()));
    }

    /// Tells the room's sessions that the link to a member of its overlay came up or went down,
    /// and where the member sits.
    pub(in crate::node::core) fn tell_mesh_peer(
        &mut self,
        key: &RoomKey,
        peer: &str,
        linked: bool,
    ) {
        let Some(cells) = self.st.rooms.get(key).and_then(|e| e.cells.as_ref()) else {
            return;
        };
        let Some((cell, bridge)) = cells.place_of(peer) else {
            return;
        };
        let peer = peer.to_owned();
        self.emit(
            key,
            EventKind::MeshPeerState {
                peer: peer.into(),
                linked,
                cell,
                bridge,
            },
        );
    }

    /// A roster sync message arrived from a joined peer.
    pub(in crate::node::core) fn on_roster(&mut self, key: &RoomKey, peer: &str, bytes: &[u8]) {
        let (now, wall_secs) = (self.now, self.wall_us() / 1_000_000);
        let Some(msg) = RosterMsg::decode(bytes) else {
            self.count(DropReason::RosterMalformed);
            return;
        };
        let Some(entry) = self.st.rooms.get_mut(key) else {
            return;
        };
        let Some(cells) = entry.cells.as_mut() else {
            self.count(DropReason::CellNotCellsRoom);
            return;
        };
        if !cells.is_member(peer) {
            // Only members reconcile (a Trystero page never sends this).
            self.count(DropReason::RosterNotMember);
            return;
        }
        let step = cells.roster_msg(peer, &msg, now, wall_secs);
        if !step.newcomers.is_empty() {
            self.work.push_back(Work::Release(key.clone()));
        }
        let linked: Vec<String> = step
            .newcomers
            .into_iter()
            .filter(|p| entry.room.is_joined(p))
            .collect();
        self.apply_roster(key, step.outs);
        // A member we were already linked to (through another room) is routed over now.
        for p in linked {
            self.cells_link_up(key, &p, now);
        }
    }

    /// A frame inventory arrived from a joined peer.
    pub(in crate::node::core) fn on_inventory(&mut self, key: &RoomKey, peer: &str, bytes: &[u8]) {
        let now = self.now;
        let Some((kind, ids)) = decode_inventory(bytes) else {
            self.count(DropReason::CellMalformed);
            return;
        };
        let Some(cells) = self.st.rooms.get_mut(key).and_then(|e| e.cells.as_mut()) else {
            self.count(DropReason::CellNotCellsRoom);
            return;
        };
        let outs = match kind {
            InventoryKind::Have => cells.mesh().on_have(peer, &ids, now),
            InventoryKind::Want => cells.mesh().on_want(peer, &ids, now),
        };
        self.apply_mesh(key, outs);
    }

    fn send_inventory(
        &mut self,
        key: &RoomKey,
        peer: &str,
        kind: InventoryKind,
        ids: &[crate::mesh::FrameId],
    ) {
        let Some(conn) = self.st.link_conn(&LinkKey::new(&key.app, peer)) else {
            return;
        };
        let Some(e) = self.st.rooms.get_mut(key) else {
            return;
        };
        let frames = e
            .room
            .mr_frames(MrAction::Inventory, encode_inventory(kind, ids));
        self.frames(conn, frames);
    }

    /// Handler: what the roster asked for.
    pub(in crate::node::core) fn apply_roster(&mut self, key: &RoomKey, outs: Vec<RosterOut>) {
        for o in outs {
            match o {
                RosterOut::Send(peer, msg) => {
                    let Some(conn) = self.st.link_conn(&LinkKey::new(&key.app, &peer)) else {
                        continue;
                    };
                    let Some(e) = self.st.rooms.get_mut(key) else {
                        return;
                    };
                    let frames = e.room.mr_frames(MrAction::Roster, msg.encode());
                    self.frames(conn, frames);
                }
                RosterOut::Drop(reason) => self.count(reason),
            }
        }
    }

    /// Handler: this node sends an overlay notice (gone / alive / hello) to the whole room.
    pub(in crate::node::core) fn originate_notice(&mut self, key: &RoomKey, body: Vec<u8>) {
        let (now, wall) = (self.now, self.wall_us());
        let keys = self.identity.keys.clone();
        let Some(cells) = self.st.rooms.get_mut(key).and_then(|e| e.cells.as_mut()) else {
            return;
        };
        let outs = cells.originate(&keys, Vec::new(), body, now, wall);
        self.apply_mesh(key, outs);
    }

    /// Handler: what a cells room's overlay asked for.
    pub(in crate::node::core) fn apply_mesh(&mut self, key: &RoomKey, outputs: Vec<MeshOutput>) {
        let now = self.now;
        for o in outputs {
            match o {
                MeshOutput::Open(peer) => self.signal_room(key, |s| s.dial(&peer, now)),
                MeshOutput::Close(peer) => self.close_overlay_link(key, &peer),
                MeshOutput::Send(peer, frame) => self.send_cell_frame(key, &peer, &frame),
                MeshOutput::Deliver(frame) => self.deliver_cell_frame(key, frame),
                MeshOutput::Have(peer, ids) => {
                    self.send_inventory(key, &peer, InventoryKind::Have, &ids)
                }
                MeshOutput::Want(peer, ids) => {
                    self.send_inventory(key, &peer, InventoryKind::Want, &ids)
                }
            }
        }
    }

    /// Closes a link the topology no longer wants — only if no other room of the app uses it.
    fn close_overlay_link(&mut self, key: &RoomKey, peer: &str) {
        let lk = LinkKey::new(&key.app, peer);
        let Some(link) = self.st.links.get(&lk) else {
            return;
        };
        if !link.rooms.iter().all(|r| *r == key.room) {
            return;
        }
        let conn = link.conn;
        if let Some(e) = self.st.rooms.get_mut(key) {
            let frames = e.room.leave_frames(peer);
            self.frames(conn, frames);
        }
        self.drop_link(&lk, Some(conn), LeaveReason::Leave);
    }

    fn send_cell_frame(&mut self, key: &RoomKey, peer: &str, frame: &CellFrame) {
        let Some(e) = self.st.rooms.get_mut(key) else {
            return;
        };
        let frames = e.room.mr_frames(MrAction::Frame, frame.encode());
        tracing::debug!(
            to = %peer,
            origin = %hex4(&frame.origin),
            seq = frame.seq,
            max_hops = frame.max_hops,
            hops = frame.hops,
            fanout = frame.fanout,
            "cell frame out"
        );
        match self.st.link_conn(&LinkKey::new(&key.app, peer)) {
            Some(conn) => self.frames(conn, frames),
            None => {
                tracing::warn!(to = %peer, "cell frame: no link");
                self.count(DropReason::SendNoLink)
            }
        }
    }

    fn deliver_cell_frame(&mut self, key: &RoomKey, frame: CellFrame) {
        let now = self.now;
        let me = self.identity.peer_id.clone();
        let Some(e) = self.st.rooms.get_mut(key) else {
            return;
        };
        let Some(cells) = e.cells.as_mut() else {
            return;
        };
        let Some(from) = cells.origin_id(&frame.origin) else {
            self.count(DropReason::CellBadOrigin);
            return;
        };
        if from == me {
            return;
        }
        // Admission took only members' frames; one whose origin left since is not shown.
        if !cells.is_member(&from) {
            self.count(DropReason::CellUnknownOrigin);
            return;
        }
        tracing::debug!(from = %from, origin = %hex4(&frame.origin), seq = frame.seq, "cell frame delivered");
        cells.heard_member(&from, now);
        if frame
            .payload
            .first()
            .is_some_and(|b| *b >= cells::NOTICE_GONE)
        {
            cells.mesh().forget_recent(&frame.origin, frame.seq);
        }
        match frame.payload.split_first() {
            Some((&cells::NOTICE_GONE, ids)) => {
                let mut me_named = false;
                for id in cells::parse_gone(ids) {
                    if id == me {
                        me_named = true;
                    } else if !self.st.links.contains_key(&LinkKey::new(&key.app, &id)) {
                        cells.suspect(&id, now);
                    }
                }
                // One answer however many reports: at most one "alive" per interval, a later
                // one owed (sent from the tick).
                if me_named && cells.reported_gone(now) {
                    self.work
                        .push_back(Work::Notice(key.clone(), vec![cells::NOTICE_ALIVE]));
                }
                return;
            }
            // A hello's record was learnt when the frame was admitted.
            Some((&cells::NOTICE_ALIVE | &cells::NOTICE_RECORD, _)) => return,
            _ => {}
        }
        if cells.before_join(frame.seq) {
            self.count(DropReason::CellBeforeJoin);
            return;
        }
        match e.room.open_cell_payload(&frame.payload) {
            Ok((channel, payload, meta)) => {
                // A broadcast's frame signature is kept with it: peers catching up check it.
                let cell = frame.targets.is_empty().then(|| {
                    let sig = crate::wire::history::OriginSig {
                        key: frame.origin,
                        seq: frame.seq,
                        sig: frame.sig,
                    };
                    (sig, frame.signed_body())
                });
                self.emit_message(key, channel, from, payload, meta, cell)
            }
            Err(reason) => self.count(reason),
        }
    }
}

/// The first bytes of an origin key, enough to tell origins apart in a debug log.
fn hex4(key: &[u8; 32]) -> String {
    key[..4].iter().map(|b| format!("{b:02x}")).collect()
}

impl Core {
    /// A cells room's overlay timers: settling, redials, the roster swap, "alive" notices;
    /// `None` for a room without cells.
    pub(in crate::node::core) fn cells_tick(
        &mut self,
        key: &RoomKey,
        now: std::time::Instant,
    ) -> Option<std::time::Instant> {
        let pick = self.tick_pick;
        let entry = self.st.rooms.get_mut(key)?;
        let cells = entry.cells.as_mut()?;
        let (room, links) = (&entry.room, &self.st.links);
        let before = std::sync::Arc::as_ptr(cells.mesh().topology());
        let outs = cells.tick(now, |p| {
            links.contains_key(&LinkKey::new(&key.app, p)) && room.is_joined(p)
        });
        let changed = std::sync::Arc::as_ptr(cells.mesh().topology()) != before;
        if changed {
            cells.topology_changed();
        }
        let expired = cells.take_unsent_expired();
        let held_drops = cells.take_drops();
        if cells.alive_due(now) {
            self.work.push_back(Work::Notice(
                key.clone(),
                vec![crate::node::core::cells::NOTICE_ALIVE],
            ));
        }
        let sync = cells.roster_tick(now, pick);
        if changed {
            // Announcers the new topology wants are dialled; linked peers never are.
            entry.signal.set_dial_filter(Some(cells.wanted()));
        }
        let info = changed.then(|| cells.info());
        if expired > 0 {
            self.count_n(DropReason::CellSendExpired, expired);
        }
        for reason in held_drops {
            self.count(reason);
        }
        if let Some(info) = info {
            self.emit(key, EventKind::MeshState(info));
            // Linked members may sit elsewhere in the new topology (or be placed for the first
            // time: a link can come up before the roster that places its peer).
            let linked: Vec<String> = self
                .st
                .rooms
                .get(key)
                .map(|e| e.room.joined_peers().map(str::to_owned).collect())
                .unwrap_or_default();
            for peer in linked {
                self.tell_mesh_peer(key, &peer, true);
            }
        }
        self.work.push_back(Work::Mesh(key.clone(), outs));
        self.apply_roster(key, sync);
        // Settling and redials run on this tick; keep it coming while they are due.
        Some(now + CELLS_TICK)
    }
}

#[cfg(test)]
mod tests;
