//! Sessions and their rooms: open and close sessions, join, leave, subscribe.
//!
//! A room is shared by the node's sessions and reference-counted here; the first join creates
//! its room, signaling and (for cells rooms) census state, the last leave tears them down.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::state::{RoomEntry, SessionEntry, SessionRoom};
use super::types::{JoinOptions, NodeError};
use super::{Core, Effect, RoomKey, Work};
use crate::ids::ConnId;
use crate::node::core::cells::CellRoom;
use crate::node::core::events::{EventKind, PeerType, SessionId};
use crate::room::{Room, Security};
use crate::signal::state::RoomSignal;
use crate::signal::{AppTopic, RelayCommand};
use crate::wire::e2e::E2eKey;

/// Longest room password accepted: each new one costs a slow key derivation and stays in memory
/// while its room is held, so an app may not hand the node megabytes of it.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Checks a join's arguments before any work is done for it (the driver derives the E2E key
/// only for a join that passes).
pub fn validate_join(app: &str, room: &str, opts: &JoinOptions) -> Result<(), NodeError> {
    if app.is_empty() || room.is_empty() || app.len() > 256 || room.len() > 256 {
        return Err(NodeError::InvalidArgument(
            "app and room must be 1 to 256 bytes".into(),
        ));
    }
    if opts.password.len() > MAX_PASSWORD_BYTES {
        return Err(NodeError::InvalidArgument(format!(
            "a password may be at most {MAX_PASSWORD_BYTES} bytes (got {})",
            opts.password.len()
        )));
    }
    if opts.require_e2e && opts.password.is_empty() {
        return Err(NodeError::InvalidArgument(
            "require_e2e needs a password: the end-to-end key derives from it".into(),
        ));
    }
    Ok(())
}

fn not_joined(handle: u32) -> NodeError {
    NodeError::NotFound(format!("room handle {handle} not joined"))
}

impl Core {
    /// The room a session's handle names, or the error an app sees.
    pub(super) fn session_room(
        &self,
        session: SessionId,
        handle: u32,
    ) -> Result<RoomKey, NodeError> {
        self.st
            .room_of(session, handle)
            .cloned()
            .ok_or_else(|| not_joined(handle))
    }

    /// What a session holds in the room its handle names (its channels, what it serves).
    pub(super) fn session_state_mut(
        &mut self,
        session: SessionId,
        handle: u32,
    ) -> Result<Option<&mut super::state::SessionRoom>, NodeError> {
        let key = self.session_room(session, handle)?;
        Ok(self
            .st
            .rooms
            .get_mut(&key)
            .and_then(|e| e.sessions.get_mut(&session)))
    }

    /// Opens a local session.
    pub fn open_session(&mut self) -> SessionId {
        let id = SessionId(self.new_id());
        self.st.sessions.insert(
            id,
            SessionEntry {
                rooms: BTreeMap::new(),
                next_handle: 1,
            },
        );
        id
    }

    /// Closes a session and leaves its rooms.
    pub fn close_session(&mut self, session: SessionId, now: Instant) {
        let handles: Vec<u32> = match self.st.sessions.get(&session) {
            Some(s) => s.rooms.keys().copied().collect(),
            None => return,
        };
        self.drop_session_tracks(session);
        for h in handles {
            let _ = self.detach_session(session, h, now, false);
        }
        if self.st.sessions.remove(&session).is_some() {
            self.effect(Effect::CloseSession { session });
        }
    }

    /// The (app, room) a session's room handle refers to.
    pub fn room_of(&self, session: SessionId, handle: u32) -> Result<(String, String), NodeError> {
        self.st
            .room_of(session, handle)
            .map(|k| (k.app.clone(), k.room.clone()))
            .ok_or_else(|| not_joined(handle))
    }

