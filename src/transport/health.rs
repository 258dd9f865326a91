//! What a link knows about itself, layer by layer, and where its bytes wait: what a transfer
//! that stalls is diagnosed from (`meshrtc peers`, and the tests' failure reports).

use rtc::peer_connection::transport::{
    RTCDtlsTransportState, RTCIceTransportState, RTCSctpTransportState,
};
use webrtc::data_channel::RTCDataChannelState;
use webrtc::peer_connection::RTCStatsReport;

use super::{Channel, Connection, SendWindow};

pub use crate::link::{LayerState, LinkHealth};

impl LayerState {
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
