//! Tracks peers send us: their metadata, when they are shown to an app (only once metadata and
//! track are both there, as Trystero does), when they end, and where a reader finds them.

use std::time::Instant;

use super::state::{PendingMeta, RemoteTrackEntry};
use super::{MAX_PENDING_META, MAX_REMOTE_TRACKS_PER_LINK, SurfacedTrack, TrackRef};
use crate::codec::Codec;
use crate::drops::DropReason;
use crate::ids::ConnId;
use crate::node::core::events::{EventKind, SessionId};
use crate::node::core::types::NodeError;
use crate::node::core::{Core, LinkKey, RoomKey};
use crate::room::media::{MediaMeta, MediaWire};

/// A media message for a debug log: SDP bodies are long, so only their kind and size.
struct MediaWireLog<'a>(&'a MediaWire);

impl std::fmt::Debug for MediaWireLog<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            MediaWire::Signal { kind, sdp } => write!(f, "signal {kind:?} ({} bytes)", sdp.len()),
            other => write!(f, "{other:?}"),
        }
    }
}

impl Core {
    /// The remote tracks surfaced in a session's room (for a reader that comes after their
    /// `track_add`).
    pub fn room_tracks(
        &self,
        session: SessionId,
        handle: u32,
    ) -> Result<Vec<SurfacedTrack>, NodeError> {
        let key = self.session_room(session, handle)?;
        Ok(self
            .st
            .media
            .remote_tracks
            .iter()
            .filter(|(_, t)| t.room.as_ref() == Some(&key))
            .map(|((_, track_id), t)| SurfacedTrack {
                peer: t.peer.clone(),
                stream_id: t.stream_id.clone(),
                track_id: track_id.clone(),
                codec: t.codec,
                meta: t.meta.clone(),
            })
            .collect())
    }

    /// Handler: a media message from a joined peer of a room.
    pub(in crate::node::core) fn on_media_wire(
        &mut self,
        key: &RoomKey,
        peer: &str,
        wire: MediaWire,
    ) {
        tracing::debug!(room = %key.room, peer, wire = ?MediaWireLog(&wire), "media in");
        let lk = LinkKey::new(&key.app, peer);
        let Some(conn) = self.st.link_conn(&lk) else {
            return;
        };
        match wire {
            MediaWire::Signal { kind, sdp } => self.on_media_signal(&lk, conn, kind, sdp),
            MediaWire::Stream(meta) => self.on_media_meta(&lk, conn, key, meta, false),
            MediaWire::Track(meta) => self.on_media_meta(&lk, conn, key, meta, true),
        }
    }

    fn on_media_meta(
        &mut self,
        lk: &LinkKey,
        conn: ConnId,
        key: &RoomKey,
        meta: MediaMeta,
        track: bool,
    ) {
        // New metadata for a track already shown (Trystero's replaceTrack): shown again.
        if track
            && let Some(id) = meta.track_id.clone()
            && let Some(t) = self.st.media.remote_tracks.get_mut(&(conn, id.clone()))
            && t.room.as_ref() == Some(key)
        {
            t.meta = meta.meta.clone();
            let (peer, stream_id, codec) = (t.peer.clone(), t.stream_id.clone(), t.codec);
            self.emit(
                key,
                EventKind::TrackAdd {
                    peer: peer.into(),
                    stream_id,
                    track_id: id,
                    codec,
                    meta: meta.meta,
                },
            );
            return;
        }
        let pending = self.st.media.pending_meta.entry(lk.clone()).or_default();
        if pending.len() >= MAX_PENDING_META {
            pending.remove(0);
            self.count(DropReason::MediaTrackLimit);
        }
        let pending = self.st.media.pending_meta.entry(lk.clone()).or_default();
        pending.push(PendingMeta {
            room: key.clone(),
            meta,
            track,
        });
        self.surface_tracks(lk, conn);
    }

    /// Input: a peer's track arrived on a connection.
    pub fn remote_track(
        &mut self,
        conn: ConnId,
        stream_id: String,
        track_id: String,
        codec: Option<Codec>,
        now: Instant,
    ) {
        self.at(now);
        let Some(lk) = self.st.link_of(conn) else {
            return;
        };
        let Some(codec) = codec else {
            self.count(DropReason::MediaCodecUnsupported);
            return;
        };
        let on_link = self
            .st
            .media
            .remote_tracks
            .keys()
            .filter(|(c, _)| *c == conn)
            .count();
        if on_link >= MAX_REMOTE_TRACKS_PER_LINK {
            self.count(DropReason::MediaTrackLimit);
            return;
        }
        self.st.media.remote_tracks.insert(
            (conn, track_id),
            RemoteTrackEntry {
                peer: lk.peer.to_string(),
                app: lk.app.clone(),
                stream_id,
                codec,
                room: None,
                meta: None,
            },
        );
        self.surface_tracks(&lk, conn);
    }

