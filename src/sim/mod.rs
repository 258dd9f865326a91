//! Discrete-event simulator of a room's overlay: N virtual peers, link latency and loss, churn
//! and bridge kills, driving our [`Mesh`] and the seed's [`GenosPeer`] through the same
//! [`Overlay`] trait on the same scenario and seed.
//!
//! Model: a link takes `link_setup` to come up once either end asks for it; data channels are
//! reliable, so a lost transmission arrives one retransmission timeout later; a crashed peer's
//! links look alive until `detect` passes (the watchdog), then its neighbours see them drop and
//! it leaves the roster; a joining peer enters the roster `census_delay` after it arrives (its
//! announce burst). Every peer sees the same roster (one relay); when a roster change takes
//! effect is the algorithm's own rule.
//!
//! A newcomer does not see that roster at once. GenosRTC's peers learn the room from presence
//! on the relay (modelled as before: at `census_delay`). Ours learn it over their first link
//! (`crate::mesh::roster`): digest, request, and the records in pages — so a newcomer has its
//! topology one link setup, three one-way latencies, the roster's bytes at `link_bytes_per_s`
//! and one signature check per record (`verify_cost`) after its first link is up. Until then
//! it holds the links others open to it and forwards over them, as the daemon does.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::mesh::genos::{GENOS_CELL_SIZE, GenosPeer, GenosSealer, GenosTopology};
use crate::mesh::plumtree::{PlumPeer, PlumTopology};
use crate::mesh::{Member, Mesh, MeshConfig, MeshOutput, Overlay, Topology, placement};
use crate::wire::cell::CellFrame;

mod parallel;
mod report;
mod scenario;

use report::report;
pub use scenario::{Report, Scenario};

/// Runs our algorithm.
pub fn run_meshrtc(s: &Scenario) -> Report {
    let size = s.cell_size;
    run(
        s,
        "meshrtc",
        |id| Mesh::new(id, b"sim-room", MeshConfig::default()),
        move |roster| {
            let members = roster
                .iter()
                .map(|m| Member {
                    id: m.id.clone(),
                    place: placement(b"sim-room", &m.key),
                })
                .collect();
            Arc::new(Topology::compute(members, size))
        },
        |t, rng| {
            let bridges: Vec<String> = (0..t.cell_count())
                .flat_map(|c| t.cell_members(c).map(str::to_owned).collect::<Vec<_>>())
                .filter(|p| !t.bridges_of(p).is_empty())
                .collect();
            pick(bridges, rng)
        },
        Sealing::Settle(Settle::default()),
        true,
    )
}

/// Runs Plumtree over a HyParView-style active view (the second baseline).
pub fn run_plumtree(s: &Scenario) -> Report {
    run(
        s,
        "plumtree",
        PlumPeer::new,
        |roster| {
            let ids: Vec<String> = roster.iter().map(|m| m.id.clone()).collect();
            Arc::new(PlumTopology::compute(&ids))
        },
        |t, rng| pick(t.members().cloned().collect(), rng),
        Sealing::Settle(Settle::default()),
        false,
    )
}

/// Runs the seed's algorithm.
pub fn run_genosrtc(s: &Scenario) -> Report {
    run(
        s,
        "genosrtc",
        GenosPeer::new,
        |roster| {
            let ids: Vec<String> = roster.iter().map(|m| m.id.clone()).collect();
            Arc::new(GenosTopology::compute(&ids, GENOS_CELL_SIZE))
        },
        |t, rng| pick(t.bridges().map(str::to_owned).collect(), rng),
        Sealing::Genos(GenosSealer::default()),
        false,
    )
}

fn pick(mut from: Vec<String>, rng: &mut StdRng) -> Vec<String> {
    for i in (1..from.len()).rev() {
        from.swap(i, rng.gen_range(0..=i));
    }
    from
}

/// Our rule: a roster change takes effect after 500 ms of quiet, at most 2 s after it began.
#[derive(Debug, Default)]
struct Settle {
    first: Option<Instant>,
    last: Option<Instant>,
}

enum Sealing {
    Settle(Settle),
    Genos(GenosSealer),
}

impl Sealing {
    fn changed(&mut self, now: Instant, urgent: bool) {
        match self {
            Sealing::Settle(s) => {
                s.first.get_or_insert(now);
                s.last = Some(now);
            }
            Sealing::Genos(g) => g.changed(now, urgent),
        }
    }

