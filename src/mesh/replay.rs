//! The frames of the last few seconds, kept for links that come up later (see the router's
//! module docs): bounded by age, count and payload bytes, and counting own frames that expired
//! without ever going over a link.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::wire::cell::{CellFrame, FrameId};

/// One kept frame.
#[derive(Debug)]
struct Kept {
    at: Instant,
    frame: CellFrame,
    /// It went over some link (when kept, or asked for since).
    sent: bool,
}

/// Recent frames, oldest first.
#[derive(Debug)]
pub(super) struct Replay {
    window: Duration,
    max_frames: usize,
    max_bytes: usize,
    kept: VecDeque<Kept>,
    /// How many copies of each id `kept` holds: announcements ask whether a frame is still here
    /// at every flush, and rebuilding a set of the whole buffer for that cost most of a tick.
    held: FxHashMap<FrameId, u32>,
    bytes: usize,
    unsent_expired: u64,
}

impl Replay {
    pub(super) fn new(window: Duration, max_frames: usize, max_bytes: usize) -> Self {
        Replay {
            window,
            max_frames,
            max_bytes,
            kept: VecDeque::new(),
            held: FxHashMap::default(),
            bytes: 0,
            unsent_expired: 0,
        }
    }

    /// Keeps a frame; `sent` when it already went over some link.
    pub(super) fn keep(&mut self, frame: &CellFrame, sent: bool, now: Instant) {
        self.expire(now);
        self.bytes += frame.payload.len();
        *self.held.entry((frame.origin, frame.seq)).or_insert(0) += 1;
        self.kept.push_back(Kept {
            at: now,
            frame: frame.clone(),
            sent,
        });
        while self.kept.len() > self.max_frames
            || self.bytes > self.max_bytes && self.kept.len() > 1
        {
            self.pop();
        }
    }

    /// Drops what is older than the window.
    pub(super) fn expire(&mut self, now: Instant) {
        while self
            .kept
            .front()
            .is_some_and(|k| now.saturating_duration_since(k.at) >= self.window)
        {
            self.pop();
        }
    }

    fn pop(&mut self) {
        if let Some(k) = self.kept.pop_front() {
            self.unhold(&k.frame);
            self.bytes -= k.frame.payload.len();
            if k.frame.hops == 0 && !k.sent {
                self.unsent_expired += 1;
            }
        }
    }

    /// Takes one frame out (overlay notices have their own repair).
    pub(super) fn forget(&mut self, origin: &[u8; 32], seq: u64) {
        if let Some(i) = self
            .kept
            .iter()
            .rposition(|k| k.frame.seq == seq && k.frame.origin == *origin)
            && let Some(k) = self.kept.remove(i)
        {
            self.unhold(&k.frame);
            self.bytes -= k.frame.payload.len();
        }
    }

    fn unhold(&mut self, frame: &CellFrame) {
        let id = (frame.origin, frame.seq);
        if let Some(n) = self.held.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(&id);
            }
        }
    }

    /// Whether the frame is still kept.
    pub(super) fn holds(&self, id: &FrameId) -> bool {
        self.held.contains_key(id)
    }

    /// Ids of the frames sent at or after `since` (origins' clocks).
    pub(super) fn ids_since(&self, since: u64) -> Vec<FrameId> {
        self.kept
            .iter()
            .filter(|k| k.frame.seq >= since)
            .map(|k| (k.frame.origin, k.frame.seq))
            .collect()
    }

    /// The frames asked for, as fanned-out first copies (the asker spreads them in its cell).
    pub(super) fn take(&mut self, ids: &[FrameId]) -> Vec<CellFrame> {
        let wanted: HashSet<&FrameId> = ids.iter().collect();
        self.kept
            .iter_mut()
            .filter(|k| wanted.contains(&(k.frame.origin, k.frame.seq)))
            .map(|k| {
                k.sent = true;
                let mut f = k.frame.clone();
                f.fanout = true;
                f
            })
            .collect()
    }

    /// Own frames that expired without going over any link.
    pub(super) fn unsent_expired(&self) -> u64 {
        self.unsent_expired
    }

    /// Estimated bytes held.
    pub(super) fn memory_bytes(&self) -> usize {
        self.bytes + self.kept.len() * 160 + self.held.len() * 48
    }
}
