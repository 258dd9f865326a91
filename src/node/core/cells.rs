//! A cells room's census and overlay state, driven by the node (no I/O here either).
//!
//! The census holds the meshrtc peers heard in the room: a peer counts only if its peer id
//! derives from the key that signed its Nostr events, so its placement (hashed from that key
//! and the room) is not its to choose. Census changes take effect after 500 ms of quiet (at most
//! 2 s after they began), so a join burst yields one topology, not twenty.
//!
//! Relays bring a member's announce once a minute, too slowly for a newcomer to a large room,
//! so members also pass each other's signed roster records over their links
//! ([`crate::mesh::roster`]): a newcomer has the whole roster from its first link, and a member
//! floods its own record once through the overlay when it first has a link.
//!
//! Admission ([`admit`], policy in [`crate::mesh::admission`]): frames count only from overlay
//! links and from origins in the census; new members arrive within a per-source budget, and
//! in password rooms only with a record MAC made with the room key. The census is bounded;
//! when full, a member we are linked to takes the place of one we only heard of.

mod admit;
mod overlay;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nostr_sdk::{Keys, PublicKey};

use crate::drops::DropReason;
use crate::ids::peer_id_for;
use crate::mesh::admission::{Budgets, Held, Notices, Source};
use crate::mesh::roster::{MAX_MEMBERS, RosterOut, RosterSync};
use crate::mesh::{CellSize, Member, Mesh, MeshConfig, MeshOutput, Overlay, Topology, placement};
use crate::wire::cell::CellFrame;
use crate::wire::roster::{RosterMsg, RosterRecord, mac_key};

pub use admit::Admit;

/// How far in the future a record's date may be (clock skew) before it is refused.
const RECORD_SKEW_SECS: u64 = 600;

/// A census entry not heard from for this long is dropped (peers announce every 60 s).
const CENSUS_TTL: Duration = Duration::from_secs(150);
/// A wanted peer whose link dropped leaves the census unless it is back within this time.
const SUSPECT_FOR: Duration = Duration::from_secs(5);
const SETTLE_QUIET: Duration = Duration::from_millis(500);
const SETTLE_CAP: Duration = Duration::from_secs(2);
/// Census size up to which every member greets a newcomer (a room this small is one cell).
const GREET_ALL_UP_TO: usize = 24;

/// What hearing from a peer meant for the census.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Not a member (its id does not derive from its key).
    Stranger,
    /// Already known.
    Member,
    /// Just added.
    Newcomer,
    /// A newcomer not added (its source is over budget, or the census is full).
    Refused(DropReason),
}

/// Origin keys whose peer id is remembered.
const ORIGIN_CACHE: usize = 4_096;

/// First byte of a cell payload that is an overlay notice, not an app message: peers gone.
pub const NOTICE_GONE: u8 = 2;
/// First byte of a notice that the origin is alive (its answer to being reported gone).
pub const NOTICE_ALIVE: u8 = 3;
/// First byte of a notice carrying the origin's roster record (its hello to the room).
pub const NOTICE_RECORD: u8 = 4;

/// Encodes a "these peers are gone" notice.
pub fn gone_notice(peers: &[String]) -> Vec<u8> {
    let mut out = vec![NOTICE_GONE];
    for p in peers {
        out.extend_from_slice(p.as_bytes());
    }
    out
}

/// Peer ids named by a "gone" notice (20-byte ids back to back).
pub fn parse_gone(body: &[u8]) -> Vec<String> {
    body.chunks_exact(crate::wire::topic::PEER_ID_LEN)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .filter(|id| crate::wire::topic::is_valid_peer_id(id))
        .map(str::to_owned)
        .collect()
}

struct Entry {
    place: u64,
    heard: Instant,
    suspect_since: Option<Instant>,
    /// How it came in (a full census makes room for linked members by dropping hearsay).
    via: Via,
    /// When it came in.
    since: Instant,
}

