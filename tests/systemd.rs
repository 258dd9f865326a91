//! The daemon under systemd (`Type=notify`), with the test playing systemd's part: a datagram
//! socket as `NOTIFY_SOCKET` and a watchdog interval in `WATCHDOG_USEC`.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;

/// The next notification within `within`, as text.
fn next(sock: &UnixDatagram, within: Duration) -> Option<String> {
    sock.set_read_timeout(Some(within)).ok()?;
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn the_daemon_says_ready_feeds_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).expect("bind");
    let data = dir.path().join("state");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_meshrtcd"))
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "400000")
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--ice-addr",
            "127.0.0.1",
            "--ice-server",
            "none",
            "--ws",
            "none",
        ])
        .args(["--embedded-relay", &format!("127.0.0.1:{}", free_port())])
        .stderr(Stdio::null())
        .spawn()
        .expect("meshrtcd");
    let started = Instant::now();
    let mut seen = Vec::new();
    let ready = loop {
        let Some(m) = next(&sock, Duration::from_secs(20)) else {
            break None;
        };
        seen.push(m.clone());
        if m.contains("READY=1") {
            break Some(m);
        }
    };
    let ready = ready.unwrap_or_else(|| panic!("never ready: {seen:?}"));
    println!(
        "ready after {:.2} s: {ready:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(ready.contains("STATUS=relays 1/1 connected"), "{ready}");
    // The watchdog is fed about twice per interval while the node answers.
    let window = Instant::now();
    let mut pings = 0;
    while window.elapsed() < Duration::from_secs(2) {
        if next(&sock, Duration::from_secs(1)).is_some_and(|m| m.contains("WATCHDOG=1")) {
            pings += 1;
        }
    }
    assert!(pings >= 4, "{pings} watchdog pings in 2 s (interval 0.4 s)");
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let mut stopping = false;
    while let Some(m) = next(&sock, Duration::from_secs(5)) {
        if m.contains("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1 at shutdown");
    let status = daemon.wait().expect("exit");
    assert!(status.success(), "{status:?}");
}
