//! Loopback figures: join → peer:join latency and one-way throughput between two real daemons.
//!
//! `cargo bench --bench loopback [-- --json]`. Everything runs on 127.0.0.1 with the embedded relay.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use meshrtc::proto::event::Kind;

const JOINS: usize = 20;
const MESSAGES: usize = 320;
const MESSAGE_SIZE: usize = 64 * 1024;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let json_out = std::env::args().any(|a| a == "--json");
    let a = Daemon::with_embedded_relay().await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    let ida = a.peer_id().await;

    // Join latency: a fresh app id each time, so every join runs signaling, ICE and DTLS.
    let mut joins = Vec::with_capacity(JOINS);
    for i in 0..JOINS {
        let app = format!("bench-join-{i}-{}", std::process::id());
        let mut sa = a.session().await;
        let mut sb = b.session().await;
        sa.join(&app, "room", "").await;
        let t = Instant::now();
        sb.join(&app, "room", "").await;
        assert!(
            sb.wait_join(&ida, Duration::from_secs(30)).await,
            "join {i} timed out"
        );
        joins.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    joins.sort_by(f64::total_cmp);
    let (join_p50, join_p99) = (percentile(&joins, 0.5), percentile(&joins, 0.99));

    // Throughput: 64 KiB binary messages, A → B, timed until the last one arrives.
    let idb = b.peer_id().await;
    let mut sa = a.session().await;
    let mut sb = b.session().await;
    let ra = sa.join("bench-tput", "room", "").await;
    sb.join("bench-tput", "room", "").await;
    assert!(sa.wait_join(&idb, Duration::from_secs(30)).await);
    let payload = vec![0xA5u8; MESSAGE_SIZE];
    let receiver = tokio::spawn(async move {
        let mut got = 0usize;
        while got < MESSAGES {
            match sb
                .wait_for(Duration::from_secs(60), |e| {
                    matches!(e.kind, Some(Kind::Message(_)))
                })
                .await
            {
                Some(_) => got += 1,
                None => break,
            }
            sb.events.clear();
        }
        (got, Instant::now())
    });
    let start = Instant::now();
    for _ in 0..MESSAGES {
        let r = sa.send(ra, "bulk", binary(payload.clone(), ""), &[]).await;
        assert!(r.error.is_none(), "{:?}", r.error);
    }
    let (got, end) = receiver.await.expect("receiver");
    assert_eq!(got, MESSAGES, "messages lost");
    let secs = end.duration_since(start).as_secs_f64();
    let mbs = (MESSAGES * MESSAGE_SIZE) as f64 / secs / 1e6;

    // Announce traffic of one idle room: events the relay accepted from a fresh daemon.
    let c = Daemon::with_relays(&[a.relay_url()]).await;
    let mut sc = c.session().await;
    let relay_out = |d: &Daemon| {
        let endpoint = d.endpoint();
        async move {
            let mut client = meshrtc::client::connect(&endpoint).await.expect("connect");
            let relays = client
                .relays(meshrtc::proto::RelaysRequest {})
                .await
                .expect("relays")
                .into_inner()
                .relays;
            relays.iter().map(|r| r.events_out).sum::<u64>()
        }
    };
    sc.join("bench-idle", "room", "").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let burst = relay_out(&c).await;
    tokio::time::sleep(Duration::from_secs(61)).await;
    let per_minute = relay_out(&c).await - burst;

    println!("meshrtc loopback benchmark (two daemons, embedded relay, 127.0.0.1)");
    println!(
        "  join -> peer:join   p50 {join_p50:8.1} ms   p99 {join_p99:8.1} ms   ({JOINS} joins, fresh app each)"
    );
    println!("  throughput 64 KiB   {mbs:8.1} MB/s  ({MESSAGES} messages, one direction)");
    println!(
        "  idle room announces {burst} events in the first 2 s (burst), then {per_minute} per minute, per relay"
    );
    if json_out {
        println!(
            "{}",
            serde_json::json!({"join_p50_ms": join_p50, "join_p99_ms": join_p99, "throughput_mbs": mbs, "idle_room_burst_events": burst, "idle_room_events_per_minute": per_minute})
        );
    }
}
