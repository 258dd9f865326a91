//! Conversions between proto messages and node types.

use serde_json::Value;

use crate::node::SurfacedTrack;
use crate::node::session::{EventKind, PeerType, SessionEvent};
use crate::node::{NodeError, StatusInfo};
use crate::proto;
use crate::wire::Payload;

/// Converts an API payload into a wire payload and its metadata.
pub fn payload_from_proto(
    p: Option<proto::Payload>,
) -> Result<(Payload, Option<Value>), NodeError> {
    let p = p.ok_or_else(|| NodeError::InvalidArgument("payload is required".into()))?;
    let meta = if p.meta_json.is_empty() {
        None
    } else {
        Some(
            serde_json::from_str(&p.meta_json)
                .map_err(|e| NodeError::InvalidArgument(format!("meta_json is not JSON: {e}")))?,
        )
    };
    let payload = match p.kind {
        Some(proto::payload::Kind::Text(t)) => Payload::Text(t),
        Some(proto::payload::Kind::Json(j)) => {
            Payload::Json(serde_json::from_str(&j).map_err(|e| {
                NodeError::InvalidArgument(format!("json payload is not JSON: {e}"))
            })?)
        }
        Some(proto::payload::Kind::Binary(b)) => Payload::Binary(b),
        None => {
            return Err(NodeError::InvalidArgument(
                "payload kind is required".into(),
            ));
        }
    };
    Ok((payload, meta))
}

/// Converts a wire payload and metadata into an API payload.
pub fn payload_to_proto(payload: Payload, meta: Option<Value>) -> proto::Payload {
    let kind = match payload {
        Payload::Text(t) => proto::payload::Kind::Text(t),
        Payload::Json(v) => proto::payload::Kind::Json(v.to_string()),
        Payload::Binary(b) => proto::payload::Kind::Binary(b),
    };
    proto::Payload {
        kind: Some(kind),
        meta_json: meta.map(|m| m.to_string()).unwrap_or_default(),
    }
}

/// One target's outcome of a request.
fn response_to_proto(
    request_id: u64,
    peer: String,
    outcome: crate::node::Outcome,
) -> proto::Response {
    use crate::node::Outcome;
    use proto::ResponseStatus as S;
    let mut r = proto::Response {
        request_id,
        peer,
        ..Default::default()
    };
    match outcome {
        Outcome::Fulfilled(p) => {
            r.status = S::Fulfilled as i32;
            r.payload = Some(payload_to_proto(p, None));
        }
        Outcome::Rejected(e) => {
            r.status = S::Rejected as i32;
            r.error = e;
        }
        Outcome::Timeout => r.status = S::Timeout as i32,
        Outcome::Disconnected => r.status = S::Disconnected as i32,
    }
    r
}

/// Converts a node error into an API error.
pub fn error_to_proto(e: &NodeError) -> proto::Error {
    proto::Error {
        code: e.code().to_owned(),
        message: e.to_string(),
    }
}

/// A peer's track as `track_add` and a page leg's slot describe it.
pub fn track_to_proto(t: SurfacedTrack) -> proto::MediaEvent {
    proto::MediaEvent {
        peer: t.peer,
        stream_id: t.stream_id,
        track_id: t.track_id,
        kind: t.codec.kind().name().to_owned(),
        codec: t.codec.mime().to_owned(),
        meta_json: t.meta.map(|m| m.to_string()).unwrap_or_default(),
        local_track: 0,
    }
}

/// A media event's proto form (the other kinds are not media).
fn media_event_to_proto(kind: EventKind) -> proto::event::Kind {
    use proto::event::Kind;
    match kind {
        EventKind::StreamAdd {
            peer,
            stream_id,
            meta,
        } => Kind::StreamAdd(proto::MediaEvent {
            peer: peer.into(),
            stream_id,
            meta_json: meta.map(|m| m.to_string()).unwrap_or_default(),
            ..Default::default()
        }),
        add @ EventKind::TrackAdd { .. } => match SurfacedTrack::from_event(add) {
            Some(track) => Kind::TrackAdd(track_to_proto(track)),
            None => Kind::TrackAdd(proto::MediaEvent::default()),
        },
        EventKind::TrackReady { track, peer } => Kind::TrackReady(proto::MediaEvent {
            peer: peer.into(),
            local_track: track.0,
            ..Default::default()
        }),
        EventKind::KeyframeWanted { track, peer } => Kind::KeyframeWanted(proto::MediaEvent {
            peer: peer.into(),
            local_track: track.0,
            ..Default::default()
        }),
        EventKind::TrackRemove { peer, track_id } => Kind::TrackRemove(proto::MediaEvent {
            peer: peer.into(),
            track_id,
            ..Default::default()
        }),
        _ => Kind::Lagged(proto::Lagged { dropped: 0 }),
    }
}

