//! Durable channels with real daemons: resume from a cursor after an app stops, the byte
//! budget, and password rooms sealed at rest.

mod common;

use std::time::{Duration, Instant};

use common::*;
use meshrtc::proto::{self, payload};

const APP: &str = "meshrtc-test";
const WAIT: Duration = Duration::from_secs(20);

fn keep(channel: &str, max_messages: u64) -> Vec<proto::Keep> {
    vec![proto::Keep {
        channel: channel.into(),
        max_messages,
        max_age_seconds: 0,
    }]
}

fn history(d: &Daemon, room: &str, password: &str) -> serde_json::Value {
    history_json(d, APP, room, password)
}

/// Waits until a daemon keeps `n` messages of a room.
async fn wait_kept(d: &Daemon, room: &str, password: &str, n: u64) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if history(d, room, password)["messages"].as_u64() == Some(n) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn text_of(m: &proto::Message) -> String {
    match m.payload.as_ref().and_then(|p| p.kind.clone()) {
        Some(payload::Kind::Text(t)) => t,
        other => panic!("not text: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_stops_resumes_from_its_cursor_and_misses_nothing() {
    let k = Daemon::with_embedded_relay().await;
    let a = Daemon::with_relays(&[k.relay_url()]).await;
    let (ida, idk) = (a.peer_id().await, k.peer_id().await);
    let mut app = k.session().await;
    let room = app
        .join_request(proto::JoinRequest {
            app: APP.into(),
            room: "durable".into(),
            keep: keep("chat", 10_000),
            ..Default::default()
        })
        .await;
    let mut sa = a.session().await;
    let ra = sa.join(APP, "durable", "").await;
    assert!(app.wait_join(&ida, JOIN).await);
    assert!(sa.wait_join(&idk, JOIN).await);
    for i in 0..10 {
        sa.send(ra, "chat", text(&format!("m{i}")), &[]).await;
    }
    let mut last = 0;
    for i in 0..10 {
        let m = app.wait_message(WAIT).await.expect("live message");
        assert_eq!(text_of(&m), format!("m{i}"));
        assert!(m.cursor > last && !m.history);
        last = m.cursor;
    }
    let _ = room;
    // The app stops; the daemon stays in the room and keeps receiving.
    drop(app);
    for i in 10..60 {
        sa.send(ra, "chat", text(&format!("m{i}")), &[]).await;
    }
    assert!(wait_kept(&k, "durable", "", 60).await, "K kept all 60");
    // It restarts with its last cursor: exactly the 50 it missed, in order, then live.
    let mut app = k.session().await;
    app.join_request(proto::JoinRequest {
        app: APP.into(),
        room: "durable".into(),
        keep: keep("chat", 10_000),
        since: Some(proto::Since {
            from: Some(proto::since::From::Cursor(last)),
        }),
        ..Default::default()
    })
    .await;
    for i in 10..60 {
        let m = app.wait_message(WAIT).await.expect("replayed message");
        assert_eq!(text_of(&m), format!("m{i}"));
        assert!(m.history && m.cursor > last, "{m:?}");
        assert_eq!(m.from, ida);
        last = m.cursor;
    }
    sa.send(ra, "chat", text("live"), &[]).await;
    let m = app.wait_message(WAIT).await.expect("live again");
    assert_eq!(text_of(&m), "live");
    assert!(!m.history && m.cursor > last);
    // No duplicate of the replay: a marker sent after everything else is the next message
    // (a fixed quiet window would prove nothing on a slow machine).
    sa.send(ra, "chat", text("marker"), &[]).await;
    let m = app.wait_message(WAIT).await.expect("the marker");
    assert_eq!(text_of(&m), "marker", "a duplicate came before the marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_at_its_budget_prunes_the_oldest_and_stays_within_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("meshrtcd.toml");
    std::fs::write(&config, "history_budget_mib = 1\n").expect("config");
    let relay = format!("127.0.0.1:{}", free_port());
    let k = Daemon::spawn(
        Vec::new(),
        Some(relay.parse().expect("addr")),
        vec!["--config".into(), config.display().to_string()],
    )
    .await;
    let mut s = k.session().await;
    let room = s
        .join_request(proto::JoinRequest {
            app: APP.into(),
            room: "budget".into(),
            keep: keep("chat", 1_000_000),
            ..Default::default()
        })
        .await;
    let body = "x".repeat(1_000);
    for i in 0..3_000 {
        s.send(room, "chat", text(&format!("{i:05}{body}")), &[])
            .await;
    }
    let h = history(&k, "budget", "");
    let bytes = h["bytes"].as_u64().expect("bytes");
    let messages = h["messages"].as_u64().expect("messages");
    assert!(bytes <= 1 << 20, "{bytes} bytes kept");
    assert!(
        (800..1_100).contains(&messages),
        "{messages} messages of ~1 KiB in 1 MiB"
    );
    // What is left is the newest: a replay from the start begins where pruning stopped.
    let mut r = k.session().await;
    r.join_request(proto::JoinRequest {
        app: APP.into(),
        room: "budget".into(),
        since: since_all(),
        ..Default::default()
    })
    .await;
    let first = r.wait_message(WAIT).await.expect("replay");
    let n: u64 = text_of(&first)[..5].parse().expect("index");
    assert_eq!(n, 3_000 - messages, "the oldest went first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_rooms_history_holds_no_plaintext_on_disk() {
    let k = Daemon::with_embedded_relay().await;
    let a = Daemon::with_relays(&[k.relay_url()]).await;
    let (ida, idk) = (a.peer_id().await, k.peer_id().await);
    let mut sk = k.session().await;
    sk.join_request(proto::JoinRequest {
        app: APP.into(),
        room: "sealed".into(),
        password: "hunter2".into(),
        keep: keep("secret-channel", 1_000),
        ..Default::default()
    })
    .await;
    let mut sa = a.session().await;
    let ra = sa.join(APP, "sealed", "hunter2").await;
    assert!(sk.wait_join(&ida, JOIN).await);
    assert!(sa.wait_join(&idk, JOIN).await);
    const MARK: &str = "PLAINTEXT-MARKER-7f3a";
    for i in 0..20 {
        sa.send(ra, "secret-channel", text(&format!("{MARK}-{i}")), &[])
            .await;
    }
    for _ in 0..20 {
        sk.wait_message(WAIT).await.expect("message");
    }
    assert!(wait_kept(&k, "sealed", "hunter2", 20).await);
    let listed = history(&k, "sealed", "hunter2");
    assert_eq!(listed["channels"][0]["channel"], "secret-channel");
    // An open room's history is stored in the clear: the search below must find it (so it
    // cannot pass by searching the wrong files).
    const OPEN: &str = "OPEN-ROOM-MARKER-19c2";
    let ro = sk
        .join_request(proto::JoinRequest {
            app: APP.into(),
            room: "open".into(),
            keep: keep("chat", 1_000),
            ..Default::default()
        })
        .await;
    sk.send(ro, "chat", text(OPEN), &[]).await;
    assert!(wait_kept(&k, "open", "", 1).await);
    drop(sk);
    // A graceful stop flushes the store; every file of its database is then searched for the
    // message text and the channel name.
    let mut k = k;
    k.terminate();
    let db = files_under(&k.dir.join("state"));
    assert!(!db.is_empty(), "no sled files under {}", k.dir.display());
    let mut found = Vec::new();
    for path in db {
        let bytes = std::fs::read(&path).unwrap_or_default();
        for needle in [
            MARK.as_bytes(),
            b"secret-channel".as_slice(),
            OPEN.as_bytes(),
        ] {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push((path.clone(), String::from_utf8_lossy(needle).into_owned()));
            }
        }
    }
    let (open, sealed): (Vec<_>, Vec<_>) = found.into_iter().partition(|(_, n)| n == OPEN);
    assert!(
        !open.is_empty(),
        "the open room's message was not found on disk"
    );
    assert!(sealed.is_empty(), "plaintext at rest: {sealed:?}");
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_was_away_catches_up_from_a_keeper_verified_and_in_order() {
    let k = Daemon::with_embedded_relay().await;
    let a = Daemon::with_relays(&[k.relay_url()]).await;
    let (ida, idk) = (a.peer_id().await, k.peer_id().await);
    let mut sk = k.session().await;
    sk.join_request(proto::JoinRequest {
        app: APP.into(),
        room: "catchup".into(),
        keep: keep("chat", 10_000),
        ..Default::default()
    })
    .await;
    let mut sa = a.session().await;
    let ra = sa.join(APP, "catchup", "").await;
    assert!(sa.wait_join(&idk, JOIN).await);
    // A learns that K keeps chat (so it signs for it), as `peers` shows.
    sa.wait_keeper(ra, &idk, "chat", WAIT).await;
    // B is not running while A sends.
    for i in 0..100 {
        sa.send(ra, "chat", text(&format!("c{i}")), &[]).await;
    }
    assert!(wait_kept(&k, "catchup", "", 100).await);
    let b = Daemon::with_relays(&[k.relay_url()]).await;
    let mut sb = b.session().await;
    let rb = sb
        .join_request(proto::JoinRequest {
            app: APP.into(),
            room: "catchup".into(),
            since: since_all(),
            verified_only: true,
            ..Default::default()
        })
        .await;
    for i in 0..100 {
        let m = sb.wait_message(WAIT).await.expect("caught-up message");
        assert_eq!(text_of(&m), format!("c{i}"));
        assert!(m.history && m.verified, "{m:?}");
        assert_eq!(m.from, ida);
    }
    // Live traffic once A and B are linked (the catch-up needed only K).
    let deadline = Instant::now() + WAIT;
    while !sb
        .call(proto::client_message::Body::Peers(
            proto::SessionPeersRequest { room: rb },
        ))
        .await
        .peers
        .iter()
        .any(|p| p.id == ida)
    {
        assert!(Instant::now() < deadline, "A and B never linked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sa.send(ra, "chat", text("live"), &[]).await;
    let m = sb.wait_message(WAIT).await.expect("live");
    assert_eq!((text_of(&m).as_str(), m.history), ("live", false));
    let drops = b.status().await.drops;
    assert!(
        drops.keys().all(|name| !name.starts_with("history_")),
        "{drops:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keeper_killed_mid_stream_restarts_with_its_history_intact() {
    let mut k = Daemon::with_embedded_relay().await;
    let a = Daemon::with_relays(&[k.relay_url()]).await;
    let idk = k.peer_id().await;
    let keeper_join = || proto::JoinRequest {
        app: APP.into(),
        room: "crash".into(),
        keep: keep("chat", 10_000),
        ..Default::default()
    };
    let mut sk = k.session().await;
    sk.join_request(keeper_join()).await;
    let mut sa = a.session().await;
    let ra = sa.join(APP, "crash", "").await;
    assert!(sa.wait_join(&idk, JOIN).await);
    for i in 0..200 {
        sa.send(ra, "chat", text(&format!("k{i}")), &[]).await;
    }
    assert!(wait_kept(&k, "crash", "", 200).await);
    // More keep coming while it is killed.
    let sender = tokio::spawn(async move {
        for i in 200..400 {
            sa.send(ra, "chat", text(&format!("k{i}")), &[]).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sa
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(sk);
    k.kill9();
    let _sa = sender.await.expect("sender");
    k.start().await;
    let kept = history(&k, "crash", "")["messages"]
        .as_u64()
        .expect("messages");
    assert!(kept >= 200, "history lost at the crash: {kept} kept");
    assert!(
        !k.log().contains("damaged") || k.log().contains("dropped damaged"),
        "a damaged store was not handled"
    );
    // The restarted keeper serves a newcomer what it holds, in order.
    let mut sk = k.session().await;
    sk.join_request(keeper_join()).await;
    let c = Daemon::with_relays(&[k.relay_url()]).await;
    let mut sc = c.session().await;
    sc.join_request(proto::JoinRequest {
        app: APP.into(),
        room: "crash".into(),
        since: since_all(),
        ..Default::default()
    })
    .await;
    for i in 0..kept {
        let m = sc.wait_message(WAIT).await.expect("caught-up message");
        assert!(m.history, "{m:?}");
        assert_eq!(text_of(&m), format!("k{i}"));
    }
}
