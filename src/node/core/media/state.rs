//! The media feature's tables: local tracks, remote tracks, metadata waiting for its track,
//! and each link's negotiation.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::ids::ConnId;
use crate::node::core::events::SessionId;
use crate::node::core::{LinkKey, RoomKey};

/// Every track the node sends or receives.
#[derive(Default)]
pub(in crate::node::core) struct MediaState {
    pub local_tracks: BTreeMap<crate::ids::TrackId, LocalTrackEntry>,
    /// By (connection, track id).
    pub remote_tracks: BTreeMap<(ConnId, String), RemoteTrackEntry>,
    pub pending_meta: BTreeMap<LinkKey, Vec<PendingMeta>>,
    /// Streams already surfaced, by (connection, stream id).
    pub streams_seen: BTreeSet<(ConnId, String)>,
}

/// Perfect negotiation on one link, as Trystero does it.
#[derive(Debug, Default, Clone)]
pub(in crate::node::core) struct Negotiation {
    /// Our offer is being made.
    pub making_offer: bool,
    /// Our offer is out and unanswered.
    pub offer_out: bool,
    /// When our offer went out.
    pub offer_at: Option<std::time::Instant>,
    /// A polite side rolled its offer back: the one being made is not sent.
    pub superseded: bool,
    /// Tracks changed while a round was under way: negotiate again after it.
    pub again: bool,
    /// Local tracks on the link when our last offer was made.
    pub offered: BTreeSet<crate::ids::TrackId>,
    /// Local tracks whose `track_ready` this link's peer already produced: later rounds carry
    /// them again, and an app counting peers must hear of each once.
    pub ready: BTreeSet<crate::ids::TrackId>,
    /// Rounds in a row the engine refused (offer, answer or applying one); a round is retried
    /// until `MAX_NEGOTIATION_RETRIES`.
    pub failures: u32,
}

/// A track a local app sends into a room.
pub(in crate::node::core) struct LocalTrackEntry {
    pub session: SessionId,
    pub room: RoomKey,
    pub spec: crate::codec::TrackSpec,
    pub meta: Option<serde_json::Value>,
    /// Peers it goes to; empty for everyone in the room, newcomers included.
    pub targets: Vec<String>,
    /// The key its `@_track` and `@_stream` metadata carry.
    pub key: String,
    /// Links it is on.
    pub on: BTreeSet<ConnId>,
    /// What it may still send now (bytes), refilled at its bitrate limit.
    pub budget: crate::node::core::limits::ByteBudget,
    /// When its session was last told a peer wants a keyframe.
    pub keyframe_told: Option<Instant>,
}

/// A track a peer sends us.
pub(in crate::node::core) struct RemoteTrackEntry {
    pub peer: String,
    pub app: String,
    pub stream_id: String,
    pub codec: crate::codec::Codec,
    /// The room it was surfaced in, once its metadata arrived.
    pub room: Option<RoomKey>,
    /// The sender's metadata, once surfaced.
    pub meta: Option<serde_json::Value>,
}

/// Metadata that arrived before its track.
pub(in crate::node::core) struct PendingMeta {
    pub room: RoomKey,
    pub meta: crate::room::media::MediaMeta,
    /// `@_track` (else `@_stream`).
    pub track: bool,
}