    fn due(&mut self, now: Instant) -> bool {
        match self {
            Sealing::Settle(s) => match (s.first, s.last) {
                (Some(f), Some(l))
                    if now >= l + Duration::from_millis(500)
                        || now >= f + Duration::from_secs(2) =>
                {
                    *s = Settle::default();
                    true
                }
                _ => false,
            },
            Sealing::Genos(g) => g.due(now),
        }
    }
}

/// A roster entry: peer id and signing key.
#[derive(Debug, Clone)]
pub struct SimMember {
    id: String,
    key: [u8; 32],
}

struct SimPeer<O> {
    member: SimMember,
    overlay: O,
    alive: bool,
    joined_at: Duration,
    left_at: Option<Duration>,
    in_roster: bool,
    /// When it came to hold the whole roster (its topology follows the room's from then on).
    roster_at: Option<Duration>,
    /// Its roster transfer is under way.
    syncing: bool,
}

#[derive(Default)]
struct Link {
    up: bool,
    pending: bool,
}

enum Event {
    Frame {
        from: usize,
        to: usize,
        frame: Box<CellFrame>,
    },
    LinkUp {
        a: usize,
        b: usize,
    },
    Detect {
        dead: usize,
        urgent: bool,
    },
    EnterRoster {
        peer: usize,
    },
    RosterSynced {
        peer: usize,
    },
    Inventory {
        from: usize,
        to: usize,
        want: bool,
        ids: Vec<crate::mesh::FrameId>,
    },
    Tick,
    Broadcast,
    Churn,
    Kill,
}

struct Queued {
    at: u64,
    n: u64,
    event: Event,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.n) == (other.at, other.n)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.n).cmp(&(other.at, other.n))
    }
}

struct Broadcast {
    sent_at: Duration,
    origin: usize,
    received: HashMap<usize, u32>,
}

const TICK: Duration = Duration::from_millis(100);
/// A broadcast counts for peers that were in the room this long before it was sent.
const SETTLED: Duration = Duration::from_secs(12);
/// How long a broadcast has to reach everyone.
const DEADLINE: Duration = Duration::from_secs(3);

struct Sim<'a, O: Overlay> {
    s: &'a Scenario,
    t0: Instant,
    now: Duration,
    rng: StdRng,
    queue: BinaryHeap<Reverse<Queued>>,
    n_events: u64,
    peers: Vec<SimPeer<O>>,
    /// Peer ids by index (apart from `peers`, so jobs on one peer can name another).
    ids: Vec<String>,
    index: HashMap<String, usize>,
    links: HashMap<(usize, usize), Link>,
    /// The other end of each of a peer's entries in `links`: a departure finds its neighbours
    /// here instead of walking every link, which made long runs grow with N squared.
    adjacent: HashMap<usize, Vec<usize>>,
    topo: Option<Arc<O::Topology>>,
    sealing: Sealing,
    broadcasts: Vec<Broadcast>,
    by_frame: HashMap<([u8; 32], u64), usize>,
    sends: u64,
    /// Control messages: inventories (ours), `IHAVE`/`PRUNE`/`GRAFT` (Plumtree).
    control: u64,
    /// Most links any peer held at any moment.
    links_peak: usize,
    /// Newcomers learn the roster over their first link (ours), not from the relay (the seed).
    roster_sync: bool,
}

/// The peers an overlay's outputs name, looked up (workers do it, off the sequential path):
/// one entry per output, `None` for a peer the simulation does not know (or no peer at all).
fn resolve(index: &HashMap<String, usize>, outputs: &[MeshOutput]) -> Vec<Option<usize>> {
    outputs
        .iter()
        .map(|o| match o {
            MeshOutput::Open(id)
            | MeshOutput::Close(id)
            | MeshOutput::Send(id, _)
            | MeshOutput::Have(id, _)
            | MeshOutput::Want(id, _) => index.get(id).copied(),
            MeshOutput::Deliver(_) => None,
        })
        .collect()
}

