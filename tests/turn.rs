//! TURN with a real coturn on loopback: daemons under `--ice-policy relay` connect only through
//! it (static user, REST credentials from a shared secret — links outliving them —, TURN over
//! TCP and TLS), and wrong credentials are named in status and told to apps.

mod common;

use std::time::{Duration, Instant};

use common::*;
use meshrtc::proto;

/// One coturn and one pair of daemons at a time: on two cores, parallel pairs starve coturn,
/// whose relay sockets then drop enough to stall a bulk transfer (the figures printed here are
/// for an otherwise idle machine).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const USER: &str = "alice";
const PASSWORD: &str = "wonderland-7";
const SECRET: &str = "shared-secret-42";

/// coturn with `use-auth-secret`, and a file holding the secret for `--turn-secret-file`.
fn secret_coturn() -> (Coturn, tempfile::TempDir, String, u16) {
    secret_coturn_with(&[])
}

/// The same, with more coturn flags.
fn secret_coturn_with(extra: &[&str]) -> (Coturn, tempfile::TempDir, String, u16) {
    let port = free_port();
    let mut auth = vec!["--use-auth-secret", "--static-auth-secret", SECRET];
    auth.extend_from_slice(extra);
    let turn = Coturn::start(None, "127.0.0.1", port, &auth);
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("turn-secret");
    private_file(&secret, SECRET);
    let secret = secret.to_string_lossy().into_owned();
    (turn, dir, secret, port)
}

