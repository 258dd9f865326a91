//! Sans-IO signaling state of one room: announces, dial decisions, offers, answers, candidates.
//!
//! Inputs are received signals, local WebRTC results and clock ticks; outputs are
//! [`Action`]s for the driver. No sockets, no clocks: time is passed in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::RelayCommand;
use super::content::Signal;
use crate::drops::DropReason;
use crate::wire::sdp_crypto;
use crate::wire::topic::{random_id_from, root_topic, self_topic};
use rand::SeedableRng as _;
use rand::rngs::StdRng;

/// Offsets of the announce burst after subscribing (Trystero 0.25.4).
pub const ANNOUNCE_BURST_MS: [u64; 4] = [0, 233, 533, 1_333];
/// Period of announces after the burst.
pub const ANNOUNCE_PERIOD: Duration = Duration::from_millis(60_000);
/// How long an unanswered offer lives.
pub const OFFER_TTL: Duration = Duration::from_millis(57_333);
/// How long an answered (or answering) dial may take to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(23_333);
/// A pending attempt this old is replaced when the peer announces again.
pub const DIAL_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Offer ids remembered to drop replays.
const SEEN_OFFERS_CAP: usize = 4_096;
/// Peers remembered as seen (for `peer:seen`); older ones are forgotten.
const SEEN_PEERS_CAP: usize = 4_096;
/// Pokes (prompts to offer) we send per second, and the burst allowed.
const POKES_PER_SECOND: f64 = 20.0;
/// Burst of pokes allowed before the rate applies.
const POKE_BURST: f64 = 40.0;

/// Which side of a connection attempt we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent the offer.
    Offerer,
    /// We answered an offer.
    Answerer,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Publish on a topic (to one relay if given, else to all).
    Relay(RelayCommand),
    /// Our scheduled presence on the room's topic: a publish, counted as an announce.
    Announce(RelayCommand),
    /// A peer announced itself for the first time.
    Seen {
        /// The peer.
        peer: String,
    },
    /// Create a connection as offerer and report the SDP with [`RoomSignal::offer_ready`].
    StartOffer {
        /// The peer to dial.
        peer: String,
        /// Offer id of the attempt.
        offer_id: String,
    },
    /// Create a connection as answerer for this offer and report with [`RoomSignal::answer_ready`].
    AcceptOffer {
        /// The offering peer.
        peer: String,
        /// Offer id.
        offer_id: String,
        /// Decrypted offer SDP.
        sdp: String,
    },
    /// Apply the remote answer to our offer.
    ApplyAnswer {
        /// The answering peer.
        peer: String,
        /// Offer id.
        offer_id: String,
        /// Decrypted answer SDP.
        sdp: String,
    },
    /// Add a remote ICE candidate (JSON `RTCIceCandidateInit`).
    AddCandidate {
        /// The peer.
        peer: String,
        /// Offer id.
        offer_id: String,
        /// Decrypted candidate JSON.
        candidate: String,
    },
    /// Abandon a connection attempt (timed out or superseded).
    CancelDial {
        /// The peer.
        peer: String,
        /// Offer id.
        offer_id: String,
    },
    /// Something was dropped; the name is a counter.
    Drop(DropReason),
}

#[derive(Debug)]
struct Dial {
    offer_id: String,
    role: Role,
    started: Instant,
    deadline: Instant,
    /// Offerer: candidates wait until the offer went out.
    offer_sent: bool,
    held_candidates: Vec<String>,
    relay: Option<String>,
    /// Offerer: the answer came (ICE and DTLS are under way; no reason to start over).
    answered: bool,
}

