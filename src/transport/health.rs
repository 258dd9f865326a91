//! What a link knows about itself, layer by layer, and where its bytes wait: what a transfer
//! that stalls is diagnosed from (`meshrtc peers`, and the tests' failure reports).

use rtc::peer_connection::transport::{
    RTCDtlsTransportState, RTCIceTransportState, RTCSctpTransportState,
};
use webrtc::data_channel::RTCDataChannelState;
use webrtc::peer_connection::RTCStatsReport;

use super::{Channel, Connection, SendWindow};

/// One layer's state, on one scale for every layer (ICE, DTLS, SCTP, the data channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    /// The engine did not say.
    Unknown,
    /// Not started.
    New,
    /// Checking, handshaking or opening.
    Connecting,
    /// Up (ICE connected or completed, DTLS connected, SCTP connected, the channel open).
    Connected,
    /// ICE lost its path for now and may get it back.
    Disconnected,
    /// The data channel is closing.
    Closing,
    /// Closed.
    Closed,
    /// Failed for good.
    Failed,
}

impl LayerState {
    /// Its lowercase name, as the CLI prints it.
    pub fn name(self) -> &'static str {
        match self {
            LayerState::Unknown => "unknown",
            LayerState::New => "new",
            LayerState::Connecting => "connecting",
            LayerState::Connected => "connected",
            LayerState::Disconnected => "disconnected",
            LayerState::Closing => "closing",
            LayerState::Closed => "closed",
            LayerState::Failed => "failed",
        }
    }

    fn of_ice(s: RTCIceTransportState) -> Self {
        match s {
            RTCIceTransportState::New => LayerState::New,
            RTCIceTransportState::Checking => LayerState::Connecting,
            RTCIceTransportState::Connected | RTCIceTransportState::Completed => {
                LayerState::Connected
            }
            RTCIceTransportState::Disconnected => LayerState::Disconnected,
            RTCIceTransportState::Failed => LayerState::Failed,
            RTCIceTransportState::Closed => LayerState::Closed,
            _ => LayerState::Unknown,
        }
    }

    fn of_dtls(s: RTCDtlsTransportState) -> Self {
        match s {
            RTCDtlsTransportState::New => LayerState::New,
            RTCDtlsTransportState::Connecting => LayerState::Connecting,
            RTCDtlsTransportState::Connected => LayerState::Connected,
            RTCDtlsTransportState::Closed => LayerState::Closed,
            RTCDtlsTransportState::Failed => LayerState::Failed,
            _ => LayerState::Unknown,
        }
    }

    fn of_sctp(s: RTCSctpTransportState) -> Self {
        match s {
            RTCSctpTransportState::Connecting => LayerState::Connecting,
            RTCSctpTransportState::Connected => LayerState::Connected,
            RTCSctpTransportState::Closed => LayerState::Closed,
            _ => LayerState::Unknown,
        }
    }

    fn of_channel(s: RTCDataChannelState) -> Self {
        match s {
            RTCDataChannelState::Connecting => LayerState::Connecting,
            RTCDataChannelState::Open => LayerState::Connected,
            RTCDataChannelState::Closing => LayerState::Closing,
            RTCDataChannelState::Closed => LayerState::Closed,
            _ => LayerState::Unknown,
        }
    }
}

/// A link's layers and where its bytes wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkHealth {
    /// ICE (the path).
    pub ice: LayerState,
    /// DTLS (the encryption).
    pub dtls: LayerState,
    /// SCTP (the association the channel runs on).
    pub sctp: LayerState,
    /// The data channel.
    pub channel: LayerState,
    /// Bytes handed to SCTP and not yet acknowledged by the peer.
    pub buffered_bytes: u64,
    /// Bytes the link's writer lets wait in SCTP before it waits itself.
    pub window_bytes: u64,
    /// Frames queued for the writer, not yet handed to SCTP.
    pub queued_frames: u64,
    /// Messages sent on the data channel.
    pub messages_sent: u64,
    /// Messages received on the data channel.
    pub messages_received: u64,
    /// Payload bytes sent on the data channel.
    pub bytes_sent: u64,
    /// Payload bytes received on the data channel.
    pub bytes_received: u64,
}

/// Reads a link's health from its connection (and `report`, its statistics), its channel and
/// its writer's window and queue.
pub async fn link_health(
    pc: &Connection,
    report: &RTCStatsReport,
    channel: &Channel,
    window: &SendWindow,
    queued_frames: usize,
) -> LinkHealth {
    let transport = report.transport();
    let label = channel.label().await.unwrap_or_default();
    let dc = report.data_channels().find(|d| d.label == label);
    let sctp = match pc.sctp().await {
        Some(s) => s
            .state()
            .await
            .map_or(LayerState::Unknown, LayerState::of_sctp),
        None => LayerState::New,
    };
    LinkHealth {
        ice: transport.map_or(LayerState::Unknown, |t| LayerState::of_ice(t.ice_state)),
        dtls: transport.map_or(LayerState::Unknown, |t| LayerState::of_dtls(t.dtls_state)),
        sctp,
        channel: channel
            .ready_state()
            .await
            .map_or(LayerState::Unknown, LayerState::of_channel),
        buffered_bytes: channel.outstanding_bytes().await.unwrap_or(0) as u64,
        window_bytes: window.limit() as u64,
        queued_frames: queued_frames as u64,
        messages_sent: dc.map_or(0, |d| u64::from(d.messages_sent)),
        messages_received: dc.map_or(0, |d| u64::from(d.messages_received)),
        bytes_sent: dc.map_or(0, |d| d.bytes_sent),
        bytes_received: dc.map_or(0, |d| d.bytes_received),
    }
}
