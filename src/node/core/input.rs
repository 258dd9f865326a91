//! What the world tells the core: one [`Input`] enum, handled by [`Core::handle`].
//!
//! Why one enum: the driver (`crate::node`) and the deterministic harness feed the core the same
//! events — relays, the engine, timers — and with one entry point they cannot drift apart in
//! what they call or in which order. Calls that answer in place (an app joining a room, a send,
//! a status query) stay methods: their caller needs the answer, not an effect.

use std::time::Instant;

use crate::drops::DropReason;
use crate::ids::ConnId;
use crate::signal::Incoming;

use super::Core;
use super::types::{IceProblem, StoreReport};

/// One event from outside the core.
#[derive(Debug)]
pub enum Input<'a> {
    /// Time passed: every room's timers and the link watchdog run.
    Tick,
    /// A signaling message arrived from a relay.
    Relay(Incoming),
    /// A relay connected again (for these apps, or all): rooms announce at once.
    RelayUp {
        /// The apps the relay serves, or `None` for every app.
        apps: Option<&'a [String]>,
    },
    /// The TURN check found a problem, or none any more.
    IceProblem(Option<IceProblem>),
    /// The engine made the local offer of a connection (or could not).
    OfferMade {
        /// The connection.
        conn: ConnId,
        /// The SDP, or why there is none.
        sdp: Result<String, String>,
    },
    /// The engine made the local answer of a connection (or could not).
    AnswerMade {
        /// The connection.
        conn: ConnId,
        /// The SDP, or why there is none.
        sdp: Result<String, String>,
    },
    /// The engine applied (or refused) the remote description of a connection.
    RemoteSet {
        /// The connection.
        conn: ConnId,
        /// Whether it was applied.
        ok: bool,
    },
    /// The engine gathered a local ICE candidate (JSON, as Trystero sends it).
    LocalCandidate {
        /// The connection.
        conn: ConnId,
        /// The candidate.
        json: &'a str,
    },
    /// A connection's data channel opened.
    ChannelOpen(ConnId),
    /// A frame arrived on a connection.
    Frame {
        /// The connection.
        conn: ConnId,
        /// The frame's bytes.
        bytes: &'a [u8],
    },
    /// A connection closed (or failed before it opened).
    Closed(ConnId),
    /// A connection's media changed and needs an offer.
    NegotiationNeeded(ConnId),
    /// The engine made a media offer (or could not).
    MediaOfferMade {
        /// The connection.
        conn: ConnId,
        /// The SDP, or why there is none.
        sdp: Result<String, String>,
    },
    /// The engine made a media answer (or could not).
    MediaAnswerMade {
        /// The connection.
        conn: ConnId,
        /// The SDP, or why there is none.
        sdp: Result<String, String>,
    },
    /// The engine applied (or refused) the peer's media answer.
    MediaAnswerApplied {
        /// The connection.
        conn: ConnId,
        /// Whether it was applied.
        ok: bool,
    },
    /// A receiver of a forwarded track asked for a keyframe.
    KeyframeWanted {
        /// The connection the request came on.
        conn: ConnId,
        /// The local track it is for.
        track: crate::ids::TrackId,
    },
    /// The history store's thread reports a failure.
    Store(StoreReport),
    /// A remote track of a connection ended.
    RemoteTrackEnded {
        /// The connection.
        conn: ConnId,
        /// The track's id in the peer's SDP.
        track: &'a str,
    },
}

impl Core {
    /// Handles one input at `now`; what it decided is in [`Core::take_effects`].
    pub fn handle(&mut self, input: Input<'_>, now: Instant) {
        match input {
            Input::Tick => {
                self.next_tick = self.tick(now);
            }
            Input::Relay(msg) => self.on_relay_event(msg, now),
            Input::RelayUp { apps } => self.relay_up(apps, now),
            Input::IceProblem(problem) => self.ice_problem(problem, now),
            Input::OfferMade { conn, sdp } => self.offer_ready(conn, sdp, now),
            Input::AnswerMade { conn, sdp } => self.answer_ready(conn, sdp, now),
            Input::RemoteSet { conn, ok } => self.remote_set(conn, ok, now),
            Input::LocalCandidate { conn, json } => self.local_candidate(conn, json, now),
            Input::ChannelOpen(conn) => self.on_open(conn, now),
            Input::Frame { conn, bytes } => self.on_frame(conn, bytes, now),
            Input::Closed(conn) => self.on_closed(conn, now),
            Input::NegotiationNeeded(conn) => self.negotiation_needed(conn, now),
            Input::MediaOfferMade { conn, sdp } => self.media_offer_made(conn, sdp, now),
            Input::MediaAnswerMade { conn, sdp } => self.media_answer_made(conn, sdp, now),
            Input::MediaAnswerApplied { conn, ok } => self.media_answer_applied(conn, ok, now),
            Input::KeyframeWanted { conn, track } => self.keyframe_wanted(conn, track, now),
            Input::RemoteTrackEnded { conn, track } => self.remote_track_ended(conn, track, now),
            Input::Store(report) => {
                self.at(now);
                match report {
                    StoreReport::WriteFailed => self.count(DropReason::HistoryWriteFailed),
                    StoreReport::Unreadable(n) => self.count_n(DropReason::HistoryUnreadable, n),
                }
            }
        }
    }

    /// When the core wants its next [`Input::Tick`] (set by the last one).
    pub fn next_tick(&self) -> Instant {
        self.next_tick
    }
}
