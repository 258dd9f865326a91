//! One session with the daemon: requests out, replies and room events in, over the `Session`
//! RPC's two streams. Every room a session joins ends when the session does.

use std::collections::HashSet;

use anyhow::{Context as _, bail};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

use super::AuthedClient;
use crate::proto::{self, client_message::Body, event::Kind, server_message};

/// Requests a session may have on their way to the daemon before `request` waits.
const OUTGOING: usize = 16;

/// A session stream: requests out, server messages (replies and events) in.
pub struct Session {
    tx: mpsc::Sender<proto::ClientMessage>,
    rx: tonic::Streaming<proto::ServerMessage>,
    next_id: u64,
}

impl Session {
    /// Opens a session on a connected client.
    pub async fn open(mut client: AuthedClient) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel(OUTGOING);
        let rx = client.session(ReceiverStream::new(rx)).await?.into_inner();
        Ok(Session { tx, rx, next_id: 1 })
    }

    /// A sender for requests made elsewhere (another task) with ids the caller picks: keep them
    /// apart from [`request`](Self::request)'s, which count up from 1.
    pub fn sender(&self) -> mpsc::Sender<proto::ClientMessage> {
        self.tx.clone()
    }

    /// Sends a request; returns its id (its reply carries the same `request_id`).
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

    /// The next server message: a reply or an event.
    pub async fn next(&mut self) -> anyhow::Result<proto::ServerMessage> {
        match self.rx.next().await {
            Some(Ok(m)) => Ok(m),
            Some(Err(status)) => bail!("lost the daemon: {}", status.message()),
            None => bail!("daemon closed the session"),
        }
    }

    /// Waits for the reply to request `id`, handing the events that come first to `on_event`;
    /// a reply carrying an error is returned as that error (`code: message`).
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

    /// Sends a request and waits for its reply (events meanwhile go to `on_event`).
    pub async fn call(
        &mut self,
        body: Body,
        on_event: impl FnMut(proto::Event),
    ) -> anyhow::Result<proto::Reply> {
        let id = self.request(body).await?;
        self.reply(id, on_event).await
    }

    /// Joins a room; returns the reply (its `room` is the session's handle of the room) and the
    /// events that came before it (peers already there, replayed history).
    pub async fn join(
        &mut self,
        request: proto::JoinRequest,
    ) -> anyhow::Result<(proto::Reply, Vec<proto::Event>)> {
        let mut early = Vec::new();
        let reply = self.call(Body::Join(request), |e| early.push(e)).await?;
        Ok((reply, early))
    }
}

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

    /// Follows one event: a join adds its peer, a leave removes it.
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

    /// How many peers are joined.
    pub fn count(&self) -> usize {
        self.0.len()
    }
}
