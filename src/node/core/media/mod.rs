//! Media on the node: local tracks apps send into rooms (here), tracks peers send us
//! (`remote.rs`), the renegotiation both cause (`negotiation.rs`) and their tables (`state.rs`).
//!
//! Why here: which peer gets a track, when a link renegotiates, who yields in a collision and
//! when a remote track may be shown to an app (only once its metadata arrived, as Trystero
//! does) are decisions; the driver only runs the SDP steps and moves RTP.

mod negotiation;
mod remote;
mod state;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::codec::{Codec, TrackSpec};
use crate::drops::DropReason;
use crate::ids::{ConnId, TrackId};
use crate::node::core::events::{EventKind, SessionId};
use crate::node::core::types::NodeError;
use crate::node::core::{Core, Effect, LinkKey, RoomKey};
use crate::room::media::{MediaMeta, MediaWire};
use crate::wire::topic::random_id_from;
use state::LocalTrackEntry;
pub(in crate::node::core) use state::{MediaState, Negotiation};

/// Local tracks one room may carry from this node.
pub const MAX_LOCAL_TRACKS_PER_ROOM: usize = 16;
/// Remote tracks one link may carry to this node.
pub const MAX_REMOTE_TRACKS_PER_LINK: usize = 16;
/// Metadata messages held per link while their tracks are awaited.
const MAX_PENDING_META: usize = 64;
/// A local track's bitrate limit when the app names none (kbit/s).
pub const DEFAULT_TRACK_KBPS: u32 = 10_000;
/// The highest bitrate limit an app may ask for (kbit/s).
pub const MAX_TRACK_KBPS: u32 = 100_000;
/// The shortest time between two keyframe requests a session is told of, per track.
pub const KEYFRAME_GAP: Duration = Duration::from_millis(250);

/// A local track an app asks for.
#[derive(Debug, Clone)]
pub struct TrackRequest {
    /// Codec, stream id and track id.
    pub spec: TrackSpec,
    /// The app's metadata, sent with the track.
    pub meta: Option<Value>,
    /// Peers it goes to; empty for everyone, newcomers included.
    pub targets: Vec<String>,
    /// Its bitrate limit in kbit/s; 0 for the default.
    pub max_kbps: u32,
}

/// A remote track surfaced in a room, as a late reader learns of it.
#[derive(Debug, Clone, PartialEq)]
pub struct SurfacedTrack {
    /// The sending peer.
    pub peer: String,
    /// Its media stream id.
    pub stream_id: String,
    /// Its track id.
    pub track_id: String,
    /// Its codec.
    pub codec: Codec,
    /// The sender's metadata.
    pub meta: Option<Value>,
}

impl SurfacedTrack {
    /// The track a `track_add` event names (None for other events).
    pub fn from_event(kind: EventKind) -> Option<SurfacedTrack> {
        match kind {
            EventKind::TrackAdd {
                peer,
                stream_id,
                track_id,
                codec,
                meta,
            } => Some(SurfacedTrack {
                peer: peer.into(),
                stream_id,
                track_id,
                codec,
                meta,
            }),
            _ => None,
        }
    }
}

/// A remote track as an app names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackRef {
    /// The sending peer.
    pub peer: String,
    /// Its track id.
    pub track_id: String,
}

