//! The WebSocket bridge (axum): the Session messages as proto3 JSON, plus the JS client and demo page.
//!
//! Pages may connect only from allowed origins (and the daemon's own); clients without an
//! `Origin` (scripts) must present the API token.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt as _, StreamExt as _};
use prost::Message as _;
use serde::Deserialize;

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
    /// Origins whose pages may connect: the allowed ones and the daemon's own.
    origins: Arc<HashSet<String>>,
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

/// Serves the bridge on a bound listener.
pub async fn serve(
    node: Arc<Node>,
    token: Arc<str>,
    allow_origins: &[String],
    listener: tokio::net::TcpListener,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let mut origins: HashSet<String> = allow_origins
        .iter()
        .map(|o| o.trim_end_matches('/').to_owned())
        .collect();
    origins.extend(own_origins(addr));
    let state = BridgeState {
        node,
        token,
        origins: Arc::new(origins),
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
    axum::serve(listener, app).await?;
    Ok(())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Prometheus metrics, for whoever holds the API token (scripts' rule: a bearer header).
async fn metrics(State(state): State<BridgeState>, headers: HeaderMap) -> Response {
    if !bearer(&headers).is_some_and(|t| super::token::matches(&state.token, t)) {
        state.node.count_drop(DropReason::MetricsTokenRefused);
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "metrics need the API token: Authorization: Bearer $(meshrtc token)\n",
        )
            .into_response();
    }
    let status = state.node.status().await;
    let body = crate::metrics::render(&state.node.traffic(), &status);
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
    // Only the token proves who is asking: any local program can claim the daemon's own Origin.
    let reach = if token_ok {
        super::session::Reach::Node
    } else {
        super::session::Reach::OwnRooms
    };
    match origin {
        Some(origin) if !state.origins.contains(origin) => {
            state.node.count_drop(DropReason::WsOriginRefused);
            tracing::warn!(origin, "WebSocket refused: origin not allowed");
            return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
        }
        None if !token_ok => {
            state.node.count_drop(DropReason::WsTokenRefused);
            return (
                StatusCode::UNAUTHORIZED,
                "a token is required (meshrtc token)\n",
            )
                .into_response();
        }
        _ => {}
    }
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