/// Signaling state of one room (app id, room id, password).
#[derive(Debug)]
pub struct RoomSignal {
    /// Draws offer ids; seeded with [`RoomSignal::with_seed`] for reproducible runs.
    rng: StdRng,
    self_id: String,
    app_id: String,
    room_id: String,
    key: [u8; 32],
    root: String,
    own_topic: String,
    next_announce: Instant,
    burst_index: usize,
    burst_start: Instant,
    seen: BTreeSet<String>,
    seen_order: VecDeque<String>,
    poke_tokens: f64,
    poke_refill: Instant,
    linked: BTreeSet<String>,
    dials: BTreeMap<String, Dial>,
    seen_offers: BTreeSet<String>,
    seen_offer_order: VecDeque<String>,
    max_dials: usize,
    /// Cells rooms: the peers our overlay wants; other announcers are not dialled.
    dial_filter: Option<BTreeSet<String>>,
}

impl RoomSignal {
    /// A room's signaling state, subscribing at `now`.
    pub fn new(
        self_id: &str,
        app_id: &str,
        room_id: &str,
        password: &str,
        max_dials: usize,
        now: Instant,
    ) -> Self {
        RoomSignal {
            rng: StdRng::from_entropy(),
            self_id: self_id.to_owned(),
            app_id: app_id.to_owned(),
            room_id: room_id.to_owned(),
            key: sdp_crypto::room_key(password, app_id, room_id),
            root: root_topic(app_id, room_id),
            own_topic: self_topic(app_id, room_id, self_id),
            next_announce: now,
            burst_index: 0,
            burst_start: now,
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            poke_tokens: POKE_BURST,
            poke_refill: now,
            linked: BTreeSet::new(),
            dials: BTreeMap::new(),
            seen_offers: BTreeSet::new(),
            seen_offer_order: VecDeque::new(),
            max_dials,
            dial_filter: None,
        }
    }

