//! The lifecycle hooks features answer, and the one dispatcher that calls them in a stated order.
//!
//! Why: a peer joining or leaving, a link going down, a room closing and a room's tick each
//! concern several features (links, pings, cells, history, requests, media, delivery, the apps'
//! sessions). Called from wherever the moment was noticed, their order was implicit and differed
//! between call sites. Here each feature is a [`Lifecycle`] and each moment has one list: a new
//! feature implements the hooks it needs and takes its place in the lists, nothing else.
//!
//! The orders, and why:
//! - **join**: links, cells, history, apps, media — the link and overlay know the peer first,
//!   history classifies it (keeper or member) for the join event, the app hears of the join,
//!   then the peer's tracks are offered (an app sees a peer before its tracks).
//! - **leave**: links, pings, cells, requests, media, history, apps — every feature lets go of
//!   the peer (pending pings and requests fail, tracks end) before the app hears it left.
//! - **link down**: media, delivery — then the link's rooms detach the peer (leave, above).
//! - **room closed**: media — then the room's goodbyes go out.
//! - **tick** (per room): history, requests, cells; the earliest deadline wins.

use std::time::Instant;

use crate::ids::ConnId;
use crate::room::{LeaveReason, Security};

use super::events::{EventKind, PeerType};
use super::{Core, Effect, LinkKey, RoomKey, Work, cells};

/// A feature of the core, answering the lifecycle hooks it needs (the rest do nothing).
pub(super) trait Lifecycle: Sync {
    /// The feature's name (the order tests and traces name it).
    fn name(&self) -> &'static str;
    /// A peer joined room `key`.
    fn peer_joined(&self, _core: &mut Core, _key: &RoomKey, _peer: &str, _security: Security) {}
    /// A joined peer left room `key`.
    fn peer_left(&self, _core: &mut Core, _key: &RoomKey, _peer: &str, _reason: LeaveReason) {}
    /// The link `lk` (on `conn`) went down, before its rooms detach the peer.
    fn link_down(&self, _core: &mut Core, _lk: &LinkKey, _conn: ConnId) {}
    /// Room `key` closed (its entry is already gone).
    fn room_closed(&self, _core: &mut Core, _key: &RoomKey) {}
    /// Room `key`'s timers; returns the feature's next deadline there.
    fn tick(&self, _core: &mut Core, _key: &RoomKey, _now: Instant) -> Option<Instant> {
        None
    }
}

/// The link table: which rooms a link carries, whether it idles, the join latency.
struct Links;
/// Round trips and pings waiting for a pong.
struct Pings;
/// The cells overlay of a cells room.
struct Cells;
/// Kept history and its keepers.
struct History;
/// Request actions waiting for a response.
struct Requests;
/// Tracks offered to and received from peers.
struct Media;
/// Durable channels' per-link outboxes.
struct Delivery;
/// The apps' sessions: the join and leave events.
struct Apps;

/// Who hears a join, in order.
pub(super) const ON_JOIN: &[&dyn Lifecycle] = &[&Links, &Cells, &History, &Apps, &Media];
/// Who hears a leave, in order.
pub(super) const ON_LEAVE: &[&dyn Lifecycle] =
    &[&Links, &Pings, &Cells, &Requests, &Media, &History, &Apps];
/// Who hears a link go down, in order.
pub(super) const ON_LINK_DOWN: &[&dyn Lifecycle] = &[&Media, &Delivery];
/// Who hears a room close, in order.
pub(super) const ON_ROOM_CLOSED: &[&dyn Lifecycle] = &[&Media];
/// Whose timers run on a room's tick, in order.
pub(super) const ON_TICK: &[&dyn Lifecycle] = &[&History, &Requests, &Cells];

impl Core {
    /// Tells every feature, in order, that `peer` joined room `key`.
    pub(super) fn peer_joined(&mut self, key: &RoomKey, peer: &str, security: Security) {
        for f in ON_JOIN {
            tracing::trace!(feature = f.name(), %peer, "peer joined");
            f.peer_joined(self, key, peer, security);
        }
    }

    /// Tells every feature, in order, that `peer` left room `key`.
    pub(super) fn peer_left(&mut self, key: &RoomKey, peer: &str, reason: LeaveReason) {
        for f in ON_LEAVE {
            tracing::trace!(feature = f.name(), %peer, "peer left");
            f.peer_left(self, key, peer, reason);
        }
    }

    /// Tells every feature, in order, that link `lk` went down.
    pub(super) fn link_down(&mut self, lk: &LinkKey, conn: ConnId) {
        for f in ON_LINK_DOWN {
            f.link_down(self, lk, conn);
        }
    }

    /// Tells every feature, in order, that room `key` closed.
    pub(super) fn room_closed(&mut self, key: &RoomKey) {
        for f in ON_ROOM_CLOSED {
            f.room_closed(self, key);
        }
    }

    /// Runs every feature's timers of room `key`; returns the earliest deadline they want.
    pub(super) fn features_tick(&mut self, key: &RoomKey, now: Instant) -> Option<Instant> {
        ON_TICK.iter().filter_map(|f| f.tick(self, key, now)).min()
    }
}

impl Lifecycle for Links {
    fn name(&self) -> &'static str {
        "links"
    }

    fn peer_joined(&self, core: &mut Core, key: &RoomKey, peer: &str, _: Security) {
        let now = core.now;
        let mut first_room_of = None;
        if let Some(link) = core.st.links.get_mut(&LinkKey::new(&key.app, peer)) {
            if link.rooms.is_empty() && link.idle_since.is_none() {
                first_room_of = Some(link.conn);
            }
            link.rooms.insert(key.room.clone());
            link.idle_since = None;
        }
        if let Some(conn) = first_room_of.and_then(|c| core.st.conns.get(&c)) {
            core.traffic
                .join(now.saturating_duration_since(conn.started));
        }
    }

    fn peer_left(&self, core: &mut Core, key: &RoomKey, peer: &str, _: LeaveReason) {
        let now = core.now;
        if let Some(link) = core.st.links.get_mut(&LinkKey::new(&key.app, peer)) {
            link.rooms.remove(&key.room);
            if link.rooms.is_empty() {
                link.idle_since = Some(now);
            }
        }
    }
}