fn key(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

/// Bytes of one roster record on the wire.
const RECORD_BYTES: f64 = crate::wire::roster::RECORD_LEN as f64;

impl<O: Overlay + Send> Sim<'_, O> {
    fn at(&self, d: Duration) -> Instant {
        self.t0 + d
    }

    /// An inventory message (one send) over a link that is up.
    fn inventory(&mut self, peer: usize, other: usize, want: bool, ids: Vec<crate::mesh::FrameId>) {
        self.control += 1;
        if self.links.get(&key(peer, other)).is_some_and(|l| l.up) {
            let delay = self.s.latency.mul_f64(self.rng.gen_range(0.8..1.2));
            self.push(
                delay,
                Event::Inventory {
                    from: peer,
                    to: other,
                    want,
                    ids,
                },
            );
        }
    }

    /// A newcomer's roster over one link: digest, request and first page (three one-way
    /// latencies), the records' bytes, and checking each record's signature.
    fn roster_transfer(&self) -> Duration {
        let members = self.peers.iter().filter(|p| p.alive && p.in_roster).count() as f64;
        self.s.latency * 3
            + Duration::from_secs_f64(members * RECORD_BYTES / self.s.link_bytes_per_s)
            + self.s.verify_cost.mul_f64(members)
    }

    fn push(&mut self, after: Duration, event: Event) {
        self.n_events += 1;
        let at = (self.now + after).as_micros() as u64;
        self.queue.push(Reverse(Queued {
            at,
            n: self.n_events,
            event,
        }));
    }
}

