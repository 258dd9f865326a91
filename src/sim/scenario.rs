//! What a simulation runs (a scenario) and what it found (a report).

use std::time::Duration;

use serde::Serialize;

use crate::mesh::CellSize;

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
    /// Most links any peer held at any moment of the run.
    pub links_peak: usize,
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