/// Converts a session event into a server message.
pub fn event_to_proto(ev: SessionEvent) -> proto::ServerMessage {
    use proto::event::Kind;
    let kind = match ev.kind {
        EventKind::PeerJoin(p, security, t) => Kind::PeerJoin(proto::PeerEvent {
            peer: p.into(),
            security: security.as_str().to_owned(),
            r#type: peer_type(t).into(),
            ..Default::default()
        }),
        EventKind::PeerLeave(p, r) => Kind::PeerLeave(proto::PeerEvent {
            peer: p.into(),
            reason: r.as_str().to_owned(),
            ..Default::default()
        }),
        EventKind::PeerSeen(p, t) => Kind::PeerSeen(proto::PeerEvent {
            peer: p.into(),
            r#type: peer_type(t).into(),
            ..Default::default()
        }),
        EventKind::MeshPeerState {
            peer,
            linked,
            cell,
            bridge,
        } => Kind::MeshPeerState(proto::MeshPeerState {
            peer: peer.into(),
            linked,
            cell,
            bridge,
        }),
        EventKind::Message {
            channel,
            from,
            local,
            payload,
            meta,
            cursor,
            history,
            verified,
        } => Kind::Message(proto::Message {
            channel,
            from: from.into(),
            local,
            payload: Some(payload_to_proto(payload, meta)),
            cursor: cursor.micros(),
            history,
            verified,
        }),
        EventKind::Progress {
            channel,
            from,
            fraction,
            meta,
        } => Kind::Progress(proto::Progress {
            channel,
            from: from.into(),
            fraction,
            meta_json: meta.map(|m| m.to_string()).unwrap_or_default(),
        }),
        EventKind::Error {
            code,
            message,
            peer,
        } => Kind::RoomError(proto::RoomError {
            code,
            message,
            peer: peer.into(),
        }),
        EventKind::Request {
            id,
            channel,
            from,
            payload,
            meta,
        } => Kind::Request(proto::IncomingRequest {
            id,
            channel,
            from: from.into(),
            payload: Some(payload_to_proto(payload, meta)),
        }),
        EventKind::Response {
            request,
            peer,
            outcome,
        } => Kind::Response(response_to_proto(request, peer.into(), outcome)),
        EventKind::Undelivered {
            peer,
            channel,
            messages,
            bytes,
        } => Kind::Undelivered(proto::Undelivered {
            peer: peer.into(),
            channel,
            messages,
            bytes,
        }),
        EventKind::Lagged(n) => Kind::Lagged(proto::Lagged { dropped: n }),
        EventKind::MeshState(c) => Kind::MeshState(cell_status(c)),
        media @ (EventKind::StreamAdd { .. }
        | EventKind::TrackAdd { .. }
        | EventKind::TrackReady { .. }
        | EventKind::KeyframeWanted { .. }
        | EventKind::TrackRemove { .. }) => media_event_to_proto(media),
    };
    proto::ServerMessage {
        body: Some(proto::server_message::Body::Event(proto::Event {
            room: ev.room,
            app: ev.app,
            room_id: ev.room_id,
            kind: Some(kind),
        })),
    }
}

