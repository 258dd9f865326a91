//! Per-app limits: how many sessions, rooms, local tracks and kept channels one app id may hold.
//!
//! An app id is what apps join with, so these stop one runaway app (a page opening tabs in a
//! loop, a bot joining room after room) from taking the node from the others; every refusal is a
//! `resource_exhausted` error naming the limit, and is counted (`app_limit`).

use super::{Core, RoomKey};
use crate::drops::DropReason;
use crate::node::NodeError;
use crate::node::session::SessionId;

/// The per-app limits (from [`crate::config::Config`]'s `max_app_*`, whose defaults are 256
/// sessions, 256 rooms, 64 tracks and 256 kept channels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppLimits {
    /// Sessions holding at least one room of the app.
    pub sessions: usize,
    /// Rooms the app holds.
    pub rooms: usize,
    /// Local tracks published in the app's rooms.
    pub tracks: usize,
    /// Kept channels (keep rules) across the app's rooms.
    pub keep_rules: usize,
}

impl Core {
    /// Refuses an app's request at one of its limits: counted, with an error naming it.
    fn over_limit(&mut self, app: &str, what: &str, limit: usize, option: &str) -> NodeError {
        self.count(DropReason::AppLimit);
        NodeError::ResourceExhausted(format!(
            "app {app:?} already has {limit} {what}, its limit ({option})"
        ))
    }

    /// Whether `session` may join `key` with these keep rules within the app's limits (the
    /// session is not in the room yet).
    pub(super) fn check_join(
        &mut self,
        session: SessionId,
        key: &RoomKey,
        keep: &[(String, crate::history::KeepRule)],
    ) -> Result<(), NodeError> {
        let limits = self.config.app_limits;
        let app = key.app.as_str();
        let in_app =
            |rooms: &std::collections::BTreeMap<u32, RoomKey>| rooms.values().any(|k| k.app == app);
        let new_session = self
            .st
            .sessions
            .get(&session)
            .is_some_and(|s| !in_app(&s.rooms));
        if new_session {
            let sessions = self
                .st
                .sessions
                .values()
                .filter(|s| in_app(&s.rooms))
                .count();
            if sessions >= limits.sessions {
                return Err(self.over_limit(app, "sessions", limits.sessions, "max_app_sessions"));
            }
        }
        let room = self.st.rooms.get(key);
        if room.is_none() {
            let rooms = self.st.rooms.keys().filter(|k| k.app == app).count();
            if rooms >= limits.rooms {
                return Err(self.over_limit(app, "rooms", limits.rooms, "max_app_rooms"));
            }
        }
        let mut added: Vec<&str> = keep
            .iter()
            .map(|(c, _)| c.as_str())
            .filter(|c| room.is_none_or(|r| !r.history.keep.contains_key(*c)))
            .collect();
        added.sort_unstable();
        added.dedup();
        if !added.is_empty() {
            let kept: usize = self
                .st
                .rooms
                .iter()
                .filter(|(k, _)| k.app == app)
                .map(|(_, e)| e.history.keep.len())
                .sum();
            if kept + added.len() > limits.keep_rules {
                return Err(self.over_limit(
                    app,
                    "kept channels",
                    limits.keep_rules,
                    "max_app_keep_rules",
                ));
            }
        }
        Ok(())
    }

    /// Whether the app of `key` may publish one more local track.
    pub(super) fn check_track(&mut self, key: &RoomKey) -> Result<(), NodeError> {
        let limit = self.config.app_limits.tracks;
        let tracks = self
            .st
            .local_tracks
            .values()
            .filter(|t| t.room.app == key.app)
            .count();
        if tracks >= limit {
            return Err(self.over_limit(&key.app, "local tracks", limit, "max_app_tracks"));
        }
        Ok(())
    }
}
