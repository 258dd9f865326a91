//! What the core reports (a room's peers, the node's rooms and counters), the goodbye at
//! shutdown, and the raw access the test hooks need.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;

use super::types::{NodeError, PeerInfo, RoomInfo};
use super::{Core, LinkKey, RoomKey};
use crate::drops::DropReason;
use crate::ids::{ConnId, SessionId};
use crate::node::core::cells::CellRoom;
use crate::room::Security;
use crate::wire::Payload;

/// The core's part of `status`.
#[derive(Debug, Clone)]
pub struct CoreStatus {
    /// Rooms held, sorted by (app, room).
    pub rooms: Vec<RoomInfo>,
    /// Drop counters.
    pub drops: BTreeMap<DropReason, u64>,
    /// Local sessions.
    pub sessions: u32,
    /// Live links.
    pub links: u32,
    /// Connection attempts in progress.
    pub pending_dials: u32,
}

impl Core {
    /// Joined peers of a room.
    pub fn peers(&self, app: &str, room: &str, now: Instant) -> Result<Vec<PeerInfo>, NodeError> {
        let entry = self
            .st
            .rooms
            .get(&RoomKey::new(app, room))
            .ok_or_else(|| NodeError::NotFound(format!("room {app}/{room} not held")))?;
        let mut out: Vec<PeerInfo> = entry
            .room
            .joined_peers()
            .map(|p| PeerInfo {
                id: crate::ids::PeerId::from(p),
                rtt_ms: entry.rtts.get(p).copied().unwrap_or(0.0),
                connected_ms: self.st.links.get(&LinkKey::new(app, p)).map_or(0, |l| {
                    now.saturating_duration_since(l.connected_at).as_millis() as u64
                }),
                security: entry.room.peer_security(p).unwrap_or(Security::Transport),
                path: None,
                health: None,
                keeps: entry
                    .history
                    .keepers
                    .get(p)
                    .map(|k| k.iter().cloned().collect())
                    .unwrap_or_default(),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The connection of a peer's link in an app, if it has one.
    pub fn peer_conn(&self, app: &str, peer: &str) -> Option<crate::ids::ConnId> {
        self.st.link_conn(&LinkKey::new(app, peer))
    }

    /// Rooms, counters, sessions, links and pending dials.
    pub fn status(&self) -> CoreStatus {
        let rooms = self
            .st
            .rooms
            .iter()
            .map(|(RoomKey { app, room }, e)| {
                let mut peers: Vec<String> = e.room.joined_peers().map(str::to_owned).collect();
                peers.sort();
                RoomInfo {
                    app: app.clone(),
                    room: room.clone(),
                    sessions: e.sessions.len() as u32,
                    password: !e.password.is_empty(),
                    e2e_peers: peers
                        .iter()
                        .filter(|p| e.room.peer_security(p) == Some(Security::E2e))
                        .cloned()
                        .collect(),
                    require_e2e: e.room.requires_e2e(),
                    cells: e.cells.as_ref().map(CellRoom::info),
                    peers,
                }
            })
            .collect();
        CoreStatus {
            rooms,
            drops: self.st.drops.clone(),
            sessions: self.st.sessions.len() as u32,
            links: self.st.links.len() as u32,
            pending_dials: self.st.conns.values().filter(|c| !c.open).count() as u32,
        }
    }

    /// Says goodbye to every joined peer (as frames effects), closes the sessions and forgets
    /// every connection (the driver closes them once the goodbyes are out).
    pub fn shutdown(&mut self) {
        let mut goodbyes = Vec::new();
        for (key, entry) in self.st.rooms.iter_mut() {
            let peers: Vec<String> = entry.room.joined_peers().map(str::to_owned).collect();
            for peer in peers {
                if let Some(link) = self.st.links.get(&LinkKey::new(&key.app, &peer)) {
                    goodbyes.push((link.conn, entry.room.leave_frames(&peer)));
                }
            }
        }
        for (conn, frames) in goodbyes {
            self.frames(conn, frames);
        }
        let sessions: Vec<SessionId> = self.st.sessions.keys().copied().collect();
        for session in sessions {
            self.effect(super::Effect::CloseSession { session });
        }
        self.st.links.clear();
        self.st.conns.clear();
    }

    /// Peers this node holds a live link to (harness).
    #[cfg(test)]
    pub fn link_peers(&self) -> Vec<String> {
        self.st.links.keys().map(|k| k.peer.to_string()).collect()
    }

    /// Connection attempts not yet open (harness).
    #[cfg(test)]
    pub fn pending_conns(&self) -> usize {
        self.st.conns.values().filter(|c| !c.open).count()
    }

    /// Connection attempts not yet open, described (harness debugging).
    #[cfg(test)]
    pub fn describe_pending(&self) -> Vec<String> {
        self.st
            .conns
            .iter()
            .filter(|(_, c)| !c.open)
            .map(|(id, c)| {
                format!(
                    "conn {id} room {} offer {} ready {} remote_set {}",
                    c.room, c.offer_id, c.ready, c.remote_set
                )
            })
            .collect()
    }

    /// A drop counter's value (harness).
    #[cfg(test)]
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.st.drops.get(&reason).copied().unwrap_or(0)
    }

    /// Every drop counter that is not zero (harness).
    #[cfg(test)]
    pub fn all_drops(&self) -> Vec<(DropReason, u64)> {
        self.st.drops.iter().map(|(r, n)| (*r, *n)).collect()
    }

    /// The peer a connection goes to.
    pub fn conn_peer(&self, conn: ConnId) -> Option<&str> {
        self.st.conns.get(&conn).map(|c| c.link.peer.as_str())
    }

    /// A raw action's frames for a room and the link to `peer`, bypassing every check a send
    /// makes (test hook).
    pub fn hook_frames(
        &mut self,
        app: &str,
        room: &str,
        peer: &str,
        action: &str,
        payload: &Payload,
    ) -> Option<(ConnId, Vec<Bytes>)> {
        let conn = self.st.link_conn(&LinkKey::new(app, peer))?;
        let entry = self.st.rooms.get_mut(&RoomKey::new(app, room))?;
        let frames = entry.room.encode(action, payload, None).ok()?;
        Some((conn, frames))
    }

    /// The salt origins sign kept messages over (test hook).
    pub fn history_salt(&self, app: &str, room: &str) -> Vec<u8> {
        self.st
            .rooms
            .get(&RoomKey::new(app, room))
            .map(|e| e.history.salt.clone())
            .unwrap_or_default()
    }

    /// The salt a cells room signs its frames over (test hook).
    pub fn cell_salt(&self, app: &str, room: &str) -> Option<Vec<u8>> {
        let entry = self.st.rooms.get(&RoomKey::new(app, room))?;
        entry.cells.as_ref().map(|c| c.salt().to_vec())
    }

    /// A channel message as a cells room carries it inside a cell frame (test hook).
    pub fn cell_payload(
        &mut self,
        app: &str,
        room: &str,
        channel: &str,
        payload: &Payload,
    ) -> Option<Vec<u8>> {
        let entry = self.st.rooms.get_mut(&RoomKey::new(app, room))?;
        entry.room.cell_payload(channel, payload, None).ok()
    }
}
