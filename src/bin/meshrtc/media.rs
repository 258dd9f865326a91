//! `meshrtc publish` and `meshrtc record`: media files into a room, a room's tracks into files.
//!
//! Publishing reads IVF (VP8, VP9, AV1) and Ogg (Opus) and writes their frames as samples,
//! paced in real time; the daemon packetizes them. Recording reads each remote track's RTP
//! and writes IVF or Ogg, finalized when the track or its peer ends.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use meshrtc::proto::{self, client_message::Body, event::Kind, server_message};

use rtc::media::io::ivf_reader::{IVFFileHeader, IVFReader};
use rtc::media::io::ivf_writer::IVFWriter;
use rtc::media::io::ogg_writer::OggWriter;
use rtc::shared::marshal::Unmarshal as _;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use meshrtc::client::Session;

use super::{RoomArgs, client, print_line};

/// The stream id every published track shares (one stream: audio and video play together).
const STREAM_ID: &str = "meshrtc-publish";

/// One media file to publish.
#[derive(Clone)]
struct Source {
    path: PathBuf,
    codec: &'static str,
    track_id: &'static str,
    container: Container,
}

/// Where a source's frames come from.
#[derive(Debug, Clone, Copy)]
enum Container {
    /// An IVF file (one video track).
    Ivf,
    /// An Ogg Opus file.
    OggOpus,
    /// One track of a WebM or Matroska file.
    Matroska(u64),
}

fn ivf_codec(path: &Path) -> anyhow::Result<&'static str> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (_, header) = IVFReader::new(BufReader::new(file)).context("not an IVF file")?;
    match &header.four_cc {
        b"VP80" => Ok("video/VP8"),
        b"VP90" => Ok("video/VP9"),
        b"AV01" => Ok("video/AV1"),
        other => bail!(
            "{}: IVF with codec {:?}; VP8, VP9 or AV1 expected",
            path.display(),
            String::from_utf8_lossy(other)
        ),
    }
}

/// The files to publish, checked: IVF video and/or Ogg Opus audio, or one WebM/Matroska file
/// (its video and audio tracks).
fn sources(
    video: Option<PathBuf>,
    audio: Option<PathBuf>,
    file: Option<PathBuf>,
) -> anyhow::Result<Vec<Source>> {
    let mut sources = Vec::new();
    if let Some(path) = file {
        for t in crate::matroska::tracks(&path)? {
            sources.push(Source {
                path: path.clone(),
                codec: t.codec,
                track_id: t.kind,
                container: Container::Matroska(t.number),
            });
        }
        return Ok(sources);
    }
    if let Some(path) = video {
        sources.push(Source {
            codec: ivf_codec(&path)?,
            path,
            track_id: "video",
            container: Container::Ivf,
        });
    }
    if let Some(path) = audio {
        crate::ogg_opus::check(&path).context("--audio takes an Ogg Opus file")?;
        sources.push(Source {
            path,
            codec: "audio/opus",
            track_id: "audio",
            container: Container::OggOpus,
        });
    }
    if sources.is_empty() {
        bail!("give --file FILE.webm, or --video FILE.ivf and/or --audio FILE.ogg");
    }
    Ok(sources)
}

/// Publishes media files into a room until they have been sent (once, or forever with
/// `looping`).
#[allow(clippy::too_many_arguments)]
pub async fn publish(
    daemon: &str,
    room: RoomArgs,
    video: Option<PathBuf>,
    audio: Option<PathBuf>,
    file: Option<PathBuf>,
    looping: bool,
    to: Vec<String>,
    wait_peers: Option<usize>,
    timeout: u64,
) -> anyhow::Result<()> {
    let sources = sources(video, audio, file)?;
    let mut backoff = Duration::from_millis(250);
    loop {
        let result = publish_once(
            daemon,
            &room,
            sources.clone(),
            looping,
            &to,
            wait_peers,
            timeout,
        )
        .await;
        // A looping publisher outlives its daemon: when the daemon goes away it waits for it,
        // joins again and publishes its tracks again.
        let Err(e) = result else { return Ok(()) };
        if !looping || !(daemon_gone(&e) || client(daemon).await.is_err()) {
            return Err(e);
        }
        eprintln!("meshrtc publish: lost the daemon ({e:#}); publishing again once it is back");
        print_line(&json!({"event": "daemon_lost"}))?;
        while client(daemon).await.is_err() {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        backoff = Duration::from_millis(250);
    }
}

/// Whether an error means the daemon went away (its connection failed or closed), not that it
/// refused something.
fn daemon_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        if let Some(s) = c.downcast_ref::<tonic::Status>() {
            return matches!(
                s.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
            );
        }
        let m = c.to_string();
        c.downcast_ref::<tonic::transport::Error>().is_some()
            || m.contains("closed")
            || m.contains("ended")
            || m.contains("broken pipe")
    })
}

