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
use serde::Serialize;

use crate::mesh::genos::{GENOS_CELL_SIZE, GenosPeer, GenosSealer, GenosTopology};
use crate::mesh::plumtree::{PlumPeer, PlumTopology};
use crate::mesh::{CellSize, Member, Mesh, MeshConfig, MeshOutput, Overlay, Topology, placement};
use crate::wire::cell::CellFrame;

/// One simulated situation.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Peers at the start.
    pub n: usize,
    /// RNG seed: the same seed gives both algorithms the same arrivals, departures and traffic.
    pub seed: u64,
    /// Simulated time.
    pub duration: Duration,
    /// Mean one-way link latency.
    pub latency: Duration,
    /// Fraction of transmissions lost (and retransmitted).
    pub loss: f64,
    /// Peers replaced per second (half leave politely, half crash).
    pub churn_per_s: f64,
    /// Bridges crashed at `kill_at`.
    pub bridge_kills: usize,
    /// When the bridges die.
    pub kill_at: Duration,
    /// Time from asking for a link to its data channel being open.
    pub link_setup: Duration,
    /// Time for neighbours to notice a crashed peer.
    pub detect: Duration,
    /// Time for a newcomer's announce to reach everybody.
    pub census_delay: Duration,
    /// A broadcast from a random settled peer this often.
    pub msg_every: Duration,
    /// Our cell sizing.
    pub cell_size: CellSize,
    /// Throughput of one link, for a newcomer's roster transfer.
    pub link_bytes_per_s: f64,
    /// Checking one roster record's signature.
    pub verify_cost: Duration,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            n: 1_000,
            seed: 1,
            duration: Duration::from_secs(40),
            latency: Duration::from_millis(20),
            loss: 0.0,
            churn_per_s: 0.0,
            bridge_kills: 0,
            kill_at: Duration::from_secs(20),
            link_setup: Duration::from_millis(300),
            detect: Duration::from_secs(3),
            census_delay: Duration::from_millis(1_500),
            msg_every: Duration::from_millis(100),
            cell_size: CellSize::default(),
            link_bytes_per_s: 2e6,
            verify_cost: Duration::from_micros(80),
        }
    }
}

/// What one algorithm did in one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `meshrtc` or `genosrtc`.
    pub algo: &'static str,
    /// Peers at the start.
    pub n: usize,
    /// Peers replaced per second.
    pub churn_per_s: f64,
    /// Broadcasts received by settled peers / settled peers that should have received them.
    pub delivery: f64,
    /// Links per peer at the end, mean.
    pub links_mean: f64,
    /// Links per peer at the end, max.
    pub links_max: usize,
    /// Hops to first receipt, median.
    pub hops_p50: u32,
    /// Hops to first receipt, 99th percentile.
    pub hops_p99: u32,
    /// Hops to first receipt, max.
    pub hops_max: u32,
    /// Milliseconds from the bridge kills until every broadcast reached everyone again (0: no
    /// broadcast missed anyone; null: never healed, or no kills).
    pub heal_ms: Option<f64>,
    /// Broadcasts that reached fewer than all settled peers.
    pub incomplete_broadcasts: usize,
    /// Frames carrying a broadcast, sent per broadcast (all peers, all hops).
    pub sends_per_broadcast: f64,
    /// Control messages per broadcast: frame inventories (ours), lazy `IHAVE`s, prunes and
    /// grafts (Plumtree).
    pub control_per_broadcast: f64,
    /// Overlay state per peer, estimated bytes.
    pub mem_per_peer_bytes: f64,
    /// Newcomers: milliseconds from joining to holding the whole roster, median (null: none).
    pub roster_ms_p50: Option<f64>,
    /// The same, slowest newcomer.
    pub roster_ms_max: Option<f64>,
}

