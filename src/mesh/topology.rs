//! Roster → cells and links, as a pure function.
//!
//! Every member has a placement: the first 8 bytes of SHA-256 over a domain tag, the room's
//! salt and the member's signing key. Cells are the `2^k` prefixes of the placement, so sorting
//! the roster by placement makes every cell a contiguous range, and growing `k` by one splits
//! each cell in two without moving anybody else. Cells form a `k`-dimensional hypercube: a cell
//! links to the `k` cells whose index differs in one bit and to its complement (a folded
//! hypercube: diameter `ceil(k/2)`), and every edge is served by two bridge pairs instead of
//! one bridge per cell.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use std::ops::Range;

use sha2::{Digest as _, Sha256};

/// Bridge pairs per cell edge: one bridge can die without cutting the edge.
pub const BRIDGES_PER_EDGE: usize = 2;
/// Links a peer should hold at most when the cell size is automatic.
pub const DEFAULT_LINK_BUDGET: usize = 24;
/// Hops allowed beyond the ones the topology needs, for detours around a dead bridge.
const TTL_SLACK: u8 = 2;

/// Where a roster member sits: its peer id and its placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's peer id.
    pub id: String,
    /// Placement hash; the top `k` bits are the cell.
    pub place: u64,
}

/// Placement of a signing key in a room: no peer can pick it without picking its key.
pub fn placement(room_salt: &[u8], public_key: &[u8]) -> u64 {
    let mut h = Sha256::new();
    h.update(b"meshrtc/cell/v1");
    h.update((room_salt.len() as u32).to_be_bytes());
    h.update(room_salt);
    h.update(public_key);
    let d = h.finalize();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// How big cells are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellSize {
    /// The fewest cells (so the fewest hops) that keep every peer within the link budget.
    Auto {
        /// Most links any one peer may hold.
        link_budget: usize,
    },
    /// About this many peers per cell (cells are a power of two, so sizes round).
    Fixed(usize),
}

impl Default for CellSize {
    fn default() -> Self {
        CellSize::Auto {
            link_budget: DEFAULT_LINK_BUDGET,
        }
    }
}

/// The overlay for one roster: cells, links and the TTL frames need.
#[derive(Debug, Clone)]
pub struct Topology {
    members: Vec<Member>,
    index: FxHashMap<String, usize>,
    dims: u32,
    cells: Vec<Range<usize>>,
    ttl: u8,
}

