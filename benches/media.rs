//! Media forwarding figures: the latency the daemons add to RTP (app → daemon → link → daemon →
//! app) against the engine alone, CPU per forwarded 2 Mbit/s track, and how much one daemon pair
//! forwards before loss begins (1 Mbit/s tracks up to a link's 16, then 16 tracks at higher
//! rates), with CPU per track. Loopback only.
//!
//! `cargo bench --bench media [-- --json]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use meshrtc::proto::{self, client_message::Body, event::Kind, server_message};
use meshrtc::transport::media::{self, Codec, RemoteEvent, TrackSpec};
use meshrtc::transport::{self, TransportEvent};
use rtc::shared::marshal::{Marshal as _, Unmarshal as _};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

const PACKET: usize = 1_200;

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// An RTP packet whose payload carries its send time (ns since `epoch`) after a VP8 descriptor.
fn stamped(seq: u16, epoch: Instant) -> rtc::rtp::Packet {
    let mut p = rtc::rtp::Packet::default();
    p.header.version = 2;
    p.header.sequence_number = seq;
    p.header.timestamp = u32::from(seq) * 3_000;
    p.header.marker = true;
    let mut payload = vec![0u8; PACKET];
    // A VP8 inter frame: the daemon keeps no keyframe backlog for it, so readers see live packets.
    payload[0] = 0x10;
    payload[9] = 0x01;
    payload[1..9].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
    payload[1] |= 0x01;
    p.payload = Bytes::from(payload);
    p
}

fn latency_ms(payload: &[u8], epoch: Instant) -> Option<f64> {
    let sent = u64::from_le_bytes(payload.get(1..9)?.try_into().ok()?);
    Some((epoch.elapsed().as_nanos() as u64).saturating_sub(sent) as f64 / 1e6)
}

