//! Sending: direct or through the overlay, plain or sealed, the local echo to other sessions,
//! and ping.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;

use super::{Core, LinkKey, RoomKey, Work};
use crate::ids::ConnId;
use crate::mesh::MeshOutput;
use crate::node::core::events::{EventKind, SessionId};
use crate::node::core::types::NodeError;
use crate::room::Security;
use crate::wire::Payload;

/// Where a direct send's frames go. The driver queues them itself, waiting while a link's
/// queue is full: that wait is the app's back-pressure, so it must not happen inside the core.
#[derive(Debug, Default)]
pub struct SendPlan {
    /// Each target peer, its link and the frames it gets (plain or sealed), in target order.
    pub links: Vec<(String, ConnId, Arc<Vec<Bytes>>)>,
    /// Peers an overlay send already left on (its frames are queued as effects), and daemon
    /// peers whose copy waits behind messages being sent again (the core sends it).
    pub sent_to: Vec<String>,
    /// Peers in `links` that keep what they are sent until it is acknowledged: if their link
    /// closes during the hand-over, the message goes again on the next link.
    pub kept: Vec<String>,
}

fn not_in_room(peer: &str) -> NodeError {
    NodeError::NotFound(format!("peer {peer} is not in the room"))
}

impl Core {
    /// Input: an app sends a message. Returns the links to queue it on (direct) or the peers
    /// it left on (overlay).
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        session: SessionId,
        handle: u32,
        channel: &str,
        payload: Payload,
        meta: Option<Value>,
        targets: &[String],
        now: Instant,
    ) -> Result<SendPlan, NodeError> {
        self.at(now);
        let key = self.session_room(session, handle)?;
        let me = self.identity.peer_id.clone();
        let Some(entry) = self.st.rooms.get_mut(&key) else {
            return Err(NodeError::NotFound("room not held".into()));
        };
        // A send to connected targets stays direct; the overlay carries the rest.
        let direct =
            !targets.is_empty() && targets.iter().all(|t| *t == me || entry.room.is_joined(t));
        if entry.cells.is_some() && !direct {
            return self.send_cells(&key, session, channel, payload, meta, targets);
        }
        // Broadcasts on a kept channel are signed for the keepers (and our own kept copy).
        let signed = if targets.is_empty() {
            self.sign_for_keepers(&key, channel, &payload, meta.as_ref())
        } else {
            None
        };
        let Some(entry) = self.st.rooms.get_mut(&key) else {
            return Err(NodeError::NotFound("room not held".into()));
        };
        let remote: Vec<String> = if targets.is_empty() {
            entry.room.joined_peers().map(str::to_owned).collect()
        } else {
            if let Some(t) = targets
                .iter()
                .find(|t| **t != me && !entry.room.is_joined(t))
            {
                return Err(not_in_room(t));
            }
            targets.iter().filter(|t| **t != me).cloned().collect()
        };
        // Plain frames always (they validate the send); sealed ones only if an E2E peer gets it.
        let plain = Arc::new(entry.room.encode_app(channel, &payload, meta.as_ref())?);
        let e2e: Vec<bool> = remote
            .iter()
            .map(|p| entry.room.peer_security(p) == Some(Security::E2e))
            .collect();
        let sealed = if e2e.contains(&true) {
            Some(Arc::new(entry.room.encode_sealed(
                channel,
                &payload,
                meta.as_ref(),
            )?))
        } else {
            None
        };
        let mut plan = SendPlan::default();
        for (peer, e2e) in remote.into_iter().zip(e2e) {
            let frames = match &sealed {
                Some(sealed) if e2e => sealed.clone(),
                _ => plain.clone(),
            };
            let frames = match &signed {
                Some((_, sig_frames, keepers)) if keepers.contains(&peer) => {
                    Arc::new(sig_frames.iter().chain(frames.iter()).cloned().collect())
                }
                _ => frames,
            };
            let lk = LinkKey::new(&key.app, &peer);
            let Some(link) = self.st.links.get(&lk) else {
                continue;
            };
            let (conn, acks) = (link.conn, link.acks);
            if !acks {
                plan.links.push((peer, conn, frames));
                continue;
            }
            match self.track_send(&lk, conn, session, handle, &key, channel, &frames) {
                super::delivery::Tracked::Now(numbered) => {
                    plan.kept.push(peer.clone());
                    plan.links.push((peer, conn, numbered));
                }
                super::delivery::Tracked::Queued => plan.sent_to.push(peer),
                super::delivery::Tracked::Untracked => plan.links.push((peer, conn, frames)),
            }
        }
        let sig = signed.map(|(sig, _, _)| sig);
        self.traffic
            .message_out(payload.wire_len(), plan.links.len());
        self.echo_local(
            &key,
            session,
            channel,
            &payload,
            meta.as_ref(),
            targets,
            sig,
        );
        Ok(plan)
    }

    /// Other local sessions in the room see a send (unless it targets only remote peers).
    #[allow(clippy::too_many_arguments)]
    fn echo_local(
        &mut self,
        key: &RoomKey,
        from_session: SessionId,
        channel: &str,
        payload: &Payload,
        meta: Option<&Value>,
        targets: &[String],
        signed: Option<crate::wire::history::OriginSig>,
    ) {
        let me = self.identity.peer_id.clone();
        if !(targets.is_empty() || targets.contains(&me)) {
            return;
        }
        // A broadcast is part of the room's history; a message to chosen peers is not.
        let cursor = if targets.is_empty() {
            self.keep(
                key,
                super::history::Incoming {
                    channel,
                    from: &me,
                    payload,
                    meta,
                    verified: true,
                    signed,
                    framed: None,
                },
            )
        } else {
            crate::history::Cursor::default()
        };
        let Some(entry) = self.st.rooms.get(key) else {
            return;
        };
        for (session, sr) in &entry.sessions {
            if *session == from_session || !sr.wants(channel) {
                continue;
            }
            let kind = EventKind::Message {
                channel: channel.to_owned(),
                from: crate::ids::PeerId::from(me.as_str()),
                local: true,
                payload: payload.clone(),
                meta: meta.cloned(),
                cursor,
                history: false,
                verified: true,
            };
            self.effects
                .push(super::Effect::deliver(*session, sr.handle, key, kind));
        }
    }

    /// A send in a cells room: one signed frame, routed by the overlay.
    fn send_cells(
        &mut self,
        key: &RoomKey,
        session: SessionId,
        channel: &str,
        payload: Payload,
        meta: Option<Value>,
        targets: &[String],
    ) -> Result<SendPlan, NodeError> {
        let me = self.identity.peer_id.clone();
        let (now, wall) = (self.now, self.wall_us());
        let keys = self.identity.keys.clone();
        let Some(entry) = self.st.rooms.get_mut(key) else {
            return Err(NodeError::NotFound("room not held".into()));
        };
        let body = entry.room.cell_payload(channel, &payload, meta.as_ref())?;
        let Some(cells) = entry.cells.as_mut() else {
            return Err(NodeError::NotFound("room has no cells".into()));
        };
        if let Some(t) = targets.iter().find(|t| **t != me && !cells.is_member(t)) {
            return Err(not_in_room(t));
        }
        let remote: Vec<String> = targets.iter().filter(|t| **t != me).cloned().collect();
        let mut outs = Vec::new();
        let goes_out = targets.is_empty() || !remote.is_empty();
        if goes_out {
            outs = cells.originate(&keys, remote, body, now, wall);
        }
        let sent_to: Vec<String> = outs
            .iter()
            .filter_map(|o| match o {
                MeshOutput::Send(p, _) => Some(p.clone()),
                _ => None,
            })
            .collect();
        self.traffic.message_out(payload.wire_len(), sent_to.len());
        if sent_to.is_empty() && goes_out {
            // No link is up: the frame waits in the replay buffer for the first one.
            self.count(crate::drops::DropReason::CellSendWaiting);
        }
        self.echo_local(
            key,
            session,
            channel,
            &payload,
            meta.as_ref(),
            targets,
            None,
        );
        self.work.push_back(Work::Mesh(key.clone(), outs));
        self.drain();
        Ok(SendPlan {
            sent_to,
            ..SendPlan::default()
        })
    }

    /// Input: an app pings a peer of a room. Returns the waiter id a later [`Effect::Pong`]
    /// or [`Effect::PingLost`] names.
    pub fn ping(
        &mut self,
        app: &str,
        room: &str,
        peer: &str,
        now: Instant,
    ) -> Result<u64, NodeError> {
        self.at(now);
        let key = RoomKey::new(app, room);
        let conn = self
            .st
            .link_conn(&LinkKey::new(app, peer))
            .ok_or_else(|| NodeError::LinkClosed(peer.to_owned()));
        let waiter = self.new_id();
        let entry = self
            .st
            .rooms
            .get_mut(&key)
            .ok_or_else(|| NodeError::NotFound(format!("room {app}/{room} not held")))?;
        let frame = entry
            .room
            .ping(peer, now)
            .ok_or_else(|| not_in_room(peer))?;
        let conn = conn?;
        entry
            .ping_waiters
            .entry(peer.to_owned())
            .or_default()
            .push_back(Some(waiter));
        self.frames(conn, vec![frame]);
        Ok(waiter)
    }
}
