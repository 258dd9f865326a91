//! Whether a TURN server gives this node an allocation: one Allocate with the node's
//! credentials (rtc's sans-IO TURN client over a UDP socket), then the allocation is released.
//!
//! Why a probe: the engine gathers relay candidates silently, so wrong credentials or an
//! unreachable server would only show as peers that never connect. The probe names the state.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::sansio::Protocol as _;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::turn::client::{Client, ClientConfig, Event};
use tokio::net::UdpSocket;

/// How long a probe waits for the server in all.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// What a TURN server said to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnState {
    /// Not probed yet.
    Unknown,
    /// An allocation was granted (its relayed address).
    Allocated(SocketAddr),
    /// The server refused the credentials (STUN error 401 after authenticating).
    AuthFailed(String),
    /// No answer within the probe's time.
    Unreachable,
    /// Another refusal (quota, allocation mismatch, a bad address…).
    Failed(String),
}

impl TurnState {
    /// The state's name, as status shows it.
    pub fn name(&self) -> &'static str {
        match self {
            TurnState::Unknown => "unknown",
            TurnState::Allocated(_) => "ok",
            TurnState::AuthFailed(_) => "auth_failed",
            TurnState::Unreachable => "unreachable",
            TurnState::Failed(_) => "failed",
        }
    }

    /// Whether the server is usable.
    pub fn is_ok(&self) -> bool {
        matches!(self, TurnState::Allocated(_))
    }
}

/// Classifies an Allocate error message from the TURN client.
pub fn classify_error(message: &str) -> TurnState {
    if message.contains("401") || message.contains("Unauthorized") || message.contains("431") {
        TurnState::AuthFailed(message.to_owned())
    } else {
        TurnState::Failed(message.to_owned())
    }
}

/// Asks the TURN server at `server` (reachable over UDP: the server itself, or the loopback
/// stand-in of one reached over TCP) for an allocation, from `bind` (or any address).
pub async fn probe(
    server: SocketAddr,
    username: &str,
    credential: &str,
    bind: Option<IpAddr>,
) -> TurnState {
    let bind = match (bind, server.ip().is_loopback()) {
        (_, true) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (Some(ip), false) => ip,
        (None, false) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let Ok(socket) = UdpSocket::bind(SocketAddr::new(bind, 0)).await else {
        return TurnState::Failed("no local UDP socket".into());
    };
    let Ok(local_addr) = socket.local_addr() else {
        return TurnState::Failed("no local UDP socket".into());
    };
    let provider = match rtc::crypto::default_provider() {
        Ok(p) => p,
        Err(e) => return TurnState::Failed(format!("crypto: {e}")),
    };
    let config = ClientConfig {
        turn_serv_addr: server.to_string(),
        local_addr,
        transport_protocol: TransportProtocol::UDP,
        username: username.to_owned(),
        password: credential.to_owned(),
        software: "meshrtc".into(),
        ..Default::default()
    };
    let mut client = match Client::new(config, provider) {
        Ok(c) => c,
        Err(e) => return TurnState::Failed(e.to_string()),
    };
    let deadline = Instant::now() + PROBE_TIMEOUT;
    if let Err(e) = client.allocate(Instant::now()) {
        return TurnState::Failed(e.to_string());
    }
    let mut buf = vec![0u8; 2048];
    loop {
        while let Some(out) = client.poll_write() {
            let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
        }
        while let Some(event) = client.poll_event() {
            match event {
                Event::AllocateResponse(_, relayed) => {
                    if let Ok(mut relay) = client.relay(relayed) {
                        let _ = relay.close(Instant::now());
                    }
                    while let Some(out) = client.poll_write() {
                        let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
                    }
                    return TurnState::Allocated(relayed);
                }
                Event::AllocateError(_, e) => return classify_error(&e.to_string()),
                Event::TransactionTimeout(_) => return TurnState::Unreachable,
                _ => {}
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return TurnState::Unreachable;
        }
        let wake = client.poll_timeout().unwrap_or(deadline).min(deadline);
        let wait = wake
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => {
                let msg = TaggedBytesMut {
                    now: Instant::now(),
                    transport: TransportContext {
                        local_addr,
                        peer_addr: from,
                        transport_protocol: TransportProtocol::UDP,
                        ecn: None,
                    },
                    message: BytesMut::from(&buf[..n]),
                };
                let _ = client.handle_read(msg);
            }
            Ok(Err(_)) => return TurnState::Unreachable,
            Err(_) => {
                let _ = client.handle_timeout(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_named() {
        assert_eq!(
            classify_error("Allocate error response (error 401: Unauthorized)").name(),
            "auth_failed"
        );
        assert_eq!(
            classify_error("Allocate error response (error 486: Allocation Quota Reached)").name(),
            "failed"
        );
    }

    #[tokio::test]
    async fn a_silent_server_is_unreachable() {
        // A bound socket that never answers.
        let quiet = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = quiet.local_addr().expect("addr");
        let started = Instant::now();
        let state = probe(addr, "u", "p", None).await;
        assert_eq!(state, TurnState::Unreachable);
        assert!(started.elapsed() <= PROBE_TIMEOUT + Duration::from_secs(2));
    }
}
