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
use crate::mesh::topology::Topology;
use crate::mesh::{FrameId, MeshOutput, Overlay};
use crate::wire::cell::CellFrame;

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
    /// Frames of the last `replay_window`, oldest first, for links that come up later, and
    /// whether each went over some link yet.
    recent: VecDeque<(Instant, CellFrame, bool)>,
    recent_bytes: usize,
    /// Own frames that expired from the replay buffer while this peer had no link at all.
    unsent_expired: u64,
    /// Own frames originated while this peer had no link (kept for the first link).
    sent_without_links: u64,
}

impl Mesh {
    /// A peer with no topology yet.
    pub fn new(me: impl Into<String>, cfg: MeshConfig) -> Mesh {
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
            recent: VecDeque::new(),
            recent_bytes: 0,
            unsent_expired: 0,
            sent_without_links: 0,
        }
    }

    /// Own frames originated while this peer had no link at all (they wait for one).
    pub fn sent_without_links(&self) -> u64 {
        self.sent_without_links
    }

    /// Own frames that expired unsent: this peer had no link for the whole replay window.
    pub fn unsent_expired(&self) -> u64 {
        self.unsent_expired
    }

    /// Takes a frame out of the replay buffer: overlay notices (hello, gone, alive) have their
    /// own repair, and replaying them to every new link would only add duplicates.
    pub fn forget_recent(&mut self, origin: &[u8; 32], seq: u64) {
        if let Some(i) = self
            .recent
            .iter()
            .rposition(|(_, f, _)| f.seq == seq && f.origin == *origin)
            && let Some((_, f, _)) = self.recent.remove(i)
        {
            self.recent_bytes -= f.payload.len();
        }
    }

    /// Keeps a frame for links that come up later, within the window and the bounds.
    fn keep(&mut self, frame: &CellFrame, now: Instant) {
        self.expire(now);
        self.recent_bytes += frame.payload.len();
        let sent = !self.linked.is_empty();
        self.recent.push_back((now, frame.clone(), sent));
        while self.recent.len() > self.cfg.replay_frames
            || self.recent_bytes > self.cfg.replay_bytes && self.recent.len() > 1
        {
            self.pop_recent();
        }
    }

    fn expire(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|(at, ..)| now.saturating_duration_since(*at) >= self.cfg.replay_window)
        {
            self.pop_recent();
        }
    }

    fn pop_recent(&mut self) {
        if let Some((_, frame, sent)) = self.recent.pop_front() {
            self.recent_bytes -= frame.payload.len();
            if frame.hops == 0 && !sent {
                self.unsent_expired += 1;
            }
        }
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
        self.expire(now);
        // The new link may be a healed path to peers that missed these: it hears which we hold
        // (not what was sent before it joined) and asks for what it lacks.
        let ids: Vec<FrameId> = self
            .recent
            .iter()
            .filter(|(_, f, _)| f.seq >= joined_seq)
            .map(|(_, f, _)| (f.origin, f.seq))
            .collect();
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
        self.expire(now);
        let wanted: HashSet<&FrameId> = ids.iter().collect();
        self.recent
            .iter_mut()
            .filter(|(_, f, _)| wanted.contains(&(f.origin, f.seq)))
            .map(|(_, f, sent)| {
                // A frame asked for is a first copy for the asker: it fans it out in its cell.
                *sent = true;
                let mut f = f.clone();
                f.fanout = true;
                MeshOutput::Send(from.to_owned(), f)
            })
            .collect()
    }

    fn link_down(&mut self, peer: &str, _now: Instant) -> Vec<MeshOutput> {
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
        self.keep(&frame, now);
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
            self.keep(&frame, now);
        }
        if copy == Copy::First && (frame.targets.is_empty() || frame.targets.contains(&self.me)) {
            out.push(MeshOutput::Deliver(frame));
        }
        Ok(out)
    }

    fn tick(&mut self, now: Instant) -> Vec<MeshOutput> {
        self.expire(now);
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
            + self.recent_bytes
            + self.recent.len() * 160
            + (self.linked.len() + self.asked.len() + self.retiring.len()) * 64
            + self.topo.len() * 56
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::topology::{CellSize, Member, placement};
    use bytes::Bytes;

    fn topo(n: usize, size: usize) -> Arc<Topology> {
        Arc::new(Topology::compute(
            (0..n)
                .map(|i| Member {
                    id: format!("p{i}"),
                    place: placement(b"r", &(i as u32).to_be_bytes()),
                })
                .collect(),
            CellSize::Fixed(size),
        ))
    }

    fn frame(origin: u8, seq: u64) -> CellFrame {
        CellFrame {
            fanout: true,
            ttl: 9,
            hops: 0,
            origin: [origin; 32],
            seq,
            targets: vec![],
            payload: Bytes::from_static(b"m"),
            sig: [0; 64],
        }
    }

    fn linked_mesh(me: &str, t: &Arc<Topology>, now: Instant) -> Mesh {
        let mut m = Mesh::new(me, MeshConfig::default());
        let opens = m.set_topology(t.clone(), now);
        for o in opens {
            if let MeshOutput::Open(p) = o {
                m.link_up(&p, now);
            }
        }
        m
    }

    #[test]
    fn asks_for_exactly_the_topology_links() {
        let t = topo(64, 8);
        let now = Instant::now();
        let mut m = Mesh::new("p3", MeshConfig::default());
        let mut opened: Vec<String> = m
            .set_topology(t.clone(), now)
            .into_iter()
            .filter_map(|o| match o {
                MeshOutput::Open(p) => Some(p),
                _ => None,
            })
            .collect();
        opened.sort();
        let mut want: Vec<String> = t.links_of("p3").into_iter().map(str::to_owned).collect();
        want.sort();
        assert_eq!(opened, want);
    }

    #[test]
    fn duplicates_and_replays_are_dropped() {
        let t = topo(16, 4);
        let now = Instant::now();
        let mut m = linked_mesh("p0", &t, now);
        let from = t.links_of("p0")[0].to_owned();
        assert!(m.on_frame(&from, frame(1, 10), now).is_ok());
        assert_eq!(
            m.on_frame(&from, frame(1, 10), now).err(),
            Some(MeshDrop::Duplicate)
        );
        let cap = MeshConfig::default().dedup_capacity as u64;
        for s in 0..cap {
            let _ = m.on_frame(&from, frame(2, 100 + s), now);
        }
        // Frame (1, 10) has been forgotten; a replay of it is still refused.
        assert_eq!(
            m.on_frame(&from, frame(1, 10), now).err(),
            Some(MeshDrop::Replay)
        );
        assert_eq!(
            m.on_frame(&from, frame(1, 9), now).err(),
            Some(MeshDrop::Replay)
        );
        assert!(m.on_frame(&from, frame(1, 11), now).is_ok());
    }

    #[test]
    fn cellmates_pass_fanned_out_frames_only_over_bridges() {
        let t = topo(64, 8);
        let now = Instant::now();
        let me = (0..64)
            .map(|i| format!("p{i}"))
            .find(|p| !t.bridges_of(p).is_empty())
            .expect("a bridge");
        let mut m = linked_mesh(&me, &t, now);
        let mate = t
            .links_of(&me)
            .into_iter()
            .find(|p| t.same_cell(&me, p))
            .expect("cellmate")
            .to_owned();
        let out = m.on_frame(&mate, frame(1, 1), now).expect("fresh");
        let sent: Vec<&String> = out
            .iter()
            .filter_map(|o| match o {
                MeshOutput::Send(p, f) => {
                    assert!(!f.fanout);
                    Some(p)
                }
                _ => None,
            })
            .collect();
        assert!(!sent.is_empty());
        assert!(sent.iter().all(|p| !t.same_cell(&me, p)));
        assert!(out.iter().any(|o| matches!(o, MeshOutput::Deliver(_))));
        // Over a bridge, the same peer fans out to its whole cell.
        let bridge = t.bridges_of(&me)[0].to_owned();
        let out = m.on_frame(&bridge, frame(1, 2), now).expect("fresh");
        let sends = out
            .iter()
            .filter(|o| matches!(o, MeshOutput::Send(..)))
            .count();
        assert_eq!(sends, t.links_of(&me).len() - 1);
    }

    /// The race behind a rare miss in the 16-daemon test: the copy that came the long way
    /// arrived first with no hops left, and the one with hops to spare was dropped as a
    /// duplicate, so the flood stopped here.
    #[test]
    fn a_later_copy_with_more_hops_left_is_passed_on_once_and_not_delivered_again() {
        let t = topo(16, 4);
        let now = Instant::now();
        let mut m = linked_mesh("p0", &t, now);
        let from = t.links_of("p0")[0].to_owned();
        let copy = |ttl: u8| {
            let mut f = frame(1, 7);
            f.ttl = ttl;
            f.fanout = false;
            f
        };
        let sends = |out: &[MeshOutput]| {
            out.iter()
                .filter(|o| matches!(o, MeshOutput::Send(..)))
                .count()
        };
        let delivers = |out: &[MeshOutput]| {
            out.iter()
                .filter(|o| matches!(o, MeshOutput::Deliver(_)))
                .count()
        };
        let spent = m.on_frame(&from, copy(0), now).expect("first copy");
        assert_eq!(
            (sends(&spent), delivers(&spent)),
            (0, 1),
            "no hops left: delivered only"
        );
        let better = m.on_frame(&from, copy(4), now).expect("more hops left");
        assert!(
            sends(&better) > 0,
            "the copy with hops to spare is passed on"
        );
        assert_eq!(delivers(&better), 0, "but not delivered twice");
        assert!(m.seen(&[1; 32], 7, 4) && m.seen(&[1; 32], 7, 2) && !m.seen(&[1; 32], 7, 5));
        assert_eq!(
            m.on_frame(&from, copy(4), now).err(),
            Some(MeshDrop::Duplicate)
        );
        assert_eq!(
            m.on_frame(&from, copy(2), now).err(),
            Some(MeshDrop::Duplicate)
        );
    }

    #[test]
    fn ttl_is_clamped_and_spent() {
        let t = topo(16, 4);
        let now = Instant::now();
        let mut m = linked_mesh("p0", &t, now);
        let from = t.links_of("p0")[0].to_owned();
        let mut f = frame(1, 1);
        f.ttl = 200;
        let out = m.on_frame(&from, f, now).expect("fresh");
        for o in out {
            if let MeshOutput::Send(_, f) = o {
                assert_eq!(f.ttl, t.ttl() - 1);
                assert_eq!(f.hops, 1);
            }
        }
        let mut last = frame(1, 2);
        last.ttl = 0;
        let out = m.on_frame(&from, last, now).expect("fresh");
        assert!(out.iter().all(|o| matches!(o, MeshOutput::Deliver(_))));
    }

    /// Runs `link_up` on `m` against a peer `other` that has seen `seen`: the ids `m` offers,
    /// the ids `other` wants, and the frames `m` then sends.
    fn heal(m: &mut Mesh, other: &mut Mesh, peer: &str, at: Instant) -> Vec<(String, u64, bool)> {
        let mut sent = Vec::new();
        for o in m.link_up(peer, at) {
            let MeshOutput::Have(_, ids) = o else {
                continue;
            };
            for w in other.on_have("p0", &ids, at) {
                let MeshOutput::Want(_, want) = w else {
                    continue;
                };
                for s in m.on_want(peer, &want, at) {
                    if let MeshOutput::Send(p, f) = s {
                        sent.push((p, f.seq, f.fanout));
                    }
                }
            }
        }
        sent
    }

    #[test]
    fn a_link_that_comes_up_is_offered_the_recent_frames_and_takes_what_it_lacks() {
        let t = topo(16, 4);
        let now = Instant::now();
        let mut m = linked_mesh("p0", &t, now);
        let first = m.originate(frame(1, 1), now);
        assert!(!first.is_empty());
        m.on_frame("p1", frame(2, 7), now).expect("first copy");
        let later = now + Duration::from_secs(10);
        // A peer that saw frame 7 already takes only frame 1, as a fanned-out first copy.
        let mut q1 = Mesh::new("q1", MeshConfig::default());
        q1.on_frame("x", frame(2, 7), now).expect("first copy");
        assert_eq!(
            heal(&mut m, &mut q1, "q1", later),
            vec![("q1".to_owned(), 1, true)]
        );
        // The same link again, or a link after the window: nothing more.
        assert!(m.link_up("q1", later).is_empty());
        // A newcomer is not offered what was sent before it joined.
        let outs = m.link_up_since("q3", later, 5);
        assert_eq!(
            outs,
            vec![MeshOutput::Have("q3".into(), vec![([2; 32], 7)])]
        );
        let gone = now + MeshConfig::default().replay_window + Duration::from_secs(1);
        let mut q2 = Mesh::new("q2", MeshConfig::default());
        assert!(heal(&mut m, &mut q2, "q2", gone).is_empty());
    }

    #[test]
    fn a_frame_sent_with_no_link_waits_for_the_first_and_is_counted_if_it_never_comes() {
        let t = topo(16, 4);
        let now = Instant::now();
        let mut m = Mesh::new("p0", MeshConfig::default());
        m.set_topology(t, now);
        assert!(m.originate(frame(1, 1), now).is_empty());
        assert_eq!(m.sent_without_links(), 1);
        let mut p1 = Mesh::new("p1", MeshConfig::default());
        let sent = heal(&mut m, &mut p1, "p1", now + Duration::from_secs(2));
        assert_eq!(
            sent.len(),
            1,
            "the waiting frame goes out on the first link"
        );
        m.link_down("p1", now + Duration::from_secs(3));
        m.originate(frame(1, 2), now + Duration::from_secs(3));
        m.tick(now + Duration::from_secs(60));
        assert_eq!(m.unsent_expired(), 1);
    }

    #[test]
    fn unwanted_links_close_after_the_grace_period_only() {
        let now = Instant::now();
        let big = topo(64, 8);
        let mut m = linked_mesh("p0", &big, now);
        let before: HashSet<String> = m.linked().map(str::to_owned).collect();
        let small = topo(8, 8);
        m.set_topology(small.clone(), now);
        assert!(
            m.tick(now + Duration::from_secs(1))
                .iter()
                .all(|o| !matches!(o, MeshOutput::Close(_)))
        );
        let closed: Vec<String> = m
            .tick(now + Duration::from_secs(6))
            .into_iter()
            .filter_map(|o| match o {
                MeshOutput::Close(p) => Some(p),
                _ => None,
            })
            .collect();
        let still: HashSet<&str> = small.links_of("p0").into_iter().collect();
        for p in &before {
            assert_eq!(closed.contains(p), !still.contains(p.as_str()), "{p}");
        }
    }
}
