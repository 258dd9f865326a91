//! The node's calls for the API layers: sessions, join, leave, subscribe, send, ping, peers,
//! relays and status. Each takes the lock, feeds the core and runs its effects; only the waits
//! an app should feel (a full link queue, a pong) happen outside the lock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::core::rooms::validate_join;
use super::session::{SessionId, SessionQueue};
use super::{E2eKeyId, Inner, JoinOptions, Node, NodeError, PeerInfo, StatusInfo};
use crate::drops::DropReason;
use crate::signal::driver::RelayState;
use crate::transport::ConnId;
use crate::wire::Payload;
use crate::wire::e2e::{self, E2eKey};

/// How long `peers` waits for one link's statistics before listing it without them.
const LINK_STATS_LIMIT: Duration = Duration::from_secs(2);
/// How long an app's ping waits for its pong.
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Derived password-room keys kept for later joins.
const MAX_CACHED_E2E_KEYS: usize = 256;

impl Node {
    /// Opens a local session; its events arrive on the returned queue.
    pub fn open_session(&self) -> (SessionId, Arc<SessionQueue>) {
        let queue = Arc::new(SessionQueue::new(self.config.session_queue));
        let mut inner = self.lock();
        let id = inner.core.open_session();
        inner.io.queues.insert(id, queue.clone());
        (id, queue)
    }

    /// Closes a session and leaves its rooms.
    pub fn close_session(&self, session: SessionId) {
        self.feed(|core, now| core.close_session(session, now));
    }

    /// Joins a room for a session; returns the session's handle of the room.
    pub async fn join(
        &self,
        session: SessionId,
        app: &str,
        room: &str,
        opts: &JoinOptions,
    ) -> Result<u32, NodeError> {
        validate_join(app, room, opts)?;
        let e2e = if opts.password.is_empty() {
            None
        } else {
            Some(self.e2e_key(app, room, &opts.password).await)
        };
        let handle = self.feed(|core, now| core.join(session, app, room, opts, e2e, now))?;
        self.wake.notify_one();
        Ok(handle)
    }

    /// The end-to-end key of a password room, derived off the runtime (slow KDF) and cached.
    async fn e2e_key(&self, app: &str, room: &str, password: &str) -> E2eKey {
        let id = E2eKeyId {
            app: app.to_owned(),
            room: room.to_owned(),
            password: password.to_owned(),
        };
        let cache = || self.e2e_keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = cache().get(&id) {
            return k.clone();
        }
        let of = id.clone();
        let key =
            tokio::task::spawn_blocking(move || e2e::derive_key(&of.password, &of.app, &of.room))
                .await
                .unwrap_or_else(|_| e2e::derive_key(&id.password, &id.app, &id.room));
        let mut cache = cache();
        // Bounded: past this many passwords, forgetting one only costs a derivation later.
        if cache.len() >= MAX_CACHED_E2E_KEYS
            && let Some(old) = cache.keys().next().cloned()
        {
            cache.remove(&old);
        }
        cache.insert(id, key.clone());
        key
    }

    /// Leaves a room a session joined.
    pub fn leave(&self, session: SessionId, handle: u32) -> Result<(), NodeError> {
        self.feed(|core, now| core.leave(session, handle, now))
    }

    /// Counts a drop observed outside the node (API layers).
    pub fn count_drop(&self, reason: DropReason) {
        self.lock().core.count(reason);
    }

    /// Reports the core's traffic and latencies to `observer` from now on (`/metrics`).
    pub fn observe(&self, observer: Box<dyn super::core::Observer>) {
        self.lock().core.observe(observer);
    }

    /// Counts `n` drops observed outside the node.
    pub fn count_drops(&self, reason: DropReason, n: u64) {
        self.lock().core.count_n(reason, n);
    }

    /// The (app, room) a session's room handle refers to.
    pub fn room_of(&self, session: SessionId, handle: u32) -> Result<(String, String), NodeError> {
        self.lock().core.room_of(session, handle)
    }

