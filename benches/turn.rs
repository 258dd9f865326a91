//! Join time and throughput through a TURN relay (a real coturn on loopback, both daemons under
//! `--ice-policy relay`), beside the same figures over host candidates, in the same run.
//!
//! Bulk: `--rounds R` rounds of `--messages N` messages of `--mib M` MiB (defaults 1, 5, 16) on
//! the last pair, each timed to its arrival and checked byte for byte; a message that takes
//! over 10 s is a stall, one that never arrives (60 s) is lost.
//!
//! The engine's own figure comes first, as the reference: two bare webrtc peer connections (the
//! `transport` layer, no daemon) through the same coturn, relay-only, the same messages in
//! 16 KiB data-channel messages (the chunks meshrtc sends).
//!
//! `cargo bench --profile dev --bench turn [-- --json] [--rounds R] [--messages N] [--mib M] [--only UDP]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use meshrtc::proto;
use meshrtc::transport::ice::{IcePolicy, IceServer, IceSettings, IceUrl, Secret};
use meshrtc::transport::{TransportConfig, TransportEvent};

const JOINS: usize = 5;
/// A message slower than this is a stall.
const STALL: Duration = Duration::from_secs(10);

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

/// What the bulk messages of one path did.
#[derive(Debug, Default)]
struct Bulk {
    /// Seconds each message took to arrive, in order.
    secs: Vec<f64>,
    lost: usize,
    /// Arrivals that were an earlier message, one that had been counted lost (sent again on a
    /// rebuilt link after its 60 s).
    late: usize,
    corrupt: usize,
    bytes: usize,
}

impl Bulk {
    fn stalls(&self) -> usize {
        self.secs
            .iter()
            .filter(|s| **s > STALL.as_secs_f64())
            .count()
    }
    fn mb_s(&self) -> f64 {
        let secs: f64 = self.secs.iter().sum();
        if secs == 0.0 {
            0.0
        } else {
            self.bytes as f64 / secs / 1e6
        }
    }
    fn worst(&self) -> f64 {
        self.secs.iter().copied().fold(0.0, f64::max)
    }
}

/// The engine alone through coturn: two relay-only peer connections in this process, then the
/// bulk messages as 16 KiB data-channel messages, each message's bytes counted at the receiver.
async fn engine_relayed(turn_port: u16, load: Load) -> Bulk {
    const PIECE: usize = 16 << 10;
    let url = IceUrl::parse(&format!("turn:127.0.0.1:{turn_port}")).expect("url");
    let cfg = TransportConfig {
        ice_addr: Some("127.0.0.1".parse().expect("ip")),
        ice: IceSettings {
            servers: vec![IceServer {
                urls: vec![url],
                username: Some("bench".into()),
                credential: Some(Secret::new("bench")),
            }],
            policy: IcePolicy::Relay,
            ..Default::default()
        },
        resolve_mdns: false,
        media_repair: true,
    };
    let mut bulk = Bulk::default();
    let Some(EngineLink {
        a: pa,
        b: pb,
        ca: a,
        cb: _b,
        mut b_rx,
        ..
    }) = engine_link(cfg, Duration::from_secs(30)).await
    else {
        eprintln!("engine through TURN: no data channel in 30 s");
        bulk.lost = load.rounds * load.messages;
        return bulk;
    };
    for n in 0..load.rounds * load.messages {
        let started = Instant::now();
        let pieces = load.bytes.div_ceil(PIECE);
        let sender = a.clone();
        let send = tokio::spawn(async move {
            for i in 0..pieces {
                let mut piece = BytesMut::from(&vec![n as u8; PIECE][..]);
                piece[..8].copy_from_slice(&(i as u64).to_le_bytes());
                if let Err(e) = sender.send(piece).await {
                    eprintln!("engine through TURN: send {i} failed: {e}");
                    return;
                }
            }
        });
        let mut next = 0u64;
        let received = tokio::time::timeout(Duration::from_secs(60), async {
            let mut intact = true;
            while next < pieces as u64 {
                match b_rx.recv().await {
                    Some(TransportEvent::Message(_, m)) => {
                        let m = m.bytes();
                        intact &= m.len() == PIECE
                            && m[..8] == next.to_le_bytes()
                            && m[8..].iter().all(|b| *b == n as u8);
                        next += 1;
                    }
                    Some(_) => {}
                    None => return false,
                }
            }
            intact
        })
        .await;
        send.abort();
        match received {
            Ok(true) => {
                bulk.secs.push(started.elapsed().as_secs_f64());
                bulk.bytes += pieces * PIECE;
            }
            Ok(false) => bulk.corrupt += 1,
            Err(_) => {
                eprintln!(
                    "engine through TURN: message {n} not there after 60 s ({next} of {pieces} pieces)"
                );
                bulk.lost += 1;
                break;
            }
        }
    }
    drop((pa, pb));
    bulk
}

