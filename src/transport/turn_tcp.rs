//! TURN over TCP and TLS for an engine that speaks TURN only over UDP (webrtc 0.21 skips
//! `?transport=tcp` and `turns:` URLs): a loopback UDP port per such TURN server, where every
//! engine socket that writes to it gets its own TCP (or TLS) connection to the server, and
//! messages are carried across unchanged (RFC 8656 §12.4 framing: STUN messages as they are,
//! ChannelData padded to 4 bytes).
//!
//! Written here because no crate offers a TURN-over-TCP transport for webrtc-rs; the relayed
//! candidates the server hands out are its own addresses, so peers reach them as usual.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Mutex, mpsc};

/// Largest message carried (a STUN message or ChannelData with its header).
const MAX_MESSAGE: usize = 64 * 1024 + 4;
/// Messages queued toward one TCP connection before datagrams are dropped (UDP semantics).
const QUEUE: usize = 4096;

/// How many bytes the message at the start of `buf` takes on a TCP stream, once its header is
/// there: (message length, length with padding). None until 4 bytes are buffered; Err for bytes
/// that are neither STUN nor ChannelData.
pub fn frame_len(buf: &[u8]) -> Result<Option<(usize, usize)>, String> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    match buf[0] >> 6 {
        // STUN: a 20-byte header and a body whose length is a multiple of 4.
        0 => Ok(Some((20 + len, 20 + len))),
        // ChannelData (channel numbers 0x4000–0x7FFF): padded to 4 bytes over TCP.
        1 => Ok(Some((4 + len, (4 + len).div_ceil(4) * 4))),
        _ => Err(format!(
            "byte {:#04x} starts neither STUN nor ChannelData",
            buf[0]
        )),
    }
}

/// Pads a ChannelData datagram for TCP (STUN messages are already aligned).
pub fn pad_for_tcp(datagram: &[u8]) -> Bytes {
    let mut out = BytesMut::from(datagram);
    if datagram.first().is_some_and(|b| b >> 6 == 1) {
        out.resize(datagram.len().div_ceil(4) * 4, 0);
    }
    out.freeze()
}

/// A loopback UDP port standing in for a TURN server reached over TCP.
#[derive(Debug)]
pub struct TurnTcpShim {
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TurnTcpShim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// TLS to a `turns:` server: the name its certificate must carry, and the trust roots.
#[derive(Clone)]
pub struct TurnTls {
    /// Host name or address the certificate is checked against.
    pub server_name: rustls_name::ServerName<'static>,
    /// Client configuration (roots).
    pub config: Arc<tokio_rustls::rustls::ClientConfig>,
}

impl std::fmt::Debug for TurnTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TurnTls({:?})", self.server_name)
    }
}

use tokio_rustls::rustls::pki_types as rustls_name;

impl TurnTls {
    /// TLS for `host` with the public roots and the PEM certificates in `extra_ca`.
    pub fn new(host: &str, extra_ca: Option<&std::path::Path>) -> Result<TurnTls, String> {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = extra_ca {
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_name = rustls_name::ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{host}: {e}"))?;
        Ok(TurnTls {
            server_name,
            config: Arc::new(config),
        })
    }
}

impl TurnTcpShim {
    /// Opens the loopback port for the TURN server at `server` (`host:port`), reached over TLS
    /// when `tls` is given.
    pub async fn start(server: String, tls: Option<TurnTls>) -> std::io::Result<TurnTcpShim> {
        let udp = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?);
        let local = udp.local_addr()?;
        let task = tokio::spawn(run(udp, server, tls));
        Ok(TurnTcpShim { local, task })
    }

    /// The address to give the engine as `turn:ADDR?transport=udp`.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

type Clients = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>>;

async fn run(udp: Arc<UdpSocket>, server: String, tls: Option<TurnTls>) {
    let clients: Clients = Arc::default();
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let Ok((n, from)) = udp.recv_from(&mut buf).await else {
            return;
        };
        let datagram = pad_for_tcp(&buf[..n]);
        let mut map = clients.lock().await;
        let tx = match map.get(&from) {
            Some(tx) if !tx.is_closed() => tx.clone(),
            _ => {
                let (tx, rx) = mpsc::channel(QUEUE);
                map.insert(from, tx.clone());
                tokio::spawn(client(
                    udp.clone(),
                    server.clone(),
                    tls.clone(),
                    from,
                    rx,
                    clients.clone(),
                ));
                tx
            }
        };
        drop(map);
        // A full queue drops the datagram, as a congested UDP path would.
        if tx.try_send(datagram).is_err() {
            tracing::debug!("TURN over TCP: a datagram dropped (queue full)");
        }
    }
}