    /// Joins a room for a session (`e2e`: the password room's key, derived by the driver);
    /// returns the session's handle of the room.
    pub fn join(
        &mut self,
        session: SessionId,
        app: &str,
        room_id: &str,
        opts: &JoinOptions,
        e2e: Option<E2eKey>,
        now: Instant,
    ) -> Result<u32, NodeError> {
        self.at(now);
        validate_join(app, room_id, opts)?;
        let key = RoomKey::new(app, room_id);
        if !self.st.sessions.contains_key(&session) {
            return Err(NodeError::NotFound("unknown session".into()));
        }
        if let Some(entry) = self.st.rooms.get(&key)
            && entry.password != opts.password
        {
            return Err(NodeError::PasswordConflict);
        }
        let joined = self
            .st
            .sessions
            .get(&session)
            .and_then(|s| s.rooms.iter().find(|(_, k)| **k == key).map(|(h, _)| *h));
        if let Some(h) = joined {
            return Ok(h);
        }
        self.check_join(session, &key, &opts.keep)?;
        let Some(sess) = self.st.sessions.get_mut(&session) else {
            return Err(NodeError::NotFound("unknown session".into()));
        };
        let handle = sess.next_handle;
        sess.next_handle += 1;
        sess.rooms.insert(handle, key.clone());
        let is_new = !self.st.rooms.contains_key(&key);
        if is_new {
            self.open_room(&key, opts, e2e);
        }
        let Some(entry) = self.st.rooms.get_mut(&key) else {
            return Err(NodeError::NotFound("room vanished".into()));
        };
        if opts.require_e2e {
            entry.room.require_e2e();
        }
        let keeps_more = entry.history.add_rules(&opts.keep);
        entry.sessions.insert(
            session,
            SessionRoom {
                handle,
                channels: opts.channels.iter().cloned().collect(),
                serves: opts.serve.iter().cloned().collect(),
            },
        );
        let joined: Vec<(String, Security, PeerType)> = entry
            .room
            .joined_peers()
            .map(|p| {
                let security = entry.room.peer_security(p).unwrap_or(Security::Transport);
                (p.to_owned(), security, entry.history.peer_type(p))
            })
            .collect();
        for (peer, security, kind) in joined {
            let kind = EventKind::PeerJoin(peer.into(), security, kind);
            self.effect(Effect::deliver(session, handle, &key, kind));
        }
        self.tell_ice_problem(session, handle, &key);
        if keeps_more {
            self.announce_keeps(&key);
        }
        if let Some(since) = opts.since {
            self.replay(session, handle, &key, since, opts.verified_only);
        }
        if is_new {
            self.announce_room(&key);
        }
        self.drain();
        Ok(handle)
    }

    /// Creates a room's state and subscribes to its topics.
    fn open_room(&mut self, key: &RoomKey, opts: &JoinOptions, e2e: Option<E2eKey>) {
        let (app, room_id, password) = (&key.app, &key.room, opts.password.as_str());
        let me = self.identity.peer_id.clone();
        let room_key = e2e.as_ref().map(|k| *k.bytes());
        let (room_seed, signal_seed) = (self.seed(), self.seed());
        let room = Room::new(&me, app, room_id, password, self.config.limits, e2e)
            .with_seed(room_seed)
            .with_reassembly_budget(self.reassembly.clone());
        let mut signal = RoomSignal::new(
            &me,
            app,
            room_id,
            password,
            self.config.max_pending_dials,
            self.now,
        )
        .with_seed(signal_seed);
        for t in signal.topics() {
            self.st.topics.insert(t.to_owned(), key.clone());
        }
        let history = super::history::RoomHistory::new(
            key,
            room_key.as_ref(),
            signal.root_topic().as_bytes(),
        );
        let cells = opts.cells.map(|size| {
            signal.set_dial_filter(Some(BTreeSet::new()));
            CellRoom::new(
                &me,
                &self.identity.keys,
                signal.root_topic().as_bytes(),
                room_key.as_ref(),
                size,
                self.now,
                self.wall_us(),
            )
        });
        self.st.tokens.insert(room.token().to_owned(), key.clone());
        self.st.rooms.insert(
            key.clone(),
            RoomEntry {
                room,
                signal,
                password: password.to_owned(),
                sessions: BTreeMap::new(),
                rtts: BTreeMap::new(),
                ping_waiters: BTreeMap::new(),
                cells,
                history,
                requests: Default::default(),
            },
        );
        self.effect(Effect::Relay(RelayCommand::Subscribe(self.subscription())));
    }

    /// Every topic the node listens on, each with its room's app (whose relays carry it).
    fn subscription(&self) -> Vec<AppTopic> {
        self.st
            .topics
            .iter()
            .map(|(topic, key)| AppTopic {
                app: key.app.clone(),
                topic: topic.clone(),
            })
            .collect()
    }