/// Engine alone: two connections in this process, a renegotiated track, RTP one way.
async fn engine_latency(packets: u16) -> (f64, f64) {
    let (pa, pb, _a_rx, mut b_rx) = engine_pair().await;
    let spec = TrackSpec {
        codec: Codec::Vp8,
        stream_id: "s".into(),
        track_id: "t".into(),
    };
    let local = media::add_track(&pa, &spec).await.expect("track");
    let offer = media::renegotiation_offer(&pa).await.expect("offer");
    let answer = media::answer_renegotiation(&pb, offer, false)
        .await
        .expect("answer");
    transport::apply_answer(&pa, answer).await.expect("apply");
    let epoch = Instant::now();
    let writer = tokio::spawn(async move {
        for seq in 0..packets + 200 {
            let _ = local.write_rtp(stamped(seq, epoch)).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let remote = loop {
        if let Some(TransportEvent::Track(_, t)) = b_rx.recv().await {
            break t;
        }
    };
    let mut lat = Vec::new();
    while lat.len() < packets as usize {
        match tokio::time::timeout(Duration::from_secs(5), remote.next()).await {
            Ok(RemoteEvent::Rtp(p)) => lat.extend(latency_ms(&p.payload, epoch)),
            _ => break,
        }
    }
    writer.abort();
    (pct(&mut lat, 0.5), pct(&mut lat, 0.99))
}

/// Tracks an app published: their ids and names, and the sequence number their packets continue
/// from (the receiver's SRTP drops a repeated one as a replay).
struct Published {
    ids: Vec<u64>,
    names: Vec<String>,
    next_seq: u16,
}

/// A session on `a` with `tracks` VP8 tracks in `room`, negotiated with `b`'s session.
async fn daemon_tracks(
    a: &Daemon,
    b: &Daemon,
    room: &str,
    tracks: usize,
) -> (Session, Session, Published) {
    let idb = b.peer_id().await;
    let (mut sa, mut sb) = (a.session().await, b.session().await);
    let ra = sa.join("bench-media", room, "").await;
    sb.join("bench-media", room, "").await;
    assert!(sa.wait_join(&idb, Duration::from_secs(30)).await);
    let mut ids = Vec::new();
    let mut names = Vec::new();
    for i in 0..tracks {
        let name = format!("{room}-t{i}");
        let reply = sa
            .call(Body::AddTrack(proto::AddTrackRequest {
                room: ra,
                codec: "video/VP8".into(),
                stream_id: "s".into(),
                track_id: name.clone(),
                targets: vec![],
                meta_json: String::new(),
                ..Default::default()
            }))
            .await;
        ids.push(reply.track);
        names.push(name);
    }
    let is_ready = |e: &proto::Event| matches!(e.kind, Some(Kind::TrackReady(_)));
    let mut ready = sa.events.iter().filter(|e| is_ready(e)).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready < tracks && Instant::now() < deadline {
        if let Some(proto::ServerMessage {
            body:
                Some(server_message::Body::Event(proto::Event {
                    kind: Some(Kind::TrackReady(_)),
                    ..
                })),
        }) = tokio::time::timeout(Duration::from_secs(1), sa.next_message())
            .await
            .ok()
            .flatten()
        {
            ready += 1;
        }
    }
    if ready < tracks {
        // Reported, not fatal: the round's loss then shows it and the capacity count stops there.
        println!(
            "  {} of {tracks} tracks not negotiated within 30 s",
            tracks - ready
        );
    }
    // A remote track surfaces with its first packets: prime every track until b shows them all.
    let mut c = meshrtc::client::connect_with_token(&a.endpoint(), None)
        .await
        .expect("client");
    let (tx, rx) = mpsc::channel(64);
    let writer = tokio::spawn(async move { c.write_media(ReceiverStream::new(rx)).await });
    let is_add = |e: &proto::Event| matches!(e.kind, Some(Kind::TrackAdd(_)));
    let mut shown = sb.events.iter().filter(|e| is_add(e)).count();
    let epoch = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Each round a new sequence number: the receiver's SRTP drops a repeated one as a replay, so
    // a track whose first packet went before the receiver was ready would never surface.
    let mut seq = 0u16;
    while shown < tracks && Instant::now() < deadline {
        seq = seq.wrapping_add(1);
        for id in &ids {
            let rtp = stamped(seq, epoch).marshal().expect("marshal").to_vec();
            let _ = tx
                .send(proto::MediaWrite {
                    track: *id,
                    media: Some(proto::media_write::Media::Rtp(rtp.into())),
                })
                .await;
        }
        if let Ok(Some(proto::ServerMessage {
            body: Some(server_message::Body::Event(e)),
        })) = tokio::time::timeout(Duration::from_millis(20), sb.next_message()).await
            && is_add(&e)
        {
            shown += 1;
        }
    }
    drop(tx);
    let _ = writer.await;
    if shown < tracks {
        println!(
            "  {} of {tracks} tracks never surfaced at the receiver within 30 s",
            tracks - shown
        );
    }
    let next_seq = seq.wrapping_add(1);
    (
        sa,
        sb,
        Published {
            ids,
            names,
            next_seq,
        },
    )
}

/// Sends `pps` packets per second on each track for `secs`; returns (sent, received per track,
/// latencies, CPU seconds of both daemons).
async fn forward(
    a: &Daemon,
    b: &Daemon,
    room: &str,
    tracks: &Published,
    pps: u32,
    secs: u32,
) -> (u64, Vec<u64>, Vec<f64>, f64) {
    let (ids, names, first_seq) = (&tracks.ids[..], &tracks.names[..], tracks.next_seq);
    let epoch = Instant::now();
    let ida = a.peer_id().await;
    let mut readers = Vec::new();
    for name in names {
        let mut c = meshrtc::client::connect_with_token(&b.endpoint(), None)
            .await
            .expect("client");
        let req = proto::ReadTrackRequest {
            app: "bench-media".into(),
            room: room.into(),
            peer: ida.clone(),
            track_id: name.clone(),
            frames: false,
        };
        // The track surfaces on b once its first packets arrived: retry until it does.
        let mut stream = None;
        for _ in 0..100 {
            if let Ok(s) = c.read_track(req.clone()).await {
                stream = Some(s.into_inner());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        readers.push(stream);
    }
    let mut c = meshrtc::client::connect_with_token(&a.endpoint(), None)
        .await
        .expect("client");
    let (tx, rx) = mpsc::channel(1024);
    let writer = tokio::spawn(async move { c.write_media(ReceiverStream::new(rx)).await });
    let cpu0 = cpu_seconds(a.pid()) + cpu_seconds(b.pid());
    let t0 = Instant::now();
    let collect: Vec<_> = readers
        .into_iter()
        .map(|r| {
            tokio::spawn(async move {
                let (mut n, mut lat) = (0u64, Vec::new());
                let Some(mut r) = r else { return (0, lat) };
                while let Ok(Some(Ok(p))) =
                    tokio::time::timeout(Duration::from_secs(2), r.next()).await
                {
                    let mut buf = &p.rtp[..];
                    if let Ok(pkt) = rtc::rtp::Packet::unmarshal(&mut buf) {
                        n += 1;
                        lat.extend(latency_ms(&pkt.payload, epoch));
                    }
                }
                (n, lat)
            })
        })
        .collect();
    let total = pps * secs;
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / pps);
    for seq in 0..total {
        tick.tick().await;
        for id in ids {
            let rtp = stamped(first_seq.wrapping_add(seq as u16), epoch)
                .marshal()
                .expect("marshal")
                .to_vec();
            if tx
                .send(proto::MediaWrite {
                    track: *id,
                    media: Some(proto::media_write::Media::Rtp(rtp.into())),
                })
                .await
                .is_ok()
            {
                sent += 1;
            }
        }
    }
    let cpu = cpu_seconds(a.pid()) + cpu_seconds(b.pid()) - cpu0;
    let elapsed = t0.elapsed().as_secs_f64();
    drop(tx);
    let _ = writer.await;
    let mut received = Vec::new();
    let mut lat = Vec::new();
    for c in collect {
        let (n, l) = c.await.expect("reader");
        received.push(n);
        lat.extend(l);
    }
    (sent / ids.len() as u64, received, lat, cpu / elapsed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let (e50, e99) = engine_latency(500).await;
    let a = Daemon::with_embedded_relay().await;
    let b = Daemon::with_relays(&[a.relay_url()]).await;

    // Latency and CPU: one 2 Mbit/s track (about 208 packets of 1,200 bytes a second).
    let (_sa, _sb, tracks) = daemon_tracks(&a, &b, "latency", 1).await;
    let (sent, received, mut lat, cpu) = forward(&a, &b, "latency", &tracks, 208, 10).await;
    let (m50, m99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    println!(
        "media latency, app to app (ms):  p50 {m50:.2}  p99 {m99:.2}   engine alone: p50 {e50:.2}  p99 {e99:.2}"
    );
    println!(
        "2 Mbit/s track: {}/{sent} packets, CPU of both daemons {:.1} % of a core",
        received[0],
        cpu * 100.0
    );
    let cpu_2mbit = cpu * 100.0;

    // Capacity: 1 Mbit/s tracks (104 packets a second each), then 16 tracks (a link's most) at
    // higher rates, until the worst track loses more than 1 %.
    let mut capacity = (0usize, 0u32);
    let mut cpu_per_track = f64::NAN;
    let rounds = [
        (1usize, 1u32),
        (2, 1),
        (4, 1),
        (8, 1),
        (16, 1),
        (16, 2),
        (16, 4),
        (16, 8),
        (16, 16),
    ];
    for (round, (n, mbit)) in rounds.into_iter().enumerate() {
        let room = format!("capacity-{round}");
        // A fresh pair per round.
        let a = Daemon::with_embedded_relay().await;
        let b = Daemon::with_relays(&[a.relay_url()]).await;
        let (_sa, _sb, tracks) = daemon_tracks(&a, &b, &room, n).await;
        let (sent, received, _, cpu) = forward(&a, &b, &room, &tracks, 104 * mbit, 5).await;
        let worst = received.iter().copied().min().unwrap_or(0);
        let loss = 1.0 - worst as f64 / sent as f64;
        println!(
            "{n:>2} × {mbit:>2} Mbit/s tracks: worst track {worst}/{sent} packets ({:.2} % lost), CPU of both daemons {:.0} % ({:.2} % per track)",
            loss * 100.0,
            cpu * 100.0,
            cpu * 100.0 / n as f64
        );
        if loss > 0.01 {
            break;
        }
        capacity = (n, mbit);
        cpu_per_track = cpu * 100.0 / n as f64;
    }
    let (n, mbit) = capacity;
    println!(
        "forwarded without loss: {n} × {mbit} Mbit/s ({} Mbit/s){}",
        n as u32 * mbit,
        if capacity == (16, 16) {
            " (the most tried)"
        } else {
            ""
        }
    );
    if json {
        println!(
            "{}",
            serde_json::json!({"media_latency_p50_ms": m50, "media_latency_p99_ms": m99, "engine_media_latency_p50_ms": e50,
                "engine_media_latency_p99_ms": e99, "cpu_pct_per_2mbit_track": cpu_2mbit, "capacity_tracks": n, "capacity_mbit_per_track": mbit, "capacity_cpu_pct_per_track": cpu_per_track})
        );
    }
}
