//! Test harness: real daemons (the built `meshrtcd`) on loopback, driven over gRPC.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod in_process;
mod media;
#[allow(unused_imports)]
pub use in_process::InProcess;
#[allow(unused_imports)]
pub use media::*;

use meshrtc::proto::{self, client_message::Body, event::Kind, server_message};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

/// A free loopback port, below the kernel's ephemeral range (32768+): a port the kernel handed
/// out once can be handed out again to an outgoing connection of another test before the daemon
/// we picked it for binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    if NEXT.load(Ordering::Relaxed) == u32::MAX {
        let seed = std::process::id().wrapping_mul(7_919)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
        let _ = NEXT.compare_exchange(u32::MAX, seed % SPAN, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        let tcp = TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {}", LOW + SPAN)
}

/// A running `meshrtcd`.
pub struct Daemon {
    pub dir: PathBuf,
    pub relays: Vec<String>,
    pub embedded: Option<SocketAddr>,
    pub extra: Vec<String>,
    pub ws_port: u16,
    /// Network namespace it runs in (`ip netns exec`), if not the test's own.
    pub netns: Option<String>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl Daemon {
    /// A daemon that serves the embedded relay at a fresh port and uses it.
    pub async fn with_embedded_relay() -> Daemon {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        Self::spawn(Vec::new(), Some(addr), Vec::new()).await
    }

    /// A daemon using these relays.
    pub async fn with_relays(relays: &[String]) -> Daemon {
        Self::spawn(relays.to_vec(), None, Vec::new()).await
    }

    /// A daemon with extra flags.
    pub async fn spawn(
        relays: Vec<String>,
        embedded: Option<SocketAddr>,
        extra: Vec<String>,
    ) -> Daemon {
        Self::launch(None, relays, embedded, extra).await
    }

    /// A daemon in network namespace `netns`, with these relays and flags (its own
    /// `--ice-addr` and `--ice-server` among them).
    pub async fn in_netns(
        netns: &str,
        relays: Vec<String>,
        embedded: Option<SocketAddr>,
        extra: Vec<String>,
    ) -> Daemon {
        Self::launch(Some(netns.to_owned()), relays, embedded, extra).await
    }

    async fn launch(
        netns: Option<String>,
        relays: Vec<String>,
        embedded: Option<SocketAddr>,
        extra: Vec<String>,
    ) -> Daemon {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut d = Daemon {
            dir: tmp.path().to_path_buf(),
            relays,
            embedded,
            extra,
            ws_port: free_port(),
            netns,
            child: None,
            _tmp: Some(tmp),
        };
        d.start().await;
        d
    }

    /// URL of this daemon's embedded relay.
    pub fn relay_url(&self) -> String {
        format!("ws://{}", self.embedded.expect("embedded relay"))
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("meshrtcd.sock")
    }

    pub fn endpoint(&self) -> String {
        format!("unix:{}", self.socket().display())
    }

    /// Starts (or restarts) the process and waits until the API answers.
    pub async fn start(&mut self) {
        let bin = daemon_binary();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.arg("--data-dir").arg(&self.dir);
        // Loopback and no public STUN, unless the test gives its own.
        if !self.extra.iter().any(|a| a == "--ice-addr") {
            cmd.args(["--ice-addr", "127.0.0.1"]);
        }
        if !self.extra.iter().any(|a| a == "--ice-server") {
            cmd.args(["--ice-server", "none"]);
        }
        cmd.args(["--ws", &format!("127.0.0.1:{}", self.ws_port)]);
        for r in &self.relays {
            cmd.args(["--relay", r]);
        }
        if let Some(a) = self.embedded {
            cmd.args(["--embedded-relay", &a.to_string()]);
        }
        cmd.args(&self.extra);
        let log = std::fs::File::create(self.dir.join("daemon.log")).expect("log file");
        cmd.stdout(Stdio::null()).stderr(log).env(
            "RUST_LOG",
            std::env::var("MESHRTC_TEST_DAEMON_LOG")
                .unwrap_or_else(|_| "info,webrtc=warn,rtc=warn".into()),
        );
        self.child = Some(cmd.spawn().expect("spawn meshrtcd"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = meshrtc::client::connect(&self.endpoint()).await
                && c.status(proto::StatusRequest {}).await.is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not come up; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).expect("running")
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; returns the exit status and how long it took.
    pub fn terminate(&mut self) -> (Option<i32>, Duration) {
        let mut c = self.child.take().expect("running");
        let start = Instant::now();
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = start + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return (status.code(), start.elapsed());
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return (None, start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub async fn status(&self) -> proto::StatusReply {
        let mut c = meshrtc::client::connect(&self.endpoint())
            .await
            .expect("connect");
        c.status(proto::StatusRequest {})
            .await
            .expect("status")
            .into_inner()
    }

    pub async fn peer_id(&self) -> String {
        self.status().await.peer_id
    }

    pub async fn session(&self) -> Session {
        Session::open(&self.endpoint()).await
    }
}

/// A coturn `turnserver` (Debian's `coturn`), killed on drop.
pub struct Coturn {
    child: Child,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Coturn {
    /// Starts `turnserver` listening on `ip:port` (UDP and TCP) with `auth` flags (e.g.
    /// `--lt-cred-mech --user u:p`, or `--use-auth-secret --static-auth-secret s`), relaying on
    /// `ip`; in `netns` if given. Waits until it listens.
    pub fn start(netns: Option<&str>, ip: &str, port: u16, auth: &[&str]) -> Coturn {
        Self::launch(netns, ip, port, auth, None)
    }

    /// The same on loopback, also serving TLS on `tls.0` with the certificate and key files
    /// `tls.1` and `tls.2`.
    pub fn start_tls(port: u16, tls: (u16, &Path, &Path), auth: &[&str]) -> Coturn {
        Self::launch(None, "127.0.0.1", port, auth, Some(tls))
    }

    fn launch(
        netns: Option<&str>,
        ip: &str,
        port: u16,
        auth: &[&str],
        tls: Option<(u16, &Path, &Path)>,
    ) -> Coturn {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = tmp.path().join("turnserver.log");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "turnserver"]);
                c
            }
            None => Command::new("turnserver"),
        };
        cmd.args([
            "--listening-ip",
            ip,
            "--listening-port",
            &port.to_string(),
            "--relay-ip",
            ip,
            "--realm",
            "meshrtc.test",
            "--no-cli",
            "--no-dtls",
            "--allow-loopback-peers",
            "--no-software-attribute",
            "--log-file",
        ])
        .arg(&log)
        .args(["--simple-log", "--pidfile"])
        .arg(tmp.path().join("turnserver.pid"))
        .args(["--userdb"])
        .arg(tmp.path().join("turndb"))
        .args(auth)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        match tls {
            Some((tls_port, cert, key)) => {
                cmd.args(["--tls-listening-port", &tls_port.to_string(), "--cert"])
                    .arg(cert)
                    .arg("--pkey")
                    .arg(key);
            }
            None => {
                cmd.arg("--no-tls");
            }
        }
        let child = cmd
            .spawn()
            .expect("turnserver (Debian coturn) is installed by scripts/test.sh");
        let c = Coturn {
            child,
            log,
            _tmp: tmp,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let check = |ns: Option<&str>| {
            let mut ss = match ns {
                Some(ns) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", ns, "ss", "-ltn"]);
                    c
                }
                None => {
                    let mut c = Command::new("ss");
                    c.arg("-ltn");
                    c
                }
            };
            ss.output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("{ip}:{port}")))
                .unwrap_or(false)
        };
        while !check(netns) {
            assert!(
                Instant::now() < deadline,
                "turnserver did not listen:\n{}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "--- links of the daemon in {}:\n{}",
                self.dir.display(),
                self.link_report()
            );
            let log = self.log();
            let tail = log.len().saturating_sub(60_000);
            let tail = (tail..log.len())
                .find(|&i| log.is_char_boundary(i))
                .unwrap_or(log.len());
            eprintln!(
                "--- log of the daemon in {} (last {} of {} bytes):\n{}",
                self.dir.display(),
                log.len() - tail,
                log.len(),
                &log[tail..]
            );
        }
        self.kill9();
    }
}

