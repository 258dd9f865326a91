//! One peer's side of the overlay: which links to hold, and where each frame goes next.
//!
//! Forwarding is a directed flood over the overlay links with bounded dedup: the first member
//! of a cell to receive a frame (its origin, or whoever got it over a bridge) sends it to every
//! link and marks it "fanned out"; a member that gets a fanned-out frame from a cellmate only
//! passes it over its own bridges. Two bridge pairs per cell edge and the hypercube's spare
//! paths mean a dead bridge costs no delivery, only a duplicate less.
//!
//! When more die at once — both bridge pairs of an edge, or every link of a sender — frames sent
//! before the topology heals would be lost. So each peer keeps the frames of the last
//! [`MeshConfig::replay_window`] and tells every link that comes up which ones it holds (ids
//! only); the other end asks for those it lacks, so the healed topology's new bridges carry them
//! across, late rather than never, and links between peers that saw everything cost one list.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::drops::DropReason;
use crate::mesh::replay::Replay;
use crate::mesh::topology::Topology;
use crate::mesh::{FrameId, MeshOutput, Overlay};
use crate::wire::cell::CellFrame;

/// How often one link's request for recent frames is answered.
const WANT_EVERY: Duration = Duration::from_secs(1);

/// Tunables of a peer's overlay state.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// How long a link the topology no longer wants stays open (joins never stall traffic).
    pub grace: Duration,
    /// How often a wanted link that is not up is asked for again.
    pub redial: Duration,
    /// Frames remembered for dedup.
    pub dedup_capacity: usize,
    /// Origins whose replay floor is remembered.
    pub origin_capacity: usize,
    /// Above this many links, links the topology no longer wants close without a grace period.
    pub max_links: usize,
    /// How long a frame is kept for links that come up later.
    pub replay_window: Duration,
    /// Most frames kept for replay.
    pub replay_frames: usize,
    /// Most payload bytes kept for replay.
    pub replay_bytes: usize,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            grace: Duration::from_secs(5),
            redial: Duration::from_secs(3),
            dedup_capacity: 8_192,
            origin_capacity: 16_384,
            max_links: 32,
            replay_window: Duration::from_secs(30),
            replay_frames: 512,
            replay_bytes: 8 << 20,
        }
    }
}

/// Why a received frame was not delivered or forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshDrop {
    /// Already seen (normal: frames arrive over several paths).
    Duplicate,
    /// Older than what this peer already forgot for that origin: a replay.
    Replay,
    /// Our own frame coming back.
    Own,
}

impl MeshDrop {
    /// Counter name.
    pub fn counter(self) -> DropReason {
        match self {
            MeshDrop::Duplicate => DropReason::CellDuplicate,
            MeshDrop::Replay => DropReason::CellReplay,
            MeshDrop::Own => DropReason::CellOwnEcho,
        }
    }
}

/// Bounded memory of (origin, seq) pairs, with a per-origin replay floor.
///
/// Each pair keeps the most hops any copy of it had left here. Copies race: under load a copy
/// that came the long way can arrive first with its TTL nearly spent; if that one alone were
/// passed on, the flood could stop short of peers only the short way reaches. So a later copy
/// with more hops left is passed on again (never delivered twice).
#[derive(Debug, Default)]
struct Seen {
    set: FxHashMap<([u8; 32], u64), u8>,
    order: VecDeque<([u8; 32], u64)>,
    /// Replay floors per origin.
    floors: FxHashMap<[u8; 32], Floor>,
}

/// Replay state of one origin.
#[derive(Debug, Clone, Copy)]
struct Floor {
    /// Highest seq evicted from the dedup window: anything at or below is a replay.
    seq: u64,
    /// When the origin was last heard from.
    heard: Instant,
    /// How many of its frames are in the dedup window.
    in_window: u32,
}

/// How a copy of a frame relates to what was seen of it before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copy {
    /// The first copy: deliver and pass on.
    First,
    /// Seen before, but this copy has more hops left: pass on again, do not deliver.
    MoreHops,
}

