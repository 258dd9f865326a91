//! Local sessions and their rooms: open and close sessions, join (deriving the E2E key off the runtime), leave, subscribe.
//!
//! A room is shared by the node's sessions and reference-counted here; the first join creates
//! its room, signaling and (for cells rooms) census state, the last leave tears them down.

use super::*;

impl Node {
    /// Opens a local session; its events arrive on the returned queue.
    pub fn open_session(&self) -> (SessionId, Arc<SessionQueue>) {
        let id = self.new_id();
        let queue = Arc::new(SessionQueue::new(self.config.session_queue));
        self.lock().sessions.insert(
            id,
            SessionEntry {
                queue: queue.clone(),
                rooms: HashMap::new(),
                next_handle: 1,
            },
        );
        (id, queue)
    }

    /// Closes a session and leaves its rooms.
    pub fn close_session(&self, session: SessionId) {
        let handles: Vec<u32> = match self.lock().sessions.get(&session) {
            Some(s) => s.rooms.keys().copied().collect(),
            None => return,
        };
        for h in handles {
            let _ = self.leave(session, h);
        }
        if let Some(s) = self.lock().sessions.remove(&session) {
            s.queue.close();
        }
    }

    /// Joins a room for a session; returns the session's handle of the room.
    pub async fn join(
        &self,
        session: SessionId,
        app: &str,
        room_id: &str,
        opts: &JoinOptions,
    ) -> Result<u32, NodeError> {
        let (password, require_e2e) = (opts.password.as_str(), opts.require_e2e);
        if app.is_empty() || room_id.is_empty() || app.len() > 256 || room_id.len() > 256 {
            return Err(NodeError::InvalidArgument(
                "app and room must be 1 to 256 bytes".into(),
            ));
        }
        if require_e2e && password.is_empty() {
            return Err(NodeError::InvalidArgument(
                "require_e2e needs a password: the end-to-end key derives from it".into(),
            ));
        }
        let e2e = if password.is_empty() {
            None
        } else {
            Some(self.e2e_key(app, room_id, password).await)
        };
        self.join_with_key(session, app, room_id, opts, e2e)
    }

