//! A gRPC client for the daemon, over a Unix socket or TCP.

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::proto::node_client::NodeClient;

/// Connects to `unix:PATH`, `http://HOST:PORT` or `HOST:PORT`.
pub async fn connect(daemon: &str) -> anyhow::Result<NodeClient<Channel>> {
    let channel = if let Some(path) = daemon.strip_prefix("unix:") {
        let path = path.to_owned();
        Endpoint::try_from("http://[::]:50051")?
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
        Endpoint::try_from(url)?.connect().await?
    };
    Ok(NodeClient::new(channel)
        .max_decoding_message_size(80 << 20)
        .max_encoding_message_size(80 << 20))
}
