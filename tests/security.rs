//! Local API access control and hostile input: token, other users, floods, slow consumers.

mod common;

use std::time::{Duration, Instant};

use common::*;
use meshrtc::proto;

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A TURN secret or credential file other accounts can read is refused at start, with the fix.
#[test]
fn secret_files_other_accounts_can_read_are_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let data = tempfile::tempdir().expect("tempdir");
    let shown = secret.display().to_string();
    for flags in [
        vec!["--turn-secret-file", &shown],
        vec![
            "--ice-server",
            "turn:127.0.0.1:3478",
            "--ice-username",
            "u",
            "--ice-credential-file",
            &shown,
        ],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshrtcd"))
            .arg("--data-dir")
            .arg(data.path())
            .args(["--ws", "none", "--relay", "ws://127.0.0.1:1"])
            .args(&flags)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} started: {err}");
        assert!(
            err.contains(&format!("chmod 600 {shown}")) && err.contains("644"),
            "{flags:?}: {err}"
        );
    }
}

/// A second local account for the tests about who may use the node (created once). Creating it
/// and switching to it needs root; a run without it fails here rather than passing without the
/// check.
fn second_user() -> &'static str {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the second-user checks need root (useradd, runuser): run the suite as root (CI does)"
    );
    let user = "meshrtc-test";
    let exists = std::process::Command::new("id")
        .arg(user)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        let made = std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                user,
            ])
            .output()
            .expect("useradd");
        // Two tests may race to create it: "already exists" (exit 9) is as good.
        assert!(
            made.status.success() || made.status.code() == Some(9),
            "useradd failed: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    user
}

/// The status line an HTTP request to the bridge gets, sent as `user` (None: as the owner) over a
/// plain TCP connection, as any local program could.
fn bridge_status_line(user: Option<&str>, port: u16, request: &str) -> String {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && printf '{}' >&3 && head -n 1 <&3",
        request.replace('\r', "\\r").replace('\n', "\\n")
    );
    let mut cmd = match user {
        Some(u) => {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", u, "--", "timeout", "10", "bash", "-c", &script]);
            c
        }
        None => {
            let mut c = std::process::Command::new("timeout");
            c.args(["10", "bash", "-c", &script]);
            c
        }
    };
    let out = cmd.output().expect("bash");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A WebSocket upgrade of the bridge with the daemon's own page's Origin (any program can send
/// it), optionally with the token.
fn upgrade_request(port: u16, token: Option<&str>) -> String {
    let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
    format!(
        "GET /ws{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n"
    )
}

/// Another local account reaches the bridge's loopback port: with the daemon's own Origin and no
/// token it is refused (the kernel says whose connection it is) and counted; the owner's page
/// gets in as before; the API token lets anyone in. `/metrics` answers the read-only metrics
/// token, which opens nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_account_cannot_use_the_bridge_or_metrics_without_the_token() {
    let user = second_user();
    let a = Daemon::with_embedded_relay().await;
    let port = a.ws_port;
    let foreign = async || {
        a.status()
            .await
            .drops
            .get("api_foreign_uid")
            .copied()
            .unwrap_or(0)
    };
    let before = foreign().await;
    let line = bridge_status_line(Some(user), port, &upgrade_request(port, None));
    assert!(
        line.starts_with("HTTP/1.1 403"),
        "another account's upgrade: {line}"
    );
    assert_eq!(foreign().await, before + 1, "the refusal was not counted");
    let line = bridge_status_line(None, port, &upgrade_request(port, None));
    assert!(
        line.starts_with("HTTP/1.1 101"),
        "the owner's upgrade: {line}"
    );
    let token = String::from_utf8(cli(&["--daemon", &a.endpoint(), "token"]).stdout)
        .expect("token")
        .trim()
        .to_owned();
    let line = bridge_status_line(Some(user), port, &upgrade_request(port, Some(&token)));
    assert!(line.starts_with("HTTP/1.1 101"), "with the token: {line}");
    let metrics_token =
        std::fs::read_to_string(a.dir.join("metrics-token")).expect("metrics token");
    let metrics =
        |auth: &str| format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n");
    let line = bridge_status_line(Some(user), port, &metrics(""));
    assert!(
        line.starts_with("HTTP/1.1 401"),
        "metrics without a token: {line}"
    );
    let bearer = format!("Authorization: Bearer {}\r\n", metrics_token.trim());
    let line = bridge_status_line(Some(user), port, &metrics(&bearer));
    assert!(
        line.starts_with("HTTP/1.1 200"),
        "metrics with the metrics token: {line}"
    );
    let line = bridge_status_line(
        Some(user),
        port,
        &upgrade_request(port, Some(metrics_token.trim())),
    );
    assert!(
        line.starts_with("HTTP/1.1 403"),
        "the metrics token opened the bridge: {line}"
    );
}