    /// The same state machine drawing its offer ids from a generator seeded with `seed`.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = StdRng::seed_from_u64(seed);
        self
    }

    /// The two topics this room listens on: root and self.
    pub fn topics(&self) -> [&str; 2] {
        [&self.root, &self.own_topic]
    }

    /// The root topic.
    pub fn root_topic(&self) -> &str {
        &self.root
    }

    /// Number of dials in progress.
    pub fn pending_dials(&self) -> usize {
        self.dials.len()
    }

    /// When [`tick`](Self::tick) next has work.
    pub fn next_deadline(&self) -> Instant {
        self.dials
            .values()
            .map(|d| d.deadline)
            .fold(self.next_announce, Instant::min)
    }

    fn announce(&self) -> Action {
        Action::Announce(RelayCommand::Publish {
            app: self.app_id.clone(),
            topic: self.root.clone(),
            content: Signal::Announce {
                peer: self.self_id.clone(),
                passive: false,
            }
            .to_content(),
            relay: None,
        })
    }

    fn schedule_next(&mut self) {
        self.burst_index += 1;
        self.next_announce = match ANNOUNCE_BURST_MS.get(self.burst_index) {
            Some(ms) => self.burst_start + Duration::from_millis(*ms),
            None => self.next_announce + ANNOUNCE_PERIOD,
        };
    }

    /// Restarts the announce burst (a connected peer dropped).
    pub fn restart_burst(&mut self, now: Instant) {
        self.burst_index = 0;
        self.burst_start = now;
        self.next_announce = now;
    }

    /// Advances timers: due announces and expired dials.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if now >= self.next_announce {
            out.push(self.announce());
            self.schedule_next();
            while self.next_announce <= now {
                self.schedule_next();
            }
        }
        let expired: Vec<String> = self
            .dials
            .iter()
            .filter(|(_, d)| now >= d.deadline)
            .map(|(p, _)| p.clone())
            .collect();
        for peer in expired {
            if let Some(d) = self.dials.remove(&peer) {
                out.push(Action::CancelDial {
                    peer,
                    offer_id: d.offer_id,
                });
                out.push(Action::Drop(DropReason::DialTimeout));
            }
        }
        out
    }

    /// The driver reports whether a live link to `peer` exists for this room's app.
    pub fn set_linked(&mut self, peer: &str, linked: bool) {
        if linked {
            self.linked.insert(peer.to_owned());
            self.dials.remove(peer);
        } else {
            self.linked.remove(peer);
        }
    }

    /// Forgets a failed dial so the next announce can retry.
    pub fn dial_failed(&mut self, peer: &str, offer_id: &str) {
        if self.dials.get(peer).is_some_and(|d| d.offer_id == offer_id) {
            self.dials.remove(peer);
        }
    }

    /// Records a peer as seen; true the first time (bounded: the oldest are forgotten).
    fn remember_peer(&mut self, peer: &str) -> bool {
        if !self.seen.insert(peer.to_owned()) {
            return false;
        }
        self.seen_order.push_back(peer.to_owned());
        if self.seen_order.len() > SEEN_PEERS_CAP
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    /// Takes a token from the poke bucket; false when a flood exhausted it.
    fn take_poke(&mut self, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.poke_refill)
            .as_secs_f64();
        self.poke_refill = now;
        self.poke_tokens = (self.poke_tokens + elapsed * POKES_PER_SECOND).min(POKE_BURST);
        if self.poke_tokens >= 1.0 {
            self.poke_tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn remember_offer(&mut self, offer_id: &str) -> bool {
        if !self.seen_offers.insert(offer_id.to_owned()) {
            return false;
        }
        self.seen_offer_order.push_back(offer_id.to_owned());
        if self.seen_offer_order.len() > SEEN_OFFERS_CAP
            && let Some(old) = self.seen_offer_order.pop_front()
        {
            self.seen_offers.remove(&old);
        }
        true
    }

    fn decrypt(&self, text: &str) -> Option<String> {
        sdp_crypto::decrypt(&self.key, text).ok()
    }

    fn reply(&self, peer: &str, signal: Signal, relay: Option<String>) -> Action {
        Action::Relay(RelayCommand::Publish {
            app: self.app_id.clone(),
            topic: self_topic(&self.app_id, &self.room_id, peer),
            content: signal.to_content(),
            relay,
        })
    }

    /// Cells rooms: only announcers in `wanted` are dialled (None: everyone, the full mesh).
    pub fn set_dial_filter(&mut self, wanted: Option<BTreeSet<String>>) {
        self.dial_filter = wanted;
    }

    /// Tells `peer` we are in the room without asking for a link (a passive announce on its
    /// topic), within the poke rate limit.
    pub fn greet(&mut self, peer: &str, now: Instant) -> Vec<Action> {
        if peer == self.self_id || !self.take_poke(now) {
            return Vec::new();
        }
        vec![self.reply(
            peer,
            Signal::Announce {
                peer: self.self_id.clone(),
                passive: true,
            },
            None,
        )]
    }

    /// Asks for a link to `peer` now: an offer if our id is smaller, else a poke on its topic.
    /// An offer still unanswered after a few seconds is made again: a busy relay may have
    /// dropped it or its answer, and the overlay asks again only because it still has no link.
    pub fn dial(&mut self, peer: &str, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if peer == self.self_id || self.linked.contains(peer) {
            return out;
        }
        if let Some(d) = self.dials.get(peer) {
            let lost = d.role == Role::Offerer
                && !d.answered
                && now.saturating_duration_since(d.started) >= DIAL_RETRY_AFTER;
            if !lost {
                return out;
            }
            let stale = self
                .dials
                .remove(peer)
                .map(|d| d.offer_id)
                .unwrap_or_default();
            out.push(Action::CancelDial {
                peer: peer.to_owned(),
                offer_id: stale,
            });
            out.push(Action::Drop(DropReason::DialRetried));
        }
        if self.self_id.as_str() < peer {
            if self.dials.len() >= self.max_dials {
                out.push(Action::Drop(DropReason::DialsFull));
                return out;
            }
            let offer_id = random_id_from(&mut self.rng, 12);
            self.dials.insert(
                peer.to_owned(),
                Dial {
                    offer_id: offer_id.clone(),
                    role: Role::Offerer,
                    started: now,
                    deadline: now + OFFER_TTL,
                    offer_sent: false,
                    held_candidates: Vec::new(),
                    relay: None,
                    answered: false,
                },
            );
            out.push(Action::StartOffer {
                peer: peer.to_owned(),
                offer_id,
            });
        } else if self.take_poke(now) {
            out.push(self.reply(
                peer,
                Signal::Announce {
                    peer: self.self_id.clone(),
                    passive: false,
                },
                None,
            ));
        } else {
            out.push(Action::Drop(DropReason::PokeRateLimited));
        }
        out
    }

    /// Handles one received signal, from `relay`, on `topic`.
    pub fn on_signal(
        &mut self,
        topic: &str,
        signal: Signal,
        relay: Option<String>,
        now: Instant,
    ) -> Vec<Action> {
        if signal.peer() == self.self_id {
            return Vec::new();
        }
        let on_own_topic = topic == self.own_topic;
        if !on_own_topic && !matches!(signal, Signal::Announce { .. }) {
            return vec![Action::Drop(DropReason::SignalWrongTopic)];
        }
        match signal {
            Signal::Announce { peer, passive } => {
                self.on_announce(peer, passive, on_own_topic, now)
            }
            Signal::Offer {
                peer,
                offer_id,
                sdp,
            } => self.on_offer(peer, offer_id, &sdp, relay, now),
            Signal::Answer {
                peer,
                offer_id,
                sdp,
            } => self.on_answer(peer, offer_id, &sdp, now),
            Signal::Candidate {
                peer,
                offer_id,
                candidate,
            } => self.on_candidate(peer, offer_id, &candidate),
        }
    }

    fn on_announce(
        &mut self,
        peer: String,
        passive: bool,
        on_own_topic: bool,
        now: Instant,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if self.remember_peer(&peer) {
            out.push(Action::Seen { peer: peer.clone() });
        }
        // A peer that announces again while our attempt is still pending after a few
        // seconds did not get it (lost offer, aborted connection): start over.
        if let Some(d) = self.dials.get(&peer)
            && now.saturating_duration_since(d.started) >= DIAL_RETRY_AFTER
            && !self.linked.contains(&peer)
        {
            let stale = self
                .dials
                .remove(&peer)
                .map(|d| d.offer_id)
                .unwrap_or_default();
            out.push(Action::CancelDial {
                peer: peer.clone(),
                offer_id: stale,
            });
            out.push(Action::Drop(DropReason::DialRetried));
        }
        if passive || self.linked.contains(&peer) || self.dials.contains_key(&peer) {
            return out;
        }
        // A poke on our own topic is a request for a link and always answered.
        if !on_own_topic
            && self
                .dial_filter
                .as_ref()
                .is_some_and(|wanted| !wanted.contains(&peer))
        {
            return out;
        }
        // Smaller id offers; larger id prompts the smaller one to offer right away
        // (not in reply to a prompt, or two peers would prompt each other forever).
        if self.self_id < peer || !on_own_topic {
            out.extend(self.dial(&peer, now));
        }
        out
    }

    fn on_offer(
        &mut self,
        peer: String,
        offer_id: String,
        sdp: &str,
        relay: Option<String>,
        now: Instant,
    ) -> Vec<Action> {
        if !self.remember_offer(&offer_id) {
            return vec![Action::Drop(DropReason::OfferReplayed)];
        }
        let Some(sdp) = self.decrypt(sdp) else {
            return vec![Action::Drop(DropReason::OfferUndecryptable)];
        };
        let mut out = Vec::new();
        // A linked peer that offers again lost its side of the link (it restarted):
        // the driver replaces the old link with this one.
        self.linked.remove(&peer);
        if let Some(existing) = self.dials.get(&peer) {
            if existing.role == Role::Offerer && self.self_id < peer {
                return vec![Action::Drop(DropReason::OfferCollision)];
            }
            out.push(Action::CancelDial {
                peer: peer.clone(),
                offer_id: existing.offer_id.clone(),
            });
        } else if self.dials.len() >= self.max_dials {
            return vec![Action::Drop(DropReason::DialsFull)];
        }
        if self.remember_peer(&peer) {
            out.push(Action::Seen { peer: peer.clone() });
        }
        self.dials.insert(
            peer.clone(),
            Dial {
                offer_id: offer_id.clone(),
                role: Role::Answerer,
                started: now,
                deadline: now + CONNECT_TIMEOUT,
                offer_sent: true,
                held_candidates: Vec::new(),
                relay,
                answered: false,
            },
        );
        out.push(Action::AcceptOffer {
            peer,
            offer_id,
            sdp,
        });
        out
    }

    fn on_answer(
        &mut self,
        peer: String,
        offer_id: String,
        sdp: &str,
        now: Instant,
    ) -> Vec<Action> {
        let known = self
            .dials
            .get(&peer)
            .is_some_and(|d| d.role == Role::Offerer && d.offer_id == offer_id);
        if !known {
            return vec![Action::Drop(DropReason::AnswerUnknownOffer)];
        }
        let Some(sdp) = self.decrypt(sdp) else {
            return vec![Action::Drop(DropReason::AnswerUndecryptable)];
        };
        if let Some(d) = self.dials.get_mut(&peer) {
            d.deadline = now + CONNECT_TIMEOUT;
            d.answered = true;
        }
        vec![Action::ApplyAnswer {
            peer,
            offer_id,
            sdp,
        }]
    }

    fn on_candidate(&mut self, peer: String, offer_id: String, candidate: &str) -> Vec<Action> {
        if self.dials.get(&peer).is_none_or(|d| d.offer_id != offer_id) {
            return vec![Action::Drop(DropReason::CandidateUnknownOffer)];
        }
        let Some(candidate) = self.decrypt(candidate) else {
            return vec![Action::Drop(DropReason::CandidateUndecryptable)];
        };
        vec![Action::AddCandidate {
            peer,
            offer_id,
            candidate,
        }]
    }

    /// Our offer SDP is ready: publish it, then any candidates gathered meanwhile.
    pub fn offer_ready(&mut self, peer: &str, offer_id: &str, sdp: &str) -> Vec<Action> {
        let Some(dial) = self.dials.get_mut(peer).filter(|d| d.offer_id == offer_id) else {
            return Vec::new();
        };
        dial.offer_sent = true;
        let held = std::mem::take(&mut dial.held_candidates);
        let mut out = vec![self.reply(
            peer,
            Signal::Offer {
                peer: self.self_id.clone(),
                offer_id: offer_id.to_owned(),
                sdp: sdp_crypto::encrypt(&self.key, sdp),
            },
            None,
        )];
        for c in held {
            out.extend(self.local_candidate(peer, offer_id, &c));
        }
        out
    }

    /// Our answer SDP is ready: publish it through the relay the offer came from.
    pub fn answer_ready(&mut self, peer: &str, offer_id: &str, sdp: &str) -> Vec<Action> {
        let Some(dial) = self.dials.get(peer).filter(|d| d.offer_id == offer_id) else {
            return Vec::new();
        };
        let relay = dial.relay.clone();
        vec![self.reply(
            peer,
            Signal::Answer {
                peer: self.self_id.clone(),
                offer_id: offer_id.to_owned(),
                sdp: sdp_crypto::encrypt(&self.key, sdp),
            },
            relay,
        )]
    }

    /// A local ICE candidate (JSON) was gathered for a dial.
    pub fn local_candidate(&mut self, peer: &str, offer_id: &str, candidate: &str) -> Vec<Action> {
        let Some(dial) = self.dials.get_mut(peer).filter(|d| d.offer_id == offer_id) else {
            return Vec::new();
        };
        if !dial.offer_sent {
            dial.held_candidates.push(candidate.to_owned());
            return Vec::new();
        }
        let relay = dial.relay.clone();
        vec![self.reply(
            peer,
            Signal::Candidate {
                peer: self.self_id.clone(),
                offer_id: offer_id.to_owned(),
                candidate: sdp_crypto::encrypt(&self.key, candidate),
            },
            relay,
        )]
    }
}

#[cfg(test)]
mod tests;