/// Converts a relay into its API form.
pub fn relay_to_proto(r: crate::signal::driver::RelayState) -> proto::RelayInfo {
    let rules = r.rules.unwrap_or_default();
    proto::RelayInfo {
        access: match r.read_only {
            Some(why) => format!("read-only: {}", why.name()),
            None => "read-write".to_owned(),
        },
        events_too_large: r.events_too_large,
        topics_left_out: r.topics_left_out.try_into().unwrap_or(u32::MAX),
        max_subscriptions: rules.max_subscriptions.unwrap_or(0),
        max_filters: rules.max_filters.unwrap_or(0),
        max_message_length: rules.max_message_length.unwrap_or(0),
        auth_required: rules.auth_required,
        url: r.url,
        state: r.state.name().to_owned(),
        latency_ms: r.latency_ms.unwrap_or(0),
        score: r.score,
        events_in: r.events_in,
        events_out: r.events_out,
        events_rejected: r.events_rejected,
        last_error: r.last_error.unwrap_or_default(),
        last_error_at_ms: r.last_error_at.unwrap_or(0),
    }
}

/// Converts a peer into its API form.
pub fn peer_to_proto(p: crate::node::PeerInfo) -> proto::PeerInfo {
    proto::PeerInfo {
        id: p.id.into(),
        rtt_ms: p.rtt_ms,
        connected_ms: p.connected_ms,
        security: p.security.as_str().to_owned(),
        keeps: p.keeps,
        health: p.health.map(health_to_proto),
        path: p.path.map(|path| {
            let end = |e: crate::transport::path::PathEnd| proto::Candidate {
                r#type: e.kind.name().to_owned(),
                protocol: e.protocol,
                address: e.address,
            };
            proto::LinkPath {
                local: Some(end(path.local)),
                remote: Some(end(path.remote)),
                rtt_ms: path.rtt_ms,
                bytes_sent: path.bytes_sent,
                bytes_received: path.bytes_received,
            }
        }),
    }
}

/// Converts a link's health into its API form.
fn health_to_proto(h: crate::transport::health::LinkHealth) -> proto::LinkHealth {
    use crate::transport::health::LayerState as L;
    let state = |s: L| -> i32 {
        (match s {
            L::Unknown => proto::LayerState::Unknown,
            L::New => proto::LayerState::New,
            L::Connecting => proto::LayerState::Connecting,
            L::Connected => proto::LayerState::Connected,
            L::Disconnected => proto::LayerState::Disconnected,
            L::Closing => proto::LayerState::Closing,
            L::Closed => proto::LayerState::Closed,
            L::Failed => proto::LayerState::Failed,
        }) as i32
    };
    proto::LinkHealth {
        ice: state(h.ice),
        dtls: state(h.dtls),
        sctp: state(h.sctp),
        channel: state(h.channel),
        buffered_bytes: h.buffered_bytes,
        window_bytes: h.window_bytes,
        queued_frames: h.queued_frames,
        messages_sent: h.messages_sent,
        messages_received: h.messages_received,
        bytes_sent: h.bytes_sent,
        bytes_received: h.bytes_received,
    }
}

/// Converts the node status into its API form.
pub fn status_to_proto(s: StatusInfo) -> proto::StatusReply {
    proto::StatusReply {
        peer_id: s.peer_id,
        relays: s.relays.into_iter().map(relay_to_proto).collect(),
        rooms: s
            .rooms
            .into_iter()
            .map(|r| proto::RoomInfo {
                app: r.app,
                room: r.room,
                peers: r.peers,
                sessions: r.sessions,
                password: r.password,
                e2e_peers: r.e2e_peers,
                require_e2e: r.require_e2e,
                cells: r.cells.map(cell_status),
            })
            .collect(),
        drops: s
            .drops
            .into_iter()
            .map(|(k, v)| (k.name().to_owned(), v))
            .collect(),
        uptime_ms: s.uptime_ms,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        sessions: s.sessions,
        links: s.links,
        pending_dials: s.pending_dials,
        turn: s
            .turn
            .into_iter()
            .map(|t| {
                use crate::transport::turn_probe::TurnState;
                let (relay_address, error) = match &t.state {
                    TurnState::Allocated(a) => (a.to_string(), String::new()),
                    TurnState::AuthFailed(e) | TurnState::Failed(e) => (String::new(), e.clone()),
                    TurnState::Unreachable => (String::new(), "no answer".into()),
                    TurnState::Unknown => (String::new(), String::new()),
                };
                proto::TurnServerInfo {
                    url: t.url,
                    state: t.state.name().to_owned(),
                    relay_address,
                    error,
                    checked_ms_ago: t.checked.map_or(0, |c| c.elapsed().as_millis() as u64),
                }
            })
            .collect(),
        links_relayed: s.links_relayed,
    }
}

