#![no_main]
//! Reassembly under hostile chunk streams from 4 peers.
//!
//! Input: records of `[flags, repeat, len_hi, len_lo, chunk...]`.
//! flags bits 0-1: peer; bit 2: advance the clock 31 s and expire first;
//! bit 3: forget the peer first; bit 4: bump the nonce on each repeat;
//! bit 5: zero-pad the chunk to a full 16 KiB chunk.
//! The chunk is pushed `repeat + 1` times, so small inputs reach the byte limits.
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use meshrtc::wire::chunk::{ActionChunk, CHUNK_PAYLOAD, CHUNK_SIZE, Payload};
use meshrtc::wire::reassembly::{Limits, Reassembler, Step};

const LIMITS: Limits = Limits {
    max_message: 1 << 20,
    max_per_peer: 2 << 20,
    max_total: 4 << 20,
    max_partials_per_peer: 8,
    idle_timeout: Duration::from_secs(30),
};

fuzz_target!(|data: &[u8]| {
    let mut r = Reassembler::<u8>::new(LIMITS);
    let mut now = Instant::now();
    let mut rest = data;
    while let [flags, repeat, hi, lo, tail @ ..] = rest {
        let len = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let (piece, next) = tail.split_at(len);
        rest = next;
        let peer = flags & 3;
        if flags & 4 != 0 {
            now += Duration::from_secs(31);
            r.expire(now);
        }
        if flags & 8 != 0 {
            r.forget_peer(&peer);
        }
        let padded;
        let piece = if flags & 32 != 0 && piece.len() < CHUNK_SIZE {
            padded = [piece, &[0; CHUNK_SIZE][piece.len()..]].concat();
            &padded[..]
        } else {
            piece
        };
        let Ok(chunk) = ActionChunk::decode(piece) else {
            continue;
        };
        for i in 0..=u16::from(*repeat) {
            let nonce = if flags & 16 != 0 {
                chunk.nonce.wrapping_add(i)
            } else {
                chunk.nonce
            };
            let c = ActionChunk {
                nonce,
                ..chunk.clone()
            };
            if let Ok(Step::Complete(m)) = r.push(&peer, &c, now) {
                assert_eq!(m.action, chunk.action);
                let size = match &m.payload {
                    Payload::Binary(b) => b.len(),
                    Payload::Text(t) => t.len(),
                    Payload::Json(_) => 0,
                };
                assert!(size <= LIMITS.max_message.max(CHUNK_PAYLOAD));
            }
            assert!(
                r.buffered() <= LIMITS.max_total,
                "buffered {} > max_total",
                r.buffered()
            );
        }
    }
    // Everything buffered must be accounted to some peer.
    for peer in 0..4 {
        r.forget_peer(&peer);
    }
    assert_eq!(
        (r.buffered(), r.open()),
        (0, 0),
        "leaked after forgetting all peers"
    );
});