/// How a census entry came in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Via {
    /// Ourselves, or a member we have been linked to.
    Own,
    /// Its signed event, from a relay.
    Relay,
    /// Its record, passed on by this linked member.
    Link(String),
}

impl Via {
    fn of(source: Source<'_>) -> Via {
        match source {
            Source::Own => Via::Own,
            Source::Relay => Via::Relay,
            Source::Link(p) => Via::Link(p.to_owned()),
        }
    }
}

/// Census and overlay of one cells room.
pub struct CellRoom {
    me: String,
    size: CellSize,
    salt: Vec<u8>,
    census: BTreeMap<String, Entry>,
    mesh: Mesh,
    changed: Option<(Instant, Instant)>,
    origins: BTreeMap<[u8; 32], String>,
    /// When this node joined (µs since the epoch): replayed frames from before are not shown.
    joined_us: u64,
    unsent_reported: u64,
    /// Topologies put in force so far.
    epoch: u64,
    /// Members' signed records and their reconciliation with linked members.
    roster: RosterSync,
    own: RosterRecord,
    hello_sent: bool,
    /// Password rooms: the key of record MACs.
    mac_key: Option<[u8; 32]>,
    /// Most census entries.
    cap: usize,
    /// New members per source.
    budgets: Budgets,
    /// Frames waiting for their sender or origin.
    held: Held,
    /// Notice budgets, and our "alive" answers.
    notices: Notices,
    /// Drops decided outside a frame's handling (held frames expiring), for the caller.
    drops: Vec<DropReason>,
}

/// What a roster message brought.
#[derive(Debug, Default)]
pub struct RosterStep {
    /// Sync messages to send, and drops to count.
    pub outs: Vec<RosterOut>,
    /// Members new to the census.
    pub newcomers: Vec<String>,
}

/// Clock skew allowed between an origin and us when telling frames from before our join.
const JOIN_SKEW_US: u64 = 5_000_000;

/// Where the node sits in a cells room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CellInfo {
    /// Members of the topology in force.
    pub members: u32,
    /// This node's cell.
    pub cell: u32,
    /// Cells in the topology.
    pub cell_count: u32,
    /// Links the topology asks for.
    pub links_wanted: u32,
    /// Of those, links that leave the cell.
    pub bridges: u32,
    /// Hops a frame may take.
    pub ttl: u32,
    /// Members whose signed roster record this node holds.
    pub records: u32,
    /// Topologies this node has put in force in this room (1 for the first).
    pub epoch: u64,
    /// This node holds links out of its cell.
    pub bridge: bool,
    /// Members per cell the topology aims at (its members over its cells, rounded up).
    pub cell_size: u32,
}

impl CellRoom {
    /// A cells room whose census starts with this node; `room_key` is a password room's
    /// end-to-end key (its records then carry MACs).
    pub fn new(
        me: &str,
        keys: &Keys,
        salt: &[u8],
        room_key: Option<&[u8; 32]>,
        size: CellSize,
        now: Instant,
        wall_us: u64,
    ) -> Self {
        let key = keys.public_key();
        let mac_key = room_key.map(mac_key);
        let own = RosterRecord::sign(keys, salt, wall_us / 1_000_000);
        let own = match &mac_key {
            Some(k) => own.with_mac(k),
            None => own,
        };
        let mut room = CellRoom {
            me: me.to_owned(),
            size,
            salt: salt.to_vec(),
            census: BTreeMap::new(),
            mesh: Mesh::new(me, salt, MeshConfig::default()),
            changed: Some((now, now)),
            origins: BTreeMap::new(),
            joined_us: wall_us,
            unsent_reported: 0,
            epoch: 0,
            roster: RosterSync::new(now),
            own,
            hello_sent: false,
            mac_key,
            cap: MAX_MEMBERS,
            budgets: Budgets::default(),
            held: Held::default(),
            notices: Notices::default(),
            drops: Vec::new(),
        };
        let _ = room
            .roster
            .insert(me, own, placement(salt, &key.to_bytes()), now);
        room.census.insert(
            me.to_owned(),
            Entry {
                place: placement(salt, &key.to_bytes()),
                heard: now,
                suspect_since: None,
                via: Via::Own,
                since: now,
            },
        );
        room
    }