fn peer_type(t: PeerType) -> proto::PeerType {
    match t {
        PeerType::Unknown => proto::PeerType::Unspecified,
        PeerType::Member => proto::PeerType::Member,
        PeerType::Keeper => proto::PeerType::Keeper,
    }
}

fn cell_status(c: crate::node::cells::CellInfo) -> proto::CellStatus {
    proto::CellStatus {
        members: c.members,
        cell: c.cell,
        cell_count: c.cell_count,
        links_wanted: c.links_wanted,
        bridges: c.bridges,
        ttl: c.ttl,
        records: c.records,
        epoch: c.epoch,
        bridge: c.bridge,
        cell_size: c.cell_size,
    }
}

/// The overlay a join asks for: none (full mesh), or cells sized by count or link budget.
pub fn cells_from_proto(c: Option<proto::Cells>) -> Option<crate::mesh::CellSize> {
    let c = c.filter(|c| c.enabled)?;
    Some(match (c.cell_size, c.link_budget) {
        (0, 0) => crate::mesh::CellSize::default(),
        (0, budget) => crate::mesh::CellSize::Auto {
            link_budget: budget as usize,
        },
        (size, _) => crate::mesh::CellSize::Fixed(size as usize),
    })
}

/// A join's keep rules; a rule with neither limit, or with an empty channel, is refused.
pub fn keep_from_proto(
    keep: &[proto::Keep],
) -> Result<Vec<(String, crate::history::KeepRule)>, NodeError> {
    keep.iter()
        .map(|k| {
            let rule = crate::history::KeepRule {
                max_messages: (k.max_messages > 0).then_some(k.max_messages),
                max_age: (k.max_age_seconds > 0)
                    .then(|| std::time::Duration::from_secs(k.max_age_seconds)),
            };
            if k.channel.is_empty() || rule == crate::history::KeepRule::default() {
                return Err(NodeError::InvalidArgument(format!(
                    "keep {:?}: name a channel and a message count or an age",
                    k.channel
                )));
            }
            Ok((k.channel.clone(), rule))
        })
        .collect()
}

/// Where a replay starts, if the app asked for one.
pub fn since_from_proto(since: Option<proto::Since>) -> Option<crate::node::Since> {
    use proto::since::From;
    Some(match since?.from? {
        From::Cursor(c) => crate::node::Since::Cursor(crate::history::Cursor(c)),
        From::All(true) => crate::node::Since::All,
        From::All(false) => return None,
        From::AgeSeconds(s) => crate::node::Since::Age(std::time::Duration::from_secs(s)),
    })
}

/// Optional JSON metadata given as text ("" for none).
pub(crate) fn meta_from_json(
    text: &str,
) -> Result<Option<serde_json::Value>, crate::node::NodeError> {
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| crate::node::NodeError::InvalidArgument(format!("meta_json is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        for (payload, meta) in [
            (Payload::Text("hi".into()), None),
            (Payload::Json(serde_json::json!({"a": 1})), None),
            (
                Payload::Binary(bytes::Bytes::from(vec![1, 2])),
                Some(serde_json::json!({"name": "f"})),
            ),
        ] {
            let p = payload_to_proto(payload.clone(), meta.clone());
            let (back, back_meta) = payload_from_proto(Some(p)).expect("converts");
            assert_eq!((back, back_meta), (payload, meta));
        }
    }

    #[test]
    fn bad_payloads_are_clear_errors() {
        let bad = proto::Payload {
            kind: Some(proto::payload::Kind::Json("{".into())),
            meta_json: String::new(),
        };
        assert_eq!(
            payload_from_proto(Some(bad))
                .map(|_| ())
                .map_err(|e| e.code()),
            Err("invalid_argument")
        );
        assert!(payload_from_proto(None).is_err());
        let bad_meta = proto::Payload {
            kind: Some(proto::payload::Kind::Text("x".into())),
            meta_json: "nope".into(),
        };
        assert!(payload_from_proto(Some(bad_meta)).is_err());
    }
}
