//! An honest peer's round trips while a hostile one floods: a keeper daemon holding 100 MiB of
//! history is pinged by an honest daemon (and asked for its status by its own app) quietly,
//! under a catch-up request flood from a hostile in-process peer, under a flood of fake
//! announces into a cells room it is in, and under both. The keeper's resident memory is
//! sampled throughout.
//!
//! `cargo bench --bench hostile [-- --mib 100] [--attacker-idle] [--threads N]`: everything on
//! 127.0.0.1 (an in-process relay that lets floods through, ICE on loopback, no STUN).
//!
//! The attacker (its relay, its peer and its floods) runs on its own runtime in this process.
//! With `--attacker-idle` that runtime's threads are `SCHED_IDLE`: they run only on cycles the
//! honest side leaves, as if the attacker and the public relay were other machines. By default
//! they compete evenly for the two cores, which charges the attacker's own work to the honest
//! peer.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use meshrtc::node::JoinOptions;
use meshrtc::proto;
use meshrtc::wire::Payload;
use meshrtc::wire::history::HistMsg;

const APP: &str = "hostile-bench";
const MESSAGE: usize = 256 << 10;
/// Catch-up requests the hostile peer sends per second.
const REQUESTS_PER_SEC: u64 = 200;
/// Fake announces per flood: 500 every 50 ms, so a flood lasts about a phase.
const ANNOUNCES: u32 = 100_000;
const PHASE: Duration = Duration::from_secs(10);
/// Time between an honest round's end and the next (1,000 or so rounds a phase).
const EVERY: Duration = Duration::from_millis(8);

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Phase {
    name: &'static str,
    ping: Vec<f64>,
    lost: u32,
    /// The keeper's CPU (% of one core).
    cpu: f64,
    status: Vec<f64>,
    rss_peak: f64,
}

/// Pings `peer` from `from` and asks `keeper` for its status every [`EVERY`] for [`PHASE`],
/// sampling the keeper's RSS.
async fn measure(name: &'static str, from: &Daemon, keeper: &Daemon, peer: &str) -> Phase {
    let mut c = meshrtc::client::connect(&from.endpoint())
        .await
        .expect("connect");
    let mut k = meshrtc::client::connect(&keeper.endpoint())
        .await
        .expect("connect");
    let (mut ping, mut status, mut rss_peak, mut lost) = (Vec::new(), Vec::new(), 0f64, 0);
    let cpu = cpu_seconds(keeper.pid());
    let t = Instant::now();
    while t.elapsed() < PHASE {
        let r = c
            .ping(proto::PingRequest {
                app: APP.into(),
                room: "r".into(),
                peer: peer.to_owned(),
            })
            .await;
        match r {
            Ok(r) => ping.push(r.into_inner().rtt_ms),
            Err(e) => {
                eprintln!("{name}: ping failed: {}", e.message());
                lost += 1;
            }
        }
        let s = Instant::now();
        k.status(proto::StatusRequest::default())
            .await
            .expect("status");
        status.push(s.elapsed().as_secs_f64() * 1e3);
        rss_peak = rss_peak.max(rss_mib(keeper.pid()));
        tokio::time::sleep(EVERY).await;
    }
    ping.sort_by(f64::total_cmp);
    status.sort_by(f64::total_cmp);
    let cpu = (cpu_seconds(keeper.pid()) - cpu) / t.elapsed().as_secs_f64() * 100.0;
    Phase {
        cpu,
        name,
        lost,
        ping,
        status,
        rss_peak,
    }
}

/// The hostile peer asks the keeper, [`REQUESTS_PER_SEC`] times a second until `stop`, for the
/// whole history of a kept channel and of one it does not keep.
fn request_flood(
    on: &tokio::runtime::Handle,
    h: Arc<InProcess>,
    keeper: String,
    stop: Arc<AtomicBool>,
) {
    on.spawn(async move {
        let every = Duration::from_micros(1_000_000 / REQUESTS_PER_SEC);
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let channel = if i.is_multiple_of(2) {
                "log"
            } else {
                "not-kept"
            };
            let ask = HistMsg::Request {
                after_ms: 0,
                after_cursor: 0,
                channels: vec![channel.into()],
            };
            h.node.hook_send_action(
                APP,
                "r",
                &keeper,
                meshrtc::room::ACTION_HISTORY,
                Payload::Binary(ask.encode().into()),
            );
            i += 1;
            tokio::time::sleep(every).await;
        }
    });
}

