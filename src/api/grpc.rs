//! The gRPC service (tonic) on a Unix socket and optionally loopback TCP.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt as _};
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream, UnixListenerStream};
use tonic::{Request, Response, Status, Streaming};

use super::convert::{peer_to_proto, relay_to_proto, status_to_proto};
use crate::node::{Node, NodeError};
use crate::proto::{self, node_server::NodeServer};

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
    }
}

#[tonic::async_trait]
impl proto::node_server::Node for NodeService {
    type SessionStream = Pin<Box<dyn Stream<Item = Result<proto::ServerMessage, Status>> + Send>>;

    async fn session(
        &self,
        request: Request<Streaming<proto::ClientMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let requests = request
            .into_inner()
            .map(|r| r.map_err(|e| e.message().to_owned()));
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(super::session::run(
            self.node.clone(),
            Box::pin(requests),
            tx,
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
        let peers = self.node.peers(&r.app, &r.room).map_err(to_status)?;
        Ok(Response::new(proto::PeersReply {
            peers: peers.into_iter().map(peer_to_proto).collect(),
        }))
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

async fn router(
    node: Arc<Node>,
    token: Arc<str>,
) -> anyhow::Result<tonic::transport::server::Router> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<NodeServer<NodeService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    Ok(tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection)
        .add_service(
            NodeServer::new(NodeService { node, token })
                .max_decoding_message_size(80 << 20)
                .max_encoding_message_size(80 << 20),
        ))
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
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Created with a tight umask so the socket is never reachable by others, even briefly.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    unsafe { libc::umask(old) };
    let listener = listener?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the API on a bound Unix socket.
pub async fn serve_unix(
    node: Arc<Node>,
    token: Arc<str>,
    listener: UnixListener,
) -> anyhow::Result<()> {
    router(node, token)
        .await?
        .serve_with_incoming(UnixListenerStream::new(listener))
        .await?;
    Ok(())
}

/// Serves the API on a bound TCP listener.
pub async fn serve_tcp(
    node: Arc<Node>,
    token: Arc<str>,
    listener: TcpListener,
) -> anyhow::Result<()> {
    router(node, token)
        .await?
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await?;
    Ok(())
}