    /// Changes which channels a session receives in a room (empty: all).
    pub fn subscribe(
        &self,
        session: SessionId,
        handle: u32,
        channels: &[String],
        since: Option<super::Since>,
    ) -> Result<(), NodeError> {
        self.feed(|core, _| core.subscribe(session, handle, channels, since))
    }

    /// Sends a message; returns the peers it was handed to. Waits while a link's queue is full.
    pub async fn send(
        &self,
        session: SessionId,
        handle: u32,
        channel: &str,
        payload: Payload,
        meta: Option<Value>,
        targets: &[String],
    ) -> Result<Vec<String>, NodeError> {
        let (plan, writers) = {
            let mut inner = self.lock();
            let plan = inner.core.send(
                session,
                handle,
                channel,
                payload,
                meta,
                targets,
                Instant::now(),
            )?;
            self.run_effects(&mut inner);
            let writers = writers_for(&inner, &plan.links);
            (plan, writers)
        };
        if plan.links.is_empty() {
            return Ok(plan.sent_to);
        }
        let mut delivered = plan.sent_to;
        for (peer, handed) in hand_over(plan.links, writers).await {
            // A kept message whose link closed goes again on the next one.
            if !handed && !plan.kept.contains(&peer) {
                return Err(NodeError::LinkClosed(peer));
            }
            delivered.push(peer);
        }
        Ok(delivered)
    }

    /// Asks peers (a Trystero request action); returns the peers the request was handed to.
    /// Every target's outcome arrives later as a `Response` event (targets not in the room at
    /// once, as disconnected). Waits while a link's queue is full.
    pub async fn request(
        &self,
        session: SessionId,
        handle: u32,
        spec: super::core::RequestSpec,
    ) -> Result<Vec<String>, NodeError> {
        let (plan, writers) = {
            let mut inner = self.lock();
            let plan = inner.core.request(session, handle, spec, Instant::now())?;
            self.run_effects(&mut inner);
            let writers = writers_for(&inner, &plan.links);
            (plan, writers)
        };
        // The deadlines are new: the core's next tick may be sooner.
        self.wake.notify_one();
        // A link that closed fails its request as disconnected when the core hears of it.
        Ok(hand_over(plan.links, writers)
            .await
            .into_iter()
            .filter_map(|(peer, handed)| handed.then_some(peer))
            .collect())
    }

    /// Answers a peer's request this session was handed.
    pub fn respond(
        &self,
        session: SessionId,
        handle: u32,
        id: u64,
        result: Result<Payload, String>,
    ) -> Result<(), NodeError> {
        self.feed(|core, now| core.respond(session, handle, id, result, now))
    }

    /// Sets which channels' requests a session answers in a room.
    pub fn serve(
        &self,
        session: SessionId,
        handle: u32,
        channels: &[String],
    ) -> Result<(), NodeError> {
        self.feed(|core, _| core.serve(session, handle, channels))
    }