impl Core {
    /// Input: an app adds a track to a room; returns the track's id.
    #[allow(clippy::too_many_arguments)]
    pub fn add_track(
        &mut self,
        session: SessionId,
        handle: u32,
        request: TrackRequest,
        now: Instant,
    ) -> Result<TrackId, NodeError> {
        self.at(now);
        let key = self.session_room(session, handle)?;
        let TrackRequest {
            spec,
            meta,
            targets,
            max_kbps,
        } = request;
        if max_kbps > MAX_TRACK_KBPS {
            return Err(NodeError::InvalidArgument(format!(
                "a track's bitrate limit is at most {MAX_TRACK_KBPS} kbit/s"
            )));
        }
        let kbps = if max_kbps == 0 {
            DEFAULT_TRACK_KBPS
        } else {
            max_kbps
        };
        if spec.stream_id.is_empty()
            || spec.track_id.is_empty()
            || spec.track_id.len() > 256
            || spec.stream_id.len() > 256
        {
            return Err(NodeError::InvalidArgument(
                "stream and track ids must be 1 to 256 bytes".into(),
            ));
        }
        // A link carries every room of its app, and the engine tells a link's tracks apart by
        // track id alone: a second track under the same id would be merged into the first at
        // the receiver (its packets forwarded as the first's codec).
        if self
            .st
            .media
            .local_tracks
            .values()
            .any(|t| t.room.app == key.app && t.spec.track_id == spec.track_id)
        {
            return Err(NodeError::InvalidArgument(format!(
                "track id {:?} is already published by this node in app {:?}",
                spec.track_id, key.app
            )));
        }
        let entry = self
            .st
            .rooms
            .get(&key)
            .ok_or_else(|| NodeError::NotFound("room not held".into()))?;
        if let Some(t) = targets.iter().find(|t| !entry.room.is_joined(t)) {
            return Err(NodeError::NotFound(format!("peer {t} is not in the room")));
        }
        let peers: Vec<String> = if targets.is_empty() {
            entry.room.joined_peers().map(str::to_owned).collect()
        } else {
            targets.clone()
        };
        let in_room = self
            .st
            .media
            .local_tracks
            .values()
            .filter(|t| t.room == key)
            .count();
        if in_room >= MAX_LOCAL_TRACKS_PER_ROOM {
            self.count(DropReason::MediaTrackLimit);
            return Err(NodeError::InvalidArgument(format!(
                "a room carries at most {MAX_LOCAL_TRACKS_PER_ROOM} local tracks"
            )));
        }
        self.check_track(&key)?;
        let id = TrackId(self.new_id());
        let track_key = random_id_from(&mut self.rng, 20);
        self.st.media.local_tracks.insert(
            id,
            LocalTrackEntry {
                session,
                room: key,
                spec,
                meta,
                targets,
                key: track_key,
                on: BTreeSet::new(),
                budget: crate::node::core::limits::ByteBudget::new(kbps),
                keyframe_told: None,
            },
        );
        for peer in peers {
            self.send_track_to(id, &peer);
        }
        Ok(id)
    }

    /// Announces a local track to a peer (metadata first, as Trystero does) and adds it to the
    /// link.
    fn send_track_to(&mut self, id: TrackId, peer: &str) {
        let Some(t) = self.st.media.local_tracks.get(&id) else {
            return;
        };
        let Some(conn) = self.st.link_conn(&LinkKey::new(&t.room.app, peer)) else {
            return;
        };
        if t.on.contains(&conn) {
            return;
        }
        // One @_stream per stream and link, then the track's own @_track.
        let stream_sent = self.st.media.local_tracks.values().any(|o| {
            o.room == t.room && o.spec.stream_id == t.spec.stream_id && o.on.contains(&conn)
        });
        let mut wires = Vec::new();
        if !stream_sent {
            wires.push(MediaWire::Stream(MediaMeta {
                key: format!("s{}", t.key),
                stream_id: Some(t.spec.stream_id.clone()),
                track_id: None,
                meta: t.meta.clone(),
            }));
        }
        wires.push(MediaWire::Track(MediaMeta {
            key: t.key.clone(),
            stream_id: Some(t.spec.stream_id.clone()),
            track_id: Some(t.spec.track_id.clone()),
            meta: t.meta.clone(),
        }));
        let (room, spec) = (t.room.clone(), t.spec.clone());
        let mut frames = Vec::new();
        if let Some(entry) = self.st.rooms.get_mut(&room) {
            for w in &wires {
                frames.extend(entry.room.media_frames(w));
            }
        }
        self.frames(conn, frames);
        if let Some(t) = self.st.media.local_tracks.get_mut(&id) {
            t.on.insert(conn);
        }
        self.effect(Effect::AddTrack {
            conn,
            track: id,
            spec,
        });
    }

