//! A deterministic network of node cores for tests: in-memory links and relay, a virtual
//! clock, a seeded RNG, and fault injection.
//!
//! Why it exists: the races the node must survive (both sides dialing, a restarted peer, a
//! relay that loses or reorders events, a link that dies mid-handshake) are rare on a real
//! network and impossible to replay there. Here every core is the real [`Core`] — real rooms,
//! real signaling state, real overlay — and only the driver's work is played by [`Net`]:
//! effects become scheduled events, ordered by (virtual time, sequence), so one seed is one
//! schedule. A failing test prints its seed; `MESHRTC_HARNESS_SEED=N` replays it.

mod driver;
mod fake;
mod media;
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nostr_sdk::{Keys, SecretKey};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use sha2::{Digest as _, Sha256};

use super::JoinOptions;
pub(super) use super::core::Effect;
use super::core::{Core, CoreConfig, Input};
use super::identity::{Identity, peer_id_for};
use super::session::{EventKind, SessionEvent, SessionId};
use crate::signal::RelayCommand;
use crate::signal::content::Signal;
use crate::signal::driver::Incoming;
use crate::transport::ConnId;
use crate::wire::Payload;
pub(super) use fake::{End, Fakes, FrameFilter};

/// What the network does wrong, drawn from the net's RNG.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Chance that a relay loses an event (per recipient).
    pub relay_loss: f64,
    /// Relay delay range; random delays reorder events.
    pub relay_delay: (Duration, Duration),
    /// One-way link latency range (a link stays in order).
    pub link_latency: (Duration, Duration),
    /// Chance that a connection's ICE fails (both ends see it close).
    pub ice_fail: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            relay_loss: 0.0,
            relay_delay: (Duration::from_millis(5), Duration::from_millis(30)),
            link_latency: (Duration::from_millis(1), Duration::from_millis(5)),
            ice_fail: 0.0,
        }
    }
}

/// One scheduled event.
#[derive(Debug)]
enum Ev {
    Relay(Incoming),
    OfferMade(String),
    AnswerMade(String),
    RemoteSet,
    Candidate,
    Open,
    /// The channel carries frames, but the engine has not said it opened yet.
    Up,
    Frame(Bytes),
    Closed,
    /// Media: a renegotiation step finished, or the engine surfaced or ended a remote track.
    Media(MediaEv),
}

/// The harness's stand-in for the engine's media steps.
#[derive(Debug)]
enum MediaEv {
    NegotiationNeeded,
    OfferMade(String),
    AnswerMade(String),
    AnswerRefused,
    AnswerApplied,
    TrackUp(String, String, crate::transport::media::Codec),
    TrackDown(String),
}

#[derive(Debug)]
struct Scheduled {
    at: Instant,
    seq: u64,
    to: End,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// One node of the net: a core and what its driver would hold.
pub struct Sim {
    /// The node's core.
    pub core: Core,
    keys: Keys,
    /// Incarnation: bumped by a restart, so events for the old one are discarded.
    life: u32,
    /// False once killed.
    pub alive: bool,
    /// Topics it subscribes to.
    pub topics: BTreeSet<String>,
    next_tick: Instant,
    /// Every event its sessions received.
    pub events: Vec<SessionEvent>,
    /// Answered pings: (waiter, round trip).
    pub pongs: Vec<(u64, Duration)>,
    /// Pings that will never be answered.
    pub pings_lost: Vec<u64>,
    /// Kept messages (an in-memory stand-in for the history store): room, cursor, entry.
    pub kept: Vec<([u8; 16], crate::history::Cursor, crate::history::Entry)>,
    /// Its one session.
    pub session: SessionId,
    /// Room handles by room id.
    pub handles: BTreeMap<String, u32>,
    /// Connections whose send window the core opened wide (peer is a daemon).
    pub wide: BTreeSet<ConnId>,
}

impl Sim {
    /// This node's peer id.
    pub fn id(&self) -> String {
        self.core.peer_id().to_owned()
    }

    /// Peers joined in a room of the test app.
    pub fn joined(&self, room: &str) -> BTreeSet<String> {
        self.core
            .peers(APP, room, Instant::now())
            .map(|ps| ps.into_iter().map(|p| p.id.into_string()).collect())
            .unwrap_or_default()
    }

    /// Messages received on `channel`, as (from, text), in order.
    pub fn messages(&self, channel: &str) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Message {
                    channel: c,
                    from,
                    payload: Payload::Text(t),
                    ..
                } if c == channel => Some((from.to_string(), t.clone())),
                _ => None,
            })
            .collect()
    }
}

