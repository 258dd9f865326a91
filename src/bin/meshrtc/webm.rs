//! A WebM writer for recordings: one file holding a stream's video (VP8 or VP9) and audio
//! (Opus) tracks, frames in SimpleBlocks grouped into clusters, the segment's size and the
//! duration written in when the file is closed. Written here because the Matroska crates that
//! are kept up read only (`matroska-demuxer`, which the tests read these files back with) or bind
//! C++ (libwebm); a WebM writer for two tracks is a few EBML elements.

use std::io::{Seek, SeekFrom, Write};

/// EBML element ids used here (Matroska specification).
mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const DURATION: u32 = 0x4489;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const CODEC_DELAY: u32 = 0x56AA;
    pub const SEEK_PRE_ROLL: u32 = 0x56BB;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMESTAMP: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
}

/// A track of the file.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackKind {
    /// VP8, VP9 or AV1 video of this size (from the first keyframe, or a guess).
    Video {
        /// `V_VP8`, `V_VP9` or `V_AV1`.
        codec_id: &'static str,
        /// What the codec needs beside the frames (AV1's `av1C` record), if anything.
        codec_private: Option<Vec<u8>>,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// Opus audio at 48 kHz, two channels.
    Opus,
}

/// A cluster's blocks carry 16-bit signed offsets from its timestamp, in milliseconds.
const CLUSTER_MAX_MS: u64 = 5_000;

fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.extend_from_slice(&bytes[skip..]);
}

fn put_size(out: &mut Vec<u8>, size: u64) {
    let len = (1..=8usize)
        .find(|n| size < (1u64 << (7 * n)) - 1)
        .unwrap_or(8);
    let marked = size | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

fn element(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(out, id);
    put_size(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn uint(out: &mut Vec<u8>, id: u32, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    element(out, id, &bytes[skip..]);
}

fn float(out: &mut Vec<u8>, id: u32, v: f64) {
    element(out, id, &v.to_be_bytes());
}

/// The `OpusHead` Matroska wants as an Opus track's codec private data (RFC 7845 sec. 5.1).
fn opus_head() -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1); // version
    h.push(2); // channels
    h.extend_from_slice(&0u16.to_le_bytes()); // pre-skip
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes()); // output gain
    h.push(0); // channel mapping family
    h
}

/// Writes a WebM file frame by frame; [`WebmWriter::close`] finishes it.
pub struct WebmWriter<W: Write + Seek> {
    out: W,
    /// Where the segment's size and the duration's value sit, to be filled in at the end.
    segment_size_at: u64,
    segment_start: u64,
    duration_at: u64,
    cluster: Vec<u8>,
    cluster_ms: Option<u64>,
    last_ms: u64,
}

impl<W: Write + Seek> WebmWriter<W> {
    /// Starts a file with these tracks (numbered 1, 2, … in order).
    pub fn new(mut out: W, tracks: &[TrackKind]) -> std::io::Result<Self> {
        let mut head = Vec::new();
        let mut ebml = Vec::new();
        uint(&mut ebml, id::EBML_VERSION, 1);
        uint(&mut ebml, id::EBML_READ_VERSION, 1);
        uint(&mut ebml, id::EBML_MAX_ID_LENGTH, 4);
        uint(&mut ebml, id::EBML_MAX_SIZE_LENGTH, 8);
        element(&mut ebml, id::DOC_TYPE, b"webm");
        uint(&mut ebml, id::DOC_TYPE_VERSION, 4);
        uint(&mut ebml, id::DOC_TYPE_READ_VERSION, 2);
        element(&mut head, id::EBML, &ebml);
        put_id(&mut head, id::SEGMENT);
        let segment_size_at = head.len() as u64;
        // Unknown size (8 bytes), replaced by the real one on close.
        head.extend_from_slice(&0x01FF_FFFF_FFFF_FFFFu64.to_be_bytes());
        let segment_start = head.len() as u64;
        let mut info = Vec::new();
        uint(&mut info, id::TIMESTAMP_SCALE, 1_000_000);
        element(&mut info, id::MUXING_APP, b"meshrtc");
        element(&mut info, id::WRITING_APP, b"meshrtc record");
        let duration_in_info = info.len() as u64 + 3; // after the id (2) and size (1)
        float(&mut info, id::DURATION, 0.0);
        put_id(&mut head, id::INFO);
        put_size(&mut head, info.len() as u64);
        let duration_at = head.len() as u64 + duration_in_info;
        head.extend_from_slice(&info);
        let mut entries = Vec::new();
        for (i, t) in tracks.iter().enumerate() {
            let mut e = Vec::new();
            let number = i as u64 + 1;
            uint(&mut e, id::TRACK_NUMBER, number);
            uint(&mut e, id::TRACK_UID, number);
            match t {
                TrackKind::Video {
                    codec_id,
                    codec_private,
                    width,
                    height,
                } => {
                    uint(&mut e, id::TRACK_TYPE, 1);
                    element(&mut e, id::CODEC_ID, codec_id.as_bytes());
                    if let Some(private) = codec_private {
                        element(&mut e, id::CODEC_PRIVATE, private);
                    }
                    let mut v = Vec::new();
                    uint(&mut v, id::PIXEL_WIDTH, u64::from(*width));
                    uint(&mut v, id::PIXEL_HEIGHT, u64::from(*height));
                    element(&mut e, id::VIDEO, &v);
                }
                TrackKind::Opus => {
                    uint(&mut e, id::TRACK_TYPE, 2);
                    element(&mut e, id::CODEC_ID, b"A_OPUS");
                    element(&mut e, id::CODEC_PRIVATE, &opus_head());
                    uint(&mut e, id::CODEC_DELAY, 0);
                    uint(&mut e, id::SEEK_PRE_ROLL, 80_000_000);
                    let mut a = Vec::new();
                    float(&mut a, id::SAMPLING_FREQUENCY, 48_000.0);
                    uint(&mut a, id::CHANNELS, 2);
                    element(&mut e, id::AUDIO, &a);
                }
            }
            element(&mut entries, id::TRACK_ENTRY, &e);
        }
        element(&mut head, id::TRACKS, &entries);
        out.write_all(&head)?;
        Ok(WebmWriter {
            out,
            segment_size_at,
            segment_start,
            duration_at,
            cluster: Vec::new(),
            cluster_ms: None,
            last_ms: 0,
        })
    }

