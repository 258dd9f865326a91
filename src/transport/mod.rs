//! WebRTC transport (webrtc 0.21): peer connections with one in-band `data` channel.
//!
//! This module only creates connections and pumps their events into a channel; the node
//! decides what they mean.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};
use webrtc::runtime::Runtime;

mod coalesce;
pub mod health;
pub mod ice;
mod keyframe_requests;
pub mod media;
pub mod path;
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
/// The same when every path goes through a TURN server: a TURN server's sockets (coturn keeps
/// the kernel's default buffers) drop bursts of 256 KiB, and the SCTP association stalls on the
/// losses for longer than a link may stay silent.
const RELAYED_SEND_BUFFER_LIMIT: usize = 64 << 10;

/// Shared handle to a peer connection.
pub type Connection = Arc<dyn PeerConnection>;
/// Shared handle to a data channel.
pub type Channel = Arc<dyn DataChannel>;

/// Identifies one connection attempt; events carry it so stale connections are ignored.
pub type ConnId = u64;

/// What a connection reports.
pub enum TransportEvent {
    /// A local ICE candidate, as `RTCIceCandidateInit` JSON.
    Candidate(ConnId, String),
    /// The data channel opened, with the window its writer paces to.
    Open(ConnId, Channel, Arc<SendWindow>),
    /// A binary or text message arrived on the data channel.
    Message(ConnId, Bytes),
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
    pc: Arc<std::sync::OnceLock<std::sync::Weak<dyn PeerConnection>>>,
}

/// How long after ICE connects the driver is nudged, and how often.
const KICK_WINDOW: Duration = Duration::from_millis(1_500);
const KICK_EVERY: Duration = Duration::from_millis(10);

/// Nudges a connection's driver while DTLS, SCTP and the data channel come up.
///
/// webrtc-rs 0.21's driver does not always wake after an inbound packet makes the state
/// machine queue outbound ones (the SCTP INIT after DTLS, the DCEP OPEN after SCTP): they wait
/// for the next timer, up to 200 ms each. Any API call that reaches the driver flushes them;
/// re-applying the unchanged configuration is one (it only stores the ICE servers for the next
/// gathering). This takes the daemon-to-daemon join from about 590 ms to about 150 ms.
fn spawn_kicker(pc: std::sync::Weak<dyn PeerConnection>) {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        while start.elapsed() < KICK_WINDOW {
            let Some(pc) = pc.upgrade() else { return };
            let config = pc.get_configuration().await;
            if pc.set_configuration(config).await.is_err() {
                return;
            }
            drop(pc);
            tokio::time::sleep(KICK_EVERY).await;
        }
    });
}

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

    async fn on_ice_connection_state_change(
        &self,
        state: webrtc::peer_connection::RTCIceConnectionState,
    ) {
        if state == webrtc::peer_connection::RTCIceConnectionState::Connected
            && let Some(pc) = self.pc.get()
        {
            spawn_kicker(pc.clone());
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
            let _ = self.events.send(TransportEvent::Closed(self.id));
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

/// Pumps a data channel's events into the node's channel.
fn spawn_pump(
    id: ConnId,
    channel: Channel,
    window: Arc<SendWindow>,
    events: mpsc::UnboundedSender<TransportEvent>,
    already_open: bool,
) {
    tokio::spawn(async move {
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
                    let _ = events.send(TransportEvent::Message(id, msg.data.freeze()));
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
                    256 * 1024,
                ),
            )
            .with_sctp_max_receive_buffer_size(4 << 20)
            // ICE checks every 20 ms (default 200 ms) with the same 1.4 s budget. webrtc 0.21's
            // driver flushes writes before it handles events, so the first flight of each step
            // (DTLS after ICE, SCTP after DTLS, the channel's open) sits queued until the next
            // timer, and while a link comes up that timer is this tick. Measured on loopback
            // (join + send from the CLI, with TCP_NODELAY in the relay): 50 ms ticks 128 ms,
            // 20 ms 54-77 ms, 5 ms 41 ms; but idle CPU with 50 links grew as the tick shrank
            // (1.3-1.8 % at 50 ms, 1.7-2.2 % at 20 ms, 2.8-5.1 % at 5 ms), so 20 ms.
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
            .with_ice_timeouts(
                Some(Duration::from_secs(5)),
                Some(Duration::from_secs(15)),
                Some(Duration::from_secs(2)),
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
        let slot: Arc<std::sync::OnceLock<std::sync::Weak<dyn PeerConnection>>> = Arc::default();
        let (engine, interceptors) = media::media_engine()?;
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_media_engine(engine)
            .with_interceptor_registry(interceptors)
            .with_setting_engine(settings)
            .with_handler(Arc::new(Handler {
                id,
                send_limit,
                events: self.events.clone(),
                pc: slot.clone(),
            }))
            .with_runtime(runtime)
            .with_udp_addrs(vec![addr])
            .with_data_channel_send_buffer_limit(send_limit)
            .build()
            .await
            .map_err(err)?;
        let pc: Connection = Arc::new(pc);
        let _ = slot.set(Arc::downgrade(&pc));
        Ok(pc)
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

/// Writes frames to a data channel in order, waiting while its window is full.
pub fn spawn_writer(channel: Channel, window: Arc<SendWindow>, mut frames: mpsc::Receiver<Bytes>) {
    tokio::spawn(async move {
        let threshold = u32::try_from(window.limit()).unwrap_or(u32::MAX);
        let _ = channel.set_buffered_amount_low_threshold(threshold).await;
        while let Some(frame) = frames.recv().await {
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