impl Seen {
    fn check(
        &mut self,
        origin: [u8; 32],
        seq: u64,
        ttl: u8,
        now: Instant,
        cfg: &MeshConfig,
    ) -> Result<Copy, MeshDrop> {
        if self.floors.get(&origin).is_some_and(|f| seq <= f.seq) {
            return Err(MeshDrop::Replay);
        }
        if let Some(best) = self.set.get_mut(&(origin, seq)) {
            if ttl > *best {
                *best = ttl;
                return Ok(Copy::MoreHops);
            }
            return Err(MeshDrop::Duplicate);
        }
        self.set.insert((origin, seq), ttl);
        self.order.push_back((origin, seq));
        let entry = self.floors.entry(origin).or_insert(Floor {
            seq: 0,
            heard: now,
            in_window: 0,
        });
        entry.heard = now;
        entry.in_window += 1;
        while self.order.len() > cfg.dedup_capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.set.remove(&old);
            if let Some(f) = self.floors.get_mut(&old.0) {
                f.seq = f.seq.max(old.1);
                f.in_window = f.in_window.saturating_sub(1);
            }
        }
        if self.floors.len() > cfg.origin_capacity {
            // Forget the quietest eighth of the origins with nothing left in the dedup window,
            // in one pass, so the scan is paid once per many frames.
            let mut quiet: Vec<([u8; 32], Instant)> = self
                .floors
                .iter()
                .filter(|(_, f)| f.in_window == 0)
                .map(|(o, f)| (*o, f.heard))
                .collect();
            quiet.sort_unstable_by_key(|(_, at)| *at);
            for (o, _) in quiet.into_iter().take(cfg.origin_capacity / 8 + 1) {
                self.floors.remove(&o);
            }
        }
        Ok(Copy::First)
    }

    fn bytes(&self) -> usize {
        self.set.len() * 49 + self.order.len() * 40 + self.floors.len() * 64
    }
}

/// One peer's overlay state (see the module docs).
#[derive(Debug)]
pub struct Mesh {
    me: String,
    cfg: MeshConfig,
    topo: Arc<Topology>,
    linked: BTreeSet<String>,
    /// The topology's links for this peer, and which of them are cellmates.
    wanted: Vec<String>,
    cellmates: FxHashSet<String>,
    next_redial_scan: Option<Instant>,
    /// Links we asked for, and when we last asked.
    asked: BTreeMap<String, Instant>,
    /// Links we asked for that the topology no longer wants, and when to close them.
    retiring: BTreeMap<String, Instant>,
    seen: Seen,
    last_seq: u64,
    /// Frames of the last `replay_window`, for links that come up later.
    replay: Replay,
    /// When each link's last request for frames was answered (one a second at most: a request
    /// can ask for the whole replay buffer).
    wants_answered: FxHashMap<String, Instant>,
    /// Own frames originated while this peer had no link (kept for the first link).
    sent_without_links: u64,
}

impl Mesh {
    /// A peer with no topology yet.
    pub fn new(me: impl Into<String>, cfg: MeshConfig) -> Mesh {
        let replay = Replay::new(cfg.replay_window, cfg.replay_frames, cfg.replay_bytes);
        Mesh {
            me: me.into(),
            cfg,
            topo: Arc::new(Topology::compute(Vec::new(), Default::default())),
            linked: BTreeSet::new(),
            wanted: Vec::new(),
            cellmates: FxHashSet::default(),
            next_redial_scan: None,
            asked: BTreeMap::new(),
            retiring: BTreeMap::new(),
            seen: Seen::default(),
            last_seq: 0,
            replay,
            wants_answered: FxHashMap::default(),
            sent_without_links: 0,
        }
    }

    /// Own frames originated while this peer had no link at all (they wait for one).
    pub fn sent_without_links(&self) -> u64 {
        self.sent_without_links
    }