    /// Checks a record that came from `source` and adds its member; `Ok(Some(id))` when the
    /// member is new to the census. A record says a key joined; it proves nothing about being
    /// alive now, so it does not refresh a known member. Cheap checks come first, and a new
    /// member's budget and place are settled before its signature is checked.
    pub fn learn(
        &mut self,
        record: &RosterRecord,
        source: Source<'_>,
        now: Instant,
        wall_secs: u64,
    ) -> Result<Option<String>, DropReason> {
        let Ok(key) = PublicKey::from_slice(&record.key) else {
            return Err(DropReason::RosterBadRecord);
        };
        let id = peer_id_for(&key);
        // A record held already is refused too (same date): no signature is checked twice.
        if id == self.me || self.roster.refuses(&id, record, now) {
            return Ok(None);
        }
        if record.issued > wall_secs + RECORD_SKEW_SECS {
            return Err(DropReason::RosterFutureRecord);
        }
        let mut record = *record;
        match &self.mac_key {
            Some(k) if !record.mac_holds(k) => return Err(DropReason::RosterBadMac),
            Some(_) => {}
            // Open rooms: a MAC proves nothing, and is not passed on.
            None => record.mac = None,
        }
        // A member passing on its own record speaks for itself.
        let source = match source {
            Source::Link(p) if p == id => Source::Own,
            s => s,
        };
        let new = !self.census.contains_key(&id);
        if new {
            self.admit_member(source, now)?;
        }
        if !record.verify(&self.salt) {
            return Err(DropReason::RosterBadRecord);
        }
        let place = placement(&self.salt, &record.key);
        self.roster.insert(&id, record, place, now)?;
        if !new {
            return Ok(None);
        }
        self.census.insert(
            id.clone(),
            Entry {
                place,
                heard: now,
                suspect_since: None,
                via: Via::of(source),
                since: now,
            },
        );
        self.touch(now);
        Ok(Some(id))
    }

    /// A roster sync message from a linked member.
    pub fn roster_msg(
        &mut self,
        from: &str,
        msg: &RosterMsg,
        now: Instant,
        wall_secs: u64,
    ) -> RosterStep {
        let mut step = RosterStep::default();
        if let RosterMsg::Records { records, .. } = msg {
            if !self.roster.expects_records_from(from) {
                step.outs
                    .push(RosterOut::Drop(DropReason::RosterUnrequested));
                return step;
            }
            for r in records {
                match self.learn(r, Source::Link(from), now, wall_secs) {
                    Ok(Some(id)) => step.newcomers.push(id),
                    Ok(None) => {}
                    Err(reason) => step.outs.push(RosterOut::Drop(reason)),
                }
            }
        }
        step.outs.extend(self.roster.on_msg(from, msg, now));
        step
    }

    /// A member's link came up: swap roster digests with it.
    pub fn roster_link_up(&mut self, peer: &str) -> Vec<RosterOut> {
        self.roster.link_up(peer)
    }

    /// Roster anti-entropy; `pick` chooses the link that hears our digest.
    pub fn roster_tick(&mut self, now: Instant, pick: usize) -> Vec<RosterOut> {
        let linked: Vec<String> = self
            .mesh
            .linked()
            .filter(|p| self.census.contains_key(*p))
            .map(str::to_owned)
            .collect();
        self.roster.tick(now, &linked, pick)
    }

    /// Our hello (a notice carrying our record), once, when we first have a link.
    pub fn hello(&mut self) -> Option<Vec<u8>> {
        if self.hello_sent || self.mesh.link_count() == 0 {
            return None;
        }
        self.hello_sent = true;
        let mut body = vec![NOTICE_RECORD];
        self.own.encode(&mut body);
        Some(body)
    }

