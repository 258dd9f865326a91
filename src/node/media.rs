//! The driver's media: local tracks on links, remote tracks read once and fanned out, and the
//! SDP steps of renegotiation, each run in order per link.
//!
//! Why a lock per link: the core may ask for an offer and, before it is made, for an answer
//! that rolls it back; the engine must see those steps in the order the core decided them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::broadcast;

use super::core::media::{SurfacedTrack, TrackRequest};
use super::core::{Input, TrackRef};
use super::{Inner, Node, NodeError};
use crate::drops::DropReason;
use crate::ids::{SessionId, TrackId};
use crate::proto;

/// A media step running longer than this is logged: it should take milliseconds.
const SLOW_STEP: Duration = Duration::from_secs(5);
use crate::transport::media::{self, LocalTrack, RemoteEvent, RemoteTrack, SamplePacketizer};
use crate::transport::{self, ConnId};

/// Bytes of an RTP header without extensions, counted against a track's bitrate limit.
const RTP_HEADER_BYTES: usize = 12;

/// RTP packets a remote track holds for readers that fall behind.
const FANOUT_DEPTH: usize = 1_024;

/// A local track's per-link senders and its packetizer.
#[derive(Default)]
pub(super) struct LocalMedia {
    links: HashMap<ConnId, LocalTrack>,
    packetizer: Option<SamplePacketizer>,
}

/// A remote track: the engine's handle, its readers' channel, and the packets since its last
/// keyframe, so a reader that comes late starts with a picture it can decode.
pub(super) struct RemoteMedia {
    track: RemoteTrack,
    fanout: Arc<Fanout>,
}

/// Packets of one remote track on their way to readers.
pub(super) struct Fanout {
    tx: broadcast::Sender<Bytes>,
    /// Packets since the last keyframe (VP8, VP9, AV1), for late readers; a reader takes a copy and
    /// subscribes under this lock, so it misses nothing and sees nothing twice.
    since_key: std::sync::Mutex<Vec<Bytes>>,
}

/// Packets kept for late readers at most (a keyframe interval of a few seconds).
const KEY_CACHE: usize = 2_048;

impl Fanout {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Bytes>> {
        self.since_key.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, packet: &rtc::rtp::Packet, bytes: Bytes, codec: Option<media::Codec>) {
        let mut cache = self.lock();
        if let Some(codec @ (media::Codec::Vp8 | media::Codec::Vp9 | media::Codec::Av1)) = codec {
            let key = media::keyframe_start(codec, &packet.payload);
            if key {
                cache.clear();
            }
            // Only a run that starts with a keyframe helps a late reader.
            if (key || !cache.is_empty()) && cache.len() < KEY_CACHE {
                cache.push(bytes.clone());
            }
        }
        // No reader is fine: packets are kept only for readers there are.
        let _ = self.tx.send(bytes);
    }

    /// The packets since the last keyframe and a receiver for the ones after them.
    pub fn subscribe(&self) -> (Vec<Bytes>, broadcast::Receiver<Bytes>) {
        let cache = self.lock();
        (cache.clone(), self.tx.subscribe())
    }
}

/// The driver's media tables.
#[derive(Default)]
pub(super) struct MediaIo {
    pub local: HashMap<TrackId, LocalMedia>,
    pub remote: HashMap<(ConnId, String), RemoteMedia>,
    /// Serializes each link's SDP steps.
    steps: HashMap<ConnId, Arc<tokio::sync::Mutex<()>>>,
}

impl MediaIo {
    fn step_lock(&mut self, conn: ConnId) -> Arc<tokio::sync::Mutex<()>> {
        self.steps.entry(conn).or_default().clone()
    }

    /// Takes a local track off a link; forgets the track once it is on none.
    fn take_link(&mut self, track: TrackId, conn: ConnId) -> Option<LocalTrack> {
        let local = self.local.get_mut(&track)?;
        let link = local.links.remove(&conn);
        if local.links.is_empty() {
            self.local.remove(&track);
        }
        link
    }

