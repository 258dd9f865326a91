//! Turning a finished run into its [`Report`].

use std::time::Duration;

use super::{DEADLINE, SETTLED, Sim, SimPeer};
use crate::mesh::Overlay;
use crate::sim::Report;

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Delivery, hops, links, heal time, frames and state of a finished run.
pub(super) fn report<O: Overlay>(sim: &Sim<O>, algo: &'static str) -> Report {
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
        links_peak: sim.links_peak,
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
