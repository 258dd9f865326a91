//! One peer's side of the overlay: which links to hold, and where each frame goes next.
//!
//! Forwarding is a directed flood over the overlay links with bounded dedup: the first member
//! of a cell to receive a frame (its origin, or whoever got it over a bridge) sends it to every
//! link and marks it "fanned out"; a member that gets a fanned-out frame from a cellmate only
//! passes it over its own bridges. Two bridge pairs per cell edge and the hypercube's spare
//! paths mean a dead bridge costs no delivery, only a duplicate less.
//!
//! Bridges pass a frame on eagerly only along its origin cell's tree over the cell graph (both
//! bridge pairs of each tree edge, see [`Topology::eager_edge`]); over their other bridge links
//! they announce its id in the next batch, and a cell that missed the eager copy pulls it from an
//! announcer after [`MeshConfig::lazy_wait`]. So a broadcast costs about one frame per member
//! and one per tree edge, not one per link, and a dead tree edge costs a little latency.
//!
//! When more die at once — both bridge pairs of an edge, or every link of a sender — frames sent
//! before the topology heals would be lost. So each peer keeps the frames of the last
//! [`MeshConfig::replay_window`] and tells every link that comes up which ones it holds (ids
//! only); the other end asks for those it lacks, so the healed topology's new bridges carry them
//! across, late rather than never, and links between peers that saw everything cost one list.

use std::collections::{BTreeMap, HashSet, VecDeque};

use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::drops::DropReason;
use crate::mesh::replay::Replay;
use crate::mesh::topology::{Topology, placement};
use crate::mesh::{FrameId, MeshOutput, Overlay};
use crate::wire::cell::CellFrame;

/// The window of a link's frame budget for answering requests.
const WANT_WINDOW: Duration = Duration::from_secs(1);
/// Peers remembered per missing frame to pull it from.
const ANNOUNCERS: usize = 3;
/// How many times one frame is passed on again for a later copy with more hops left: copies
/// race, but hops are not signed, so a copy re-sent with its hop count lowered gets no more.
const MAX_REPASSES: u8 = 1;

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
    /// How long an announced frame may take to arrive eagerly before it is pulled.
    pub lazy_wait: Duration,
    /// How often ids are announced over lazy links (batched: one message per link).
    pub announce_every: Duration,
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
            lazy_wait: Duration::from_millis(250),
            announce_every: Duration::from_millis(250),
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
    /// From a peer that is not an overlay link of this room (a page, or a member not known yet).
    NotLinked,
}

impl MeshDrop {
    /// Counter name.
    pub fn counter(self) -> DropReason {
        match self {
            MeshDrop::Duplicate => DropReason::CellDuplicate,
            MeshDrop::Replay => DropReason::CellReplay,
            MeshDrop::Own => DropReason::CellOwnEcho,
            MeshDrop::NotLinked => DropReason::CellNotFromMember,
        }
    }
}

/// Bounded memory of (origin, seq) pairs, with a per-origin replay floor.
///
/// Each pair keeps the most hops any copy of it had left here. Copies race: under load a copy
/// that came the long way can arrive first with its hops nearly spent; if that one alone were
/// passed on, the flood could stop short of peers only the short way reaches. So a later copy
/// with more hops left is passed on again, at most [`MAX_REPASSES`] times (never delivered
/// twice): the hop count is not signed, and a forwarder lowering it must not buy a re-flood.
#[derive(Debug, Default)]
struct Seen {
    /// Most hops left of any copy, and how many times the frame was passed on again.
    set: FxHashMap<([u8; 32], u64), (u8, u8)>,
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
        if let Some((best, repasses)) = self.set.get_mut(&(origin, seq)) {
            if ttl > *best && *repasses < MAX_REPASSES {
                *best = ttl;
                *repasses += 1;
                return Ok(Copy::MoreHops);
            }
            return Err(MeshDrop::Duplicate);
        }
        self.set.insert((origin, seq), (ttl, 0));
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
        self.set.len() * 50 + self.order.len() * 40 + self.floors.len() * 64
    }
}

/// A frame announced to us that we do not hold yet.
#[derive(Debug)]
struct Missing {
    /// Who announced it, first first.
    announcers: Vec<String>,
    /// When to pull it from the next announcer.
    ask_at: Instant,
}

