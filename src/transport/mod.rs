//! WebRTC transport (webrtc 0.21): peer connections with one in-band `data` channel.
//!
//! This module only creates connections and pumps their events into a channel; the node
//! decides what they mean. What a link receives is bounded on its way to the node: each link
//! has [`INBOUND_LINK_BYTES`] of messages the node has not handled yet, and past that its pump
//! stops reading the channel, which pushes back to the peer through SCTP (see [`Inbound`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};
use webrtc::runtime::Runtime;

pub mod av1;
mod coalesce;
pub mod frames;
pub mod health;
pub mod ice;
mod keyframe_requests;
pub mod media;
pub mod path;
pub mod reorder;
mod socket_buffers;
pub mod turn_probe;
pub mod turn_tcp;
pub mod window;

pub use socket_buffers::{SOCKET_BUFFER_BYTES, SocketBufferRuntime};
pub use window::SendWindow;

/// Label of the one data channel Trystero uses.
pub const DATA_CHANNEL_LABEL: &str = "data";
/// Bytes a link may have queued in SCTP before the engine's sends wait: the widest window a
/// peer may get; each link's writer paces itself to its own (see [`window`]).
const SEND_BUFFER_LIMIT: usize = window::DAEMON_WINDOW;
/// The same when every path goes through a TURN server. 64 KiB moved 0.5 MB/s through coturn
/// and 1 MiB 2–8 MB/s while the engine left relayed packets for its next wake-up; with that
/// patched (`vendor/webrtc/PATCH.md`) 1 MiB moves 25–42 MB/s (BENCHMARKS.md).
const RELAYED_SEND_BUFFER_LIMIT: usize = 1 << 20;

/// Bytes of received messages one link may have waiting for the node (handed over, not yet
/// handled). One send window of a meshrtc peer ([`window::DAEMON_WINDOW`]) fits, so a node that
/// pauses briefly never slows an honest peer; past it the link's pump stops reading its channel.
/// webrtc-rs then stops draining SCTP once its own per-channel queue (256 messages) is full, the
/// receive window (4 MiB) closes and the peer's sends wait: a peer that sends faster than the
/// node handles its messages is slowed, and what it can make this process hold is bounded per
/// link (this, plus webrtc-rs's queues, plus SCTP's receive buffer), never a growing queue.
pub const INBOUND_LINK_BYTES: usize = window::DAEMON_WINDOW;
/// What a received message costs beyond its bytes (the event and its bookkeeping), so a flood of
/// empty messages is bounded as well.
const INBOUND_MESSAGE_OVERHEAD: usize = 64;

/// Largest data-channel message a link takes (advertised as `a=max-message-size`; the engine
/// refuses larger ones). Every frame of the wire is at most a 16 KiB chunk plus its room token,
/// so 32 KiB leaves room to spare. It matters because webrtc-rs queues received messages by
/// count, not bytes (256 in the channel, up to 256 more on their way out of SCTP and as many
/// again retained by its driver): at the 256 KiB used before, a peer sending the largest
/// messages made one link hold about 150 MiB; at 32 KiB it is at most about 32 MiB, all told.
pub const MAX_MESSAGE_BYTES: usize = 32 << 10;

/// A message received on a link. It holds its share of the link's [`INBOUND_LINK_BYTES`] until
/// dropped: the node drops it once the message is handled.
pub struct Inbound {
    data: Bytes,
    _budget: OwnedSemaphorePermit,
}

impl Inbound {
    /// The message's bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }
}

impl std::ops::Deref for Inbound {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data
    }
}

/// One link's inbound budget: the pump takes from it before handing a message over.
#[derive(Clone)]
struct InboundBudget(Arc<Semaphore>);

impl InboundBudget {
    fn new() -> Self {
        InboundBudget(Arc::new(Semaphore::new(INBOUND_LINK_BYTES)))
    }