/// Writes a secret only its owner can read (the daemon refuses any other).
fn private_file(path: &std::path::Path, secret: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, format!("{secret}\n")).expect("secret file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

fn flags(url: &str, auth: &[&str]) -> Vec<String> {
    let mut f: Vec<String> = ["--ice-server", url, "--ice-policy", "relay"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    f.extend(auth.iter().map(|s| s.to_string()));
    f
}

/// Two daemons joined in one room: their sessions, room handles and the join time.
struct Pair {
    a: Daemon,
    b: Daemon,
    sa: Session,
    sb: Session,
    ra: u32,
    rb: u32,
    took: Duration,
}

/// Two daemons with these flags, joined in one room.
async fn relay_pair(a_flags: Vec<String>, b_flags: Vec<String>) -> Pair {
    let relay: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let a = Daemon::spawn(Vec::new(), Some(relay), a_flags).await;
    let b = Daemon::spawn(vec![a.relay_url()], None, b_flags).await;
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    let start = Instant::now();
    let ra = sa.join("turn-test", "r", "").await;
    let rb = sb.join("turn-test", "r", "").await;
    let idb = b.peer_id().await;
    assert!(
        sa.wait_join(&idb, Duration::from_secs(30)).await,
        "no link through TURN"
    );
    let took = start.elapsed();
    Pair {
        a,
        b,
        sa,
        sb,
        ra,
        rb,
        took,
    }
}

/// The path of the one peer of room `r` as `meshrtc peers --json` gets it (the engine's
/// statistics may trail the link's opening by a moment).
async fn path(d: &Daemon) -> proto::LinkPath {
    let mut c = meshrtc::client::connect(&d.endpoint())
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let peers = c
            .peers(proto::PeersRequest {
                app: "turn-test".into(),
                room: "r".into(),
            })
            .await
            .expect("peers")
            .into_inner()
            .peers;
        if let Some(path) = peers.into_iter().next().and_then(|p| p.path) {
            return path;
        }
        assert!(Instant::now() < deadline, "no path for the link");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn types(p: &proto::LinkPath) -> (String, String) {
    (
        p.local
            .as_ref()
            .map(|c| c.r#type.clone())
            .unwrap_or_default(),
        p.remote
            .as_ref()
            .map(|c| c.r#type.clone())
            .unwrap_or_default(),
    )
}

/// Both ends of the pair's link are relayed, a message and a file of `file_bytes` cross it,
/// and status counts the relayed link.
async fn assert_relayed_and_talking(p: &mut Pair, what: &str, file_bytes: u32) {
    let Pair {
        a,
        b,
        sa,
        sb,
        ra,
        rb,
        took,
    } = p;
    let (a, b, ra, rb, took) = (&*a, &*b, *ra, *rb, *took);
    let (pa, pb) = (path(a).await, path(b).await);
    println!(
        "{what}: join {} ms; a {:?} ({} → {}), b {:?}",
        took.as_millis(),
        types(&pa),
        pa.local.as_ref().map(|c| c.address.as_str()).unwrap_or(""),
        pa.remote.as_ref().map(|c| c.address.as_str()).unwrap_or(""),
        types(&pb)
    );
    let relay = ("relay".to_owned(), "relay".to_owned());
    assert_eq!(types(&pa), relay, "a's path");
    assert_eq!(types(&pb), relay, "b's path");
    sa.send(ra, "chat", text("through the relay"), &[]).await;
    let m = sb
        .wait_message(Duration::from_secs(20))
        .await
        .expect("a message at b");
    assert_eq!(m.payload, Some(text("through the relay")));
    let file: Vec<u8> = (0..file_bytes).map(|i: u32| (i * 7 % 251) as u8).collect();
    let started = Instant::now();
    sb.send(
        rb,
        "file",
        binary(file.clone(), r#"{"name":"five.bin"}"#),
        &[],
    )
    .await;
    // Under a second since the relayed path stopped stalling (BENCHMARKS.md, "Bulk through
    // TURN, round 3"); the bound is liveness only.
    let got = sa
        .wait_message(Duration::from_secs(15))
        .await
        .expect("the file at a within 15 s");
    let bytes = match got.payload.and_then(|p| p.kind) {
        Some(proto::payload::Kind::Binary(b)) => b,
        other => panic!("not binary: {other:?}"),
    };
    println!(
        "{what}: {} KiB through TURN in {} ms",
        file_bytes >> 10,
        started.elapsed().as_millis()
    );
    assert!(bytes == file, "the file arrived altered");
    for d in [a, b] {
        let s = d.status().await;
        assert_eq!(s.links_relayed, 1, "status counts the relayed link");
        assert!(s.turn.iter().all(|t| t.state == "ok"), "{:?}", s.turn);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_daemons_connect_through_coturn_with_a_static_user() {
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let _turn = Coturn::start(
        None,
        "127.0.0.1",
        port,
        &["--lt-cred-mech", "--user", &format!("{USER}:{PASSWORD}")],
    );
    let url = format!("turn:127.0.0.1:{port}");
    // The credential from a file (kept out of the process list).
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("turn-credential");
    private_file(&file, PASSWORD);
    let file = file.to_string_lossy().into_owned();
    let auth = ["--ice-username", USER, "--ice-credential-file", &file];
    let mut p = relay_pair(flags(&url, &auth), flags(&url, &auth)).await;
    assert_relayed_and_talking(&mut p, "static user", 5 << 20).await;
    for d in [&p.a, &p.b] {
        assert!(!d.log().contains(PASSWORD), "the credential reached a log");
        let status = format!("{:?}", d.status().await);
        assert!(!status.contains(PASSWORD), "the credential reached status");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_credentials_from_a_shared_secret() {
    let _serial = SERIAL.lock().await;
    let (_turn, _dir, secret, port) = secret_coturn();
    let url = format!("turn:127.0.0.1:{port}");
    let f = flags(&url, &["--turn-secret-file", &secret]);
    let mut p = relay_pair(f.clone(), f).await;
    assert_relayed_and_talking(&mut p, "REST credentials", 5 << 20).await;
    assert!(!p.a.log().contains(SECRET) && !p.b.log().contains(SECRET));
}

/// Peers of room `r` as `meshrtc peers` gets them.
async fn peers_of(d: &Daemon) -> Vec<proto::PeerInfo> {
    let mut c = meshrtc::client::connect(&d.endpoint())
        .await
        .expect("connect");
    c.peers(proto::PeersRequest {
        app: "turn-test".into(),
        room: "r".into(),
    })
    .await
    .expect("peers")
    .into_inner()
    .peers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_outlive_their_rest_credentials_and_new_links_get_fresh_ones() {
    let _serial = SERIAL.lock().await;
    // Allocations of 10 s at most, so the engine refreshes them (every 5 s) long after the
    // credentials that made them expired.
    let (_turn, dir, secret, port) = secret_coturn_with(&["--max-allocate-lifetime", "10"]);
    let config = dir.path().join("meshrtcd.toml");
    std::fs::write(&config, "turn_secret_ttl_secs = 30\n").expect("config file");
    let url = format!("turn:127.0.0.1:{port}");
    let f = flags(
        &url,
        &[
            "--turn-secret-file",
            &secret,
            "--config",
            &config.to_string_lossy(),
        ],
    );
    let mut p = relay_pair(f.clone(), f.clone()).await;
    let opened = Instant::now();
    // Past the 30 s the link's credentials were valid for, and several refreshes: the same
    // link, still relayed, still carrying messages and a file.
    tokio::time::sleep(Duration::from_secs(45)).await;
    for d in [&p.a, &p.b] {
        let peers = peers_of(d).await;
        assert_eq!(peers.len(), 1, "{peers:?}");
        assert!(
            peers[0].connected_ms >= opened.elapsed().as_millis() as u64 - 1_000,
            "the link was replaced: up {} ms",
            peers[0].connected_ms
        );
    }
    assert_relayed_and_talking(&mut p, "45 s after its credentials were made", 1 << 20).await;
    // A newcomer now: `a`, up for longer than the credentials' validity, links to it through
    // TURN with credentials made for that link.
    let c = Daemon::spawn(vec![p.a.relay_url()], None, f).await;
    let mut sc = c.session().await;
    sc.join("turn-test", "r", "").await;
    let idc = c.peer_id().await;
    assert!(
        p.sa.wait_join(&idc, Duration::from_secs(30)).await,
        "a daemon older than its credentials did not link to a newcomer through TURN"
    );
    let ida = p.a.peer_id().await;
    // The engine's statistics may trail the link's opening by a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let via = loop {
        let via = peers_of(&c)
            .await
            .into_iter()
            .find(|peer| peer.id == ida)
            .and_then(|peer| peer.path)
            .map(|path| types(&path));
        if via.is_some() || Instant::now() > deadline {
            break via;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("newcomer ↔ a: {via:?}");
    assert_eq!(via, Some(("relay".to_owned(), "relay".to_owned())));
    assert!(
        !p.a.log().contains("Wrong Credentials"),
        "coturn refused a's credentials"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_over_tcp_carries_a_link() {
    let _serial = SERIAL.lock().await;
    let (_turn, _dir, secret, port) = secret_coturn();
    let udp = format!("turn:127.0.0.1:{port}");
    let tcp = format!("turn:127.0.0.1:{port}?transport=tcp");
    let mut p = relay_pair(
        flags(&udp, &["--turn-secret-file", &secret]),
        flags(&tcp, &["--turn-secret-file", &secret]),
    )
    .await;
    assert_relayed_and_talking(&mut p, "REST credentials, b over TCP", 1 << 20).await;
    assert!(!p.a.log().contains(SECRET) && !p.b.log().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_named_in_status_and_told_to_apps() {
    use meshrtc::proto::event::Kind;
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let _turn = Coturn::start(
        None,
        "127.0.0.1",
        port,
        &["--lt-cred-mech", "--user", &format!("{USER}:{PASSWORD}")],
    );
    let url = format!("turn:127.0.0.1:{port}");
    let relay: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let d = Daemon::spawn(
        Vec::new(),
        Some(relay),
        flags(
            &url,
            &[
                "--ice-username",
                USER,
                "--ice-credential",
                "not-the-password",
            ],
        ),
    )
    .await;
    let mut s = d.session().await;
    let started = Instant::now();
    s.join("turn-test", "r", "").await;
    // Within the handshake timeout (10 s).
    let error = s
        .wait_for(
            Duration::from_secs(10),
            |e| matches!(&e.kind, Some(Kind::RoomError(r)) if r.code == "turn_auth_failed"),
        )
        .await
        .expect("a room error naming the TURN credentials");
    println!(
        "wrong credentials told after {} ms: {:?}",
        started.elapsed().as_millis(),
        error.kind
    );
    let status = d.status().await;
    assert_eq!(status.turn.len(), 1);
    assert_eq!(status.turn[0].state, "auth_failed", "{:?}", status.turn);
    assert!(!format!("{status:?}").contains("not-the-password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_over_tls_carries_a_link_and_checks_the_certificate() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = certificates(dir.path());
    let (port, tls_port) = (free_port(), free_port());
    let _turn = Coturn::start_tls(
        port,
        (tls_port, &cert, &key),
        &["--lt-cred-mech", "--user", &format!("{USER}:{PASSWORD}")],
    );
    let url = format!("turns:127.0.0.1:{tls_port}");
    let ca = ca.to_string_lossy().into_owned();
    let auth = [
        "--ice-username",
        USER,
        "--ice-credential",
        PASSWORD,
        "--turn-tls-ca",
        &ca,
    ];
    let mut p = relay_pair(flags(&url, &auth), flags(&url, &auth)).await;
    assert_relayed_and_talking(&mut p, "TURN over TLS", 1 << 20).await;
    // Without the CA the server's certificate is refused, and status says the server fails.
    let relay: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let untrusting = Daemon::spawn(
        Vec::new(),
        Some(relay),
        flags(
            &url,
            &["--ice-username", USER, "--ice-credential", PASSWORD],
        ),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = untrusting.status().await;
        if s.turn.first().is_some_and(|t| t.state != "unknown") {
            assert_ne!(
                s.turn[0].state, "ok",
                "an untrusted certificate was accepted"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the TURN server was never asked");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
