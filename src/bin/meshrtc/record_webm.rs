//! `meshrtc record --format webm`: one WebM file per remote stream, its video (VP8 or VP9) and
//! audio (Opus) muxed, each frame placed by its RTP timestamp (a gap in the sender's media stays a
//! gap), finalized when the stream's tracks end or its peer leaves.
//!
//! A stream's tracks arrive as separate `track:add` events, so the file's header waits a moment
//! ([`GATHER`]) for the others, and for a video keyframe to read the picture size from. The
//! daemon joins RTP into frames (`ReadTrack` with `frames`).

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use meshrtc::proto;
use meshrtc::transport::av1;
use meshrtc::transport::frames::vp8_size;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::client;
use crate::webm::{TrackKind, WebmWriter};

/// How long a stream's file waits for its other tracks before writing its header.
const GATHER: Duration = Duration::from_millis(1500);

/// What the record loop tells a stream's job.
pub enum StreamInput {
    /// Another track of the stream.
    Track(proto::MediaEvent),
    /// One of its tracks ended.
    Removed(String),
    /// Its peer left, or recording stops.
    Stop,
}

/// What one stream's file holds, for the `recorded` line.
pub struct StreamRecorded {
    /// The file.
    pub path: PathBuf,
    /// Whose stream.
    pub peer: String,
    /// The stream's id.
    pub stream: String,
    /// Video frames and audio packets written.
    pub frames: u64,
    /// Audio packets written.
    pub packets: u64,
    /// From the first frame to the last.
    pub duration: Duration,
}

/// One frame out of RTP: its track, time from the stream's start, keyframe flag, bytes.
struct Timed {
    track: usize,
    ms: u64,
    keyframe: bool,
    data: Bytes,
}

/// Records one remote stream into `dir/<peer>-<stream>.webm` until its tracks end, its peer
/// leaves or `input` closes.
pub async fn record_stream(
    daemon: String,
    app: String,
    room: String,
    path: PathBuf,
    first: proto::MediaEvent,
    mut input: mpsc::UnboundedReceiver<StreamInput>,
) -> anyhow::Result<StreamRecorded> {
    let started = Instant::now();
    let (frames_tx, mut frames_rx) = mpsc::channel::<Timed>(1024);
    let mut tracks: Vec<proto::MediaEvent> = Vec::new();
    let mut readers = Vec::new();
    let mut live = 0usize;
    let add = |t: proto::MediaEvent,
               tracks: &mut Vec<proto::MediaEvent>,
               readers: &mut Vec<tokio::task::JoinHandle<()>>|
     -> bool {
        let webm = matches!(
            t.codec.as_str(),
            "video/VP8" | "video/VP9" | "video/AV1" | "audio/opus"
        );
        if tracks.iter().any(|o| o.kind == t.kind) || !webm {
            eprintln!(
                "meshrtc record: stream {} of {}: track {} ({}) not recorded in WebM",
                t.stream_id, t.peer, t.track_id, t.codec
            );
            return false;
        }
        let index = tracks.len();
        tracks.push(t.clone());
        let (daemon, app, room, tx) =
            (daemon.clone(), app.clone(), room.clone(), frames_tx.clone());
        let offset_ms = started.elapsed().as_millis() as u64;
        readers.push(tokio::spawn(async move {
            let Ok(mut c) = client(&daemon).await else {
                return;
            };
            let request = proto::ReadTrackRequest {
                app,
                room,
                peer: t.peer.clone(),
                track_id: t.track_id.clone(),
                frames: true,
            };
            let Ok(stream) = c.read_track(request).await else {
                return;
            };
            let mut packets = stream.into_inner();
            while let Ok(Some(p)) = packets.message().await {
                let Some(f) = p.frame else { continue };
                let frame = Timed {
                    track: index,
                    ms: offset_ms + f.timestamp_us / 1000,
                    keyframe: f.keyframe,
                    data: f.data,
                };
                if tx.send(frame).await.is_err() {
                    return;
                }
            }
        }));
        true
    };
    if add(first.clone(), &mut tracks, &mut readers) {
        live += 1;
    }
    // Until the header is written frames wait here; the gathering ends at GATHER.
    let mut pending: Vec<Timed> = Vec::new();
    let mut sink: Option<Sink> = None;
    let gather_end = started + GATHER;
    loop {
        if sink.is_none() && Instant::now() >= gather_end {
            sink = Some(Sink::open(&path, &tracks, std::mem::take(&mut pending))?);
        }
        tokio::select! {
            msg = input.recv() => match msg {
                Some(StreamInput::Track(t)) if sink.is_some() => {
                    eprintln!(
                        "meshrtc record: stream {} of {}: track {} came after the file was begun; not recorded",
                        t.stream_id, t.peer, t.track_id
                    );
                }
                Some(StreamInput::Track(t)) => {
                    if add(t, &mut tracks, &mut readers) {
                        live += 1;
                    }
                }
                Some(StreamInput::Removed(id)) => {
                    if tracks.iter().any(|t| t.track_id == id) {
                        live = live.saturating_sub(1);
                        if live == 0 { break; }
                    }
                }
                Some(StreamInput::Stop) | None => break,
            },
            Some(f) = frames_rx.recv() => match sink.as_mut() {
                Some(sink) => sink.write(&tracks, f)?,
                None => pending.push(f),
            },
            _ = tokio::time::sleep_until(gather_end), if sink.is_none() => {}
        }
    }
    for r in readers {
        r.abort();
    }
    let sink = match sink {
        Some(sink) => sink,
        None => Sink::open(&path, &tracks, pending)?,
    };
    let (frames, packets, span) = (sink.frames, sink.packets, sink.span());
    sink.w
        .close(sink.last_ms)
        .with_context(|| format!("finishing {}", path.display()))?;
    Ok(StreamRecorded {
        path,
        peer: first.peer,
        stream: first.stream_id,
        frames,
        packets,
        duration: span,
    })
}