/// One publishing session: join, wait for peers and negotiation, send the files.
async fn publish_once(
    daemon: &str,
    room: &RoomArgs,
    sources: Vec<Source>,
    looping: bool,
    to: &[String],
    wait_peers: Option<usize>,
    timeout: u64,
) -> anyhow::Result<()> {
    let mut s = super::session::open(daemon).await?;
    let (reply, early) = super::session::join_plain(&mut s, room).await?;
    let mut joined = super::JoinedPeers::from_events(&early);
    let need = wait_peers.unwrap_or(1).max(to.len());
    let deadline = Instant::now() + Duration::from_secs(timeout);
    while !joined.has(need, to) {
        let msg = tokio::time::timeout_at(deadline.into(), s.next())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "timed out after {timeout} s waiting for {need} peer(s) in room {}",
                    room.room
                )
            })??;
        if let Some(server_message::Body::Event(e)) = msg.body {
            joined.track(&e);
        }
    }
    let mut tracks = Vec::new();
    // A track can be ready on a peer before the reply for the next track arrives.
    let mut ready: HashMap<u64, usize> = HashMap::new();
    for src in &sources {
        let id = s
            .request(Body::AddTrack(proto::AddTrackRequest {
                room: reply.room,
                codec: src.codec.to_owned(),
                stream_id: STREAM_ID.to_owned(),
                track_id: src.track_id.to_owned(),
                targets: to.to_vec(),
                meta_json:
                    json!({"file": src.path.file_name().map(|n| n.to_string_lossy().into_owned())})
                        .to_string(),
                max_kbps: 0,
            }))
            .await?;
        let reply = s
            .reply(id, |e| {
                joined.track(&e);
                count_ready(&mut ready, e);
            })
            .await?;
        tracks.push(reply.track);
    }
    // Media written before a link has negotiated a track is lost: wait until every track is
    // ready on every peer it goes to.
    wait_ready(&mut s, ready, &tracks, joined.count(), deadline, timeout).await?;
    let mut c = client(daemon).await?;
    let (tx, rx) = mpsc::channel(256);
    let writer = tokio::spawn(async move { c.write_media(ReceiverStream::new(rx)).await });
    let mut senders = Vec::new();
    for (src, track) in sources.into_iter().zip(tracks) {
        let tx = tx.clone();
        senders.push(tokio::spawn(async move {
            send_file(src, track, looping, tx).await
        }));
    }
    drop(tx);
    let mut frames = 0u64;
    for sender in senders {
        frames += sender.await??;
    }
    let summary = writer.await?.context("writing media")?.into_inner();
    print_line(
        &json!({"event": "published", "frames": frames, "packets": summary.packets, "refused": summary.refused}),
    )?;
    drop(s);
    Ok(())
}

/// Counts a `track_ready` event toward its track.
fn count_ready(ready: &mut HashMap<u64, usize>, event: proto::Event) {
    if let Some(Kind::TrackReady(m)) = event.kind {
        *ready.entry(m.local_track).or_default() += 1;
    }
}

