//! The gRPC service (tonic) on a Unix socket and optionally loopback TCP.
//!
//! Who may call: on the socket, the owner (peer credentials); over TCP, the owner's account as
//! the kernel reports the connection's ([`super::caller`]), or anyone with the API token.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream, UnixListenerStream};
use tonic::{Request, Response, Status, Streaming};

use super::caller::{Caller, Presented};
use super::convert::{peer_to_proto, relay_to_proto, status_to_proto};
use crate::drops::DropReason;
use crate::node::{Node, NodeError};
use crate::proto::{self, node_server::NodeServer};
use crate::transport::frames::FrameAssembler;

/// Largest HTTP/2 frame the daemon and its Rust clients accept. At the protocol's 16 KiB
/// default a 64 KiB message crossed the socket as five frames, each its own write and read;
/// the sending app's CPU per MB dropped about 15 % (the compare bench's throughput profile).
pub const HTTP2_FRAME_BYTES: u32 = 256 << 10;

/// The `meshrtc.v1.Node` service.
#[derive(Debug, Clone)]
pub struct NodeService {
    node: Arc<Node>,
    token: Arc<str>,
}

fn to_status(e: NodeError) -> Status {
    let msg = format!("{}: {}", e.code(), e);
    match e {
        NodeError::InvalidArgument(_) | NodeError::Send(_) => Status::invalid_argument(msg),
        NodeError::NotFound(_) => Status::not_found(msg),
        NodeError::PasswordConflict => Status::failed_precondition(msg),
        NodeError::Timeout(_) => Status::deadline_exceeded(msg),
        NodeError::LinkClosed(_) => Status::unavailable(msg),
        NodeError::Store(_) => Status::internal(msg),
        NodeError::Forbidden(_) => Status::permission_denied(msg),
        NodeError::ResourceExhausted(_) => Status::resource_exhausted(msg),
    }
}

#[tonic::async_trait]
impl proto::node_server::Node for NodeService {
    type SessionStream = Pin<Box<dyn Stream<Item = Result<proto::ServerMessage, Status>> + Send>>;
    type ReadTrackStream = Pin<Box<dyn Stream<Item = Result<proto::MediaPacket, Status>> + Send>>;

    async fn write_media(
        &self,
        request: Request<Streaming<proto::MediaWrite>>,
    ) -> Result<Response<proto::MediaWriteSummary>, Status> {
        let mut writes = request.into_inner();
        let mut summary = proto::MediaWriteSummary::default();
        while let Some(write) = writes.next().await {
            let Ok(write) = write else { break };
            match self.node.write_media(write).await {
                Ok(_) => summary.packets += 1,
                Err(NodeError::NotFound(m)) => return Err(Status::not_found(m)),
                Err(_) => summary.refused += 1,
            }
        }
        Ok(Response::new(summary))
    }

