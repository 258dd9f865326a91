//! Cells rooms at scale: N real daemons on loopback (one embedded relay), each joined to one
//! cells room with automatic cell sizes. Per N it prints: how long until every daemon's
//! topology holds all N members, delivery of 5 broadcasts, links per daemon, RSS and CPU per
//! daemon, relay events per daemon per minute, a newcomer's join → first link → full roster →
//! first broadcast, and delivery of 5 broadcasts sent 2 s after `kill -9` of a quarter of the
//! room (at most 8).
//!
//! `cargo bench --bench cells [-- --n 32,64,128] [--json]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use meshrtc::proto::{self, event::Kind, server_message};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const APP: &str = "bench-cells";
const ROOM: &str = "big";
const BROADCASTS: usize = 5;
/// The quiet window in which steady relay traffic and idle CPU are measured.
const QUIET: Duration = Duration::from_secs(30);

/// What one daemon's listening session saw.
#[derive(Default)]
struct Seen {
    texts: BTreeSet<String>,
    first_join: Option<Instant>,
    /// Members of the topology in force, from the last `mesh:state` event.
    members: u32,
}

struct Node {
    d: Daemon,
    id: String,
    seen: Arc<Mutex<Seen>>,
}

impl Node {
    fn got(&self, text: &str) -> bool {
        self.seen
            .lock()
            .map(|s| s.texts.contains(text))
            .unwrap_or(false)
    }
}

/// A daemon joined to the room, its session's events collected in the background.
async fn node(relays: Vec<String>, embedded: Option<std::net::SocketAddr>) -> Node {
    let d = Daemon::spawn(relays, embedded, Vec::new()).await;
    let id = d.peer_id().await;
    let mut s = d.session().await;
    s.join_cells(APP, ROOM, "", 0).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Some(msg) = s.next_message().await {
            let Some(server_message::Body::Event(e)) = msg.body else {
                continue;
            };
            let Ok(mut seen) = sink.lock() else {
                return;
            };
            match e.kind {
                Some(Kind::Message(m)) => {
                    if let Some(proto::payload::Kind::Text(t)) = m.payload.and_then(|p| p.kind) {
                        seen.texts.insert(t);
                    }
                }
                Some(Kind::PeerJoin(_)) => {
                    seen.first_join.get_or_insert_with(Instant::now);
                }
                Some(Kind::MeshState(c)) => seen.members = c.members,
                _ => {}
            }
        }
    });
    Node { d, id, seen }
}

