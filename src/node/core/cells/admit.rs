//! Admission of a cells room: which frames the overlay may take, which members the census may
//! take, and the bounded waiting room in between (policy and limits in
//! [`crate::mesh::admission`]).
//!
//! A frame is taken only over an overlay link (a member of the census, linked in this room)
//! and only from an origin in the census. A hello (the origin's own roster record in a notice)
//! is how an origin joins the census through the overlay, so it is judged as a record: within
//! its source's budget, with a MAC in password rooms. Frames from an unknown origin or over a
//! link not yet known wait a few seconds for the census to catch up; "gone" and "alive" notices
//! from non-members are dropped at once, and members' notices are rate-limited.

use std::time::Instant;

use super::{CellRoom, NOTICE_ALIVE, NOTICE_GONE, NOTICE_RECORD, Via};
use crate::drops::DropReason;
use crate::mesh::admission::Source;
use crate::wire::cell::CellFrame;
use crate::wire::roster::RosterRecord;

/// What admission made of a cell frame.
#[derive(Debug)]
pub enum Admit {
    /// Checked, signature included: the overlay may take it. `newcomer` is a member its hello
    /// just added to the census.
    Pass {
        /// The frame.
        frame: CellFrame,
        /// The member the frame's hello added, if any.
        newcomer: Option<String>,
    },
    /// Waits for its sender or origin to become known.
    Held,
    /// Refused (the counter).
    Drop(DropReason),
}

impl CellRoom {
    /// True when the link to `peer` is an overlay link: a census member, linked in this room.
    pub fn is_overlay_link(&self, peer: &str) -> bool {
        self.census.contains_key(peer) && self.mesh.is_linked(peer)
    }

    /// Judges a frame that arrived over the link to `from` (bounded work: one signature check,
    /// and one record check for a hello).
    pub fn admit(&mut self, from: &str, frame: CellFrame, now: Instant, wall_secs: u64) -> Admit {
        // Duplicates go before the (costly) signature check; a forged frame can only collide
        // with one already seen, so it cannot suppress a genuine one.
        if self.mesh.seen(&frame) {
            return Admit::Drop(DropReason::CellDuplicate);
        }
        let Some(origin_id) = self.origin_id(&frame.origin) else {
            return Admit::Drop(DropReason::CellBadOrigin);
        };
        let sender_known = self.is_overlay_link(from);
        let origin_known = self.census.contains_key(&origin_id);
        match frame.payload.first().copied() {
            Some(NOTICE_RECORD) => {
                // A member introducing itself over its own link needs no one to vouch for it.
                let own_link = origin_id == from;
                if !sender_known && !own_link {
                    return self.hold(from, &origin_id, frame, now);
                }
                let record = match RosterRecord::decode(&frame.payload[1..]) {
                    Some(r) if r.key == frame.origin => r,
                    // A member speaks only for itself: the record must be the origin's own.
                    _ => return Admit::Drop(DropReason::RosterBadRecord),
                };
                if frame.verify(&self.salt).is_err() {
                    return Admit::Drop(DropReason::CellBadSignature);
                }
                let source = if own_link {
                    Source::Own
                } else {
                    Source::Link(from)
                };
                let newcomer = match self.learn(&record, source, now, wall_secs) {
                    Ok(id) => id,
                    Err(reason) => return Admit::Drop(reason),
                };
                if !self.census.contains_key(&origin_id) {
                    // Refused quietly (a departed member's old record).
                    return Admit::Drop(DropReason::CellUnknownOrigin);
                }
                Admit::Pass { frame, newcomer }
            }
            Some(NOTICE_GONE | NOTICE_ALIVE) => {
                if !origin_known {
                    return Admit::Drop(DropReason::CellNoticeNotMember);
                }
                if !sender_known {
                    return self.hold(from, &origin_id, frame, now);
                }
                if frame.verify(&self.salt).is_err() {
                    return Admit::Drop(DropReason::CellBadSignature);
                }
                // After the signature: forgeries cannot spend a member's budget.
                if !self.notices.allow(&frame.origin, now) {
                    return Admit::Drop(DropReason::CellNoticeRateLimited);
                }
                Admit::Pass {
                    frame,
                    newcomer: None,
                }
            }
            _ => {
                if !sender_known || !origin_known {
                    return self.hold(from, &origin_id, frame, now);
                }
                if frame.verify(&self.salt).is_err() {
                    return Admit::Drop(DropReason::CellBadSignature);
                }
                Admit::Pass {
                    frame,
                    newcomer: None,
                }
            }
        }
    }

