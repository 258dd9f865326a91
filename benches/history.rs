//! Durable-channel figures: how fast a keeper stores a busy channel (against live delivery of
//! the same messages to a peer, in the same run), bytes on disk per kept message, and how fast
//! a peer that was away catches up from one keeper. Real daemons on loopback.
//!
//! `cargo bench --bench history [-- --n 10000]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use meshrtc::proto;

const APP: &str = "meshrtc-bench";
const SIZE: usize = 1_024;

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                total += e.metadata().map_or(0, |m| m.len());
            }
        }
    }
    total
}

fn kept(d: &Daemon, room: &str) -> u64 {
    history_json(d, APP, room, "")["messages"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .iter()
        .position(|a| a == "--n")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let k = Daemon::with_embedded_relay().await;
    let a = Daemon::with_relays(&[k.relay_url()]).await;
    let live = Daemon::with_relays(&[k.relay_url()]).await;
    let (idk, ida) = (k.peer_id().await, a.peer_id().await);
    let mut sk = k.session().await;
    sk.join_request(proto::JoinRequest {
        app: APP.into(),
        room: "bench".into(),
        keep: vec![proto::Keep {
            channel: "chat".into(),
            max_messages: n * 2,
            max_age_seconds: 0,
        }],
        channels: vec!["none".into()],
        ..Default::default()
    })
    .await;
    let mut sl = live.session().await;
    sl.join(APP, "bench", "").await;
    let mut sa = a.session().await;
    let ra = sa.join(APP, "bench", "").await;
    for id in [&idk, &live.peer_id().await] {
        assert!(sa.wait_join(id, JOIN).await, "peers never joined");
    }
    // Wait until A knows K keeps chat (its broadcasts are then signed for K).
    sa.wait_keeper(ra, &idk, "chat", JOIN).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let disk_before = dir_bytes(&k.dir.join("state"));
    let body = "x".repeat(SIZE - 6);
    let start = Instant::now();
    let recv = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            if sl.wait_message(Duration::from_secs(60)).await.is_none() {
                break;
            }
            got += 1;
        }
        (got, start.elapsed())
    });
    for i in 0..n {
        sa.send(ra, "chat", text(&format!("{i:05}{body}")), &[])
            .await;
    }
    let (live_got, live_time) = recv.await.expect("live receiver");
    while kept(&k, "bench") < n && start.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let keep_time = start.elapsed();
    let stored = kept(&k, "bench");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let disk_after = dir_bytes(&k.dir.join("state"));
    let h = history_json(&k, APP, "bench", "");
    let value_bytes = h["bytes"].as_u64().unwrap_or(0);
    // A peer that was away catches up from K alone.
    let b = Daemon::with_relays(&[k.relay_url()]).await;
    let mut sb = b.session().await;
    let joined = Instant::now();
    sb.join_request(proto::JoinRequest {
        app: APP.into(),
        room: "bench".into(),
        since: since_all(),
        ..Default::default()
    })
    .await;
    let mut caught = 0u64;
    let mut verified = 0u64;
    let mut first: Option<Duration> = None;
    while caught < stored {
        let Some(m) = sb.wait_message(Duration::from_secs(30)).await else {
            break;
        };
        first.get_or_insert(joined.elapsed());
        if m.history {
            caught += 1;
            verified += u64::from(m.verified && m.from == ida);
        }
    }
    let catchup = joined.elapsed();
    let mib = (n as f64 * SIZE as f64) / (1 << 20) as f64;
    println!(
        "{n} × {SIZE} B messages ({mib:.1} MiB) from one sender; keeper and a live peer on loopback"
    );
    println!(
        "  live delivery:  {live_got}/{n} in {:.2} s = {:.0} msg/s (baseline)",
        live_time.as_secs_f64(),
        live_got as f64 / live_time.as_secs_f64()
    );
    println!(
        "  kept (stored):  {stored}/{n} in {:.2} s = {:.0} msg/s ({:.2} × live)",
        keep_time.as_secs_f64(),
        stored as f64 / keep_time.as_secs_f64(),
        (stored as f64 / keep_time.as_secs_f64()) / (live_got as f64 / live_time.as_secs_f64())
    );
    println!(
        "  on disk:        {:.0} B per message stored values, {:.0} B per message of sled files",
        value_bytes as f64 / stored.max(1) as f64,
        disk_after.saturating_sub(disk_before) as f64 / stored.max(1) as f64
    );
    println!(
        "  catch-up:       {caught}/{stored} ({verified} verified) in {:.2} s from join = {:.0} msg/s; first after {:.2} s",
        catchup.as_secs_f64(),
        caught as f64 / catchup.as_secs_f64(),
        first.unwrap_or_default().as_secs_f64()
    );
}
