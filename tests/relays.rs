//! The adaptive relay pool against real nostr-relay-builder relays configured to misbehave.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use meshrtc::proto::{self, RelayInfo};
use nostr_relay_builder::prelude::*;

/// A relay in this process, configured by `f`. A port free when checked can be taken before
/// the relay binds it (another process of the suite), so a taken port means another one.
async fn relay_with(f: impl Fn(RelayBuilder) -> RelayBuilder) -> (LocalRelay, String) {
    let mut last = None;
    for _ in 0..5 {
        let port = free_port();
        let builder = f(RelayBuilder::default().port(port).rate_limit(RateLimit {
            max_reqs: 64,
            notes_per_minute: 100_000,
        }));
        let relay = LocalRelay::new(builder);
        match relay.run().await {
            Ok(()) => return (relay, format!("ws://127.0.0.1:{port}")),
            Err(e) => last = Some(e),
        }
    }
    panic!("no relay could bind a port: {last:?}")
}

async fn relays_of(d: &Daemon) -> Vec<RelayInfo> {
    let mut c = meshrtc::client::connect(&d.endpoint())
        .await
        .expect("connect");
    c.relays(proto::RelaysRequest {})
        .await
        .expect("relays")
        .into_inner()
        .relays
}

async fn wait_relay(
    d: &Daemon,
    url: &str,
    within: Duration,
    pred: impl Fn(&RelayInfo) -> bool,
) -> RelayInfo {
    let deadline = Instant::now() + within;
    loop {
        let all = relays_of(d).await;
        if let Some(r) = all.iter().find(|r| r.url == url && pred(r)) {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "relay {url} never reached the expected state: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Debug)]
struct RejectWrites;
impl WritePolicy for RejectWrites {
    fn admit_event<'a>(&'a self, _: &'a Event, _: &'a SocketAddr) -> BoxedFuture<'a, PolicyResult> {
        Box::pin(async { PolicyResult::Reject("not on the allow list".into()) })
    }
}

#[derive(Debug)]
struct RejectQueries;
impl QueryPolicy for RejectQueries {
    fn admit_query<'a>(
        &'a self,
        _: &'a Filter,
        _: &'a SocketAddr,
    ) -> BoxedFuture<'a, PolicyResult> {
        Box::pin(async { PolicyResult::Reject("no subscriptions here".into()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pow_closed_and_refusing_relays_are_retired_with_a_persisted_cooldown() {
    let (_good, good) = relay_with(|b| b).await;
    let (_pow, pow) = relay_with(|b| b.min_pow(8)).await;
    let (_closed, closed) = relay_with(|b| b.query_policy(RejectQueries)).await;
    let (_refuse, refuse) = relay_with(|b| b.write_policy(RejectWrites)).await;
    let mut d =
        Daemon::with_relays(&[good.clone(), pow.clone(), closed.clone(), refuse.clone()]).await;
    let mut s = d.session().await;
    s.join("relays", "room", "").await;
    let r = wait_relay(&d, &pow, JOIN, |r| r.state == "retired").await;
    assert!(r.last_error.contains("pow"), "{r:?}");
    let r = wait_relay(&d, &closed, JOIN, |r| r.state == "retired").await;
    assert!(r.last_error.contains("no subscriptions"), "{r:?}");
    let r = wait_relay(&d, &refuse, JOIN, |r| r.state == "retired").await;
    assert!(r.last_error.starts_with("blocked:"), "{r:?}");
    assert_eq!(r.score, -1.0);
    let g = wait_relay(&d, &good, JOIN, |r| r.state == "connected").await;
    assert!(g.events_out > 0 && g.score > 0.0);
    let status = d.status().await;
    assert_eq!(status.drops.get("relay_retired"), Some(&3));
    // The cooldown survives a restart: the retired relays are not even connected.
    drop(s);
    d.kill9();
    d.start().await;
    for url in [&pow, &closed, &refuse] {
        let r = relays_of(&d)
            .await
            .into_iter()
            .find(|r| &r.url == url)
            .expect("listed");
        assert_eq!(r.state, "retired", "{r:?}");
    }
    wait_relay(&d, &good, JOIN, |r| r.state == "connected").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_relays_are_throttled_and_silent_droppers_scored_down() {
    let (_good, good) = relay_with(|b| b).await;
    let (_slow, slow) = relay_with(|b| {
        b.rate_limit(RateLimit {
            max_reqs: 64,
            notes_per_minute: 2,
        })
    })
    .await;
    let (_drop, dropper) = relay_with(|b| {
        b.rate_limit(RateLimit {
            max_reqs: 0,
            notes_per_minute: 100_000,
        })
    })
    .await;
    let d = Daemon::with_relays(&[good.clone(), slow.clone(), dropper.clone()]).await;
    let mut s = d.session().await;
    s.join("relays", "room-1", "").await;
    let r = wait_relay(&d, &slow, JOIN, |r| r.state == "rate-limited").await;
    assert!(r.last_error.starts_with("rate-limited:"), "{r:?}");
    let (out, rejected) = (r.events_out, r.events_rejected);
    assert_eq!(
        rejected, 1,
        "publishing went on after the first rate-limited answer: {r:?}"
    );
    // More announces: nothing more goes to the throttled relay, the others get them.
    let before = wait_relay(&d, &good, JOIN, |_| true).await.events_out;
    s.join("relays", "room-2", "").await;
    // Once the good relay has the new announce, the throttled one would have had it too.
    wait_relay(&d, &good, JOIN, |r| r.events_out > before).await;
    let r = wait_relay(&d, &slow, JOIN, |_| true).await;
    assert_eq!(
        (r.events_out, r.events_rejected, r.state.as_str()),
        (out, rejected, "rate-limited")
    );
    // The relay that accepts but never delivers is scored below the good one.
    let bad = wait_relay(&d, &dropper, JOIN, |r| {
        r.last_error.contains("never delivered")
    })
    .await;
    let g = wait_relay(&d, &good, JOIN, |_| true).await;
    assert!(
        bad.state != "retired" && bad.score < g.score / 2.0,
        "dropper {bad:?} good {g:?}"
    );
}

/// Serves `body` to every HTTP request on a loopback port; returns the URL and a request counter.
async fn http_list(body: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/v1/online", listener.local_addr().expect("addr"));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
            });
        }
    });
    (url, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_list_tops_up_the_pool_and_survives_a_failed_refresh() {
    let (_a, a) = relay_with(|b| b).await;
    let (_b, b) = relay_with(|b| b).await;
    let (_c, c) = relay_with(|b| b).await;
    let (url, hits) = http_list(format!(
        r#"["{b}", "{c}", "https://not-a-relay.example", 42]"#
    ))
    .await;
    let cfg = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(
        cfg.path(),
        format!("extended_relays = true\nmin_relays = 3\nrelay_list_url = \"{url}\"\n"),
    )
    .expect("write");
    let path = cfg.path().display().to_string();
    let mut d = Daemon::spawn(vec![a.clone()], None, vec!["--config".into(), path.clone()]).await;
    for r in [&a, &b, &c] {
        wait_relay(&d, r, JOIN, |r| r.state == "connected").await;
    }
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    // A refresh that fails keeps the cached list.
    d.kill9();
    std::fs::write(cfg.path(), format!("extended_relays = true\nmin_relays = 3\nrelay_list_url = \"http://127.0.0.1:{}/gone\"\n", free_port()))
        .expect("write");
    d.start().await;
    for r in [&a, &b, &c] {
        wait_relay(&d, r, JOIN, |r| r.state == "connected").await;
    }
    let deadline = Instant::now() + JOIN;
    while !d.status().await.drops.contains_key("relay_list_failed") {
        assert!(
            Instant::now() < deadline,
            "the failed refresh was not counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_relays_never_touch_public_lists() {
    let (_a, a) = relay_with(|b| b).await;
    let (url, hits) = http_list("[]".into()).await;
    let cfg = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(
        cfg.path(),
        format!("min_relays = 3\nrelay_list_url = \"{url}\"\n"),
    )
    .expect("write");
    let d = Daemon::spawn(
        vec![a.clone()],
        None,
        vec!["--config".into(), cfg.path().display().to_string()],
    )
    .await;
    wait_relay(&d, &a, JOIN, |r| r.state == "connected").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the list URL was fetched"
    );
    let relays = relays_of(&d).await;
    assert_eq!(relays.len(), 1, "{relays:?}");
}

/// A standalone relay process (`meshrtcd relay --listen`), so it can be stopped and restarted.
struct RelayProcess {
    addr: String,
    child: std::process::Child,
}

impl RelayProcess {
    async fn start(addr: &str) -> RelayProcess {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_meshrtcd"))
            .args(["relay", "--listen", addr])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("relay process");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(Instant::now() < deadline, "relay did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        RelayProcess {
            addr: addr.to_owned(),
            child,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_loses_no_join_and_the_restarted_relay_is_used_again() {
    let addr1 = format!("127.0.0.1:{}", free_port());
    let r1 = RelayProcess::start(&addr1).await;
    let r2 = RelayProcess::start(&format!("127.0.0.1:{}", free_port())).await;
    let both = vec![r1.url(), r2.url()];
    let a = Daemon::with_relays(&both).await;
    let b = Daemon::with_relays(&both).await;
    let (ida, idb) = (a.peer_id().await, b.peer_id().await);
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    sa.join("failover", "room", "").await;
    let rb = sb.join("failover", "room", "").await;
    assert!(sa.wait_join(&idb, JOIN).await);
    // Stop the first relay, and while the daemons are still finding out, three newcomers that
    // know both relays join: every announce, offer, answer and candidate of theirs has to get
    // through the survivor, and no join may be lost.
    let url1 = r1.url();
    drop(r1);
    let t = Instant::now();
    let mut newcomers = Vec::new();
    for _ in 0..3 {
        let d = Daemon::with_relays(&both).await;
        let id = d.peer_id().await;
        let mut s = d.session().await;
        s.join("failover", "room", "").await;
        newcomers.push((d, id, s));
    }
    let ids: Vec<String> = newcomers.iter().map(|(_, id, _)| id.clone()).collect();
    for (_, me, s) in &mut newcomers {
        for other in [&ida, &idb].into_iter().chain(ids.iter()) {
            if other != me {
                assert!(
                    s.wait_join(other, JOIN).await,
                    "newcomer {me} never joined {other} during the failover"
                );
            }
        }
    }
    for id in &ids {
        assert!(sa.wait_join(id, JOIN).await && sb.wait_join(id, JOIN).await);
    }
    eprintln!(
        "3 newcomers fully joined through the surviving relay in {:?}",
        t.elapsed()
    );
    wait_relay(&a, &url1, JOIN, |r| r.state != "connected").await;
    // Existing links never depended on the relay: a message still goes through.
    sb.send(rb, "chat", text("after the failover"), &[]).await;
    let m = sa
        .wait_message(JOIN)
        .await
        .expect("message after the failover");
    assert_eq!(m.payload, Some(text("after the failover")));
    // The first relay comes back: the daemons reconnect and resubscribe without restarting,
    // so a daemon that only knows the first relay finds them.
    let _r1 = RelayProcess::start(&addr1).await;
    wait_relay(&a, &url1, Duration::from_secs(40), |r| {
        r.state == "connected"
    })
    .await;
    wait_relay(&b, &url1, Duration::from_secs(40), |r| {
        r.state == "connected"
    })
    .await;
    let d = Daemon::with_relays(std::slice::from_ref(&url1)).await;
    let mut sd = d.session().await;
    sd.join("failover", "room", "").await;
    assert!(
        sd.wait_join(&ida, JOIN).await && sd.wait_join(&idb, JOIN).await,
        "no join through the restarted relay"
    );
}

/// With no relay configured, each app's rooms use only the relays picked for that app, here
/// from a list of loopback relays (`trystero_relays`) instead of Trystero's public one: the
/// pool holds the union over the apps with rooms, each room subscribes and announces on its
/// app's relays only, and daemons of the same app meet there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_apps_rooms_use_only_the_relays_picked_for_that_app() {
    let mut relays = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..3 {
        let (relay, url) = relay_with(|b| b).await;
        relays.push(relay);
        urls.push(url);
    }
    let picks = meshrtc::signal::defaults::AppRelays {
        list: urls.clone(),
        redundancy: 1,
    };
    let app_on = |url: &String| {
        (0..)
            .map(|i| format!("per-app-{i}"))
            .find(|app| picks.for_app(app) == [url.clone()])
            .expect("an app id")
    };
    let (rx, ry) = (&urls[0], &urls[1]);
    let (app_x, app_y) = (app_on(rx), app_on(ry));
    let cfg = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(
        cfg.path(),
        format!(
            "trystero_relays = {urls:?}\nrelay_redundancy = 1\nextended_relays = false\n\
             relay_list_url = \"http://127.0.0.1:{}/none\"\n",
            free_port()
        ),
    )
    .expect("write");
    let args = vec!["--config".to_owned(), cfg.path().display().to_string()];
    let d1 = Daemon::spawn(Vec::new(), None, args.clone()).await;
    let d2 = Daemon::spawn(Vec::new(), None, args).await;
    assert!(relays_of(&d1).await.is_empty(), "relays before any room");
    let (id1, id2) = (d1.peer_id().await, d2.peer_id().await);
    let mut s1 = d1.session().await;
    s1.join(&app_y, "room", "").await;
    wait_relay(&d1, ry, JOIN, |r| r.state == "connected").await;
    s1.join(&app_x, "room", "").await;
    wait_relay(&d1, rx, JOIN, |r| r.state == "connected").await;
    let mut s2 = d2.session().await;
    s2.join(&app_y, "room", "").await;
    assert!(
        s2.wait_join(&id1, JOIN).await,
        "no meeting on app Y's relay"
    );
    assert!(s1.wait_join(&id2, JOIN).await);
    let listed = |rs: Vec<RelayInfo>| {
        let mut u: Vec<String> = rs.into_iter().map(|r| r.url).collect();
        u.sort();
        u
    };
    let mut both = vec![rx.clone(), ry.clone()];
    both.sort();
    assert_eq!(
        listed(relays_of(&d1).await),
        both,
        "the union of X's and Y's"
    );
    assert_eq!(listed(relays_of(&d2).await), vec![ry.clone()]);
    // A daemon that announces app Y on X's relay: d1's room Y neither listens nor announces
    // there, so the two never meet, and nothing but X's own (none) comes in through it.
    let d3 = Daemon::with_relays(std::slice::from_ref(rx)).await;
    let mut s3 = d3.session().await;
    s3.join(&app_y, "room", "").await;
    wait_relay(&d3, rx, JOIN, |r| r.events_out >= 2).await;
    assert!(
        !s3.wait_join(&id1, Duration::from_secs(3)).await,
        "app Y's room reached app X's relay"
    );
    let on = |rs: &[RelayInfo], url: &String| rs.iter().find(|r| &r.url == url).cloned();
    let seen = relays_of(&d1).await;
    assert_eq!(on(&seen, rx).expect("X's relay").events_in, 0, "{seen:?}");
    assert!(on(&seen, ry).expect("Y's relay").events_in > 0, "{seen:?}");
}

/// Emulates a relay's `max_message_length` on what nostr-relay-builder lets a policy see: an
/// `EVENT` (the event's JSON) and each filter of a `REQ` (the node sends one per `REQ`).
#[derive(Debug)]
struct MaxMessageLength(usize);
impl WritePolicy for MaxMessageLength {
    fn admit_event<'a>(&'a self, e: &'a Event, _: &'a SocketAddr) -> BoxedFuture<'a, PolicyResult> {
        let len = e.as_json().len() + r#"["EVENT",]"#.len();
        Box::pin(async move {
            if len > self.0 {
                PolicyResult::Reject(format!("message of {len} bytes is too long"))
            } else {
                PolicyResult::Accept
            }
        })
    }
}
impl QueryPolicy for MaxMessageLength {
    fn admit_query<'a>(
        &'a self,
        f: &'a Filter,
        _: &'a SocketAddr,
    ) -> BoxedFuture<'a, PolicyResult> {
        let len = f.as_json().len() + r#"["REQ","meshrtc-1",]"#.len();
        Box::pin(async move {
            if len > self.0 {
                PolicyResult::Reject(format!("REQ of {len} bytes is too long"))
            } else {
                PolicyResult::Accept
            }
        })
    }
}

/// A relay enforcing what nostr-relay-builder can (`f`), on our own loopback listener, which
/// also serves `info` as its NIP-11 document (nostr-relay-builder serves none).
async fn rules_relay(
    info: serde_json::Value,
    f: impl Fn(RelayBuilder) -> RelayBuilder,
) -> (meshrtc::signal::embedded::EmbeddedRelay, String) {
    let mut last = None;
    for _ in 0..5 {
        let port = free_port();
        let builder = f(RelayBuilder::default().rate_limit(RateLimit {
            max_reqs: 64,
            notes_per_minute: 100_000,
        }));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        match meshrtc::signal::embedded::start_with(addr, builder, Some(info.to_string())).await {
            Ok(relay) => return (relay, format!("ws://127.0.0.1:{port}")),
            Err(e) => last = Some(e),
        }
    }
    panic!("no relay could bind a port: {last:?}")
}

/// NIP-11 limits: the document is read, the node's many topics are split over as few REQs as
/// `max_message_length` and `max_subscriptions` allow (both enforced by the relay), and events
/// longer than the limit (offers) go to the other relay instead of being refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nip11_limits_split_the_subscription_and_keep_long_events_off_the_relay() {
    const MAX: usize = 900;
    let (_good, good) = relay_with(|b| b).await;
    let (_limited, limited) = rules_relay(
        serde_json::json!({"name": "limited", "limitation": {
            "max_subscriptions": 3, "max_filters": 1, "max_message_length": MAX}}),
        |b| {
            b.rate_limit(RateLimit {
                max_reqs: 3,
                notes_per_minute: 100_000,
            })
            .write_policy(MaxMessageLength(MAX))
            .query_policy(MaxMessageLength(MAX))
        },
    )
    .await;
    let both = vec![good.clone(), limited.clone()];
    let (a, b) = (
        Daemon::with_relays(&both).await,
        Daemon::with_relays(&both).await,
    );
    let idb = b.peer_id().await;
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    // Thirty topics of A's rooms are too long for one REQ of 900 bytes.
    for i in 0..15 {
        sa.join("limits", &format!("busy-{i}"), "").await;
    }
    sa.join("limits", "meet", "").await;
    sb.join("limits", "meet", "").await;
    assert!(sa.wait_join(&idb, JOIN).await, "A and B never met");
    // B's announces reach A through the limited relay: A's split subscription holds there.
    let r = wait_relay(&a, &limited, JOIN, |r| r.events_in > 0).await;
    assert_eq!(r.state, "connected", "{r:?}");
    assert_eq!(
        (r.max_message_length, r.max_subscriptions),
        (900, 3),
        "{r:?}"
    );
    assert_eq!(r.topics_left_out, 0, "{r:?}");
    assert!(!r.last_error.contains("too"), "{r:?}");
    // Offers are longer than 900 bytes: skipped there, counted, sent through the other relay.
    let mut too_large = 0;
    for d in [&a, &b] {
        let r = relays_of(d)
            .await
            .into_iter()
            .find(|r| r.url == limited)
            .expect("listed");
        assert_eq!(r.state, "connected", "{r:?}");
        assert_eq!(r.events_rejected, 0, "{r:?}");
        too_large += r.events_too_large;
        assert_eq!(
            d.status()
                .await
                .drops
                .get("event_too_large")
                .copied()
                .unwrap_or(0)
                > 0,
            r.events_too_large > 0
        );
    }
    assert!(too_large > 0, "no event was too long: lower MAX");
}

