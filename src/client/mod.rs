//! A Rust client for the daemon: connect over its Unix socket or TCP, then open a [`Session`]
//! (join rooms, send, receive events and replies) or call the node's other RPCs (status, peers,
//! media, history) on the connected client.
//!
//! ```no_run
//! # async fn chat() -> anyhow::Result<()> {
//! use meshrtc::client::{self, Session};
//! use meshrtc::proto;
//!
//! let daemon = client::connect_with_token("unix:/run/meshrtc/meshrtcd.sock", None).await?;
//! let mut session = Session::open(daemon).await?;
//! let (reply, _early_events) = session
//!     .join(proto::JoinRequest {
//!         app: "chat".into(),
//!         room: "lobby".into(),
//!         ..Default::default()
//!     })
//!     .await?;
//! println!("joined as handle {}", reply.room);
//! # Ok(())
//! # }
//! ```
//!
//! `examples/chat.rs` is a whole program.

mod session;

pub use session::{JoinedPeers, Session};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::proto::node_client::NodeClient;

/// A client that adds the bearer token to every call (needed over TCP but from the daemon's own
/// account).
pub type AuthedClient =
    NodeClient<tonic::service::interceptor::InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Debug, Clone)]
pub struct BearerToken(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// The daemon's default endpoint for this user: `unix:<data dir>/meshrtcd.sock`.
pub fn default_endpoint() -> String {
    format!(
        "unix:{}",
        crate::config::default_data_dir()
            .join("meshrtcd.sock")
            .display()
    )
}

/// Connects with an optional bearer token (required over TCP but from the daemon's own account).
pub async fn connect_with_token(daemon: &str, token: Option<&str>) -> anyhow::Result<AuthedClient> {
    let channel = channel(daemon).await?;
    let value = match token {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse()
                .map_err(|_| anyhow::anyhow!("the token is not valid header text"))?,
        ),
        None => None,
    };
    Ok(NodeClient::with_interceptor(channel, BearerToken(value))
        .max_decoding_message_size(80 << 20)
        .max_encoding_message_size(80 << 20))
}

/// Connects to `unix:PATH`, `http://HOST:PORT` or `HOST:PORT`.
pub async fn connect(daemon: &str) -> anyhow::Result<NodeClient<Channel>> {
    Ok(NodeClient::new(channel(daemon).await?)
        .max_decoding_message_size(80 << 20)
        .max_encoding_message_size(80 << 20))
}

async fn channel(daemon: &str) -> anyhow::Result<Channel> {
    let channel = if let Some(path) = daemon.strip_prefix("unix:") {
        let path = path.to_owned();
        Endpoint::try_from("http://[::]:50051")?
            .max_frame_size(crate::api::grpc::HTTP2_FRAME_BYTES)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(TokioIo::new)
                }
            }))
            .await?
    } else {
        let url = if daemon.contains("://") {
            daemon.to_owned()
        } else {
            format!("http://{daemon}")
        };
        Endpoint::try_from(url)?
            .max_frame_size(crate::api::grpc::HTTP2_FRAME_BYTES)
            .connect()
            .await?
    };
    Ok(channel)
}
