//! Per-app limits: how many sessions, rooms, local tracks and kept channels one app id may hold;
//! and the byte budget that holds one track to its bitrate.
//!
//! An app id is what apps join with, so these stop one runaway app (a page opening tabs in a
//! loop, a bot joining room after room) from taking the node from the others; every refusal is a
//! `resource_exhausted` error naming the limit, and is counted (`app_limit`).

use std::time::Instant;

use super::{Core, RoomKey};
use crate::drops::DropReason;
use crate::node::core::events::SessionId;
use crate::node::core::types::NodeError;

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
            .media
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

/// A token bucket of bytes: refilled at a track's bitrate limit, holding at most one second of
/// it, so a keyframe's burst passes and a sustained excess does not.
#[derive(Debug, Clone)]
pub struct ByteBudget {
    bytes_per_sec: f64,
    left: f64,
    at: Option<Instant>,
}

impl ByteBudget {
    /// A full budget for `kbps` kilobits per second.
    pub fn new(kbps: u32) -> Self {
        let bytes_per_sec = f64::from(kbps) * 1000.0 / 8.0;
        ByteBudget {
            bytes_per_sec,
            left: bytes_per_sec,
            at: None,
        }
    }

    /// The limit in kbit/s.
    pub fn kbps(&self) -> u32 {
        (self.bytes_per_sec * 8.0 / 1000.0).round() as u32
    }

    /// Takes `bytes` if the budget holds them at `now`.
    pub fn take(&mut self, bytes: usize, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.bytes_per_sec;
            self.left = (self.left + refill).min(self.bytes_per_sec);
        }
        self.at = Some(now);
        let bytes = bytes as f64;
        if bytes > self.left {
            return false;
        }
        self.left -= bytes;
        true
    }
}
