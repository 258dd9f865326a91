//! `meshrtc-sim`: runs the cellular overlay (ours and the GenosRTC baseline) over N virtual
//! peers with latency, loss, churn and bridge kills, on the same scenario and seed.

use std::time::{Duration, Instant};

use clap::Parser;

// The simulator allocates and frees millions of small frames and output lists, often on another
// thread than the one that made them; glibc's allocator spent a fifth of the run there.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use meshrtc::mesh::CellSize;
use meshrtc::sim::{Report, Scenario, run_genosrtc, run_meshrtc, run_plumtree};

/// Simulate a room's overlay and compare meshrtc's cells with GenosRTC's.
#[derive(Debug, Parser)]
#[command(name = "meshrtc-sim", version)]
struct Args {
    /// Peers in the room (repeat or comma-separate for several runs).
    #[arg(long, value_delimiter = ',', default_values_t = [1000usize])]
    n: Vec<usize>,
    /// Peers replaced per second (repeatable).
    #[arg(long, value_delimiter = ',', default_values_t = [0.0f64])]
    churn: Vec<f64>,
    /// Percent of the room replaced per second, instead of --churn (repeatable).
    #[arg(long, value_delimiter = ',')]
    churn_pct: Vec<f64>,
    /// Bridges crashed at --kill-at seconds.
    #[arg(long, default_value_t = 0)]
    kills: usize,
    /// When the bridges die, seconds into the run.
    #[arg(long, default_value_t = 20.0)]
    kill_at: f64,
    /// Simulated seconds.
    #[arg(long, default_value_t = 40.0)]
    duration: f64,
    /// Mean one-way link latency, ms.
    #[arg(long, default_value_t = 20.0)]
    latency_ms: f64,
    /// Fraction of transmissions lost (retransmitted: data channels are reliable).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Our cell size: "auto" or a number.
    #[arg(long, default_value = "auto")]
    cell_size: String,
    /// With --cell-size auto: most links one peer may hold.
    #[arg(long, default_value_t = meshrtc::mesh::topology::DEFAULT_LINK_BUDGET)]
    link_budget: usize,
    /// RNG seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Which algorithms: both (meshrtc and genosrtc), all (and plumtree), meshrtc, genosrtc,
    /// plumtree.
    #[arg(long, default_value = "both")]
    algo: String,
    /// One JSON line per algorithm and scenario.
    #[arg(long)]
    json: bool,
}

/// Runs one algorithm on a scenario.
type Runner = fn(&Scenario) -> Report;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cell_size = match args.cell_size.as_str() {
        "auto" => CellSize::Auto {
            link_budget: args.link_budget,
        },
        n => CellSize::Fixed(
            n.parse()
                .map_err(|_| anyhow::anyhow!("--cell-size is \"auto\" or a number, not {n:?}"))?,
        ),
    };
    let runs: Vec<(&str, Runner)> = match args.algo.as_str() {
        "both" => vec![("meshrtc", run_meshrtc), ("genosrtc", run_genosrtc)],
        "all" => vec![
            ("meshrtc", run_meshrtc),
            ("genosrtc", run_genosrtc),
            ("plumtree", run_plumtree),
        ],
        "plumtree" => vec![("plumtree", run_plumtree)],
        "meshrtc" => vec![("meshrtc", run_meshrtc)],
        "genosrtc" => vec![("genosrtc", run_genosrtc)],
        other => anyhow::bail!("--algo is both, all, meshrtc, genosrtc or plumtree, not {other:?}"),
    };
    if !args.json {
        println!(
            "{:<9} {:>6} {:>6} {:>9} {:>7} {:>5} {:>5} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>11} {:>6}",
            "algo",
            "n",
            "churn",
            "delivery",
            "links",
            "max",
            "peak",
            "hops p50",
            "hops p99",
            "heal ms",
            "sends/bc",
            "ctl/bc",
            "mem KiB",
            "roster ms",
            "secs"
        );
    }
    for &n in &args.n {
        let churns: Vec<f64> = if args.churn_pct.is_empty() {
            args.churn.clone()
        } else {
            args.churn_pct
                .iter()
                .map(|p| p / 100.0 * n as f64)
                .collect()
        };
        for churn in churns {
            let scenario = Scenario {
                n,
                seed: args.seed,
                duration: Duration::from_secs_f64(args.duration),
                latency: Duration::from_secs_f64(args.latency_ms / 1000.0),
                loss: args.loss,
                churn_per_s: churn,
                bridge_kills: args.kills,
                kill_at: Duration::from_secs_f64(args.kill_at),
                cell_size,
                ..Scenario::default()
            };
            for (_, run) in &runs {
                let started = Instant::now();
                let r = run(&scenario);
                if args.json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    println!(
                        "{:<9} {:>6} {:>6} {:>9.4} {:>7.1} {:>5} {:>5} {:>9} {:>9} {:>9} {:>9.0} {:>8.0} {:>8.1} {:>11} {:>6.1}",
                        r.algo,
                        r.n,
                        r.churn_per_s,
                        r.delivery,
                        r.links_mean,
                        r.links_max,
                        r.links_peak,
                        r.hops_p50,
                        r.hops_p99,
                        r.heal_ms.map_or("-".to_owned(), |h| format!("{h:.0}")),
                        r.sends_per_broadcast,
                        r.control_per_broadcast,
                        r.mem_per_peer_bytes / 1024.0,
                        match (r.roster_ms_p50, r.roster_ms_max) {
                            (Some(p50), Some(max)) => format!("{p50:.0}/{max:.0}"),
                            _ => "-".to_owned(),
                        },
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }
    }
    Ok(())
}