    /// Own frames that expired unsent: this peer had no link for the whole replay window.
    pub fn unsent_expired(&self) -> u64 {
        self.replay.unsent_expired()
    }

    /// Takes a frame out of the replay buffer: overlay notices (hello, gone, alive) have their
    /// own repair, and replaying them to every new link would only add duplicates.
    pub fn forget_recent(&mut self, origin: &[u8; 32], seq: u64) {
        self.replay.forget(origin, seq);
    }

    /// The topology in force.
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topo
    }

    /// True when a copy of this frame with at least as many hops left was already handled
    /// (checked before its signature is).
    pub fn seen(&self, origin: &[u8; 32], seq: u64, ttl: u8) -> bool {
        let ttl = ttl.min(self.topo.ttl());
        self.seen
            .set
            .get(&(*origin, seq))
            .is_some_and(|best| *best >= ttl)
    }

    /// Links that are up.
    pub fn linked(&self) -> impl Iterator<Item = &str> {
        self.linked.iter().map(String::as_str)
    }

    fn forward(&self, from: Option<&str>, frame: &CellFrame, out: &mut Vec<MeshOutput>) {
        let bridges_only = from.is_some_and(|f| frame.fanout && self.cellmates.contains(f));
        let mut next = frame.clone();
        next.fanout = !bridges_only;
        for peer in &self.linked {
            if Some(peer.as_str()) == from || bridges_only && self.cellmates.contains(peer) {
                continue;
            }
            out.push(MeshOutput::Send(peer.clone(), next.clone()));
        }
    }
}

impl Overlay for Mesh {
    type Topology = Topology;

    fn set_topology(&mut self, topo: Arc<Topology>, now: Instant) -> Vec<MeshOutput> {
        self.topo = topo;
        let order: Vec<String> = self
            .topo
            .links_of(&self.me)
            .into_iter()
            .map(str::to_owned)
            .collect();
        self.cellmates = order
            .iter()
            .filter(|p| self.topo.same_cell(&self.me, p))
            .cloned()
            .collect();
        self.wanted = order.clone();
        let wanted: HashSet<String> = order.iter().cloned().collect();
        let mut out = Vec::new();
        for p in &order {
            self.retiring.remove(p);
            if !self.linked.contains(p) && !self.asked.contains_key(p) {
                self.asked.insert(p.clone(), now);
                out.push(MeshOutput::Open(p.clone()));
            }
        }
        for p in self.asked.keys() {
            if !wanted.contains(p) && !self.retiring.contains_key(p) {
                self.retiring.insert(p.clone(), now + self.cfg.grace);
            }
        }
        out
    }

    fn link_up(&mut self, peer: &str, now: Instant) -> Vec<MeshOutput> {
        self.link_up_since(peer, now, 0)
    }

    fn link_up_since(&mut self, peer: &str, now: Instant, joined_seq: u64) -> Vec<MeshOutput> {
        if !self.linked.insert(peer.to_owned()) {
            return Vec::new();
        }
        self.replay.expire(now);
        // The new link may be a healed path to peers that missed these: it hears which we hold
        // (not what was sent before it joined) and asks for what it lacks.
        let ids = self.replay.ids_since(joined_seq);
        if ids.is_empty() {
            return Vec::new();
        }
        vec![MeshOutput::Have(peer.to_owned(), ids)]
    }

    fn on_have(&mut self, from: &str, ids: &[FrameId], _now: Instant) -> Vec<MeshOutput> {
        let missing: Vec<FrameId> = ids
            .iter()
            .filter(|(origin, seq)| {
                !self.seen.set.contains_key(&(*origin, *seq))
                    && self.seen.floors.get(origin).is_none_or(|f| *seq > f.seq)
            })
            .take(self.cfg.replay_frames)
            .copied()
            .collect();
        if missing.is_empty() {
            return Vec::new();
        }
        vec![MeshOutput::Want(from.to_owned(), missing)]
    }

