//! What a link is like (pure), as `peers` reports it: the network path it took and the state
//! of each of its layers, with where its bytes wait. The transport fills these in from the
//! engine (`transport::path`, `transport::health`).

/// How a candidate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateKind {
    /// An address of a local interface.
    Host,
    /// The address a STUN server saw (behind a NAT).
    Srflx,
    /// An address learnt from the peer's checks.
    Prflx,
    /// An address on a TURN server.
    Relay,
}

impl CandidateKind {
    /// The name ICE uses.
    pub fn name(self) -> &'static str {
        match self {
            CandidateKind::Host => "host",
            CandidateKind::Srflx => "srflx",
            CandidateKind::Prflx => "prflx",
            CandidateKind::Relay => "relay",
        }
    }

    /// The kind ICE's name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "host" => Some(CandidateKind::Host),
            "srflx" => Some(CandidateKind::Srflx),
            "prflx" => Some(CandidateKind::Prflx),
            "relay" => Some(CandidateKind::Relay),
            _ => None,
        }
    }
}

/// One end of the selected pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathEnd {
    /// How the candidate was found.
    pub kind: CandidateKind,
    /// "udp" or "tcp".
    pub protocol: String,
    /// Its address and port.
    pub address: String,
}

/// The path a link took.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkPath {
    /// This side's candidate.
    pub local: PathEnd,
    /// The peer's candidate.
    pub remote: PathEnd,
    /// The pair's current round trip in ms (ICE consent checks), 0 if none yet.
    pub rtt_ms: f64,
    /// Bytes sent over the pair.
    pub bytes_sent: u64,
    /// Bytes received over the pair.
    pub bytes_received: u64,
}

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
