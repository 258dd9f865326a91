//! meshrtc against the WebRTC engine it sits on and against Trystero in Chromium, in one run.
//!
//! `cargo bench --bench compare [-- --json] [--runs N]`: everything on 127.0.0.1 (embedded relay,
//! ICE bound to loopback, no STUN). With `--runs N` the whole run repeats N times (each on fresh
//! daemons) and ends with each figure's min / median / max. The last line with `--json` is one
//! JSON object of the figures (medians over the runs, and their spread).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use meshrtc::proto::{self, client_message::Body, event::Kind, server_message};
use meshrtc::transport::{self, TransportEvent};
use tokio::sync::mpsc;

const BULK_SIZE: usize = 64 * 1024;
const BULK_COUNT: usize = 2_000;
const SMALL_SIZE: usize = 100;
const SMALL_COUNT: usize = 20_000;
const RTT_ROUNDS: usize = 500;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

// ---- engine baseline: two webrtc 0.21 peer connections in this process -------------------------

struct EnginePair {
    _connections: (transport::Connection, transport::Connection),
    a: transport::Channel,
    b: transport::Channel,
    a_rx: mpsc::UnboundedReceiver<TransportEvent>,
    b_rx: mpsc::UnboundedReceiver<TransportEvent>,
}

async fn engine_pair() -> EnginePair {
    let l = engine_link(loopback_engine_config(), Duration::from_secs(20))
        .await
        .expect("the data channel never opened");
    EnginePair {
        _connections: (l.a, l.b),
        a: l.ca,
        b: l.cb,
        a_rx: l.a_rx,
        b_rx: l.b_rx,
    }
}

async fn next_message(rx: &mut mpsc::UnboundedReceiver<TransportEvent>) -> Bytes {
    loop {
        if let Some(TransportEvent::Message(_, m)) = rx.recv().await {
            return m.bytes().clone();
        }
    }
}

/// Seconds to move `count` messages of `size` bytes from a to b. A message larger than a
/// link takes (`transport::MAX_MESSAGE_BYTES`) goes as several, as the daemon chunks it.
async fn engine_transfer(p: &mut EnginePair, size: usize, count: usize) -> f64 {
    let piece = size.min(transport::MAX_MESSAGE_BYTES);
    let pieces = count * size.div_ceil(piece);
    let payload = BytesMut::from(&vec![7u8; piece][..]);
    let start = Instant::now();
    let a = p.a.clone();
    let sender = tokio::spawn(async move {
        for _ in 0..pieces {
            a.send(payload.clone()).await.expect("send");
        }
    });
    for _ in 0..pieces {
        next_message(&mut p.b_rx).await;
    }
    let secs = start.elapsed().as_secs_f64();
    sender.await.expect("sender");
    secs
}

/// Bytes one bulk run moves.
const BULK_BYTES: usize = BULK_SIZE * BULK_COUNT;
/// One full chunk of Trystero's wire: the data-channel message meshrtc sends for large payloads.
const CHUNK_MESSAGE: usize = 16_384;

/// The engine alone on a fresh link moving [`BULK_BYTES`] in messages of `size`: MB/s and the
/// process's CPU milliseconds per MB.
async fn engine_bulk(size: usize) -> (f64, f64) {
    let own = std::process::id() as i32;
    let mut p = engine_pair().await;
    let cpu = cpu_seconds(own);
    let secs = engine_transfer(&mut p, size, BULK_BYTES / size).await;
    let mb = (size * (BULK_BYTES / size)) as f64 / 1e6;
    (mb / secs, (cpu_seconds(own) - cpu) * 1e3 / mb)
}