impl Daemon {
    /// What the daemon's links know, room by room: each peer's link layers (ICE, DTLS, SCTP,
    /// channel), the bytes waiting in SCTP and the writer's queue, and what crossed the channel;
    /// with the drop counters. Printed beside the log when a test fails, so a stalled transfer
    /// can be diagnosed from a CI log. Bounded to 5 s (the daemon may be the thing that hangs).
    pub fn link_report(&self) -> String {
        let endpoint = self.endpoint();
        let report = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), link_report_of(endpoint)).await
            })
            .ok()
            .flatten()
        })
        .join();
        report
            .ok()
            .flatten()
            .unwrap_or_else(|| "(the daemon did not answer within 5 s)".into())
    }
}

async fn link_report_of(endpoint: String) -> Option<String> {
    use std::fmt::Write as _;
    let mut c = meshrtc::client::connect(&endpoint).await.ok()?;
    let status = c.status(proto::StatusRequest {}).await.ok()?.into_inner();
    let mut out = format!(
        "{} links, {} pending dials, drops {:?}\n",
        status.links, status.pending_dials, status.drops
    );
    for r in &status.rooms {
        let peers = c
            .peers(proto::PeersRequest {
                app: r.app.clone(),
                room: r.room.clone(),
            })
            .await
            .ok()?
            .into_inner()
            .peers;
        if peers.is_empty() {
            let _ = writeln!(out, "{}/{}: no joined peer", r.app, r.room);
        }
        for p in peers {
            let _ = write!(out, "{}/{} {}: rtt {:.1} ms", r.app, r.room, p.id, p.rtt_ms);
            match p.health {
                Some(h) => {
                    let _ = writeln!(out, ", {h}");
                }
                None => out.push_str(", no open data channel\n"),
            }
        }
    }
    Some(out)
}

