//! `meshrtc record --format webm`: one WebM file per remote stream, its video (VP8 or VP9) and
//! audio (Opus) muxed, each frame placed by its RTP timestamp (a gap in the sender's media stays a
//! gap), finalized when the stream's tracks end or its peer leaves.
//!
//! A stream's tracks arrive as separate `track:add` events, so the file's header waits a moment
//! ([`GATHER`]) for the others, and for a video keyframe to read the picture size from.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use meshrtc::proto;
use rtc::rtp::codec::opus::OpusPacket;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::codec::vp9::Vp9Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::shared::marshal::Unmarshal as _;
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

/// Joins one track's RTP packets into frames (VP8, VP9 by marker bit; Opus one per packet),
/// dropping a frame that lost a packet.
struct Assembler {
    codec: String,
    dep: Box<dyn Depacketizer + Send>,
    clock: u64,
    buf: Vec<u8>,
    broken: bool,
    next_seq: Option<u16>,
    first_ts: Option<u32>,
    /// RTP time unwrapped to 64 bits.
    last_ts: u64,
    /// Milliseconds from the stream's start at which this track's first packet came.
    offset_ms: u64,
}

impl Assembler {
    fn new(codec: &str, offset_ms: u64) -> Option<Assembler> {
        let (dep, clock): (Box<dyn Depacketizer + Send>, u64) = match codec {
            "video/VP8" => (Box::<Vp8Packet>::default(), 90_000),
            "video/VP9" => (Box::<Vp9Packet>::default(), 90_000),
            "audio/opus" => (Box::<OpusPacket>::default(), 48_000),
            _ => return None,
        };
        Some(Assembler {
            codec: codec.to_owned(),
            dep,
            clock,
            buf: Vec::new(),
            broken: false,
            next_seq: None,
            first_ts: None,
            last_ts: 0,
            offset_ms,
        })
    }

    /// A frame when this packet completes one.
    fn push(&mut self, rtp: &[u8]) -> Option<(u64, bool, Bytes)> {
        let mut raw = rtp;
        let packet = rtc::rtp::Packet::unmarshal(&mut raw).ok()?;
        let h = &packet.header;
        if self.next_seq.is_some_and(|s| s != h.sequence_number) {
            self.broken = true;
        }
        self.next_seq = Some(h.sequence_number.wrapping_add(1));
        let first = *self.first_ts.get_or_insert(h.timestamp);
        // Unwrapped time since the track's first packet (RTP time wraps at 2^32).
        let since = u64::from(h.timestamp.wrapping_sub(first));
        let ts = if since + (1 << 31) < self.last_ts {
            since + (1 << 32)
        } else {
            since
        };
        self.last_ts = self.last_ts.max(ts);
        if self.dep.is_partition_head(&packet.payload) {
            self.buf.clear();
            self.broken = false;
        }
        let part = self.dep.depacketize(&packet.payload).ok()?;
        self.buf.extend_from_slice(&part);
        if !self.dep.is_partition_tail(h.marker, &packet.payload) {
            return None;
        }
        let data = Bytes::from(std::mem::take(&mut self.buf));
        if std::mem::take(&mut self.broken) || data.is_empty() {
            return None;
        }
        let keyframe = match self.codec.as_str() {
            // VP8's first byte: bit 0 clear on a keyframe (RFC 6386 sec. 9.1).
            "video/VP8" => data[0] & 1 == 0,
            // VP9's uncompressed header: a keyframe has frame_type 0 (bit after show_frame);
            // taken as a keyframe when the payload descriptor said not inter-predicted.
            "video/VP9" => vp9_keyframe(&data),
            _ => true,
        };
        Some((self.offset_ms + ts * 1000 / self.clock, keyframe, data))
    }
}

/// Whether a VP9 frame is a keyframe (its uncompressed header's frame_type, profile 0–2).
fn vp9_keyframe(frame: &[u8]) -> bool {
    let Some(b) = frame.first() else {
        return false;
    };
    // frame_marker (2), profile_low (1), profile_high (1), [reserved (1) if profile 3],
    // show_existing_frame (1), frame_type (1).
    let profile = ((b >> 5) & 1) | (((b >> 4) & 1) << 1);
    let shift = if profile == 3 { 1 } else { 0 };
    let show_existing = (b >> (3 - shift)) & 1;
    let frame_type = (b >> (2 - shift)) & 1;
    show_existing == 0 && frame_type == 0
}

