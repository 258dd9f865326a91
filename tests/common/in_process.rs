//! A meshrtc node inside the test process (the library's `Node`, with its test hooks): a peer
//! that can write what no honest peer would.

use std::sync::Arc;
use std::time::Duration;

use meshrtc::config::{Config, MdnsMode};
use meshrtc::node::identity::{Identity, peer_id_for};
use meshrtc::node::session::{EventKind, SessionId, SessionQueue};
use meshrtc::node::{JoinOptions, Node};
use nostr_sdk::Keys;

/// A node running inside the test, with one session.
#[allow(dead_code)]
pub struct InProcess {
    pub node: Arc<Node>,
    pub keys: Keys,
    pub id: String,
    pub session: SessionId,
    pub events: Arc<SessionQueue>,
    _dir: tempfile::TempDir,
}

#[allow(dead_code)]
impl InProcess {
    pub async fn start(relay: &str) -> InProcess {
        let keys = Keys::generate();
        let id = peer_id_for(&keys.public_key());
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            relays: vec![relay.to_owned()],
            ice_addr: Some("127.0.0.1".parse().expect("ip")),
            ice_servers: vec!["none".into()],
            mdns: MdnsMode::Off,
            ws: "none".into(),
            ..Config::default()
        };
        let identity = Identity {
            keys: keys.clone(),
            peer_id: id.clone(),
        };
        let node = Node::start(identity, config, None).await;
        let (session, events) = node.open_session();
        InProcess {
            node,
            keys,
            id,
            session,
            events,
            _dir: dir,
        }
    }

    pub async fn join(&self, app: &str, room: &str, opts: JoinOptions) -> u32 {
        self.node
            .join(self.session, app, room, &opts)
            .await
            .expect("in-process join")
    }

    /// Waits for a session event matching `pred`.
    pub async fn wait(
        &self,
        within: Duration,
        pred: impl Fn(&EventKind) -> bool,
    ) -> Option<EventKind> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.events.next()).await {
                Ok(Some(e)) if pred(&e.kind) => return Some(e.kind),
                Ok(Some(_)) => {}
                _ => return None,
            }
        }
    }
}
