//! A second baseline for the simulator: Plumtree broadcast (Leitão, Pereira, Rodrigues,
//! "Epidemic Broadcast Trees", 2007) over a HyParView-style active view ("HyParView: a
//! membership protocol for reliable gossip-based broadcast", 2007), as iroh-gossip runs them.
//!
//! Membership is abstracted to its steady state: every member's active view is a few random
//! peers (the symmetric random graph HyParView converges to), with a passive view of more random
//! peers to repair from when an active link dies. Broadcast is Plumtree's: a frame goes eagerly
//! to eager peers and as an `IHAVE` to lazy ones; a duplicate prunes its sender to lazy; an
//! `IHAVE` for a frame not received within the graft time-out grafts the announcer back to eager
//! and asks for the frame. Control messages ride in frames whose payload names them, so the
//! simulator counts them among the frames per broadcast.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustc_hash::{FxHashMap, FxHashSet};
use sha2::{Digest as _, Sha256};

use crate::mesh::router::MeshDrop;
use crate::mesh::{MeshOutput, Overlay};
use crate::wire::cell::{CellFrame, FrameId};

/// Active view size (HyParView's `log(n) + c`, iroh-gossip's default 5).
pub const ACTIVE_VIEW: usize = 5;
/// Passive view size.
pub const PASSIVE_VIEW: usize = 30;
/// How long an `IHAVE` may wait for its frame before the announcer is grafted.
const GRAFT_TIMEOUT: Duration = Duration::from_millis(150);
/// Frames kept to answer grafts.
const CACHE: usize = 2_048;

/// How control messages' payloads begin (so the simulator counts them apart from data).
pub const CONTROL_TAG: &[u8] = b"\x00plumtree-";
const IHAVE: &[u8] = b"\x00plumtree-ihave";
const PRUNE: &[u8] = b"\x00plumtree-prune";
const GRAFT: &[u8] = b"\x00plumtree-graft";

/// Every member's active and passive view for one roster.
#[derive(Debug)]
pub struct PlumTopology {
    active: FxHashMap<String, Vec<String>>,
    passive: FxHashMap<String, Vec<String>>,
}

