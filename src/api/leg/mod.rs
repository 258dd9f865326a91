//! A browser page's media leg: one WebRTC connection on loopback between a bridge session's page
//! and this daemon, carrying the page's tracks into its rooms and the rooms' tracks to the page.
//!
//! The daemon makes every offer and the page only answers (`plan`), so the leg needs no
//! collision handling. A page track becomes a local track of the room once its first packet
//! arrives (its codec is known then); a room's remote track is read once by the node and
//! written to the leg like to any other reader. This actor only moves bytes and runs the SDP
//! steps the plan asks for.

pub mod plan;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};

use crate::drops::DropReason;
use crate::ids::{ConnId, TrackId};
use crate::node::session::{EventKind, SessionEvent, SessionId};
use crate::node::{KEYFRAME_GAP, SurfacedTrack, TrackRequest};
use crate::node::{Node, NodeError};
use crate::proto;
use crate::transport::media::{self, LocalTrack, MediaKind, RemoteEvent, RemoteTrack, TrackSpec};
use crate::transport::{Connection, Transport, TransportConfig, TransportEvent};
use plan::{Change, ForwardKey, LegPlan, Publish};

/// How long the first offer waits for the daemon's candidates to be gathered.
const GATHER_WAIT: Duration = Duration::from_secs(2);
/// How often publishes that never got media are looked for.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// What the session hands the leg.
#[derive(Debug)]
pub enum LegCommand {
    /// `leg_publish`.
    Publish(u64, proto::LegPublishRequest),
    /// `leg_subscribe`.
    Subscribe(u64, u32),
    /// `leg_answer`.
    Answer(u64, proto::LegAnswerRequest),
    /// A media event of the session (track added, removed, ready).
    Event(SessionEvent),
}

/// The session's handle on its leg; the leg ends when this is dropped.
#[derive(Debug, Clone)]
pub struct Leg {
    tx: mpsc::UnboundedSender<LegCommand>,
}

impl Leg {
    /// Starts a leg for `session`; replies and offers go to `out`.
    pub fn start(
        node: Arc<Node>,
        session: SessionId,
        out: mpsc::Sender<proto::ServerMessage>,
    ) -> Leg {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (events_tx, events) = mpsc::unbounded_channel();
            let transport = Transport::new(
                TransportConfig {
                    ice_addr: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                    ice: Default::default(),
                    resolve_mdns: false,
                    media_repair: true,
                },
                events_tx,
            );
            let pc = match transport.media_leg(ConnId(1)).await {
                Ok(pc) => pc,
                Err(e) => {
                    tracing::warn!(error = %e, "a page's media leg could not be created");
                    return;
                }
            };
            let actor = Actor {
                node,
                session,
                out,
                pc: pc.clone(),
                plan: LegPlan::default(),
                offered: HashMap::new(),
                publishes: HashMap::new(),
                forwards: HashMap::new(),
                page_tracks: HashMap::new(),
                gathered: false,
            };
            actor.run(rx, events).await;
            let _ = pc.close().await;
        });
        Leg { tx }
    }

    /// Hands the leg a command; false once the leg has ended.
    pub fn send(&self, command: LegCommand) -> bool {
        self.tx.send(command).is_ok()
    }
}

/// A remote track the leg sends to the page; its pump starts once the page has answered the
/// offer that added it (before that the engine drops what is written).
struct Forward {
    track: LocalTrack,
    surfaced: SurfacedTrack,
    pump: Option<tokio::task::JoinHandle<()>>,
}