impl Lifecycle for Pings {
    fn name(&self) -> &'static str {
        "pings"
    }

    fn peer_left(&self, core: &mut Core, key: &RoomKey, peer: &str, _: LeaveReason) {
        let Some(e) = core.st.rooms.get_mut(key) else {
            return;
        };
        e.rtts.remove(peer);
        let lost = e.ping_waiters.remove(peer).unwrap_or_default();
        for waiter in lost.into_iter().flatten() {
            core.effects.push(Effect::PingLost { waiter });
        }
    }
}

impl Lifecycle for Cells {
    fn name(&self) -> &'static str {
        "cells"
    }

    fn peer_joined(&self, core: &mut Core, key: &RoomKey, peer: &str, _: Security) {
        let member = core
            .st
            .rooms
            .get(key)
            .and_then(|e| e.cells.as_ref())
            .is_some_and(|c| c.is_member(peer));
        if member {
            let now = core.now;
            core.cells_link_up(key, peer, now);
        }
    }

    fn peer_left(&self, core: &mut Core, key: &RoomKey, peer: &str, reason: LeaveReason) {
        let now = core.now;
        let gone = core
            .st
            .rooms
            .get_mut(key)
            .and_then(|e| e.cells.as_mut())
            .is_some_and(|cells| cells.link_down(peer, reason == LeaveReason::Timeout, now));
        if gone {
            let notice = cells::gone_notice(&[peer.to_owned()]);
            core.work.push_back(Work::Notice(key.clone(), notice));
        }
        core.tell_mesh_peer(key, peer, false);
    }

    fn tick(&self, core: &mut Core, key: &RoomKey, now: Instant) -> Option<Instant> {
        core.cells_tick(key, now)
    }
}

impl Lifecycle for History {
    fn name(&self) -> &'static str {
        "history"
    }

    fn peer_joined(&self, core: &mut Core, key: &RoomKey, peer: &str, _: Security) {
        core.history_peer_joined(key, peer);
    }

    fn peer_left(&self, core: &mut Core, key: &RoomKey, peer: &str, _: LeaveReason) {
        core.history_peer_left(key, peer);
    }

    fn tick(&self, core: &mut Core, key: &RoomKey, now: Instant) -> Option<Instant> {
        core.history_tick(key, now)
    }
}

impl Lifecycle for Requests {
    fn name(&self) -> &'static str {
        "requests"
    }

    fn peer_left(&self, core: &mut Core, key: &RoomKey, peer: &str, _: LeaveReason) {
        core.requests_peer_left(key, peer);
    }

    fn tick(&self, core: &mut Core, key: &RoomKey, now: Instant) -> Option<Instant> {
        core.requests_tick(key, now)
    }
}

impl Lifecycle for Media {
    fn name(&self) -> &'static str {
        "media"
    }

    fn peer_joined(&self, core: &mut Core, key: &RoomKey, peer: &str, _: Security) {
        core.media_peer_joined(key, peer);
    }

    fn peer_left(&self, core: &mut Core, key: &RoomKey, peer: &str, _: LeaveReason) {
        core.media_peer_left(key, peer);
    }

    fn link_down(&self, core: &mut Core, lk: &LinkKey, conn: ConnId) {
        core.media_link_down(lk, conn);
    }

    fn room_closed(&self, core: &mut Core, key: &RoomKey) {
        core.drop_room_tracks(key);
    }
}

impl Lifecycle for Delivery {
    fn name(&self) -> &'static str {
        "delivery"
    }

    fn link_down(&self, core: &mut Core, lk: &LinkKey, _: ConnId) {
        core.delivery_link_down(lk);
    }
}

impl Lifecycle for Apps {
    fn name(&self) -> &'static str {
        "apps"
    }

    fn peer_joined(&self, core: &mut Core, key: &RoomKey, peer: &str, security: Security) {
        let kind = core
            .st
            .rooms
            .get(key)
            .map_or(PeerType::Member, |e| e.history.peer_type(peer));
        core.emit(
            key,
            EventKind::PeerJoin(crate::ids::PeerId::from(peer), security, kind),
        );
    }

    fn peer_left(&self, core: &mut Core, key: &RoomKey, peer: &str, reason: LeaveReason) {
        core.emit(
            key,
            EventKind::PeerLeave(crate::ids::PeerId::from(peer), reason),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&dyn Lifecycle]) -> Vec<&'static str> {
        list.iter().map(|f| f.name()).collect()
    }

    #[test]
    fn the_app_hears_a_join_before_the_tracks_and_a_leave_after_everything() {
        let join = names(ON_JOIN);
        let leave = names(ON_LEAVE);
        let at = |list: &[&str], n: &str| list.iter().position(|x| *x == n);
        assert!(at(&join, "history") < at(&join, "apps"), "{join:?}");
        assert!(at(&join, "apps") < at(&join, "media"), "{join:?}");
        assert_eq!(leave.last(), Some(&"apps"), "{leave:?}");
        // Every feature that holds per-peer state lets go of it on leave.
        for f in ["links", "pings", "cells", "requests", "media", "history"] {
            assert!(leave.contains(&f), "{f} missing from {leave:?}");
        }
    }
}
