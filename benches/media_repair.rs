//! Loss repair on a forwarded video track: the link between two daemons loses a share of its UDP
//! packets both ways (an nftables rule on the link's two loopback ports); `meshrtc publish`
//! sends a VP8 clip made by ffmpeg on one daemon, `meshrtc record --format webm` records it on
//! the other, and ffprobe counts the video frames that decode. Each run does it twice on fresh
//! daemons: with each hop's NACK repair (the default) and with `--no-media-repair` on both.
//!
//! `cargo bench --profile dev --bench media_repair [-- --loss 2 --runs 3]` (as root: nftables).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const APP: &str = "meshrtc";
const ROOM: &str = "repair";
const SECONDS: u32 = 20;
const FPS: u32 = 30;

/// Drops `per_mille` of the UDP packets between two loopback ports, both ways, while it lives.
struct Lossy {
    table: String,
}

impl Lossy {
    fn new(a: u16, b: u16, per_mille: u32) -> Lossy {
        let table = format!("meshrtc_lossy_{}", std::process::id());
        nft_in(
            None,
            &format!(
                "table inet {table} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    \
                 udp sport {a} udp dport {b} numgen random mod 1000 < {per_mille} drop\n    \
                 udp sport {b} udp dport {a} numgen random mod 1000 < {per_mille} drop\n  }}\n}}\n"
            ),
        );
        Lossy { table }
    }
}

impl Drop for Lossy {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .status();
    }
}

/// Video frames of `clip` that decode after crossing a lossy link, with or without repair.
async fn decoded_frames(clip: &str, per_mille: u32, repair: bool) -> u64 {
    let extra: Vec<String> = if repair {
        Vec::new()
    } else {
        vec!["--no-media-repair".into()]
    };
    let embedded = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let a = Daemon::spawn(Vec::new(), Some(embedded), extra.clone()).await;
    let b = Daemon::spawn(vec![a.relay_url()], None, extra).await;
    // The link first, then the loss, then the media over that link (links are per app and peer).
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    sa.join(APP, ROOM, "").await;
    sb.join(APP, ROOM, "").await;
    assert!(
        sa.wait_join(&b.peer_id().await, Duration::from_secs(30))
            .await,
        "the daemons did not link"
    );
    let (local, remote) = (
        local_link_port(&a, APP, ROOM).await,
        local_link_port(&b, APP, ROOM).await,
    );
    let _loss = Lossy::new(local, remote, per_mille);
    let out = tempfile::tempdir().expect("tempdir");
    let (_, file) =
        publish_and_record_webm(&a, &b, ROOM, std::path::Path::new(clip), out.path()).await;
    probe_streams(&file)
        .into_iter()
        .find(|(codec, _)| codec == "vp8")
        .map_or(0, |(_, n)| n)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: f64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let loss_pct = arg("--loss", 2.0);
    let runs = arg("--runs", 3.0) as usize;
    let per_mille = (loss_pct * 10.0).round() as u32;
    let tmp = tempfile::tempdir().expect("tempdir");
    let clip = tmp.path().join("clip.webm");
    let clip = clip.to_str().expect("path");
    // About 1.5 Mbit/s: five or six packets a frame, as a camera's stream has.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=640x480:rate={FPS}"),
        "-t",
        &SECONDS.to_string(),
        "-c:v",
        "libvpx",
        "-b:v",
        "1500k",
        "-g",
        "60",
        clip,
    ]);
    let sent = u64::from(SECONDS * FPS);
    println!(
        "meshrtc media repair: one VP8 track ({sent} frames, 1.5 Mbit/s) across a link losing {loss_pct} % of its UDP packets both ways, 127.0.0.1"
    );
    for run in 1..=runs {
        let with = decoded_frames(clip, per_mille, true).await;
        let without = decoded_frames(clip, per_mille, false).await;
        println!(
            "  run {run}: frames decoded with repair {with}/{sent} ({:.1} %), without {without}/{sent} ({:.1} %)",
            100.0 * with as f64 / sent as f64,
            100.0 * without as f64 / sent as f64
        );
    }
}