struct Actor {
    node: Arc<Node>,
    session: SessionId,
    out: mpsc::Sender<proto::ServerMessage>,
    pc: Connection,
    plan: LegPlan,
    /// Publishes whose slot was offered, by the slot's media id.
    offered: HashMap<String, Publish>,
    /// Publishes answered and waiting for their media, by media id.
    publishes: HashMap<String, Publish>,
    forwards: HashMap<ForwardKey, Forward>,
    /// The page's tracks in rooms, by local track id (asked for keyframes when a peer is new).
    page_tracks: HashMap<TrackId, RemoteTrack>,
    gathered: bool,
}

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<LegCommand>,
        mut events: mpsc::UnboundedReceiver<TransportEvent>,
    ) {
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(c) => self.on_command(c).await,
                    None => break,
                },
                event = events.recv() => match event {
                    Some(TransportEvent::Track(_, track)) => self.on_page_track(track).await,
                    Some(TransportEvent::GatheringComplete(_)) => self.gathered = true,
                    Some(TransportEvent::Closed(_)) | None => break,
                    Some(_) => {}
                },
                _ = tick.tick() => {
                    for request_id in self.plan.expired(Instant::now()) {
                        self.offered.retain(|_, p| p.request_id != request_id);
                        self.publishes.retain(|_, p| p.request_id != request_id);
                        let e = NodeError::Timeout("no media arrived from the page for this track".into());
                        self.reply(request_id, Err(e), 0).await;
                    }
                }
            }
            self.offer_if_due(&mut events).await;
        }
        for f in self.forwards.values().filter_map(|f| f.pump.as_ref()) {
            f.abort();
        }
    }

    async fn on_command(&mut self, command: LegCommand) {
        match command {
            LegCommand::Publish(request_id, p) => {
                let result = publish_from_proto(request_id, p).and_then(|p| {
                    self.node.room_of(self.session, p.room)?;
                    self.plan
                        .publish(p)
                        .map_err(|e| NodeError::InvalidArgument(e.to_string()))
                });
                if let Err(e) = result {
                    self.reply(request_id, Err(e), 0).await;
                }
            }
            LegCommand::Subscribe(request_id, room) => {
                let present = self.node.room_tracks(self.session, room);
                let result = present.map(|tracks| self.plan.subscribe(room, tracks));
                self.reply(request_id, result, 0).await;
            }
            LegCommand::Answer(request_id, answer) => {
                let result = self.on_answer(answer).await;
                self.reply(request_id, result, 0).await;
            }
            LegCommand::Event(ev) => self.on_event(ev).await,
        }
    }

    async fn on_event(&mut self, ev: SessionEvent) {
        match ev.kind {
            add @ EventKind::TrackAdd { .. } => {
                if let Some(track) = SurfacedTrack::from_event(add) {
                    self.plan.track_added(ev.room, track);
                }
            }
            EventKind::TrackRemove { peer, track_id } => {
                self.plan.track_removed(ev.room, &peer, &track_id);
            }
            EventKind::TrackReady { track, .. } | EventKind::KeyframeWanted { track, .. } => {
                // A peer just got one of the page's tracks, or lost its picture: it needs a
                // keyframe, and only the page can make one.
                if let Some(remote) = self.page_tracks.get(&track) {
                    let _ = remote.request_keyframe().await;
                }
            }
            _ => {}
        }
    }

    /// Makes the next offer if the plan has one due, and sends it to the page.
    async fn offer_if_due(&mut self, events: &mut mpsc::UnboundedReceiver<TransportEvent>) {
        let Some((offer, changes)) = self.plan.next_offer(Instant::now()) else {
            return;
        };
        match self.make_offer(offer, &changes, events).await {
            Ok(msg) => {
                let _ = self.out.send(msg).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "a page's media leg could not make an offer");
                for change in self.plan.offer_failed(offer) {
                    if let Change::Publish(p) = change {
                        self.offered.retain(|_, o| o.request_id != p.request_id);
                        let e = NodeError::LinkClosed(format!("media leg: {e}"));
                        self.reply(p.request_id, Err(e), 0).await;
                    }
                }
            }
        }
    }

    async fn make_offer(
        &mut self,
        offer: u64,
        changes: &[Change],
        events: &mut mpsc::UnboundedReceiver<TransportEvent>,
    ) -> Result<proto::ServerMessage, crate::transport::TransportError> {
        let mut slots = Vec::new();
        let mut receive = Vec::new();
        let mut send = Vec::new();
        for change in changes {
            match change {
                Change::Publish(p) => {
                    receive.push((media::add_receive_slot(&self.pc, p.kind).await?, p.clone()));
                }
                Change::Forward { room, track } => {
                    let spec = TrackSpec {
                        codec: track.codec,
                        stream_id: track.stream_id.clone(),
                        track_id: track.track_id.clone(),
                    };
                    let local = media::add_send_slot(&self.pc, &spec).await?;
                    send.push((local, *room, track.clone()));
                }
                Change::Unforward(key) => {
                    if let Some(f) = self.forwards.remove(key) {
                        if let Some(pump) = &f.pump {
                            pump.abort();
                        }
                        let mid = media::local_track_mid(&self.pc, &f.track).await;
                        let _ = media::remove_track(&self.pc, &f.track).await;
                        slots.push(proto::LegSlot {
                            mid: mid.unwrap_or_default(),
                            room: key.room,
                            removed: true,
                            ..Default::default()
                        });
                    }
                }
            }
        }
        let _ = media::renegotiation_offer(&self.pc).await?;
        if !self.gathered {
            let wait = async {
                while let Some(ev) = events.recv().await {
                    if matches!(ev, TransportEvent::GatheringComplete(_)) {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(GATHER_WAIT, wait).await;
            self.gathered = true;
        }
        for (slot, p) in receive {
            let mid = slot.mid().await.unwrap_or_default();
            slots.push(proto::LegSlot {
                mid: mid.clone(),
                room: p.room,
                publish_request: p.request_id,
                ..Default::default()
            });
            self.offered.insert(mid, p);
        }
        for (local, room, track) in send {
            let mid = media::local_track_mid(&self.pc, &local)
                .await
                .unwrap_or_default();
            slots.push(proto::LegSlot {
                mid,
                room,
                forward: Some(super::convert::track_to_proto(track.clone())),
                ..Default::default()
            });
            self.forwards.insert(
                ForwardKey::of(room, &track),
                Forward {
                    track: local,
                    surfaced: track,
                    pump: None,
                },
            );
        }
        let sdp = self
            .pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .unwrap_or_default();
        Ok(proto::ServerMessage {
            body: Some(proto::server_message::Body::LegOffer(proto::LegOffer {
                offer,
                sdp,
                slots,
            })),
        })
    }

    async fn on_answer(&mut self, answer: proto::LegAnswerRequest) -> Result<(), NodeError> {
        self.plan
            .answered(answer.offer)
            .map_err(|e| NodeError::InvalidArgument(e.to_string()))?;
        crate::transport::apply_answer(&self.pc, answer.sdp)
            .await
            .map_err(|e| NodeError::InvalidArgument(format!("the page's answer: {e}")))?;
        self.publishes.extend(self.offered.drain());
        for (ForwardKey { room, .. }, f) in self.forwards.iter_mut() {
            if f.pump.is_none() {
                f.pump = Some(tokio::spawn(forward_pump(
                    self.node.clone(),
                    self.session,
                    *room,
                    f.surfaced.clone(),
                    f.track.clone(),
                )));
            }
        }
        Ok(())
    }

    /// A page track's first packet arrived: it joins its room as a local track.
    async fn on_page_track(&mut self, track: RemoteTrack) {
        let Some(mid) = media::remote_track_mid(&self.pc, &track).await else {
            return;
        };
        let Some(p) = self.publishes.remove(&mid) else {
            return;
        };
        self.plan.publish_done(p.request_id);
        let (_, _, codec) = track.describe().await;
        let Some(codec) = codec else {
            self.node.count_drop(DropReason::MediaCodecUnsupported);
            let e =
                NodeError::InvalidArgument("the page sent a codec meshrtc does not forward".into());
            self.reply(p.request_id, Err(e), 0).await;
            return;
        };
        let request = TrackRequest {
            spec: TrackSpec {
                codec,
                stream_id: p.stream_id.clone(),
                track_id: p.track_id.clone(),
            },
            meta: p.meta.clone(),
            targets: p.targets.clone(),
            max_kbps: p.max_kbps,
        };
        match self.node.add_track(self.session, p.room, request) {
            Ok(id) => {
                self.page_tracks.insert(id, track.clone());
                tokio::spawn(publish_pump(self.node.clone(), self.session, id, track));
                self.reply(p.request_id, Ok(()), id.0).await;
            }
            Err(e) => self.reply(p.request_id, Err(e), 0).await,
        }
    }

    async fn reply(&self, request_id: u64, result: Result<(), NodeError>, track: u64) {
        let mut reply = proto::Reply {
            request_id,
            track,
            ..Default::default()
        };
        if let Err(e) = result {
            reply.error = Some(super::convert::error_to_proto(&e));
        }
        let msg = proto::ServerMessage {
            body: Some(proto::server_message::Body::Reply(reply)),
        };
        let _ = self.out.send(msg).await;
    }
}

fn publish_from_proto(request_id: u64, p: proto::LegPublishRequest) -> Result<Publish, NodeError> {
    let kind = MediaKind::from_name(&p.kind).ok_or_else(|| {
        NodeError::InvalidArgument(format!("kind {:?} is not audio or video", p.kind))
    })?;
    Ok(Publish {
        request_id,
        room: p.room,
        kind,
        stream_id: p.stream_id,
        track_id: p.track_id,
        targets: p.targets,
        meta: super::convert::meta_from_json(&p.meta_json)?,
        max_kbps: p.max_kbps,
    })
}

/// Moves a page track's packets into its room; the track leaves the room when the page stops.
async fn publish_pump(node: Arc<Node>, session: SessionId, id: TrackId, track: RemoteTrack) {
    while let RemoteEvent::Rtp(p) = track.next().await {
        match node.write_rtp(id, vec![p]).await {
            Ok(_) | Err(NodeError::InvalidArgument(_)) => {}
            Err(_) => break,
        }
    }
    let _ = node.remove_track(session, id);
}

/// Moves a room's remote track to the page: the packets since its last keyframe, then live
/// ones; a page that reads too slowly loses packets (counted), never the link. The page's
/// keyframe requests go to the sending peer (the first keyframe can be lost while the leg's
/// keys are still being agreed, and only the sender can make another).
async fn forward_pump(
    node: Arc<Node>,
    session: SessionId,
    room: u32,
    track: SurfacedTrack,
    local: LocalTrack,
) {
    let Ok((app, room_id)) = node.room_of(session, room) else {
        return;
    };
    let Ok((codec, backlog, mut rx)) =
        node.read_track(&app, &room_id, &track.peer, &track.track_id)
    else {
        return;
    };
    // The slot was made for the codec the page was told of: another track's packets (a track
    // surfaced again under the same id) must not go into it.
    if codec != track.codec {
        tracing::warn!(peer = %track.peer, track = %track.track_id, "track changed codec; not forwarded");
        return;
    }
    let _ = node
        .request_keyframe(session, room, &track.peer, &track.track_id)
        .await;
    for bytes in backlog {
        if let Some(p) = media::parse_rtp(&bytes) {
            let _ = local.write_rtp(p).await;
        }
    }
    let mut asked: Option<Instant> = None;
    let mut page_asks = true;
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Ok(bytes) => {
                    if let Some(p) = media::parse_rtp(&bytes) {
                        let _ = local.write_rtp(p).await;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    node.count_drops(DropReason::MediaSubscriberLagged, n);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            request = local.keyframe_requested(), if page_asks => {
                if request.is_none() {
                    page_asks = false;
                    continue;
                }
                let now = Instant::now();
                if asked.is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_GAP) {
                    continue;
                }
                asked = Some(now);
                let _ = node
                    .request_keyframe(session, room, &track.peer, &track.track_id)
                    .await;
            }
        }
    }
}