    /// Measures the round trip to a peer of a room.
    pub async fn ping(&self, app: &str, room: &str, peer: &str) -> Result<Duration, NodeError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.lock();
            let waiter = inner.core.ping(app, room, peer, Instant::now())?;
            inner.io.pings.insert(waiter, tx);
            self.run_effects(&mut inner);
        }
        match tokio::time::timeout(PING_TIMEOUT, rx).await {
            Ok(Ok(rtt)) => Ok(rtt),
            Ok(Err(_)) => Err(NodeError::LinkClosed(peer.to_owned())),
            Err(_) => Err(NodeError::Timeout(format!(
                "no pong from {peer} within 10 s"
            ))),
        }
    }

    /// Joined peers of a room, with the path each link took and its health.
    pub async fn peers(&self, app: &str, room: &str) -> Result<Vec<PeerInfo>, NodeError> {
        let (mut peers, links) = {
            let inner = self.lock();
            let peers = inner.core.peers(app, room, Instant::now())?;
            let links: Vec<_> = peers
                .iter()
                .map(|p| {
                    let conn = inner.core.peer_conn(app, &p.id)?;
                    let pc = inner.io.pcs.get(&conn).cloned()?;
                    let writer = inner.io.writers.get(&conn).map(|w| {
                        let queued = w.frames.max_capacity() - w.frames.capacity();
                        (w.channel.clone(), w.window.clone(), queued)
                    });
                    Some((pc, writer))
                })
                .collect();
            (peers, links)
        };
        for (peer, link) in peers.iter_mut().zip(links) {
            let Some((pc, writer)) = link else { continue };
            let read = async {
                // One statistics report serves the path and the health.
                let report = pc
                    .get_stats(Instant::now(), webrtc::peer_connection::StatsSelector::None)
                    .await;
                let path = crate::transport::path::selected_path_in(&report);
                let health = match writer {
                    Some((channel, window, queued)) => Some(
                        crate::transport::health::link_health(
                            &pc, &report, &channel, &window, queued,
                        )
                        .await,
                    ),
                    None => None,
                };
                (path, health)
            };
            // A link whose engine does not answer must not hang the whole listing.
            match tokio::time::timeout(LINK_STATS_LIMIT, read).await {
                Ok((path, health)) => (peer.path, peer.health) = (path, health),
                Err(_) => {
                    tracing::warn!(peer = %peer.id, "the link's engine gave no statistics within 2 s")
                }
            }
        }
        Ok(peers)
    }

    /// Relays and their states.
    pub async fn relays(&self) -> Vec<RelayState> {
        self.signal.relays().await
    }

    /// The node at a glance.
    pub async fn status(&self) -> StatusInfo {
        let relays = self.signal.relays().await;
        // Only a TURN server makes relayed links: without one, no link's statistics are read.
        let turn = crate::transport::ice::has_turn(&self.transport.ice().servers);
        let (core, pcs) = {
            let inner = self.lock();
            let pcs: Vec<_> = if turn {
                inner
                    .io
                    .writers
                    .keys()
                    .filter_map(|c| inner.io.pcs.get(c).cloned())
                    .collect()
            } else {
                Vec::new()
            };
            (inner.core.status(), pcs)
        };
        let mut links_relayed = 0;
        for pc in pcs {
            if crate::transport::path::selected_path(&pc)
                .await
                .is_some_and(|p| p.local.kind == crate::transport::path::CandidateKind::Relay)
            {
                links_relayed += 1;
            }
        }
        let mut drops = core.drops;
        for (reason, n) in self.signal.counters.snapshot() {
            if n > 0 {
                *drops.entry(reason).or_insert(0) += n;
            }
        }
        StatusInfo {
            peer_id: self.peer_id.clone(),
            relays,
            rooms: core.rooms,
            drops,
            uptime_ms: self.started.elapsed().as_millis() as u64,
            sessions: core.sessions,
            links: core.links,
            pending_dials: core.pending_dials,
            turn: self.turn_lock().clone(),
            links_relayed,
        }
    }
}

/// Frames for one peer's link: (peer, its connection, the frames).
type LinkFrames = (String, ConnId, Arc<Vec<Bytes>>);

/// Each link's writer queue, looked up under the node's lock.
fn writers_for(inner: &Inner, links: &[LinkFrames]) -> Vec<Option<mpsc::Sender<Bytes>>> {
    links
        .iter()
        .map(|(_, conn, _)| inner.io.writers.get(conn).map(|w| w.frames.clone()))
        .collect()
}

/// Hands each link its frames, waiting while a queue is full; per peer, whether they all went
/// (false: its link has closed).
async fn hand_over(
    links: Vec<LinkFrames>,
    writers: Vec<Option<mpsc::Sender<Bytes>>>,
) -> Vec<(String, bool)> {
    let mut out = Vec::with_capacity(links.len());
    'peers: for ((peer, _, frames), writer) in links.into_iter().zip(writers) {
        let Some(writer) = writer else {
            out.push((peer, false));
            continue;
        };
        for f in frames.iter() {
            if writer.send(f.clone()).await.is_err() {
                out.push((peer, false));
                continue 'peers;
            }
        }
        out.push((peer, true));
    }
    out
}
