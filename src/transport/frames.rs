//! Frames out of a remote track's RTP (pure): VP8, VP9 and AV1 frames with their keyframe flag,
//! Opus packets, each with its RTP time, for apps that want media rather than packets
//! (`ReadTrack` with `frames`) and for recordings.
//!
//! All packets of a frame share a timestamp and the last one carries the marker bit. Packets are
//! first put back in order ([`Reorder`]: a hop's NACK repair arrives late), and a frame that still
//! lost a packet (a gap in sequence numbers) is dropped rather than handed on broken.

use std::time::Instant;

use bytes::Bytes;
use rtc::rtp::codec::av1::Av1Depacketizer;
use rtc::rtp::codec::opus::OpusPacket;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::codec::vp9::Vp9Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::shared::marshal::Unmarshal as _;

use super::media::Codec;
use super::reorder::Reorder;

/// One frame (or Opus packet) of a track.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The encoded frame.
    pub data: Bytes,
    /// Whether it decodes on its own (always true for audio).
    pub keyframe: bool,
    /// Its RTP timestamp.
    pub rtp_timestamp: u32,
    /// Microseconds since the first frame this assembler completed (RTP time, unwrapped).
    pub since_first_us: u64,
}

/// Joins one track's RTP packets into frames.
pub struct FrameAssembler {
    codec: Codec,
    reorder: Reorder<Bytes>,
    dep: Box<dyn Depacketizer + Send>,
    buf: Vec<u8>,
    /// The frame being gathered: its RTP timestamp, and whether a packet of it was lost.
    current: Option<(u32, bool)>,
    /// AV1: the first packet of the current frame began a coded video sequence.
    sequence_start: bool,
    next_seq: Option<u16>,
    first_ts: Option<u32>,
    /// The latest RTP time seen, unwrapped, in clock ticks since the first packet.
    latest: u64,
}

impl FrameAssembler {
    /// An assembler for `codec`; `None` for codecs it cannot take apart (H.264 here).
    pub fn new(codec: Codec) -> Option<FrameAssembler> {
        let dep: Box<dyn Depacketizer + Send> = match codec {
            Codec::Vp8 => Box::<Vp8Packet>::default(),
            Codec::Vp9 => Box::<Vp9Packet>::default(),
            Codec::Av1 => Box::new(Av1Depacketizer::new()),
            Codec::Opus => Box::<OpusPacket>::default(),
            Codec::H264 => return None,
        };
        Some(FrameAssembler {
            codec,
            reorder: Reorder::new(),
            dep,
            buf: Vec::new(),
            current: None,
            sequence_start: false,
            next_seq: None,
            first_ts: None,
            latest: 0,
        })
    }