    /// The end-to-end key of a password room, derived off the runtime (slow KDF) and cached.
    pub(super) async fn e2e_key(
        &self,
        app: &str,
        room_id: &str,
        password: &str,
    ) -> crate::wire::e2e::E2eKey {
        let id = (app.to_owned(), room_id.to_owned(), password.to_owned());
        if let Some(k) = self
            .e2e_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return k.clone();
        }
        let (a, r, p) = id.clone();
        let key = tokio::task::spawn_blocking(move || crate::wire::e2e::derive_key(&p, &a, &r))
            .await
            .unwrap_or_else(|_| crate::wire::e2e::derive_key(&id.2, &id.0, &id.1));
        self.e2e_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, key.clone());
        key
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn join_with_key(
        &self,
        session: SessionId,
        app: &str,
        room_id: &str,
        opts: &JoinOptions,
        e2e: Option<crate::wire::e2e::E2eKey>,
    ) -> Result<u32, NodeError> {
        let (password, channels, require_e2e) =
            (opts.password.as_str(), &opts.channels, opts.require_e2e);
        let key = RoomKey::new(app, room_id);
        let now = Instant::now();
        let mut effects = Vec::new();
        let handle;
        {
            let mut st = self.lock();
            let st = &mut *st;
            if !st.sessions.contains_key(&session) {
                return Err(NodeError::NotFound("unknown session".into()));
            }
            if let Some(entry) = st.rooms.get(&key)
                && entry.password != password
            {
                return Err(NodeError::PasswordConflict);
            }
            let Some(sess) = st.sessions.get_mut(&session) else {
                return Err(NodeError::NotFound("unknown session".into()));
            };
            if let Some((h, _)) = sess.rooms.iter().find(|(_, k)| **k == key) {
                return Ok(*h);
            }
            handle = sess.next_handle;
            sess.next_handle += 1;
            sess.rooms.insert(handle, key.clone());
            let queue = sess.queue.clone();
            let is_new = !st.rooms.contains_key(&key);
            if is_new {
                let limits = RoomLimits {
                    max_message: self.config.max_message_size,
                    handshake_timeout: Duration::from_millis(self.config.handshake_timeout_ms),
                    reassembly_timeout: Duration::from_millis(self.config.reassembly_timeout_ms),
                };
                let room = Room::new(&self.identity.peer_id, app, room_id, password, limits, e2e);
                let signal = RoomSignal::new(
                    &self.identity.peer_id,
                    app,
                    room_id,
                    password,
                    self.config.max_pending_dials,
                    now,
                );
                for t in signal.topics() {
                    st.topics.insert(t.to_owned(), key.clone());
                }
                let mut signal = signal;
                let cells = opts.cells.map(|size| {
                    signal.set_dial_filter(Some(HashSet::new()));
                    CellRoom::new(
                        &self.identity.peer_id,
                        &self.identity.keys.public_key(),
                        signal.root_topic().as_bytes(),
                        size,
                        now,
                    )
                });
                st.tokens.insert(room.token().to_owned(), key.clone());
                st.rooms.insert(
                    key.clone(),
                    RoomEntry {
                        room,
                        signal,
                        password: password.to_owned(),
                        sessions: HashMap::new(),
                        rtts: HashMap::new(),
                        ping_waiters: HashMap::new(),
                        cells,
                    },
                );
                effects.push(Effect::Relay(RelayCommand::Subscribe(
                    st.topics.keys().cloned().collect(),
                )));
            }
            let Some(entry) = st.rooms.get_mut(&key) else {
                return Err(NodeError::NotFound("room vanished".into()));
            };
            if require_e2e {
                entry.room.require_e2e();
            }
            entry.sessions.insert(
                session,
                SessionRoom {
                    handle,
                    channels: channels.iter().cloned().collect(),
                },
            );
            for peer in entry.room.joined_peers() {
                let security = entry
                    .room
                    .peer_security(peer)
                    .unwrap_or(Security::Transport);
                queue.push(SessionEvent {
                    room: handle,
                    app: app.to_owned(),
                    room_id: room_id.to_owned(),
                    kind: EventKind::PeerJoin(peer.to_owned(), security),
                });
            }
            if is_new {
                // Links of this app learn about the room; their peers attach on our presence.
                let presence = entry.room.presence_frame(true);
                let peers: Vec<String> = st
                    .links
                    .iter()
                    .filter(|(k, _)| k.app == app)
                    .map(|(k, _)| k.peer.clone())
                    .collect();
                for peer in peers {
                    if let Some(link) = st.links.get(&LinkKey::new(app, &peer)) {
                        let _ = link.tx.try_send(presence.clone());
                    }
                    self.signal_room(
                        st,
                        &key,
                        |s| {
                            s.set_linked(&peer, true);
                            Vec::new()
                        },
                        &mut effects,
                    );
                }
                let actions = st
                    .rooms
                    .get_mut(&key)
                    .map(|e| e.signal.tick(now))
                    .unwrap_or_default();
                self.apply_actions(st, &key, actions, &mut effects);
            }
        }
        self.run_effects(effects);
        self.wake.notify_one();
        Ok(handle)
    }

    /// Leaves a room a session joined.
    pub fn leave(&self, session: SessionId, handle: u32) -> Result<(), NodeError> {
        let mut effects = Vec::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            let key = st
                .sessions
                .get_mut(&session)
                .and_then(|s| s.rooms.remove(&handle))
                .ok_or_else(|| NodeError::NotFound(format!("room handle {handle} not joined")))?;
            let empty = match st.rooms.get_mut(&key) {
                Some(e) => {
                    e.sessions.remove(&session);
                    e.sessions.is_empty()
                }
                None => false,
            };
            if empty && let Some(mut entry) = st.rooms.remove(&key) {
                for t in entry.signal.topics() {
                    st.topics.remove(t);
                }
                st.tokens.remove(entry.room.token());
                effects.push(Effect::Relay(RelayCommand::Subscribe(
                    st.topics.keys().cloned().collect(),
                )));
                let now = Instant::now();
                for (LinkKey { app, peer }, link) in st.links.iter_mut() {
                    if *app != key.app {
                        continue;
                    }
                    for f in entry.room.leave_frames(peer) {
                        let _ = link.tx.try_send(f);
                    }
                    link.rooms.remove(&key.room);
                    if link.rooms.is_empty() {
                        link.idle_since = Some(now);
                    }
                }
                // Dials this room started are abandoned.
                let dead: Vec<ConnId> = st
                    .conns
                    .iter()
                    .filter(|(_, c)| !c.open && c.app == key.app && c.room == key.room)
                    .map(|(id, _)| *id)
                    .collect();
                for id in dead {
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
        }
        self.run_effects(effects);
        Ok(())
    }

    /// Counts a drop observed outside the node (API layers).
    pub fn count_drop(&self, name: DropReason) {
        count(&mut self.lock(), name);
    }

    /// The (app, room) a session's room handle refers to.
    pub fn room_of(&self, session: SessionId, handle: u32) -> Result<(String, String), NodeError> {
        self.lock()
            .sessions
            .get(&session)
            .and_then(|s| s.rooms.get(&handle))
            .map(|k| (k.app.clone(), k.room.clone()))
            .ok_or_else(|| NodeError::NotFound(format!("room handle {handle} not joined")))
    }

    /// Changes which channels a session receives in a room (empty: all).
    pub fn subscribe(
        &self,
        session: SessionId,
        handle: u32,
        channels: &[String],
    ) -> Result<(), NodeError> {
        let mut st = self.lock();
        let key = st
            .sessions
            .get(&session)
            .and_then(|s| s.rooms.get(&handle))
            .cloned()
            .ok_or_else(|| NodeError::NotFound(format!("room handle {handle} not joined")))?;
        if let Some(sr) = st
            .rooms
            .get_mut(&key)
            .and_then(|e| e.sessions.get_mut(&session))
        {
            sr.channels = channels.iter().cloned().collect();
        }
        Ok(())
    }
}