/// Rate and round trip of the engine alone.
async fn engine_figures() -> (f64, f64) {
    // A fresh link: right after the bulk run the engine's small-message rate sometimes collapses
    // (12,000 msg/s in one run), which would flatter meshrtc.
    let mut p = engine_pair().await;
    let rate = SMALL_COUNT as f64 / engine_transfer(&mut p, SMALL_SIZE, SMALL_COUNT).await;
    let mut rtts = Vec::with_capacity(RTT_ROUNDS);
    let ping = BytesMut::from(&vec![2u8; SMALL_SIZE][..]);
    for _ in 0..RTT_ROUNDS {
        let t = Instant::now();
        p.a.send(ping.clone()).await.expect("send");
        let got = next_message(&mut p.b_rx).await;
        p.b.send(BytesMut::from(&got[..])).await.expect("echo");
        next_message(&mut p.a_rx).await;
        rtts.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (rate, pct(&mut rtts, 0.5))
}

// ---- meshrtc: app → gRPC → daemon → WebRTC → daemon → gRPC → app ------------------------------

async fn count_messages(s: &mut Session, n: usize) {
    let mut got = 0;
    while got < n {
        match s.next_message().await.and_then(|m| m.body) {
            Some(server_message::Body::Event(proto::Event {
                kind: Some(Kind::Message(_)),
                ..
            })) => got += 1,
            Some(_) => {}
            None => panic!("session closed after {got} messages"),
        }
    }
}

/// Sends `n` messages without waiting for each reply; returns when all replies are in.
async fn pipelined_send(s: &mut Session, room: u32, size: usize, n: usize) {
    let tx = s.sender();
    let payload = binary(vec![3u8; size], "");
    tokio::spawn(async move {
        for i in 0..n {
            let msg = proto::ClientMessage {
                request_id: 1_000_000 + i as u64,
                body: Some(Body::Send(proto::SendRequest {
                    room,
                    channel: "bench".into(),
                    payload: Some(payload.clone()),
                    targets: vec![],
                })),
            };
            if tx.send(msg).await.is_err() {
                break;
            }
        }
    });
    let mut replies = 0;
    while replies < n {
        if let Some(server_message::Body::Reply(r)) = s.next_message().await.and_then(|m| m.body) {
            assert!(r.error.is_none(), "{:?}", r.error);
            replies += 1;
        }
    }
}

/// MB/s of 64 KiB messages from an app on `a` to an app on `b`, in a fresh room.
async fn bulk_throughput(a: &Daemon, b: &Daemon) -> f64 {
    let idb = b.peer_id().await;
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    let ra = sa.join("bench-bulk", "room", "").await;
    sb.join("bench-bulk", "room", "").await;
    assert!(sa.wait_join(&idb, Duration::from_secs(30)).await);
    let start = Instant::now();
    let counter = tokio::spawn(async move {
        count_messages(&mut sb, BULK_COUNT).await;
        Instant::now()
    });
    pipelined_send(&mut sa, ra, BULK_SIZE, BULK_COUNT).await;
    let end = counter.await.expect("counter");
    (BULK_SIZE * BULK_COUNT) as f64 / end.duration_since(start).as_secs_f64() / 1e6
}

/// A bulk run between apps on `a` and `b`: MB/s, and CPU milliseconds per MB of both daemons
/// and of the two apps (this process).
async fn meshrtc_bulk(a: &Daemon, b: &Daemon) -> (f64, f64, f64) {
    let own = std::process::id() as i32;
    let daemons = || cpu_seconds(a.pid()) + cpu_seconds(b.pid());
    let (d0, a0) = (daemons(), cpu_seconds(own));
    let mbs = bulk_throughput(a, b).await;
    let mb = BULK_BYTES as f64 / 1e6;
    (
        mbs,
        (daemons() - d0) * 1e3 / mb,
        (cpu_seconds(own) - a0) * 1e3 / mb,
    )
}

/// Messages per second of 100-byte messages from an app on `a` to an app on `b`.
async fn small_rate(a: &Daemon, b: &Daemon) -> f64 {
    let idb = b.peer_id().await;
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    let ra = sa.join("bench-rate", "room", "").await;
    sb.join("bench-rate", "room", "").await;
    assert!(sa.wait_join(&idb, Duration::from_secs(30)).await);
    let start = Instant::now();
    let counter = tokio::spawn(async move {
        count_messages(&mut sb, SMALL_COUNT).await;
        Instant::now()
    });
    pipelined_send(&mut sa, ra, SMALL_SIZE, SMALL_COUNT).await;
    let end = counter.await.expect("counter");
    SMALL_COUNT as f64 / end.duration_since(start).as_secs_f64()
}

struct Meshrtc {
    rate: f64,
    rtt_p50: f64,
    rtt_p99: f64,
    join_p50: f64,
    join_p99: f64,
    /// The first bulk round's MB/s over the median round's (filled in by `full_run`).
    first_round_ratio: f64,
}

async fn meshrtc_figures(a: &Daemon, b: &Daemon) -> Meshrtc {
    let idb = b.peer_id().await;
    let ida = a.peer_id().await;
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    let ra = sa.join("bench", "room", "").await;
    let rb = sb.join("bench", "room", "").await;
    assert!(sa.wait_join(&idb, Duration::from_secs(30)).await);
    // The receiving app is the only one in the room on `b`: every message crosses once.
    let start = Instant::now();
    let counter = tokio::spawn(async move {
        count_messages(&mut sb, SMALL_COUNT).await;
        (sb, Instant::now())
    });
    pipelined_send(&mut sa, ra, SMALL_SIZE, SMALL_COUNT).await;
    let (mut sb, end) = counter.await.expect("counter");
    let rate = SMALL_COUNT as f64 / end.duration_since(start).as_secs_f64();
    // Round trip between two apps: A sends, B's app answers, A's app receives.
    sa.events.clear();
    let mut rtts = Vec::with_capacity(RTT_ROUNDS);
    for _ in 0..RTT_ROUNDS {
        let t = Instant::now();
        sa.send(ra, "rtt", binary(vec![4u8; SMALL_SIZE], ""), &[])
            .await;
        sb.wait_message(Duration::from_secs(10))
            .await
            .expect("ping");
        sb.send(rb, "rtt", binary(vec![5u8; SMALL_SIZE], ""), &[])
            .await;
        sa.wait_message(Duration::from_secs(10))
            .await
            .expect("pong");
        rtts.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (rtt_p50, rtt_p99) = (pct(&mut rtts, 0.5), pct(&mut rtts, 0.99));
    let mut joins = Vec::new();
    for i in 0..20 {
        let app = format!("bench-join-{i}");
        let (mut x, mut y) = (a.session().await, b.session().await);
        x.join(&app, "room", "").await;
        let t = Instant::now();
        y.join(&app, "room", "").await;
        assert!(y.wait_join(&ida, Duration::from_secs(30)).await);
        joins.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Meshrtc {
        rate,
        rtt_p50,
        rtt_p99,
        join_p50: pct(&mut joins, 0.5),
        join_p99: pct(&mut joins, 0.99),
        first_round_ratio: f64::NAN,
    }
}

/// RSS per connected peer: one daemon, `n` peer daemons in one room.
async fn rss_per_peer(relay: &str, n: usize) -> f64 {
    let hub = Daemon::with_relays(&[relay.to_owned()]).await;
    let mut s = hub.session().await;
    s.join("bench-rss", "room", "").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_mib(hub.pid());
    let mut peers = Vec::new();
    let mut sessions = Vec::new();
    for _ in 0..n {
        let d = Daemon::with_relays(&[relay.to_owned()]).await;
        let mut ds = d.session().await;
        ds.join("bench-rss", "room", "").await;
        sessions.push(ds);
        peers.push(d);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while (hub
        .status()
        .await
        .rooms
        .first()
        .map_or(0, |r| r.peers.len()))
        < n
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let joined = hub
        .status()
        .await
        .rooms
        .first()
        .map_or(0, |r| r.peers.len());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_mib(hub.pid());
    eprintln!("rss: {joined}/{n} peers joined, {before:.1} -> {after:.1} MiB");
    (after - before) / joined.max(1) as f64
}

/// Idle CPU of a daemon holding 10 rooms with 5 peers each.
async fn idle_cpu(relay: &str) -> f64 {
    let hub = Daemon::with_relays(&[relay.to_owned()]).await;
    let mut keep = Vec::new();
    let mut hs = hub.session().await;
    for r in 0..10 {
        hs.join("bench-idle", &format!("room-{r}"), "").await;
    }
    for _ in 0..5 {
        let d = Daemon::with_relays(&[relay.to_owned()]).await;
        let mut s = d.session().await;
        for r in 0..10 {
            s.join("bench-idle", &format!("room-{r}"), "").await;
        }
        keep.push((d, s));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while hub
        .status()
        .await
        .rooms
        .iter()
        .map(|r| r.peers.len())
        .sum::<usize>()
        < 50
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Past the joins' tail: each room's first announces go out over the first seconds, and the
    // five daemons' announces and handshakes are verified as they come (3 s read 0.5-3.2 %).
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Named so that a profiler can be pointed at the measured window.
    eprintln!("idle: measuring daemon {} for 10 s", hub.pid());
    cpu_percent_over(hub.pid(), Duration::from_secs(10)).await
}

/// The Trystero baseline: two Chromium pages, via tests/browser/bench-trystero.mjs; then fresh
/// pages joining rooms a daemon already holds (`daemon_rooms`).
fn trystero_figures(relay: &str, daemon_rooms: &[String]) -> Option<serde_json::Value> {
    if !std::path::Path::new("/usr/bin/chromium").exists()
        || !std::path::Path::new("tests/browser/node_modules").exists()
    {
        eprintln!(
            "trystero baseline: chromium or tests/browser/node_modules missing; not measured"
        );
        return None;
    }
    let out = std::process::Command::new("node")
        .arg("tests/browser/bench-trystero.mjs")
        .env("RELAY", relay)
        .env("DAEMON_ROOMS", daemon_rooms.join(","))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().last() else {
        eprintln!(
            "trystero baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    };
    serde_json::from_str(line)
        .map_err(|e| eprintln!("trystero baseline failed: {e}: {text}"))
        .ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let json_out = std::env::args().any(|a| a == "--json");
    let peers_for_rss: usize = std::env::var("MESHRTC_BENCH_PEERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let a = Daemon::with_embedded_relay().await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    match std::env::var("MESHRTC_BENCH_PROFILE").as_deref() {
        // Only one daemon-to-daemon figure, repeated: run under `perf record -a -g`.
        Ok("rate") => {
            for _ in 0..5 {
                println!("rate {:.0} msg/s", small_rate(&a, &b).await);
            }
            return;
        }
        Ok("idle") => {
            for _ in 0..3 {
                println!("idle CPU {:.3} %", idle_cpu(&a.relay_url()).await);
            }
            return;
        }
        Ok("engine") => {
            for _ in 0..3 {
                let (mbs, cpu) = engine_bulk(BULK_SIZE).await;
                println!("engine {mbs:.1} MB/s, CPU per MB {cpu:.2} ms");
                // The same bytes in Trystero's 16 KiB chunks, one engine message each.
                let (mbs, cpu) = engine_bulk(CHUNK_MESSAGE).await;
                println!("engine, 16 KiB messages {mbs:.1} MB/s, CPU per MB {cpu:.2} ms");
            }
            return;
        }
        // The main run's bulk rounds alone, every value printed.
        Ok("bulk") => {
            for _ in 0..3 {
                let e64 = engine_bulk(BULK_SIZE).await.0;
                let e16 = engine_bulk(CHUNK_MESSAGE).await.0;
                let (mbs, daemons, apps) = meshrtc_bulk(&a, &b).await;
                println!(
                    "engine {e64:.1} (16 KiB {e16:.1}), meshrtc {mbs:.1} MB/s ({:.2} x), CPU per MB: daemons {daemons:.2} ms, apps {apps:.2} ms",
                    mbs / e64
                );
            }
            return;
        }
        Ok("figures") => {
            for _ in 0..3 {
                let m = meshrtc_figures(&a, &b).await;
                println!(
                    "rate {:.0} msg/s, rtt p50 {:.3} ms, join p50 {:.0} ms",
                    m.rate, m.rtt_p50, m.join_p50
                );
            }
            return;
        }
        Ok(_) => {
            for _ in 0..5 {
                let (mbs, daemons, apps) = meshrtc_bulk(&a, &b).await;
                println!(
                    "throughput {mbs:.1} MB/s, CPU per MB: daemons {daemons:.2} ms, apps {apps:.2} ms"
                );
            }
            return;
        }
        Err(_) => {}
    }
    let runs: usize = arg_value("--runs").unwrap_or(1).max(1);
    let mut all = Vec::with_capacity(runs);
    for run in 0..runs {
        if runs > 1 {
            println!("--- run {} of {runs}", run + 1);
        }
        // Every run but the first gets daemons of its own: a run's figures then include a
        // fresh daemon's first transfer, as the first run's do.
        let figures = if run == 0 {
            full_run(&a, &b, peers_for_rss).await
        } else {
            let a = Daemon::with_embedded_relay().await;
            let b = Daemon::with_relays(&[a.relay_url()]).await;
            full_run(&a, &b, peers_for_rss).await
        };
        figures.print(peers_for_rss);
        all.push(figures.named());
    }
    if runs > 1 {
        print_spread(&all);
    }
    if json_out {
        let median = |i: usize| spread(&all, i).map(|(_, med, _)| med);
        let mut out = serde_json::Map::new();
        let mut spreads = serde_json::Map::new();
        for (i, (name, _)) in all[0].iter().enumerate() {
            out.insert((*name).to_owned(), serde_json::json!(median(i)));
            if let Some((lo, med, hi)) = spread(&all, i) {
                spreads.insert((*name).to_owned(), serde_json::json!([lo, med, hi]));
            }
        }
        out.insert("runs".to_owned(), serde_json::json!(runs));
        out.insert("spread".to_owned(), serde_json::Value::Object(spreads));
        println!("{}", serde_json::Value::Object(out));
    }
}

/// The value of `--name N` on the command line.
fn arg_value(name: &str) -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

/// Min, median and max of figure `i` over the runs that measured it.
fn spread(all: &[Vec<(&'static str, Option<f64>)>], i: usize) -> Option<(f64, f64, f64)> {
    let mut v: Vec<f64> = all.iter().filter_map(|run| run.get(i)?.1).collect();
    if v.is_empty() {
        return None;
    }
    let med = pct(&mut v, 0.5);
    Some((v[0], med, v[v.len() - 1]))
}

fn print_spread(all: &[Vec<(&'static str, Option<f64>)>]) {
    println!("--- spread over {} runs: min / median / max", all.len());
    for (i, (name, _)) in all[0].iter().enumerate() {
        match spread(all, i) {
            Some((lo, med, hi)) => println!("{name:<28} {lo:>10.3} {med:>10.3} {hi:>10.3}"),
            None => println!("{name:<28} {:>10}", "-"),
        }
    }
}

/// Every figure of one full run.
struct Figures {
    m_mbs: f64,
    e_mbs: f64,
    e16_mbs: f64,
    e_cpu: f64,
    d_cpu: f64,
    a_cpu: f64,
    e_rate: f64,
    e_rtt: f64,
    m: Meshrtc,
    trystero: Option<serde_json::Value>,
    idle: f64,
    rss: f64,
}

impl Figures {
    fn trystero(&self, k: &str) -> Option<f64> {
        self.trystero.as_ref()?.get(k)?.as_f64()
    }

    /// The figures by their JSON names, in one fixed order.
    fn named(&self) -> Vec<(&'static str, Option<f64>)> {
        vec![
            ("throughput_mbs", Some(self.m_mbs)),
            ("engine_throughput_mbs", Some(self.e_mbs)),
            ("engine_throughput_16k_mbs", Some(self.e16_mbs)),
            ("ratio_64k", Some(self.m_mbs / self.e_mbs)),
            ("ratio_16k", Some(self.m_mbs / self.e16_mbs)),
            ("engine_cpu_ms_per_mb", Some(self.e_cpu)),
            ("daemons_cpu_ms_per_mb", Some(self.d_cpu)),
            ("apps_cpu_ms_per_mb", Some(self.a_cpu)),
            ("cpu_ratio", Some((self.d_cpu + self.a_cpu) / self.e_cpu)),
            ("first_round_ratio", Some(self.m.first_round_ratio)),
            ("trystero_throughput_mbs", self.trystero("throughput_mbs")),
            ("msg_rate", Some(self.m.rate)),
            ("engine_msg_rate", Some(self.e_rate)),
            ("rtt_p50_ms", Some(self.m.rtt_p50)),
            ("engine_rtt_p50_ms", Some(self.e_rtt)),
            ("rtt_p99_ms", Some(self.m.rtt_p99)),
            ("join_p50_ms", Some(self.m.join_p50)),
            ("join_p99_ms", Some(self.m.join_p99)),
            (
                "page_daemon_join_p50_ms",
                self.trystero("page_daemon_join_p50_ms"),
            ),
            (
                "page_daemon_join_p99_ms",
                self.trystero("page_daemon_join_p99_ms"),
            ),
            ("trystero_join_p50_ms", self.trystero("join_p50_ms")),
            ("rss_per_peer_mib", Some(self.rss)),
            ("idle_cpu_pct", Some(self.idle)),
        ]
    }

    fn print(&self, peers_for_rss: usize) {
        let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
        let m = &self.m;
        println!("figure                         meshrtc     engine   trystero");
        println!(
            "throughput 64 KiB (MB/s)    {:>10.1} {:>10.1} {:>10}",
            self.m_mbs,
            self.e_mbs,
            f(self.trystero("throughput_mbs"))
        );
        println!(
            "  engine with 16 KiB messages (Trystero's chunks) {:.1} MB/s; meshrtc / engine {:.2} (64 KiB), {:.2} (16 KiB)",
            self.e16_mbs,
            self.m_mbs / self.e_mbs,
            self.m_mbs / self.e16_mbs
        );
        println!(
            "  CPU per MB: engine {:.2} ms (both ends), meshrtc daemons {:.2} ms + apps {:.2} ms",
            self.e_cpu, self.d_cpu, self.a_cpu
        );
        println!(
            "  first bulk round on a fresh link / the median round: {:.2}",
            m.first_round_ratio
        );
        println!(
            "rate 100 B (msg/s)          {:>10.0} {:>10.0} {:>10}",
            m.rate,
            self.e_rate,
            f(self.trystero("msg_rate"))
        );
        println!(
            "round trip p50 (ms)         {:>10.3} {:>10.3} {:>10}",
            m.rtt_p50,
            self.e_rtt,
            f(self.trystero("rtt_p50_ms"))
        );
        println!(
            "round trip p99 (ms)         {:>10.3} {:>10} {:>10}",
            m.rtt_p99, "-", "-"
        );
        println!(
            "join p50 / p99 (ms)         {:>5.0} / {:<4.0} {:>10} {:>10}",
            m.join_p50,
            m.join_p99,
            "-",
            f(self.trystero("join_p50_ms"))
        );
        println!(
            "page -> daemon join p50 / p99 (ms, Chromium) {} / {}",
            f(self.trystero("page_daemon_join_p50_ms")),
            f(self.trystero("page_daemon_join_p99_ms"))
        );
        println!(
            "RSS per peer, {peers_for_rss} peers (MiB) {:>7.2}",
            self.rss
        );
        println!("idle CPU, 10 rooms x 5 peers {:>9.2}%", self.idle);
    }
}

/// One full run: bulk rounds, the engine's and meshrtc's small-message figures, joins, the
/// Trystero baseline, idle CPU and RSS.
async fn full_run(a: &Daemon, b: &Daemon, peers_for_rss: usize) -> Figures {
    // Bulk figures alternate between the engine (64 KiB and 16 KiB messages) and meshrtc, five
    // rounds, medians: this machine's speed drifts more between runs than the figures differ
    // (one round's ratio read anywhere from 0.66 to 1.02 at one commit).
    let (mut e64, mut e16, mut mesh) = (Vec::new(), Vec::new(), Vec::new());
    let (mut e_cpu, mut d_cpu, mut a_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        let (mbs, cpu) = engine_bulk(BULK_SIZE).await;
        e64.push(mbs);
        e_cpu.push(cpu);
        e16.push(engine_bulk(CHUNK_MESSAGE).await.0);
        let (mbs, daemons, apps) = meshrtc_bulk(a, b).await;
        mesh.push(mbs);
        d_cpu.push(daemons);
        a_cpu.push(apps);
    }
    let first_round = mesh[0];
    let (e_mbs, e16_mbs, m_mbs) = (pct(&mut e64, 0.5), pct(&mut e16, 0.5), pct(&mut mesh, 0.5));
    let (e_cpu, d_cpu, a_cpu) = (
        pct(&mut e_cpu, 0.5),
        pct(&mut d_cpu, 0.5),
        pct(&mut a_cpu, 0.5),
    );
    let (e_rate, e_rtt) = engine_figures().await;
    let mut m = meshrtc_figures(a, b).await;
    m.first_round_ratio = first_round / m_mbs;
    // Rooms daemon `a` holds for the page ↔ daemon joins (its session stays open meanwhile).
    let daemon_rooms: Vec<String> = (0..20).map(|i| format!("page-daemon-{i}")).collect();
    let mut host = a.session().await;
    for room in &daemon_rooms {
        host.join("bench-trystero", room, "").await;
    }
    let trystero = trystero_figures(&a.relay_url(), &daemon_rooms);
    drop(host);
    let idle = idle_cpu(&a.relay_url()).await;
    let rss = rss_per_peer(&a.relay_url(), peers_for_rss).await;
    Figures {
        m_mbs,
        e_mbs,
        e16_mbs,
        e_cpu,
        d_cpu,
        a_cpu,
        e_rate,
        e_rtt,
        m,
        trystero,
        idle,
        rss,
    }
}