    /// Takes one RTP packet (as read from the track) arrived at `now`; returns the frames it
    /// completes, in order (none while it waits behind a missing packet).
    pub fn push(&mut self, rtp: Bytes, now: Instant) -> Vec<Frame> {
        let Some(seq) = rtp.get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            return Vec::new();
        };
        self.reorder
            .push(seq, rtp, now)
            .into_iter()
            .filter_map(|p| self.assemble(&p))
            .collect()
    }

    /// Packets that came too late to be put back in order (or twice), so were not used.
    pub fn late_packets(&self) -> u64 {
        self.reorder.late()
    }

    /// Takes the next packet in sequence order; returns the frame it completes.
    fn assemble(&mut self, rtp: &[u8]) -> Option<Frame> {
        let mut raw = rtp;
        let packet = rtc::rtp::Packet::unmarshal(&mut raw).ok()?;
        let h = &packet.header;
        let lost = self.next_seq.is_some_and(|s| s != h.sequence_number);
        self.next_seq = Some(h.sequence_number.wrapping_add(1));
        match &mut self.current {
            Some((ts, broken)) if *ts == h.timestamp => *broken |= lost,
            // A new timestamp starts a new frame; an unfinished one before it is dropped.
            _ => {
                self.buf.clear();
                // A frame whose first packet came after a gap may have lost its start.
                let starts = self.dep.is_partition_head(&packet.payload);
                self.current = Some((h.timestamp, lost && !starts));
                self.sequence_start = self.codec == Codec::Av1
                    && packet.payload.first().is_some_and(|b| b & 0x08 != 0);
            }
        }
        match self.dep.depacketize(&packet.payload) {
            Ok(part) => self.buf.extend_from_slice(&part),
            Err(_) => {
                if let Some((_, broken)) = &mut self.current {
                    *broken = true;
                }
            }
        }
        let done = self.codec == Codec::Opus || h.marker;
        if !done {
            return None;
        }
        let (ts, broken) = self.current.take()?;
        let data = Bytes::from(std::mem::take(&mut self.buf));
        if broken || data.is_empty() {
            return None;
        }
        let keyframe = match self.codec {
            Codec::Vp8 => data[0] & 1 == 0,
            Codec::Vp9 => vp9_keyframe(&data),
            Codec::Av1 => self.sequence_start,
            _ => true,
        };
        Some(Frame {
            since_first_us: self.since_first(ts) * 1_000_000 / u64::from(self.codec.clock_rate()),
            data,
            keyframe,
            rtp_timestamp: ts,
        })
    }

    /// Clock ticks from the track's first packet to `ts`, across RTP's 32-bit wrap.
    fn since_first(&mut self, ts: u32) -> u64 {
        let first = *self.first_ts.get_or_insert(ts);
        let low = u64::from(ts.wrapping_sub(first));
        // The candidate nearest the latest time seen (a 2^32 wrap is 13 h at 90 kHz).
        let era = self.latest >> 32;
        let at = [era.saturating_sub(1), era, era + 1]
            .into_iter()
            .map(|e| (e << 32) | low)
            .min_by_key(|c| c.abs_diff(self.latest))
            .unwrap_or(low);
        self.latest = self.latest.max(at);
        at
    }
}

/// Whether a VP9 frame is a keyframe: its uncompressed header's frame_type (VP9 bitstream
/// spec. sec. 6.2), not a shown-existing frame.
pub fn vp9_keyframe(frame: &[u8]) -> bool {
    let Some(b) = frame.first() else {
        return false;
    };
    // frame_marker (2), profile_low (1), profile_high (1), reserved (1, profile 3 only),
    // show_existing_frame (1), frame_type (1).
    let profile = ((b >> 5) & 1) | (((b >> 4) & 1) << 1);
    let shift = u8::from(profile == 3);
    let show_existing = (b >> (3 - shift)) & 1;
    let frame_type = (b >> (2 - shift)) & 1;
    show_existing == 0 && frame_type == 0
}

