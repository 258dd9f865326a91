//! What the node reports: a room's peers, the relay pool, and status with its drop counters.

use super::*;

impl Node {
    /// Joined peers of a room.
    pub fn peers(&self, app: &str, room_id: &str) -> Result<Vec<PeerInfo>, NodeError> {
        let st = self.lock();
        let entry = st
            .rooms
            .get(&RoomKey::new(app, room_id))
            .ok_or_else(|| NodeError::NotFound(format!("room {app}/{room_id} not held")))?;
        let now = Instant::now();
        let mut out: Vec<PeerInfo> = entry
            .room
            .joined_peers()
            .map(|p| PeerInfo {
                id: p.to_owned(),
                rtt_ms: entry.rtts.get(p).copied().unwrap_or(0.0),
                connected_ms: st.links.get(&LinkKey::new(app, p)).map_or(0, |l| {
                    now.saturating_duration_since(l.connected_at).as_millis() as u64
                }),
                security: entry.room.peer_security(p).unwrap_or(Security::Transport),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Relays and their states.
    pub async fn relays(&self) -> Vec<RelayState> {
        self.signal.relays().await
    }

    /// The node at a glance.
    pub async fn status(&self) -> StatusInfo {
        let relays = self.signal.relays().await;
        let st = self.lock();
        let mut rooms: Vec<RoomInfo> = st
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
                        .filter(|p| e.room.peer_security(p) == Some(crate::room::Security::E2e))
                        .cloned()
                        .collect(),
                    require_e2e: e.room.requires_e2e(),
                    cells: e.cells.as_ref().map(CellRoom::info),
                    peers,
                }
            })
            .collect();
        rooms.sort_by(|a, b| (&a.app, &a.room).cmp(&(&b.app, &b.room)));
        let mut drops = st.drops.clone();
        let c = &self.signal.counters;
        for (name, v) in [
            (
                DropReason::EventBadSignature,
                c.bad_signature.load(Ordering::Relaxed),
            ),
            (
                DropReason::EventUnknownTopic,
                c.unknown_topic.load(Ordering::Relaxed),
            ),
            (
                DropReason::PublishFailed,
                c.publish_failed.load(Ordering::Relaxed),
            ),
            (
                DropReason::RelayRetired,
                c.relays_retired.load(Ordering::Relaxed),
            ),
            (
                DropReason::RelayListFailed,
                c.relay_list_failed.load(Ordering::Relaxed),
            ),
        ] {
            if v > 0 {
                *drops.entry(name).or_insert(0) += v;
            }
        }
        StatusInfo {
            peer_id: self.identity.peer_id.clone(),
            relays,
            rooms,
            drops,
            uptime_ms: self.started.elapsed().as_millis() as u64,
            sessions: st.sessions.len() as u32,
            links: st.links.len() as u32,
            pending_dials: st.conns.values().filter(|c| !c.open).count() as u32,
        }
    }
}
