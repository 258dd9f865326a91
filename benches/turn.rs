//! Join time and throughput through a TURN relay (a real coturn on loopback, both daemons under
//! `--ice-policy relay`), beside the same figures over host candidates, in the same run.
//!
//! `cargo bench --bench turn [-- --json]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use meshrtc::proto;

const JOINS: usize = 5;
const BULK: usize = 4 << 20;

/// A fresh pair of daemons with these flags; returns the join time and the two sessions.
async fn pair(flags: &[String], room: &str) -> (Daemon, Daemon, Session, Session, u32, Duration) {
    let relay: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let a = Daemon::spawn(Vec::new(), Some(relay), flags.to_vec()).await;
    let b = Daemon::spawn(vec![a.relay_url()], None, flags.to_vec()).await;
    let idb = b.peer_id().await;
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    let started = Instant::now();
    sa.join("bench-turn", room, "").await;
    let rb = sb.join("bench-turn", room, "").await;
    assert!(sa.wait_join(&idb, Duration::from_secs(30)).await, "no link");
    (a, b, sa, sb, rb, started.elapsed())
}

fn p50(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Join p50 over fresh pairs, then MB/s of one bulk message on the last pair (0 when it never
/// arrived: the link stalled and was dropped).
async fn measure(flags: &[String], what: &str) -> (f64, f64) {
    let mut joins = Vec::new();
    let mut last = None;
    for i in 0..JOINS {
        let (a, b, sa, sb, rb, took) = pair(flags, &format!("{what}-{i}")).await;
        joins.push(took.as_secs_f64() * 1000.0);
        last = Some((a, b, sa, sb, rb));
    }
    let (_a, _b, mut sa, mut sb, rb) = last.expect("a pair");
    let data = vec![7u8; BULK];
    let started = Instant::now();
    sb.send(rb, "bulk", binary(data, "{}"), &[]).await;
    let got = sa.wait_message(Duration::from_secs(60)).await;
    let secs = started.elapsed().as_secs_f64();
    let mbs = match got.and_then(|m| m.payload).and_then(|p| p.kind) {
        Some(proto::payload::Kind::Binary(b)) if b.len() == BULK => BULK as f64 / secs / 1e6,
        _ => {
            eprintln!("{what}: the bulk message never arrived");
            0.0
        }
    };
    (p50(&mut joins), mbs)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let port = free_port();
    let _turn = Coturn::start(
        None,
        "127.0.0.1",
        port,
        &["--lt-cred-mech", "--user", "bench:bench"],
    );
    let relayed: Vec<String> = [
        "--ice-server",
        &format!("turn:127.0.0.1:{port}"),
        "--ice-username",
        "bench",
        "--ice-credential",
        "bench",
        "--ice-policy",
        "relay",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut tcp = relayed.clone();
    tcp[1] = format!("turn:127.0.0.1:{port}?transport=tcp");
    let (host_join, host_mbs) = measure(&[], "host").await;
    let (turn_join, turn_mbs) = measure(&relayed, "turn").await;
    let (tcp_join, tcp_mbs) = measure(&tcp, "tcp").await;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "host_join_p50_ms": host_join, "host_mb_s": host_mbs,
                "turn_udp_join_p50_ms": turn_join, "turn_udp_mb_s": turn_mbs,
                "turn_tcp_join_p50_ms": tcp_join, "turn_tcp_mb_s": tcp_mbs,
            })
        );
        return;
    }
    println!("path                 join p50    4 MiB message");
    println!("host candidates      {host_join:7.0} ms   {host_mbs:6.1} MB/s");
    println!("TURN over UDP        {turn_join:7.0} ms   {turn_mbs:6.1} MB/s");
    println!("TURN over TCP        {tcp_join:7.0} ms   {tcp_mbs:6.1} MB/s");
}
