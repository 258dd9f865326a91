//! One daemon with 200 links: 10 rooms (one app each, so one link per peer per room) × 20 peers,
//! the peers being 20 other daemons on loopback. Reports the hub's RSS per link, its idle CPU,
//! its CPU while it broadcasts a steady 100 messages a second into every room, and the
//! messages' latency (hub app → peer app) p50 / p99.
//!
//! `cargo bench --bench scale [-- --json]` (about two minutes; `MESHRTC_SCALE_PEERS` changes 20).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use meshrtc::proto;

const ROOMS: usize = 10;
const RATE_PER_ROOM: u64 = 100;
const STEADY: Duration = Duration::from_secs(10);

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn app(room: usize) -> String {
    format!("scale-{room}")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let peers: usize = std::env::var("MESHRTC_SCALE_PEERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let hub = Daemon::with_embedded_relay().await;
    let relay = hub.relay_url();
    let mut others = Vec::new();
    for _ in 0..peers {
        others.push(Daemon::with_relays(std::slice::from_ref(&relay)).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = rss_mib(hub.pid());

    // The peers join first; only the first peer's session listens to the broadcasts (the others
    // subscribe to a silent channel, so the bench's own reading does not load the machine).
    let mut listener = None;
    let mut quiet = Vec::new();
    for (i, d) in others.iter().enumerate() {
        let mut s = d.session().await;
        for r in 0..ROOMS {
            let channels = if i == 0 {
                vec![]
            } else {
                vec!["quiet".to_owned()]
            };
            s.join_request(proto::JoinRequest {
                app: app(r),
                room: "room".into(),
                channels,
                ..Default::default()
            })
            .await;
        }
        if i == 0 {
            listener = Some(s);
        } else {
            quiet.push(s);
        }
    }
    let mut listener = listener.expect("at least one peer");
    let mut hs = hub.session().await;
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for r in 0..ROOMS {
        handles.push(hs.join(&app(r), "room", "").await);
    }
    let want = (ROOMS * peers) as u32;
    let links = loop {
        let st = hub.status().await;
        let joined: usize = st.rooms.iter().map(|r| r.peers.len()).sum();
        if joined as u32 >= want || t0.elapsed() > Duration::from_secs(180) {
            break joined;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let setup = t0.elapsed();
    eprintln!(
        "hub: {links}/{want} room peers after {:.1} s",
        setup.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_after = rss_mib(hub.pid());
    let rss_per_link = (rss_after - rss_before) / links.max(1) as f64;
    // Named so that a profiler can be pointed at the measured window.
    eprintln!("idle: measuring daemon {} for 10 s", hub.pid());
    let idle = cpu_percent_over(hub.pid(), Duration::from_secs(10)).await;

    // Steady traffic: every 10 ms, one message into each room (100 a second per room).
    let sender = hs.sender();
    // The hub's replies are read and dropped, so its session never waits on this bench.
    let drain = tokio::spawn(async move { while hs.next_message().await.is_some() {} });
    let send_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE_PER_ROOM));
        let end = Instant::now() + STEADY;
        let mut id = 1_000_000u64;
        while Instant::now() < end {
            tick.tick().await;
            for &room in &handles {
                id += 1;
                let payload = proto::Payload {
                    kind: Some(proto::payload::Kind::Text(unix_us().to_string())),
                    meta_json: String::new(),
                };
                let msg = proto::ClientMessage {
                    request_id: id,
                    body: Some(proto::client_message::Body::Send(proto::SendRequest {
                        room,
                        channel: "chat".into(),
                        payload: Some(payload),
                        targets: vec![],
                    })),
                };
                if sender.send(msg).await.is_err() {
                    return id - 1_000_000;
                }
            }
        }
        id - 1_000_000
    });
    let cpu_task = tokio::spawn({
        let pid = hub.pid();
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            cpu_percent_over(pid, STEADY - Duration::from_secs(2)).await
        }
    });
    let mut latencies = Vec::new();
    let end = Instant::now() + STEADY + Duration::from_secs(2);
    while Instant::now() < end {
        let left = end.saturating_duration_since(Instant::now());
        let Some(m) = listener.wait_message(left).await else {
            break;
        };
        if let Some(proto::payload::Kind::Text(t)) = m.payload.and_then(|p| p.kind)
            && let Ok(sent) = t.parse::<u64>()
        {
            latencies.push(unix_us().saturating_sub(sent) as f64 / 1000.0);
        }
    }
    // Every message sent (the interval's first tick is immediate: one round more than
    // rate × time).
    let expected = send_task.await.unwrap_or(0);
    let busy = cpu_task.await.unwrap_or(0.0);
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let drop_counts = hub.status().await.drops;
    let drops: u64 = drop_counts.values().sum();
    let named: Vec<String> = drop_counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!("one daemon, {ROOMS} rooms x {peers} peers ({links} room peers, one link each)");
    println!(
        "  setup to all links         {:>8.1} s",
        setup.as_secs_f64()
    );
    println!("  RSS before / after         {rss_before:>8.1} / {rss_after:.1} MiB");
    println!("  RSS per link               {rss_per_link:>8.3} MiB");
    println!("  idle CPU                   {idle:>8.2} %");
    println!(
        "  CPU at {RATE_PER_ROOM} msg/s per room   {busy:>8.1} % ({} msg/s out, to {} links)",
        ROOMS as u64 * RATE_PER_ROOM,
        links
    );
    println!(
        "  latency p50 / p99          {:>8.2} / {:.2} ms ({} of {expected} sent received by one peer)",
        pct(0.5),
        pct(0.99),
        latencies.len()
    );
    println!(
        "  hub drop counters          {drops:>8} ({})",
        named.join(", ")
    );
    if json {
        println!(
            "{}",
            serde_json::json!({
                "rooms": ROOMS, "peers": peers, "links": links,
                "setup_s": setup.as_secs_f64(), "rss_per_link_mib": rss_per_link,
                "idle_cpu_pct": idle, "busy_cpu_pct": busy,
                "latency_p50_ms": pct(0.5), "latency_p99_ms": pct(0.99),
                "received": latencies.len(), "expected": expected, "drops": drops,
            })
        );
    }
    drain.abort();
    drop(quiet);
}