/// The picture size in a VP8 keyframe (RFC 6386 sec. 9.1).
fn vp8_size(frame: &[u8]) -> Option<(u32, u32)> {
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    Some((w, h))
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
        if tracks.iter().any(|o| o.kind == t.kind) || Assembler::new(&t.codec, 0).is_none() {
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
            let Some(mut asm) = Assembler::new(&t.codec, offset_ms) else {
                return;
            };
            let Ok(mut c) = client(&daemon).await else {
                return;
            };
            let request = proto::ReadTrackRequest {
                app,
                room,
                peer: t.peer.clone(),
                track_id: t.track_id.clone(),
            };
            let Ok(stream) = c.read_track(request).await else {
                return;
            };
            let mut packets = stream.into_inner();
            while let Ok(Some(p)) = packets.message().await {
                if let Some((ms, keyframe, data)) = asm.push(&p.rtp) {
                    let frame = Timed {
                        track: index,
                        ms,
                        keyframe,
                        data,
                    };
                    if tx.send(frame).await.is_err() {
                        return;
                    }
                }
            }
        }));
        true
    };
    if add(first.clone(), &mut tracks, &mut readers) {
        live += 1;
    }
    // Until the header is written: frames wait here, and the gathering ends at GATHER.
    let mut pending: Vec<Timed> = Vec::new();
    let mut writer: Option<(WebmWriter<BufWriter<File>>, Vec<usize>)> = None;
    let gather_end = started + GATHER;
    let (mut frames, mut packets, mut last_ms, mut first_ms) = (0u64, 0u64, 0u64, None::<u64>);
    let mut video_started = false;
    loop {
        let header_due = writer.is_none() && Instant::now() >= gather_end;
        if header_due {
            writer = Some(open(&path, &tracks, &pending)?);
        }
        if let Some((w, order)) = writer.as_mut() {
            for f in pending.drain(..) {
                write(
                    w,
                    order,
                    &tracks,
                    f,
                    &mut video_started,
                    (&mut frames, &mut packets, &mut last_ms, &mut first_ms),
                )?;
            }
        }
        tokio::select! {
            msg = input.recv() => match msg {
                Some(StreamInput::Track(t)) => {
                    if writer.is_none() && add(t, &mut tracks, &mut readers) {
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
            Some(f) = frames_rx.recv() => {
                match writer.as_mut() {
                    Some((w, order)) => write(w, order, &tracks, f, &mut video_started, (&mut frames, &mut packets, &mut last_ms, &mut first_ms))?,
                    None => pending.push(f),
                }
            }
            _ = tokio::time::sleep_until(gather_end), if writer.is_none() => {}
        }
    }
    for r in readers {
        r.abort();
    }
    let (w, _) = match writer {
        Some(w) => w,
        None => open(&path, &tracks, &pending)?,
    };
    let span = last_ms.saturating_sub(first_ms.unwrap_or(0));
    w.close(last_ms)
        .with_context(|| format!("finishing {}", path.display()))?;
    Ok(StreamRecorded {
        path,
        peer: first.peer,
        stream: first.stream_id,
        frames,
        packets,
        duration: Duration::from_millis(span),
    })
}

/// Creates the file with a header for `tracks` (video first), sizing the video from a VP8
/// keyframe among `pending`; returns the writer and each track's number in the file.
fn open(
    path: &PathBuf,
    tracks: &[proto::MediaEvent],
    pending: &[Timed],
) -> anyhow::Result<(WebmWriter<BufWriter<File>>, Vec<usize>)> {
    let mut kinds = Vec::new();
    let mut numbers = vec![0; tracks.len()];
    let mut by_kind: Vec<usize> = (0..tracks.len()).collect();
    by_kind.sort_by_key(|i| tracks[*i].kind != "video");
    for i in by_kind {
        let t = &tracks[i];
        numbers[i] = kinds.len() + 1;
        kinds.push(match t.codec.as_str() {
            "audio/opus" => TrackKind::Opus,
            codec => {
                let (width, height) = pending
                    .iter()
                    .filter(|f| f.track == i && f.keyframe)
                    .find_map(|f| vp8_size(&f.data))
                    .unwrap_or((640, 480));
                TrackKind::Video {
                    codec_id: if codec == "video/VP9" {
                        "V_VP9"
                    } else {
                        "V_VP8"
                    },
                    width,
                    height,
                }
            }
        });
    }
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let w = WebmWriter::new(BufWriter::new(file), &kinds)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((w, numbers))
}

/// Writes one frame; video is skipped until its first keyframe (nothing before it decodes).
fn write(
    w: &mut WebmWriter<BufWriter<File>>,
    numbers: &[usize],
    tracks: &[proto::MediaEvent],
    f: Timed,
    video_started: &mut bool,
    counts: (&mut u64, &mut u64, &mut u64, &mut Option<u64>),
) -> anyhow::Result<()> {
    let (frames, packets, last_ms, first_ms) = counts;
    let Some(number) = numbers.get(f.track).copied().filter(|n| *n > 0) else {
        return Ok(());
    };
    let video = tracks[f.track].kind == "video";
    if video && !*video_started {
        if !f.keyframe {
            return Ok(());
        }
        *video_started = true;
    }
    w.write_frame(number as u8, f.ms, f.keyframe || !video, &f.data)?;
    if video {
        *frames += 1;
    } else {
        *packets += 1;
    }
    *last_ms = (*last_ms).max(f.ms);
    first_ms.get_or_insert(f.ms);
    Ok(())
}

/// Streams being recorded, by (peer, stream id).
pub type Streams = HashMap<(String, String), mpsc::UnboundedSender<StreamInput>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframes_give_their_picture_size() {
        // A VP8 keyframe header: frame tag (keyframe, shown), start code, 320 × 240.
        let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&320u16.to_le_bytes());
        f.extend_from_slice(&240u16.to_le_bytes());
        assert_eq!(vp8_size(&f), Some((320, 240)));
        f[0] |= 1; // an inter frame
        assert_eq!(vp8_size(&f), None);
    }

    #[test]
    fn vp9_frame_type_is_read_from_the_uncompressed_header() {
        // frame_marker 0b10, profile 0, show_existing 0, frame_type 0 (key), …
        assert!(vp9_keyframe(&[0b1000_0010]));
        // frame_type 1 (inter).
        assert!(!vp9_keyframe(&[0b1000_0110]));
    }
}
