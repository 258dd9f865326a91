//! Roster reconciliation over overlay links, as a sans-IO state machine.
//!
//! Each peer holds the signed records of the members it knows, summarized as a digest of 64
//! placement buckets (count and XOR of fingerprints). Two linked peers swap digests when the link
//! comes up; a peer whose roster changed shows its digest to all its links (at most twice a
//! second), and now and then to one random link even when nothing changed; a peer pulls the
//! buckets in which the other seems to hold more (one peer at a time per bucket, so a newcomer
//! with twenty fresh links is sent the roster once, not twenty times), in pages. A peer serves
//! a bounded number of requests per second per link. Records of members that left are
//! tombstoned, so a stale copy cannot bring them back; a member that rejoins signs a newer record.
//!
//! Verifying records is the caller's job (the simulator trusts its own); this machine only
//! decides what to send and what to ask for.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::drops::DropReason;
use crate::wire::roster::{BUCKETS, Bucket, RECORDS_PER_PAGE, RosterMsg, RosterRecord};

/// How long a bucket requested from one peer is not asked of another.
const PENDING_FOR: Duration = Duration::from_secs(3);
/// Anti-entropy period while the roster changes.
const GOSSIP_BUSY: Duration = Duration::from_secs(2);
/// A changed roster is shown to every link at most this often.
const PUSH_EVERY: Duration = Duration::from_millis(500);
/// Anti-entropy period once it has been quiet for `QUIET_AFTER`.
const GOSSIP_QUIET: Duration = Duration::from_secs(20);
const QUIET_AFTER: Duration = Duration::from_secs(30);
/// Records served per link: a burst (a whole large roster), refilled at this rate per second.
const SERVE_BURST: f64 = 20_000.0;
const SERVE_PER_SEC: f64 = 5_000.0;
/// How long a departed member's record stays refused.
const TOMBSTONE_FOR: Duration = Duration::from_secs(300);
/// Most members a roster holds (the census of a cells room holds as many, and makes room for
/// members it is linked to by evicting hearsay: see `node::cells`).
pub const MAX_MEMBERS: usize = 65_536;

/// What the roster asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterOut {
    /// Send a sync message over the link to this peer.
    Send(String, RosterMsg),
    /// Count a refused input.
    Drop(DropReason),
}

#[derive(Debug, Clone)]
struct Item {
    record: RosterRecord,
    place: u64,
}

#[derive(Debug, Clone, Copy)]
struct Serve {
    tokens: f64,
    at: Instant,
}

/// One peer's roster records and sync state for one room.
#[derive(Debug)]
pub struct RosterSync {
    items: BTreeMap<String, Item>,
    /// Departed members: records issued at or before the floor are refused until `until`.
    tombstones: BTreeMap<String, (u64, Instant)>,
    /// Per bucket: the peer it was requested from, and until when.
    pending: [Option<(String, Instant)>; BUCKETS],
    /// The last digest each linked peer sent.
    digests: BTreeMap<String, Box<[Bucket; BUCKETS]>>,
    /// Pulls each linked peer left unanswered, or answered with less than its digest claimed:
    /// peers with fewer are asked first, so one that boasts and serves nothing cannot keep
    /// every bucket pending with itself.
    strikes: BTreeMap<String, u32>,
    /// Our own digest, kept up to date as records come and go.
    buckets: Box<[Bucket; BUCKETS]>,
    serve: BTreeMap<String, Serve>,
    changed_at: Instant,
    next_gossip: Instant,
    /// When the digest last went to every link, and whether the roster changed since.
    pushed_at: Instant,
    unpushed: bool,
}

/// The bucket of a placement.
pub fn bucket_of(place: u64) -> usize {
    (place >> 58) as usize
}