    /// Waits until the link has room for `data` and wraps it; None if the budget is closed.
    async fn admit(&self, data: Bytes) -> Option<Inbound> {
        // A message larger than the whole budget waits until the link has nothing pending.
        let cost = (data.len() + INBOUND_MESSAGE_OVERHEAD).min(INBOUND_LINK_BYTES);
        let permit = self
            .0
            .clone()
            .acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
            .await
            .ok()?;
        Some(Inbound {
            data,
            _budget: permit,
        })
    }
}

/// Shared handle to a peer connection.
pub type Connection = Arc<dyn PeerConnection>;
/// Shared handle to a data channel.
pub type Channel = Arc<dyn DataChannel>;

pub use crate::ids::ConnId;

/// What a connection reports.
pub enum TransportEvent {
    /// A local ICE candidate, as `RTCIceCandidateInit` JSON.
    Candidate(ConnId, String),
    /// The data channel opened, with the window its writer paces to.
    Open(ConnId, Channel, Arc<SendWindow>),
    /// A binary or text message arrived on the data channel (drop it once handled: it holds
    /// the link's inbound budget).
    Message(ConnId, Inbound),
    /// The connection failed, closed, or its channel closed.
    Closed(ConnId),
    /// Local tracks changed: the connection must be renegotiated.
    NegotiationNeeded(ConnId),
    /// The peer added a track.
    Track(ConnId, media::RemoteTrack),
    /// Every local candidate is gathered (the local description now lists them).
    GatheringComplete(ConnId),
}

/// Settings for new peer connections.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Address ICE binds to (one host candidate), or all interfaces.
    pub ice_addr: Option<IpAddr>,
    /// STUN/TURN servers, credentials and the candidate policy.
    pub ice: ice::IceSettings,
    /// Resolve remote `.local` candidates.
    pub resolve_mdns: bool,
    /// Repair lost media packets on this hop (NACK and retransmission).
    pub media_repair: bool,
}

/// Errors creating or negotiating a connection.
#[derive(Debug, thiserror::Error)]
#[error("webrtc: {0}")]
pub struct TransportError(String);

fn err(e: impl std::fmt::Display) -> TransportError {
    TransportError(e.to_string())
}

/// Creates peer connections and forwards their events.
#[derive(Debug, Clone)]
pub struct Transport {
    config: TransportConfig,
    events: mpsc::UnboundedSender<TransportEvent>,
    runtime: Arc<dyn Runtime>,
    /// For relay-only connections (see `SocketBufferRuntime::relayed`).
    relayed_runtime: Arc<dyn Runtime>,
}

struct Handler {
    id: ConnId,
    /// The engine's send-buffer limit on this connection.
    send_limit: usize,
    events: mpsc::UnboundedSender<TransportEvent>,
}

/// How often a connected link's ICE consent is checked (see `build`).
const ICE_CONSENT_EVERY: Duration = Duration::from_secs(4);

/// How long a connection's close waits for its channel's pump to pass on the last messages.
const CLOSE_AFTER_PUMP: Duration = Duration::from_millis(250);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(mut init) = event.candidate.to_json() {
            // webrtc-rs writes an empty mid, which browsers reject; the m-line index suffices
            // for our single bundled application section.
            init.sdp_mid = None;
            init.sdp_mline_index = Some(0);
            if let Ok(json) = serde_json::to_string(&init) {
                let _ = self.events.send(TransportEvent::Candidate(self.id, json));
            }
        }
    }

    async fn on_ice_gathering_state_change(
        &self,
        state: webrtc::peer_connection::RTCIceGatheringState,
    ) {
        if state == webrtc::peer_connection::RTCIceGatheringState::Complete {
            let _ = self.events.send(TransportEvent::GatheringComplete(self.id));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if matches!(
            state,
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
        ) {
            // An open channel's pump reports the close itself once it has passed on what the
            // channel still held (a peer's goodbye comes just before its close); this report,
            // for connections whose channel never opened, waits long enough not to overtake it.
            let (events, id) = (self.events.clone(), self.id);
            tokio::spawn(async move {
                tokio::time::sleep(CLOSE_AFTER_PUMP).await;
                let _ = events.send(TransportEvent::Closed(id));
            });
        }
    }

    async fn on_negotiation_needed(&self) {
        let _ = self.events.send(TransportEvent::NegotiationNeeded(self.id));
    }

    async fn on_track(&self, track: Arc<dyn webrtc::media_stream::track_remote::TrackRemote>) {
        let _ = self
            .events
            .send(TransportEvent::Track(self.id, media::RemoteTrack(track)));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        // on_data_channel fires when the channel is already open.
        spawn_pump(
            self.id,
            channel,
            SendWindow::new(self.send_limit),
            self.events.clone(),
            true,
        );
    }
}