/// The app id every harness room uses.
pub const APP: &str = "harness";

/// A seeded network of cores.
pub struct Net {
    /// The virtual clock.
    pub now: Instant,
    start: Instant,
    /// The seed this net was built from (printed by failing tests).
    pub seed: u64,
    rng: StdRng,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    /// The nodes, by index.
    pub nodes: Vec<Sim>,
    /// What the network does wrong.
    pub faults: Faults,
    fakes: Fakes,
    /// Relay events lost to `relay_loss`.
    pub relay_lost: u64,
    /// (from, to) node pairs whose announces are lost.
    announce_blocks: BTreeSet<(usize, usize)>,
    /// Renegotiation offers a node's engine will refuse to answer, by node.
    pub refuse_media_answers: BTreeMap<usize, u32>,
    /// TURN servers are configured: cores fall back to relay-only attempts.
    turn: bool,
    /// Only relayed paths work (a symmetric NAT): an attempt opens only if both ends are
    /// relay-only.
    pub direct_blocked: bool,
    /// Blocked direct attempts hang instead of failing (the engine gives up only after 15 s).
    pub direct_hangs: bool,
    /// Connection ends made relay-only.
    relay_only_ends: BTreeSet<End>,
    /// Nodes whose engine reports a channel open only after the peer's first frames came.
    pub open_reported_late: BTreeSet<usize>,
    /// Changes the nodes' configuration from the daemon's defaults.
    tweak: fn(&mut CoreConfig),
    /// Every frame put on a link, as (from node, to node, bytes), once
    /// [`Net::record_frames`] was called.
    pub recorded: Option<Vec<(usize, usize, Bytes)>>,
}

/// The core configuration of harness nodes (the daemon's defaults).
pub fn core_config() -> CoreConfig {
    crate::node::core_config(&crate::config::Config::default())
}

fn keys_for(seed: u64, index: usize, life_salt: u8) -> Keys {
    let mut counter = 0u32;
    loop {
        let digest = Sha256::new()
            .chain_update(b"meshrtc/harness")
            .chain_update(seed.to_le_bytes())
            .chain_update((index as u64).to_le_bytes())
            .chain_update([life_salt])
            .chain_update(counter.to_le_bytes())
            .finalize();
        if let Ok(secret) = SecretKey::from_slice(&digest) {
            return Keys::new(secret);
        }
        counter += 1;
    }
}

impl Net {
    /// `n` nodes, faults off.
    pub fn new(seed: u64, n: usize) -> Self {
        Self::build(seed, n, false)
    }

    /// `n` nodes with TURN servers configured (relay-only attempts after a failure).
    pub fn with_turn(seed: u64, n: usize) -> Self {
        Self::build(seed, n, true)
    }

    /// `n` nodes whose configuration `tweak` changes, faults off.
    pub fn with_config(seed: u64, n: usize, tweak: fn(&mut CoreConfig)) -> Self {
        Self::build_with(seed, n, false, tweak)
    }

    fn build(seed: u64, n: usize, turn: bool) -> Self {
        Self::build_with(seed, n, turn, |_| {})
    }

    fn build_with(seed: u64, n: usize, turn: bool, tweak: fn(&mut CoreConfig)) -> Self {
        let start = Instant::now();
        let mut net = Net {
            now: start,
            start,
            seed,
            rng: StdRng::seed_from_u64(seed),
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: Vec::new(),
            faults: Faults::default(),
            fakes: Fakes::default(),
            refuse_media_answers: BTreeMap::new(),
            turn,
            direct_blocked: false,
            direct_hangs: false,
            relay_only_ends: BTreeSet::new(),
            open_reported_late: BTreeSet::new(),
            relay_lost: 0,
            announce_blocks: BTreeSet::new(),
            tweak,
            recorded: None,
        };
        for i in 0..n {
            let keys = keys_for(seed, i, 0);
            let sim = net.make_sim(keys, 0, seed ^ (i as u64) << 32);
            net.nodes.push(sim);
        }
        net
    }

    fn make_sim(&mut self, keys: Keys, life: u32, core_seed: u64) -> Sim {
        let peer_id = peer_id_for(&keys.public_key());
        self.make_sim_as(keys, peer_id, life, core_seed)
    }