impl RosterSync {
    /// An empty roster.
    pub fn new(now: Instant) -> Self {
        RosterSync {
            items: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            pending: std::array::from_fn(|_| None),
            digests: BTreeMap::new(),
            strikes: BTreeMap::new(),
            buckets: Box::new([Bucket::default(); BUCKETS]),
            serve: BTreeMap::new(),
            changed_at: now,
            next_gossip: now + GOSSIP_BUSY,
            pushed_at: now,
            unpushed: false,
        }
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// When a member joined (its record's date, Unix seconds), if its record is held.
    pub fn issued(&self, id: &str) -> Option<u64> {
        self.items.get(id).map(|i| i.record.issued)
    }

    /// Whether a record is refused without looking further: its member left after it was
    /// issued, or an equal or newer record is held.
    pub fn refuses(&self, id: &str, record: &RosterRecord, now: Instant) -> bool {
        let buried = self
            .tombstones
            .get(id)
            .is_some_and(|(floor, until)| record.issued <= *floor && now < *until);
        let older = self
            .items
            .get(id)
            .is_some_and(|i| i.record.issued >= record.issued);
        buried || older
    }

    /// Adds a verified record (a newer one replaces the old). True when the member is new.
    pub fn insert(
        &mut self,
        id: &str,
        record: RosterRecord,
        place: u64,
        now: Instant,
    ) -> Result<bool, DropReason> {
        if self.refuses(id, &record, now) {
            return Ok(false);
        }
        let new = !self.items.contains_key(id);
        if new && self.items.len() >= MAX_MEMBERS {
            return Err(DropReason::RosterFull);
        }
        if let Some(old) = self.items.insert(id.to_owned(), Item { record, place }) {
            self.account(&old, false);
        }
        self.account(&Item { record, place }, true);
        self.mark_changed(now);
        Ok(new)
    }

    /// A member left (or was found dead): its records so far are refused for a while.
    pub fn remove(&mut self, id: &str, now: Instant) {
        if let Some(item) = self.items.remove(id) {
            self.account(&item, false);
            self.tombstones
                .insert(id.to_owned(), (item.record.issued, now + TOMBSTONE_FOR));
            self.mark_changed(now);
        }
    }

    /// Drops a member's record to make room for another (the census chose whom): no
    /// tombstone, so its record is welcome again later.
    pub fn evict(&mut self, id: &str, now: Instant) {
        if let Some(item) = self.items.remove(id) {
            self.account(&item, false);
            self.mark_changed(now);
        }
    }

    /// The member is back (heard from directly): its records are welcome again.
    pub fn unbury(&mut self, id: &str) {
        self.tombstones.remove(id);
    }

    fn mark_changed(&mut self, now: Instant) {
        if now.saturating_duration_since(self.changed_at) >= QUIET_AFTER {
            self.next_gossip = self.next_gossip.min(now + GOSSIP_BUSY);
        }
        self.changed_at = now;
        self.unpushed = true;
    }

    /// Adds an item to our digest, or takes it out (XOR is its own inverse).
    fn account(&mut self, item: &Item, added: bool) {
        let b = &mut self.buckets[bucket_of(item.place)];
        b.fingerprint ^= item.record.fingerprint();
        if added {
            b.count += 1;
        } else {
            b.count -= 1;
        }
    }

    /// The digest of what is held.
    pub fn digest(&self) -> Box<[Bucket; BUCKETS]> {
        self.buckets.clone()
    }

    /// A link came up: both ends send their digest.
    pub fn link_up(&mut self, peer: &str) -> Vec<RosterOut> {
        vec![RosterOut::Send(
            peer.to_owned(),
            RosterMsg::Digest {
                reply: false,
                buckets: self.digest(),
            },
        )]
    }

    /// A link went down: what it owed us is asked of others.
    pub fn link_down(&mut self, peer: &str) {
        self.digests.remove(peer);
        self.strikes.remove(peer);
        self.serve.remove(peer);
        for p in self.pending.iter_mut() {
            if p.as_ref().is_some_and(|(from, _)| from == peer) {
                *p = None;
            }
        }
    }

    /// Whether records from this peer are expected: we asked it for some bucket (records
    /// nobody asked for are refused, so a peer cannot flood us with them).
    pub fn expects_records_from(&self, peer: &str) -> bool {
        self.pending
            .iter()
            .any(|p| p.as_ref().is_some_and(|(from, _)| from == peer))
    }

    /// A sync message from a linked peer (records already verified and inserted by the
    /// caller, who passes `Records` here only to settle what was pending).
    pub fn on_msg(&mut self, from: &str, msg: &RosterMsg, now: Instant) -> Vec<RosterOut> {
        match msg {
            RosterMsg::Digest { reply, buckets } => {
                let mut out = Vec::new();
                let mine = self.digest();
                if !reply && mine != *buckets {
                    out.push(RosterOut::Send(
                        from.to_owned(),
                        RosterMsg::Digest {
                            reply: true,
                            buckets: mine,
                        },
                    ));
                }
                self.digests.insert(from.to_owned(), buckets.clone());
                out.extend(self.pull(now));
                out
            }
            RosterMsg::Request { mask } => self.serve(from, *mask, now),
            RosterMsg::Records { done, .. } => {
                let mut settled = false;
                let mut short = false;
                for (b, p) in self.pending.iter_mut().enumerate() {
                    if done & (1 << b) != 0 && p.as_ref().is_some_and(|(f, _)| f == from) {
                        *p = None;
                        settled = true;
                        let claimed = self.digests.get(from).map_or(0, |d| d[b].count);
                        short |= self.buckets[b].count < claimed;
                    }
                }
                if short {
                    *self.strikes.entry(from.to_owned()).or_default() += 1;
                }
                // We hold all it had in those buckets: its digest says nothing more about them
                // until it sends a new one.
                if let Some(d) = self.digests.get_mut(from) {
                    for (b, bucket) in d.iter_mut().enumerate() {
                        if done & (1 << b) != 0 {
                            *bucket = Bucket::default();
                        }
                    }
                }
                let owed = self.expects_records_from(from);
                let mut out = Vec::new();
                if settled && !owed {
                    // Our pull from this peer is complete: show it what we hold now, so it
                    // pulls what only we had.
                    out.push(RosterOut::Send(
                        from.to_owned(),
                        RosterMsg::Digest {
                            reply: true,
                            buckets: self.digest(),
                        },
                    ));
                }
                // What this peer sent may still differ from what others hold.
                out.extend(self.pull(now));
                out
            }
        }
    }

    /// Asks, per bucket not pending, one peer whose digest suggests it holds more.
    fn pull(&mut self, now: Instant) -> Vec<RosterOut> {
        let mine = self.digest();
        let mut asks: BTreeMap<String, u64> = BTreeMap::new();
        for b in 0..BUCKETS {
            match &self.pending[b] {
                Some((_, until)) if now < *until => continue,
                Some((peer, _)) => {
                    // Unanswered: it says nothing more about this bucket until its next digest.
                    *self.strikes.entry(peer.clone()).or_default() += 1;
                    if let Some(d) = self.digests.get_mut(peer) {
                        d[b] = Bucket::default();
                    }
                }
                None => {}
            }
            self.pending[b] = None;
            let ours = mine[b];
            // The peer with the fewest strikes and then the most records in the bucket, if it
            // seems to hold what we lack.
            let strikes = |p: &str| std::cmp::Reverse(self.strikes.get(p).copied().unwrap_or(0));
            let best = self
                .digests
                .iter()
                .filter(|(_, d)| {
                    let theirs = d[b];
                    theirs.count > ours.count
                        || theirs.count == ours.count && theirs.fingerprint != ours.fingerprint
                })
                .max_by_key(|(p, d)| (strikes(p), d[b].count, std::cmp::Reverse(p.as_str())))
                .map(|(p, _)| p.clone());
            if let Some(peer) = best {
                self.pending[b] = Some((peer.clone(), now + PENDING_FOR));
                *asks.entry(peer).or_default() |= 1 << b;
            }
        }
        asks.into_iter()
            .map(|(peer, mask)| RosterOut::Send(peer, RosterMsg::Request { mask }))
            .collect()
    }

    /// Answers a request with every record of the buckets asked, in pages, as many whole
    /// buckets as this link's record budget allows (the rest are asked again later).
    fn serve(&mut self, from: &str, mask: u64, now: Instant) -> Vec<RosterOut> {
        let s = self.serve.entry(from.to_owned()).or_insert(Serve {
            tokens: SERVE_BURST,
            at: now,
        });
        s.tokens = (s.tokens + now.saturating_duration_since(s.at).as_secs_f64() * SERVE_PER_SEC)
            .min(SERVE_BURST);
        s.at = now;
        let mut granted = 0u64;
        for b in (0..BUCKETS).filter(|b| mask & (1 << b) != 0) {
            let cost = f64::from(self.buckets[b].count);
            if cost <= s.tokens {
                s.tokens -= cost;
                granted |= 1 << b;
            }
        }
        if granted == 0 && mask != 0 {
            return vec![RosterOut::Drop(DropReason::RosterRateLimited)];
        }
        let mut by_bucket: Vec<Vec<RosterRecord>> = vec![Vec::new(); BUCKETS];
        for item in self.items.values() {
            let b = bucket_of(item.place);
            if granted & (1 << b) != 0 {
                by_bucket[b].push(item.record);
            }
        }
        let mut pages = Vec::new();
        let mut page = Vec::new();
        let mut done = 0u64;
        for (b, records) in by_bucket.into_iter().enumerate() {
            if granted & (1 << b) == 0 {
                continue;
            }
            for record in records {
                if page.len() == RECORDS_PER_PAGE {
                    pages.push(RosterMsg::Records {
                        done: std::mem::take(&mut done),
                        records: std::mem::take(&mut page),
                    });
                }
                page.push(record);
            }
            done |= 1 << b;
        }
        pages.push(RosterMsg::Records {
            done,
            records: page,
        });
        pages
            .into_iter()
            .map(|m| RosterOut::Send(from.to_owned(), m))
            .collect()
    }

    /// Time passed: expired tombstones go, and now and then one random link (`pick` indexes
    /// `linked`) gets our digest, so what one link missed another brings.
    pub fn tick(&mut self, now: Instant, linked: &[String], pick: usize) -> Vec<RosterOut> {
        self.tombstones.retain(|_, (_, until)| now < *until);
        let mut out = self.pull(now);
        if linked.is_empty() {
            return out;
        }
        if self.unpushed && now >= self.pushed_at + PUSH_EVERY {
            // News travels by push-pull: every link sees what changed and pulls what it lacks.
            self.unpushed = false;
            self.pushed_at = now;
            self.next_gossip = now + GOSSIP_BUSY;
            let buckets = self.digest();
            out.extend(linked.iter().map(|p| {
                RosterOut::Send(
                    p.clone(),
                    RosterMsg::Digest {
                        reply: false,
                        buckets: buckets.clone(),
                    },
                )
            }));
            return out;
        }
        if now < self.next_gossip {
            return out;
        }
        let quiet = now.saturating_duration_since(self.changed_at) >= QUIET_AFTER;
        self.next_gossip = now + if quiet { GOSSIP_QUIET } else { GOSSIP_BUSY };
        let peer = &linked[pick % linked.len()];
        out.push(RosterOut::Send(
            peer.clone(),
            RosterMsg::Digest {
                reply: false,
                buckets: self.digest(),
            },
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr_sdk::Keys;

    fn member(i: u64) -> (String, RosterRecord, u64) {
        let keys = Keys::generate();
        let r = RosterRecord::sign(&keys, b"salt", 1_000 + i);
        (
            format!("m{i:04}"),
            r,
            crate::mesh::placement(b"salt", &r.key),
        )
    }

    /// Runs messages between two syncs until quiet; returns how many records crossed.
    fn exchange(
        a: &mut RosterSync,
        b: &mut RosterSync,
        start: Vec<RosterOut>,
        now: Instant,
    ) -> usize {
        let mut queue: Vec<(bool, RosterMsg)> = start
            .into_iter()
            .filter_map(|o| match o {
                RosterOut::Send(_, m) => Some((true, m)),
                RosterOut::Drop(_) => None,
            })
            .collect();
        let mut crossed = 0;
        let mut places: BTreeMap<[u8; 32], (String, u64)> = BTreeMap::new();
        for (id, item) in a.items.iter().chain(b.items.iter()) {
            places.insert(item.record.key, (id.clone(), item.place));
        }
        while let Some((to_b, msg)) = queue.pop() {
            let (dst, from) = if to_b { (&mut *b, "a") } else { (&mut *a, "b") };
            if let RosterMsg::Records { records, .. } = &msg {
                for r in records {
                    let (id, place) = places[&r.key].clone();
                    if dst.insert(&id, *r, place, now).unwrap_or(false) {
                        crossed += 1;
                    }
                }
            }
            for o in dst.on_msg(from, &msg, now) {
                if let RosterOut::Send(_, m) = o {
                    queue.push((!to_b, m));
                }
            }
        }
        crossed
    }

    #[test]
    fn two_rosters_reconcile_to_their_union() {
        let now = Instant::now();
        let (mut a, mut b) = (RosterSync::new(now), RosterSync::new(now));
        for i in 0..300 {
            let (id, r, place) = member(i);
            if i % 3 != 0 {
                a.insert(&id, r, place, now).expect("room");
            }
            if i % 3 != 1 {
                b.insert(&id, r, place, now).expect("room");
            }
        }
        let start = a.link_up("b");
        exchange(&mut a, &mut b, start, now);
        assert_eq!(a.len(), 300);
        assert_eq!(b.len(), 300);
        assert_eq!(a.digest(), b.digest());
    }

    #[test]
    fn a_newcomer_is_sent_the_roster_once_though_many_links_come_up() {
        let now = Instant::now();
        let mut old = RosterSync::new(now);
        let members: Vec<_> = (0..500).map(member).collect();
        for (id, r, p) in &members {
            old.insert(id, *r, *p, now).expect("room");
        }
        let digest = old.digest();
        let mut newcomer = RosterSync::new(now);
        let mut requests = 0;
        for peer in ["p1", "p2", "p3", "p4"] {
            let outs = newcomer.on_msg(
                peer,
                &RosterMsg::Digest {
                    reply: false,
                    buckets: digest.clone(),
                },
                now,
            );
            requests += outs
                .iter()
                .filter(|o| matches!(o, RosterOut::Send(_, RosterMsg::Request { .. })))
                .count();
        }
        assert_eq!(requests, 1, "the roster was asked of more than one link");
        // Pages of at most RECORDS_PER_PAGE, the last one completing every bucket asked.
        let pages = old.on_msg("n", &RosterMsg::Request { mask: u64::MAX }, now);
        assert!(pages.len() >= 500 / RECORDS_PER_PAGE);
        let mut done = 0;
        let mut got = 0;
        for o in &pages {
            if let RosterOut::Send(_, RosterMsg::Records { done: d, records }) = o {
                assert!(records.len() <= RECORDS_PER_PAGE);
                done |= d;
                got += records.len();
            }
        }
        assert_eq!((got, done), (500, u64::MAX));
    }

    #[test]
    fn requests_are_rate_limited_and_departed_members_stay_out() {
        let now = Instant::now();
        let mut s = RosterSync::new(now);
        // 2,000 members; whole-roster requests as fast as a hostile peer can send them.
        let members: Vec<_> = (0..2_000).map(member).collect();
        for (id, r, p) in &members {
            s.insert(id, *r, *p, now).expect("room");
        }
        let served = |outs: &[RosterOut]| {
            outs.iter()
                .filter(|o| matches!(o, RosterOut::Send(..)))
                .count()
        };
        let mut answered = 0;
        for _ in 0..20 {
            if served(&s.on_msg("x", &RosterMsg::Request { mask: u64::MAX }, now)) > 0 {
                answered += 1;
            }
        }
        assert_eq!(
            answered,
            (SERVE_BURST / 2_000.0) as usize,
            "records served in a burst"
        );
        let later = now + Duration::from_secs(1);
        let more = served(&s.on_msg("x", &RosterMsg::Request { mask: u64::MAX }, later));
        assert!(more > 0, "the budget refills");
        let (id, r, p) = member(9_999);
        let now = later;
        assert_eq!(s.insert(&id, r, p, now), Ok(true));
        s.remove(&id, now);
        assert_eq!(
            s.insert(&id, r, p, now),
            Ok(false),
            "a stale record came back"
        );
        let mut newer = r;
        newer.issued += 10;
        assert!(!s.refuses(&id, &newer, now), "a rejoin was refused");
        assert_eq!(s.insert(&id, r, p, now + TOMBSTONE_FOR), Ok(true));
    }

    #[test]
    fn a_peer_that_boasts_and_serves_nothing_is_asked_last() {
        let now = Instant::now();
        let mut honest = RosterSync::new(now);
        // Enough members that every bucket holds some (the liar then claims no bucket alone).
        for (id, r, p) in (0..2_000).map(member) {
            honest.insert(&id, r, p, now).expect("room");
        }
        let boast = Box::new(
            [Bucket {
                count: u32::MAX,
                fingerprint: 7,
            }; BUCKETS],
        );
        let asked = |outs: &[RosterOut]| -> Vec<String> {
            outs.iter()
                .filter_map(|o| match o {
                    RosterOut::Send(p, RosterMsg::Request { .. }) => Some(p.clone()),
                    _ => None,
                })
                .collect()
        };
        let digest = |buckets| RosterMsg::Digest {
            reply: true,
            buckets,
        };
        // A liar that never answers: once its pulls expire, the honest peer is asked.
        let mut n = RosterSync::new(now);
        assert_eq!(
            asked(&n.on_msg("liar", &digest(boast.clone()), now)),
            ["liar"]
        );
        assert!(asked(&n.on_msg("good", &digest(honest.digest()), now)).is_empty());
        let later = now + PENDING_FOR;
        assert_eq!(asked(&n.tick(later, &[], 0)), ["good"]);
        let outs = n.on_msg("liar", &digest(boast.clone()), later);
        assert!(
            asked(&outs).is_empty(),
            "a boast took a pending bucket: {outs:?}"
        );
        // A liar that answers with nothing is struck, and the honest peer is asked next.
        let mut n = RosterSync::new(now);
        assert_eq!(
            asked(&n.on_msg("liar", &digest(boast.clone()), now)),
            ["liar"]
        );
        assert!(asked(&n.on_msg("good", &digest(honest.digest()), now)).is_empty());
        let empty = RosterMsg::Records {
            done: u64::MAX,
            records: Vec::new(),
        };
        assert_eq!(asked(&n.on_msg("liar", &empty, now)), ["good"]);
        assert_eq!(n.strikes.get("liar"), Some(&1));
    }
}