/// A stream's file once its header is written, and what went into it.
struct Sink {
    w: WebmWriter<BufWriter<File>>,
    /// Each track's number in the file (by its index among the stream's tracks).
    numbers: Vec<usize>,
    /// Video frames are left out until the first keyframe (nothing before it decodes).
    video_started: bool,
    frames: u64,
    packets: u64,
    first_ms: Option<u64>,
    last_ms: u64,
}

impl Sink {
    /// Creates the file with a header for `tracks` (video first, its size from a VP8 keyframe
    /// among `pending`), then writes `pending`.
    fn open(
        path: &Path,
        tracks: &[proto::MediaEvent],
        pending: Vec<Timed>,
    ) -> anyhow::Result<Sink> {
        let mut kinds = Vec::new();
        let mut numbers = vec![0; tracks.len()];
        let mut by_kind: Vec<usize> = (0..tracks.len()).collect();
        by_kind.sort_by_key(|i| tracks[*i].kind != "video");
        for i in by_kind {
            numbers[i] = kinds.len() + 1;
            kinds.push(match tracks[i].codec.as_str() {
                "audio/opus" => TrackKind::Opus,
                "video/AV1" => {
                    // AV1 in Matroska is described by the sequence header a keyframe carries.
                    let header = pending
                        .iter()
                        .filter(|f| f.track == i && f.keyframe)
                        .find_map(|f| av1::sequence_header(&f.data));
                    let (width, height) =
                        header.as_ref().map_or((640, 480), |h| (h.width, h.height));
                    TrackKind::Video {
                        codec_id: "V_AV1",
                        codec_private: header.map(|h| h.av1c),
                        width,
                        height,
                    }
                }
                codec => {
                    let (width, height) = pending
                        .iter()
                        .filter(|f| f.track == i && f.keyframe)
                        .find_map(|f| vp8_size(&f.data))
                        .unwrap_or((640, 480));
                    let codec_id = if codec == "video/VP9" {
                        "V_VP9"
                    } else {
                        "V_VP8"
                    };
                    TrackKind::Video {
                        codec_id,
                        codec_private: None,
                        width,
                        height,
                    }
                }
            });
        }
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let w = WebmWriter::new(BufWriter::new(file), &kinds)
            .with_context(|| format!("writing {}", path.display()))?;
        let mut sink = Sink {
            w,
            numbers,
            video_started: false,
            frames: 0,
            packets: 0,
            first_ms: None,
            last_ms: 0,
        };
        for f in pending {
            sink.write(tracks, f)?;
        }
        Ok(sink)
    }

    /// Writes one frame of track `f.track`.
    fn write(&mut self, tracks: &[proto::MediaEvent], f: Timed) -> anyhow::Result<()> {
        let Some(number) = self.numbers.get(f.track).copied().filter(|n| *n > 0) else {
            return Ok(());
        };
        let video = tracks[f.track].kind == "video";
        if video && !self.video_started {
            if !f.keyframe {
                return Ok(());
            }
            self.video_started = true;
        }
        self.w
            .write_frame(number as u8, f.ms, f.keyframe || !video, &f.data)?;
        if video {
            self.frames += 1;
        } else {
            self.packets += 1;
        }
        self.last_ms = self.last_ms.max(f.ms);
        self.first_ms.get_or_insert(f.ms);
        Ok(())
    }

    /// From the first frame written to the last.
    fn span(&self) -> Duration {
        Duration::from_millis(self.last_ms.saturating_sub(self.first_ms.unwrap_or(0)))
    }
}

/// Streams being recorded, by (peer, stream id).
pub type Streams = HashMap<(String, String), mpsc::UnboundedSender<StreamInput>>;
