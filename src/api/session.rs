//! One API session, shared by gRPC and the WebSocket bridge: requests in, replies and events out.

use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;

use super::convert::{
    error_to_proto, event_to_proto, meta_from_json, payload_from_proto, peer_to_proto,
    status_to_proto,
};
use super::leg::{Leg, LegCommand};
use crate::drops::DropReason;
use crate::ids::TrackId;
use crate::node::Node;
use crate::node::TrackRequest;
use crate::node::session::{EventKind, SessionId};
use crate::proto::{self, client_message::Body};
use crate::transport::media::{Codec, TrackSpec};

/// Why a request could not be read from a session's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The bytes were not a client message: answered with `invalid_request` and counted as
    /// `api_bad_request`; the session goes on.
    Malformed(String),
    /// The client's stream broke (it exited, or its connection dropped): the session ends.
    /// Not bad input, so not counted.
    Closed,
}

/// A local track an app asks for, checked.
fn track_request_from_proto(
    t: proto::AddTrackRequest,
) -> Result<TrackRequest, crate::node::NodeError> {
    let codec = Codec::from_mime(&t.codec).ok_or_else(|| {
        crate::node::NodeError::InvalidArgument(format!(
            "codec {:?} is not one of video/VP8, video/VP9, video/H264, video/AV1, audio/opus",
            t.codec
        ))
    })?;
    Ok(TrackRequest {
        spec: TrackSpec {
            codec,
            stream_id: t.stream_id,
            track_id: t.track_id,
        },
        meta: meta_from_json(&t.meta_json)?,
        targets: t.targets,
        max_kbps: t.max_kbps,
    })
}

/// Hands a media-leg request to the session's leg (started on first use); the leg replies.
fn to_leg(
    node: &Arc<Node>,
    session: SessionId,
    leg: &OnceLock<Leg>,
    out: &mpsc::Sender<proto::ServerMessage>,
    request_id: u64,
    body: Body,
) -> Option<Body> {
    let command = match body {
        Body::LegPublish(p) => LegCommand::Publish(request_id, p),
        Body::LegSubscribe(s) => LegCommand::Subscribe(request_id, s.room),
        Body::LegAnswer(a) => LegCommand::Answer(request_id, a),
        other => return Some(other),
    };
    leg.get_or_init(|| Leg::start(node.clone(), session, out.clone()))
        .send(command);
    None
}

/// What a session may ask about beyond its own rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The whole node (status, any room's peers): the owner's socket and token holders.
    Node,
    /// Only the rooms it joined: pages (of any allowed origin) without the token.
    OwnRooms,
}