/// The picture size in a VP8 keyframe (RFC 6386 sec. 9.1).
pub fn vp8_size(frame: &[u8]) -> Option<(u32, u32)> {
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    Some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::{Header, Packet};
    use rtc::shared::marshal::Marshal as _;

    fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let p = Packet {
            header: Header {
                version: 2,
                payload_type: 96,
                sequence_number: seq,
                timestamp: ts,
                marker,
                ssrc: 7,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(payload),
        };
        p.marshal().expect("marshal").to_vec()
    }

    /// A VP8 payload: descriptor (S bit on the first packet of a frame) and the data (the
    /// crate wants at least 4 bytes in all).
    fn vp8(first: bool, data: &[u8]) -> Vec<u8> {
        let mut p = vec![if first { 0x10 } else { 0x00 }];
        p.extend_from_slice(data);
        p
    }

    /// Pushes one packet at `at`; the one frame it completes, if any.
    fn one(a: &mut FrameAssembler, rtp: Vec<u8>, at: Instant) -> Option<Frame> {
        let mut out = a.push(Bytes::from(rtp), at);
        assert!(out.len() <= 1, "one packet completed {} frames", out.len());
        out.pop()
    }

    #[test]
    fn vp8_frames_are_joined_timed_and_flagged() {
        let t = Instant::now();
        let mut a = FrameAssembler::new(Codec::Vp8).expect("vp8");
        // A keyframe in two packets, then an inter frame 3,000 ticks (33.3 ms) later.
        assert_eq!(
            one(&mut a, rtp(1, 1000, false, &vp8(true, &[0x10, 1, 2])), t),
            None
        );
        let key = one(&mut a, rtp(2, 1000, true, &vp8(false, &[3, 4, 5, 6])), t).expect("key");
        assert_eq!(&key.data[..], &[0x10, 1, 2, 3, 4, 5, 6]);
        assert!(key.keyframe);
        assert_eq!(key.since_first_us, 0);
        let inter =
            one(&mut a, rtp(3, 4000, true, &vp8(true, &[0x11, 9, 9, 9])), t).expect("inter");
        assert!(!inter.keyframe);
        assert_eq!(inter.since_first_us, 33_333);
        assert_eq!(inter.rtp_timestamp, 4000);
    }

    #[test]
    fn a_frame_that_lost_a_packet_is_dropped_and_the_next_comes_through() {
        let t = Instant::now();
        let mut a = FrameAssembler::new(Codec::Vp8).expect("vp8");
        assert_eq!(
            one(&mut a, rtp(1, 1000, false, &vp8(true, &[0x10, 1, 1, 1])), t),
            None
        );
        // Packet 2 is lost: 3 waits for it, then the gap is given up and its frame dropped.
        assert_eq!(
            one(&mut a, rtp(3, 1000, true, &vp8(false, &[3, 3, 3])), t),
            None
        );
        let later = t + crate::transport::reorder::WAIT;
        let next = one(
            &mut a,
            rtp(4, 4000, true, &vp8(true, &[0x11, 5, 5, 5])),
            later,
        )
        .expect("next frame");
        assert_eq!(&next.data[..], &[0x11, 5, 5, 5]);
    }

    #[test]
    fn a_packet_repaired_late_completes_its_frame() {
        let t = Instant::now();
        let mut a = FrameAssembler::new(Codec::Vp8).expect("vp8");
        assert_eq!(
            one(&mut a, rtp(1, 1000, false, &vp8(true, &[0x10, 1, 1, 1])), t),
            None
        );
        assert_eq!(
            one(&mut a, rtp(3, 1000, true, &vp8(false, &[3, 3, 3])), t),
            None
        );
        assert_eq!(
            one(&mut a, rtp(4, 4000, true, &vp8(true, &[0x11, 5, 5, 5])), t),
            None
        );
        // The NACK's repair of packet 2 arrives 120 ms later: both frames come out whole.
        let out = a.push(
            Bytes::from(rtp(2, 1000, false, &vp8(false, &[2, 2, 2]))),
            t + std::time::Duration::from_millis(120),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(&out[0].data[..], &[0x10, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
        assert_eq!(&out[1].data[..], &[0x11, 5, 5, 5]);
        assert_eq!(a.late_packets(), 0);
    }

    #[test]
    fn opus_packets_come_out_one_each_and_time_survives_the_wrap() {
        let t = Instant::now();
        let mut a = FrameAssembler::new(Codec::Opus).expect("opus");
        let start = u32::MAX - 959;
        let f1 = one(&mut a, rtp(10, start, false, &[0xfc, 1]), t).expect("packet");
        assert!(f1.keyframe);
        let f2 = one(
            &mut a,
            rtp(11, start.wrapping_add(960), false, &[0xfc, 2]),
            t,
        )
        .expect("packet");
        assert_eq!(f2.since_first_us, 20_000);
        let f3 = one(
            &mut a,
            rtp(12, start.wrapping_add(1920), false, &[0xfc, 3]),
            t,
        )
        .expect("packet");
        assert_eq!(f3.since_first_us, 40_000);
    }

    #[test]
    fn keyframe_headers_read_right() {
        let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&320u16.to_le_bytes());
        f.extend_from_slice(&240u16.to_le_bytes());
        assert_eq!(vp8_size(&f), Some((320, 240)));
        f[0] |= 1;
        assert_eq!(vp8_size(&f), None);
        assert!(vp9_keyframe(&[0b1000_0010]));
        assert!(!vp9_keyframe(&[0b1000_0110]));
        assert!(FrameAssembler::new(Codec::H264).is_none());
    }
}