fn new_member(rng: &mut StdRng) -> SimMember {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let id: String = (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    SimMember {
        id,
        key: rng.r#gen(),
    }
}

impl<O: Overlay + Send> Sim<'_, O> {
    /// Frames and inventories that arrive before anything they cause can arrive (the batch
    /// spans less than the shortest delay `apply` schedules): each peer handles its own on some
    /// core, then what they caused is applied one by one in the order they arrived.
    fn deliver(&mut self, batch: Vec<Queued>) {
        let t0 = self.t0;
        let (ids, links, index) = (&self.ids, &self.links, &self.index);
        let jobs: Vec<(usize, (u64, Event))> = batch
            .into_iter()
            .filter_map(|q| match &q.event {
                Event::Frame { to, .. } | Event::Inventory { to, .. } => {
                    Some((*to, (q.at, q.event)))
                }
                _ => None,
            })
            .collect();
        let outs = parallel::map_peers(&mut self.peers, jobs, |p, (at, event)| {
            let now = t0 + Duration::from_micros(at);
            let linked = |from: usize, to: usize| links.get(&key(from, to)).is_some_and(|l| l.up);
            let out = match event {
                Event::Frame { from, to, frame } if p.alive && linked(from, to) => (
                    to,
                    p.overlay
                        .on_frame(&ids[from], *frame, now)
                        .unwrap_or_default(),
                ),
                Event::Inventory {
                    from,
                    to,
                    want,
                    ids: frames,
                } if p.alive && linked(from, to) => {
                    let out = if want {
                        p.overlay.on_want(&ids[from], &frames, now)
                    } else {
                        p.overlay.on_have(&ids[from], &frames, now)
                    };
                    (to, out)
                }
                _ => (0, Vec::new()),
            };
            let peers = resolve(index, &out.1);
            (at, (out.0, out.1, peers))
        });
        for (at, (to, out, peers)) in outs {
            if !out.is_empty() {
                self.now = Duration::from_micros(at);
                self.apply_resolved(to, out, peers);
            }
        }
    }

    fn apply(&mut self, peer: usize, outputs: Vec<MeshOutput>) {
        let peers = resolve(&self.index, &outputs);
        self.apply_resolved(peer, outputs, peers);
    }

    /// Carries out a peer's outputs (`peers`: whom each names, from [`resolve`]): links, frames
    /// on the wire, deliveries counted.
    fn apply_resolved(&mut self, peer: usize, outputs: Vec<MeshOutput>, peers: Vec<Option<usize>>) {
        for (o, other) in outputs.into_iter().zip(peers) {
            match (o, other) {
                (MeshOutput::Deliver(frame), _) => self.delivered(peer, &frame),
                (_, None) => {}
                (MeshOutput::Open(_), Some(other)) => {
                    if !self.peers[other].alive {
                        continue;
                    }
                    let link = self.link_entry(peer, other);
                    if !link.up && !link.pending {
                        link.pending = true;
                        self.push(self.s.link_setup, Event::LinkUp { a: peer, b: other });
                    }
                }
                (MeshOutput::Close(_), Some(other)) => {
                    if let Some(link) = self.unlink(peer, other)
                        && link.up
                    {
                        let now = self.at(self.now);
                        let out = self.peers[peer].overlay.link_down(&self.ids[other], now);
                        self.apply(peer, out);
                        let out = self.peers[other].overlay.link_down(&self.ids[peer], now);
                        self.apply(other, out);
                    }
                }
                (MeshOutput::Send(_, frame), Some(other)) => {
                    if frame
                        .payload
                        .starts_with(crate::mesh::plumtree::CONTROL_TAG)
                    {
                        self.control += 1;
                    } else {
                        self.sends += 1;
                    }
                    if !self.links.get(&key(peer, other)).is_some_and(|l| l.up) {
                        continue;
                    }
                    let jitter = self.rng.gen_range(0.8..1.2);
                    let mut delay = self.s.latency.mul_f64(jitter);
                    let rto = (self.s.latency * 3).max(Duration::from_millis(200));
                    while self.s.loss > 0.0 && self.rng.gen_bool(self.s.loss.min(0.9)) {
                        delay += rto;
                    }
                    self.push(
                        delay,
                        Event::Frame {
                            from: peer,
                            to: other,
                            frame: Box::new(frame),
                        },
                    );
                }
                (MeshOutput::Have(_, ids), Some(other)) => self.inventory(peer, other, false, ids),
                (MeshOutput::Want(_, ids), Some(other)) => self.inventory(peer, other, true, ids),
            }
        }
    }

    /// A broadcast reached `peer` (counted if within the deadline).
    fn delivered(&mut self, peer: usize, frame: &CellFrame) {
        if let Some(&b) = self.by_frame.get(&(frame.origin, frame.seq)) {
            let bc = &mut self.broadcasts[b];
            if self.now <= bc.sent_at + DEADLINE {
                bc.received.entry(peer).or_insert(frame.hops as u32);
            }
        }
    }

    fn seal(&mut self, make_topo: &dyn Fn(&[SimMember]) -> Arc<O::Topology>) {
        let roster: Vec<SimMember> = self
            .peers
            .iter()
            .filter(|p| p.alive && p.in_roster)
            .map(|p| p.member.clone())
            .collect();
        let topo = make_topo(&roster);
        self.topo = Some(topo.clone());
        let now = self.at(self.now);
        for i in 0..self.peers.len() {
            let p = &self.peers[i];
            if p.alive && p.in_roster && p.roster_at.is_some() {
                let out = self.peers[i].overlay.set_topology(topo.clone(), now);
                self.apply(i, out);
            }
        }
    }

    /// The link between `a` and `b`, made (not up, not pending) if there was none.
    fn link_entry(&mut self, a: usize, b: usize) -> &mut Link {
        let k = key(a, b);
        if !self.links.contains_key(&k) {
            self.adjacent.entry(a).or_default().push(b);
            self.adjacent.entry(b).or_default().push(a);
        }
        self.links.entry(k).or_default()
    }

    /// Forgets the link between `a` and `b`; returns it if there was one.
    fn unlink(&mut self, a: usize, b: usize) -> Option<Link> {
        let link = self.links.remove(&key(a, b))?;
        for (end, other) in [(a, b), (b, a)] {
            if let Some(ends) = self.adjacent.get_mut(&end)
                && let Some(i) = ends.iter().position(|&n| n == other)
            {
                ends.swap_remove(i);
            }
        }
        Some(link)
    }

    fn crash(&mut self, victim: usize, polite: bool) {
        if !self.peers[victim].alive {
            return;
        }
        self.peers[victim].alive = false;
        self.peers[victim].left_at = Some(self.now);
        let notice = if polite {
            Duration::from_millis(100)
        } else {
            self.s.detect
        };
        self.push(
            notice,
            Event::Detect {
                dead: victim,
                urgent: true,
            },
        );
    }
}

