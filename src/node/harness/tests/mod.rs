//! Tests on the deterministic harness: races and faults of the node core, no sockets.

mod cells;
mod delivery;
mod faults;
mod history;
mod lifecycle;
mod links;
mod media;
mod requests;
mod sessions;

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Net, Sim};
use crate::drops::DropReason;
use crate::mesh::CellSize;
use crate::node::JoinOptions;
use crate::node::session::EventKind;
use crate::room::LeaveReason;
use crate::wire::frame::OuterFrame;

const SEC: Duration = Duration::from_secs(1);

fn plain() -> JoinOptions {
    JoinOptions::default()
}

fn cells(size: usize) -> JoinOptions {
    JoinOptions {
        cells: Some(CellSize::Fixed(size)),
        ..JoinOptions::default()
    }
}

/// Every living node among `nodes` has joined every other one in `room`.
fn converged(net: &Net, room: &str, nodes: &[usize]) -> bool {
    let alive: Vec<usize> = nodes
        .iter()
        .copied()
        .filter(|&i| net.nodes[i].alive)
        .collect();
    alive.iter().all(|&i| {
        let want: BTreeSet<String> = alive
            .iter()
            .filter(|&&j| j != i)
            .map(|&j| net.nodes[j].id())
            .collect();
        net.nodes[i].joined(room) == want
    })
}

fn all(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// Joins `n` nodes to `room` at once and waits until they all see each other.
fn mesh(seed: u64, n: usize, room: &str) -> Net {
    let mut net = Net::new(seed, n);
    for i in 0..n {
        net.join(i, room, plain());
    }
    let ok = net.run_until(30 * SEC, |net| converged(net, room, &all(n)));
    assert!(ok, "seed {seed}: {n} nodes did not converge in 30 s");
    net
}

fn count_from(sim: &Sim, channel: &str, from: &str, text: &str) -> usize {
    sim.messages(channel)
        .iter()
        .filter(|(f, t)| f == from && t == text)
        .count()
}

/// Every node sends one message; every other living node gets each exactly once.
fn everyone_hears_everyone(net: &mut Net, room: &str, nodes: &[usize], tag: &str) {
    for &i in nodes {
        net.send(i, room, "chat", &format!("{tag} from {i}"));
    }
    net.run_for(2 * SEC);
    for &i in nodes {
        for &j in nodes {
            if i == j {
                continue;
            }
            let from = net.nodes[j].id();
            let n = count_from(&net.nodes[i], "chat", &from, &format!("{tag} from {j}"));
            assert_eq!(
                n, 1,
                "seed {}: node {i} got {n} copies of {j}'s {tag:?}",
                net.seed
            );
        }
    }
}