impl Drop for Session {
    /// When a test fails, says how far each chunked message had arrived (its last progress).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut last = std::collections::BTreeMap::new();
        for e in &self.events {
            if let Some(Kind::Progress(p)) = &e.kind {
                last.insert((p.from.clone(), p.channel.clone()), p.fraction);
            }
        }
        for ((from, channel), fraction) in last {
            eprintln!(
                "--- a session had received {:.1} % of a message on {channel} from {from}",
                fraction * 100.0
            );
        }
    }
}

/// A gRPC session with helpers to wait for events.
pub struct Session {
    tx: mpsc::Sender<proto::ClientMessage>,
    rx: tonic::Streaming<proto::ServerMessage>,
    next_id: u64,
    pub events: Vec<proto::Event>,
}

impl Session {
    pub async fn open(endpoint: &str) -> Session {
        let mut client = meshrtc::client::connect(endpoint).await.expect("connect");
        let (tx, rx) = mpsc::channel(64);
        let rx = client
            .session(ReceiverStream::new(rx))
            .await
            .expect("session")
            .into_inner();
        Session {
            tx,
            rx,
            next_id: 1,
            events: Vec::new(),
        }
    }

    /// Sends a request and waits for its reply (events seen meanwhile are kept).
    /// Splits off the request sender, for pipelined sends (benchmarks).
    pub fn sender(&self) -> mpsc::Sender<proto::ClientMessage> {
        self.tx.clone()
    }

    /// The next raw server message.
    pub async fn next_message(&mut self) -> Option<proto::ServerMessage> {
        self.rx.next().await.and_then(Result::ok)
    }