/// Pumps a data channel's events into the node's channel, each link's messages within its
/// [`INBOUND_LINK_BYTES`].
fn spawn_pump(
    id: ConnId,
    channel: Channel,
    window: Arc<SendWindow>,
    events: mpsc::UnboundedSender<TransportEvent>,
    already_open: bool,
) {
    tokio::spawn(async move {
        let budget = InboundBudget::new();
        if already_open {
            let _ = events.send(TransportEvent::Open(id, channel.clone(), window.clone()));
        }
        while let Some(ev) = channel.poll().await {
            match ev {
                DataChannelEvent::OnOpen if !already_open => {
                    let _ = events.send(TransportEvent::Open(id, channel.clone(), window.clone()));
                }
                DataChannelEvent::OnBufferedAmountLow => window.drained(),
                DataChannelEvent::OnMessage(msg) => {
                    // Waiting here is the backpressure: the channel is not polled meanwhile, so
                    // the engine stops taking the peer's data (the send window's own wake-ups
                    // do not depend on this loop: its writer rechecks every few ms).
                    let Some(message) = budget.admit(msg.data.freeze()).await else {
                        break;
                    };
                    let _ = events.send(TransportEvent::Message(id, message));
                }
                DataChannelEvent::OnClose => break,
                _ => {}
            }
        }
        let _ = events.send(TransportEvent::Closed(id));
    });
}

impl Transport {
    /// A transport whose connections report to `events`.
    pub fn new(config: TransportConfig, events: mpsc::UnboundedSender<TransportEvent>) -> Self {
        Transport {
            config,
            events,
            runtime: SocketBufferRuntime::shared(),
            relayed_runtime: SocketBufferRuntime::relayed(),
        }
    }

    /// The ICE policy of a connection: relay-only when asked, else the configured one.
    fn policy(&self, relay_only: bool) -> ice::IcePolicy {
        if relay_only {
            ice::IcePolicy::Relay
        } else {
            self.config.ice.policy
        }
    }

    /// The engine's send-buffer limit on a connection with this policy.
    fn send_limit(policy: ice::IcePolicy) -> usize {
        match policy {
            ice::IcePolicy::All => SEND_BUFFER_LIMIT,
            ice::IcePolicy::Relay => RELAYED_SEND_BUFFER_LIMIT,
        }
    }