    fn hold(&mut self, from: &str, origin_id: &str, frame: CellFrame, now: Instant) -> Admit {
        match self.held.hold(from, origin_id, frame, now) {
            Ok(()) => Admit::Held,
            Err(reason) => Admit::Drop(reason),
        }
    }

    /// Held frames whose sender and origin are known now, with the link each came over, to be
    /// judged again.
    pub fn take_released(&mut self) -> Vec<(String, CellFrame)> {
        if self.held.is_empty() {
            return Vec::new();
        }
        let (census, mesh) = (&self.census, &self.mesh);
        self.held.take_ready(|from, origin| {
            census.contains_key(origin) && census.contains_key(from) && mesh.is_linked(from)
        })
    }

    /// Drops decided since the last call (held frames that expired or lost their link).
    pub fn take_drops(&mut self) -> Vec<DropReason> {
        std::mem::take(&mut self.drops)
    }

    /// This node was named in a "gone" notice: true when it answers "alive" now (at most once
    /// per interval; a later answer is owed, see [`CellRoom::alive_due`]).
    pub fn reported_gone(&mut self, now: Instant) -> bool {
        self.notices.reported_gone(now)
    }

    /// True once when an owed "alive" may go now.
    pub fn alive_due(&mut self, now: Instant) -> bool {
        self.notices.alive_due(now)
    }

    /// Makes room in the census for a new member from `source`: within the source's budget,
    /// and, when the census is full, only for a member we are linked to, which takes the place
    /// of the newest member heard of from the source that brought the most (never one we are
    /// linked to).
    pub(super) fn admit_member(
        &mut self,
        source: Source<'_>,
        now: Instant,
    ) -> Result<(), DropReason> {
        let full = self.census.len() >= self.cap;
        if full && source != Source::Own {
            return Err(DropReason::RosterFull);
        }
        if !self.budgets.allow(source, now) {
            return Err(DropReason::MemberRateLimited);
        }
        if !full {
            return Ok(());
        }
        let mut per_source: std::collections::BTreeMap<&str, (usize, Instant, &String)> =
            std::collections::BTreeMap::new();
        for (id, e) in &self.census {
            let key = match &e.via {
                Via::Own => continue,
                Via::Relay => "",
                Via::Link(p) => p.as_str(),
            };
            if self.mesh.is_linked(id) {
                continue;
            }
            let slot = per_source.entry(key).or_insert((0, e.since, id));
            slot.0 += 1;
            if e.since >= slot.1 {
                (slot.1, slot.2) = (e.since, id);
            }
        }
        let Some(victim) = per_source
            .values()
            .max_by_key(|(n, _, _)| *n)
            .map(|(_, _, id)| (*id).clone())
        else {
            return Err(DropReason::RosterFull);
        };
        self.census.remove(&victim);
        self.roster.evict(&victim, now);
        self.touch(now);
        Ok(())
    }

    /// A census of at most `cap` members (tests: the real cap is too large to fill).
    #[cfg(test)]
    pub(super) fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;
    use crate::mesh::admission::{HOLD_FOR, SOURCE_BURST};
    use std::time::Duration;

    fn keys(i: u8) -> Keys {
        Keys::new(nostr_sdk::SecretKey::from_slice(&[i.max(1); 32]).expect("key"))
    }

    fn id_of(k: &Keys) -> String {
        peer_id_for(&k.public_key())
    }

