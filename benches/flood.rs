//! Responsiveness under an announce flood: round trips to a real peer before and during 10,000
//! fake announces from distinct keys, on one daemon.
//!
//! `cargo bench --bench flood [-- --json]`. Everything runs on 127.0.0.1 with an in-process
//! relay. The test suite only checks liveness under the same flood; the figures live here.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use meshrtc::proto;

const ANNOUNCES: u32 = 10_000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Ping round trips (ms) to `peer` every 20 ms for `span`.
async fn pings(endpoint: &str, peer: &str, span: Duration) -> Vec<f64> {
    let mut c = meshrtc::client::connect(endpoint).await.expect("connect");
    let mut out = Vec::new();
    let t = Instant::now();
    while t.elapsed() < span {
        let r = c
            .ping(proto::PingRequest {
                app: "flood".into(),
                room: "room".into(),
                peer: peer.to_owned(),
            })
            .await
            .expect("ping")
            .into_inner();
        out.push(r.rtt_ms);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out.sort_by(f64::total_cmp);
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let json_out = std::env::args().any(|a| a == "--json");
    let (relay, url) = flood_relay().await;
    let a = Daemon::with_relays(std::slice::from_ref(&url)).await;
    let b = Daemon::with_relays(std::slice::from_ref(&url)).await;
    let idb = b.peer_id().await;
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    sa.join("flood", "room", "").await;
    sb.join("flood", "room", "").await;
    assert!(sa.wait_join(&idb, JOIN).await, "no join");
    let quiet = pings(&a.endpoint(), &idb, Duration::from_secs(3)).await;
    let events = fake_announces("flood", "room", ANNOUNCES);
    let flooding = tokio::spawn(flood(relay, events));
    let loud = pings(&a.endpoint(), &idb, Duration::from_secs(1)).await;
    let _relay = flooding.await.expect("flood");
    let drops = a.status().await.drops;
    let fig = |v: &[f64]| (percentile(v, 0.5), percentile(v, 0.99), v[v.len() - 1]);
    let (q50, q99, qmax) = fig(&quiet);
    let (l50, l99, lmax) = fig(&loud);
    println!("meshrtc flood benchmark ({ANNOUNCES} fake announces in 1 s, one daemon, 127.0.0.1)");
    println!("  ping before   p50 {q50:6.2} ms   p99 {q99:6.2} ms   max {qmax:6.2} ms");
    println!("  ping during   p50 {l50:6.2} ms   p99 {l99:6.2} ms   max {lmax:6.2} ms");
    println!(
        "  dropped: poke_rate_limited {}, dials_full {}",
        drops.get("poke_rate_limited").copied().unwrap_or(0),
        drops.get("dials_full").copied().unwrap_or(0)
    );
    if json_out {
        println!(
            "{}",
            serde_json::json!({"ping_quiet_p50_ms": q50, "ping_quiet_p99_ms": q99, "ping_flood_p50_ms": l50, "ping_flood_p99_ms": l99, "ping_flood_max_ms": lmax})
        );
    }
}