    /// A peer joined a room: tracks sent to everyone in it go to the newcomer too.
    pub(in crate::node::core) fn media_peer_joined(&mut self, key: &RoomKey, peer: &str) {
        let ids: Vec<TrackId> = self
            .st
            .media
            .local_tracks
            .iter()
            .filter(|(_, t)| t.room == *key && t.targets.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.send_track_to(id, peer);
        }
    }

    /// A peer left a room: the tracks it showed there end, and ours stop going to it.
    pub(in crate::node::core) fn media_peer_left(&mut self, key: &RoomKey, peer: &str) {
        let ended: Vec<(ConnId, String)> = self
            .st
            .media
            .remote_tracks
            .iter()
            .filter(|(_, t)| t.peer == peer && t.room.as_ref() == Some(key))
            .map(|(k, _)| k.clone())
            .collect();
        for (conn, track_id) in ended {
            self.st
                .media
                .remote_tracks
                .remove(&(conn, track_id.clone()));
            self.emit(
                key,
                EventKind::TrackRemove {
                    peer: crate::ids::PeerId::from(peer),
                    track_id,
                },
            );
        }
        let Some(conn) = self.st.link_conn(&LinkKey::new(&key.app, peer)) else {
            return;
        };
        let ours: Vec<TrackId> = self
            .st
            .media
            .local_tracks
            .iter()
            .filter(|(_, t)| t.room == *key && t.on.contains(&conn))
            .map(|(id, _)| *id)
            .collect();
        for id in ours {
            if let Some(t) = self.st.media.local_tracks.get_mut(&id) {
                t.on.remove(&conn);
            }
            self.take_track_off(conn, id);
        }
    }

    /// A local track leaves a connection: the engine drops it, and if it comes back on the
    /// same link (the peer rejoins) its app hears `track_ready` again.
    fn take_track_off(&mut self, conn: ConnId, id: TrackId) {
        if let Some(lk) = self.st.link_of(conn)
            && let Some(link) = self.st.links.get_mut(&lk)
        {
            link.nego.ready.remove(&id);
        }
        self.effect(Effect::RemoveTrack { conn, track: id });
    }

    /// Input: an app removes one of its tracks.
    pub fn remove_track(
        &mut self,
        session: SessionId,
        id: TrackId,
        now: Instant,
    ) -> Result<(), NodeError> {
        self.at(now);
        match self.st.media.local_tracks.get(&id) {
            Some(t) if t.session == session => {}
            _ => {
                return Err(NodeError::NotFound(format!(
                    "track {id} is not this session's"
                )));
            }
        }
        self.drop_local_track(id);
        Ok(())
    }

    fn drop_local_track(&mut self, id: TrackId) {
        if let Some(t) = self.st.media.local_tracks.remove(&id) {
            for conn in t.on {
                self.take_track_off(conn, id);
            }
        }
    }

