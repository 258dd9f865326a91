//! End-to-end: real daemons, the embedded relay and real WebRTC on loopback.

mod common;

use std::time::{Duration, Instant};

use common::*;
use meshrtc::proto::{self, client_message::Body, event::Kind, payload};

const APP: &str = "meshrtc-test";

/// Three daemons on A's embedded relay: the daemons, their peer ids and a session on each.
async fn three_daemons() -> ([Daemon; 3], [String; 3], [Session; 3]) {
    let a = Daemon::with_embedded_relay().await;
    let relays = vec![a.relay_url()];
    let b = Daemon::with_relays(&relays).await;
    let c = Daemon::with_relays(&relays).await;
    let ids = [a.peer_id().await, b.peer_id().await, c.peer_id().await];
    let sessions = [a.session().await, b.session().await, c.session().await];
    ([a, b, c], ids, sessions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_exchange_text_json_binary_and_large() {
    let (_daemons, [ida, idb, idc], [mut sa, mut sb, mut sc]) = three_daemons().await;
    let ra = sa.join(APP, "trio", "").await;
    let rb = sb.join(APP, "trio", "").await;
    let rc = sc.join(APP, "trio", "").await;
    for (s, others) in [
        (&mut sa, [&idb, &idc]),
        (&mut sb, [&ida, &idc]),
        (&mut sc, [&ida, &idb]),
    ] {
        for o in others {
            assert!(s.wait_join(o, JOIN).await, "peer {o} never joined");
        }
    }
    // Text from A reaches B and C.
    let r = sa.send(ra, "chat", text("hello"), &[]).await;
    assert!(r.error.is_none());
    assert_eq!(r.delivered_to.len(), 2);
    for s in [&mut sb, &mut sc] {
        let m = s.wait_message(JOIN).await.expect("text arrives");
        assert_eq!(
            (m.channel.as_str(), m.from.as_str(), m.local),
            ("chat", ida.as_str(), false)
        );
        assert_eq!(
            m.payload.and_then(|p| p.kind),
            Some(payload::Kind::Text("hello".into()))
        );
    }
    // JSON from B.
    sb.send(rb, "state", json(r#"{"x":[1,2,3],"y":"z"}"#), &[])
        .await;
    for s in [&mut sa, &mut sc] {
        let m = s.wait_message(JOIN).await.expect("json arrives");
        let Some(payload::Kind::Json(j)) = m.payload.and_then(|p| p.kind) else {
            panic!("not json")
        };
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&j).ok(),
            Some(serde_json::json!({"x":[1,2,3],"y":"z"}))
        );
    }
    // Binary with metadata, and 5 MiB binary, from C.
    sc.send(rc, "file", binary(vec![1, 2, 3], r#"{"name":"tiny"}"#), &[])
        .await;
    let big: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let r = sc
        .send(rc, "file", binary(big.clone(), r#"{"name":"big"}"#), &[])
        .await;
    assert!(r.error.is_none(), "{:?}", r.error);
    for s in [&mut sa, &mut sb] {
        let m = s.wait_message(JOIN).await.expect("small binary arrives");
        let p = m.payload.expect("payload");
        assert_eq!(p.kind, Some(payload::Kind::Binary(vec![1, 2, 3].into())));
        assert_eq!(p.meta_json, r#"{"name":"tiny"}"#);
        let m = s
            .wait_message(Duration::from_secs(60))
            .await
            .expect("5 MiB arrives");
        let p = m.payload.expect("payload");
        assert_eq!(p.meta_json, r#"{"name":"big"}"#);
        let Some(payload::Kind::Binary(got)) = p.kind else {
            panic!("not binary")
        };
        assert_eq!(got.len(), big.len());
        assert!(got == big, "5 MiB payload corrupted");
    }
    // Progress was reported for the large message.
    assert!(
        sa.events
            .iter()
            .any(|e| matches!(&e.kind, Some(Kind::Progress(p)) if p.channel == "file"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeted_send_reaches_only_its_target() {
    let (_daemons, [_, idb, idc], [mut sa, mut sb, mut sc]) = three_daemons().await;
    let ra = sa.join(APP, "target", "").await;
    sb.join(APP, "target", "").await;
    sc.join(APP, "target", "").await;
    assert!(sa.wait_join(&idb, JOIN).await && sa.wait_join(&idc, JOIN).await);
    let r = sa
        .send(ra, "dm", text("for b only"), std::slice::from_ref(&idb))
        .await;
    assert_eq!(r.delivered_to, vec![idb.clone()]);
    let m = sb.wait_message(JOIN).await.expect("target receives");
    assert_eq!(
        m.payload.and_then(|p| p.kind),
        Some(payload::Kind::Text("for b only".into()))
    );
    // A broadcast after it arrives at C first: if C had received the targeted one it would come before.
    sa.send(ra, "dm", text("for all"), &[]).await;
    let m = sc.wait_message(JOIN).await.expect("broadcast arrives");
    assert_eq!(
        m.payload.and_then(|p| p.kind),
        Some(payload::Kind::Text("for all".into()))
    );
    // Unknown target: a clear error and nothing sent.
    let r = sa
        .send(ra, "dm", text("x"), &["AAAAAAAAAAAAAAAAAAAA".to_string()])
        .await;
    assert_eq!(r.error.map(|e| e.code), Some("not_found".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_and_kill9_give_peer_leave() {
    let a = Daemon::with_embedded_relay().await;
    let relays = vec![a.relay_url()];
    let mut b = Daemon::with_relays(&relays).await;
    let c = Daemon::with_relays(&relays).await;
    let (ida, idb, idc) = (a.peer_id().await, b.peer_id().await, c.peer_id().await);
    let (mut sa, mut sb, mut sc) = (a.session().await, b.session().await, c.session().await);
    sa.join(APP, "bye", "").await;
    sb.join(APP, "bye", "").await;
    let rc = sc.join(APP, "bye", "").await;
    assert!(
        sa.wait_join(&idb, JOIN).await
            && sa.wait_join(&idc, JOIN).await
            && sc.wait_join(&ida, JOIN).await
    );
    // A graceful leave is seen (well under 2 s on an idle machine; the bound is for liveness).
    let t = Instant::now();
    sc.leave(rc).await;
    assert!(
        sa.wait_leave(&idc, JOIN).await,
        "no peer:leave within {JOIN:?} of leave"
    );
    eprintln!("leave seen after {:?}", t.elapsed());
    // kill -9 is noticed by the watchdog (dead after 10 s of silence).
    let t = Instant::now();
    b.kill9();
    assert!(
        sa.wait_leave(&idb, Duration::from_secs(40)).await,
        "no peer:leave within 40 s of kill -9"
    );
    eprintln!("kill -9 seen after {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_daemon_keeps_its_id_and_rejoins() {
    let a = Daemon::with_embedded_relay().await;
    let relays = vec![a.relay_url()];
    let mut b = Daemon::with_relays(&relays).await;
    let idb = b.peer_id().await;
    let mut sa = a.session().await;
    let ra = sa.join(APP, "again", "").await;
    {
        let mut sb = b.session().await;
        sb.join(APP, "again", "").await;
        assert!(sa.wait_join(&idb, JOIN).await);
    }
    b.kill9();
    b.start().await;
    assert_eq!(b.peer_id().await, idb, "peer id changed across restart");
    let mut sb = b.session().await;
    let rb = sb.join(APP, "again", "").await;
    let ida = a.peer_id().await;
    assert!(
        sb.wait_join(&ida, Duration::from_secs(30)).await,
        "restarted daemon never rejoined"
    );
    sb.send(rb, "chat", text("back"), &[]).await;
    let m = sa.wait_message(JOIN).await.expect("message after restart");
    assert_eq!(
        m.payload.and_then(|p| p.kind),
        Some(payload::Kind::Text("back".into()))
    );
    let _ = ra;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_never_joins_and_app_is_told() {
    let a = Daemon::with_embedded_relay().await;
    let relays = vec![a.relay_url()];
    let b = Daemon::with_relays(&relays).await;
    let (ida, idb) = (a.peer_id().await, b.peer_id().await);
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    let ra = sa.join(APP, "secret", "right").await;
    let rb = sb.join(APP, "secret", "wrong").await;
    // The larger id receives the smaller id's offer and cannot decrypt it.
    let larger = if ida > idb { &mut sa } else { &mut sb };
    let err = larger
        .wait_for(
            JOIN,
            |e| matches!(&e.kind, Some(Kind::RoomError(r)) if r.code == "password_mismatch"),
        )
        .await;
    if err.is_none() {
        eprintln!(
            "A {:?}\nB {:?}\nsa {:?}\nsb {:?}",
            a.status().await,
            b.status().await,
            sa.events,
            sb.events
        );
    }
    assert!(
        err.is_some(),
        "the app was not told about the password mismatch"
    );
    assert!(!sa.wait_join(&idb, Duration::from_secs(3)).await);
    sa.assert_alive(ra).await;
    sb.assert_alive(rb).await;
    assert!(
        !sb.events
            .iter()
            .any(|e| matches!(&e.kind, Some(Kind::PeerJoin(_))))
    );
    // The same password joins.
    let mut sb2 = b.session().await;
    sb2.join(APP, "secret2", "right").await;
    sa.join(APP, "secret2", "right").await;
    let ok = sb2.wait_join(&ida, JOIN).await;
    if !ok {
        eprintln!(
            "A {:?}\nB {:?}\nsa {:?}\nsb2 {:?}\nLOGA {}\nLOGB {}",
            a.status().await,
            b.status().await,
            sa.events,
            sb2.events,
            a.log(),
            b.log()
        );
    }
    assert!(ok, "same password did not join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_sessions_share_the_room_and_see_each_other() {
    let a = Daemon::with_embedded_relay().await;
    let relays = vec![a.relay_url()];
    let b = Daemon::with_relays(&relays).await;
    let (ida, idb) = (a.peer_id().await, b.peer_id().await);
    let (mut s1, mut s2, mut sb) = (a.session().await, a.session().await, b.session().await);
    let r1 = s1.join(APP, "shared", "").await;
    let r2 = s2.join(APP, "shared", "").await;
    sb.join(APP, "shared", "").await;
    assert!(s1.wait_join(&idb, JOIN).await && s2.wait_join(&idb, JOIN).await);
    s1.send(r1, "chat", text("from s1"), &[]).await;
    let m = s2.wait_message(JOIN).await.expect("local delivery");
    assert_eq!((m.from.as_str(), m.local), (ida.as_str(), true));
    let m = sb.wait_message(JOIN).await.expect("remote delivery");
    assert_eq!(m.from, ida);
    // One session leaving keeps the room for the other.
    s2.leave(r2).await;
    let status = a.status().await;
    assert_eq!(status.rooms.len(), 1);
    assert_eq!(status.rooms[0].sessions, 1);
    assert!(
        !sb.wait_leave(&ida, Duration::from_secs(2)).await,
        "remote saw a leave while a session remained"
    );
    // The remaining session still reaches the remote, so the room really stayed.
    s1.send(r1, "chat", text("still here"), &[]).await;
    let m = sb.wait_message(JOIN).await.expect("room kept for s1");
    assert_eq!(m.payload, Some(text("still here")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_room_with_another_password_is_a_clear_error() {
    let a = Daemon::with_embedded_relay().await;
    let (mut s1, mut s2) = (a.session().await, a.session().await);
    let r1 = s1.join(APP, "locked", "first").await;
    let r = s2
        .call(Body::Join(proto::JoinRequest {
            app: APP.into(),
            room: "locked".into(),
            password: "second".into(),
            ..Default::default()
        }))
        .await;
    let err = r.error.expect("a second password is refused");
    assert_eq!(err.code, "password_conflict", "{err:?}");
    // Without a password is a different password too.
    let r = s2
        .call(Body::Join(proto::JoinRequest {
            app: APP.into(),
            room: "locked".into(),
            ..Default::default()
        }))
        .await;
    assert_eq!(r.error.map(|e| e.code), Some("password_conflict".into()));
    // The holder is untouched and the same password still shares the room.
    let r2 = s2.join(APP, "locked", "first").await;
    s1.send(r1, "chat", text("shared"), &[]).await;
    let m = s2.wait_message(JOIN).await.expect("shared room");
    assert_eq!((m.local, m.payload), (true, Some(text("shared"))));
    assert_eq!(a.status().await.rooms[0].sessions, 2);
    let _ = r2;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_limit_message_is_refused_and_nothing_arrives() {
    let embedded = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let cfg = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(cfg.path(), "max_message_size = 100000\n").expect("write config");
    let path = cfg.path().display().to_string();
    let a = Daemon::spawn(
        vec![],
        Some(embedded),
        vec!["--config".into(), path.clone()],
    )
    .await;
    let b = Daemon::spawn(vec![a.relay_url()], None, vec!["--config".into(), path]).await;
    let idb = b.peer_id().await;
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    let ra = sa.join(APP, "limit", "").await;
    sb.join(APP, "limit", "").await;
    assert!(sa.wait_join(&idb, JOIN).await);
    let r = sa.send(ra, "file", binary(vec![7; 100_001], ""), &[]).await;
    let e = r.error.expect("refused");
    assert_eq!(e.code, "message_too_large");
    assert!(
        e.message.contains("100001") && e.message.contains("100000"),
        "{}",
        e.message
    );
    let r = sa.send(ra, "file", binary(vec![7; 100_000], ""), &[]).await;
    assert!(r.error.is_none());
    let m = sb
        .wait_message(JOIN)
        .await
        .expect("in-limit message arrives");
    let Some(payload::Kind::Binary(b)) = m.payload.and_then(|p| p.kind) else {
        panic!("binary")
    };
    assert_eq!(
        b.len(),
        100_000,
        "the over-limit message (or part of it) arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_says_goodbye_and_exits_quickly() {
    let a = Daemon::with_embedded_relay().await;
    let relays = vec![a.relay_url()];
    let mut b = Daemon::with_relays(&relays).await;
    let idb = b.peer_id().await;
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    sa.join(APP, "term", "").await;
    sb.join(APP, "term", "").await;
    assert!(sa.wait_join(&idb, JOIN).await);
    assert_eq!(
        mode_of(&b.socket()),
        0o600,
        "gRPC socket must be owner-only"
    );
    let (code, took) = b.terminate();
    assert_eq!(code, Some(0));
    // The daemon's own shutdown budget is about 1.7 s; the bound only catches a hang.
    eprintln!("SIGTERM to exit: {took:?}");
    assert!(took < Duration::from_secs(8), "shutdown took {took:?}");
    let e = sa
        .wait_for(
            JOIN,
            |e| matches!(&e.kind, Some(Kind::PeerLeave(p)) if p.peer == idb),
        )
        .await;
    let Some(Kind::PeerLeave(p)) = e.and_then(|e| e.kind) else {
        panic!("no peer:leave after SIGTERM")
    };
    assert_eq!(p.reason, "leave");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_listen_and_send_follow_the_contract() {
    let a = Daemon::with_embedded_relay().await;
    let relays = vec![a.relay_url()];
    let b = Daemon::with_relays(&relays).await;
    let ida = a.peer_id().await;
    let idb = b.peer_id().await;
    let mut listen = std::process::Command::new(env!("CARGO_BIN_EXE_meshrtc"))
        .args(["--daemon", &a.endpoint(), "listen", "clitest", "--app", APP])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("listen");
    let listen_lines = {
        use std::io::BufRead as _;
        let stdout = listen.stdout.take().expect("listen stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let out = cli(&[
        "--daemon",
        &b.endpoint(),
        "send",
        "clitest",
        "chat",
        r#"{"n":1}"#,
        "--app",
        APP,
        "--wait-peers",
        "1",
        "--timeout",
        "30",
    ]);
    if !out.status.success() {
        eprintln!("A LOG\n{}\nB LOG\n{}", a.log(), b.log());
    }
    assert!(
        out.status.success(),
        "send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(file.path(), [0u8, 1, 2, 255]).expect("write");
    let out = cli(&[
        "--daemon",
        &b.endpoint(),
        "send",
        "clitest",
        "files",
        r#"{"name":"f.bin"}"#,
        "--app",
        APP,
        "--wait-peers",
        "1",
        "--file",
        &file.path().display().to_string(),
    ]);
    assert!(out.status.success());
    let out = cli(&[
        "--daemon",
        &b.endpoint(),
        "send",
        "clitest",
        "chat",
        "plain words",
        "--app",
        APP,
        "--to",
        &ida,
    ]);
    assert!(out.status.success());
    // A send that cannot be satisfied times out and says why.
    let out = cli(&[
        "--daemon",
        &b.endpoint(),
        "send",
        "lonely",
        "chat",
        "x",
        "--app",
        APP,
        "--wait-peers",
        "1",
        "--timeout",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 peer(s) to join"));
    let status = cli(&["--daemon", &a.endpoint(), "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(v["peer_id"], serde_json::json!(ida));
    assert_eq!(v["relays"][0]["state"], "connected");
    assert_eq!(v["rooms"][0]["room"], "clitest");
    assert!(v["drops"].is_object());
    let peers = cli(&[
        "--daemon",
        &a.endpoint(),
        "peers",
        "clitest",
        "--app",
        APP,
        "--json",
    ]);
    assert!(peers.status.success());
    // Read `listen`'s lines until every expected one came (no fixed sleep), then stop it.
    let expected = [
        serde_json::json!({"event":"peer:seen","room":"clitest","peer":idb}),
        serde_json::json!({"event":"peer:join","room":"clitest","peer":idb}),
        serde_json::json!({"event":"message","room":"clitest","channel":"chat","from":idb,"local":false,"data":{"n":1}}),
        serde_json::json!({"event":"message","room":"clitest","channel":"files","from":idb,"local":false,"binary":"AAEC/w==","meta":{"name":"f.bin"}}),
        serde_json::json!({"event":"message","room":"clitest","channel":"chat","from":idb,"local":false,"data":"plain words"}),
    ];
    let deadline = Instant::now() + JOIN;
    let mut lines: Vec<serde_json::Value> = Vec::new();
    while !expected.iter().all(|e| lines.contains(e)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match listen_lines.recv_timeout(left) {
            Ok(line) => lines.push(serde_json::from_str(&line).expect("each line is JSON")),
            Err(_) => break,
        }
    }
    let _ = listen.kill();
    let _ = listen.wait();
    for e in &expected {
        assert!(
            lines.contains(e),
            "listen never printed {e}; it printed {lines:#?}"
        );
    }
}

/// Waits for the outcome of request `id` from `peer`.
async fn wait_response(s: &mut Session, id: u64, peer: &str) -> proto::Response {
    let ev = s
        .wait_for(
            JOIN,
            |e| matches!(&e.kind, Some(Kind::Response(r)) if r.request_id == id && r.peer == peer),
        )
        .await
        .unwrap_or_else(|| panic!("no outcome of request {id} from {peer}"));
    match ev.kind {
        Some(Kind::Response(r)) => r,
        _ => unreachable!("matched a response"),
    }
}

/// Answers the next request `s` is handed with what `answer` makes of it.
async fn answer_next(
    s: &mut Session,
    room: u32,
    answer: impl Fn(&proto::IncomingRequest) -> proto::respond_request::Result,
) -> proto::IncomingRequest {
    let ev = s
        .wait_for(JOIN, |e| matches!(&e.kind, Some(Kind::Request(_))))
        .await
        .expect("a request arrives");
    let Some(Kind::Request(q)) = ev.kind else {
        unreachable!("matched a request")
    };
    let r = s
        .call(Body::Respond(proto::RespondRequest {
            room,
            id: q.id,
            result: Some(answer(&q)),
        }))
        .await;
    assert!(r.error.is_none(), "respond failed: {:?}", r.error);
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_between_daemons_over_grpc_reply_reject_time_out_and_name_the_absent() {
    use proto::respond_request::Result as Answer;
    let (_daemons, [_, idb, idc], [mut sa, mut sb, mut sc]) = three_daemons().await;
    let ra = sa.join(APP, "ask", "").await;
    let serving = |s: &str| proto::JoinRequest {
        app: APP.into(),
        room: "ask".into(),
        serve: vec![s.into()],
        ..Default::default()
    };
    let rb = sb.join_request(serving("calc")).await;
    let rc = sc.join_request(serving("calc")).await;
    for id in [&idb, &idc] {
        assert!(sa.wait_join(id, JOIN).await, "{id} never joined");
    }
    let ask = |targets: Vec<String>, data: &str, timeout_ms: u64| {
        Body::Request(proto::PeerRequest {
            room: ra,
            channel: "calc".into(),
            payload: Some(proto::Payload {
                meta_json: r#"{"n":1}"#.into(),
                ..text(data)
            }),
            targets,
            timeout_ms,
        })
    };

    // One request to B, C and a peer that is not there: B replies, C refuses, the absent one
    // is named at once.
    let r = sa
        .call(ask(
            vec![idb.clone(), idc.clone(), "nobody".into()],
            "2+3",
            10_000,
        ))
        .await;
    assert!(r.error.is_none(), "request failed: {:?}", r.error);
    let mut handed = r.delivered_to.clone();
    handed.sort();
    let mut both = vec![idb.clone(), idc.clone()];
    both.sort();
    assert_eq!(handed, both);
    let q = answer_next(&mut sb, rb, |_| Answer::Reply(text("5"))).await;
    assert_eq!(
        (
            q.channel.as_str(),
            q.payload.as_ref().map(|p| p.meta_json.as_str())
        ),
        ("calc", Some(r#"{"n":1}"#))
    );
    answer_next(&mut sc, rc, |q| {
        Answer::Error(format!(
            "c cannot do {}",
            q.payload.as_ref().map_or("", |p| match &p.kind {
                Some(payload::Kind::Text(t)) => t.as_str(),
                _ => "",
            })
        ))
    })
    .await;
    let from_b = wait_response(&mut sa, r.request_id, &idb).await;
    assert_eq!(from_b.status(), proto::ResponseStatus::Fulfilled);
    assert_eq!(
        from_b.payload.and_then(|p| p.kind),
        Some(payload::Kind::Text("5".into()))
    );
    let from_c = wait_response(&mut sa, r.request_id, &idc).await;
    assert_eq!(
        (from_c.status(), from_c.error.as_str()),
        (proto::ResponseStatus::Rejected, "c cannot do 2+3")
    );
    let absent = wait_response(&mut sa, r.request_id, "nobody").await;
    assert_eq!(absent.status(), proto::ResponseStatus::Disconnected);

    // B is handed the next one but never answers: A's deadline ends it.
    let r = sa.call(ask(vec![idb.clone()], "slow", 1_000)).await;
    assert!(r.error.is_none());
    assert!(
        sb.wait_for(JOIN, |e| matches!(&e.kind, Some(Kind::Request(_))))
            .await
            .is_some(),
        "B was not handed the request"
    );
    let late = wait_response(&mut sa, r.request_id, &idb).await;
    assert_eq!(late.status(), proto::ResponseStatus::Timeout);
    // A request never reaches B's app as a plain message.
    sb.assert_alive(rb).await;
    assert!(
        !sb.events
            .iter()
            .any(|e| matches!(&e.kind, Some(Kind::Message(m)) if m.channel == "calc")),
        "a request surfaced as a message"
    );
}
