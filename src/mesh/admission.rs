//! Who may add members and frames to a cells room, as sans-IO policy (time passed in): budgets
//! of new members per source, frames held while their origin or sender is not known yet, and
//! limits on overlay notices.
//!
//! - **New members per source.** A member's record is self-signed, so anyone can mint records;
//!   what bounds them is who passes them on. Each source (a linked member passing on records
//!   and hellos, or the relays carrying announces) gets a token bucket of new members per
//!   second; members that introduce themselves over their own link are not budgeted here.
//! - **Held frames.** A member's frame can arrive before its roster record (the hello and the
//!   frame race through different paths), or over a link whose peer is not yet in the census.
//!   Such frames wait, a few per link and a bounded number and size per room, for a few
//!   seconds, and are checked again when the census grows; what is still unknown then is
//!   dropped and counted.
//! - **Notices.** "Gone" and "alive" notices from one origin are passed on and acted upon at a
//!   bounded rate, and this node answers being reported gone with at most one "alive" per
//!   interval, however many reports arrive (the answer is sent late rather than never).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::drops::DropReason;
use crate::wire::cell::CellFrame;

/// New members one linked source may add: a burst (a newcomer pulls the whole roster of a
/// room of this size at once), then this many a second.
pub const SOURCE_BURST: f64 = 2_048.0;
/// Refill rate of [`SOURCE_BURST`], members a second.
pub const SOURCE_PER_SEC: f64 = 256.0;
/// New members relays may bring (announces and other signed events of unknown peers): a burst
/// (a whole room starting at once), then this many a second.
pub const RELAY_BURST: f64 = 1_024.0;
/// Refill rate of [`RELAY_BURST`], members a second.
pub const RELAY_PER_SEC: f64 = 64.0;
/// Sources whose budgets are remembered (links come and go; the oldest go first).
const SOURCES: usize = 1_024;

/// How long a frame waits for its origin or sender to become known.
pub const HOLD_FOR: Duration = Duration::from_secs(3);
/// Most frames held per room.
pub const HOLD_FRAMES: usize = 64;
/// Most frames held per sending link.
pub const HOLD_PER_LINK: usize = 8;
/// Most payload bytes held per room.
pub const HOLD_BYTES: usize = 256 << 10;

/// Notices (gone or alive) one origin may send: a burst, then one per [`NOTICE_EVERY`].
pub const NOTICE_BURST: f64 = 16.0;
/// Refill period of [`NOTICE_BURST`].
pub const NOTICE_EVERY: Duration = Duration::from_secs(1);
/// Origins whose notice budgets are remembered.
const NOTICE_ORIGINS: usize = 4_096;
/// This node says "alive" at most once per this interval.
pub const ALIVE_EVERY: Duration = Duration::from_secs(2);

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    /// Takes one token if there is one (after refilling at `per_sec`, up to `burst`).
    fn take(&mut self, burst: f64, per_sec: f64, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * per_sec).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Where a new member came from, for its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// Its own link: it introduced itself, or we are linked to it (not budgeted).
    Own,
    /// A signed event on the room's topic, from a relay.
    Relay,
    /// A record (or hello) passed on by this linked member.
    Link(&'a str),
}

/// Budgets of new members per source.
#[derive(Debug, Default)]
pub struct Budgets {
    links: BTreeMap<String, Bucket>,
    relay: Option<Bucket>,
}

impl Budgets {
    /// Whether one more new member from `source` is within its budget (and takes it if so).
    pub fn allow(&mut self, source: Source<'_>, now: Instant) -> bool {
        match source {
            Source::Own => true,
            Source::Relay => self
                .relay
                .get_or_insert_with(|| Bucket::full(RELAY_BURST, now))
                .take(RELAY_BURST, RELAY_PER_SEC, now),
            Source::Link(peer) => {
                if !self.links.contains_key(peer) && self.links.len() >= SOURCES {
                    // Forget the source heard from longest ago (a link long gone).
                    if let Some(oldest) = self
                        .links
                        .iter()
                        .min_by_key(|(_, b)| b.at)
                        .map(|(p, _)| p.clone())
                    {
                        self.links.remove(&oldest);
                    }
                }
                self.links
                    .entry(peer.to_owned())
                    .or_insert_with(|| Bucket::full(SOURCE_BURST, now))
                    .take(SOURCE_BURST, SOURCE_PER_SEC, now)
            }
        }
    }
}

/// Why a frame waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Its sender's link is not an overlay link of the room (yet).
    Sender,
    /// Its origin is not a member (yet).
    Origin,
}