    /// Whether a frame (its seq is the origin's clock in µs) was sent before this node joined,
    /// beyond clock skew: a replay to a newcomer, not a message for it.
    pub fn before_join(&self, seq: u64) -> bool {
        seq.saturating_add(JOIN_SKEW_US) < self.joined_us
    }

    /// The room's salt for placement and frame signatures.
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// Signs `body` as a frame from this node (for `targets`, or everyone) and hands it to the
    /// overlay; returns where it goes. `wall_us` (µs since the epoch) seeds the sequence number.
    pub fn originate(
        &mut self,
        keys: &Keys,
        targets: Vec<String>,
        body: Vec<u8>,
        now: Instant,
        wall_us: u64,
    ) -> Vec<MeshOutput> {
        let seq = self.mesh.next_seq(wall_us);
        let notice = body.first().is_some_and(|b| *b >= NOTICE_GONE);
        // The hop limit is signed: the topology's, so no forwarder can stretch it.
        let max_hops = self.mesh.topology().ttl();
        let frame = CellFrame::sign(keys, &self.salt, seq, max_hops, targets, Bytes::from(body));
        let origin = frame.origin;
        let outs = self.mesh.originate(frame, now);
        if notice {
            self.mesh.forget_recent(&origin, seq);
        }
        outs
    }

    /// Own frames that expired unsent since the last call (no link for the whole window).
    pub fn take_unsent_expired(&mut self) -> u64 {
        let total = self.mesh.unsent_expired();
        let new = total - self.unsent_reported;
        self.unsent_reported = total;
        new
    }

    /// The overlay state.
    pub fn mesh(&mut self) -> &mut Mesh {
        &mut self.mesh
    }

    fn touch(&mut self, now: Instant) {
        let first = self.changed.map_or(now, |(f, _)| f);
        self.changed = Some((first, now));
    }

    /// A signed signaling event from `peer` arrived (through a relay; `Source::Own` when we
    /// are linked to it). Returns whether it is a member, and whether it is new to the census.
    pub fn heard(
        &mut self,
        peer: &str,
        author: &[u8; 32],
        source: Source<'_>,
        now: Instant,
    ) -> Heard {
        if let Some(e) = self.census.get_mut(peer) {
            e.heard = now;
            e.suspect_since = None;
            return Heard::Member;
        }
        let Ok(key) = PublicKey::from_slice(author) else {
            return Heard::Stranger;
        };
        // Trystero pages sign with a throwaway key: they are not members of the overlay.
        if peer_id_for(&key) != peer {
            return Heard::Stranger;
        }
        if let Err(reason) = self.admit_member(source, now) {
            return Heard::Refused(reason);
        }
        self.roster.unbury(peer);
        self.census.insert(
            peer.to_owned(),
            Entry {
                place: placement(&self.salt, author),
                heard: now,
                suspect_since: None,
                via: Via::of(source),
                since: now,
            },
        );
        self.touch(now);
        Heard::Newcomer
    }

    /// Whether a newcomer should be greeted (told we exist) rather than wait up to a minute for
    /// our next announce: always in small rooms, and by its future cellmates in large ones, so
    /// a join costs the relay a bounded number of events.
    pub fn should_greet(&self, peer: &str) -> bool {
        if self.census.len() <= GREET_ALL_UP_TO {
            return true;
        }
        let t = self.mesh.topology();
        let dims = t.dims();
        let prefix = |place: u64| if dims == 0 { 0 } else { place >> (64 - dims) };
        match (self.census.get(peer), self.census.get(&self.me)) {
            (Some(a), Some(b)) => prefix(a.place) == prefix(b.place),
            _ => false,
        }
    }

    /// True when `peer` is in the census.
    pub fn is_member(&self, peer: &str) -> bool {
        self.census.contains_key(peer)
    }