fn run<O: Overlay + Send>(
    s: &Scenario,
    algo: &'static str,
    new_peer: impl Fn(String) -> O,
    make_topo: impl Fn(&[SimMember]) -> Arc<O::Topology>,
    bridges: impl Fn(&O::Topology, &mut StdRng) -> Vec<String>,
    sealing: Sealing,
    roster_sync: bool,
) -> Report {
    let mut sim: Sim<O> = Sim {
        s,
        t0: Instant::now(),
        now: Duration::ZERO,
        rng: StdRng::seed_from_u64(s.seed),
        queue: BinaryHeap::new(),
        n_events: 0,
        peers: Vec::new(),
        ids: Vec::new(),
        index: HashMap::default(),
        links: HashMap::default(),
        adjacent: HashMap::default(),
        topo: None,
        sealing,
        broadcasts: Vec::new(),
        by_frame: HashMap::default(),
        sends: 0,
        links_peak: 0,
        control: 0,
        roster_sync,
    };
    // Traffic and churn draw from their own stream, so both algorithms see the same ones.
    let mut traffic = StdRng::seed_from_u64(s.seed ^ 0x5eed);
    for _ in 0..s.n {
        let member = new_member(&mut traffic);
        sim.index.insert(member.id.clone(), sim.peers.len());
        sim.ids.push(member.id.clone());
        sim.peers.push(SimPeer {
            overlay: new_peer(member.id.clone()),
            member,
            alive: true,
            joined_at: Duration::ZERO,
            left_at: None,
            in_roster: true,
            roster_at: Some(Duration::ZERO),
            syncing: false,
        });
    }
    sim.seal(&make_topo);
    sim.push(TICK, Event::Tick);
    sim.push(s.msg_every, Event::Broadcast);
    if s.churn_per_s > 0.0 {
        sim.push(Duration::from_secs_f64(1.0 / s.churn_per_s), Event::Churn);
    }
    if s.bridge_kills > 0 {
        sim.push(s.kill_at, Event::Kill);
    }
    let end = s.duration.as_micros() as u64;
    // Nothing a delivery causes arrives sooner than this (a frame or inventory's shortest
    // latency, a link's setup, a polite leave's notice), so deliveries within it are independent.
    let lookahead = (s.latency.mul_f64(0.8))
        .min(s.link_setup)
        .min(Duration::from_millis(100))
        .as_micros() as u64;
    let is_delivery = |e: &Event| matches!(e, Event::Frame { .. } | Event::Inventory { .. });
    while let Some(Reverse(q)) = sim.queue.pop() {
        if q.at > end {
            break;
        }
        if is_delivery(&q.event) {
            let limit = (q.at + lookahead).min(end + 1);
            let mut batch = vec![q];
            while sim
                .queue
                .peek()
                .is_some_and(|Reverse(n)| n.at < limit && is_delivery(&n.event))
            {
                if let Some(Reverse(n)) = sim.queue.pop() {
                    batch.push(n);
                }
            }
            sim.deliver(batch);
            continue;
        }
        sim.now = Duration::from_micros(q.at);
        let now = sim.at(sim.now);
        match q.event {
            Event::Frame { .. } | Event::Inventory { .. } => {}
            Event::LinkUp { a, b } => {
                let Some(link) = sim.links.get_mut(&key(a, b)) else {
                    continue;
                };
                link.pending = false;
                if !sim.peers[a].alive || !sim.peers[b].alive {
                    sim.unlink(a, b);
                    continue;
                }
                link.up = true;
                let (ida, idb) = (
                    sim.peers[a].member.id.clone(),
                    sim.peers[b].member.id.clone(),
                );
                // Frames carry the origin's clock (here the simulation's), so a newcomer is
                // replayed only what was sent since it joined.
                let since = |p: &SimPeer<O>| p.joined_at.as_micros() as u64;
                let (sa, sb) = (since(&sim.peers[a]), since(&sim.peers[b]));
                let out = sim.peers[a].overlay.link_up_since(&idb, now, sb);
                sim.apply(a, out);
                // `a` may have refused the link (at its link cap): then `b` never sees it up.
                if sim.links.get(&key(a, b)).is_some_and(|l| l.up) {
                    let out = sim.peers[b].overlay.link_up_since(&ida, now, sa);
                    sim.apply(b, out);
                }
                // Links only grow when one comes up, so the peak is seen here.
                sim.links_peak = sim.links_peak.max(
                    sim.peers[a]
                        .overlay
                        .link_count()
                        .max(sim.peers[b].overlay.link_count()),
                );
                for end in [a, b] {
                    let p = &mut sim.peers[end];
                    if sim.roster_sync && p.roster_at.is_none() && !p.syncing {
                        p.syncing = true;
                        let after = sim.roster_transfer();
                        sim.push(after, Event::RosterSynced { peer: end });
                    }
                }
            }
            Event::RosterSynced { peer } => {
                if sim.peers[peer].alive {
                    sim.peers[peer].roster_at = Some(sim.now);
                    if let Some(topo) = sim.topo.clone() {
                        let out = sim.peers[peer].overlay.set_topology(topo, now);
                        sim.apply(peer, out);
                    }
                }
            }
            Event::Detect { dead, urgent } => {
                let dead_id = sim.peers[dead].member.id.clone();
                let mut neighbours = sim.adjacent.get(&dead).cloned().unwrap_or_default();
                neighbours.sort_unstable();
                for n in neighbours {
                    sim.unlink(dead, n);
                    let out = sim.peers[n].overlay.link_down(&dead_id, now);
                    sim.apply(n, out);
                }
                sim.peers[dead].in_roster = false;
                sim.sealing.changed(now, urgent);
            }
            Event::EnterRoster { peer } => {
                if sim.peers[peer].alive {
                    sim.peers[peer].in_roster = true;
                    if !sim.roster_sync {
                        sim.peers[peer].roster_at = Some(sim.now);
                    }
                    sim.sealing.changed(now, true);
                }
            }
            Event::Tick => {
                if sim.sealing.due(now) {
                    sim.seal(&make_topo);
                }
                // Every peer ticks on some core; what the ticks say is applied in peer order.
                let jobs: Vec<(usize, usize)> = (0..sim.peers.len())
                    .filter(|&i| sim.peers[i].alive)
                    .map(|i| (i, i))
                    .collect();
                let index = &sim.index;
                let outs = parallel::map_peers(&mut sim.peers, jobs, |p, i| {
                    let out = p.overlay.tick(now);
                    let peers = resolve(index, &out);
                    (i, out, peers)
                });
                for (i, out, peers) in outs {
                    sim.apply_resolved(i, out, peers);
                }
                sim.push(TICK, Event::Tick);
            }
            Event::Broadcast => {
                let settled: Vec<usize> = (0..sim.peers.len())
                    .filter(|&i| sim.peers[i].alive && sim.peers[i].joined_at + SETTLED <= sim.now)
                    .collect();
                if !settled.is_empty() {
                    let origin = settled[traffic.gen_range(0..settled.len())];
                    let clock = sim.now.as_micros() as u64;
                    let p = &mut sim.peers[origin];
                    let seq = p.overlay.next_seq(clock);
                    let frame = CellFrame {
                        fanout: true,
                        // Unsigned here: each peer's own topology bounds the hops.
                        max_hops: u8::MAX,
                        hops: 0,
                        origin: p.member.key,
                        seq,
                        targets: Vec::new(),
                        payload: Bytes::from_static(b"broadcast"),
                        sig: [0; 64],
                    };
                    sim.by_frame
                        .insert((frame.origin, seq), sim.broadcasts.len());
                    sim.broadcasts.push(Broadcast {
                        sent_at: sim.now,
                        origin,
                        received: HashMap::default(),
                    });
                    let out = sim.peers[origin].overlay.originate(frame, now);
                    sim.apply(origin, out);
                }
                sim.push(s.msg_every, Event::Broadcast);
            }
            Event::Churn => {
                let alive: Vec<usize> = (0..sim.peers.len())
                    .filter(|&i| sim.peers[i].alive)
                    .collect();
                if !alive.is_empty() {
                    let victim = alive[traffic.gen_range(0..alive.len())];
                    let polite = traffic.gen_bool(0.5);
                    sim.crash(victim, polite);
                }
                let member = new_member(&mut traffic);
                let i = sim.peers.len();
                sim.index.insert(member.id.clone(), i);
                sim.ids.push(member.id.clone());
                sim.peers.push(SimPeer {
                    overlay: new_peer(member.id.clone()),
                    member,
                    alive: true,
                    joined_at: sim.now,
                    left_at: None,
                    in_roster: false,
                    roster_at: None,
                    syncing: false,
                });
                sim.push(s.census_delay, Event::EnterRoster { peer: i });
                sim.push(Duration::from_secs_f64(1.0 / s.churn_per_s), Event::Churn);
            }
            Event::Kill => {
                if let Some(topo) = sim.topo.clone() {
                    let victims = bridges(&topo, &mut traffic);
                    for id in victims.into_iter().take(s.bridge_kills) {
                        if let Some(&v) = sim.index.get(&id) {
                            sim.crash(v, false);
                        }
                    }
                }
            }
        }
    }
    report(&sim, algo)
}

#[cfg(test)]
mod tests;
