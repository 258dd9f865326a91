//! Helpers for tests and benches that drive the `meshrtc` CLI, ffmpeg and ffprobe, and find a
//! link's UDP ports (to cut or degrade it with nftables).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meshrtc::proto;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use super::Daemon;

/// Runs ffmpeg with `args` (quiet, overwriting), failing the test on an error.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg (Debian package ffmpeg) must be installed");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `meshrtc` CLI process against `daemon` with `args`, its stdout as lines.
pub fn meshrtc_cli(
    daemon: &Daemon,
    args: &[&str],
) -> (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshrtc"))
        .args(["--daemon", &daemon.endpoint()])
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("meshrtc");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, lines)
}

/// The next `recorded` line of a recorder, within `secs`.
pub async fn next_recorded(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    secs: u64,
) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(secs), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("a recording finished within {secs} s"))
        .expect("read")
        .expect("a recorded line before the recorder exited");
    let v: Value = serde_json::from_str(&line).expect("json line");
    assert_eq!(v["event"], "recorded", "{line}");
    v
}

/// `a` publishes `clip` in `room` (`meshrtc publish --file`, once, to the first peer) while `b`
/// records the room as WebM into `dir`; the recorder's `recorded` line and the file it names.
pub async fn publish_and_record_webm(
    a: &Daemon,
    b: &Daemon,
    room: &str,
    clip: &Path,
    dir: &Path,
) -> (Value, std::path::PathBuf) {
    let dir = dir.to_str().expect("path");
    let (_recorder, mut lines) =
        meshrtc_cli(b, &["record", room, "--format", "webm", "--dir", dir]);
    let clip = clip.to_str().expect("path");
    let (mut publisher, _output) =
        meshrtc_cli(a, &["publish", room, "--wait-peers", "1", "--file", clip]);
    let status = publisher.wait().await.expect("meshrtc publish");
    assert!(status.success(), "publish failed");
    // The publisher's session ended with its stream: the recorder finalizes its one file.
    let v = next_recorded(&mut lines, 60).await;
    let path = std::path::PathBuf::from(v["path"].as_str().expect("path"));
    (v, path)
}

/// Codec name and decoded frames (or packets) of each stream of a file, by ffprobe.
pub fn probe_streams(path: &Path) -> Vec<(String, u64)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(out.status.success(), "ffprobe {}", path.display());
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    v["streams"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| {
                    let n = s["nb_read_frames"].as_str().and_then(|n| n.parse().ok());
                    (
                        s["codec_name"].as_str().unwrap_or("").to_owned(),
                        n.unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn candidate_port(c: &Option<proto::Candidate>) -> u16 {
    c.as_ref()
        .and_then(|c| c.address.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("a candidate with a port")
}

/// The loopback UDP port of `d`'s own end of the link to its one peer in `app`'s `room`. (Only
/// its own end: the remote end may be peer-reflexive, which has no statistics, when the peer's
/// checks arrived before its candidate. On loopback the peer's own end is this link's remote.)
pub async fn local_link_port(d: &Daemon, app: &str, room: &str) -> u16 {
    let mut c = meshrtc::client::connect(&d.endpoint())
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let peers = c
            .peers(proto::PeersRequest {
                app: app.into(),
                room: room.into(),
            })
            .await
            .expect("peers")
            .into_inner()
            .peers;
        if let Some(path) = peers.into_iter().next().and_then(|p| p.path) {
            return candidate_port(&path.local);
        }
        assert!(Instant::now() < deadline, "no selected path");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
