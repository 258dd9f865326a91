//! The seed system's cells algorithm (GenosRTC, as `spec/genosrtc.md` documents it), kept as
//! the baseline the simulator measures ours against. Not used by the daemon.
//!
//! HRW cells of `cell_size` (default 10) with a 32-bit FNV-1a hash, one bridge per cell (the
//! member with the highest `h(p@cell)`), neighbour cells `i ± 2^j`, TTL
//! `min(150, 2·ceil(log2(C+1)) + 3)`, dedup of 5,000 ids FIFO; only bridges forward. Sealing
//! (when a roster change takes effect) is the driver's job: see [`GenosSealer`].

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::mesh::{MeshDrop, MeshOutput, Overlay};
use crate::wire::cell::CellFrame;

/// The seed's default cell size.
pub const GENOS_CELL_SIZE: usize = 10;
const DEDUP: usize = 5_000;
const GRACE: Duration = Duration::from_secs(5);

fn fnv1a(s: &str) -> u32 {
    fnv1a_more(0x811c_9dc5, s.as_bytes())
}

/// Continues an FNV-1a hash over more bytes (hashing `p + ":" + i` for every cell `i` without
/// building the strings).
fn fnv1a_more(h: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

fn fnv1a_number(h: u32, mut n: usize) -> u32 {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    fnv1a_more(h, &digits[at..])
}

/// Cells, bridges and neighbour cells of one sealed roster.
#[derive(Debug, Clone)]
pub struct GenosTopology {
    cell_of: HashMap<String, usize>,
    cells: Vec<Vec<String>>,
    bridges: Vec<Option<String>>,
    ttl: u8,
}

impl GenosTopology {
    /// Seals a roster.
    pub fn compute(roster: &[String], cell_size: usize) -> GenosTopology {
        let c = roster.len().div_ceil(cell_size.max(1)).max(1);
        let mut cells = vec![Vec::new(); c];
        let mut cell_of = HashMap::with_capacity(roster.len());
        for p in roster {
            let prefix = fnv1a_more(fnv1a(p), b":");
            let cell = (0..c).max_by_key(|&i| fnv1a_number(prefix, i)).unwrap_or(0);
            cells[cell].push(p.clone());
            cell_of.insert(p.clone(), cell);
        }
        let bridges = cells
            .iter()
            .enumerate()
            .map(|(i, members)| {
                members
                    .iter()
                    .max_by_key(|p| fnv1a(&format!("{p}@{i}")))
                    .cloned()
            })
            .collect();
        let ttl = (2 * ((c + 1) as f64).log2().ceil() as usize + 3).min(150) as u8;
        GenosTopology {
            cell_of,
            cells,
            bridges,
            ttl,
        }
    }

    /// Neighbour cells: `i ± 2^j` for `2^j < C`.
    fn neighbours(&self, cell: usize) -> Vec<usize> {
        let c = self.cells.len();
        let mut out = Vec::new();
        let mut step = 1;
        while step < c {
            for n in [(cell + step) % c, (cell + c - step % c) % c] {
                if n != cell && !out.contains(&n) {
                    out.push(n);
                }
            }
            step *= 2;
        }
        out
    }

    fn is_bridge(&self, id: &str) -> bool {
        self.cell_of
            .get(id)
            .is_some_and(|&c| self.bridges[c].as_deref() == Some(id))
    }

    fn neighbour_bridges(&self, cell: usize) -> Vec<&str> {
        self.neighbours(cell)
            .into_iter()
            .filter_map(|n| self.bridges[n].as_deref())
            .collect()
    }

    /// Links a member holds: its cell, and if it is the bridge, the neighbour cells' bridges.
    pub fn links_of(&self, id: &str) -> Vec<&str> {
        let Some(&cell) = self.cell_of.get(id) else {
            return Vec::new();
        };
        let mut out: Vec<&str> = self.cells[cell]
            .iter()
            .map(String::as_str)
            .filter(|p| *p != id)
            .collect();
        if self.is_bridge(id) {
            out.extend(self.neighbour_bridges(cell));
        }
        out
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.cell_of.len()
    }

    /// True when nobody is on the roster.
    pub fn is_empty(&self) -> bool {
        self.cell_of.is_empty()
    }

    /// The bridges of all cells.
    pub fn bridges(&self) -> impl Iterator<Item = &str> {
        self.bridges.iter().flatten().map(String::as_str)
    }
}

/// When a roster change takes effect in the seed: after the first 2 s quiet gap (10 s cap) on
/// growth, a bye or a dead bridge; after 30 s on a pure shrink.
#[derive(Debug, Default)]
pub struct GenosSealer {
    first_change: Option<Instant>,
    last_change: Option<Instant>,
    urgent: bool,
}

impl GenosSealer {
    /// Records a roster change; `urgent` for growth, a bye or a dead bridge.
    pub fn changed(&mut self, now: Instant, urgent: bool) {
        self.first_change.get_or_insert(now);
        self.last_change = Some(now);
        self.urgent |= urgent;
    }

    /// True (once) when the pending change should be sealed now.
    pub fn due(&mut self, now: Instant) -> bool {
        let (Some(first), Some(last)) = (self.first_change, self.last_change) else {
            return false;
        };
        let due = if self.urgent {
            now >= last + Duration::from_secs(2) || now >= first + Duration::from_secs(10)
        } else {
            now >= first + Duration::from_secs(30)
        };
        if due {
            *self = GenosSealer::default();
        }
        due
    }
}

/// One peer running the seed's algorithm.
#[derive(Debug)]
pub struct GenosPeer {
    me: String,
    topo: Arc<GenosTopology>,
    linked: BTreeSet<String>,
    retiring: HashMap<String, Instant>,
    seen: HashSet<([u8; 32], u64)>,
    order: VecDeque<([u8; 32], u64)>,
    last_seq: u64,
}

impl GenosPeer {
    /// A peer with no sealed roster yet.
    pub fn new(me: impl Into<String>) -> GenosPeer {
        GenosPeer {
            me: me.into(),
            topo: Arc::new(GenosTopology::compute(&[], GENOS_CELL_SIZE)),
            linked: BTreeSet::new(),
            retiring: HashMap::new(),
            seen: HashSet::new(),
            order: VecDeque::new(),
            last_seq: 0,
        }
    }

    fn remember(&mut self, key: ([u8; 32], u64)) -> bool {
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > DEDUP
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    fn send_to(
        &self,
        peers: &[&str],
        except: Option<&str>,
        frame: &CellFrame,
        out: &mut Vec<MeshOutput>,
    ) {
        for p in peers {
            if Some(*p) != except && self.linked.contains(*p) {
                out.push(MeshOutput::Send((*p).to_owned(), frame.clone()));
            }
        }
    }
}

impl Overlay for GenosPeer {
    type Topology = GenosTopology;

    fn set_topology(&mut self, topo: Arc<GenosTopology>, now: Instant) -> Vec<MeshOutput> {
        self.topo = topo;
        let order = self.topo.links_of(&self.me);
        let wanted: HashSet<&str> = order.iter().copied().collect();
        let mut out = Vec::new();
        for p in &order {
            self.retiring.remove(*p);
            if !self.linked.contains(*p) {
                out.push(MeshOutput::Open((*p).to_owned()));
            }
        }
        for p in &self.linked {
            if !wanted.contains(p.as_str()) {
                self.retiring.entry(p.clone()).or_insert(now + GRACE);
            }
        }
        out
    }

    fn link_up(&mut self, peer: &str, _now: Instant) -> Vec<MeshOutput> {
        self.linked.insert(peer.to_owned());
        Vec::new()
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

    fn originate(&mut self, mut frame: CellFrame, _now: Instant) -> Vec<MeshOutput> {
        self.remember((frame.origin, frame.seq));
        frame.max_hops = self.topo.ttl;
        frame.hops = 0;
        let mut out = Vec::new();
        let Some(&cell) = self.topo.cell_of.get(&self.me) else {
            return out;
        };
        let mates: Vec<&str> = self.topo.cells[cell].iter().map(String::as_str).collect();
        self.send_to(&mates, Some(&self.me), &frame, &mut out);
        if self.topo.is_bridge(&self.me) {
            self.send_to(&self.topo.neighbour_bridges(cell), None, &frame, &mut out);
        }
        out
    }

    fn on_frame(
        &mut self,
        from: &str,
        mut frame: CellFrame,
        _now: Instant,
    ) -> Result<Vec<MeshOutput>, MeshDrop> {
        if !self.remember((frame.origin, frame.seq)) {
            return Err(MeshDrop::Duplicate);
        }
        let mut out = Vec::new();
        let left = frame.remaining();
        frame.hops = frame.hops.saturating_add(1);
        if left > 0
            && self.topo.is_bridge(&self.me)
            && let Some(&cell) = self.topo.cell_of.get(&self.me)
        {
            let neighbours = self.topo.neighbour_bridges(cell);
            if self.topo.cell_of.get(from) == Some(&cell) {
                self.send_to(&neighbours, None, &frame, &mut out);
            } else {
                let mates: Vec<&str> = self.topo.cells[cell].iter().map(String::as_str).collect();
                self.send_to(&mates, Some(from), &frame, &mut out);
                self.send_to(&neighbours, Some(from), &frame, &mut out);
            }
        }
        out.push(MeshOutput::Deliver(frame));
        Ok(out)
    }

    fn tick(&mut self, now: Instant) -> Vec<MeshOutput> {
        let mut due: Vec<String> = self
            .retiring
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(p, _)| p.clone())
            .collect();
        due.sort();
        due.into_iter()
            .map(|p| {
                self.retiring.remove(&p);
                MeshOutput::Close(p)
            })
            .collect()
    }

    fn link_count(&self) -> usize {
        self.linked.len()
    }

    fn memory_bytes(&self) -> usize {
        self.seen.len() * 48 + self.order.len() * 40 + self.linked.len() * 64 + self.topo.len() * 56
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_vector() {
        // FNV-1a 32-bit test vectors.
        assert_eq!(fnv1a(""), 0x811c_9dc5);
        assert_eq!(fnv1a("a"), 0xe40c_292c);
        assert_eq!(fnv1a("foobar"), 0xbf9c_f968);
        let prefix = fnv1a_more(fnv1a("peer"), b":");
        for i in [0, 7, 10, 12345] {
            assert_eq!(fnv1a_number(prefix, i), fnv1a(&format!("peer:{i}")));
        }
    }

    #[test]
    fn one_bridge_per_cell_and_skip_links() {
        let roster: Vec<String> = (0..160).map(|i| format!("peer{i}")).collect();
        let t = GenosTopology::compute(&roster, GENOS_CELL_SIZE);
        assert_eq!(t.cells.len(), 16);
        assert_eq!(t.bridges().count(), 16);
        assert_eq!(t.ttl, 2 * 5 + 3);
        let mut n = t.neighbours(0);
        n.sort();
        assert_eq!(n, vec![1, 2, 4, 8, 12, 14, 15]);
    }

    #[test]
    fn sealing_waits_for_quiet_or_thirty_seconds_on_shrink() {
        let t0 = Instant::now();
        let mut s = GenosSealer::default();
        s.changed(t0, true);
        assert!(!s.due(t0 + Duration::from_millis(1_900)));
        assert!(s.due(t0 + Duration::from_secs(2)));
        s.changed(t0, false);
        assert!(!s.due(t0 + Duration::from_secs(29)));
        assert!(s.due(t0 + Duration::from_secs(30)));
    }
}