/// Waits until every track is negotiated with `peers` peers (`track_ready` events), counting
/// on from `ready`.
async fn wait_ready(
    s: &mut Session,
    mut ready: HashMap<u64, usize>,
    tracks: &[u64],
    peers: usize,
    deadline: Instant,
    timeout: u64,
) -> anyhow::Result<()> {
    while tracks
        .iter()
        .any(|t| ready.get(t).copied().unwrap_or(0) < peers)
    {
        let msg = tokio::time::timeout_at(deadline.into(), s.next())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "timed out after {timeout} s waiting for the tracks to be negotiated"
                )
            })??;
        if let Some(server_message::Body::Event(e)) = msg.body {
            count_ready(&mut ready, e);
        }
    }
    Ok(())
}

/// Sends one file's frames as samples, paced by their durations; returns the frames sent.
async fn send_file(
    src: Source,
    track: u64,
    looping: bool,
    tx: mpsc::Sender<proto::MediaWrite>,
) -> anyhow::Result<u64> {
    let mut sent = 0;
    loop {
        let (first, frames) = match src.container {
            Container::Ivf => (Duration::ZERO, read_ivf(&src.path)?),
            Container::OggOpus => (Duration::ZERO, crate::ogg_opus::read(&src.path)?),
            Container::Matroska(track) => {
                let f = crate::matroska::frames(&src.path, track)?;
                (f.start, f.frames)
            }
        };
        let start = tokio::time::Instant::now();
        // A file's tracks keep their offsets from its start, so audio and video stay together.
        let mut at = first;
        for (payload, duration) in frames {
            tokio::time::sleep_until(start + at).await;
            let write = proto::MediaWrite {
                track,
                media: Some(proto::media_write::Media::Sample(proto::Sample {
                    payload: payload.into(),
                    duration_us: duration.as_micros() as u64,
                })),
            };
            if tx.send(write).await.is_err() {
                bail!("the daemon closed the media stream");
            }
            sent += 1;
            at += duration;
        }
        if !looping {
            return Ok(sent);
        }
    }
}

/// An IVF file's frames with their durations.
fn read_ivf(path: &Path) -> anyhow::Result<Vec<(Vec<u8>, Duration)>> {
    let (mut reader, header) = IVFReader::new(BufReader::new(File::open(path)?))?;
    let tick = Duration::from_secs_f64(
        f64::from(header.timebase_numerator.max(1)) / f64::from(header.timebase_denominator.max(1)),
    );
    let mut frames: Vec<(Vec<u8>, u64)> = Vec::new();
    while let Ok((frame, h)) = reader.parse_next_frame() {
        frames.push((frame.to_vec(), h.timestamp));
    }
    let mut out = Vec::with_capacity(frames.len());
    for i in 0..frames.len() {
        let ticks = frames
            .get(i + 1)
            .map_or(1, |n| n.1.saturating_sub(frames[i].1).max(1));
        out.push((std::mem::take(&mut frames[i].0), tick * ticks as u32));
    }
    Ok(out)
}

/// What one recording wrote.
struct Recorded {
    path: PathBuf,
    peer: String,
    kind: String,
    codec: String,
    units: u64,
    duration: Duration,
}

/// What `record` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecordFormat {
    /// One file per track: IVF for video, Ogg for Opus.
    Tracks,
    /// One WebM per stream, its video and audio together.
    Webm,
}