    /// A member's link came up; returns the recent frames it gets (see the router): those sent
    /// since it joined, as far as its record says (all of them when its record is not here).
    pub fn link_up(&mut self, peer: &str, now: Instant) -> Vec<MeshOutput> {
        if let Some(e) = self.census.get_mut(peer) {
            e.suspect_since = None;
            e.heard = now;
            e.via = Via::Own;
        }
        let joined_us = self
            .roster
            .issued(peer)
            .map_or(0, |s| (s * 1_000_000).saturating_sub(JOIN_SKEW_US));
        self.mesh.link_up_since(peer, now, joined_us)
    }

    /// A member's link went down; `dead` when the watchdog gave up on it. True when the room
    /// should hear that the peer is gone (we wanted the link, so others rely on it).
    pub fn link_down(&mut self, peer: &str, dead: bool, now: Instant) -> bool {
        let wanted = self.wanted().contains(peer);
        self.mesh.link_down(peer, now);
        self.roster.link_down(peer);
        let dropped = self.held.link_down(peer);
        self.drops.extend(dropped);
        if dead {
            self.forget(peer, now);
        } else if wanted {
            self.suspect(peer, now);
        }
        wanted
            && self
                .census
                .get(peer)
                .is_none_or(|e| e.suspect_since.is_some())
    }

    /// Someone reported `peer` gone: it leaves the census unless heard from within a few
    /// seconds (a live peer answers the report itself).
    pub fn suspect(&mut self, peer: &str, now: Instant) {
        if peer != self.me
            && let Some(e) = self.census.get_mut(peer)
        {
            e.suspect_since.get_or_insert(now);
        }
    }

    /// A frame from a member proves it is alive.
    pub fn heard_member(&mut self, peer: &str, now: Instant) {
        if let Some(e) = self.census.get_mut(peer) {
            e.heard = now;
            e.suspect_since = None;
        }
    }

    /// The peer left the room.
    pub fn forget(&mut self, peer: &str, now: Instant) {
        if peer != self.me && self.census.remove(peer).is_some() {
            self.roster.remove(peer, now);
            self.touch(now);
        }
    }