    async fn read_track(
        &self,
        request: Request<proto::ReadTrackRequest>,
    ) -> Result<Response<Self::ReadTrackStream>, Status> {
        let r = request.into_inner();
        let (codec, backlog, rx) = self
            .node
            .read_track(&r.app, &r.room, &r.peer, &r.track_id)
            .map_err(to_status)?;
        // With `frames`, each reader joins its own packets into frames (apps that want media,
        // not RTP); a frame that lost a packet is not delivered.
        let frames = if r.frames {
            Some(FrameAssembler::new(codec).ok_or_else(|| {
                Status::failed_precondition(format!(
                    "frames of {} tracks are not available; read its RTP",
                    codec.mime()
                ))
            })?)
        } else {
            None
        };
        let node = self.node.clone();
        let packets = futures::stream::iter(backlog.into_iter().map(|rtp| (rtp, 0u64))).chain(
            futures::stream::unfold((rx, 0u64), move |(mut rx, mut lagged)| {
                let node = node.clone();
                async move {
                    loop {
                        use tokio::sync::broadcast::error::RecvError;
                        match rx.recv().await {
                            Ok(rtp) => return Some(((rtp, lagged), (rx, 0))),
                            // A slow reader loses packets, is told how many, and slows nobody.
                            Err(RecvError::Lagged(n)) => {
                                lagged += n;
                                node.count_drops(DropReason::MediaSubscriberLagged, n);
                            }
                            Err(RecvError::Closed) => return None,
                        }
                    }
                }
            }),
        );
        // RTP goes out packet for packet; in frames mode a packet completes none, one or (after
        // a repaired gap) several frames, and a lag is told with the next frame delivered.
        let Some(mut asm) = frames else {
            let out = packets.map(|(rtp, lagged)| {
                Ok(proto::MediaPacket {
                    rtp,
                    lagged,
                    frame: None,
                })
            });
            return Ok(Response::new(Box::pin(out)));
        };
        let mut untold = 0u64;
        let out = packets.flat_map(move |(rtp, lagged)| {
            untold += lagged;
            let done = asm.push(rtp, std::time::Instant::now());
            let lagged = if done.is_empty() {
                0
            } else {
                std::mem::take(&mut untold)
            };
            let out: Vec<_> = done
                .into_iter()
                .enumerate()
                .map(|(i, f)| {
                    Ok(proto::MediaPacket {
                        rtp: Bytes::new(),
                        lagged: if i == 0 { lagged } else { 0 },
                        frame: Some(proto::MediaFrame {
                            data: f.data,
                            keyframe: f.keyframe,
                            rtp_timestamp: f.rtp_timestamp,
                            timestamp_us: f.since_first_us,
                        }),
                    })
                })
                .collect();
            futures::stream::iter(out)
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn session(
        &self,
        request: Request<Streaming<proto::ClientMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let requests = request.into_inner().map(|r| r.map_err(request_error));
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        // The socket is the owner's (or TCP with the token): the whole node may be asked about.
        tokio::spawn(super::session::run(
            self.node.clone(),
            Box::pin(requests),
            tx,
            super::session::Reach::Node,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(Ok))))
    }

    async fn status(
        &self,
        _: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusReply>, Status> {
        Ok(Response::new(status_to_proto(self.node.status().await)))
    }

    async fn peers(
        &self,
        request: Request<proto::PeersRequest>,
    ) -> Result<Response<proto::PeersReply>, Status> {
        let r = request.into_inner();
        let peers = self.node.peers(&r.app, &r.room).await.map_err(to_status)?;
        Ok(Response::new(proto::PeersReply {
            peers: peers.into_iter().map(peer_to_proto).collect(),
        }))
    }

    async fn history(
        &self,
        request: Request<proto::HistoryRequest>,
    ) -> Result<Response<proto::HistoryReply>, Status> {
        let r = request.into_inner();
        let reply = self
            .node
            .history(&r.app, &r.room, &r.password, &r.clear_channel)
            .await
            .map_err(to_status)?;
        Ok(Response::new(reply))
    }

    async fn ping(
        &self,
        request: Request<proto::PingRequest>,
    ) -> Result<Response<proto::PingReply>, Status> {
        let r = request.into_inner();
        let rtt = self
            .node
            .ping(&r.app, &r.room, &r.peer)
            .await
            .map_err(to_status)?;
        Ok(Response::new(proto::PingReply {
            rtt_ms: rtt.as_secs_f64() * 1000.0,
        }))
    }

    async fn token(
        &self,
        _: Request<proto::TokenRequest>,
    ) -> Result<Response<proto::TokenReply>, Status> {
        Ok(Response::new(proto::TokenReply {
            token: self.token.to_string(),
        }))
    }

    async fn relays(
        &self,
        _: Request<proto::RelaysRequest>,
    ) -> Result<Response<proto::RelaysReply>, Status> {
        let relays = self.node.relays().await;
        Ok(Response::new(proto::RelaysReply {
            relays: relays.into_iter().map(relay_to_proto).collect(),
        }))
    }
}

/// A TCP connection and whose it is, as the kernel said when it was accepted.
struct TcpConn {
    stream: tokio::net::TcpStream,
    caller: Caller,
}

/// What calls on a TCP connection carry in their extensions: whose connection it is.
#[derive(Debug, Clone, Copy)]
struct TcpCaller(Caller);

impl tonic::transport::server::Connected for TcpConn {
    type ConnectInfo = TcpCaller;
    fn connect_info(&self) -> TcpCaller {
        TcpCaller(self.caller)
    }
}

impl tokio::io::AsyncRead for TcpConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TcpConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves every service on `incoming`; with `required_token`, a call must carry it as a bearer
/// token unless its connection is the owner's (TCP: [`super::caller::admit_tcp_call`]).
async fn serve<I, IO, IE>(
    node: Arc<Node>,
    token: Arc<str>,
    required_token: Option<Arc<str>>,
    incoming: I,
) -> anyhow::Result<()>
where
    I: Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<NodeServer<NodeService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let counter = node.clone();
    let check = move |req: Request<()>| -> Result<Request<()>, Status> {
        let Some(expected) = &required_token else {
            return Ok(req);
        };
        let given = req.metadata().get("authorization").map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|t| super::token::matches(expected, t))
        });
        let presented = match given {
            None => Presented::Absent,
            Some(true) => Presented::Right,
            Some(false) => Presented::Wrong,
        };
        let caller = req
            .extensions()
            .get::<TcpCaller>()
            .map_or(Caller::Unknown, |c| c.0);
        match super::caller::admit_tcp_call(presented, caller) {
            Ok(()) => Ok(req),
            Err((reason, text)) => {
                counter.count_drop(reason);
                Err(Status::unauthenticated(text))
            }
        }
    };
    tonic::transport::Server::builder()
        .max_frame_size(HTTP2_FRAME_BYTES)
        .layer(tonic::service::InterceptorLayer::new(check))
        .add_service(health)
        .add_service(reflection)
        .add_service(
            NodeServer::new(NodeService { node, token })
                .max_decoding_message_size(80 << 20)
                .max_encoding_message_size(80 << 20),
        )
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