    /// A new room tells the app's links (their peers attach on our presence) and announces.
    fn announce_room(&mut self, key: &RoomKey) {
        let Some(entry) = self.st.rooms.get_mut(key) else {
            return;
        };
        let presence = entry.room.presence_frame(true);
        let linked: Vec<(crate::ids::PeerId, ConnId)> = self
            .st
            .links
            .iter()
            .filter(|(k, _)| k.app == key.app)
            .map(|(k, l)| (k.peer.clone(), l.conn))
            .collect();
        for (peer, conn) in linked {
            entry.signal.set_linked(&peer, true);
            self.effects.push(Effect::Frames {
                conn,
                frames: vec![presence.clone()],
            });
        }
        let actions = entry.signal.tick(self.now);
        self.work.push_back(Work::Signal(key.clone(), actions));
    }

    /// Leaves a room a session joined; the last session to leave tears the room down.
    pub fn leave(
        &mut self,
        session: SessionId,
        handle: u32,
        now: Instant,
    ) -> Result<(), NodeError> {
        self.detach_session(session, handle, now, true)
    }

    /// Takes a session out of a room. The room closes with its last session, except that a room
    /// keeping channels stays held when that session ended without leaving (an app that
    /// crashed): the node goes on receiving, and the app resumes from its last cursor.
    fn detach_session(
        &mut self,
        session: SessionId,
        handle: u32,
        now: Instant,
        explicit: bool,
    ) -> Result<(), NodeError> {
        self.at(now);
        let key = self
            .st
            .sessions
            .get_mut(&session)
            .and_then(|s| s.rooms.remove(&handle))
            .ok_or_else(|| not_joined(handle))?;
        self.requests_session_gone(&key, session);
        let empty = match self.st.rooms.get_mut(&key) {
            Some(e) => {
                e.sessions.remove(&session);
                e.history.catchups.retain(|c| c.session != session);
                e.sessions.is_empty() && (explicit || e.history.keep.is_empty())
            }
            None => false,
        };
        if empty {
            self.close_room(&key);
        }
        self.drain();
        Ok(())
    }

    fn close_room(&mut self, key: &RoomKey) {
        let Some(mut entry) = self.st.rooms.remove(key) else {
            return;
        };
        self.room_closed(key);
        for t in entry.signal.topics() {
            self.st.topics.remove(t);
        }
        self.st.tokens.remove(entry.room.token());
        self.effect(Effect::Relay(RelayCommand::Subscribe(self.subscription())));
        for waiter in entry.ping_waiters.values().flatten().flatten() {
            self.effects.push(Effect::PingLost { waiter: *waiter });
        }
        let now = self.now;
        let mut goodbyes = Vec::new();
        for (lk, link) in self.st.links.iter_mut().filter(|(k, _)| k.app == key.app) {
            goodbyes.push((link.conn, entry.room.leave_frames(&lk.peer)));
            link.rooms.remove(&key.room);
            if link.rooms.is_empty() {
                link.idle_since = Some(now);
            }
        }
        for (conn, frames) in goodbyes {
            self.frames(conn, frames);
        }
        // Dials this room started are abandoned.
        let dead: Vec<ConnId> = self
            .st
            .conns
            .iter()
            .filter(|(_, c)| !c.open && c.link.app == key.app && c.room == key.room)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.st.conns.remove(&id);
            self.close(id, Duration::ZERO);
        }
    }

    /// Changes which channels a session receives in a room (empty: all), and replays what the
    /// room kept of them after `since`.
    pub fn subscribe(
        &mut self,
        session: SessionId,
        handle: u32,
        channels: &[String],
        since: Option<crate::node::core::types::Since>,
    ) -> Result<(), NodeError> {
        let key = self.session_room(session, handle)?;
        if let Some(sr) = self.session_state_mut(session, handle)? {
            sr.channels = channels.iter().cloned().collect();
        }
        if let Some(since) = since {
            self.replay(session, handle, &key, since, false);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlong_password_is_a_clear_error() {
        let opts = |password: String| JoinOptions {
            password,
            ..JoinOptions::default()
        };
        let at_limit = opts("p".repeat(MAX_PASSWORD_BYTES));
        assert!(validate_join("app", "room", &at_limit).is_ok());
        let over = opts("p".repeat(100_000));
        match validate_join("app", "room", &over) {
            Err(NodeError::InvalidArgument(m)) => assert!(m.contains("at most 1024"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