/// The attacker's runtime: two threads, `SCHED_IDLE` when `idle` (threads they start, such as
/// the in-process node's relay thread, inherit it).
fn attacker_runtime(idle: bool) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("attacker")
        .on_thread_start(move || {
            if idle {
                let param = libc::sched_param { sched_priority: 0 };
                // SAFETY: sets the calling thread's policy; `param` outlives the call.
                let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
                assert_eq!(rc, 0, "sched_setscheduler(SCHED_IDLE) failed");
            }
        })
        .enable_all()
        .build()
        .expect("attacker runtime")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: usize = args
        .iter()
        .position(|a| a == "--mib")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let threads: Vec<String> = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .map(|n| vec!["--threads".to_owned(), n.clone()])
        .unwrap_or_default();
    let idle = args.iter().any(|a| a == "--attacker-idle");
    let attacker = attacker_runtime(idle);
    let on_attacker = attacker.handle().clone();
    let (relay, url) = on_attacker.spawn(flood_relay()).await.expect("relay");
    let k = Daemon::spawn(vec![url.clone()], None, threads.clone()).await;
    let h = Daemon::spawn(vec![url.clone()], None, threads.clone()).await;
    let idk = k.peer_id().await;
    let mut sk = k.session().await;
    let rk = sk
        .join_request(proto::JoinRequest {
            app: APP.into(),
            room: "r".into(),
            keep: vec![proto::Keep {
                channel: "log".into(),
                max_messages: 1_000_000,
                max_age_seconds: 0,
            }],
            channels: vec!["none".into()],
            ..Default::default()
        })
        .await;
    sk.join_cells(APP, "hive", "", 0).await;
    let mut sh = h.session().await;
    let rh = sh.join(APP, "r", "").await;
    assert!(sh.wait_join(&idk, JOIN).await, "no join");
    sh.wait_keeper(rh, &idk, "log", JOIN).await;
    // Fill the keeper's history from its own app (a 100 MiB burst across the link can leave it
    // in a long SCTP retransmission backoff: issue 32's data path, not what this measures).
    let count = mib * (1 << 20) / MESSAGE;
    let body = vec![7u8; MESSAGE];
    let fill = Instant::now();
    for _ in 0..count {
        sk.send(rk, "log", binary(body.clone(), ""), &[]).await;
    }
    loop {
        let kept = history_json(&k, APP, "r", "")["messages"]
            .as_u64()
            .unwrap_or(0);
        if kept >= count as u64 {
            break;
        }
        assert!(
            fill.elapsed() < Duration::from_secs(300),
            "kept only {kept}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rss_filled = rss_mib(k.pid());
    let after_fill = k.status().await.drops;
    eprintln!(
        "filled in {:.1} s; keeper drops {after_fill:?}",
        fill.elapsed().as_secs_f64()
    );
    let hostile = {
        let url = url.clone();
        on_attacker
            .spawn(async move {
                let h = Arc::new(InProcess::start(&url).await);
                h.join(APP, "r", JoinOptions::default()).await;
                h
            })
            .await
            .expect("hostile peer")
    };
    assert!(
        sk.wait_join(&hostile.id, JOIN).await,
        "the hostile peer never joined"
    );

    let mut phases = vec![measure("quiet", &h, &k, &idk).await];

    let stop = Arc::new(AtomicBool::new(false));
    request_flood(&on_attacker, hostile.clone(), idk.clone(), stop.clone());
    phases.push(measure("history request flood", &h, &k, &idk).await);
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let announces = fake_announces(APP, "hive", ANNOUNCES);
    let flooding = on_attacker.spawn(flood(relay, announces));
    phases.push(measure("cells announce flood", &h, &k, &idk).await);
    let relay = flooding.await.expect("flood");

    let stop = Arc::new(AtomicBool::new(false));
    request_flood(&on_attacker, hostile.clone(), idk.clone(), stop.clone());
    let announces = fake_announces(APP, "hive", ANNOUNCES);
    let flooding = on_attacker.spawn(flood(relay, announces));
    phases.push(measure("both floods", &h, &k, &idk).await);
    stop.store(true, Ordering::Relaxed);
    let _relay = flooding.await.expect("flood");

    let drops = k.status().await.drops;
    let quiet_p99 = pct(&phases[0].ping, 0.99);
    println!(
        "meshrtc hostile benchmark: keeper holding {mib} MiB ({count} × {} KiB), \
         {REQUESTS_PER_SEC} catch-up requests/s, {ANNOUNCES} fake cells announces per flood, \
         127.0.0.1{}{}",
        MESSAGE >> 10,
        if idle { ", attacker SCHED_IDLE" } else { "" },
        threads
            .get(1)
            .map(|n| format!(", daemons with {n} runtime threads"))
            .unwrap_or_default()
    );
    println!("  RSS of the keeper after filling: {rss_filled:.0} MiB");
    for p in &phases {
        println!(
            "  {:<22} ping p50 {:6.2} p99 {:7.2} max {:7.2} ms ({:.2}× quiet p99, {} lost) | \
             status p50 {:6.2} p99 {:7.2} ms | RSS peak {:.0} MiB | keeper CPU {:.0} %",
            p.name,
            pct(&p.ping, 0.5),
            pct(&p.ping, 0.99),
            pct(&p.ping, 1.0),
            pct(&p.ping, 0.99) / quiet_p99,
            p.lost,
            pct(&p.status, 0.5),
            pct(&p.status, 0.99),
            p.rss_peak,
            p.cpu
        );
    }
    let mut counted: Vec<_> = drops
        .iter()
        .filter(|(n, v)| {
            **v > 0
                && (n.starts_with("history")
                    || n.starts_with("cell")
                    || n.starts_with("event")
                    || n.starts_with("member"))
        })
        .collect();
    counted.sort();
    println!("  keeper drops: {counted:?}");
    if phases.iter().any(|p| p.lost > 0) {
        println!(
            "--- keeper\n{}\n--- honest peer\n{}",
            k.link_report(),
            h.link_report()
        );
        println!("honest peer drops: {:?}", h.status().await.drops);
    }
    // A runtime cannot be dropped inside another's task.
    attacker.shutdown_background();
}