/// Binds the Unix socket (mode 0600), refusing to steal one a live daemon serves.
pub fn bind_unix(path: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("{} is in use by a running daemon", path.display());
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        // Owner-only directory: other users cannot even reach the socket's name.
        let meta = std::fs::metadata(dir)?;
        if meta.uid() != unsafe { libc::geteuid() } || meta.mode() & 0o077 != 0 {
            anyhow::bail!(
                "the socket directory {} must be owned by this user with mode 0700 (it is {:o}); \
                 pick a private directory, e.g. the data dir or $XDG_RUNTIME_DIR",
                dir.display(),
                meta.mode() & 0o777
            );
        }
    }
    // Created with a tight umask so the socket is never reachable by others, even briefly.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    unsafe { libc::umask(old) };
    let listener = listener?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the API on a bound Unix socket; connections from other users are refused.
pub async fn serve_unix(
    node: Arc<Node>,
    token: Arc<str>,
    listener: UnixListener,
) -> anyhow::Result<()> {
    let uid = unsafe { libc::geteuid() };
    let counter = node.clone();
    let incoming = UnixListenerStream::new(listener).filter(move |conn| {
        let allowed = match conn {
            Ok(stream) => stream
                .peer_cred()
                .is_ok_and(|c| c.uid() == uid || c.uid() == 0),
            Err(_) => true,
        };
        if !allowed {
            counter.count_drop(DropReason::ApiForeignUid);
        }
        std::future::ready(allowed)
    });
    serve(node, token, None, incoming).await
}

/// Tells a request the client got wrong from a stream that merely broke: tonic reports both as
/// a `Status`, but only a message that does not decode is bad input.
fn request_error(status: Status) -> super::session::RequestError {
    use super::session::RequestError;
    let decode = status.code() == tonic::Code::Internal
        && status
            .message()
            .starts_with("failed to decode Protobuf message");
    if decode {
        RequestError::Malformed(status.message().to_owned())
    } else {
        RequestError::Closed
    }
}

/// Serves the API on a bound TCP listener. Any local account can reach a loopback port, so a
/// call needs the bearer token unless the kernel says the connection is the daemon's own
/// account's (looked up once per connection, off the runtime).
pub async fn serve_tcp(
    node: Arc<Node>,
    token: Arc<str>,
    listener: TcpListener,
) -> anyhow::Result<()> {
    let incoming = TcpListenerStream::new(listener).then(|conn| async move {
        let stream = conn?;
        let (local, peer) = (stream.local_addr()?, stream.peer_addr()?);
        let caller = tokio::task::spawn_blocking(move || Caller::of_connection(local, peer))
            .await
            .unwrap_or(Caller::Unknown);
        Ok::<_, std::io::Error>(TcpConn { stream, caller })
    });
    serve(node, token.clone(), Some(token), incoming).await
}