/// Options of the bulk part.
#[derive(Debug, Clone, Copy)]
struct Load {
    rounds: usize,
    messages: usize,
    bytes: usize,
}

/// Join p50 over fresh pairs, then the bulk messages on the last pair.
async fn measure(flags: &[String], what: &str, load: Load) -> (f64, Bulk) {
    let mut joins = Vec::new();
    let mut last = None;
    for i in 0..JOINS {
        let (a, b, sa, sb, rb, took) = pair(flags, &format!("{what}-{i}")).await;
        joins.push(took.as_secs_f64() * 1000.0);
        last = Some((a, b, sa, sb, rb));
    }
    let (a, b, mut sa, mut sb, rb) = last.expect("a pair");
    let mut bulk = Bulk::default();
    // Every message differs, so a stale or mixed-up delivery cannot pass for this one.
    let message = |n: usize| -> Vec<u8> {
        (0..load.bytes)
            .map(|i| {
                (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(n as u32) as u8
            })
            .collect()
    };
    for n in 0..load.rounds * load.messages {
        let data = message(n);
        let started = Instant::now();
        sb.send(rb, "bulk", binary(data.clone(), "{}"), &[]).await;
        let got = sa.wait_message(Duration::from_secs(60)).await;
        match got.and_then(|m| m.payload).and_then(|p| p.kind) {
            Some(proto::payload::Kind::Binary(b)) if b[..] == data[..] => {
                bulk.secs.push(started.elapsed().as_secs_f64());
                bulk.bytes += b.len();
            }
            Some(proto::payload::Kind::Binary(b)) if (0..n).any(|k| b[..] == message(k)[..]) => {
                eprintln!("{what}: an earlier message arrived while {n} was awaited");
                bulk.late += 1;
            }
            Some(_) => {
                eprintln!("{what}: message {n} arrived altered");
                bulk.corrupt += 1;
            }
            None => {
                eprintln!(
                    "{what}: message {n} never arrived in 60 s\n--- receiver\n{}\n--- sender\n{}",
                    a.link_report(),
                    b.link_report()
                );
                bulk.lost += 1;
            }
        }
    }
    (p50(&mut joins), bulk)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let load = Load {
        rounds: arg("--rounds", 1),
        messages: arg("--messages", 5),
        bytes: arg("--mib", 16) << 20,
    };
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
    let certs = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = certificates(certs.path());
    let (tls_plain_port, tls_port) = (free_port(), free_port());
    let _turn_tls = Coturn::start_tls(
        tls_plain_port,
        (tls_port, &cert, &key),
        &["--lt-cred-mech", "--user", "bench:bench"],
    );
    let mut tls = relayed.clone();
    tls[1] = format!("turns:127.0.0.1:{tls_port}");
    tls.extend([
        "--turn-tls-ca".to_string(),
        ca.to_string_lossy().into_owned(),
    ]);
    let mut rows = Vec::new();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1));
    if only.is_none_or(|o| "engine, TURN over UDP".contains(o.as_str())) {
        rows.push((
            "engine, TURN over UDP",
            f64::NAN,
            engine_relayed(port, load).await,
        ));
    }
    for (name, flags) in [
        ("host candidates", Vec::new()),
        ("TURN over UDP", relayed),
        ("TURN over TCP", tcp),
        ("TURN over TLS", tls),
    ] {
        if let Some(only) = only
            && !name.contains(only.as_str())
        {
            continue;
        }
        let (join, bulk) = measure(&flags, name, load).await;
        rows.push((name, join, bulk));
    }
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|(name, join, b)| {
                serde_json::json!({
                    "path": name, "join_p50_ms": join, "mb_s": b.mb_s(), "secs": b.secs,
                    "stalls": b.stalls(), "lost": b.lost, "late": b.late, "corrupt": b.corrupt,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(out));
        return;
    }
    println!(
        "{} × {} × {} MiB per path, one pair each; a stall is a message over {} s",
        load.rounds,
        load.messages,
        load.bytes >> 20,
        STALL.as_secs()
    );
    println!(
        "path                   join p50    MB/s   worst message   stalls  lost  late  corrupt"
    );
    for (name, join, b) in &rows {
        println!(
            "{name:<21} {join:7.0} ms {:7.1} {:10.2} s {:8} {:5} {:5} {:8}",
            b.mb_s(),
            b.worst(),
            b.stalls(),
            b.lost,
            b.late,
            b.corrupt
        );
    }
}