impl Wait {
    /// The counter of a frame dropped for this reason.
    pub fn drop_reason(self) -> DropReason {
        match self {
            Wait::Sender => DropReason::CellNotFromMember,
            Wait::Origin => DropReason::CellUnknownOrigin,
        }
    }
}

#[derive(Debug)]
struct HeldFrame {
    from: String,
    origin_id: String,
    frame: CellFrame,
    until: Instant,
}

/// Frames waiting for their origin or sender to become known, bounded (see the module docs).
#[derive(Debug, Default)]
pub struct Held {
    frames: VecDeque<HeldFrame>,
    bytes: usize,
}

impl Held {
    /// Holds a frame that came from `from` with origin `origin_id`; an error (the counter) when
    /// the link or the room holds as much as it may.
    pub fn hold(
        &mut self,
        from: &str,
        origin_id: &str,
        frame: CellFrame,
        now: Instant,
    ) -> Result<(), DropReason> {
        let size = frame.payload.len();
        let of_link = self.frames.iter().filter(|h| h.from == from).count();
        if of_link >= HOLD_PER_LINK
            || self.frames.len() >= HOLD_FRAMES
            || self.bytes + size > HOLD_BYTES
        {
            return Err(DropReason::CellHoldFull);
        }
        self.bytes += size;
        self.frames.push_back(HeldFrame {
            from: from.to_owned(),
            origin_id: origin_id.to_owned(),
            frame,
            until: now + HOLD_FOR,
        });
        Ok(())
    }

    /// Takes out, in arrival order, the frames whose sender and origin are now known
    /// (`known(from, origin_id)`), for another look.
    pub fn take_ready(&mut self, known: impl Fn(&str, &str) -> bool) -> Vec<(String, CellFrame)> {
        let mut ready = Vec::new();
        let mut keep = VecDeque::with_capacity(self.frames.len());
        for h in self.frames.drain(..) {
            if known(&h.from, &h.origin_id) {
                self.bytes -= h.frame.payload.len();
                ready.push((h.from, h.frame));
            } else {
                keep.push_back(h);
            }
        }
        self.frames = keep;
        ready
    }

    /// Drops the frames that waited too long; `why(from, origin_id)` says what is still
    /// missing for each, and the counters are returned.
    pub fn expire(&mut self, now: Instant, why: impl Fn(&str, &str) -> Wait) -> Vec<DropReason> {
        let mut dropped = Vec::new();
        while self.frames.front().is_some_and(|h| h.until <= now) {
            if let Some(h) = self.frames.pop_front() {
                self.bytes -= h.frame.payload.len();
                dropped.push(why(&h.from, &h.origin_id).drop_reason());
            }
        }
        dropped
    }

    /// The link to `peer` went down: what it sent and still waits is dropped (counted).
    pub fn link_down(&mut self, peer: &str) -> Vec<DropReason> {
        let mut dropped = Vec::new();
        let bytes = &mut self.bytes;
        self.frames.retain(|h| {
            let keep = h.from != peer;
            if !keep {
                *bytes -= h.frame.payload.len();
                dropped.push(DropReason::CellNotFromMember);
            }
            keep
        });
        dropped
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// When the oldest held frame expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.frames.front().map(|h| h.until)
    }
}

/// Notice budgets per origin, and this node's "alive" answers.
#[derive(Debug, Default)]
pub struct Notices {
    origins: BTreeMap<[u8; 32], Bucket>,
    last_alive: Option<Instant>,
    alive_owed: bool,
}

impl Notices {
    /// Whether a notice from this (member) origin is within its budget.
    pub fn allow(&mut self, origin: &[u8; 32], now: Instant) -> bool {
        if !self.origins.contains_key(origin) && self.origins.len() >= NOTICE_ORIGINS {
            // Origins whose bucket is full again have nothing to remember.
            let full = NOTICE_EVERY.mul_f64(NOTICE_BURST);
            self.origins
                .retain(|_, b| now.saturating_duration_since(b.at) < full);
            if self.origins.len() >= NOTICE_ORIGINS {
                return false;
            }
        }
        let per_sec = 1.0 / NOTICE_EVERY.as_secs_f64();
        self.origins
            .entry(*origin)
            .or_insert_with(|| Bucket::full(NOTICE_BURST, now))
            .take(NOTICE_BURST, per_sec, now)
    }

    /// This node was reported gone: true when it says "alive" now; otherwise the answer is
    /// owed and [`Notices::alive_due`] says when it may go.
    pub fn reported_gone(&mut self, now: Instant) -> bool {
        match self.last_alive {
            Some(at) if now < at + ALIVE_EVERY => {
                self.alive_owed = true;
                false
            }
            _ => {
                self.last_alive = Some(now);
                self.alive_owed = false;
                true
            }
        }
    }

