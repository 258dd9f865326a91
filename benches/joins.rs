//! Join soak: daemon ↔ daemon joins, each in a fresh app (a fresh link: signaling, ICE, DTLS,
//! SCTP and the handshake), and unmodified Trystero pages in Chromium joining rooms a daemon
//! holds, all through an independent in-process relay. Counts joins that never complete within
//! 20 s, and prints p50 / p99 / max.
//!
//! `cargo bench --bench joins [-- --daemon-joins 500 --page-joins 200]`, on 127.0.0.1.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;

const WITHIN: Duration = Duration::from_secs(20);

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn report(what: &str, mut times: Vec<f64>, misses: usize) {
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        times
            .get(((times.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{what}: {} joins, {misses} missed; p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        times.len() + misses,
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let daemon_joins = arg("--daemon-joins", 500);
    let page_joins = arg("--page-joins", 200);
    let (_relay, url) = flood_relay().await;
    let a = Daemon::with_relays(std::slice::from_ref(&url)).await;
    let b = Daemon::with_relays(std::slice::from_ref(&url)).await;
    let (ida, idb) = (a.peer_id().await, b.peer_id().await);

    let (mut times, mut misses) = (Vec::new(), 0);
    for i in 0..daemon_joins {
        let app = format!("soak-{i}");
        let (mut sa, mut sb) = (a.session().await, b.session().await);
        let t = Instant::now();
        sa.join(&app, "room", "").await;
        sb.join(&app, "room", "").await;
        if sa.wait_join(&idb, WITHIN).await && sb.wait_join(&ida, WITHIN).await {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        } else {
            misses += 1;
            eprintln!(
                "miss: app {app}\n--- a\n{}\n--- b\n{}",
                a.link_report(),
                b.link_report()
            );
        }
        // Sessions end: the rooms are left and the links go idle and close.
    }
    report("daemon <-> daemon", times, misses);

    if page_joins == 0 {
        return;
    }
    let rooms: Vec<String> = (0..page_joins).map(|i| format!("page-{i}")).collect();
    let mut host = a.session().await;
    for room in &rooms {
        host.join("soak-pages", room, "").await;
    }
    let out = std::process::Command::new("node")
        .arg("tests/browser/soak-joins.mjs")
        .env("RELAY", &url)
        .env("APP", "soak-pages")
        .env("DAEMON_ROOMS", rooms.join(","))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("node");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("soak-joins.mjs printed no result: {text}"));
    let joins = v["joins"].as_array().cloned().unwrap_or_default();
    let misses = joins.iter().filter(|j| j.is_null()).count();
    let times = joins.iter().filter_map(|j| j.as_f64()).collect();
    report("Trystero page -> daemon", times, misses);
    drop(host);
}