    /// Adds a frame of track `track` (1-based) at `ms` milliseconds from the start.
    pub fn write_frame(
        &mut self,
        track: u8,
        ms: u64,
        keyframe: bool,
        data: &[u8],
    ) -> std::io::Result<()> {
        let start_new = match self.cluster_ms {
            None => true,
            // A video keyframe starts a cluster (players seek to cluster starts); so does
            // running out of the block's signed 16-bit offset.
            Some(c) => {
                (keyframe && track == 1 && ms > c) || ms >= c + CLUSTER_MAX_MS || ms + 30_000 < c
            }
        };
        if start_new {
            self.flush_cluster()?;
            self.cluster_ms = Some(ms);
            uint(&mut self.cluster, id::TIMESTAMP, ms);
        }
        let base = self.cluster_ms.unwrap_or(ms);
        let offset = (ms as i64 - base as i64).clamp(i64::from(i16::MIN), i64::from(i16::MAX));
        let mut block = Vec::with_capacity(data.len() + 4);
        block.push(0x80 | track);
        block.extend_from_slice(&(offset as i16).to_be_bytes());
        block.push(if keyframe { 0x80 } else { 0 });
        block.extend_from_slice(data);
        element(&mut self.cluster, id::SIMPLE_BLOCK, &block);
        self.last_ms = self.last_ms.max(ms);
        Ok(())
    }

    fn flush_cluster(&mut self) -> std::io::Result<()> {
        if self.cluster_ms.is_none() {
            return Ok(());
        }
        let mut head = Vec::new();
        put_id(&mut head, id::CLUSTER);
        put_size(&mut head, self.cluster.len() as u64);
        self.out.write_all(&head)?;
        self.out.write_all(&self.cluster)?;
        self.cluster.clear();
        self.cluster_ms = None;
        Ok(())
    }

    /// Writes the last cluster, the segment's size and the duration; returns the writer.
    pub fn close(mut self, duration_ms: u64) -> std::io::Result<W> {
        self.flush_cluster()?;
        let end = self.out.stream_position()?;
        let size = end - self.segment_start;
        self.out.seek(SeekFrom::Start(self.segment_size_at))?;
        self.out.write_all(&(size | (1u64 << 56)).to_be_bytes())?;
        self.out.seek(SeekFrom::Start(self.duration_at))?;
        self.out
            .write_all(&(duration_ms.max(self.last_ms) as f64).to_be_bytes())?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matroska_demuxer::{Frame, MatroskaFile, TrackType};

    #[test]
    fn sizes_are_ebml_variable_integers() {
        let enc = |n| {
            let mut v = Vec::new();
            put_size(&mut v, n);
            v
        };
        assert_eq!(enc(0), vec![0x80]);
        assert_eq!(enc(126), vec![0xFE]);
        // 127 in one byte would read as "unknown size".
        assert_eq!(enc(127), vec![0x40, 0x7F]);
        assert_eq!(enc(300), vec![0x41, 0x2C]);
    }

    #[test]
    fn a_written_file_reads_back_with_both_tracks_and_every_frame() {
        let tracks = [
            TrackKind::Video {
                codec_id: "V_VP8",
                codec_private: None,
                width: 320,
                height: 240,
            },
            TrackKind::Opus,
        ];
        let mut w = WebmWriter::new(std::io::Cursor::new(Vec::new()), &tracks).expect("new");
        // 12 s of 25 fps video (a keyframe a second) and 20 ms audio, interleaved.
        let mut expected = Vec::new();
        for ms in (0..12_000u64).step_by(20) {
            if ms % 40 == 0 {
                let data = vec![(ms / 40) as u8; 500];
                w.write_frame(1, ms, ms % 1000 == 0, &data).expect("video");
                expected.push((1u64, ms, data));
            }
            let data = vec![(ms / 20) as u8; 80];
            w.write_frame(2, ms, true, &data).expect("audio");
            expected.push((2, ms, data));
        }
        let bytes = w.close(12_000).expect("close").into_inner();
        let mut mkv = MatroskaFile::open(std::io::Cursor::new(bytes)).expect("a Matroska file");
        assert_eq!(mkv.ebml_header().doc_type(), "webm");
        assert_eq!(mkv.info().duration(), Some(12_000.0));
        let kinds: Vec<_> = mkv
            .tracks()
            .iter()
            .map(|t| (t.track_type(), t.codec_id().to_owned()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (TrackType::Video, "V_VP8".into()),
                (TrackType::Audio, "A_OPUS".into())
            ]
        );
        let mut got = Vec::new();
        let mut f = Frame::default();
        while mkv.next_frame(&mut f).expect("frame") {
            got.push((f.track, f.timestamp, std::mem::take(&mut f.data)));
        }
        assert_eq!(got, expected);
    }
}