/// `meshrtc status` against `d`, run as another user.
fn status_as(user: &str, client: &std::path::Path, d: &Daemon) -> std::process::Output {
    std::process::Command::new("runuser")
        .args(["-u", user, "--"])
        .arg(client)
        .args(["--daemon", &d.endpoint(), "status"])
        .output()
        .expect("runuser")
}

/// The client copied where another account may run it.
fn client_for_others() -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let bin_dir = tempfile::tempdir().expect("tempdir");
    let client = bin_dir.path().join("meshrtc");
    std::fs::copy(env!("CARGO_BIN_EXE_meshrtc"), &client).expect("copy client");
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (bin_dir, client)
}

/// gRPC over loopback TCP decides by the kernel's word on whose connection it is: the daemon's
/// own account needs no token, another account is refused `unauthenticated` without it (counted
/// as `api_foreign_uid`) and gets in with it; a wrong token is refused whoever shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_grpc_trusts_the_owners_account_and_asks_others_for_the_token() {
    let user = second_user();
    let port = free_port();
    let a = Daemon::spawn(
        vec![],
        Some(format!("127.0.0.1:{}", free_port()).parse().expect("addr")),
        vec!["--grpc-tcp".into(), format!("127.0.0.1:{port}")],
    )
    .await;
    let tcp = format!("127.0.0.1:{port}");
    let drops = async |name: &str| a.status().await.drops.get(name).copied().unwrap_or(0);
    // The owner's account: no token needed, over the client library and the CLI.
    let mut owner = meshrtc::client::connect(&tcp).await.expect("tcp connect");
    assert!(owner.status(proto::StatusRequest {}).await.is_ok());
    assert!(cli(&["--daemon", &tcp, "status"]).status.success());
    let mut wrong = meshrtc::client::connect_with_token(&tcp, Some("nope"))
        .await
        .expect("connect");
    assert_eq!(
        wrong
            .status(proto::StatusRequest {})
            .await
            .expect_err("refused")
            .code(),
        tonic::Code::Unauthenticated
    );
    let token = cli(&["--daemon", &a.endpoint(), "token"]);
    let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
    assert_eq!(
        std::fs::read_to_string(a.dir.join("api-token"))
            .expect("token file")
            .trim(),
        token
    );
    assert_eq!(mode_of(&a.dir.join("api-token")), 0o600);
    // Another account, over the same port.
    let (_bin, client) = client_for_others();
    let as_other = |token: Option<&str>| {
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", user, "--"])
            .arg(&client)
            .args(["--daemon", &tcp]);
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        cmd.args(["status", "--json"]).output().expect("runuser")
    };
    let foreign = drops("api_foreign_uid").await;
    let out = as_other(None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "another account got in without the token"
    );
    assert!(
        // tonic's text for `Unauthenticated`, and the daemon's reason.
        err.contains("does not have valid authentication credentials")
            && err.contains("another account"),
        "{err}"
    );
    assert_eq!(drops("api_foreign_uid").await, foreign + 1);
    let out = as_other(Some(&token));
    assert!(
        out.status.success(),
        "another account with the token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(drops("api_token_refused").await >= 1);
    // A non-loopback TCP address is refused unless the config allows it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshrtcd"))
        .args([
            "--data-dir",
            &a.dir.join("other").display().to_string(),
            "--grpc-tcp",
            "0.0.0.0:1",
            "--ice-server",
            "none",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_owner_only_and_other_users_are_refused() {
    let a = Daemon::with_embedded_relay().await;
    assert_eq!(mode_of(&a.socket()), 0o600);
    assert_eq!(mode_of(&a.dir), 0o700);
    // A socket in a directory others can enter is refused at start.
    let open_dir = tempfile::tempdir().expect("tempdir");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(open_dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let data = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshrtcd"))
        .args([
            "--data-dir",
            &data.path().display().to_string(),
            "--ice-server",
            "none",
            "--ws",
            "none",
            "--relay",
            "ws://127.0.0.1:1",
        ])
        .arg("--grpc")
        .arg(format!("unix:{}/s.sock", open_dir.path().display()))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0700"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another uid cannot use the socket.
    let user = second_user();
    // Copy the client somewhere the other user may execute it.
    let (_bin, client) = client_for_others();
    let out = status_as(user, &client, &a);
    assert!(!out.status.success(), "another user reached the API");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connecting to") && err.contains("permission denied"),
        "{err}"
    );
    // That was the 0700 directory. Now the peer-credential filter behind it: open the
    // directory and the socket to everyone, so only the filter stands in the way.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&a.dir, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        std::fs::set_permissions(a.socket(), std::fs::Permissions::from_mode(0o666))
            .expect("chmod");
    }
    let foreign = async || a.status().await.drops.get("api_foreign_uid").copied();
    let before = foreign().await.unwrap_or(0);
    let out = status_as(user, &client, &a);
    assert!(
        !out.status.success(),
        "another user reached the API through an open socket: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after = foreign().await.unwrap_or(0);
    assert!(
        after > before,
        "the peer-credential filter did not refuse the other uid"
    );
    // The owner still can.
    assert!(cli(&["--daemon", &a.endpoint(), "status"]).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_fake_announces_leave_the_daemon_responsive() {
    let (relay, url) = flood_relay().await;
    let a = Daemon::with_relays(std::slice::from_ref(&url)).await;
    let b = Daemon::with_relays(std::slice::from_ref(&url)).await;
    let (ida, idb) = (a.peer_id().await, b.peer_id().await);
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    sa.join("flood", "room", "").await;
    sb.join("flood", "room", "").await;
    assert!(sa.wait_join(&idb, JOIN).await && sb.wait_join(&ida, JOIN).await);
    let rss_before = rss_kib(a.pid());
    let events = fake_announces("flood", "room", 10_000);
    let flooding = tokio::spawn(flood(relay, events));
    let mut worst = Duration::ZERO;
    let mut c = meshrtc::client::connect(&a.endpoint())
        .await
        .expect("connect");
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(4) {
        let r = c
            .ping(proto::PingRequest {
                app: "flood".into(),
                room: "room".into(),
                peer: idb.clone(),
            })
            .await
            .expect("ping")
            .into_inner();
        worst = worst.max(Duration::from_secs_f64(r.rtt_ms / 1000.0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _relay = flooding.await.expect("flood");
    let status = a.status().await;
    let rss_after = rss_kib(a.pid());
    eprintln!(
        "flood: worst ping {worst:?}, RSS {} -> {} KiB, pending dials {}, drops {:?}",
        rss_before, rss_after, status.pending_dials, status.drops
    );
    // Responsiveness under the flood is a benchmark figure (`cargo bench --bench flood`);
    // here only liveness: the real peer keeps answering.
    assert!(
        worst < Duration::from_secs(2),
        "ping to the real peer took {worst:?} during the flood"
    );
    assert!(
        rss_after.saturating_sub(rss_before) < 50 * 1024,
        "RSS grew by {} KiB",
        rss_after - rss_before
    );
    assert!(
        status.pending_dials <= 16,
        "pending dials not capped: {}",
        status.pending_dials
    );
    // The flood is cut at the relay connection (most announces are never verified) and what
    // passes is rate limited before it costs a dial.
    let drop = |n: &str| status.drops.get(n).copied().unwrap_or(0);
    assert!(
        drop("event_rate_limited") > 1_000 && drop("poke_rate_limited") > 100,
        "{:?}",
        status.drops
    );
    assert!(
        status.drops.get("dials_full").copied().unwrap_or(0) > 100,
        "{:?}",
        status.drops
    );
    // The real peer is still there and messages still flow.
    let r = sb.send(1, "chat", text("still here"), &[]).await;
    assert!(r.error.is_none());
    assert!(
        sa.wait_for(
            JOIN,
            |e| matches!(&e.kind, Some(proto::event::Kind::Message(m)) if m.from == idb)
        )
        .await
        .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_stops_reading_is_bounded_and_told_it_lagged() {
    // A queue of 1,024 events, so what it may hold (8 MiB of 8 KiB messages) is small next to
    // what is sent (160 MiB).
    let cfg = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(cfg.path(), "session_queue = 1024\n").expect("write config");
    let embedded = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let a = Daemon::spawn(
        vec![],
        Some(embedded),
        vec!["--config".into(), cfg.path().display().to_string()],
    )
    .await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    let idb = b.peer_id().await;
    let mut slow = a.session().await;
    let mut sb = b.session().await;
    let rs = slow.join("slow", "room", "").await;
    let rb = sb.join("slow", "room", "").await;
    assert!(slow.wait_join(&idb, JOIN).await);
    let blob = "x".repeat(8192);
    let mut send = async |n: usize| {
        for _ in 0..n {
            let r = sb.send(rb, "chat", text(&blob), &[]).await;
            assert!(r.error.is_none());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        rss_kib(a.pid())
    };
    let rss_before = rss_kib(a.pid());
    // 32 MiB while the session reads nothing: its queue fills.
    let rss_full = send(4_000).await;
    // 128 MiB more: four times the growth allowed below, and none of it may stay.
    let rss_after = send(16_000).await;
    eprintln!("slow consumer: RSS {rss_before} -> {rss_full} (queue full) -> {rss_after} KiB");
    assert!(
        rss_after.saturating_sub(rss_before) < 32 * 1024,
        "daemon memory grew by {} KiB while 160 MiB went to a session that reads nothing",
        rss_after.saturating_sub(rss_before)
    );
    assert!(
        rss_after.saturating_sub(rss_full) < 16 * 1024,
        "memory kept growing after the queue was full: {rss_full} -> {rss_after} KiB"
    );
    slow.assert_alive(rs).await;
    let lagged = slow
        .wait_for(JOIN, |e| {
            matches!(e.kind, Some(proto::event::Kind::Lagged(_)))
        })
        .await;
    let Some(proto::event::Kind::Lagged(l)) = lagged.and_then(|e| e.kind) else {
        panic!("no lagged event")
    };
    assert!(l.dropped > 1_000, "dropped {}", l.dropped);
    // After the lag, messages flow again.
    sb.send(rb, "chat", text("after"), &[]).await;
    assert!(slow.wait_for(JOIN, |e| matches!(&e.kind, Some(proto::event::Kind::Message(m)) if matches!(&m.payload, Some(p) if p.kind == Some(proto::payload::Kind::Text("after".into())))))
        .await
        .is_some());
}

/// Between daemons in a password room: both report the other as an end-to-end peer, every
/// payload kind arrives intact, and `require_e2e` needs a password. That the frames on the wire
/// are sealed is proven in `hostile_peer.rs`, which reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_rooms_report_e2e_peers_and_deliver_every_payload_kind() {
    let a = Daemon::with_embedded_relay().await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    let (ida, idb) = (a.peer_id().await, b.peer_id().await);
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    let ra = sa.join_with("e2e", "vault", "correct horse", true).await;
    sb.join("e2e", "vault", "correct horse").await;
    for (s, peer) in [(&mut sa, &idb), (&mut sb, &ida)] {
        let e = s
            .wait_for(
                JOIN,
                |e| matches!(&e.kind, Some(proto::event::Kind::PeerJoin(p)) if &p.peer == peer),
            )
            .await;
        let Some(proto::event::Kind::PeerJoin(p)) = e.and_then(|e| e.kind) else {
            panic!("no join")
        };
        assert_eq!(p.security, "e2e");
    }
    for payload in [
        text("sealed words"),
        json(r#"{"k":[1,2]}"#),
        binary(vec![1, 2, 3], r#"{"name":"x"}"#),
    ] {
        assert!(
            sa.send(ra, "vault-chat", payload.clone(), &[])
                .await
                .error
                .is_none()
        );
        let m = sb.wait_message(JOIN).await.expect("sealed message arrives");
        assert_eq!(
            (m.channel.as_str(), m.payload),
            ("vault-chat", Some(payload))
        );
    }
    let status = a.status().await;
    assert_eq!(status.rooms[0].e2e_peers, vec![idb.clone()]);
    assert!(status.rooms[0].require_e2e);
    // require_e2e without a password is a clear error.
    let mut sc = a.session().await;
    let r = sc
        .call(proto::client_message::Body::Join(proto::JoinRequest {
            app: "e2e".into(),
            room: "open".into(),
            require_e2e: true,
            ..Default::default()
        }))
        .await;
    assert_eq!(r.error.map(|e| e.code), Some("invalid_argument".into()));
}
