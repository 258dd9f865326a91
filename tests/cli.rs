//! The CLIs as a new user meets them: plain one- or two-line errors that say what to do, the
//! version with the wire it speaks, shell completions, and a second daemon that says which
//! option avoids the clash.

mod common;

use std::process::Command;

use common::*;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn with_no_daemon_running_the_cli_says_so_and_how_to_start_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nobody.sock");
    for args in [&["status"][..], &["peers", "room"], &["listen", "room"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_meshrtc"))
            .env("RUST_BACKTRACE", "1")
            .arg("--daemon")
            .arg(format!("unix:{}", socket.display()))
            .args(args)
            .output()
            .expect("run meshrtc");
        let err = stderr_of(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.lines().count() <= 2, "{args:?}: {err}");
        assert!(
            err.contains("not running") && err.contains("meshrtcd"),
            "{err}"
        );
        assert!(!err.to_lowercase().contains("backtrace"), "{err}");
    }
    // A socket file nobody serves (a crashed daemon's) is "not answering", also in two lines.
    std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let out = Command::new(env!("CARGO_BIN_EXE_meshrtc"))
        .arg("--daemon")
        .arg(format!("unix:{}", socket.display()))
        .arg("status")
        .output()
        .expect("run meshrtc");
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(err.lines().count() <= 2, "{err}");
    assert!(err.contains("meshrtcd"), "{err}");
}

#[test]
fn versions_name_the_wire_and_completions_are_generated() {
    for bin in [
        env!("CARGO_BIN_EXE_meshrtc"),
        env!("CARGO_BIN_EXE_meshrtcd"),
    ] {
        let out = Command::new(bin).arg("--version").output().expect("run");
        let v = String::from_utf8_lossy(&out.stdout);
        assert!(v.contains("Trystero 0.25.4"), "{v}");
    }
    for (shell, needle) in [
        ("bash", "_meshrtc"),
        ("zsh", "#compdef meshrtc"),
        ("fish", "complete -c meshrtc"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_meshrtc"))
            .args(["completions", shell])
            .output()
            .expect("run");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}: {}", stderr_of(&out));
        assert!(
            script.contains(needle) && script.contains("listen"),
            "{shell}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_names_the_option_that_avoids_the_clash() {
    let a = Daemon::with_embedded_relay().await;
    let other = tempfile::tempdir().expect("tempdir");
    let second = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_meshrtcd"))
            .env("RUST_BACKTRACE", "1")
            .arg("--data-dir")
            .arg(other.path())
            .args(["--ice-addr", "127.0.0.1", "--ice-server", "none"])
            .args(["--relay", &a.relay_url()])
            .args(extra)
            .output()
            .expect("run meshrtcd")
    };
    // Its WebSocket port is taken.
    let ws = format!("127.0.0.1:{}", a.ws_port);
    let out = second(&["--ws", &ws]);
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(err.contains("--ws"), "{err}");
    assert!(err.lines().count() <= 2, "{err}");
    // Its socket is served by a live daemon.
    let socket = format!("unix:{}", a.socket().display());
    let out = second(&["--ws", "none", "--grpc", &socket]);
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(err.contains("running daemon"), "{err}");
    // `status --watch` repeats until interrupted.
    let watch = Command::new(env!("CARGO_BIN_EXE_meshrtc"))
        .args(["--daemon", &a.endpoint(), "status", "--watch", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("watch");
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    unsafe { libc::kill(watch.id() as i32, libc::SIGINT) };
    let out = watch.wait_with_output().expect("watch output");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"peer_id\""))
        .count();
    assert!(lines >= 2, "status --watch printed {lines} times");
}

/// An example program of the project, as `cargo test` built it beside this test.
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>/deps");
    profile_dir.join("examples").join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_example_carries_a_line_between_two_daemons() {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
    let a = Daemon::with_embedded_relay().await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    let chat = |d: &Daemon| {
        tokio::process::Command::new(example("chat"))
            .args([d.endpoint().as_str(), "lobby"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("examples/chat is built by cargo test")
    };
    let mut listener = chat(&b);
    let mut speaker = chat(&a);
    let mut heard = BufReader::new(listener.stdout.take().expect("stdout")).lines();
    let mut speaker_out = BufReader::new(speaker.stdout.take().expect("stdout")).lines();
    let mut said = speaker.stdin.take().expect("stdin");
    let (a_id, b_id) = (a.peer_id().await, b.peer_id().await);
    let read = async {
        // The speaker says its line once it sees the listener's daemon join.
        while let Ok(Some(line)) = speaker_out.next_line().await {
            if line == format!("* {b_id} joined") {
                said.write_all(b"hello from a\n").await.expect("write");
                break;
            }
        }
        while let Ok(Some(line)) = heard.next_line().await {
            if line == format!("{a_id}: hello from a") {
                return true;
            }
        }
        false
    };
    let got = tokio::time::timeout(std::time::Duration::from_secs(30), read).await;
    assert_eq!(got, Ok(true), "the line did not arrive");
}