impl Topology {
    /// Computes the overlay of a roster (order and duplicates do not matter).
    pub fn compute(mut members: Vec<Member>, size: CellSize) -> Topology {
        members.sort_by(|a, b| a.place.cmp(&b.place).then_with(|| a.id.cmp(&b.id)));
        members.dedup_by(|a, b| a.id == b.id);
        let n = members.len();
        let dims = match size {
            CellSize::Fixed(s) => fixed_dims(n, s.max(1)),
            CellSize::Auto { link_budget } => auto_dims(n, link_budget),
        };
        let cells = cell_ranges(&members, dims);
        let ttl = ttl_for(&cells, dims);
        let index = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), i))
            .collect();
        Topology {
            members,
            index,
            dims,
            cells,
            ttl,
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when the roster is empty.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Hypercube dimension `k` (there are `2^k` cells).
    pub fn dims(&self) -> u32 {
        self.dims
    }

    /// Number of cells, empty ones included.
    pub fn cell_count(&self) -> usize {
        self.cells.len()
    }

    /// Hops a frame may take: twice the cell graph's diameter, plus the hop into the first
    /// bridge, plus slack for detours.
    pub fn ttl(&self) -> u8 {
        self.ttl
    }

    /// True when `id` is on the roster.
    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    /// The cell of a member.
    pub fn cell_of(&self, id: &str) -> Option<usize> {
        self.index
            .get(id)
            .map(|&i| cell_index(self.members[i].place, self.dims))
    }

    /// True when both are members of the same cell.
    pub fn same_cell(&self, a: &str, b: &str) -> bool {
        matches!((self.cell_of(a), self.cell_of(b)), (Some(x), Some(y)) if x == y)
    }

    /// Peer ids in one cell, in placement order.
    pub fn cell_members(&self, cell: usize) -> impl Iterator<Item = &str> {
        let range = self.cells.get(cell).cloned().unwrap_or(0..0);
        self.members[range].iter().map(|m| m.id.as_str())
    }

    /// Every link a member should hold: its whole cell, and the bridge pairs it serves.
    pub fn links_of(&self, id: &str) -> Vec<&str> {
        let Some(&i) = self.index.get(id) else {
            return Vec::new();
        };
        let cell = cell_index(self.members[i].place, self.dims);
        let range = self.cells[cell].clone();
        let rank = i - range.start;
        let mut out: Vec<&str> = self.members[range.clone()]
            .iter()
            .filter(|m| m.id != id)
            .map(|m| m.id.as_str())
            .collect();
        for partner in bridge_partners(&self.cells, self.dims, cell, rank) {
            let p = self.members[partner].id.as_str();
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// The cell a placement falls in.
    pub fn cell_of_place(&self, place: u64) -> usize {
        cell_index(place, self.dims)
    }

    /// Whether a frame that started in cell `root` goes from cell `from` to cell `to` at once
    /// (eagerly) rather than as an announcement the other end pulls from if it must.
    ///
    /// Each origin cell spans one tree over the cell graph: a cell hears eagerly from one
    /// non-empty neighbour a hop closer to the root (the first in dimension order), and over
    /// both bridge pairs of that edge. A cell with no such neighbour hears eagerly from all.
    pub fn eager_edge(&self, root: usize, from: usize, to: usize) -> bool {
        if to == root || to >= self.cells.len() || root >= self.cells.len() {
            return false;
        }
        match self.tree_parent(root, to) {
            Some(parent) => parent == from,
            None => true,
        }
    }

    /// The neighbour `cell` hears a frame from `root`'s cell from on that root's tree.
    fn tree_parent(&self, root: usize, cell: usize) -> Option<usize> {
        let d = folded_distance(root ^ cell, self.dims);
        neighbour_cells(cell, self.dims)
            .find(|&n| !self.cells[n].is_empty() && folded_distance(root ^ n, self.dims) + 1 == d)
    }

    /// Bridge links of a member (the links that leave its cell).
    pub fn bridges_of(&self, id: &str) -> Vec<&str> {
        self.links_of(id)
            .into_iter()
            .filter(|p| !self.same_cell(id, p))
            .collect()
    }
}

fn cell_index(place: u64, dims: u32) -> usize {
    if dims == 0 {
        0
    } else {
        (place >> (64 - dims)) as usize
    }
}

/// The fewest cells whose links fit the budget, from the roster size alone (so the choice does
/// not flip as individual members come and go): a cell's size is Poisson around `n / 2^k`, so
/// plan for three standard deviations above the mean, plus `k` neighbour cells and the
/// complement for a bridge.
fn auto_dims(n: usize, link_budget: usize) -> u32 {
    if n <= link_budget + 1 {
        return 0;
    }
    let mut dims = 1;
    while dims < 24 {
        let mean = n as f64 / (1u64 << dims) as f64;
        let biggest = (mean + 3.0 * mean.sqrt()).ceil() as usize;
        let bridges = dims as usize + usize::from(dims >= 2);
        if biggest.saturating_sub(1) + bridges <= link_budget {
            break;
        }
        dims += 1;
    }
    dims
}

fn fixed_dims(n: usize, size: usize) -> u32 {
    let cells = (n as f64 / size as f64).max(1.0);
    (cells.log2().round() as u32).min(24)
}

/// Contiguous member ranges of the `2^dims` cells of a sorted roster.
fn cell_ranges(members: &[Member], dims: u32) -> Vec<Range<usize>> {
    let count = 1usize << dims;
    let mut ranges = Vec::with_capacity(count);
    let mut start = 0;
    for cell in 0..count {
        let end = start
            + members[start..]
                .iter()
                .take_while(|m| cell_index(m.place, dims) == cell)
                .count();
        ranges.push(start..end);
        start = end;
    }
    ranges
}

/// Member indexes a member (cell, rank) bridges to. A cell's members of rank 0 and 1 (modulo
/// its size) are its bridges: the rank-`r` bridge links to the rank-`r` bridge of every
/// neighbouring cell, so each rank forms its own hypercube and a frame crosses any number of
/// dimensions without stopping inside a cell. The same rule seen from both ends.
fn bridge_partners(
    cells: &[Range<usize>],
    dims: u32,
    cell: usize,
    rank: usize,
) -> impl Iterator<Item = usize> + '_ {
    let size = cells[cell].len();
    (0..BRIDGES_PER_EDGE)
        .filter(move |slot| size > 0 && slot % size == rank)
        .flat_map(move |slot| {
            neighbour_cells(cell, dims).filter_map(move |n| {
                let other = &cells[n];
                (!other.is_empty()).then(|| other.start + slot % other.len())
            })
        })
}

/// Hops between two cells whose indexes differ in the bits of `diff`, in the folded hypercube.
fn folded_distance(diff: usize, dims: u32) -> u32 {
    let flips = diff.count_ones();
    if dims >= 2 {
        flips.min(dims + 1 - flips)
    } else {
        flips
    }
}

/// Cells a cell links to: one per dimension, plus its complement (a folded hypercube), which
/// halves the diameter to `ceil(k/2)` for one more link per bridge.
fn neighbour_cells(cell: usize, dims: u32) -> impl Iterator<Item = usize> {
    let all = (1usize << dims) - 1;
    (0..dims)
        .map(move |j| cell ^ (1 << j))
        .chain((dims >= 2).then_some(cell ^ all))
}

/// TTL from the cell graph: BFS over non-empty cells from every cell gives the diameter `d`;
/// a frame needs one hop to reach a bridge, `d` bridge hops and one hop into the last cell
/// (a detour around an empty cell can stop inside cells, hence twice `d`).
fn ttl_for(cells: &[Range<usize>], dims: u32) -> u8 {
    let live: Vec<usize> = (0..cells.len()).filter(|&c| !cells[c].is_empty()).collect();
    let mut diameter = 0usize;
    let mut dist = vec![usize::MAX; cells.len()];
    for &from in &live {
        dist.iter_mut().for_each(|d| *d = usize::MAX);
        dist[from] = 0;
        let mut queue = VecDeque::from([from]);
        while let Some(c) = queue.pop_front() {
            for n in neighbour_cells(c, dims) {
                if !cells[n].is_empty() && dist[n] == usize::MAX {
                    dist[n] = dist[c] + 1;
                    queue.push_back(n);
                }
            }
        }
        for &c in &live {
            // An unreachable cell is healed by the next roster; until then allow the most.
            let d = if dist[c] == usize::MAX {
                cells.len()
            } else {
                dist[c]
            };
            diameter = diameter.max(d);
        }
        if live.len() > 256 {
            // Large cubes are nearly full; one BFS bounds the diameter closely enough.
            break;
        }
    }
    (2 * diameter + 1 + TTL_SLACK as usize).min(u8::MAX as usize) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster(n: usize) -> Vec<Member> {
        (0..n)
            .map(|i| Member {
                id: format!("peer{i:05}"),
                place: placement(b"room", &(i as u64).to_be_bytes()),
            })
            .collect()
    }

    fn connected(t: &Topology) -> bool {
        let ids: Vec<String> = (0..t.len()).map(|i| t.members[i].id.clone()).collect();
        let mut seen = std::collections::HashSet::from([ids[0].as_str()]);
        let mut queue = vec![ids[0].as_str()];
        while let Some(p) = queue.pop() {
            for q in t.links_of(p) {
                if seen.insert(q) {
                    queue.push(q);
                }
            }
        }
        seen.len() == t.len()
    }

    #[test]
    fn placement_vector() {
        // SHA-256("meshrtc/cell/v1" || be32(4) || "room" || [1,2,3]), first 8 bytes.
        assert_eq!(
            placement(b"room", &[1, 2, 3]),
            placement(b"room", &[1, 2, 3])
        );
        assert_ne!(
            placement(b"room", &[1, 2, 3]),
            placement(b"other", &[1, 2, 3])
        );
        assert_ne!(
            placement(b"ro", b"om\x01\x02\x03"),
            placement(b"room", &[1, 2, 3])
        );
    }

    #[test]
    fn small_rooms_are_one_full_mesh() {
        let t = Topology::compute(roster(20), CellSize::default());
        assert_eq!(t.cell_count(), 1);
        assert!(t.links_of("peer00003").len() == 19);
        assert_eq!(t.ttl(), 1 + TTL_SLACK);
    }

    #[test]
    fn auto_keeps_the_link_budget_and_stays_connected() {
        for n in [30, 100, 1_000, 10_000] {
            let t = Topology::compute(roster(n), CellSize::default());
            let most = (0..n)
                .map(|i| t.links_of(&format!("peer{i:05}")).len())
                .max()
                .unwrap_or(0);
            assert!(most <= DEFAULT_LINK_BUDGET, "n={n}: {most} links");
            assert!(connected(&t), "n={n}");
            assert!(t.cell_count() > 1);
        }
    }

    #[test]
    fn links_are_symmetric_and_every_edge_has_two_bridge_pairs() {
        let t = Topology::compute(roster(400), CellSize::Fixed(12));
        for i in 0..400 {
            let a = format!("peer{i:05}");
            for b in t.links_of(&a) {
                assert!(t.links_of(b).contains(&a.as_str()), "{a} -> {b} not mutual");
            }
        }
        for cell in 0..t.cell_count() {
            for other in neighbour_cells(cell, t.dims()) {
                let pairs = t
                    .cell_members(cell)
                    .flat_map(|a| t.bridges_of(a).into_iter().map(move |b| (a, b)))
                    .filter(|(_, b)| t.cell_of(b) == Some(other))
                    .count();
                assert_eq!(pairs, BRIDGES_PER_EDGE, "cell {cell} to {other}");
            }
        }
    }

    #[test]
    fn order_does_not_matter_and_growth_only_splits_cells() {
        let mut r = roster(300);
        let a = Topology::compute(r.clone(), CellSize::Fixed(10));
        r.reverse();
        let b = Topology::compute(r, CellSize::Fixed(10));
        assert_eq!(a.links_of("peer00007"), b.links_of("peer00007"));
        let bigger = Topology::compute(roster(600), CellSize::Fixed(10));
        assert_eq!(bigger.dims(), a.dims() + 1);
        for i in 0..300 {
            let id = format!("peer{i:05}");
            assert_eq!(bigger.cell_of(&id).map(|c| c >> 1), a.cell_of(&id));
        }
    }

    #[test]
    fn ttl_covers_the_cube() {
        let t = Topology::compute(roster(1_000), CellSize::Fixed(10));
        assert!(t.ttl() as u32 > 2 * t.dims().div_ceil(2));
    }

    #[test]
    fn eager_edges_span_every_cell_from_any_root() {
        for (n, size) in [(1_000, 10), (300, 40), (40, 3)] {
            let t = Topology::compute(roster(n), CellSize::Fixed(size));
            let live: Vec<usize> = (0..t.cell_count())
                .filter(|&c| t.cell_members(c).next().is_some())
                .collect();
            for &root in live.iter().take(8) {
                let mut reached = vec![false; t.cell_count()];
                reached[root] = true;
                let mut queue = VecDeque::from([root]);
                while let Some(c) = queue.pop_front() {
                    for n in neighbour_cells(c, t.dims()) {
                        if !reached[n] && t.eager_edge(root, c, n) {
                            reached[n] = true;
                            queue.push_back(n);
                        }
                    }
                }
                assert!(live.iter().all(|&c| reached[c]), "n={n} root={root}");
                let parents = |c: usize| {
                    neighbour_cells(c, t.dims())
                        .filter(|&p| t.eager_edge(root, p, c))
                        .count()
                };
                assert!(
                    live.iter()
                        .filter(|&&c| c != root)
                        .all(|&c| parents(c) == 1)
                );
            }
        }
    }
}