/// One peer's overlay state (see the module docs).
#[derive(Debug)]
pub struct Mesh {
    me: String,
    /// The room's salt: an origin's cell follows from its key.
    salt: Vec<u8>,
    cfg: MeshConfig,
    topo: Arc<Topology>,
    /// Links that are up, with the other end's cell in the topology in force.
    linked: BTreeMap<String, Option<usize>>,
    /// Our own cell in the topology in force.
    my_cell: Option<usize>,
    /// The topology's links for this peer.
    wanted: Vec<String>,
    next_redial_scan: Option<Instant>,
    /// Links we asked for, and when we last asked.
    asked: BTreeMap<String, Instant>,
    /// Links we asked for that the topology no longer wants, and when to close them.
    retiring: BTreeMap<String, Instant>,
    seen: Seen,
    last_seq: u64,
    /// Frames of the last `replay_window`, for links that come up later.
    replay: Replay,
    /// Frames each link was sent on request in the current window, and when it began (a request
    /// can ask for the whole replay buffer, so a link gets at most that much a second).
    wants_answered: FxHashMap<String, (Instant, usize)>,
    /// Ids to announce to each link, and when they go.
    announce: FxHashMap<String, Vec<FrameId>>,
    next_announce: Option<Instant>,
    /// Frames announced to us that have not arrived.
    missing: FxHashMap<FrameId, Missing>,
    /// When each missing frame is due, in that order (ask times only grow): a tick looks at
    /// the due ones instead of scanning every missing frame. Entries whose frame was asked
    /// again since are stale and skipped.
    missing_due: VecDeque<(Instant, FrameId)>,
    /// Own frames originated while this peer had no link (kept for the first link).
    sent_without_links: u64,
}