    /// A session closed: its tracks go.
    pub(in crate::node::core) fn drop_session_tracks(&mut self, session: SessionId) {
        let ids: Vec<TrackId> = self
            .st
            .media
            .local_tracks
            .iter()
            .filter(|(_, t)| t.session == session)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.drop_local_track(id);
        }
    }

    /// A room closed: the tracks sent into it go.
    pub(in crate::node::core) fn drop_room_tracks(&mut self, key: &RoomKey) {
        let ids: Vec<TrackId> = self
            .st
            .media
            .local_tracks
            .iter()
            .filter(|(_, t)| t.room == *key)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.drop_local_track(id);
        }
    }

    /// Whether an app may write to a local track (it exists).
    pub fn local_track(&self, id: TrackId) -> Option<Codec> {
        self.st.media.local_tracks.get(&id).map(|t| t.spec.codec)
    }

    /// The links a local track is on (the driver writes its RTP there).
    pub fn local_track_links(&self, id: TrackId) -> Vec<ConnId> {
        self.st
            .media
            .local_tracks
            .get(&id)
            .map(|t| t.on.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Input: the peer on `conn` asks for a keyframe of local track `id` (RTCP PLI or FIR). Its
    /// session is told, at most once per `KEYFRAME_GAP` per track: a receiver repeats the request
    /// until a keyframe arrives, and every receiver of a room may ask at once.
    pub(in crate::node::core) fn keyframe_wanted(
        &mut self,
        conn: ConnId,
        id: TrackId,
        now: Instant,
    ) {
        self.at(now);
        let Some(lk) = self.st.link_of(conn) else {
            return;
        };
        let Some(t) = self.st.media.local_tracks.get_mut(&id) else {
            return;
        };
        if !t.on.contains(&conn)
            || t.keyframe_told
                .is_some_and(|told| now.saturating_duration_since(told) < KEYFRAME_GAP)
        {
            return;
        }
        t.keyframe_told = Some(now);
        let peer = lk.peer.clone();
        self.tell_track_owner(id, EventKind::KeyframeWanted { track: id, peer });
    }

    /// Tells the session that added local track `id` of `kind`, in the track's room.
    pub(in crate::node::core) fn tell_track_owner(&mut self, id: TrackId, kind: EventKind) {
        let Some(t) = self.st.media.local_tracks.get(&id) else {
            return;
        };
        let Some(handle) = self
            .st
            .rooms
            .get(&t.room)
            .and_then(|e| e.sessions.get(&t.session))
            .map(|s| s.handle)
        else {
            return;
        };
        let effect = Effect::deliver(t.session, handle, &t.room, kind);
        self.effect(effect);
    }

    /// Input: an app writes `bytes` of media to a local track; whether its bitrate limit lets
    /// them through (a refusal is counted).
    pub fn admit_media(
        &mut self,
        id: TrackId,
        bytes: usize,
        now: Instant,
    ) -> Result<(), NodeError> {
        self.at(now);
        let Some(t) = self.st.media.local_tracks.get_mut(&id) else {
            return Err(NodeError::NotFound(format!("no local track {id}")));
        };
        if t.budget.take(bytes, now) {
            return Ok(());
        }
        let kbps = t.budget.kbps();
        self.count(DropReason::MediaBitrateLimit);
        Err(NodeError::InvalidArgument(format!(
            "track {id} is over its bitrate limit of {kbps} kbit/s"
        )))
    }

    /// Input: an app swaps the source of one of its tracks (Trystero's `replaceTrack`): its
    /// peers get the new metadata under a new key and keep receiving on the same track.
    pub fn replace_track(
        &mut self,
        session: SessionId,
        id: TrackId,
        meta: Option<Value>,
        now: Instant,
    ) -> Result<(), NodeError> {
        self.at(now);
        let key = random_id_from(&mut self.rng, 20);
        let t = match self.st.media.local_tracks.get_mut(&id) {
            Some(t) if t.session == session => t,
            _ => {
                return Err(NodeError::NotFound(format!(
                    "track {id} is not this session's"
                )));
            }
        };
        t.key = key;
        t.meta = meta;
        let wire = MediaWire::Track(MediaMeta {
            key: t.key.clone(),
            stream_id: None,
            track_id: Some(t.spec.track_id.clone()),
            meta: t.meta.clone(),
        });
        let (room, on) = (t.room.clone(), t.on.clone());
        for conn in on {
            let frames = match self.st.rooms.get_mut(&room) {
                Some(entry) => entry.room.media_frames(&wire),
                None => Vec::new(),
            };
            self.frames(conn, frames);
        }
        Ok(())
    }

    /// A link went: its remote tracks end and local tracks leave it.
    pub(in crate::node::core) fn media_link_down(&mut self, lk: &LinkKey, conn: ConnId) {
        let ended: Vec<String> = self
            .st
            .media
            .remote_tracks
            .keys()
            .filter(|(c, _)| *c == conn)
            .map(|(_, id)| id.clone())
            .collect();
        let now = self.now;
        for id in ended {
            self.remote_track_ended(conn, &id, now);
        }
        self.st.media.pending_meta.remove(lk);
        self.st.media.streams_seen.retain(|(c, _)| *c != conn);
        for t in self.st.media.local_tracks.values_mut() {
            t.on.remove(&conn);
        }
    }
}
