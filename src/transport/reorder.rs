//! One track's RTP back in sequence order (pure), for readers that join packets into frames.
//!
//! A packet after a gap is held while the missing one may still come: the engine's NACK asks the
//! sending hop again, and its repair arrives a round trip plus up to one NACK interval (100 ms)
//! later, out of order. Without this, a frame whose packet was repaired late was dropped as
//! broken although every packet of it arrived. A gap not filled within [`WAIT`] (or with more
//! than [`MAX_HELD`] packets behind it) is given up, and what follows is released.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long packets wait behind a missing one.
pub const WAIT: Duration = Duration::from_millis(300);
/// Most packets held behind a gap (about a second of a 4 Mbit/s track).
pub const MAX_HELD: usize = 512;
/// A packet this far ahead of the next expected one is a new sequence (a restarted sender),
/// not a gap worth waiting for.
const JUMP: u64 = 3_000;
/// This many late packets in a row are a new sequence behind the old one: follow it.
const LATE_RUN: u32 = 64;

/// Puts packets back in order by their 16-bit sequence number.
#[derive(Debug, Default)]
pub struct Reorder<T> {
    /// The extended sequence number due next; `None` before the first packet.
    next: Option<u64>,
    /// Packets after a gap: extended sequence number → (arrival, packet).
    held: BTreeMap<u64, (Instant, T)>,
    /// Packets that came after their place was released (too late, or duplicates).
    late: u64,
    /// Late packets since the last one taken.
    late_run: u32,
}

impl<T> Reorder<T> {
    /// An empty buffer.
    pub fn new() -> Self {
        Reorder {
            next: None,
            held: BTreeMap::new(),
            late: 0,
            late_run: 0,
        }
    }

    /// Packets that came too late to be put in order, or twice.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Takes the packet numbered `seq`, arrived at `now`; returns the packets now due, in order.
    pub fn push(&mut self, seq: u16, packet: T, now: Instant) -> Vec<T> {
        // Extended numbers start one wrap up, so a packet just before the first is still below.
        let next = *self.next.get_or_insert(u64::from(seq) + (1 << 16));
        let ext = extend(next, seq);
        if ext < next {
            self.late += 1;
            self.late_run += 1;
            if self.late_run < LATE_RUN {
                return Vec::new();
            }
        }
        self.late_run = 0;
        if ext < next || ext >= next + JUMP {
            // A new sequence: what is held is released as it is, and counting restarts.
            let mut out: Vec<T> = std::mem::take(&mut self.held)
                .into_values()
                .map(|(_, p)| p)
                .collect();
            out.push(packet);
            self.next = Some(ext + 1);
            return out;
        }
        if self.held.insert(ext, (now, packet)).is_some() {
            self.late += 1;
        }
        self.release(now)
    }

    /// Releases what is due at `now`: everything in order, then past gaps that waited too long.
    fn release(&mut self, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        let Some(mut next) = self.next else {
            return out;
        };
        loop {
            while let Some((_, p)) = self.held.remove(&next) {
                out.push(p);
                next += 1;
            }
            let Some((&first, &(arrived, _))) = self.held.iter().next() else {
                break;
            };
            let oldest = self
                .held
                .values()
                .map(|(at, _)| *at)
                .min()
                .unwrap_or(arrived);
            if now.saturating_duration_since(oldest) < WAIT && self.held.len() <= MAX_HELD {
                break;
            }
            // The gap is given up: go on from the first packet after it.
            next = first;
        }
        self.next = Some(next);
        out
    }
}

/// The extended sequence number of `seq` nearest to `near`.
fn extend(near: u64, seq: u16) -> u64 {
    let era = near >> 16;
    [era.saturating_sub(1), era, era + 1]
        .into_iter()
        .map(|e| (e << 16) | u64::from(seq))
        .min_by_key(|c| c.abs_diff(near))
        .unwrap_or(near)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(r: &mut Reorder<u16>, seqs: &[u16], at: Instant) -> Vec<u16> {
        seqs.iter().flat_map(|&s| r.push(s, s, at)).collect()
    }

    #[test]
    fn in_order_packets_pass_at_once() {
        let mut r = Reorder::new();
        assert_eq!(feed(&mut r, &[7, 8, 9], Instant::now()), vec![7, 8, 9]);
    }

    #[test]
    fn a_late_packet_within_the_wait_is_put_back_in_its_place() {
        let t = Instant::now();
        let mut r = Reorder::new();
        assert_eq!(feed(&mut r, &[1, 3, 4], t), vec![1]);
        assert_eq!(r.push(2, 2, t + Duration::from_millis(150)), vec![2, 3, 4]);
        assert_eq!(r.late(), 0);
    }

    #[test]
    fn a_gap_is_given_up_after_the_wait_and_its_packet_then_counts_late() {
        let t = Instant::now();
        let mut r = Reorder::new();
        assert_eq!(feed(&mut r, &[1, 3], t), vec![1]);
        assert_eq!(r.push(4, 4, t + WAIT), vec![3, 4]);
        assert!(r.push(2, 2, t + WAIT).is_empty());
        assert_eq!(r.late(), 1);
    }

    #[test]
    fn too_many_held_packets_give_the_gap_up() {
        let t = Instant::now();
        let mut r = Reorder::new();
        r.push(0, 0, t);
        let seqs: Vec<u16> = (2..=(MAX_HELD as u16 + 2)).collect();
        let out = feed(&mut r, &seqs, t);
        assert_eq!(out, seqs);
    }

    #[test]
    fn order_survives_the_sequence_wrap_and_duplicates_are_dropped() {
        let t = Instant::now();
        let mut r = Reorder::new();
        assert_eq!(
            feed(&mut r, &[65_534, 0, 65_535, 1, 1], t),
            vec![65_534, 65_535, 0, 1]
        );
        assert_eq!(r.late(), 1);
    }

    #[test]
    fn a_restarted_sender_is_followed_not_waited_for() {
        let t = Instant::now();
        let mut r = Reorder::new();
        assert_eq!(
            feed(&mut r, &[10, 12, 20_000, 20_001], t),
            vec![10, 12, 20_000, 20_001]
        );
        // One that starts again behind: its first packets are late, then it is followed.
        let behind: Vec<u16> = (5_000..5_000 + LATE_RUN as u16 + 1).collect();
        assert_eq!(
            feed(&mut r, &behind, t),
            vec![5_000 + LATE_RUN as u16 - 1, 5_000 + LATE_RUN as u16]
        );
    }
}