/// Handles one client message and returns the reply.
pub async fn handle(
    node: &Node,
    session: SessionId,
    reach: Reach,
    msg: proto::ClientMessage,
) -> proto::ServerMessage {
    let whole_node = || match reach {
        Reach::Node => Ok(()),
        Reach::OwnRooms => Err(crate::node::NodeError::Forbidden(
            "only token holders may ask about the whole node (connect with the API token)".into(),
        )),
    };
    let mut reply = proto::Reply {
        request_id: msg.request_id,
        ..Default::default()
    };
    let result = match msg.body {
        Some(Body::Join(j)) => match crate::api::convert::keep_from_proto(&j.keep) {
            Ok(keep) => node
                .join(
                    session,
                    &j.app,
                    &j.room,
                    &crate::node::JoinOptions {
                        password: j.password,
                        channels: j.channels,
                        require_e2e: j.require_e2e,
                        cells: crate::api::convert::cells_from_proto(j.cells),
                        keep,
                        since: crate::api::convert::since_from_proto(j.since),
                        verified_only: j.verified_only,
                        serve: j.serve,
                    },
                )
                .await
                .map(|h| {
                    reply.room = h;
                    reply.self_id = node.peer_id().to_owned();
                }),
            Err(e) => Err(e),
        },
        Some(Body::Leave(l)) => node.leave(session, l.room),
        Some(Body::Subscribe(s)) => node.subscribe(
            session,
            s.room,
            &s.channels,
            crate::api::convert::since_from_proto(s.since),
        ),
        Some(Body::Send(s)) => match payload_from_proto(s.payload) {
            Ok((payload, meta)) => node
                .send(session, s.room, &s.channel, payload, meta, &s.targets)
                .await
                .map(|to| reply.delivered_to = to),
            Err(e) => Err(e),
        },
        Some(Body::Request(r)) => match payload_from_proto(r.payload) {
            Ok((payload, meta)) => node
                .request(
                    session,
                    r.room,
                    crate::node::RequestSpec {
                        app_request: msg.request_id,
                        channel: r.channel,
                        payload,
                        meta,
                        targets: r.targets,
                        timeout_ms: r.timeout_ms,
                    },
                )
                .await
                .map(|to| reply.delivered_to = to),
            Err(e) => Err(e),
        },
        Some(Body::Respond(r)) => {
            let result = match r.result {
                Some(proto::respond_request::Result::Reply(p)) => {
                    payload_from_proto(Some(p)).map(|(payload, _)| Ok(payload))
                }
                Some(proto::respond_request::Result::Error(e)) => Ok(Err(e)),
                None => Err(crate::node::NodeError::InvalidArgument(
                    "respond needs a reply or an error".into(),
                )),
            };
            result.and_then(|result| node.respond(session, r.room, r.id, result))
        }
        Some(Body::Serve(s)) => node.serve(session, s.room, &s.channels),
        Some(Body::Ping(p)) => match node.room_of(session, p.room) {
            Ok((app, room)) => node
                .ping(&app, &room, &p.peer)
                .await
                .map(|rtt| reply.rtt_ms = rtt.as_secs_f64() * 1000.0),
            Err(e) => Err(e),
        },
        Some(Body::Peers(p)) => match node.room_of(session, p.room) {
            Ok((app, room)) => node
                .peers(&app, &room)
                .await
                .map(|peers| reply.peers = peers.into_iter().map(peer_to_proto).collect()),
            Err(e) => Err(e),
        },
        Some(Body::AddTrack(t)) => {
            let room = t.room;
            track_request_from_proto(t)
                .and_then(|request| node.add_track(session, room, request))
                .map(|id| reply.track = id.0)
        }
        Some(Body::RemoveTrack(t)) => node.remove_track(session, TrackId(t.track)),
        Some(Body::Status(_)) => match whole_node() {
            Ok(()) => {
                reply.status = Some(status_to_proto(node.status().await));
                Ok(())
            }
            Err(e) => Err(e),
        },
        Some(Body::NodePeers(p)) => match whole_node() {
            Ok(()) => node
                .peers(&p.app, &p.room)
                .await
                .map(|peers| reply.peers = peers.into_iter().map(peer_to_proto).collect()),
            Err(e) => Err(e),
        },
        Some(Body::ReplaceTrack(t)) => meta_from_json(&t.meta_json)
            .and_then(|meta| node.replace_track(session, TrackId(t.track), meta)),
        Some(Body::LegPublish(_) | Body::LegSubscribe(_) | Body::LegAnswer(_)) => Err(
            crate::node::NodeError::InvalidArgument("media leg requests need a session".into()),
        ),
        Some(Body::Keyframe(k)) => {
            node.request_keyframe(session, k.room, &k.peer, &k.track_id)
                .await
        }
        None => Err(crate::node::NodeError::InvalidArgument(
            "empty request".into(),
        )),
    };
    if let Err(e) = result {
        if matches!(e, crate::node::NodeError::InvalidArgument(_)) {
            node.count_drop(DropReason::ApiBadRequest);
        }
        reply.error = Some(error_to_proto(&e));
    }
    proto::ServerMessage {
        body: Some(proto::server_message::Body::Reply(reply)),
    }
}

/// Runs a session until the client's request stream ends; every output goes to `out`.
///
/// `requests` yields decoded client messages; a decode failure is reported as an error reply.
pub async fn run<S>(
    node: Arc<Node>,
    mut requests: S,
    out: mpsc::Sender<proto::ServerMessage>,
    reach: Reach,
) where
    S: futures::Stream<Item = Result<proto::ClientMessage, RequestError>> + Unpin,
{
    use futures::StreamExt as _;
    let (session, queue) = node.open_session();
    let hello = proto::Hello {
        self_id: node.peer_id().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let hello = proto::ServerMessage {
        body: Some(proto::server_message::Body::Hello(hello)),
    };
    if out.send(hello).await.is_err() {
        node.close_session(session);
        return;
    }
    let events_out = out.clone();
    let leg: Arc<OnceLock<Leg>> = Arc::default();
    let leg_events = leg.clone();
    let forward = tokio::spawn(async move {
        while let Some(ev) = queue.next().await {
            if let Some(leg) = leg_events.get()
                && matches!(
                    ev.kind,
                    EventKind::TrackAdd { .. }
                        | EventKind::TrackRemove { .. }
                        | EventKind::TrackReady { .. }
                        | EventKind::KeyframeWanted { .. }
                )
            {
                leg.send(LegCommand::Event(ev.clone()));
            }
            if events_out.send(event_to_proto(ev)).await.is_err() {
                break;
            }
        }
    });
    while let Some(item) = requests.next().await {
        let reply = match item {
            Ok(mut msg) => {
                if let Some(body) = msg.body.take() {
                    match to_leg(&node, session, &leg, &out, msg.request_id, body) {
                        None => continue,
                        Some(body) => msg.body = Some(body),
                    }
                }
                handle(&node, session, reach, msg).await
            }
            Err(RequestError::Closed) => break,
            Err(RequestError::Malformed(e)) => {
                node.count_drop(DropReason::ApiBadRequest);
                proto::ServerMessage {
                    body: Some(proto::server_message::Body::Reply(proto::Reply {
                        error: Some(proto::Error {
                            code: "invalid_request".into(),
                            message: e,
                        }),
                        ..Default::default()
                    })),
                }
            }
        };
        if out.send(reply).await.is_err() {
            break;
        }
    }
    node.close_session(session);
    forward.abort();
}