    /// A room of `me` with member `m` linked (its link is an overlay link).
    fn room_with_member(me: &Keys, m: &Keys, room_key: Option<&[u8; 32]>, t0: Instant) -> CellRoom {
        let mut room = CellRoom::new(&id_of(me), me, b"salt", room_key, CellSize::Fixed(4), t0, 0);
        let key = m.public_key().to_bytes();
        assert_eq!(
            room.heard(&id_of(m), &key, Source::Own, t0),
            Heard::Newcomer
        );
        let _ = room.tick(t0 + Duration::from_secs(1), |_| false);
        let _ = room.link_up(&id_of(m), t0);
        assert!(room.is_overlay_link(&id_of(m)));
        room
    }

    fn message(k: &Keys, seq: u64) -> CellFrame {
        CellFrame::sign(
            k,
            b"salt",
            seq,
            4,
            Vec::new(),
            Bytes::from_static(b"\x00hi"),
        )
    }

    #[test]
    fn frames_count_only_from_overlay_links_and_member_origins() {
        let t0 = Instant::now();
        let (me, m, stranger) = (keys(1), keys(2), keys(3));
        let mut room = room_with_member(&me, &m, None, t0);
        // From a member, its own: taken.
        assert!(matches!(
            room.admit(&id_of(&m), message(&m, 1), t0, 0),
            Admit::Pass { .. }
        ));
        // Over a link that is not an overlay link (a page): waits, then is dropped.
        assert!(matches!(
            room.admit("PAGEPAGEPAGEPAGEPAGE", message(&m, 2), t0, 0),
            Admit::Held
        ));
        // From a key that never joined, over a member's link: waits, then is dropped.
        assert!(matches!(
            room.admit(&id_of(&m), message(&stranger, 1), t0, 0),
            Admit::Held
        ));
        let _ = room.tick(t0 + HOLD_FOR + Duration::from_secs(1), |_| false);
        let mut drops = room.take_drops();
        drops.sort();
        assert_eq!(
            drops,
            vec![DropReason::CellNotFromMember, DropReason::CellUnknownOrigin]
        );
        assert!(room.take_released().is_empty());
    }

    #[test]
    fn a_frame_that_beats_its_origins_record_waits_for_it() {
        let t0 = Instant::now();
        let (me, m, late) = (keys(1), keys(2), keys(4));
        let mut room = room_with_member(&me, &m, None, t0);
        assert!(matches!(
            room.admit(&id_of(&m), message(&late, 7), t0, 0),
            Admit::Held
        ));
        assert!(room.take_released().is_empty());
        // Its record comes through the member's roster page.
        let record = RosterRecord::sign(&late, b"salt", 0);
        assert_eq!(
            room.learn(&record, Source::Link(&id_of(&m)), t0, 0),
            Ok(Some(id_of(&late)))
        );
        let released = room.take_released();
        assert_eq!(released.len(), 1);
        let (from, frame) = released.into_iter().next().expect("one");
        assert_eq!(from, id_of(&m));
        assert!(matches!(
            room.admit(&from, frame, t0, 0),
            Admit::Pass { .. }
        ));
    }

    #[test]
    fn notices_from_non_members_are_dropped_and_members_notices_are_rate_limited() {
        let t0 = Instant::now();
        let (me, m, stranger) = (keys(1), keys(2), keys(3));
        let mut room = room_with_member(&me, &m, None, t0);
        let gone = |k: &Keys, seq: u64| {
            let body = gone_notice(&[id_of(&me)]);
            CellFrame::sign(k, b"salt", seq, 4, Vec::new(), Bytes::from(body))
        };
        for seq in 1..=100 {
            assert!(matches!(
                room.admit(&id_of(&m), gone(&stranger, seq), t0, 0),
                Admit::Drop(DropReason::CellNoticeNotMember)
            ));
        }
        let passed = (1..=100)
            .filter(|seq| {
                matches!(
                    room.admit(&id_of(&m), gone(&m, *seq), t0, 0),
                    Admit::Pass { .. }
                )
            })
            .count();
        assert_eq!(passed, crate::mesh::admission::NOTICE_BURST as usize);
    }