    /// True once when an owed "alive" may go now.
    pub fn alive_due(&mut self, now: Instant) -> bool {
        if !self.alive_owed || self.last_alive.is_some_and(|at| now < at + ALIVE_EVERY) {
            return false;
        }
        self.alive_owed = false;
        self.last_alive = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(seq: u64, len: usize) -> CellFrame {
        CellFrame {
            fanout: false,
            max_hops: 3,
            hops: 0,
            origin: [1; 32],
            seq,
            targets: Vec::new(),
            payload: Bytes::from(vec![0; len]),
            sig: [0; 64],
        }
    }

    #[test]
    fn a_link_adds_a_burst_of_members_then_a_bounded_rate_and_others_keep_theirs() {
        let t0 = Instant::now();
        let mut b = Budgets::default();
        let taken = (0..10_000)
            .filter(|_| b.allow(Source::Link("hostile"), t0))
            .count();
        assert_eq!(taken, SOURCE_BURST as usize);
        let t1 = t0 + Duration::from_secs(1);
        let more = (0..10_000)
            .filter(|_| b.allow(Source::Link("hostile"), t1))
            .count();
        assert_eq!(more, SOURCE_PER_SEC as usize);
        assert!(
            b.allow(Source::Link("honest"), t1),
            "one link starved another"
        );
        assert!(b.allow(Source::Own, t1));
        let relayed = (0..10_000).filter(|_| b.allow(Source::Relay, t0)).count();
        assert_eq!(relayed, RELAY_BURST as usize);
    }

    #[test]
    fn held_frames_are_bounded_released_when_known_and_expire_counted() {
        let t0 = Instant::now();
        let mut h = Held::default();
        for i in 0..HOLD_PER_LINK as u64 {
            assert_eq!(h.hold("a", "o1", frame(i, 10), t0), Ok(()));
        }
        assert_eq!(
            h.hold("a", "o1", frame(99, 10), t0),
            Err(DropReason::CellHoldFull),
            "one link took more than its share"
        );
        assert_eq!(
            h.hold("b", "o2", frame(1, HOLD_BYTES), t0),
            Err(DropReason::CellHoldFull)
        );
        assert_eq!(h.hold("b", "o2", frame(1, 10), t0), Ok(()));
        assert_eq!(h.hold("c", "o3", frame(1, 10), t0), Ok(()));
        // o1 becomes known: its frames come out in order, the others stay.
        let ready = h.take_ready(|_, o| o == "o1");
        assert_eq!(ready.len(), HOLD_PER_LINK);
        assert!(ready.windows(2).all(|w| w[0].1.seq < w[1].1.seq));
        assert_eq!(h.len(), 2);
        assert!(h.expire(t0 + HOLD_FOR / 2, |_, _| Wait::Origin).is_empty());
        assert_eq!(h.link_down("c"), vec![DropReason::CellNotFromMember]);
        assert_eq!(
            h.expire(t0 + HOLD_FOR, |_, _| Wait::Origin),
            vec![DropReason::CellUnknownOrigin]
        );
        assert!(h.is_empty());
        assert_eq!(h.bytes, 0);
        // Room-wide, not per link only.
        for i in 0..HOLD_FRAMES {
            let _ = h.hold(&format!("l{i}"), "o", frame(1, 1), t0);
        }
        assert_eq!(
            h.hold("z", "o", frame(1, 1), t0),
            Err(DropReason::CellHoldFull)
        );
    }

    #[test]
    fn notices_per_origin_are_bounded_and_alive_goes_once_per_interval_but_is_never_lost() {
        let t0 = Instant::now();
        let mut n = Notices::default();
        let passed = (0..1_000).filter(|_| n.allow(&[7; 32], t0)).count();
        assert_eq!(passed, NOTICE_BURST as usize);
        assert!(n.allow(&[8; 32], t0), "another origin is not held back");
        assert!(n.allow(&[7; 32], t0 + NOTICE_EVERY));
        // A thousand reports in a second: one answer now, one owed, none more.
        let now_answers = (0..1_000)
            .filter(|i| n.reported_gone(t0 + Duration::from_millis(*i)))
            .count();
        assert_eq!(now_answers, 1);
        assert!(!n.alive_due(t0 + ALIVE_EVERY / 2));
        assert!(n.alive_due(t0 + ALIVE_EVERY));
        assert!(!n.alive_due(t0 + ALIVE_EVERY * 3), "answered twice");
        assert!(n.reported_gone(t0 + ALIVE_EVERY * 3));
    }
}