    pub async fn call(&mut self, body: Body) -> proto::Reply {
        let id = self.next_id;
        self.next_id += 1;
        self.tx
            .send(proto::ClientMessage {
                request_id: id,
                body: Some(body),
            })
            .await
            .expect("send request");
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(60), self.rx.next())
                .await
                .expect("reply in time")
                .expect("stream open")
                .expect("ok");
            match msg.body {
                Some(server_message::Body::Reply(r)) if r.request_id == id => return r,
                Some(server_message::Body::Event(e)) => self.events.push(e),
                _ => {}
            }
        }
    }

    pub async fn join(&mut self, app: &str, room: &str, password: &str) -> u32 {
        self.join_with(app, room, password, false).await
    }

    /// Joins, optionally refusing peers that cannot encrypt end to end.
    pub async fn join_with(
        &mut self,
        app: &str,
        room: &str,
        password: &str,
        require_e2e: bool,
    ) -> u32 {
        self.join_request(proto::JoinRequest {
            app: app.into(),
            room: room.into(),
            password: password.into(),
            require_e2e,
            ..Default::default()
        })
        .await
    }

    /// Joins a cells room with about `cell_size` peers per cell (0: automatic).
    #[allow(dead_code)]
    pub async fn join_cells(
        &mut self,
        app: &str,
        room: &str,
        password: &str,
        cell_size: u32,
    ) -> u32 {
        self.join_request(proto::JoinRequest {
            app: app.into(),
            room: room.into(),
            password: password.into(),
            cells: Some(proto::Cells {
                enabled: true,
                cell_size,
                link_budget: 0,
            }),
            ..Default::default()
        })
        .await
    }

    pub async fn join_request(&mut self, join: proto::JoinRequest) -> u32 {
        let r = self.call(Body::Join(join)).await;
        assert!(r.error.is_none(), "join failed: {:?}", r.error);
        r.room
    }

    pub async fn leave(&mut self, room: u32) {
        let r = self.call(Body::Leave(proto::LeaveRequest { room })).await;
        assert!(r.error.is_none(), "leave failed: {:?}", r.error);
    }

    pub async fn send(
        &mut self,
        room: u32,
        channel: &str,
        payload: proto::Payload,
        targets: &[String],
    ) -> proto::Reply {
        self.call(Body::Send(proto::SendRequest {
            room,
            channel: channel.into(),
            payload: Some(payload),
            targets: targets.to_vec(),
        }))
        .await
    }

    /// Waits until an event matching `pred` arrives (or was already seen); returns it.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        pred: impl Fn(&proto::Event) -> bool,
    ) -> Option<proto::Event> {
        if let Some(i) = self.events.iter().position(&pred) {
            return Some(self.events.remove(i));
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // A dead session must not pass for "nothing arrived": negative checks rely on it.
            let msg = match tokio::time::timeout_at(deadline, self.rx.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => panic!("session stream failed while waiting: {e}"),
                Ok(None) => panic!("session stream ended while waiting"),
                Err(_) => return None,
            };
            if let Some(server_message::Body::Event(e)) = msg.body {
                if pred(&e) {
                    return Some(e);
                }
                self.events.push(e);
            }
        }
    }

    /// Proves the daemon still serves this session and the session still reads: a request's
    /// reply comes back on the same stream, behind every event queued before it. Negative
    /// checks ("X never arrived") call this so a dead session cannot pass them.
    pub async fn assert_alive(&mut self, room: u32) {
        let r = self
            .call(Body::Peers(proto::SessionPeersRequest { room }))
            .await;
        assert!(r.error.is_none(), "session no longer served: {:?}", r.error);
    }

    pub async fn wait_join(&mut self, peer: &str, within: Duration) -> bool {
        self.wait_for(
            within,
            |e| matches!(&e.kind, Some(Kind::PeerJoin(p)) if p.peer == peer),
        )
        .await
        .is_some()
    }

    pub async fn wait_leave(&mut self, peer: &str, within: Duration) -> bool {
        self.wait_for(
            within,
            |e| matches!(&e.kind, Some(Kind::PeerLeave(p)) if p.peer == peer),
        )
        .await
        .is_some()
    }

    /// Waits for the next channel message.
    pub async fn wait_message(&mut self, within: Duration) -> Option<proto::Message> {
        match self
            .wait_for(within, |e| matches!(&e.kind, Some(Kind::Message(_))))
            .await?
            .kind
        {
            Some(Kind::Message(m)) => Some(m),
            _ => None,
        }
    }

    /// Waits until `peer` shows in room `room`'s peers as keeping `channel` (from then on this
    /// node signs its broadcasts there for it).
    #[allow(dead_code)]
    pub async fn wait_keeper(&mut self, room: u32, peer: &str, channel: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let r = self
                .call(Body::Peers(proto::SessionPeersRequest { room }))
                .await;
            if r.peers
                .iter()
                .any(|p| p.id == peer && p.keeps.iter().any(|k| k == channel))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{peer} never showed as a keeper of {channel}: {:?}",
                r.peers
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `meshrtc history ROOM --json` of a room on a daemon.
#[allow(dead_code)]
pub fn history_json(d: &Daemon, app: &str, room: &str, password: &str) -> serde_json::Value {
    let out = cli(&[
        "--daemon",
        &d.endpoint(),
        "history",
        room,
        "--app",
        app,
        "--password",
        password,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("history JSON")
}

/// A replay of everything the node (or a keeper) holds.
#[allow(dead_code)]
pub fn since_all() -> Option<proto::Since> {
    Some(proto::Since {
        from: Some(proto::since::From::All(true)),
    })
}

pub fn text(s: &str) -> proto::Payload {
    proto::Payload {
        kind: Some(proto::payload::Kind::Text(s.into())),
        meta_json: String::new(),
    }
}

pub fn json(s: &str) -> proto::Payload {
    proto::Payload {
        kind: Some(proto::payload::Kind::Json(s.into())),
        meta_json: String::new(),
    }
}

pub fn binary(b: Vec<u8>, meta: &str) -> proto::Payload {
    proto::Payload {
        kind: Some(proto::payload::Kind::Binary(b.into())),
        meta_json: meta.into(),
    }
}

pub fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_meshrtc"))
        .args(args)
        .output()
        .expect("run meshrtc")
}

pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// An in-process relay on a fresh loopback port that lets a flood through (no rate limit to
/// speak of), and its URL.
pub async fn flood_relay() -> (nostr_relay_builder::LocalRelay, String) {
    use nostr_relay_builder::prelude::{LocalRelay, RateLimit, RelayBuilder};
    let port = free_port();
    let relay = LocalRelay::new(RelayBuilder::default().port(port).rate_limit(RateLimit {
        max_reqs: 64,
        notes_per_minute: 1_000_000,
    }));
    relay.run().await.expect("relay");
    (relay, format!("ws://127.0.0.1:{port}"))
}

/// `n` fake announces for a room, each signed by a fresh key, half with peer ids below any
/// real one and half above (so the daemon would be the one to dial half of them).
pub fn fake_announces(app: &str, room: &str, n: u32) -> Vec<nostr_sdk::Event> {
    use nostr_sdk::{EventBuilder, Keys, Kind, Tag, TagKind};
    let topic = meshrtc::wire::topic::root_topic(app, room);
    let kind = Kind::Custom(meshrtc::wire::topic::topic_kind(&topic));
    (0..n)
        .map(|i| {
            // Ten '0's or 'z's first: a real id (20 random symbols of [0-9A-Za-z]) sorts
            // between them unless it starts with ten of the same. One '0' or 'z' was not
            // enough: a daemon whose id began with 'z' and a letter (1 in 62) sorted above
            // every fake, so it dialed none of them and the flood test saw no capped dials.
            let id = if i % 2 == 0 {
                format!("0000000000{i:010}")
            } else {
                format!("zzzzzzzzzz{i:010}")
            };
            EventBuilder::new(kind, format!(r#"{{"peerId":"{id}"}}"#))
                .tag(Tag::custom(TagKind::x(), [topic.clone()]))
                .sign_with_keys(&Keys::generate())
                .expect("sign")
        })
        .collect()
}

/// Pushes events to an in-process relay's subscribers in bursts of 500 every 50 ms; returns
/// the relay so the caller decides when it stops.
pub async fn flood(
    relay: nostr_relay_builder::LocalRelay,
    events: Vec<nostr_sdk::Event>,
) -> nostr_relay_builder::LocalRelay {
    for chunk in events.chunks(500) {
        for e in chunk {
            relay.notify_event(e.clone());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay
}

/// Joining timeout generous enough for a loaded 2-core CI machine.
pub const JOIN: Duration = Duration::from_secs(20);

/// Two webrtc 0.21 connections in this process with their data channels open: the engine
/// alone, as the daemon configures it.
pub struct EngineLink {
    pub a: meshrtc::transport::Connection,
    pub b: meshrtc::transport::Connection,
    /// a's and b's ends of the data channel.
    pub ca: meshrtc::transport::Channel,
    pub cb: meshrtc::transport::Channel,
    pub a_rx: mpsc::UnboundedReceiver<meshrtc::transport::TransportEvent>,
    pub b_rx: mpsc::UnboundedReceiver<meshrtc::transport::TransportEvent>,
}

/// The engine's configuration on loopback: ICE bound to 127.0.0.1, no servers.
pub fn loopback_engine_config() -> meshrtc::transport::TransportConfig {
    meshrtc::transport::TransportConfig {
        ice_addr: Some("127.0.0.1".parse().expect("ip")),
        ice: Default::default(),
        resolve_mdns: false,
        media_repair: true,
    }
}

/// Connects two engine connections with `cfg`, trading candidates in-process; `None` if their
/// data channels are not both open `within`.
pub async fn engine_link(
    cfg: meshrtc::transport::TransportConfig,
    within: Duration,
) -> Option<EngineLink> {
    use meshrtc::transport::{self, Transport, TransportEvent};
    let (atx, mut a_rx) = mpsc::unbounded_channel();
    let (btx, mut b_rx) = mpsc::unbounded_channel();
    let (ta, tb) = (Transport::new(cfg.clone(), atx), Transport::new(cfg, btx));
    let (pa, offer) = ta.offer(meshrtc::ids::ConnId(1)).await.expect("offer");
    let (pb, answer) = tb
        .answer(meshrtc::ids::ConnId(2), offer)
        .await
        .expect("answer");
    transport::apply_answer(&pa, answer).await.expect("apply");
    let (mut ca, mut cb) = (None, None);
    let deadline = tokio::time::Instant::now() + within;
    while ca.is_none() || cb.is_none() {
        tokio::select! {
            Some(ev) = a_rx.recv() => match ev {
                TransportEvent::Candidate(_, c) => { let _ = transport::add_candidate(&pb, &c).await; }
                TransportEvent::Open(_, ch, _) => ca = Some(ch),
                _ => {}
            },
            Some(ev) = b_rx.recv() => match ev {
                TransportEvent::Candidate(_, c) => { let _ = transport::add_candidate(&pa, &c).await; }
                TransportEvent::Open(_, ch, _) => cb = Some(ch),
                _ => {}
            },
            _ = tokio::time::sleep_until(deadline) => return None,
        }
    }
    Some(EngineLink {
        a: pa,
        b: pb,
        ca: ca?,
        cb: cb?,
        a_rx,
        b_rx,
    })
}

/// Two engine connections on loopback whose data channel is open, with their event receivers.
pub async fn engine_pair() -> (
    meshrtc::transport::Connection,
    meshrtc::transport::Connection,
    mpsc::UnboundedReceiver<meshrtc::transport::TransportEvent>,
    mpsc::UnboundedReceiver<meshrtc::transport::TransportEvent>,
) {
    let l = engine_link(loopback_engine_config(), Duration::from_secs(20))
        .await
        .expect("the data channel never opened");
    (l.a, l.b, l.a_rx, l.b_rx)
}

/// Resident memory of a process, MiB (benchmarks).
pub fn rss_mib(pid: i32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// CPU a process uses over the next `d`, in percent of one core (benchmarks). Read to the
/// nanosecond from the scheduler's per-thread figures: the clock ticks of `cpu_seconds` move
/// an idle figure over 10 s in steps of 0.1 %.
pub async fn cpu_percent_over(pid: i32, d: Duration) -> f64 {
    let (before, start) = (cpu_seconds_exact(pid), std::time::Instant::now());
    tokio::time::sleep(d).await;
    (cpu_seconds_exact(pid) - before) / start.elapsed().as_secs_f64() * 100.0
}

/// CPU seconds the process's live threads have run (`/proc/<pid>/task/*/schedstat`), falling
/// back to `cpu_seconds` where the kernel keeps no scheduler statistics.
pub fn cpu_seconds_exact(pid: i32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let mut ns = 0u64;
    let mut read_any = false;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        if let Some(run) = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            ns += run;
            read_any = true;
        }
    }
    if read_any {
        ns as f64 / 1e9
    } else {
        cpu_seconds(pid)
    }
}

/// CPU seconds a process used so far, user and system (benchmarks).
pub fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// A CA and a server certificate for 127.0.0.1 signed by it (openssl), in `dir`.
pub fn certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=meshrtc test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// Loads an nftables `script`, in network namespace `ns` or in the caller's own.
pub fn nft_in(ns: Option<&str>, script: &str) {
    use std::io::Write as _;
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft"]);
            c
        }
        None => Command::new("nft"),
    };
    let mut child = cmd
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft (Debian nftables) is installed by scripts/test.sh");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("nft script");
    let out = child.wait_with_output().expect("nft");
    assert!(
        out.status.success(),
        "nft in {ns:?}: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The daemon the tests and benchmarks start: this build's, or the one `MESHRTC_BENCH_DAEMON`
/// names (a benchmark comparing two builds of the daemon in one run).
pub fn daemon_binary() -> PathBuf {
    std::env::var_os("MESHRTC_BENCH_DAEMON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_meshrtcd")))
}