    #[test]
    fn hellos_add_members_within_the_link_budget_and_the_own_link_is_not_budgeted() {
        let t0 = Instant::now();
        let (me, m) = (keys(1), keys(2));
        let mut room = room_with_member(&me, &m, None, t0);
        let mut added = 0;
        let mut limited = 0;
        for _ in 0..SOURCE_BURST as usize + 10 {
            match room.admit(&id_of(&m), hello(&Keys::generate(), None), t0, 0) {
                Admit::Pass {
                    newcomer: Some(_), ..
                } => added += 1,
                Admit::Drop(DropReason::MemberRateLimited) => limited += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((added, limited), (SOURCE_BURST as usize, 10));
        // A newcomer's own hello over its own link (not yet an overlay link) still gets in.
        let newcomer = keys(9);
        assert!(matches!(
            room.admit(&id_of(&newcomer), hello(&newcomer, None), t0, 0),
            Admit::Pass {
                newcomer: Some(_),
                ..
            }
        ));
    }

    fn hello(k: &Keys, mac: Option<&[u8; 32]>) -> CellFrame {
        let mut body = vec![NOTICE_RECORD];
        let r = RosterRecord::sign(k, b"salt", 0);
        match mac {
            Some(key) => r.with_mac(key).encode(&mut body),
            None => r.encode(&mut body),
        }
        CellFrame::sign(k, b"salt", 1, 4, Vec::new(), Bytes::from(body))
    }

    #[test]
    fn a_full_census_makes_room_for_linked_members_not_for_hearsay() {
        let t0 = Instant::now();
        let (me, m) = (keys(1), keys(2));
        let mut room = room_with_member(&me, &m, None, t0);
        room.set_cap(50);
        // A hostile link fills the census with records of fresh keys, up to the cap.
        let mut refused = None;
        for _ in 0..100 {
            let r = RosterRecord::sign(&Keys::generate(), b"salt", 0);
            match room.learn(&r, Source::Link(&id_of(&m)), t0, 0) {
                Ok(Some(_)) => {}
                other => {
                    refused = Some(other);
                    break;
                }
            }
        }
        assert_eq!(refused, Some(Err(DropReason::RosterFull)));
        assert_eq!(room.census.len(), 50);
        // More hearsay, from relays too, is refused; members that link to us are not.
        let relayed = keys(5);
        let author = relayed.public_key().to_bytes();
        assert_eq!(
            room.heard(&id_of(&relayed), &author, Source::Relay, t0),
            Heard::Refused(DropReason::RosterFull)
        );
        let linked = keys(6);
        let author = linked.public_key().to_bytes();
        assert_eq!(
            room.heard(&id_of(&linked), &author, Source::Own, t0),
            Heard::Newcomer
        );
        let newcomer = keys(7);
        assert!(matches!(
            room.admit(&id_of(&newcomer), hello(&newcomer, None), t0, 0),
            Admit::Pass {
                newcomer: Some(_),
                ..
            }
        ));
        assert_eq!(room.census.len(), 50);
        for k in [&me, &m, &linked, &newcomer] {
            assert!(room.is_member(&id_of(k)), "a linked member was evicted");
        }
    }

    #[test]
    fn in_a_password_room_records_and_hellos_must_prove_the_room_key() {
        let t0 = Instant::now();
        let (me, m) = (keys(1), keys(2));
        let room_key = [42; 32];
        let mut room = room_with_member(&me, &m, Some(&room_key), t0);
        let key = mac_key(&room_key);
        let via = id_of(&m);
        let outsider = Keys::generate();
        let plain = RosterRecord::sign(&outsider, b"salt", 0);
        assert_eq!(
            room.learn(&plain, Source::Link(&via), t0, 0),
            Err(DropReason::RosterBadMac)
        );
        let wrong = plain.with_mac(&mac_key(&[41; 32]));
        assert_eq!(
            room.learn(&wrong, Source::Link(&via), t0, 0),
            Err(DropReason::RosterBadMac)
        );
        assert!(matches!(
            room.admit(&via, hello(&outsider, None), t0, 0),
            Admit::Drop(DropReason::RosterBadMac)
        ));
        assert!(!room.is_member(&id_of(&outsider)));
        assert_eq!(
            room.learn(&plain.with_mac(&key), Source::Link(&via), t0, 0),
            Ok(Some(id_of(&outsider)))
        );
        // Our own record (the one our hello and roster pages carry) proves it.
        assert!(room.own.mac_holds(&key));
    }
}