    /// Peers the topology in force asks this node to link to.
    pub fn wanted(&self) -> BTreeSet<String> {
        self.mesh
            .topology()
            .links_of(&self.me)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Expires the census, applies a settled change, and runs the overlay's timers.
    pub fn tick(&mut self, now: Instant, linked: impl Fn(&str) -> bool) -> Vec<MeshOutput> {
        let me = self.me.clone();
        let mut gone = Vec::new();
        self.census.retain(|p, e| {
            let keep = *p == me
                || linked(p) && e.suspect_since.is_none()
                || now.saturating_duration_since(e.heard) < CENSUS_TTL
                    && e.suspect_since
                        .is_none_or(|s| now.saturating_duration_since(s) < SUSPECT_FOR);
            if !keep {
                gone.push(p.clone());
            }
            keep
        });
        if !gone.is_empty() {
            for p in &gone {
                self.roster.remove(p, now);
            }
            self.touch(now);
        }
        let (census, mesh) = (&self.census, &self.mesh);
        let expired = self.held.expire(now, |from, _| {
            if census.contains_key(from) && mesh.is_linked(from) {
                crate::mesh::admission::Wait::Origin
            } else {
                crate::mesh::admission::Wait::Sender
            }
        });
        self.drops.extend(expired);
        let mut out = Vec::new();
        if let Some((first, last)) = self.changed
            && (now >= last + SETTLE_QUIET || now >= first + SETTLE_CAP)
        {
            self.changed = None;
            let members = self
                .census
                .iter()
                .map(|(id, e)| Member {
                    id: id.clone(),
                    place: e.place,
                })
                .collect();
            let topo = Arc::new(Topology::compute(members, self.size));
            out.extend(self.mesh.set_topology(topo, now));
        }
        out.extend(self.mesh.tick(now));
        out
    }

    /// The peer id of an origin key (members' ids derive from their keys).
    pub fn origin_id(&mut self, origin: &[u8; 32]) -> Option<String> {
        if let Some(id) = self.origins.get(origin) {
            return Some(id.clone());
        }
        let id = peer_id_for(&PublicKey::from_slice(origin).ok()?);
        if self.origins.len() >= ORIGIN_CACHE {
            self.origins.clear();
        }
        self.origins.insert(*origin, id.clone());
        Some(id)
    }

    /// A member's cell in the topology in force, and whether it is another cell than ours.
    pub fn place_of(&self, peer: &str) -> Option<(u32, bool)> {
        let t = self.mesh.topology();
        let cell = t.cell_of(peer)?;
        Some((cell as u32, t.cell_of(&self.me) != Some(cell)))
    }

    /// Where this node sits.
    /// A new topology is in force: its epoch is the next.
    pub fn topology_changed(&mut self) {
        self.epoch += 1;
    }

    pub fn info(&self) -> CellInfo {
        let t = self.mesh.topology();
        let bridges = t.bridges_of(&self.me).len() as u32;
        CellInfo {
            epoch: self.epoch,
            bridge: bridges > 0,
            cell_size: (t.len() as u32).div_ceil((t.cell_count() as u32).max(1)),
            members: t.len() as u32,
            cell: t.cell_of(&self.me).unwrap_or(0) as u32,
            cell_count: t.cell_count() as u32,
            links_wanted: t.links_of(&self.me).len() as u32,
            bridges,
            ttl: t.ttl() as u32,
            records: self.roster.len() as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr_sdk::Keys;

    fn member(keys: &Keys) -> (String, [u8; 32]) {
        (
            peer_id_for(&keys.public_key()),
            keys.public_key().to_bytes(),
        )
    }

    #[test]
    fn only_key_bound_ids_join_the_census_and_changes_settle() {
        let me = Keys::generate();
        let (me_id, _) = member(&me);
        let t0 = Instant::now();
        let mut room = CellRoom::new(&me_id, &me, b"salt", None, CellSize::Fixed(4), t0, 0);
        let others: Vec<Keys> = (0..9).map(|_| Keys::generate()).collect();
        for k in &others {
            let (id, key) = member(k);
            assert_eq!(room.heard(&id, &key, Source::Relay, t0), Heard::Newcomer);
        }
        // An id that does not derive from the signing key is refused.
        let (_, stranger) = member(&Keys::generate());
        assert_eq!(
            room.heard("AAAAAAAAAAAAAAAAAAAA", &stranger, Source::Relay, t0),
            Heard::Stranger
        );
        assert!(
            room.tick(t0 + Duration::from_millis(100), |_| false)
                .is_empty()
        );
        let opens = room.tick(t0 + Duration::from_millis(600), |_| false);
        assert!(!opens.is_empty());
        assert!(opens.iter().all(|o| matches!(o, MeshOutput::Open(_))));
        assert_eq!(room.info().members, 10);
        assert!(room.info().cell_count >= 2);
    }

    #[test]
    fn a_dead_member_leaves_the_census_and_a_quiet_one_expires() {
        let me = Keys::generate();
        let (me_id, _) = member(&me);
        let t0 = Instant::now();
        let mut room = CellRoom::new(&me_id, &me, b"s", None, CellSize::default(), t0, 0);
        let (a, ak) = member(&Keys::generate());
        let (b, bk) = member(&Keys::generate());
        room.heard(&a, &ak, Source::Relay, t0);
        room.heard(&b, &bk, Source::Relay, t0);
        room.link_down(&a, true, t0);
        assert!(!room.is_member(&a));
        room.tick(t0 + CENSUS_TTL + Duration::from_secs(1), |_| false);
        assert!(!room.is_member(&b));
        assert!(room.is_member(&me_id));
    }
}
