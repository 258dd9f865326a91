//! The embedded Nostr relay (nostr-relay-builder), for single machines and LANs with no internet.
//!
//! The relay's own listener leaves Nagle's algorithm on, and a relay writes many small frames in
//! a row (an `OK` to one client, then the event to the subscribers): the second write to a
//! subscriber then waits for the peer's delayed ACK, 40 ms on Linux, and every offer and answer
//! of a join paid it (measured: 29 and 42 ms of a 95 ms loopback join). So the listener here is
//! ours, with `TCP_NODELAY` on every connection; it performs the WebSocket upgrade and hands the
//! upgraded stream to the relay.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt as _;
use base64::Engine as _;
use hyper_util::rt::TokioIo;
use nostr_relay_builder::prelude::{LocalRelay, RateLimit, RelayBuilder};
use sha1::{Digest as _, Sha1};
use std::sync::Arc;

/// A running embedded relay; it stops when dropped.
#[derive(Debug)]
pub struct EmbeddedRelay {
    relay: LocalRelay,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for EmbeddedRelay {
    fn drop(&mut self) {
        self.server.abort();
        self.relay.shutdown();
    }
}

/// Starts a relay on `addr` in the current runtime.
pub async fn start(addr: SocketAddr, events_per_minute: u32) -> anyhow::Result<EmbeddedRelay> {
    let builder = RelayBuilder::default().rate_limit(RateLimit {
        max_reqs: 256,
        notes_per_minute: events_per_minute,
    });
    start_with(addr, builder, None).await
}

/// Starts a relay built by `builder` on `addr`, answering `Accept: application/nostr+json`
/// requests with `info` (a NIP-11 document) when given.
pub async fn start_with(
    addr: SocketAddr,
    builder: RelayBuilder,
    info: Option<String>,
) -> anyhow::Result<EmbeddedRelay> {
    let relay = LocalRelay::new(builder);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("embedded relay on {addr}: {e}"))?
        .tap_io(|tcp| {
            // Without it, back-to-back frames wait for the client's delayed ACK (see above).
            let _ = tcp.set_nodelay(true);
        });
    let app = axum::Router::new()
        .fallback(upgrade)
        .with_state((relay.clone(), info.map(Arc::<str>::from)))
        .into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "embedded relay stopped");
        }
    });
    Ok(EmbeddedRelay { relay, server })
}

/// `Sec-WebSocket-Accept` for a client's key (RFC 6455 §4.2.2).
fn accept_key(key: &[u8]) -> String {
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Upgrades a WebSocket request and gives the connection to the relay.
async fn upgrade(
    State((relay, info)): State<(LocalRelay, Option<Arc<str>>)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
) -> Response {
    let wants_info = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/nostr+json"));
    if let Some(info) = info.filter(|_| wants_info) {
        return (
            [(header::CONTENT_TYPE, "application/nostr+json")],
            info.to_string(),
        )
            .into_response();
    }
    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let Some(key) = key.filter(|_| is_upgrade) else {
        return (
            StatusCode::BAD_REQUEST,
            "a Nostr relay: connect with WebSocket\n",
        )
            .into_response();
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                if let Err(e) = relay.take_connection(TokioIo::new(upgraded), peer).await {
                    tracing::debug!(error = %e, "relay connection ended");
                }
            }
            Err(e) => tracing::debug!(error = %e, "relay upgrade failed"),
        }
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "upgrade".to_owned()),
            (header::UPGRADE, "websocket".to_owned()),
            (header::SEC_WEBSOCKET_ACCEPT, accept_key(key.as_bytes())),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_the_rfc_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
