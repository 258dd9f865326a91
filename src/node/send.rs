//! Sending: direct or through the overlay, plain or sealed, the local echo to other sessions,
//! and ping.

use super::*;

impl Node {
    /// Sends a message; returns the peers it was handed to.
    pub async fn send(
        &self,
        session: SessionId,
        handle: u32,
        channel: &str,
        payload: Payload,
        meta: Option<Value>,
        targets: &[String],
    ) -> Result<Vec<String>, NodeError> {
        let mut deliveries: Vec<(String, mpsc::Sender<Bytes>)> = Vec::new();
        let frames;
        {
            let mut st = self.lock();
            let st = &mut *st;
            let key = st
                .sessions
                .get(&session)
                .and_then(|s| s.rooms.get(&handle))
                .cloned()
                .ok_or_else(|| NodeError::NotFound(format!("room handle {handle} not joined")))?;
            let Some(entry) = st.rooms.get_mut(&key) else {
                return Err(NodeError::NotFound("room not held".into()));
            };
            // A send to connected targets stays direct; the overlay carries the rest.
            let direct = !targets.is_empty()
                && targets
                    .iter()
                    .all(|t| *t == self.identity.peer_id || entry.room.is_joined(t));
            if entry.cells.is_some() && !direct {
                return self.send_cells(st, &key, session, channel, payload, meta, targets);
            }
            let joined: Vec<String> = entry.room.joined_peers().map(str::to_owned).collect();
            let self_id = self.identity.peer_id.as_str();
            let remote_targets: Vec<String> = if targets.is_empty() {
                joined.clone()
            } else {
                for t in targets {
                    if t != self_id && !joined.contains(t) {
                        return Err(NodeError::NotFound(format!("peer {t} is not in the room")));
                    }
                }
                targets.iter().filter(|t| *t != self_id).cloned().collect()
            };
            // Plain frames always (they validate the send); sealed ones only if an e2e peer gets it.
            let plain = entry.room.encode_app(channel, &payload, meta.as_ref())?;
            let wants_sealed = remote_targets
                .iter()
                .any(|p| entry.room.peer_security(p) == Some(crate::room::Security::E2e));
            let sealed = if wants_sealed {
                Some(entry.room.encode_sealed(channel, &payload, meta.as_ref())?)
            } else {
                None
            };
            let security: HashMap<String, bool> = remote_targets
                .iter()
                .map(|p| {
                    (
                        p.clone(),
                        entry.room.peer_security(p) == Some(crate::room::Security::E2e),
                    )
                })
                .collect();
            frames = (plain, sealed, security);
            self.echo_local(st, &key, session, channel, &payload, meta.as_ref(), targets);
            for peer in remote_targets {
                if let Some(link) = st.links.get(&LinkKey::new(&key.app, &peer)) {
                    deliveries.push((peer, link.tx.clone()));
                }
            }
        }
        let (plain, sealed, security) = frames;
        let mut delivered = Vec::with_capacity(deliveries.len());
        for (peer, tx) in deliveries {
            let frames = match (&sealed, security.get(&peer)) {
                (Some(sealed), Some(true)) => sealed,
                _ => &plain,
            };
            for f in frames {
                if tx.send(f.clone()).await.is_err() {
                    return Err(NodeError::LinkClosed(peer));
                }
            }
            delivered.push(peer);
        }
        Ok(delivered)
    }

    /// Other local sessions in the room see a send (unless it targets only remote peers).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn echo_local(
        &self,
        st: &State,
        key: &RoomKey,
        session: SessionId,
        channel: &str,
        payload: &Payload,
        meta: Option<&Value>,
        targets: &[String],
    ) {
        let self_id = self.identity.peer_id.as_str();
        if !(targets.is_empty() || targets.iter().any(|t| t == self_id)) {
            return;
        }
        let Some(entry) = st.rooms.get(key) else {
            return;
        };
        for (sid, sr) in &entry.sessions {
            if *sid == session || !(sr.channels.is_empty() || sr.channels.contains(channel)) {
                continue;
            }
            if let Some(s) = st.sessions.get(sid) {
                s.queue.push(SessionEvent {
                    room: sr.handle,
                    app: key.app.clone(),
                    room_id: key.room.clone(),
                    kind: EventKind::Message {
                        channel: channel.to_owned(),
                        from: self_id.to_owned(),
                        local: true,
                        payload: payload.clone(),
                        meta: meta.cloned(),
                    },
                });
            }
        }
    }

    /// A send in a cells room: one signed frame, routed by the overlay; returns the links it
    /// left on.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_cells(
        &self,
        st: &mut State,
        key: &RoomKey,
        session: SessionId,
        channel: &str,
        payload: Payload,
        meta: Option<Value>,
        targets: &[String],
    ) -> Result<Vec<String>, NodeError> {
        let self_id = self.identity.peer_id.clone();
        let now = Instant::now();
        let Some(entry) = st.rooms.get_mut(key) else {
            return Err(NodeError::NotFound("room not held".into()));
        };
        let body = entry.room.cell_payload(channel, &payload, meta.as_ref())?;
        let Some(cells) = entry.cells.as_mut() else {
            return Err(NodeError::NotFound("room has no cells".into()));
        };
        for t in targets {
            if *t != self_id && !cells.is_member(t) {
                return Err(NodeError::NotFound(format!("peer {t} is not in the room")));
            }
        }
        let remote: Vec<String> = targets.iter().filter(|t| **t != self_id).cloned().collect();
        let mut outs = Vec::new();
        if targets.is_empty() || !remote.is_empty() {
            outs = cells.originate(&self.identity.keys, remote, body, now);
        }
        let sent_to: Vec<String> = outs
            .iter()
            .filter_map(|o| match o {
                MeshOutput::Send(p, _) => Some(p.clone()),
                _ => None,
            })
            .collect();
        self.echo_local(st, key, session, channel, &payload, meta.as_ref(), targets);
        let mut effects = Vec::new();
        self.apply_mesh(st, key, outs, &mut effects);
        // Originating only sends frames; nothing here needs the lock released first.
        debug_assert!(effects.is_empty());
        Ok(sent_to)
    }

    /// Measures the round trip to a peer of a room.
    pub async fn ping(&self, app: &str, room_id: &str, peer: &str) -> Result<Duration, NodeError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.lock();
            let st = &mut *st;
            let key = RoomKey::new(app, room_id);
            let entry = st
                .rooms
                .get_mut(&key)
                .ok_or_else(|| NodeError::NotFound(format!("room {app}/{room_id} not held")))?;
            let frame = entry
                .room
                .ping(peer, Instant::now())
                .ok_or_else(|| NodeError::NotFound(format!("peer {peer} is not in the room")))?;
            entry
                .ping_waiters
                .entry(peer.to_owned())
                .or_default()
                .push_back(Some(tx));
            match st.links.get(&LinkKey::new(app, peer)) {
                Some(link) => {
                    let _ = link.tx.try_send(frame);
                }
                None => return Err(NodeError::LinkClosed(peer.to_owned())),
            }
        }
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(rtt)) => Ok(rtt),
            Ok(Err(_)) => Err(NodeError::LinkClosed(peer.to_owned())),
            Err(_) => Err(NodeError::Timeout(format!(
                "no pong from {peer} within 10 s"
            ))),
        }
    }
}
