//! The WebSocket bridge (axum): the Session messages as proto3 JSON, plus the JS client and demo page.
//!
//! Pages may connect only from allowed origins (and the daemon's own), and without the API token
//! only when the kernel says the connection is the daemon's own account's ([`super::caller`]);
//! clients without an `Origin` (scripts) must present the token.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt as _, StreamExt as _};
use prost::Message as _;
use serde::Deserialize;

use super::caller::{Admission, Caller};
use crate::drops::DropReason;
use crate::node::Node;
use crate::proto;

/// Largest WebSocket message accepted (a 64 MiB payload as base64 JSON).
const MAX_WS_MESSAGE: usize = 96 << 20;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const CLIENT_JS: &str = include_str!("../../clients/js/meshrtc.js");
const CLIENT_DTS: &str = include_str!("../../clients/js/meshrtc.d.ts");

#[derive(Clone)]
struct BridgeState {
    node: Arc<Node>,
    token: Arc<str>,
    /// Reads `/metrics` and nothing else.
    metrics_token: Arc<str>,
    /// The counters the node's core reports to, rendered at `/metrics`.
    traffic: crate::metrics::Traffic,
    /// Origins whose pages may connect: the allowed ones and the daemon's own.
    origins: Arc<HashSet<String>>,
    /// The address the bridge listens on (the server end of every connection).
    local: SocketAddr,
}

#[derive(Debug, Deserialize)]
struct WsQuery {
    token: Option<String>,
}

/// The origins a page served by the daemon itself has.
fn own_origins(addr: SocketAddr) -> Vec<String> {
    let mut out = vec![format!("http://{addr}")];
    if addr.ip().is_loopback() {
        out.push(format!("http://localhost:{}", addr.port()));
    }
    out
}

/// Binds the bridge; it must be a loopback address.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    if !addr.ip().is_loopback() {
        anyhow::bail!("--ws must be a loopback address, got {addr}");
    }
    Ok(tokio::net::TcpListener::bind(addr).await?)
}

/// Serves the bridge on a bound listener; `metrics_token` reads `/metrics` only.
pub async fn serve(
    node: Arc<Node>,
    token: Arc<str>,
    metrics_token: Arc<str>,
    allow_origins: &[String],
    listener: tokio::net::TcpListener,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let mut origins: HashSet<String> = allow_origins
        .iter()
        .map(|o| o.trim_end_matches('/').to_owned())
        .collect();
    origins.extend(own_origins(addr));
    let traffic = crate::metrics::Traffic::default();
    node.observe(Box::new(traffic.clone()));
    let state = BridgeState {
        node,
        token,
        metrics_token,
        traffic,
        origins: Arc::new(origins),
        local: addr,
    };
    let app = axum::Router::new()
        .route("/ws", get(upgrade))
        .route(
            "/",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    INDEX_HTML,
                )
            }),
        )
        .route(
            "/meshrtc.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    CLIENT_JS,
                )
            }),
        )
        .route("/metrics", get(metrics))
        .route(
            "/meshrtc.d.ts",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    CLIENT_DTS,
                )
            }),
        )
        .with_state(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Whose connection this is: the kernel's socket table, read off the runtime's threads (it is a
/// file read that grows with the machine's sockets).
async fn caller_of(state: &BridgeState, peer: SocketAddr) -> Caller {
    let local = state.local;
    tokio::task::spawn_blocking(move || Caller::of_connection(local, peer))
        .await
        .unwrap_or(Caller::Unknown)
}

/// Prometheus metrics, for whoever holds the metrics token or the API token (a bearer header).
async fn metrics(State(state): State<BridgeState>, headers: HeaderMap) -> Response {
    let allowed = bearer(&headers).is_some_and(|t| {
        super::token::matches(&state.metrics_token, t) || super::token::matches(&state.token, t)
    });
    if !allowed {
        state.node.count_drop(DropReason::MetricsTokenRefused);
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "metrics need a token: Authorization: Bearer $(cat DATA_DIR/metrics-token)\n",
        )
            .into_response();
    }
    let status = state.node.status().await;
    let body = crate::metrics::render(&state.traffic, &status);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn upgrade(
    State(state): State<BridgeState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let token_ok = q
        .token
        .as_deref()
        .or(bearer(&headers))
        .is_some_and(|t| super::token::matches(&state.token, t));
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or(""));
    let origin_allowed = origin.map(|o| state.origins.contains(o));
    // The header says nothing about who is asking (any local program can send the daemon's own
    // Origin): without the token, the kernel's word on the caller's account decides.
    let caller = if token_ok || origin_allowed != Some(true) {
        Caller::Unknown
    } else {
        caller_of(&state, peer).await
    };
    let reach = match super::caller::admit(token_ok, origin_allowed, caller) {
        Admission::Node => super::session::Reach::Node,
        Admission::OwnRooms => super::session::Reach::OwnRooms,
        Admission::Refused(reason, status, text) => {
            state.node.count_drop(reason);
            tracing::warn!(origin, ?caller, "WebSocket refused: {}", text.trim_end());
            return (status, text).into_response();
        }
    };
    let node = state.node.clone();
    ws.max_message_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| session(node, socket, reach))
}

/// Decodes one WebSocket message into a client message.
pub fn decode_client_message(msg: &Message) -> Option<Result<proto::ClientMessage, String>> {
    match msg {
        Message::Text(text) => {
            Some(serde_json::from_str(text.as_str()).map_err(|e| format!("bad request: {e}")))
        }
        Message::Binary(bytes) => Some(
            proto::ClientMessage::decode(bytes.as_ref()).map_err(|e| format!("bad request: {e}")),
        ),
        _ => None,
    }
}

async fn session(node: Arc<Node>, socket: WebSocket, reach: super::session::Reach) {
    let (mut sink, stream) = socket.split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<proto::ServerMessage>(256);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let Ok(text) = serde_json::to_string(&msg) else {
                continue;
            };
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let counter = node.clone();
    let requests = stream
        .take_while(|m| std::future::ready(matches!(m, Ok(m) if !matches!(m, Message::Close(_)))))
        .filter_map(move |m| {
            let decoded = m.ok().as_ref().and_then(decode_client_message);
            if matches!(decoded, Some(Err(_))) {
                counter.count_drop(DropReason::WsBadRequest);
            }
            std::future::ready(decoded.map(|r| r.map_err(super::session::RequestError::Malformed)))
        });
    super::session::run(node, Box::pin(requests), tx, reach).await;
    let _ = writer.await;
}