/// Runs our algorithm.
pub fn run_meshrtc(s: &Scenario) -> Report {
    let size = s.cell_size;
    run(
        s,
        "meshrtc",
        |id| Mesh::new(id, MeshConfig::default()),
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
    index: HashMap<String, usize>,
    links: HashMap<(usize, usize), Link>,
    topo: Option<Arc<O::Topology>>,
    sealing: Sealing,
    broadcasts: Vec<Broadcast>,
    by_frame: HashMap<([u8; 32], u64), usize>,
    sends: u64,
    /// Control messages: inventories (ours), `IHAVE`/`PRUNE`/`GRAFT` (Plumtree).
    control: u64,
    /// Newcomers learn the roster over their first link (ours), not from the relay (the seed).
    roster_sync: bool,
}

fn key(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

/// Bytes of one roster record on the wire.
const RECORD_BYTES: f64 = crate::wire::roster::RECORD_LEN as f64;

impl<O: Overlay> Sim<'_, O> {
    fn at(&self, d: Duration) -> Instant {
        self.t0 + d
    }

    /// An inventory message (one send) over a link that is up.
    fn inventory(&mut self, peer: usize, to: &str, want: bool, ids: Vec<crate::mesh::FrameId>) {
        let Some(&other) = self.index.get(to) else {
            return;
        };
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

impl<O: Overlay> Sim<'_, O> {
    fn apply(&mut self, peer: usize, outputs: Vec<MeshOutput>) {
        for o in outputs {
            match o {
                MeshOutput::Open(id) => {
                    let Some(&other) = self.index.get(&id) else {
                        continue;
                    };
                    if !self.peers[other].alive {
                        continue;
                    }
                    let link = self.links.entry(key(peer, other)).or_default();
                    if !link.up && !link.pending {
                        link.pending = true;
                        self.push(self.s.link_setup, Event::LinkUp { a: peer, b: other });
                    }
                }
                MeshOutput::Close(id) => {
                    let Some(&other) = self.index.get(&id) else {
                        continue;
                    };
                    if let Some(link) = self.links.remove(&key(peer, other))
                        && link.up
                    {
                        let now = self.at(self.now);
                        let out = self.peers[peer].overlay.link_down(&id, now);
                        self.apply(peer, out);
                        let me = self.peers[peer].member.id.clone();
                        let out = self.peers[other].overlay.link_down(&me, now);
                        self.apply(other, out);
                    }
                }
                MeshOutput::Send(id, frame) => {
                    let Some(&other) = self.index.get(&id) else {
                        continue;
                    };
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
                MeshOutput::Have(id, ids) | MeshOutput::Want(id, ids)
                    if ids.is_empty() || !self.index.contains_key(&id) => {}
                MeshOutput::Have(id, ids) => self.inventory(peer, &id, false, ids),
                MeshOutput::Want(id, ids) => self.inventory(peer, &id, true, ids),
                MeshOutput::Deliver(frame) => {
                    if let Some(&b) = self.by_frame.get(&(frame.origin, frame.seq)) {
                        let bc = &mut self.broadcasts[b];
                        if self.now <= bc.sent_at + DEADLINE {
                            bc.received.entry(peer).or_insert(frame.hops as u32);
                        }
                    }
                }
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

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn run<O: Overlay>(
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
        index: HashMap::default(),
        links: HashMap::default(),
        topo: None,
        sealing,
        broadcasts: Vec::new(),
        by_frame: HashMap::default(),
        sends: 0,
        control: 0,
        roster_sync,
    };
    // Traffic and churn draw from their own stream, so both algorithms see the same ones.
    let mut traffic = StdRng::seed_from_u64(s.seed ^ 0x5eed);
    for _ in 0..s.n {
        let member = new_member(&mut traffic);
        sim.index.insert(member.id.clone(), sim.peers.len());
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
    while let Some(Reverse(q)) = sim.queue.pop() {
        if q.at > end {
            break;
        }
        sim.now = Duration::from_micros(q.at);
        let now = sim.at(sim.now);
        match q.event {
            Event::Frame { from, to, frame } => {
                if !sim.peers[to].alive || !sim.links.get(&key(from, to)).is_some_and(|l| l.up) {
                    continue;
                }
                let from_id = sim.peers[from].member.id.clone();
                if let Ok(out) = sim.peers[to].overlay.on_frame(&from_id, *frame, now) {
                    sim.apply(to, out);
                }
            }
            Event::LinkUp { a, b } => {
                let Some(link) = sim.links.get_mut(&key(a, b)) else {
                    continue;
                };
                link.pending = false;
                if !sim.peers[a].alive || !sim.peers[b].alive {
                    sim.links.remove(&key(a, b));
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
                let out = sim.peers[b].overlay.link_up_since(&ida, now, sa);
                sim.apply(b, out);
                for end in [a, b] {
                    let p = &mut sim.peers[end];
                    if sim.roster_sync && p.roster_at.is_none() && !p.syncing {
                        p.syncing = true;
                        let after = sim.roster_transfer();
                        sim.push(after, Event::RosterSynced { peer: end });
                    }
                }
            }
            Event::Inventory {
                from,
                to,
                want,
                ids,
            } => {
                if !sim.peers[to].alive || !sim.links.get(&key(from, to)).is_some_and(|l| l.up) {
                    continue;
                }
                let from_id = sim.peers[from].member.id.clone();
                let out = if want {
                    sim.peers[to].overlay.on_want(&from_id, &ids, now)
                } else {
                    sim.peers[to].overlay.on_have(&from_id, &ids, now)
                };
                sim.apply(to, out);
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
                let mut neighbours: Vec<usize> = sim
                    .links
                    .keys()
                    .filter(|(a, b)| *a == dead || *b == dead)
                    .map(|&(a, b)| if a == dead { b } else { a })
                    .collect();
                neighbours.sort_unstable();
                for n in neighbours {
                    sim.links.remove(&key(dead, n));
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
                for i in 0..sim.peers.len() {
                    if sim.peers[i].alive {
                        let out = sim.peers[i].overlay.tick(now);
                        sim.apply(i, out);
                    }
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
                        ttl: 0,
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

fn report<O: Overlay>(sim: &Sim<O>, algo: &'static str) -> Report {
    let s = sim.s;
    let mut expected = 0usize;
    let mut got = 0usize;
    let mut hops = Vec::new();
    let mut incomplete = 0;
    let mut last_incomplete_after_kill: Option<Duration> = None;
    for b in &sim.broadcasts {
        if b.sent_at + DEADLINE > s.duration {
            continue;
        }
        let should: Vec<usize> = (0..sim.peers.len())
            .filter(|&i| i != b.origin)
            .filter(|&i| {
                let p = &sim.peers[i];
                p.joined_at + SETTLED <= b.sent_at
                    && p.left_at.is_none_or(|l| l > b.sent_at + DEADLINE)
            })
            .collect();
        let reached = should.iter().filter(|i| b.received.contains_key(i)).count();
        expected += should.len();
        got += reached;
        hops.extend(should.iter().filter_map(|i| b.received.get(i).copied()));
        if reached < should.len() {
            incomplete += 1;
            if s.bridge_kills > 0 && b.sent_at >= s.kill_at {
                last_incomplete_after_kill = Some(b.sent_at);
            }
        }
    }
    hops.sort_unstable();
    let alive: Vec<&SimPeer<O>> = sim.peers.iter().filter(|p| p.alive).collect();
    let links: Vec<usize> = alive.iter().map(|p| p.overlay.link_count()).collect();
    let mut roster_ms: Vec<f64> = sim
        .peers
        .iter()
        .filter(|p| p.joined_at > Duration::ZERO)
        .filter_map(|p| {
            p.roster_at
                .map(|at| (at - p.joined_at).as_secs_f64() * 1000.0)
        })
        .collect();
    roster_ms.sort_by(f64::total_cmp);
    let heal_ms = (s.bridge_kills > 0).then(|| match last_incomplete_after_kill {
        None => 0.0,
        Some(t) => (t + s.msg_every - s.kill_at).as_secs_f64() * 1000.0,
    });
    Report {
        algo,
        n: s.n,
        churn_per_s: s.churn_per_s,
        delivery: if expected == 0 {
            1.0
        } else {
            got as f64 / expected as f64
        },
        links_mean: links.iter().sum::<usize>() as f64 / links.len().max(1) as f64,
        links_max: links.iter().copied().max().unwrap_or(0),
        hops_p50: percentile(&hops, 0.5),
        hops_p99: percentile(&hops, 0.99),
        hops_max: hops.last().copied().unwrap_or(0),
        heal_ms,
        incomplete_broadcasts: incomplete,
        sends_per_broadcast: sim.sends as f64 / sim.broadcasts.len().max(1) as f64,
        control_per_broadcast: sim.control as f64 / sim.broadcasts.len().max(1) as f64,
        mem_per_peer_bytes: alive
            .iter()
            .map(|p| p.overlay.memory_bytes())
            .sum::<usize>() as f64
            / alive.len().max(1) as f64,
        roster_ms_p50: (!roster_ms.is_empty()).then(|| roster_ms[roster_ms.len() / 2]),
        roster_ms_max: roster_ms.last().copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Scenario {
        Scenario {
            n: 200,
            duration: Duration::from_secs(25),
            ..Scenario::default()
        }
    }

    #[test]
    fn ours_delivers_everything_in_a_quiet_room() {
        let r = run_meshrtc(&small());
        assert_eq!(r.delivery, 1.0, "{r:?}");
        assert!(r.links_max <= 24, "{r:?}");
        assert!(
            r.hops_max as f64 <= 2.0 * (200f64 / 8.0).log2() + 3.0,
            "{r:?}"
        );
    }

    #[test]
    fn a_dead_bridge_costs_ours_nothing_and_the_seed_a_cell() {
        let s = Scenario {
            bridge_kills: 3,
            ..small()
        };
        let ours = run_meshrtc(&s);
        let seed = run_genosrtc(&s);
        assert_eq!(ours.heal_ms, Some(0.0), "{ours:?}");
        assert_eq!(ours.delivery, 1.0, "{ours:?}");
        assert!(seed.heal_ms.unwrap_or(f64::MAX) > 1_000.0, "{seed:?}");
        assert!(seed.delivery < 1.0, "{seed:?}");
    }

    #[test]
    fn newcomers_take_the_roster_over_their_first_link_and_miss_nothing() {
        let s = Scenario {
            churn_per_s: 4.0,
            ..small()
        };
        let r = run_meshrtc(&s);
        assert_eq!(r.delivery, 1.0, "{r:?}");
        let (p50, max) = (
            r.roster_ms_p50.expect("newcomers"),
            r.roster_ms_max.expect("newcomers"),
        );
        // Announce (1.5 s), the room's seal (0.5 s), a link (0.3 s), then the transfer.
        assert!(p50 >= 2_000.0 && max <= 5_000.0, "{r:?}");
    }

    #[test]
    fn the_plumtree_baseline_delivers_everything_over_small_views() {
        let r = run_plumtree(&Scenario {
            bridge_kills: 3,
            ..small()
        });
        assert_eq!(r.delivery, 1.0, "{r:?}");
        assert!(r.links_mean <= 10.0, "{r:?}");
    }

    #[test]
    fn same_seed_same_result() {
        let a = run_meshrtc(&small());
        let b = run_meshrtc(&small());
        assert_eq!(
            serde_json::to_string(&a).ok(),
            serde_json::to_string(&b).ok()
        );
    }
}