    fn on_want(&mut self, from: &str, ids: &[FrameId], now: Instant) -> Vec<MeshOutput> {
        if !self.linked.contains(from)
            || self
                .wants_answered
                .get(from)
                .is_some_and(|at| now.saturating_duration_since(*at) < WANT_EVERY)
        {
            return Vec::new();
        }
        self.wants_answered.insert(from.to_owned(), now);
        self.replay.expire(now);
        self.replay
            .take(ids)
            .into_iter()
            .map(|f| MeshOutput::Send(from.to_owned(), f))
            .collect()
    }

    fn link_down(&mut self, peer: &str, _now: Instant) -> Vec<MeshOutput> {
        self.wants_answered.remove(peer);
        self.linked.remove(peer);
        self.retiring.remove(peer);
        Vec::new()
    }

    fn next_seq(&mut self, clock_us: u64) -> u64 {
        self.last_seq = clock_us.max(self.last_seq + 1);
        self.last_seq
    }

    fn originate(&mut self, mut frame: CellFrame, now: Instant) -> Vec<MeshOutput> {
        let _ = self
            .seen
            .check(frame.origin, frame.seq, u8::MAX, now, &self.cfg);
        frame.ttl = self.topo.ttl();
        frame.hops = 0;
        frame.fanout = true;
        if self.linked.is_empty() {
            self.sent_without_links += 1;
        }
        self.replay.keep(&frame, !self.linked.is_empty(), now);
        let mut out = Vec::new();
        self.forward(None, &frame, &mut out);
        out
    }

    fn on_frame(
        &mut self,
        from: &str,
        mut frame: CellFrame,
        now: Instant,
    ) -> Result<Vec<MeshOutput>, MeshDrop> {
        let ttl = frame.ttl.min(self.topo.ttl());
        let copy = self
            .seen
            .check(frame.origin, frame.seq, ttl, now, &self.cfg)?;
        let mut out = Vec::new();
        frame.hops = frame.hops.saturating_add(1);
        if ttl > 0 {
            frame.ttl = ttl - 1;
            self.forward(Some(from), &frame, &mut out);
        }
        if copy == Copy::First {
            self.replay.keep(&frame, !self.linked.is_empty(), now);
        }
        if copy == Copy::First && (frame.targets.is_empty() || frame.targets.contains(&self.me)) {
            out.push(MeshOutput::Deliver(frame));
        }
        Ok(out)
    }

    fn tick(&mut self, now: Instant) -> Vec<MeshOutput> {
        self.replay.expire(now);
        let mut out = Vec::new();
        let crowded = self.linked.len() > self.cfg.max_links;
        let mut due: Vec<String> = self
            .retiring
            .iter()
            .filter(|(_, at)| crowded || **at <= now)
            .map(|(p, _)| p.clone())
            .collect();
        due.sort();
        for p in due {
            self.retiring.remove(&p);
            self.asked.remove(&p);
            if self.linked.contains(&p) {
                out.push(MeshOutput::Close(p));
            }
        }
        // Missing links are looked for once a second, not on every tick.
        if self.next_redial_scan.is_some_and(|at| now < at) {
            return out;
        }
        self.next_redial_scan = Some(now + Duration::from_secs(1));
        let redial: Vec<String> = self
            .wanted
            .iter()
            .filter(|p| !self.linked.contains(*p))
            .filter(|p| {
                self.asked
                    .get(*p)
                    .is_none_or(|at| now.duration_since(*at) >= self.cfg.redial)
            })
            .cloned()
            .collect();
        for p in redial {
            self.asked.insert(p.clone(), now);
            out.push(MeshOutput::Open(p));
        }
        out
    }

    fn link_count(&self) -> usize {
        self.linked.len()
    }

    fn memory_bytes(&self) -> usize {
        // The topology is per peer in a daemon (shared only inside the simulator).
        self.seen.bytes()
            + self.replay.memory_bytes()
            + (self.linked.len() + self.asked.len() + self.retiring.len()) * 64
            + self.topo.len() * 56
    }
}

#[cfg(test)]
mod tests;