    /// Shows apps the remote tracks whose metadata has arrived: a `@_track` naming the track
    /// (Trystero's addTrack), else one for its stream, else the stream's `@_stream` (its
    /// addStream sends only that, once for all the stream's tracks).
    fn surface_tracks(&mut self, lk: &LinkKey, conn: ConnId) {
        let waiting: Vec<(String, String)> = self
            .st
            .media
            .remote_tracks
            .iter()
            .filter(|((c, _), t)| *c == conn && t.room.is_none())
            .map(|((_, id), t)| (id.clone(), t.stream_id.clone()))
            .collect();
        for (track_id, stream_id) in waiting {
            let Some(pending) = self.st.media.pending_meta.get_mut(lk) else {
                return;
            };
            let is = |p: &PendingMeta, track: bool, id: Option<&str>, stream: &str| {
                p.track == track
                    && id.is_none_or(|id| p.meta.track_id.as_deref() == Some(id))
                    && (id.is_some() || p.meta.stream_id.as_deref() == Some(stream))
            };
            let track_meta = pending
                .iter()
                .position(|p| is(p, true, Some(&track_id), &stream_id))
                .or_else(|| pending.iter().position(|p| is(p, true, None, &stream_id)))
                .map(|i| pending.remove(i));
            let stream_meta = pending
                .iter()
                .find(|p| is(p, false, None, &stream_id))
                .map(|p| (p.room.clone(), p.meta.meta.clone()));
            let (room, meta) = match (track_meta, &stream_meta) {
                (Some(t), _) => (t.room, t.meta.meta),
                (None, Some((room, meta))) => (room.clone(), meta.clone()),
                (None, None) => continue,
            };
            let Some(t) = self
                .st
                .media
                .remote_tracks
                .get_mut(&(conn, track_id.clone()))
            else {
                continue;
            };
            t.room = Some(room.clone());
            t.meta = meta.clone();
            let codec = t.codec;
            if self.st.media.streams_seen.insert((conn, stream_id.clone())) {
                let stream_meta = stream_meta.map(|(_, m)| m).unwrap_or_else(|| meta.clone());
                self.emit(
                    &room,
                    EventKind::StreamAdd {
                        peer: lk.peer.clone(),
                        stream_id: stream_id.clone(),
                        meta: stream_meta,
                    },
                );
            }
            self.emit(
                &room,
                EventKind::TrackAdd {
                    peer: lk.peer.clone(),
                    stream_id,
                    track_id,
                    codec,
                    meta,
                },
            );
        }
    }

    /// A new description from the peer no longer sends some of its tracks: they ended.
    pub(in crate::node::core) fn end_unsent_tracks(&mut self, conn: ConnId, sdp: &str) {
        let sending = crate::room::media::sending_tracks(sdp);
        let ended: Vec<String> = self
            .st
            .media
            .remote_tracks
            .keys()
            .filter(|(c, id)| *c == conn && !sending.contains(id))
            .map(|(_, id)| id.clone())
            .collect();
        let now = self.now;
        for id in ended {
            tracing::debug!(%conn, track = %id, "a new description no longer sends this track");
            self.remote_track_ended(conn, &id, now);
        }
    }

    /// Input: a peer's track ended.
    pub(in crate::node::core) fn remote_track_ended(
        &mut self,
        conn: ConnId,
        track_id: &str,
        now: Instant,
    ) {
        self.at(now);
        if let Some(t) = self
            .st
            .media
            .remote_tracks
            .remove(&(conn, track_id.to_owned()))
            && let Some(room) = t.room
        {
            self.emit(
                &room,
                EventKind::TrackRemove {
                    peer: t.peer.into(),
                    track_id: track_id.to_owned(),
                },
            );
        }
    }

    /// The connection carrying a peer's track surfaced in a room (to read or ask for a
    /// keyframe).
    pub fn remote_track_conn(
        &self,
        app: &str,
        room: &str,
        track: &TrackRef,
    ) -> Result<ConnId, NodeError> {
        self.surfaced_track(app, room, track).map(|(conn, _)| conn)
    }

    /// The connection a remote track surfaced in a room arrives on, and its codec.
    pub fn surfaced_track(
        &self,
        app: &str,
        room: &str,
        track: &TrackRef,
    ) -> Result<(ConnId, crate::codec::Codec), NodeError> {
        let key = RoomKey::new(app, room);
        self.st
            .media
            .remote_tracks
            .iter()
            .find(|((_, id), t)| {
                *id == track.track_id
                    && t.peer == track.peer
                    && t.app == app
                    && t.room.as_ref() == Some(&key)
            })
            .map(|((c, _), t)| (*c, t.codec))
            .ok_or_else(|| {
                NodeError::NotFound(format!(
                    "no track {} from {} in {app}/{room}",
                    track.track_id, track.peer
                ))
            })
    }
}