    fn make_sim_as(&mut self, keys: Keys, peer_id: String, life: u32, core_seed: u64) -> Sim {
        let identity = Identity {
            peer_id,
            keys: keys.clone(),
        };
        let mut config = core_config();
        config.relay_fallback = self.turn;
        (self.tweak)(&mut config);
        let mut core = Core::new(identity, config, self.now, 1_700_000_000_000_000, core_seed);
        let session = core.open_session();
        Sim {
            core,
            keys,
            life,
            alive: true,
            topics: BTreeSet::new(),
            next_tick: self.now,
            events: Vec::new(),
            pongs: Vec::new(),
            pings_lost: Vec::new(),
            kept: Vec::new(),
            session,
            handles: BTreeMap::new(),
            wide: BTreeSet::new(),
        }
    }

    /// Virtual time since the net started.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn end(&self, node: usize, conn: ConnId) -> End {
        End {
            node,
            life: self.nodes[node].life,
            conn,
        }
    }

    fn schedule(&mut self, after: Duration, to: End, ev: Ev) {
        self.seq += 1;
        let at = self.now + after;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            to,
            ev,
        }));
    }

    fn draw(&mut self, (lo, hi): (Duration, Duration)) -> Duration {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo).as_micros() as u64;
        lo + Duration::from_micros(self.rng.gen_range(0..=span))
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.gen_bool(p.min(1.0))
    }

    /// Joins `room` on node `i` (all channels).
    pub fn join(&mut self, i: usize, room: &str, opts: JoinOptions) {
        let now = self.now;
        // A password room's key, derived as the daemon's driver does.
        let e2e = (!opts.password.is_empty())
            .then(|| crate::wire::e2e::derive_key(&opts.password, APP, room));
        let sim = &mut self.nodes[i];
        let handle = sim
            .core
            .join(sim.session, APP, room, &opts, e2e, now)
            .expect("join");
        sim.handles.insert(room.to_owned(), handle);
        // The driver wakes its tick after a join.
        sim.next_tick = now;
        self.run_effects(i);
    }

    /// Leaves `room` on node `i`.
    pub fn leave(&mut self, i: usize, room: &str) {
        let now = self.now;
        let sim = &mut self.nodes[i];
        if let Some(h) = sim.handles.remove(room) {
            sim.core.leave(sim.session, h, now).expect("leave");
        }
        self.run_effects(i);
    }

    /// Node `i` sends `text` on `channel` to everyone in `room`; returns the peers it went to.
    pub fn send(&mut self, i: usize, room: &str, channel: &str, text: &str) -> Vec<String> {
        let now = self.now;
        let sim = &mut self.nodes[i];
        let handle = sim.handles[room];
        let plan = sim
            .core
            .send(
                sim.session,
                handle,
                channel,
                Payload::Text(text.to_owned()),
                None,
                &[],
                now,
            )
            .expect("send");
        self.run_effects(i);
        let mut to = plan.sent_to;
        for (peer, conn, frames) in plan.links {
            self.send_frames(i, conn, frames.to_vec());
            to.push(peer);
        }
        to
    }

    /// Node `i` asks peers (`targets`, node indices) on `channel`; returns the peers the
    /// request went to. Outcomes arrive as `Response` events.
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &mut self,
        i: usize,
        room: &str,
        app_request: u64,
        channel: &str,
        text: &str,
        targets: &[usize],
        timeout_ms: u64,
    ) -> Vec<String> {
        let now = self.now;
        let targets = targets.iter().map(|&j| self.nodes[j].id()).collect();
        let sim = &mut self.nodes[i];
        let handle = sim.handles[room];
        let spec = crate::node::core::RequestSpec {
            app_request,
            channel: channel.to_owned(),
            payload: Payload::Text(text.to_owned()),
            meta: Some(serde_json::json!({"tag": app_request})),
            targets,
            timeout_ms,
        };
        let plan = sim
            .core
            .request(sim.session, handle, spec, now)
            .expect("request");
        // The driver wakes its tick after a request (new deadlines).
        sim.next_tick = now;
        self.run_effects(i);
        let mut to = Vec::new();
        for (peer, conn, frames) in plan.links {
            self.send_frames(i, conn, frames.to_vec());
            to.push(peer);
        }
        to
    }

    /// Node `i`'s session answers the request it was handed as `id`.
    pub fn respond(
        &mut self,
        i: usize,
        room: &str,
        id: u64,
        result: Result<Payload, String>,
    ) -> Result<(), crate::node::NodeError> {
        let now = self.now;
        let sim = &mut self.nodes[i];
        let handle = sim.handles[room];
        let r = sim.core.respond(sim.session, handle, id, result, now);
        self.run_effects(i);
        r
    }

    /// Kills node `i` as `kill -9` would: nothing is said, its links go silent.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
    }

    /// Restarts node `i` with the same key and no state (its old links are dead to it).
    pub fn restart(&mut self, i: usize) {
        let life = self.nodes[i].life + 1;
        let keys = self.nodes[i].keys.clone();
        let seed = self.rng.r#gen();
        self.nodes[i] = self.make_sim(keys, life, seed);
    }

    /// Makes node `i` (before it joins anything) a peer whose id does not derive from the key
    /// that signs its relay events, as a Trystero page's (it signs with a throwaway key): cells
    /// rooms do not take it for a member, though it links and joins like any peer.
    pub fn make_stranger(&mut self, i: usize) {
        let keys = self.nodes[i].keys.clone();
        let id = peer_id_for(&keys_for(self.seed, i, 0xff).public_key());
        let seed = self.rng.r#gen();
        self.nodes[i] = self.make_sim_as(keys, id, self.nodes[i].life + 1, seed);
    }

    /// Joins `room` on node `i` with the end-to-end key of a password room (raw bytes: the
    /// daemon derives them from the password off the runtime; tests skip the slow KDF).
    pub fn join_keyed(&mut self, i: usize, room: &str, opts: JoinOptions, key: [u8; 32]) {
        let now = self.now;
        let sim = &mut self.nodes[i];
        let e2e = crate::wire::e2e::E2eKey::from_bytes(&key);
        let handle = sim
            .core
            .join(sim.session, APP, room, &opts, Some(e2e), now)
            .expect("join");
        sim.handles.insert(room.to_owned(), handle);
        sim.next_tick = now;
        self.run_effects(i);
    }

    /// From now on, every frame put on a link is kept in [`Net::recorded`].
    pub fn record_frames(&mut self) {
        self.recorded.get_or_insert_with(Vec::new);
    }

    /// Runs the net for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(at) = self.next_at() {
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            self.step();
        }
        self.now = until;
    }

    /// Runs until `done` holds (checked after every step) or `limit` of virtual time passed;
    /// returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) -> bool {
        let until = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            match self.next_at() {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.step();
                }
                _ => {
                    self.now = until;
                    return done(self);
                }
            }
        }
    }

    fn next_at(&self) -> Option<Instant> {
        let event = self.queue.peek().map(|Reverse(s)| s.at);
        let tick = self
            .nodes
            .iter()
            .filter(|s| s.alive)
            .map(|s| s.next_tick)
            .min();
        match (event, tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn step(&mut self) {
        let now = self.now;
        if let Some(i) =
            (0..self.nodes.len()).find(|&i| self.nodes[i].alive && self.nodes[i].next_tick <= now)
        {
            self.nodes[i].core.handle(Input::Tick, now);
            let next = self.nodes[i].core.next_tick();
            self.nodes[i].next_tick = next;
            self.run_effects(i);
            return;
        }
        let Some(Reverse(s)) = self.queue.pop() else {
            return;
        };
        let sim = &self.nodes[s.to.node];
        if !sim.alive || sim.life != s.to.life {
            return;
        }
        self.deliver(s.to, s.ev);
    }

    fn deliver(&mut self, to: End, ev: Ev) {
        let (i, conn, now) = (to.node, to.conn, self.now);
        let core = &mut self.nodes[i].core;
        match ev {
            Ev::Relay(incoming) => {
                if self.nodes[i].topics.contains(&incoming.topic) {
                    self.nodes[i].core.handle(Input::Relay(incoming), now);
                }
            }
            Ev::OfferMade(sdp) => core.handle(Input::OfferMade { conn, sdp: Ok(sdp) }, now),
            Ev::AnswerMade(sdp) => core.handle(Input::AnswerMade { conn, sdp: Ok(sdp) }, now),
            Ev::RemoteSet => core.handle(Input::RemoteSet { conn, ok: true }, now),
            Ev::Candidate => core.handle(
                Input::LocalCandidate {
                    conn,
                    json: &fake::candidate(to),
                },
                now,
            ),
            Ev::Open => {
                if !self.fakes.open(to) {
                    return;
                }
                self.nodes[i].core.handle(Input::ChannelOpen(conn), now);
            }
            Ev::Up => {
                self.fakes.open(to);
            }
            Ev::Frame(bytes) => {
                if !self.fakes.receives(to) {
                    return;
                }
                self.nodes[i].core.handle(
                    Input::Frame {
                        conn,
                        bytes: &bytes,
                    },
                    now,
                );
            }
            Ev::Closed => {
                if !self.fakes.close(to) {
                    return;
                }
                self.nodes[i].core.handle(Input::Closed(conn), now);
            }
            Ev::Media(m) => match m {
                MediaEv::NegotiationNeeded => core.handle(Input::NegotiationNeeded(conn), now),
                MediaEv::OfferMade(sdp) => {
                    core.handle(Input::MediaOfferMade { conn, sdp: Ok(sdp) }, now)
                }
                MediaEv::AnswerMade(sdp) => {
                    core.handle(Input::MediaAnswerMade { conn, sdp: Ok(sdp) }, now)
                }
                MediaEv::AnswerRefused => core.handle(
                    Input::MediaAnswerMade {
                        conn,
                        sdp: Err("refused by the harness".into()),
                    },
                    now,
                ),
                MediaEv::AnswerApplied => {
                    core.handle(Input::MediaAnswerApplied { conn, ok: true }, now)
                }
                MediaEv::TrackUp(stream, track, codec) => {
                    core.remote_track(conn, stream, track, Some(codec), now)
                }
                MediaEv::TrackDown(track) => core.handle(
                    Input::RemoteTrackEnded {
                        conn,
                        track: &track,
                    },
                    now,
                ),
            },
        }
        self.run_effects(i);
    }

    /// Severs the links between nodes `a` and `b` without either side being told (a black
    /// hole: only the watchdog can notice).
    pub fn blackhole(&mut self, a: usize, b: usize) {
        self.fakes.blackhole(a, b);
    }

    /// Lets traffic between `a` and `b` flow again.
    pub fn heal(&mut self, a: usize, b: usize) {
        self.fakes.heal(a, b);
    }

    /// Announces from node `from` no longer reach node `to` (or do again).
    pub fn block_announces(&mut self, from: usize, to: usize, blocked: bool) {
        if blocked {
            self.announce_blocks.insert((from, to));
        } else {
            self.announce_blocks.remove(&(from, to));
        }
    }

    /// Node `i` pings node `j` in `room`; returns the waiter id.
    pub fn ping(&mut self, i: usize, room: &str, j: usize) -> Result<u64, crate::node::NodeError> {
        let (now, peer) = (self.now, self.nodes[j].id());
        let waiter = self.nodes[i].core.ping(APP, room, &peer, now);
        self.run_effects(i);
        waiter
    }

    /// Node `from` puts raw bytes on its live link to node `to`, as a hostile peer would.
    pub fn inject_frame(&mut self, from: usize, to: usize, frame: Bytes) -> bool {
        let Some((end, peer)) = self.fakes.open_between(from, to) else {
            return false;
        };
        let at = self
            .fakes
            .next_delivery(end, self.now + Duration::from_millis(1));
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            to: peer,
            ev: Ev::Frame(frame),
        }));
        true
    }

    /// Node `i` receives a relay event as if a relay sent it.
    pub fn inject_relay(&mut self, i: usize, incoming: Incoming) {
        let now = self.now;
        self.nodes[i].core.handle(Input::Relay(incoming), now);
        self.run_effects(i);
    }

    /// A relay of node `i` (re)connected.
    pub fn relay_up(&mut self, i: usize) {
        let now = self.now;
        self.nodes[i]
            .core
            .handle(Input::RelayUp { apps: None }, now);
        self.nodes[i].next_tick = now;
        self.run_effects(i);
    }

    /// A digest of everything every session saw, to compare two runs of one seed.
    pub fn trace(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.nodes.iter().enumerate() {
            for e in &s.events {
                out.push_str(&format!("{i} {} {:?}\n", e.room_id, e.kind));
            }
        }
        out
    }

    /// Drops the frames `a` sends to `b` that match `filter` (e.g. a page's presence).
    pub fn filter_frames(&mut self, a: usize, b: usize, filter: FrameFilter) {
        self.fakes.filter(a, b, filter);
    }

    /// Live links node `i` holds, as the peers' node indexes.
    pub fn links_of(&self, i: usize) -> Vec<usize> {
        let ids: BTreeMap<String, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(j, s)| (s.id(), j))
            .collect();
        self.nodes[i]
            .core
            .link_peers()
            .into_iter()
            .filter_map(|p| ids.get(&p).copied())
            .collect()
    }
}