    /// A peer connection; `offerer` when this side makes the first offer.
    async fn build(
        &self,
        id: ConnId,
        offerer: bool,
        relay_only: bool,
    ) -> Result<Connection, TransportError> {
        let policy = self.policy(relay_only);
        let send_limit = Self::send_limit(policy);
        let runtime = match policy {
            ice::IcePolicy::All => self.runtime.clone(),
            ice::IcePolicy::Relay => self.relayed_runtime.clone(),
        };
        let mdns = if self.config.resolve_mdns {
            rtc::ice::mdns::MulticastDnsMode::QueryOnly
        } else {
            rtc::ice::mdns::MulticastDnsMode::Disabled
        };
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(mdns)
            .with_sctp_max_message_size(
                rtc::peer_connection::configuration::setting_engine::SctpMaxMessageSize::Bounded(
                    MAX_MESSAGE_BYTES as u32,
                ),
            )
            .with_sctp_max_receive_buffer_size(4 << 20)
            // ICE checks every 20 ms (default 200 ms) with the same 1.4 s budget. A link's
            // first checks, its nomination and each later step's first flight no longer wait
            // for this tick (vendor/webrtc and vendor/rtc-ice, PATCH.md); it paces the checks
            // that go unanswered, so a lost one is sent again soon.
            .with_ice_connection_attempts(Some(Duration::from_millis(20)), Some(70))
            // A browser's checks often arrive before its trickled candidate: the pair is then
            // peer-reflexive, which webrtc-rs would hold back for 1 s before nominating.
            .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
            .with_srflx_acceptance_min_wait(Some(Duration::from_millis(100)))
            // A relayed pair is held 2 s for a direct one to win (hole punching through NATs
            // takes a few round trips); when only relayed pairs are allowed there is nothing to
            // wait for.
            .with_relay_acceptance_min_wait(Some(match policy {
                ice::IcePolicy::Relay => Duration::ZERO,
                ice::IcePolicy::All => Duration::from_secs(2),
            }))
            // Consent checks every 4 s (RFC 7675 asks for 4-6 s; webrtc-rs sends every 2 s):
            // they are most of an idle link's wake-ups, and the node's own ping and dead-link
            // timer (`ping_after_ms`, `dead_after_ms`) decide when a quiet peer is gone.
            .with_ice_timeouts(
                Some(Duration::from_secs(5)),
                Some(Duration::from_secs(15)),
                Some(ICE_CONSENT_EVERY),
            )
            // Answers to media renegotiations must keep the DTLS role of the running transport.
            // webrtc-rs answers with this configured role, not the one in force; the first
            // offerer is the DTLS server (browsers and webrtc-rs answer `setup:active`), so a
            // wrong `active` in its later answers makes a browser refuse them.
            .with_answering_dtls_role(if offerer {
                rtc::peer_connection::transport::RTCDtlsRole::Server
            } else {
                rtc::peer_connection::transport::RTCDtlsRole::Client
            })
            .build();
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let servers = self
            .config
            .ice
            .engine_servers(now_unix)
            .into_iter()
            .map(|s| RTCIceServer {
                urls: s.urls,
                username: s.username,
                credential: s.credential.expose().to_owned(),
            })
            .collect();
        let policy = match policy {
            ice::IcePolicy::All => RTCIceTransportPolicy::All,
            ice::IcePolicy::Relay => RTCIceTransportPolicy::Relay,
        };
        let config = RTCConfigurationBuilder::new()
            .with_ice_servers(servers)
            .with_ice_transport_policy(policy)
            .build();
        let addr = SocketAddr::new(
            self.config
                .ice_addr
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            0,
        );
        let (engine, interceptors) = media::media_engine(self.config.media_repair)?;
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_media_engine(engine)
            .with_interceptor_registry(interceptors)
            .with_setting_engine(settings)
            .with_handler(Arc::new(Handler {
                id,
                send_limit,
                events: self.events.clone(),
            }))
            .with_runtime(runtime)
            .with_udp_addrs(vec![addr])
            .with_data_channel_send_buffer_limit(send_limit)
            .build()
            .await
            .map_err(err)?;
        Ok(Arc::new(pc))
    }

    /// Creates a connection as offerer: opens the `data` channel and returns the offer SDP.
    pub async fn offer(&self, id: ConnId) -> Result<(Connection, String), TransportError> {
        self.offer_with(id, false).await
    }

