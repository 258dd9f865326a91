//! A relay's WebSocket with Nagle's algorithm off.
//!
//! nostr-sdk's default transport never sets `TCP_NODELAY`, so a small frame sent while an
//! earlier one is unacknowledged waits in the kernel: a candidate published right behind its
//! offer waits for the offer's ACK, which the relay may delay (Linux: up to 40 ms) when it has
//! nothing to send back. Signaling is all small frames sent in bursts, so every relay socket
//! here is connected by us, with `TCP_NODELAY`, and the WebSocket (and TLS for `wss://`)
//! handshake is then tokio-tungstenite's, as in the default transport.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_wsocket::{Message, WebSocket};
use futures::stream::{FuturesUnordered, SplitSink};
use futures::{Sink, SinkExt as _, StreamExt as _, TryStreamExt as _};
use nostr_sdk::Url;
use nostr_sdk::pool::transport::error::TransportError;
use nostr_sdk::pool::transport::websocket::{WebSocketSink, WebSocketStream};
use tokio::net::TcpStream;

/// How long each address of a relay's name gets before the next is tried beside it
/// (RFC 8305's "connection attempt delay").
const NEXT_ADDRESS_AFTER: Duration = Duration::from_millis(250);

/// Connects to the relay at `url` (`ws://` or `wss://`) within `timeout`.
pub async fn connect(
    url: &Url,
    timeout: Duration,
) -> Result<(WebSocketSink, WebSocketStream), TransportError> {
    let handshake = async {
        let tcp = connect_tcp(url).await?;
        tcp.set_nodelay(true).map_err(TransportError::backend)?;
        let (ws, _) = Box::pin(tokio_tungstenite::client_async_tls(url.as_str(), tcp))
            .await
            .map_err(TransportError::backend)?;
        Ok::<_, TransportError>(ws)
    };
    let ws = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| {
            TransportError::backend(std::io::Error::from(std::io::ErrorKind::TimedOut))
        })??;
    let (tx, rx) = WebSocket::Tokio(ws).split();
    let sink: WebSocketSink = Box::new(RelaySink(tx));
    let stream: WebSocketStream = Box::pin(rx.map_err(TransportError::backend));
    Ok((sink, stream))
}

/// The TCP connection: every address the name resolves to, each started
/// [`NEXT_ADDRESS_AFTER`] after the one before unless that one already failed; the first to
/// connect wins.
async fn connect_tcp(url: &Url) -> Result<TcpStream, TransportError> {
    let invalid = |what: &str| {
        TransportError::backend(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("relay url {url}: {what}"),
        ))
    };
    let host = url.host_str().ok_or_else(|| invalid("no host"))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| invalid("no port"))?;
    // `host_str` keeps an IPv6 literal's brackets, which is what `host:port` parsing wants.
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(format!("{host}:{port}"))
        .await
        .map_err(TransportError::backend)?
        .collect();
    let mut last_error = invalid("the name resolved to no address");
    let mut attempts = FuturesUnordered::new();
    let mut pending = addrs.into_iter();
    loop {
        if attempts.is_empty() {
            match pending.next() {
                Some(addr) => attempts.push(TcpStream::connect(addr)),
                None => return Err(last_error),
            }
        }
        tokio::select! {
            Some(result) = attempts.next() => match result {
                Ok(tcp) => return Ok(tcp),
                Err(e) => last_error = TransportError::backend(e),
            },
            () = tokio::time::sleep(NEXT_ADDRESS_AFTER), if !pending.as_slice().is_empty() => {
                if let Some(addr) = pending.next() {
                    attempts.push(TcpStream::connect(addr));
                }
            }
        }
    }
}

/// The sending half, with the socket's errors as transport errors. (A `Sink` adapter of its
/// own rather than `sink_map_err`, as nostr-sdk's transport does.)
struct RelaySink(SplitSink<WebSocket, Message>);

impl Sink<Message> for RelaySink {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready_unpin(cx).map_err(TransportError::backend)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.0
            .start_send_unpin(item)
            .map_err(TransportError::backend)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_flush_unpin(cx).map_err(TransportError::backend)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_close_unpin(cx).map_err(TransportError::backend)
    }
}