/// Records a room's remote media into `dir` until interrupted.
pub async fn record(
    daemon: &str,
    room: RoomArgs,
    dir: PathBuf,
    format: RecordFormat,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if format == RecordFormat::Webm {
        return record_webm(daemon, room, dir).await;
    }
    let mut s = super::session::open(daemon).await?;
    super::session::join_plain(&mut s, &room).await?;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<anyhow::Result<Recorded>>();
    let mut stops: HashMap<(String, String), oneshot::Sender<()>> = HashMap::new();
    let print = |done: anyhow::Result<Recorded>| match done {
        Ok(r) => print_line(&json!({
            "event": "recorded", "path": r.path, "peer": r.peer, "kind": r.kind, "codec": r.codec,
            if r.kind == "video" { "frames" } else { "packets" }: r.units,
            "duration_ms": r.duration.as_millis() as u64,
        })),
        Err(e) => {
            eprintln!("meshrtc record: {e:#}");
            Ok(())
        }
    };
    let mut running = 0usize;
    // One listener for the whole loop, so an interrupt between two turns is not missed.
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = &mut interrupted => {
                // Interrupted: every file is finished, and said, before exiting.
                for (_, stop) in stops.drain() { let _ = stop.send(()); }
                return finish(&mut done_rx, running, print).await;
            }
            msg = s.next() => {
                let Some(server_message::Body::Event(e)) = msg?.body else { continue };
                match e.kind {
                    Some(Kind::TrackAdd(m)) => {
                        let (stop_tx, stop_rx) = oneshot::channel();
                        stops.insert((m.peer.clone(), m.track_id.clone()), stop_tx);
                        let job = RecordJob { daemon: daemon.to_owned(), app: room.app.clone(), room: room.room.clone(), dir: dir.clone(), track: m };
                        let done = done_tx.clone();
                        running += 1;
                        tokio::spawn(async move { let _ = done.send(job.run(stop_rx).await); });
                    }
                    Some(Kind::TrackRemove(m)) => {
                        if let Some(stop) = stops.remove(&(m.peer, m.track_id)) { let _ = stop.send(()); }
                    }
                    Some(Kind::PeerLeave(p)) => {
                        let gone: Vec<_> = stops.keys().filter(|(peer, _)| *peer == p.peer).cloned().collect();
                        for k in gone { if let Some(stop) = stops.remove(&k) { let _ = stop.send(()); } }
                    }
                    _ => {}
                }
            }
            Some(done) = done_rx.recv() => {
                running -= 1;
                print(done)?;
            }
        }
    }
}

/// Waits (at most 10 s) for the `running` recordings told to stop, printing each.
async fn finish<T>(
    done_rx: &mut mpsc::UnboundedReceiver<anyhow::Result<T>>,
    mut running: usize,
    print: impl Fn(anyhow::Result<T>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while running > 0 {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some(done)) => {
                running -= 1;
                print(done)?;
            }
            _ => break,
        }
    }
    Ok(())
}

/// A file name part from a peer, track or stream id.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Records every remote stream of a room as one WebM each, until interrupted.
async fn record_webm(daemon: &str, room: RoomArgs, dir: PathBuf) -> anyhow::Result<()> {
    use crate::record_webm::{StreamInput, StreamRecorded, Streams, record_stream};
    let mut s = super::session::open(daemon).await?;
    super::session::join_plain(&mut s, &room).await?;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<anyhow::Result<StreamRecorded>>();
    let mut streams: Streams = HashMap::new();
    // Which stream each (peer, track) belongs to, for `track:remove`.
    let mut track_stream: HashMap<(String, String), String> = HashMap::new();
    let print = |done: anyhow::Result<StreamRecorded>| match done {
        Ok(r) => print_line(&json!({
            "event": "recorded", "format": "webm", "path": r.path, "peer": r.peer,
            "stream": r.stream, "frames": r.frames, "packets": r.packets,
            "duration_ms": r.duration.as_millis() as u64,
        })),
        Err(e) => {
            eprintln!("meshrtc record: {e:#}");
            Ok(())
        }
    };
    let mut running = 0usize;
    // One listener for the whole loop, so an interrupt between two turns is not missed.
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = &mut interrupted => {
                for (_, tx) in streams.drain() { let _ = tx.send(StreamInput::Stop); }
                return finish(&mut done_rx, running, print).await;
            }
            msg = s.next() => {
                let Some(server_message::Body::Event(e)) = msg?.body else { continue };
                match e.kind {
                    Some(Kind::TrackAdd(m)) => {
                        let key = (m.peer.clone(), m.stream_id.clone());
                        track_stream.insert((m.peer.clone(), m.track_id.clone()), m.stream_id.clone());
                        if let Some(tx) = streams.get(&key) && tx.send(StreamInput::Track(m.clone())).is_ok() {
                            continue;
                        }
                        let (tx, rx) = mpsc::unbounded_channel();
                        streams.insert(key, tx);
                        let path = dir.join(format!("{}-{}.webm", safe(&m.peer), safe(&m.stream_id)));
                        let job = record_stream(daemon.to_owned(), room.app.clone(), room.room.clone(), path, m, rx);
                        let done = done_tx.clone();
                        running += 1;
                        tokio::spawn(async move { let _ = done.send(job.await); });
                    }
                    Some(Kind::TrackRemove(m)) => {
                        if let Some(stream) = track_stream.remove(&(m.peer.clone(), m.track_id.clone()))
                            && let Some(tx) = streams.get(&(m.peer, stream)) {
                            let _ = tx.send(StreamInput::Removed(m.track_id));
                        }
                    }
                    Some(Kind::PeerLeave(p)) => {
                        streams.retain(|(peer, _), tx| {
                            if *peer == p.peer { let _ = tx.send(StreamInput::Stop); false } else { true }
                        });
                        track_stream.retain(|(peer, _), _| *peer != p.peer);
                    }
                    _ => {}
                }
            }
            Some(done) = done_rx.recv() => {
                running -= 1;
                if let Ok(r) = &done {
                    streams.remove(&(r.peer.clone(), r.stream.clone()));
                }
                print(done)?;
            }
        }
    }
}