    /// `offer`, with only relayed candidates when `relay_only`.
    pub async fn offer_with(
        &self,
        id: ConnId,
        relay_only: bool,
    ) -> Result<(Connection, String), TransportError> {
        let pc = self.build(id, true, relay_only).await?;
        let result = async {
            let channel = pc
                .create_data_channel(DATA_CHANNEL_LABEL, None)
                .await
                .map_err(err)?;
            let window = SendWindow::new(Self::send_limit(self.policy(relay_only)));
            spawn_pump(id, channel, window, self.events.clone(), false);
            let offer = pc.create_offer(None).await.map_err(err)?;
            let sdp = offer.sdp.clone();
            pc.set_local_description(offer).await.map_err(err)?;
            Ok(sdp)
        }
        .await;
        match result {
            Ok(sdp) => Ok((pc, sdp)),
            Err(e) => {
                let _ = pc.close().await;
                Err(e)
            }
        }
    }

    /// The ICE settings connections are made with.
    pub fn ice(&self) -> &ice::IceSettings {
        &self.config.ice
    }

    /// Creates a connection for media only (no data channel) on which this side makes every
    /// offer: a browser page's leg to its daemon.
    pub async fn media_leg(&self, id: ConnId) -> Result<Connection, TransportError> {
        self.build(id, true, false).await
    }

    /// Creates a connection as answerer for `offer_sdp` and returns the answer SDP.
    pub async fn answer(
        &self,
        id: ConnId,
        offer_sdp: String,
    ) -> Result<(Connection, String), TransportError> {
        self.answer_with(id, offer_sdp, false).await
    }

    /// `answer`, with only relayed candidates when `relay_only`.
    pub async fn answer_with(
        &self,
        id: ConnId,
        offer_sdp: String,
        relay_only: bool,
    ) -> Result<(Connection, String), TransportError> {
        let pc = self.build(id, false, relay_only).await?;
        let result = async {
            let offer = RTCSessionDescription::offer(offer_sdp).map_err(err)?;
            pc.set_remote_description(offer).await.map_err(err)?;
            let answer = pc.create_answer(None).await.map_err(err)?;
            let sdp = answer.sdp.clone();
            pc.set_local_description(answer).await.map_err(err)?;
            Ok(sdp)
        }
        .await;
        match result {
            Ok(sdp) => Ok((pc, sdp)),
            Err(e) => {
                let _ = pc.close().await;
                Err(e)
            }
        }
    }
}

/// Applies the remote answer to an offerer's connection.
pub async fn apply_answer(pc: &Connection, sdp: String) -> Result<(), TransportError> {
    let answer = RTCSessionDescription::answer(sdp).map_err(err)?;
    pc.set_remote_description(answer).await.map_err(err)
}

/// Adds a remote candidate given as `RTCIceCandidateInit` JSON.
pub async fn add_candidate(pc: &Connection, json: &str) -> Result<(), TransportError> {
    let init: RTCIceCandidateInit = serde_json::from_str(json).map_err(err)?;
    pc.add_ice_candidate(init).await.map_err(err)
}

/// Writes frames to a data channel in order, waiting while its window is full; a frame in
/// `first` goes before any still waiting in `frames` (Trystero's frames are self-contained
/// chunks, so another message's chunk may come between two of a message's).
pub fn spawn_writer(
    channel: Channel,
    window: Arc<SendWindow>,
    mut frames: mpsc::Receiver<Bytes>,
    mut first: mpsc::Receiver<Bytes>,
) {
    tokio::spawn(async move {
        let threshold = u32::try_from(window.limit()).unwrap_or(u32::MAX);
        let _ = channel.set_buffered_amount_low_threshold(threshold).await;
        loop {
            let frame = tokio::select! {
                biased;
                Some(frame) = first.recv() => frame,
                frame = frames.recv() => match frame {
                    Some(frame) => frame,
                    None => break,
                },
            };
            if window.wait_for_room(&channel).await.is_err() {
                break;
            }
            // A frame nothing else holds becomes the engine's buffer without a copy.
            let frame = frame
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
            if channel.send(frame).await.is_err() {
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests;