/// One engine socket's TCP (or TLS) connection to the server.
async fn client(
    udp: Arc<UdpSocket>,
    server: String,
    tls: Option<TurnTls>,
    peer: SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
    clients: Clients,
) {
    match connect(&server, tls).await {
        Ok(Stream::Plain(s)) => {
            let quick = socket2::SockRef::from(&s).try_clone().ok();
            carry(s, quick, &udp, &server, peer, &mut rx).await
        }
        Ok(Stream::Tls(s)) => {
            let quick = socket2::SockRef::from(s.get_ref().0).try_clone().ok();
            carry(*s, quick, &udp, &server, peer, &mut rx).await
        }
        Err(e) => tracing::warn!(server, error = %e, "TURN server unreachable over TCP"),
    }
    // The next datagram from this socket opens a new connection.
    drop(rx);
    clients
        .lock()
        .await
        .retain(|addr, tx| *addr != peer || !tx.is_closed());
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

async fn connect(server: &str, tls: Option<TurnTls>) -> std::io::Result<Stream> {
    let tcp = TcpStream::connect(server).await?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Stream::Plain(tcp)),
        Some(t) => {
            let connector = tokio_rustls::TlsConnector::from(t.config);
            let stream = connector.connect(t.server_name, tcp).await?;
            Ok(Stream::Tls(Box::new(stream)))
        }
    }
}

/// Carries datagrams to the stream and framed messages back, until either side ends.
async fn carry<S: AsyncRead + AsyncWrite>(
    stream: S,
    quick: Option<socket2::Socket>,
    udp: &UdpSocket,
    server: &str,
    peer: SocketAddr,
    rx: &mut mpsc::Receiver<Bytes>,
) {
    let (mut read, mut write) = tokio::io::split(stream);
    let up = async {
        while let Some(msg) = rx.recv().await {
            if write.write_all(&msg).await.is_err() || write.flush().await.is_err() {
                return;
            }
        }
    };
    let down = async {
        let mut buf = BytesMut::with_capacity(MAX_MESSAGE);
        loop {
            match frame_len(&buf) {
                Ok(Some((len, padded))) if buf.len() >= padded => {
                    let msg = buf.split_to(padded);
                    let _ = udp.send_to(&msg[..len], peer).await;
                    continue;
                }
                Ok(Some((_, padded))) if padded > MAX_MESSAGE => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "TURN over TCP: stream out of step");
                    return;
                }
            }
            // split_to leaves little room; a read must have a whole message's worth.
            buf.reserve(MAX_MESSAGE);
            match read.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    // Acknowledge at once: the server's small messages (the peer's SCTP acks)
                    // otherwise wait on Nagle against a delayed ACK, up to 40 ms each, and the
                    // sender's window grows at that pace. Linux clears the flag after use.
                    if let Some(s) = &quick {
                        let _ = s.set_tcp_quickack(true);
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = up => tracing::debug!(server, "TURN over TCP: engine side ended"),
        _ = down => tracing::info!(server, "TURN over TCP: the server closed the connection"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_and_padded_channel_data_are_framed() {
        // A STUN Binding request header with an 8-byte body.
        let stun = [0x00, 0x01, 0x00, 0x08];
        assert_eq!(frame_len(&stun), Ok(Some((28, 28))));
        // ChannelData on channel 0x4000 with 5 bytes: 9 on the wire, 12 with padding.
        let data = [0x40, 0x00, 0x00, 0x05];
        assert_eq!(frame_len(&data), Ok(Some((9, 12))));
        assert_eq!(frame_len(&data[..3]), Ok(None));
        assert!(frame_len(&[0xc0, 0, 0, 0]).is_err());
        assert_eq!(pad_for_tcp(&[0x40, 0, 0, 1, 0xaa]).len(), 8);
        assert_eq!(pad_for_tcp(&[0, 1, 0, 0]).len(), 4);
    }
}
