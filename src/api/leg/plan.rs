//! The decisions of a page's media leg, without I/O: which changes go into the next offer, one
//! offer in flight at a time, which remote tracks a page is owed, and when a publish gives up.
//!
//! Why the daemon makes every offer: the page only answers, so the leg never sees glare and a
//! slot's meaning (publish or forward) travels with the offer that creates it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::node::SurfacedTrack;
use crate::transport::media::MediaKind;

/// How long a publish waits for the page's media after its slot was offered.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(15);
/// Slots one leg may hold (publishes and forwards together).
pub const MAX_SLOTS: usize = 64;

/// A page track to send into a room.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// The `leg_publish` request it answers.
    pub request_id: u64,
    /// The session's room handle.
    pub room: u32,
    /// Audio or video.
    pub kind: MediaKind,
    /// Its stream id.
    pub stream_id: String,
    /// Its track id.
    pub track_id: String,
    /// Peers it goes to; empty for everyone.
    pub targets: Vec<String>,
    /// The page's metadata.
    pub meta: Option<serde_json::Value>,
    /// Bitrate limit in kbit/s (0 for the default).
    pub max_kbps: u32,
}

/// Names a remote track in a room of the session.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ForwardKey {
    /// The session's room handle.
    pub room: u32,
    /// The peer that sends the track.
    pub peer: String,
    /// The track's id.
    pub track_id: String,
}

impl ForwardKey {
    /// The key of `track`, surfaced in room `room`.
    pub fn of(room: u32, track: &SurfacedTrack) -> Self {
        ForwardKey {
            room,
            peer: track.peer.clone(),
            track_id: track.track_id.clone(),
        }
    }
}

/// One change an offer carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A receiving slot for a page track.
    Publish(Publish),
    /// A sending slot for a remote track of a room.
    Forward {
        /// The session's room handle.
        room: u32,
        /// The track.
        track: SurfacedTrack,
    },
    /// A remote track ended: its slot stops.
    Unforward(ForwardKey),
}

/// Why a request on the leg is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegError {
    /// An answer to an offer that is not the one in flight.
    #[error("no offer {0} is waiting for an answer")]
    UnknownOffer(u64),
    /// Too many slots on the leg.
    #[error("a page's media leg holds at most {MAX_SLOTS} tracks")]
    TooManySlots,
}

/// The leg's negotiation state.
#[derive(Debug, Default)]
pub struct LegPlan {
    subscribed: BTreeSet<u32>,
    queued: Vec<Change>,
    in_flight: Option<(u64, Vec<Change>)>,
    next_offer: u64,
    /// Remote tracks queued or forwarded.
    forwarded: BTreeSet<ForwardKey>,
    /// Publishes offered and waiting for their media, with their deadline.
    waiting: BTreeMap<u64, Instant>,
    slots: usize,
}

impl LegPlan {
    /// The page sends a track: queued for the next offer.
    pub fn publish(&mut self, publish: Publish) -> Result<(), LegError> {
        self.take_slot()?;
        self.queued.push(Change::Publish(publish));
        Ok(())
    }

    /// The page wants a room's remote tracks: the ones already there are queued, and later
    /// ones will be as they surface.
    pub fn subscribe(&mut self, room: u32, present: Vec<SurfacedTrack>) {
        self.subscribed.insert(room);
        for track in present {
            self.track_added(room, track);
        }
    }

    /// A remote track surfaced in a room of the session (or its metadata changed).
    pub fn track_added(&mut self, room: u32, track: SurfacedTrack) {
        if !self.subscribed.contains(&room) {
            return;
        }
        let key = ForwardKey::of(room, &track);
        if self.forwarded.contains(&key) || self.take_slot().is_err() {
            return;
        }
        self.forwarded.insert(key);
        self.queued.push(Change::Forward { room, track });
    }

    /// A remote track ended.
    pub fn track_removed(&mut self, room: u32, peer: &str, track_id: &str) {
        let key = ForwardKey {
            room,
            peer: peer.to_owned(),
            track_id: track_id.to_owned(),
        };
        if !self.forwarded.remove(&key) {
            return;
        }
        // Not offered yet: it simply never is.
        let before = self.queued.len();
        self.queued.retain(|c| {
            !matches!(c, Change::Forward { room: r, track } if ForwardKey::of(*r, track) == key)
        });
        if self.queued.len() < before {
            self.slots -= 1;
            return;
        }
        self.slots -= 1;
        self.queued.push(Change::Unforward(key));
    }

    /// The next offer to make, if one is due and none is in flight: its id and changes.
    pub fn next_offer(&mut self, now: Instant) -> Option<(u64, Vec<Change>)> {
        if self.in_flight.is_some() || self.queued.is_empty() {
            return None;
        }
        self.next_offer += 1;
        let changes = std::mem::take(&mut self.queued);
        for c in &changes {
            if let Change::Publish(p) = c {
                self.waiting.insert(p.request_id, now + PUBLISH_TIMEOUT);
            }
        }
        self.in_flight = Some((self.next_offer, changes.clone()));
        Some((self.next_offer, changes))
    }