/// NIP-42: a relay that demands AUTH for reading and writing is answered with the node's key;
/// two daemons meet through it alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nip42_auth_is_answered_and_the_relay_used() {
    let (_auth, auth) = relay_with(|b| {
        b.nip42(RelayBuilderNip42 {
            mode: RelayBuilderNip42Mode::Both,
        })
    })
    .await;
    let only = std::slice::from_ref(&auth);
    let (a, b) = (
        Daemon::with_relays(only).await,
        Daemon::with_relays(only).await,
    );
    let idb = b.peer_id().await;
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    sa.join("auth", "room", "").await;
    sb.join("auth", "room", "").await;
    assert!(
        sa.wait_join(&idb, JOIN).await,
        "no join through the AUTH relay"
    );
    for d in [&a, &b] {
        let r = wait_relay(d, &auth, JOIN, |r| r.events_out > 0 && r.events_in > 0).await;
        assert_eq!(r.state, "connected", "{r:?}");
    }
}

/// NIP-11 `restricted_writes` / `payment_required`: the node does not publish there (no
/// refusal, no retirement) and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_and_paid_relays_are_only_read_from() {
    let (_good, good) = relay_with(|b| b).await;
    let (_restricted, restricted) = rules_relay(
        serde_json::json!({"limitation": {"restricted_writes": true}}),
        |b| b.write_policy(RejectWrites),
    )
    .await;
    let (_paid, paid) = rules_relay(
        serde_json::json!({"limitation": {"payment_required": true}}),
        |b| b.write_policy(RejectWrites),
    )
    .await;
    let d = Daemon::with_relays(&[good.clone(), restricted.clone(), paid.clone()]).await;
    let mut s = d.session().await;
    s.join("readonly", "room", "").await;
    wait_relay(&d, &good, JOIN, |r| r.events_out > 1).await;
    for (url, access) in [
        (&restricted, "read-only: restricted-writes"),
        (&paid, "read-only: payment-required"),
    ] {
        let r = wait_relay(&d, url, JOIN, |r| r.access == access).await;
        assert_eq!(r.state, "connected", "{r:?}");
        assert_eq!((r.events_out, r.events_rejected), (0, 0), "{r:?}");
        assert!(r.last_error.is_empty(), "{r:?}");
    }
    assert_eq!(d.status().await.drops.get("relay_retired"), None);
}
