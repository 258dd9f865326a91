//! A session with the daemon (requests out, events and replies in) and the peers it has seen
//! join.

use std::collections::HashSet;

use anyhow::{Context as _, bail};
use meshrtc::proto::{self, client_message::Body, event::Kind, server_message};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

use super::{RoomArgs, client};

/// The peers joined in a room, as a session's events tell.
#[derive(Debug, Default)]
pub struct JoinedPeers(HashSet<String>);

impl JoinedPeers {
    /// The peers a join's early events (those that came with its reply) name.
    pub fn from_events(events: &[proto::Event]) -> Self {
        let mut joined = Self::default();
        for e in events {
            joined.track(e);
        }
        joined
    }

    pub fn track(&mut self, e: &proto::Event) {
        match &e.kind {
            Some(Kind::PeerJoin(p)) => {
                self.0.insert(p.peer.clone());
            }
            Some(Kind::PeerLeave(p)) => {
                self.0.remove(&p.peer);
            }
            _ => {}
        }
    }

    /// At least `n` peers, and every one of `must`.
    pub fn has(&self, n: usize, must: &[String]) -> bool {
        self.0.len() >= n && must.iter().all(|p| self.0.contains(p))
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }
}

/// A session stream: requests out, server messages in.
pub struct Session {
    pub tx: mpsc::Sender<proto::ClientMessage>,
    rx: tonic::Streaming<proto::ServerMessage>,
    next_id: u64,
    /// Channels whose requests the session answers (set at join).
    pub serve: Vec<String>,
}

impl Session {
    pub async fn open(daemon: &str) -> anyhow::Result<Self> {
        let mut client = client(daemon).await?;
        let (tx, rx) = mpsc::channel(16);
        let rx = client.session(ReceiverStream::new(rx)).await?.into_inner();
        Ok(Session {
            tx,
            rx,
            next_id: 1,
            serve: Vec::new(),
        })
    }

    /// Sends a request; returns its id.
    pub async fn request(&mut self, body: Body) -> anyhow::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.tx
            .send(proto::ClientMessage {
                request_id: id,
                body: Some(body),
            })
            .await
            .context("daemon closed the session")?;
        Ok(id)
    }

    /// Next server message.
    pub async fn next(&mut self) -> anyhow::Result<proto::ServerMessage> {
        match self.rx.next().await {
            Some(Ok(m)) => Ok(m),
            Some(Err(status)) => bail!("lost the daemon: {}", status.message()),
            None => bail!("daemon closed the session"),
        }
    }

    /// Waits for the reply to `id`, passing events to `on_event`.
    pub async fn reply(
        &mut self,
        id: u64,
        mut on_event: impl FnMut(proto::Event),
    ) -> anyhow::Result<proto::Reply> {
        loop {
            match self.next().await?.body {
                Some(server_message::Body::Reply(r)) if r.request_id == id => {
                    if let Some(e) = r.error {
                        bail!("{}: {}", e.code, e.message);
                    }
                    return Ok(r);
                }
                Some(server_message::Body::Event(e)) => on_event(e),
                _ => {}
            }
        }
    }

    pub async fn join(
        &mut self,
        room: &RoomArgs,
        channels: Vec<String>,
        keep: Vec<proto::Keep>,
        since: Option<proto::Since>,
        verified_only: bool,
    ) -> anyhow::Result<(proto::Reply, Vec<proto::Event>)> {
        let id = self
            .request(Body::Join(proto::JoinRequest {
                app: room.app.clone(),
                room: room.room.clone(),
                password: room.password.clone(),
                channels,
                require_e2e: room.require_e2e,
                cells: room.cells.then(|| proto::Cells {
                    enabled: true,
                    cell_size: room.cell_size.unwrap_or(0),
                    link_budget: 0,
                }),
                keep,
                since,
                verified_only,
                serve: self.serve.clone(),
            }))
            .await?;
        let mut early = Vec::new();
        let reply = self.reply(id, |e| early.push(e)).await?;
        Ok((reply, early))
    }
}