    /// The offer could not be made: its changes are dropped (publishes are answered with the
    /// error by the caller).
    pub fn offer_failed(&mut self, offer: u64) -> Vec<Change> {
        match self.in_flight.take() {
            Some((id, changes)) if id == offer => {
                for c in &changes {
                    self.forget(c);
                }
                changes
            }
            other => {
                self.in_flight = other;
                Vec::new()
            }
        }
    }

    /// The page answered `offer`: the changes it carried are in force.
    pub fn answered(&mut self, offer: u64) -> Result<Vec<Change>, LegError> {
        match self.in_flight.take() {
            Some((id, changes)) if id == offer => Ok(changes),
            other => {
                self.in_flight = other;
                Err(LegError::UnknownOffer(offer))
            }
        }
    }

    /// A publish's media arrived (or it was answered otherwise): it no longer times out.
    pub fn publish_done(&mut self, request_id: u64) {
        self.waiting.remove(&request_id);
    }

    /// Publishes whose media never came by `now`: answered with an error by the caller.
    pub fn expired(&mut self, now: Instant) -> Vec<u64> {
        let gone: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.waiting.remove(id);
        }
        gone
    }

    fn take_slot(&mut self) -> Result<(), LegError> {
        if self.slots >= MAX_SLOTS {
            return Err(LegError::TooManySlots);
        }
        self.slots += 1;
        Ok(())
    }

    fn forget(&mut self, change: &Change) {
        match change {
            Change::Publish(_) => self.slots = self.slots.saturating_sub(1),
            Change::Forward { room, track } => {
                self.forwarded.remove(&ForwardKey::of(*room, track));
                self.slots = self.slots.saturating_sub(1);
            }
            Change::Unforward(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::media::Codec;

    fn track(peer: &str, id: &str) -> SurfacedTrack {
        SurfacedTrack {
            peer: peer.into(),
            stream_id: "s".into(),
            track_id: id.into(),
            codec: Codec::Vp8,
            meta: None,
        }
    }

    fn publish(request_id: u64) -> Publish {
        Publish {
            request_id,
            room: 1,
            kind: MediaKind::Video,
            stream_id: "cam".into(),
            track_id: format!("t{request_id}"),
            targets: vec![],
            meta: None,
            max_kbps: 0,
        }
    }

    #[test]
    fn one_offer_at_a_time_and_changes_batch_while_it_is_out() {
        let now = Instant::now();
        let mut plan = LegPlan::default();
        plan.publish(publish(1)).unwrap();
        let (first, changes) = plan.next_offer(now).expect("an offer");
        assert_eq!(changes, vec![Change::Publish(publish(1))]);
        plan.publish(publish(2)).unwrap();
        plan.subscribe(1, vec![track("p", "a")]);
        assert_eq!(plan.next_offer(now), None, "one offer in flight");
        assert_eq!(
            plan.answered(first + 7),
            Err(LegError::UnknownOffer(first + 7))
        );
        assert_eq!(plan.answered(first).unwrap().len(), 1);
        let (second, changes) = plan.next_offer(now).expect("the batch");
        assert_eq!(second, first + 1);
        assert_eq!(changes.len(), 2);
    }

    #[test]
    fn remote_tracks_go_only_to_subscribed_rooms_once() {
        let now = Instant::now();
        let mut plan = LegPlan::default();
        plan.track_added(1, track("p", "a"));
        assert_eq!(plan.next_offer(now), None, "room 1 is not subscribed");
        plan.subscribe(1, vec![track("p", "a")]);
        plan.track_added(1, track("p", "a"));
        let (id, changes) = plan.next_offer(now).unwrap();
        assert_eq!(changes.len(), 1);
        plan.answered(id).unwrap();
        plan.track_removed(1, "p", "a");
        let (_, changes) = plan.next_offer(now).unwrap();
        assert_eq!(
            changes,
            vec![Change::Unforward(ForwardKey {
                room: 1,
                peer: "p".into(),
                track_id: "a".into()
            })]
        );
    }

    #[test]
    fn a_track_that_ends_before_its_offer_is_never_offered() {
        let now = Instant::now();
        let mut plan = LegPlan::default();
        plan.subscribe(1, vec![]);
        plan.publish(publish(1)).unwrap();
        let (id, _) = plan.next_offer(now).unwrap();
        plan.track_added(1, track("p", "a"));
        plan.track_removed(1, "p", "a");
        plan.answered(id).unwrap();
        assert_eq!(plan.next_offer(now), None);
    }

    #[test]
    fn a_publish_without_media_times_out_and_slots_are_bounded() {
        let now = Instant::now();
        let mut plan = LegPlan::default();
        plan.publish(publish(9)).unwrap();
        let (id, _) = plan.next_offer(now).unwrap();
        plan.answered(id).unwrap();
        assert!(plan.expired(now + Duration::from_secs(1)).is_empty());
        assert_eq!(plan.expired(now + PUBLISH_TIMEOUT), vec![9]);
        assert!(plan.expired(now + PUBLISH_TIMEOUT * 2).is_empty());
        for i in 10..(10 + MAX_SLOTS as u64 - 1) {
            plan.publish(publish(i)).unwrap();
        }
        assert_eq!(plan.publish(publish(999)), Err(LegError::TooManySlots));
    }
}