fn rank(seed: &str, other: &str) -> u64 {
    let d = Sha256::new()
        .chain_update(seed.as_bytes())
        .chain_update(other.as_bytes())
        .finalize();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

impl PlumTopology {
    /// Views for a roster. Members sit on a hash ring; each picks `ACTIVE_VIEW / 2 + 1` peers at
    /// pseudo-random points of the ring (so views stay put when others come and go) and links are
    /// made symmetric, so a view holds about `ACTIVE_VIEW` peers: the random graph HyParView
    /// converges to. `PASSIVE_VIEW` more points give the passive view.
    pub fn compute(ids: &[String]) -> PlumTopology {
        let mut ring: Vec<(u64, &String)> = ids.iter().map(|id| (rank(id, ""), id)).collect();
        ring.sort_unstable();
        let at = |point: u64| -> &String {
            let i = ring.partition_point(|(h, _)| *h < point) % ring.len();
            ring[i].1
        };
        let mut active: FxHashMap<String, BTreeSet<String>> = FxHashMap::default();
        let mut passive = FxHashMap::default();
        for id in ids {
            let mut picks: Vec<String> = Vec::new();
            for k in 0..(ACTIVE_VIEW + PASSIVE_VIEW) * 2 {
                let p = at(rank(id, &k.to_string()));
                if p != id && !picks.contains(p) {
                    picks.push(p.clone());
                }
                if picks.len() == ACTIVE_VIEW / 2 + 1 + PASSIVE_VIEW {
                    break;
                }
            }
            for other in picks.iter().take(ACTIVE_VIEW / 2 + 1) {
                active.entry(id.clone()).or_default().insert(other.clone());
                active.entry(other.clone()).or_default().insert(id.clone());
            }
            passive.insert(
                id.clone(),
                picks.split_off((ACTIVE_VIEW / 2 + 1).min(picks.len())),
            );
        }
        PlumTopology {
            active: active
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect(),
            passive,
        }
    }

    /// A member's active view.
    pub fn active_of(&self, id: &str) -> &[String] {
        self.active.get(id).map_or(&[], Vec::as_slice)
    }

    /// Every member, for picking victims.
    pub fn members(&self) -> impl Iterator<Item = &String> {
        self.passive.keys()
    }
}

/// One peer's Plumtree state.
#[derive(Debug)]
pub struct PlumPeer {
    me: String,
    topo: Option<Arc<PlumTopology>>,
    linked: BTreeSet<String>,
    eager: BTreeSet<String>,
    lazy: BTreeSet<String>,
    seen: FxHashSet<FrameId>,
    seen_order: VecDeque<FrameId>,
    cache: FxHashMap<FrameId, CellFrame>,
    cache_order: VecDeque<FrameId>,
    /// Frames announced but not received: who announced them, and when to graft.
    missing: BTreeMap<FrameId, (VecDeque<String>, Instant)>,
    last_seq: u64,
}

impl PlumPeer {
    /// A peer with no view yet.
    pub fn new(me: String) -> PlumPeer {
        PlumPeer {
            me,
            topo: None,
            linked: BTreeSet::new(),
            eager: BTreeSet::new(),
            lazy: BTreeSet::new(),
            seen: FxHashSet::default(),
            seen_order: VecDeque::new(),
            cache: FxHashMap::default(),
            cache_order: VecDeque::new(),
            missing: BTreeMap::new(),
            last_seq: 0,
        }
    }

    fn control(kind: &'static [u8], id: FrameId) -> CellFrame {
        CellFrame {
            fanout: false,
            max_hops: 1,
            hops: 0,
            origin: id.0,
            seq: id.1,
            targets: Vec::new(),
            payload: Bytes::from_static(kind),
            sig: [0; 64],
        }
    }

    fn remember(&mut self, frame: &CellFrame) {
        let id = (frame.origin, frame.seq);
        self.seen.insert(id);
        self.seen_order.push_back(id);
        if self.seen_order.len() > 16 * CACHE
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.cache.insert(id, frame.clone());
        self.cache_order.push_back(id);
        if self.cache_order.len() > CACHE
            && let Some(old) = self.cache_order.pop_front()
        {
            self.cache.remove(&old);
        }
    }

    /// Eager push to eager peers, `IHAVE` to lazy ones, never back to `from`.
    fn push(&self, from: Option<&str>, frame: &CellFrame, out: &mut Vec<MeshOutput>) {
        let id = (frame.origin, frame.seq);
        for p in &self.eager {
            if Some(p.as_str()) != from {
                out.push(MeshOutput::Send(p.clone(), frame.clone()));
            }
        }
        for p in &self.lazy {
            if Some(p.as_str()) != from {
                out.push(MeshOutput::Send(p.clone(), Self::control(IHAVE, id)));
            }
        }
    }
}

impl Overlay for PlumPeer {
    type Topology = PlumTopology;

    fn set_topology(&mut self, topo: Arc<PlumTopology>, _now: Instant) -> Vec<MeshOutput> {
        let view = topo.active_of(&self.me);
        let mut out: Vec<MeshOutput> = view
            .iter()
            .filter(|p| !self.linked.contains(*p))
            .map(|p| MeshOutput::Open(p.clone()))
            .collect();
        // The active view is bounded: links it no longer holds close.
        out.extend(
            self.linked
                .iter()
                .filter(|p| !view.contains(p))
                .map(|p| MeshOutput::Close(p.clone())),
        );
        self.topo = Some(topo);
        out
    }

    fn link_up(&mut self, peer: &str, _now: Instant) -> Vec<MeshOutput> {
        self.linked.insert(peer.to_owned());
        if !self.lazy.contains(peer) {
            self.eager.insert(peer.to_owned());
        }
        Vec::new()
    }

    fn link_down(&mut self, peer: &str, _now: Instant) -> Vec<MeshOutput> {
        self.linked.remove(peer);
        self.eager.remove(peer);
        self.lazy.remove(peer);
        // HyParView: an active slot that died is refilled from the passive view.
        let Some(topo) = &self.topo else {
            return Vec::new();
        };
        topo.passive
            .get(&self.me)
            .into_iter()
            .flatten()
            .find(|p| !self.linked.contains(*p) && p.as_str() != peer)
            .map(|p| vec![MeshOutput::Open(p.clone())])
            .unwrap_or_default()
    }

    fn next_seq(&mut self, clock_us: u64) -> u64 {
        self.last_seq = clock_us.max(self.last_seq + 1);
        self.last_seq
    }

    fn originate(&mut self, mut frame: CellFrame, _now: Instant) -> Vec<MeshOutput> {
        frame.hops = 0;
        frame.max_hops = u8::MAX;
        self.remember(&frame);
        let mut out = Vec::new();
        self.push(None, &frame, &mut out);
        out
    }

    fn on_frame(
        &mut self,
        from: &str,
        mut frame: CellFrame,
        now: Instant,
    ) -> Result<Vec<MeshOutput>, MeshDrop> {
        let id = (frame.origin, frame.seq);
        let mut out = Vec::new();
        match &frame.payload[..] {
            IHAVE => {
                if !self.seen.contains(&id) {
                    let entry = self
                        .missing
                        .entry(id)
                        .or_insert_with(|| (VecDeque::new(), now + GRAFT_TIMEOUT));
                    entry.0.push_back(from.to_owned());
                }
                return Ok(out);
            }
            PRUNE => {
                if self.eager.remove(from) {
                    self.lazy.insert(from.to_owned());
                }
                return Ok(out);
            }
            GRAFT => {
                self.lazy.remove(from);
                self.eager.insert(from.to_owned());
                if let Some(f) = self.cache.get(&id) {
                    out.push(MeshOutput::Send(from.to_owned(), f.clone()));
                }
                return Ok(out);
            }
            _ => {}
        }
        if self.seen.contains(&id) {
            // A redundant eager path: make it lazy on both ends.
            if self.eager.remove(from) {
                self.lazy.insert(from.to_owned());
            }
            out.push(MeshOutput::Send(from.to_owned(), Self::control(PRUNE, id)));
            return Ok(out);
        }
        self.missing.remove(&id);
        self.lazy.remove(from);
        self.eager.insert(from.to_owned());
        frame.hops = frame.hops.saturating_add(1);
        self.remember(&frame);
        self.push(Some(from), &frame, &mut out);
        out.push(MeshOutput::Deliver(frame));
        Ok(out)
    }

    fn tick(&mut self, now: Instant) -> Vec<MeshOutput> {
        let mut out = Vec::new();
        let due: Vec<FrameId> = self
            .missing
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some((announcers, at)) = self.missing.get_mut(&id) else {
                continue;
            };
            let Some(peer) = announcers.pop_front() else {
                self.missing.remove(&id);
                continue;
            };
            *at = now + GRAFT_TIMEOUT / 2;
            if self.linked.contains(&peer) {
                self.lazy.remove(&peer);
                self.eager.insert(peer.clone());
                out.push(MeshOutput::Send(peer, Self::control(GRAFT, id)));
            }
        }
        out
    }

    fn link_count(&self) -> usize {
        self.linked.len()
    }

    fn memory_bytes(&self) -> usize {
        self.seen.len() * 48
            + self
                .cache
                .values()
                .map(|f| f.payload.len() + 160)
                .sum::<usize>()
            + (self.eager.len() + self.lazy.len() + self.linked.len()) * 64
            + self.missing.len() * 96
    }
}
