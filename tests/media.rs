//! Media between two daemons with real components: files made by ffmpeg, `meshrtc publish` on
//! one daemon, `meshrtc record` on the other, the recordings checked with ffprobe.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

const SECONDS: u32 = 4;
const FPS: u32 = 25;

/// Frames (video) or packets (audio) ffprobe decodes, and the duration it reports.
fn probe(path: &Path) -> (u64, f64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let frames = v["streams"][0]["nb_read_frames"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    (frames, duration)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_files_are_recorded_on_the_other_daemon_and_decode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let video = dir.path().join("source.ivf");
    let audio = dir.path().join("source.ogg");
    let secs = SECONDS.to_string();
    let rate = FPS.to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc=size=320x240:rate={rate}"),
        "-t",
        &secs,
        "-c:v",
        "libvpx",
        "-g",
        &rate,
        "-b:v",
        "500k",
        video.to_str().expect("path"),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &secs,
        // ffmpeg's own page layout: about a second (50 packets) to a page.
        "-c:a",
        "libopus",
        audio.to_str().expect("path"),
    ]);
    let (src_frames, src_secs) = probe(&video);
    let (src_packets, _) = probe(&audio);
    assert!(
        src_frames >= u64::from(SECONDS * FPS) - 1,
        "source has {src_frames} frames"
    );
    published_and_recorded(
        dir.path(),
        &[
            "--video",
            video.to_str().expect("path"),
            "--audio",
            audio.to_str().expect("path"),
        ],
        (src_frames, src_secs, src_packets),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webm_file_is_published_as_one_stream_and_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = webm_clip(dir.path());
    let (src_frames, src_secs) = probe(&clip);
    // ffprobe counts the first stream; the audio's packet count is its duration in 20 ms.
    let src_packets = (src_secs * 50.0) as u64;
    published_and_recorded(
        dir.path(),
        &["--file", clip.to_str().expect("path")],
        (src_frames, src_secs, src_packets),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_av1_webm_is_published_and_recorded_as_av1_webm_that_decodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = dir.path().join("av1.webm");
    let (secs, rate) = (SECONDS.to_string(), FPS.to_string());
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc=size=320x240:rate={rate}"),
        "-t",
        &secs,
        "-c:v",
        "libaom-av1",
        "-cpu-used",
        "8",
        "-g",
        &rate,
        "-b:v",
        "300k",
        clip.to_str().expect("path"),
    ]);
    let a = Daemon::with_embedded_relay().await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    let out = dir.path().join("out");
    let (v, path) = publish_and_record_webm(&a, &b, "av1-room", &clip, &out).await;
    let streams = probe_streams(&path);
    println!("{v}\nffprobe: {streams:?}");
    // Frames from the first keyframe on: most of the clip, decoded by ffmpeg's AV1 decoder
    // from the sequence header the file's av1C record carries.
    let source = u64::from(SECONDS * FPS);
    assert!(
        streams
            .iter()
            .any(|(codec, n)| codec == "av1" && *n * 10 >= source * 8),
        "{streams:?} (source {source} frames)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_publish_cannot_send_is_refused_naming_what_it_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = dir.path().join("clip.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "1",
        "-c:a",
        "flac",
        clip.to_str().expect("path"),
    ]);
    let refusal = |clip: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_meshrtc"))
            .args(["--daemon", "unix:/nonexistent", "publish", "room", "--file"])
            .arg(clip)
            .output()
            .expect("meshrtc publish");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refusal(&clip);
    assert!(err.contains("A_FLAC") && err.contains("A_OPUS"), "{err}");
    // An MP4 as ffmpeg writes it by default (H.264 and AAC) is named, with the way to convert it.
    let mp4 = dir.path().join("clip.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10",
        "-t",
        "1",
        mp4.to_str().expect("path"),
    ]);
    let err = refusal(&mp4);
    assert!(
        err.contains("an MP4 file") && err.contains("libvpx"),
        "{err}"
    );
}

/// What people have: one WebM with VP8 video and Opus audio, as ffmpeg writes it, in `dir`.
fn webm_clip(dir: &Path) -> PathBuf {
    let clip = dir.join("clip.webm");
    let (secs, rate) = (SECONDS.to_string(), FPS.to_string());
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc=size=320x240:rate={rate}"),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &secs,
        "-c:v",
        "libvpx",
        "-g",
        &rate,
        "-b:v",
        "500k",
        "-c:a",
        "libopus",
        clip.to_str().expect("path"),
    ]);
    clip
}