impl Mesh {
    /// A peer of the room with this salt, with no topology yet.
    pub fn new(me: impl Into<String>, salt: &[u8], cfg: MeshConfig) -> Mesh {
        let replay = Replay::new(cfg.replay_window, cfg.replay_frames, cfg.replay_bytes);
        Mesh {
            me: me.into(),
            salt: salt.to_vec(),
            cfg,
            topo: Arc::new(Topology::compute(Vec::new(), Default::default())),
            linked: BTreeMap::new(),
            my_cell: None,
            wanted: Vec::new(),
            next_redial_scan: None,
            asked: BTreeMap::new(),
            retiring: BTreeMap::new(),
            seen: Seen::default(),
            last_seq: 0,
            replay,
            wants_answered: FxHashMap::default(),
            announce: FxHashMap::default(),
            next_announce: None,
            missing: FxHashMap::default(),
            missing_due: VecDeque::new(),
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

    /// True when this copy of a frame would be dropped as a duplicate: one with at least as
    /// many hops left was already handled, or the frame was passed on again as often as allowed
    /// (checked before its signature is).
    pub fn seen(&self, frame: &CellFrame) -> bool {
        let left = self.hops_left(frame);
        self.seen
            .set
            .get(&(frame.origin, frame.seq))
            .is_some_and(|(best, repasses)| *best >= left || *repasses >= MAX_REPASSES)
    }

    /// Links that are up.
    pub fn linked(&self) -> impl Iterator<Item = &str> {
        self.linked.keys().map(String::as_str)
    }

    /// Hops a frame has left here: the origin's signed limit, clamped to our topology's, less
    /// the hops it took.
    fn hops_left(&self, frame: &CellFrame) -> u8 {
        frame
            .max_hops
            .min(self.topo.ttl())
            .saturating_sub(frame.hops)
    }

    /// True when the link to `peer` is an overlay link (up, and its peer a member).
    pub fn is_linked(&self, peer: &str) -> bool {
        self.linked.contains_key(peer)
    }

    fn forward(&mut self, from: Option<&str>, frame: &CellFrame, out: &mut Vec<MeshOutput>) {
        let cellmate = |cell: Option<usize>| cell.is_some() && cell == self.my_cell;
        let bridges_only = from.is_some_and(|f| {
            frame.fanout && self.linked.get(f).is_some_and(|cell| cellmate(*cell))
        });
        let mut next = frame.clone();
        next.fanout = !bridges_only;
        let root = self
            .topo
            .cell_of_place(placement(&self.salt, &frame.origin));
        for (peer, cell) in &self.linked {
            if Some(peer.as_str()) == from {
                continue;
            }
            if cellmate(*cell) {
                if !bridges_only {
                    out.push(MeshOutput::Send(peer.clone(), next.clone()));
                }
                continue;
            }
            // Links outside the topology (retiring, or to peers it does not know yet) stay eager.
            let lazy = match (self.my_cell, *cell) {
                (Some(mine), Some(theirs)) => !self.topo.eager_edge(root, mine, theirs),
                _ => false,
            };
            if lazy {
                let id = (frame.origin, frame.seq);
                match self.announce.get_mut(peer.as_str()) {
                    Some(ids) if ids.len() < self.cfg.replay_frames => ids.push(id),
                    Some(_) => {}
                    None => {
                        self.announce.insert(peer.clone(), vec![id]);
                    }
                }
            } else {
                out.push(MeshOutput::Send(peer.clone(), next.clone()));
            }
        }
    }

    /// True when the frame was seen, or is older than what we forgot for its origin.
    fn known(&self, (origin, seq): &FrameId) -> bool {
        self.seen.set.contains_key(&(*origin, *seq))
            || self.seen.floors.get(origin).is_some_and(|f| *seq <= f.seq)
    }

    /// Announcements due: ids still held, batched per link.
    fn flush_announcements(&mut self, now: Instant, out: &mut Vec<MeshOutput>) {
        if self.announce.is_empty() || self.next_announce.is_some_and(|at| now < at) {
            return;
        }
        self.next_announce = Some(now + self.cfg.announce_every);
        let mut batches: Vec<(String, Vec<FrameId>)> = self.announce.drain().collect();
        batches.sort_by(|a, b| a.0.cmp(&b.0));
        for (peer, mut ids) in batches {
            ids.retain(|id| self.replay.holds(id));
            if !ids.is_empty() && self.linked.contains_key(&peer) {
                out.push(MeshOutput::Have(peer, ids));
            }
        }
    }

    /// Pulls announced frames that did not arrive in time, each from its next announcer.
    fn pull_missing(&mut self, now: Instant, out: &mut Vec<MeshOutput>) {
        let mut due: Vec<FrameId> = Vec::new();
        while let Some(&(at, id)) = self.missing_due.front() {
            if at > now {
                break;
            }
            self.missing_due.pop_front();
            if self.missing.get(&id).is_some_and(|m| m.ask_at == at) {
                due.push(id);
            }
        }
        due.sort_unstable();
        due.dedup();
        let mut asks: BTreeMap<String, Vec<FrameId>> = BTreeMap::new();
        for id in due {
            let known = self.known(&id);
            let Some(m) = self.missing.get_mut(&id) else {
                continue;
            };
            m.announcers.retain(|p| self.linked.contains_key(p));
            if known || m.announcers.is_empty() {
                self.missing.remove(&id);
                continue;
            }
            let from = m.announcers.remove(0);
            m.ask_at = now + self.cfg.lazy_wait;
            self.missing_due.push_back((m.ask_at, id));
            asks.entry(from).or_default().push(id);
        }
        out.extend(asks.into_iter().map(|(p, ids)| MeshOutput::Want(p, ids)));
    }
}

/// Whether a link coming up fits under the link cap.
#[derive(Debug, PartialEq, Eq)]
enum Room {
    /// Below the cap.
    Free,
    /// At the cap: this link the topology no longer wants makes way.
    Evict(String),
    /// At the cap, and the topology does not want the new link.
    Refuse,
}

impl Mesh {
    /// At `max_links`, a link the topology wants takes the place of one it does not (a retiring
    /// one first, the soonest due); a link it does not want is refused. Links are counted where
    /// they come up, since the other end opens half of them: a cap applied only when this peer
    /// dials, or only at its tick, let churn pile up links that each end kept for the other.
    /// A wanted link is never refused, so the topology alone can exceed the cap.
    fn room_for(&self, peer: &str) -> Room {
        if self.linked.len() < self.cfg.max_links {
            return Room::Free;
        }
        let wanted = |p: &str| self.wanted.iter().any(|w| w == p);
        if !wanted(peer) {
            return Room::Refuse;
        }
        let retiring = self
            .retiring
            .iter()
            .filter(|(p, _)| self.linked.contains_key(*p))
            .min_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.cmp(b.0)))
            .map(|(p, _)| p.clone());
        let victim = retiring.or_else(|| self.linked.keys().find(|p| !wanted(p.as_str())).cloned());
        victim.map_or(Room::Free, Room::Evict)
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
        self.my_cell = self.topo.cell_of(&self.me);
        for (peer, cell) in self.linked.iter_mut() {
            *cell = self.topo.cell_of(peer);
        }
        self.wanted = order.clone();
        let wanted: HashSet<String> = order.iter().cloned().collect();
        let mut out = Vec::new();
        for p in &order {
            self.retiring.remove(p);
            if !self.linked.contains_key(p) && !self.asked.contains_key(p) {
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
        if self.linked.contains_key(peer) {
            return Vec::new();
        }
        let mut out = Vec::new();
        match self.room_for(peer) {
            Room::Free => {}
            Room::Evict(victim) => {
                // Forgotten at once, as its close will be reported: the count stays at the cap.
                self.link_down(&victim, now);
                self.asked.remove(&victim);
                out.push(MeshOutput::Close(victim));
            }
            Room::Refuse => return vec![MeshOutput::Close(peer.to_owned())],
        }
        self.linked.insert(peer.to_owned(), self.topo.cell_of(peer));
        self.replay.expire(now);
        // The new link may be a healed path to peers that missed these: it hears which we hold
        // (not what was sent before it joined) and asks for what it lacks.
        let ids = self.replay.ids_since(joined_seq);
        if !ids.is_empty() {
            out.push(MeshOutput::Have(peer.to_owned(), ids));
        }
        out
    }

    fn on_have(&mut self, from: &str, ids: &[FrameId], now: Instant) -> Vec<MeshOutput> {
        if !self.linked.contains_key(from) {
            return Vec::new();
        }
        // The eager copy is usually on its way: pull only what is still missing after a while.
        for id in ids.iter().take(self.cfg.replay_frames) {
            if self.known(id) {
                continue;
            }
            if let Some(m) = self.missing.get_mut(id) {
                if m.announcers.len() < ANNOUNCERS && !m.announcers.iter().any(|p| p == from) {
                    m.announcers.push(from.to_owned());
                }
            } else if self.missing.len() < 4 * self.cfg.replay_frames {
                let ask_at = now + self.cfg.lazy_wait;
                self.missing.insert(
                    *id,
                    Missing {
                        announcers: vec![from.to_owned()],
                        ask_at,
                    },
                );
                self.missing_due.push_back((ask_at, *id));
            }
        }
        Vec::new()
    }

    fn on_want(&mut self, from: &str, ids: &[FrameId], now: Instant) -> Vec<MeshOutput> {
        if !self.linked.contains_key(from) {
            return Vec::new();
        }
        let budget = self.cfg.replay_frames;
        let (since, served) = self
            .wants_answered
            .entry(from.to_owned())
            .or_insert((now, 0));
        if now.saturating_duration_since(*since) >= WANT_WINDOW {
            *since = now;
            *served = 0;
        }
        let room = budget.saturating_sub(*served);
        if room == 0 {
            return Vec::new();
        }
        self.replay.expire(now);
        let frames = self.replay.take(&ids[..ids.len().min(room)]);
        *served += frames.len();
        frames
            .into_iter()
            .map(|f| MeshOutput::Send(from.to_owned(), f))
            .collect()
    }

    fn link_down(&mut self, peer: &str, _now: Instant) -> Vec<MeshOutput> {
        self.wants_answered.remove(peer);
        self.announce.remove(peer);
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
        // The hop limit is signed: the caller set it (from the topology, see `CellRoom`).
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
        if !self.linked.contains_key(from) {
            return Err(MeshDrop::NotLinked);
        }
        let ttl = self.hops_left(&frame);
        let copy = self
            .seen
            .check(frame.origin, frame.seq, ttl, now, &self.cfg)?;
        let mut out = Vec::new();
        frame.hops = frame.hops.saturating_add(1);
        // A peer not yet on its own roster (a newcomer still pulling it) only listens: with no
        // topology it would pass frames on with a TTL cut to nothing, and the peers behind it
        // would take that starved copy for the first one.
        if ttl > 0 && self.my_cell.is_some() {
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
        self.flush_announcements(now, &mut out);
        self.pull_missing(now, &mut out);
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
            if self.linked.contains_key(&p) {
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
            .filter(|p| !self.linked.contains_key(*p))
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
            + self
                .announce
                .values()
                .map(|ids| 64 + ids.len() * 40)
                .sum::<usize>()
            + self.missing.len() * 120
            + self.topo.len() * 56
    }
}

#[cfg(test)]
mod tests;