/// Waits until every node's topology has `n` members (as its `mesh:state` events say, so the
/// daemons are not polled); returns how long it took, or None.
async fn roster_complete(nodes: &[&Node], n: u32, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let verbose = std::env::var_os("MESHRTC_BENCH_VERBOSE").is_some();
    let mut said = Instant::now();
    loop {
        let mut members: Vec<u32> = nodes
            .iter()
            .map(|nd| nd.seen.lock().map_or(0, |s| s.members))
            .collect();
        if members.iter().all(|&m| m == n) {
            return Some(started.elapsed());
        }
        if verbose && said.elapsed() >= Duration::from_secs(1) {
            said = Instant::now();
            members.sort_unstable();
            let short: Vec<u32> = members.into_iter().filter(|&m| m != n).collect();
            eprintln!(
                "{:>6.1} s: {} of {} short of {n} members: {:?}",
                started.elapsed().as_secs_f64(),
                short.len(),
                nodes.len(),
                &short[..short.len().min(16)]
            );
        }
        if started.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends one text from each sender; waits until every receiver has all of them (or the time is
/// up). Returns (delivered, expected, time to the last delivery).
async fn broadcast(
    senders: &[&Node],
    receivers: &[&Node],
    tag: &str,
    within: Duration,
) -> (usize, usize, Duration) {
    let mut texts = Vec::new();
    for (k, s) in senders.iter().enumerate() {
        let text = format!("{tag}-{k}");
        let mut session = s.d.session().await;
        let room = session.join_cells(APP, ROOM, "", 0).await;
        session.send(room, "chat", common::text(&text), &[]).await;
        texts.push((s.id.clone(), text));
    }
    let started = Instant::now();
    let count = || {
        receivers
            .iter()
            .map(|r| {
                texts
                    .iter()
                    .filter(|(from, t)| *from != r.id && r.got(t))
                    .count()
            })
            .sum::<usize>()
    };
    let expected: usize = receivers
        .iter()
        .map(|r| texts.iter().filter(|(from, _)| *from != r.id).count())
        .sum();
    while count() < expected && started.elapsed() < within {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (count(), expected, started.elapsed())
}

/// Links per daemon, relay events published in all, and drop counters summed.
async fn survey(nodes: &[Node]) -> (Vec<u32>, u64, std::collections::BTreeMap<String, u64>) {
    let mut links = Vec::new();
    let mut events = 0u64;
    let mut drops = std::collections::BTreeMap::new();
    for nd in nodes {
        let s = nd.d.status().await;
        links.push(s.links);
        events += s.relays.iter().map(|r| r.events_out).sum::<u64>();
        for (name, count) in s.drops {
            *drops.entry(name).or_default() += count;
        }
    }
    (links, events, drops)
}

fn min_med_max(mut v: Vec<u32>) -> (u32, u32, u32) {
    v.sort_unstable();
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

async fn run(n: usize, json: bool) {
    let relay: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let first_start = Instant::now();
    let host = node(Vec::new(), Some(relay)).await;
    let url = host.d.relay_url();
    let mut nodes = vec![host];
    // Started together, a few at a time so that two cores can bring each one up in time.
    while nodes.len() < n {
        let batch = (n - nodes.len()).min(16);
        let more =
            futures::future::join_all((0..batch).map(|_| node(vec![url.clone()], None))).await;
        nodes.extend(more);
    }
    let spread = first_start.elapsed();
    let everyone: Vec<&Node> = nodes.iter().collect();
    let roster = roster_complete(&everyone, n as u32, Duration::from_secs(180)).await;
    // What the startup cost the machine: every daemon's CPU time from its start to the full
    // roster (and this process's, which follows their events). Divided by the cores, it is the
    // shortest startup this machine could give with the same work.
    let cpu_each: Vec<f64> = nodes.iter().map(|nd| cpu_seconds(nd.d.pid())).collect();
    let startup_cpu: f64 = cpu_each.iter().sum();
    // The first daemon also hosts the relay, which fans every event out to its subscribers.
    let relay_host_cpu = cpu_each[0];
    let own_cpu = cpu_seconds(std::process::id() as i32);
    let startup_wall = first_start.elapsed().as_secs_f64();
    let (before, before_of, _) = broadcast(
        &everyone[1..=BROADCASTS],
        &everyone,
        "before",
        Duration::from_secs(30),
    )
    .await;
    // Startup's relay events, then a quiet half minute: steady relay events and idle CPU.
    let (links, startup_events, drops) = survey(&nodes).await;
    if std::env::var_os("MESHRTC_BENCH_VERBOSE").is_some() {
        eprintln!("drops over {n} daemons: {drops:?}");
    }
    let cpu0: Vec<f64> = nodes.iter().map(|nd| cpu_seconds(nd.d.pid())).collect();
    let window = Instant::now();
    tokio::time::sleep(QUIET).await;
    let (_, steady_events, _) = survey(&nodes).await;
    let quiet = window.elapsed().as_secs_f64();
    let cpu_pct: f64 = nodes
        .iter()
        .zip(&cpu0)
        .map(|(nd, c0)| (cpu_seconds(nd.d.pid()) - c0) / quiet * 100.0)
        .sum::<f64>()
        / n as f64;
    let steady_per_min = (steady_events - startup_events) as f64 / n as f64 / (quiet / 60.0);
    let startup_per_daemon = startup_events as f64 / n as f64;
    let rss: f64 = nodes.iter().map(|nd| rss_mib(nd.d.pid())).sum::<f64>() / n as f64;

    // A newcomer to the settled room; one member broadcasts every 250 ms meanwhile.
    let joined = Instant::now();
    let newcomer = node(vec![url.clone()], None).await;
    let (mut first_link, mut full_roster, mut first_broadcast) = (None, None, None);
    let mut ticker = nodes[1].d.session().await;
    let tick_room = ticker.join_cells(APP, ROOM, "", 0).await;
    let mut tick = 0;
    while joined.elapsed() < Duration::from_secs(30)
        && (full_roster.is_none() || first_broadcast.is_none())
    {
        ticker
            .send(
                tick_room,
                "chat",
                common::text(&format!("tick-{tick}")),
                &[],
            )
            .await;
        tick += 1;
        if first_link.is_none() {
            first_link = newcomer
                .seen
                .lock()
                .ok()
                .and_then(|s| s.first_join)
                .map(|t| t - joined);
        }
        if full_roster.is_none()
            && newcomer
                .seen
                .lock()
                .is_ok_and(|s| s.members == n as u32 + 1)
        {
            full_roster = Some(joined.elapsed());
        }
        if first_broadcast.is_none() && (0..tick).any(|i| newcomer.got(&format!("tick-{i}"))) {
            first_broadcast = Some(joined.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    nodes.push(newcomer);

    // kill -9 of a quarter of the room (at most 8), never the relay's host nor the senders.
    let kills = (n / 4).min(8);
    let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
    let mut victims: Vec<usize> = (BROADCASTS + 1..nodes.len()).collect();
    victims.shuffle(&mut rng);
    victims.truncate(kills);
    for &v in &victims {
        nodes[v].d.kill9();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let survivors: Vec<&Node> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| !victims.contains(i))
        .map(|(_, nd)| nd)
        .collect();
    let pick = rng.gen_range(0..survivors.len() - BROADCASTS);
    let senders: Vec<&Node> = survivors[pick..pick + BROADCASTS].to_vec();
    let (after, after_of, after_took) =
        broadcast(&senders, &survivors, "after", Duration::from_secs(90)).await;

    let (lmin, lmed, lmax) = min_med_max(links);
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    let figures = serde_json::json!({
        "daemons": n,
        "starts_spread_ms": spread.as_millis() as u64,
        "roster_complete_after_last_start_ms": ms(roster),
        "startup_cpu_s": startup_cpu.round(),
        "startup_bench_cpu_s": own_cpu.round(),
        "startup_relay_host_cpu_s": relay_host_cpu.round(),
        "startup_wall_s": (startup_wall * 10.0).round() / 10.0,
        "broadcasts_before": format!("{before}/{before_of}"),
        "links_min": lmin, "links_median": lmed, "links_max": lmax,
        "rss_mib_per_daemon": (rss * 10.0).round() / 10.0,
        "cpu_pct_per_daemon": (cpu_pct * 100.0).round() / 100.0,
        "relay_events_per_daemon_startup": startup_per_daemon.round(),
        "relay_events_per_daemon_per_min_steady": (steady_per_min * 10.0).round() / 10.0,
        "newcomer_first_link_ms": ms(first_link),
        "newcomer_full_roster_ms": ms(full_roster),
        "newcomer_first_broadcast_ms": ms(first_broadcast),
        "killed": kills,
        "broadcasts_after_kills": format!("{after}/{after_of}"),
        "after_kills_complete_ms": after_took.as_millis() as u64,
    });
    if json {
        println!("{figures}");
    } else {
        let show = |d: Option<Duration>| {
            d.map_or("never".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
        };
        println!(
            "{n:>4} daemons (started within {:.1} s) | roster complete {} after the last start | startup CPU {startup_cpu:.0} s ({relay_host_cpu:.0} s of it the relay's host; +{own_cpu:.0} s here) in {startup_wall:.1} s | broadcasts {before}/{before_of} | links {lmin}/{lmed}/{lmax} | RSS {rss:.1} MiB | idle CPU {cpu_pct:.2} % | relay events {startup_per_daemon:.0} at start, {steady_per_min:.1}/min after | newcomer: link {}, roster {}, broadcast {} | after {kills} × kill -9: {after}/{after_of} in {:.1} s",
            spread.as_secs_f64(),
            show(roster),
            show(first_link),
            show(full_roster),
            show(first_broadcast),
            after_took.as_secs_f64()
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let sizes: Vec<usize> = args
        .iter()
        .position(|a| a == "--n")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![32, 64, 128]);
    for n in sizes {
        run(n, json).await;
    }
}