/// Publishes with `args` from one daemon while another records the room; both recordings
/// decode with at least 95 % of the source's video frames and audio packets.
async fn published_and_recorded(dir: &Path, args: &[&str], source: (u64, f64, u64)) {
    let (src_frames, src_secs, src_packets) = source;

    let a = Daemon::with_embedded_relay().await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    let out_dir = dir.join("recorded");
    let mut recorder = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshrtc"))
        .args([
            "--daemon",
            &b.endpoint(),
            "record",
            "media-room",
            "--dir",
            out_dir.to_str().expect("path"),
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("meshrtc record");
    let mut lines = BufReader::new(recorder.stdout.take().expect("stdout")).lines();

    // A data session on the publishing side keeps talking during the media (liveness of data).
    let mut chat_a = a.session().await;
    let room_a = chat_a.join("meshrtc", "media-room", "").await;
    let mut chat_b = b.session().await;
    chat_b.join("meshrtc", "media-room", "").await;
    assert!(
        chat_a
            .wait_join(&b.peer_id().await, Duration::from_secs(30))
            .await
    );

    let publish = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshrtc"))
        .args([
            "--daemon",
            &a.endpoint(),
            "publish",
            "media-room",
            "--wait-peers",
            "1",
        ])
        .args(args)
        .output();
    let chat = async {
        for i in 0..5 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            chat_a
                .send(room_a, "chat", text(&format!("during media {i}")), &[])
                .await;
        }
    };
    let (publish, ()) = tokio::join!(publish, chat);
    let publish = publish.expect("meshrtc publish");
    assert!(
        publish.status.success(),
        "publish failed: {}",
        String::from_utf8_lossy(&publish.stderr)
    );
    for i in 0..5 {
        let m = chat_b
            .wait_message(Duration::from_secs(10))
            .await
            .expect("a data message during media");
        assert!(format!("{:?}", m.payload).contains(&format!("during media {i}")));
    }

    // The publisher's session ended with its tracks: the recorder finalizes both files.
    let mut recorded = Vec::new();
    while recorded.len() < 2 {
        let next = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
        if next.is_err() {
            let files: Vec<_> = std::fs::read_dir(&out_dir)
                .map(|d| {
                    d.flatten()
                        .map(|e| (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default();
            eprintln!(
                "recordings so far: {files:?}\na drops: {:?}\nb drops: {:?}",
                a.status().await.drops,
                b.status().await.drops
            );
        }
        let line = next
            .expect("a recording finished within 30 s")
            .expect("read")
            .expect("recorder exited early");
        let v: Value = serde_json::from_str(&line).expect("json line");
        assert_eq!(v["event"], "recorded", "{line}");
        recorded.push(v);
    }
    let _ = recorder.start_kill();
    let video_line = recorded
        .iter()
        .find(|v| v["kind"] == "video")
        .expect("a video recording");
    let audio_line = recorded
        .iter()
        .find(|v| v["kind"] == "audio")
        .expect("an audio recording");
    assert_eq!(video_line["codec"], "video/VP8");
    assert_eq!(audio_line["codec"], "audio/opus");

    let (frames, _) = probe(Path::new(video_line["path"].as_str().expect("path")));
    let duration_ms = video_line["duration_ms"].as_u64().unwrap_or(0) as f64;
    println!("video: {frames} of {src_frames} frames decoded, {duration_ms} ms of {src_secs:.2} s");
    assert!(
        frames as f64 >= 0.95 * src_frames as f64,
        "only {frames} of {src_frames} frames decode"
    );
    assert!(
        duration_ms / 1000.0 >= 0.95 * (src_secs - 1.0 / f64::from(FPS)),
        "video lasts {duration_ms} ms"
    );

    let (packets, audio_secs) = probe(Path::new(audio_line["path"].as_str().expect("path")));
    println!("audio: {packets} of {src_packets} packets decoded, {audio_secs:.2} s");
    assert!(
        packets as f64 >= 0.95 * src_packets as f64,
        "only {packets} of {src_packets} audio packets decode"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_daemons_publishing_at_once_both_receive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let video = dir.path().join("clip.ivf");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=25",
        "-t",
        "3",
        "-c:v",
        "libvpx",
        "-g",
        "25",
        video.to_str().expect("path"),
    ]);
    let a = Daemon::with_embedded_relay().await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    let mut recorders = Vec::new();
    for (d, name) in [(&a, "a"), (&b, "b")] {
        let out = dir.path().join(name);
        let mut r = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshrtc"))
            .args([
                "--daemon",
                &d.endpoint(),
                "record",
                "glare",
                "--dir",
                out.to_str().expect("path"),
            ])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("meshrtc record");
        let lines = BufReader::new(r.stdout.take().expect("stdout")).lines();
        recorders.push((r, lines));
    }
    // Both add a track at the same moment: both offer, one yields (perfect negotiation).
    let publish = |d: &Daemon| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_meshrtc"))
            .args([
                "--daemon",
                &d.endpoint(),
                "publish",
                "glare",
                "--video",
                video.to_str().expect("path"),
                "--wait-peers",
                "1",
            ])
            .output()
    };
    let (pa, pb) = tokio::join!(publish(&a), publish(&b));
    for p in [pa.expect("publish a"), pb.expect("publish b")] {
        assert!(
            p.status.success(),
            "publish failed: {}",
            String::from_utf8_lossy(&p.stderr)
        );
    }
    for (i, (_, lines)) in recorders.iter_mut().enumerate() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("a recording within 30 s")
            .expect("read")
            .expect("recorder exited");
        let v: Value = serde_json::from_str(&line).expect("json");
        let (frames, _) = probe(Path::new(v["path"].as_str().expect("path")));
        println!("daemon {i} recorded {frames} frames from the other");
        assert!(
            frames >= 70,
            "daemon {i}: only {frames} of 75 frames decode"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_over_a_tracks_bitrate_limit_are_refused_counted_and_hurt_nothing_else() {
    use meshrtc::proto::{self, client_message::Body};
    use rtc::shared::marshal::Marshal as _;
    use tokio_stream::wrappers::ReceiverStream;
    let a = Daemon::with_embedded_relay().await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    let ra = sa.join("app", "limits", "").await;
    sb.join("app", "limits", "").await;
    assert!(
        sa.wait_join(&b.peer_id().await, Duration::from_secs(30))
            .await
    );
    let add = |max_kbps| {
        Body::AddTrack(proto::AddTrackRequest {
            room: ra,
            codec: "video/VP8".into(),
            stream_id: "s".into(),
            track_id: format!("t{max_kbps}"),
            max_kbps,
            ..Default::default()
        })
    };
    let refused = sa.call(add(1_000_000)).await;
    assert_eq!(
        refused.error.map(|e| e.code).as_deref(),
        Some("invalid_argument"),
        "a limit above the maximum is refused"
    );
    // 80 kbit/s: 10 kB a second, and at most a second's worth at once.
    let track = sa.call(add(80)).await.track;
    let mut client = meshrtc::client::connect_with_token(&a.endpoint(), None)
        .await
        .expect("client");
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let writer = tokio::spawn(async move { client.write_media(ReceiverStream::new(rx)).await });
    for seq in 0..100u16 {
        let mut packet = rtc::rtp::Packet::default();
        packet.header.version = 2;
        packet.header.payload_type = 96;
        packet.header.sequence_number = seq;
        packet.header.timestamp = u32::from(seq) * 3_000;
        packet.payload = vec![0u8; 1_000].into();
        let rtp = packet.marshal().expect("marshal").to_vec();
        tx.send(proto::MediaWrite {
            track,
            media: Some(proto::media_write::Media::Rtp(rtp.into())),
        })
        .await
        .expect("write");
    }
    drop(tx);
    let summary = writer
        .await
        .expect("writer")
        .expect("write_media")
        .into_inner();
    println!(
        "bitrate limit: {} packets through, {} refused",
        summary.packets, summary.refused
    );
    assert!(summary.packets <= 20, "{summary:?}");
    assert!(summary.refused >= 80, "{summary:?}");
    let drops = a.status().await.drops;
    assert_eq!(
        drops.get("media_bitrate_limit").copied(),
        Some(summary.refused)
    );
    sa.send(ra, "chat", text("still here"), &[]).await;
    assert!(
        sb.wait_message(Duration::from_secs(10)).await.is_some(),
        "the room goes on"
    );
}

/// Adds `n` VP8 tracks named `{prefix}{i}` to room `ra` of `sa` at once, primes them with packets
/// and returns their ids and the ones `sb` never saw surface within 30 s.
async fn add_and_surface(
    a: &Daemon,
    sa: &mut Session,
    sb: &mut Session,
    ra: u32,
    prefix: &str,
    n: usize,
) -> (Vec<u64>, Vec<String>) {
    use meshrtc::proto::{self, client_message::Body, event::Kind, server_message};
    use rtc::shared::marshal::Marshal as _;
    use tokio_stream::wrappers::ReceiverStream;
    let mut ids = Vec::new();
    for i in 0..n {
        let reply = sa
            .call(Body::AddTrack(proto::AddTrackRequest {
                room: ra,
                codec: "video/VP8".into(),
                stream_id: "s".into(),
                track_id: format!("{prefix}{i}"),
                ..Default::default()
            }))
            .await;
        ids.push(reply.track);
    }
    let mut client = meshrtc::client::connect_with_token(&a.endpoint(), None)
        .await
        .expect("client");
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let writer = tokio::spawn(async move { client.write_media(ReceiverStream::new(rx)).await });
    let mut shown = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seq = 0u16;
    while shown.len() < n && std::time::Instant::now() < deadline {
        for id in &ids {
            let mut p = rtc::rtp::Packet::default();
            p.header.version = 2;
            p.header.sequence_number = seq;
            p.header.timestamp = u32::from(seq) * 3_000;
            p.payload = vec![0x10, 0, 0, 0].into();
            let rtp = p.marshal().expect("marshal").to_vec();
            let _ = tx
                .send(proto::MediaWrite {
                    track: *id,
                    media: Some(proto::media_write::Media::Rtp(rtp.into())),
                })
                .await;
        }
        seq = seq.wrapping_add(1);
        while let Ok(Some(msg)) =
            tokio::time::timeout(Duration::from_millis(20), sb.next_message()).await
        {
            if let Some(server_message::Body::Event(proto::Event {
                kind: Some(Kind::TrackAdd(t)),
                ..
            })) = msg.body
            {
                shown.insert(t.track_id);
            }
        }
    }
    drop(tx);
    let _ = writer.await;
    let missing = (0..n)
        .map(|i| format!("{prefix}{i}"))
        .filter(|t| !shown.contains(t))
        .collect();
    (ids, missing)
}

/// Two daemons whose sessions joined `room` and see each other; the first session's handle.
async fn linked_pair(room: &str) -> (Daemon, Daemon, Session, Session, u32) {
    let a = Daemon::with_embedded_relay().await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    let ra = sa.join("app", room, "").await;
    sb.join("app", room, "").await;
    assert!(
        sa.wait_join(&b.peer_id().await, Duration::from_secs(30))
            .await
    );
    (a, b, sa, sb, ra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tracks_added_at_once_on_a_link_that_just_came_up_all_surface() {
    let (a, b, mut sa, mut sb, ra) = linked_pair("fresh").await;
    let (_, missing) = add_and_surface(&a, &mut sa, &mut sb, ra, "t", 16).await;
    assert!(
        missing.is_empty(),
        "never surfaced: {missing:?}\n{}",
        b.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tracks_added_at_once_after_others_were_removed_all_surface() {
    use meshrtc::proto::client_message::Body;
    let (a, b, mut sa, mut sb, ra) = linked_pair("many").await;
    // Tracks that come and go first leave media sections behind on the link.
    let (first, missing) = add_and_surface(&a, &mut sa, &mut sb, ra, "old", 4).await;
    assert!(missing.is_empty(), "never surfaced: {missing:?}");
    for id in first {
        sa.call(Body::RemoveTrack(meshrtc::proto::RemoveTrackRequest {
            track: id,
        }))
        .await;
    }
    let (_, missing) = add_and_surface(&a, &mut sa, &mut sb, ra, "t", 16).await;
    assert!(
        missing.is_empty(),
        "never surfaced: {missing:?}\n{}",
        b.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_recorded_as_one_webm_with_video_and_audio() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = webm_clip(dir.path());
    let a = Daemon::with_embedded_relay().await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    let out = dir.path().join("recorded");
    let (v, path) = publish_and_record_webm(&a, &b, "webm-room", &clip, &out).await;
    assert_eq!(v["format"], "webm", "{v}");
    assert_eq!(path.extension().and_then(|e| e.to_str()), Some("webm"));
    let streams = probe_streams(&path);
    println!("{v}\nffprobe: {streams:?}");
    let video = streams.iter().find(|s| s.0 == "vp8").expect("a VP8 stream");
    let audio = streams
        .iter()
        .find(|s| s.0 == "opus")
        .expect("an Opus stream");
    let want = u64::from(SECONDS * FPS);
    assert!(
        video.1 as f64 >= 0.95 * want as f64,
        "{} of {want} frames decode",
        video.1
    );
    assert!(
        audio.1 as f64 >= 0.95 * f64::from(SECONDS * 50),
        "{} audio packets decode",
        audio.1
    );
    let (_, secs) = probe(&path);
    assert!(secs >= 0.9 * f64::from(SECONDS), "the file lasts {secs} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_recorder_finishes_its_webm_before_exiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = webm_clip(dir.path());
    let a = Daemon::with_embedded_relay().await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;
    let out_dir = dir.path().join("recorded");
    let out = out_dir.to_str().expect("path");
    let (recorder, mut lines) = meshrtc_cli(
        &b,
        &["record", "cut-room", "--format", "webm", "--dir", out],
    );
    // A publisher that never ends on its own.
    let clip = clip.to_str().expect("path");
    let _publisher = meshrtc_cli(&a, &["publish", "cut-room", "--loop", "--file", clip]);
    // Wait until the file has grown past its header, then interrupt the recorder.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let size: u64 = std::fs::read_dir(&out_dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        if size > 100_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing recorded in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid = recorder.id().expect("recorder pid");
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill");
    let v = next_recorded(&mut lines, 15).await;
    let path = PathBuf::from(v["path"].as_str().expect("path"));
    let (_, secs) = probe(&path);
    let streams = probe_streams(&path);
    println!("{v}\nffprobe: {streams:?}, {secs} s");
    assert!(secs > 0.5, "the finished file says it lasts {secs} s");
    assert!(
        streams.iter().any(|s| s.0 == "vp8" && s.1 > 10),
        "{streams:?}"
    );
    assert!(
        streams.iter().any(|s| s.0 == "opus" && s.1 > 25),
        "{streams:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_publisher_publishes_again_after_its_daemon_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let video = dir.path().join("loop.ivf");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=25",
        "-t",
        "2",
        "-c:v",
        "libvpx",
        "-g",
        "25",
        video.to_str().expect("path"),
    ]);
    let b = Daemon::with_embedded_relay().await;
    let mut a = Daemon::with_relays(&[b.relay_url()]).await;
    let ida = a.peer_id().await;
    let out_dir = dir.path().join("recorded");
    let (_recorder, mut lines) = meshrtc_cli(
        &b,
        &[
            "record",
            "again-room",
            "--dir",
            out_dir.to_str().expect("path"),
        ],
    );
    let video = video.to_str().expect("path");
    let (mut publisher, _output) =
        meshrtc_cli(&a, &["publish", "again-room", "--loop", "--video", video]);
    // Let the first session send a while, then take its daemon away and bring it back.
    tokio::time::sleep(Duration::from_secs(4)).await;
    a.kill9();
    let before = next_recorded(&mut lines, 60).await;
    a.start().await;
    // The publisher is still running, has found its daemon again and sends anew: its second
    // track ends (and its recording is finished) when the publisher stops.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        publisher.try_wait().expect("publisher").is_none(),
        "the looping publisher gave up when its daemon went away"
    );
    let _ = publisher.start_kill();
    let after = next_recorded(&mut lines, 60).await;
    println!("before the restart {before}\nafter {after}");
    for v in [&before, &after] {
        assert_eq!(v["peer"], ida.as_str(), "{v}");
        assert!(v["frames"].as_u64().unwrap_or(0) >= 25, "{v}");
    }
}