    /// A connection closed: forget its media.
    pub fn forget(&mut self, conn: ConnId) {
        self.steps.remove(&conn);
        self.remote.retain(|(c, _), _| *c != conn);
        for l in self.local.values_mut() {
            l.links.remove(&conn);
        }
    }
}

impl Node {
    /// Runs a media effect (called from `run_effect`).
    pub(super) fn run_media_effect(&self, inner: &mut Inner, effect: super::core::Effect) {
        use super::core::Effect as E;
        let Some(conn) = (match &effect {
            E::AddTrack { conn, .. }
            | E::RemoveTrack { conn, .. }
            | E::MediaOffer { conn }
            | E::MediaAnswer { conn, .. }
            | E::MediaApplyAnswer { conn, .. } => Some(*conn),
            _ => None,
        }) else {
            return;
        };
        let Some(pc) = inner.io.pcs.get(&conn).cloned() else {
            tracing::debug!(%conn, "media step for a connection that is gone");
            return;
        };
        let lock = inner.io.media.step_lock(conn);
        match effect {
            E::AddTrack { track, spec, .. } => self.step(
                (conn, "add track"),
                lock,
                async move { media::add_track(&pc, &spec).await },
                move |node, added| match added {
                    Ok(local) => {
                        node.relay_keyframe_requests(conn, track, local.clone());
                        let mut inner = node.lock();
                        let entry = inner.io.media.local.entry(track).or_default();
                        entry.links.insert(conn, local);
                        inner
                            .core
                            .handle(Input::NegotiationNeeded(conn), Instant::now());
                        node.run_effects(&mut inner);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "adding a track failed");
                        node.feed(|core, _| core.count(DropReason::MediaNegotiationFailed));
                    }
                },
            ),
            E::RemoveTrack { track, .. } => {
                let Some(local) = inner.io.media.take_link(track, conn) else {
                    return;
                };
                self.step(
                    (conn, "remove track"),
                    lock,
                    async move { media::remove_track(&pc, &local).await.is_ok() },
                    move |node, removed| {
                        if removed {
                            node.feed(|core, now| core.handle(Input::NegotiationNeeded(conn), now));
                        }
                    },
                );
            }
            E::MediaOffer { .. } => self.step(
                (conn, "offer"),
                lock,
                async move {
                    media::renegotiation_offer(&pc)
                        .await
                        .map_err(|e| e.to_string())
                },
                move |node, sdp| {
                    node.feed(|core, now| core.handle(Input::MediaOfferMade { conn, sdp }, now))
                },
            ),
            E::MediaAnswer { sdp, rollback, .. } => self.step(
                (conn, "answer"),
                lock,
                async move {
                    let answer = media::answer_renegotiation(&pc, sdp, rollback).await;
                    answer.map_err(|e| e.to_string())
                },
                move |node, answer| {
                    tracing::debug!(
                        %conn,
                        rollback,
                        ok = answer.is_ok(),
                        "renegotiation answered"
                    );
                    node.feed(|core, now| {
                        core.handle(Input::MediaAnswerMade { conn, sdp: answer }, now)
                    });
                },
            ),
            E::MediaApplyAnswer { sdp, .. } => self.step(
                (conn, "apply answer"),
                lock,
                async move { transport::apply_answer(&pc, sdp).await.is_ok() },
                move |node, ok| {
                    node.feed(|core, now| core.handle(Input::MediaAnswerApplied { conn, ok }, now))
                },
            ),
            _ => {}
        }
    }

    /// Runs `work` as its link's next media step (after the steps before it), then hands the
    /// result to `then` with the node, if the node is still there.
    fn step<T: Send + 'static>(
        &self,
        (conn, name): (ConnId, &'static str),
        lock: Arc<tokio::sync::Mutex<()>>,
        work: impl std::future::Future<Output = T> + Send + 'static,
        then: impl FnOnce(&Node, T) + Send + 'static,
    ) {
        let me = self.me.clone();
        tokio::spawn(async move {
            let _step = lock.lock().await;
            tracing::debug!(%conn, step = name, "media step");
            let mut work = std::pin::pin!(work);
            let result = match tokio::time::timeout(SLOW_STEP, &mut work).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(%conn, step = name, "a media step has run for 5 s");
                    work.await
                }
            };
            if let Some(node) = me.upgrade() {
                then(&node, result);
            }
        });
    }

    /// Feeds the core every keyframe request the peer on `conn` sends about local track `track`,
    /// until the track leaves the link.
    fn relay_keyframe_requests(&self, conn: ConnId, track: TrackId, local: LocalTrack) {
        let me = self.me.clone();
        tokio::spawn(async move {
            while local.keyframe_requested().await.is_some() {
                let Some(node) = me.upgrade() else { return };
                node.feed(|core, now| core.handle(Input::KeyframeWanted { conn, track }, now));
            }
        });
    }

    /// A peer's track arrived: read it once, fan its packets out, tell the core.
    pub(super) fn on_remote_track(&self, conn: ConnId, track: RemoteTrack) {
        let me = self.me.clone();
        tokio::spawn(async move {
            let (stream_id, track_id, codec) = track.describe().await;
            let (tx, _) = broadcast::channel(FANOUT_DEPTH);
            let fanout = Arc::new(Fanout {
                tx,
                since_key: Default::default(),
            });
            {
                let Some(node) = me.upgrade() else { return };
                let mut inner = node.lock();
                let remote = RemoteMedia {
                    track: track.clone(),
                    fanout: fanout.clone(),
                };
                inner
                    .io
                    .media
                    .remote
                    .insert((conn, track_id.clone()), remote);
                inner
                    .core
                    .remote_track(conn, stream_id, track_id.clone(), codec, Instant::now());
                node.run_effects(&mut inner);
            }
            while let RemoteEvent::Rtp(p) = track.next().await {
                if let Some(b) = media::encode_rtp(&p) {
                    fanout.push(&p, b, codec);
                }
            }
            if let Some(node) = me.upgrade() {
                let mut inner = node.lock();
                inner.io.media.remote.remove(&(conn, track_id.clone()));
                inner.core.handle(
                    Input::RemoteTrackEnded {
                        conn,
                        track: &track_id,
                    },
                    Instant::now(),
                );
                node.run_effects(&mut inner);
            }
        });
    }

    /// Adds a local track to a room a session joined; returns its id.
    pub fn add_track(
        &self,
        session: SessionId,
        handle: u32,
        request: TrackRequest,
    ) -> Result<TrackId, NodeError> {
        let packetizer = SamplePacketizer::new(request.spec.codec).ok();
        let mut inner = self.lock();
        let id = inner
            .core
            .add_track(session, handle, request, Instant::now())?;
        inner.io.media.local.entry(id).or_default().packetizer = packetizer;
        self.run_effects(&mut inner);
        Ok(id)
    }

    /// Swaps the source of a local track: its peers get `meta` and keep receiving on it.
    pub fn replace_track(
        &self,
        session: SessionId,
        id: TrackId,
        meta: Option<serde_json::Value>,
    ) -> Result<(), NodeError> {
        self.feed(|core, now| core.replace_track(session, id, meta, now))
    }

    /// The remote tracks surfaced in a session's room so far.
    pub fn room_tracks(
        &self,
        session: SessionId,
        handle: u32,
    ) -> Result<Vec<SurfacedTrack>, NodeError> {
        self.lock().core.room_tracks(session, handle)
    }

    /// Removes a local track a session added.
    pub fn remove_track(&self, session: SessionId, id: TrackId) -> Result<(), NodeError> {
        self.feed(|core, now| core.remove_track(session, id, now))
    }

    /// Asks a peer for a keyframe of its track.
    pub async fn request_keyframe(
        &self,
        session: SessionId,
        handle: u32,
        peer: &str,
        track_id: &str,
    ) -> Result<(), NodeError> {
        let track = {
            let inner = self.lock();
            let (app, room) = inner.core.room_of(session, handle)?;
            let r = TrackRef {
                peer: peer.to_owned(),
                track_id: track_id.to_owned(),
            };
            let conn = inner.core.remote_track_conn(&app, &room, &r)?;
            inner
                .io
                .media
                .remote
                .get(&(conn, track_id.to_owned()))
                .map(|m| m.track.clone())
        };
        let track = track.ok_or_else(|| NodeError::NotFound(format!("track {track_id} ended")))?;
        track
            .request_keyframe()
            .await
            .map_err(|e| NodeError::LinkClosed(e.to_string()))
    }

    /// Writes one unit of media to a local track; returns the links it went to.
    pub async fn write_media(&self, write: proto::MediaWrite) -> Result<usize, NodeError> {
        let track = TrackId(write.track);
        let packets = {
            let mut inner = self.lock();
            let local = inner.io.media.local.entry(track).or_default();
            let packets: Vec<rtc::rtp::Packet> = match write.media {
                Some(proto::media_write::Media::Rtp(bytes)) => {
                    media::parse_rtp(&bytes).into_iter().collect()
                }
                Some(proto::media_write::Media::Sample(s)) => match local.packetizer.as_mut() {
                    Some(p) => p
                        .packetize(&s.payload, Duration::from_micros(s.duration_us))
                        .unwrap_or_default(),
                    None => Vec::new(),
                },
                None => Vec::new(),
            };
            if packets.is_empty() {
                if inner.core.local_track(track).is_none() {
                    inner.io.media.local.remove(&track);
                    return Err(NodeError::NotFound(format!("no local track {track}")));
                }
                inner.core.count(DropReason::MediaBadPacket);
                return Err(NodeError::InvalidArgument(
                    "not an RTP packet or an encodable sample".into(),
                ));
            }
            packets
        };
        self.write_rtp(track, packets).await
    }

    /// Writes RTP packets to a local track, within its bitrate limit; returns the links they
    /// went to.
    pub async fn write_rtp(
        &self,
        track: TrackId,
        packets: Vec<rtc::rtp::Packet>,
    ) -> Result<usize, NodeError> {
        let links: Vec<LocalTrack> = {
            let mut inner = self.lock();
            let bytes = packets
                .iter()
                .map(|p| p.payload.len() + RTP_HEADER_BYTES)
                .sum();
            inner.core.admit_media(track, bytes, Instant::now())?;
            match inner.io.media.local.get(&track) {
                Some(local) => local.links.values().cloned().collect(),
                None => Vec::new(),
            }
        };
        for link in &links {
            for p in &packets {
                // Before negotiation binds the track a write fails; media is real time, so the
                // packet is not kept.
                let _ = link.write_rtp(p.clone()).await;
            }
        }
        Ok(links.len())
    }

    /// Subscribes to a remote track surfaced in a room: its codec, the packets since its last
    /// keyframe, then the live ones.
    pub fn read_track(
        &self,
        app: &str,
        room: &str,
        peer: &str,
        track_id: &str,
    ) -> Result<(media::Codec, Vec<Bytes>, broadcast::Receiver<Bytes>), NodeError> {
        let inner = self.lock();
        let r = TrackRef {
            peer: peer.to_owned(),
            track_id: track_id.to_owned(),
        };
        let (conn, codec) = inner.core.surfaced_track(app, room, &r)?;
        inner
            .io
            .media
            .remote
            .get(&(conn, track_id.to_owned()))
            .map(|m| {
                let (backlog, rx) = m.fanout.subscribe();
                (codec, backlog, rx)
            })
            .ok_or_else(|| NodeError::NotFound(format!("track {track_id} ended")))
    }
}