/// An IVF or Ogg writer for a track's codec.
fn open_writer(codec: &str, file: File) -> anyhow::Result<Box<dyn rtc::media::io::Writer + Send>> {
    let four_cc = match codec {
        "audio/opus" => return Ok(Box::new(OggWriter::new(file, 48_000, 2)?)),
        "video/VP8" => *b"VP80",
        "video/VP9" => *b"VP90",
        "video/AV1" => *b"AV01",
        other => bail!("recording {other} is not supported"),
    };
    let header = IVFFileHeader {
        signature: *b"DKIF",
        version: 0,
        header_size: 32,
        four_cc,
        width: 640,
        height: 480,
        timebase_denominator: 90_000,
        timebase_numerator: 1,
        num_frames: 0,
        unused: 0,
    };
    Ok(Box::new(IVFWriter::new(file, &header)?))
}

/// One remote track being written to a file.
struct RecordJob {
    daemon: String,
    app: String,
    room: String,
    dir: PathBuf,
    track: proto::MediaEvent,
}

impl RecordJob {
    async fn run(self, mut stop: oneshot::Receiver<()>) -> anyhow::Result<Recorded> {
        let t = &self.track;
        let ext = if t.codec == "audio/opus" {
            "ogg"
        } else {
            "ivf"
        };
        let path = self
            .dir
            .join(format!("{}-{}.{ext}", safe(&t.peer), safe(&t.track_id)));
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer = open_writer(&t.codec, file)?;
        let mut c = client(&self.daemon).await?;
        let request = proto::ReadTrackRequest {
            app: self.app.clone(),
            room: self.room.clone(),
            peer: t.peer.clone(),
            track_id: t.track_id.clone(),
            frames: false,
        };
        let mut packets = c.read_track(request).await?.into_inner();
        let (mut units, mut first, mut last) = (0u64, None, 0u32);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                p = packets.message() => {
                    let Some(p) = p? else { break };
                    let mut buf = &p.rtp[..];
                    let Ok(packet) = rtc::rtp::Packet::unmarshal(&mut buf) else { continue };
                    if writer.write_rtp(&packet).is_err() {
                        continue;
                    }
                    let ts = packet.header.timestamp;
                    first.get_or_insert(ts);
                    last = ts;
                    if t.kind == "audio" || packet.header.marker {
                        units += 1;
                    }
                }
            }
        }
        writer.close()?;
        let clock = if t.kind == "audio" {
            48_000.0
        } else {
            90_000.0
        };
        let span = first.map_or(0, |f| last.wrapping_sub(f));
        Ok(Recorded {
            path,
            peer: t.peer.clone(),
            kind: t.kind.clone(),
            codec: t.codec.clone(),
            units,
            duration: Duration::from_secs_f64(f64::from(span) / clock),
        })
    }
}
