//! One room's data-channel state: membership, the handshake, internal actions and channels.
//!
//! Pure: frames and clock in, [`Output`]s out. The node routes frames to links and events to sessions.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::drops::DropReason;
use crate::wire::chunk::{ActionChunk, EncodeError, Payload, encode_payload_framed};
use crate::wire::e2e::{self, E2eKey};
use crate::wire::frame::{data_prefix, encode_presence};
use crate::wire::reassembly::{Assembled, Limits, Reassembler, Step};
use crate::wire::sdp_crypto::password_proof;
use crate::wire::topic::{random_id_from, room_token};
use rand::SeedableRng as _;
use rand::rngs::StdRng;

/// Handshake readiness (sent once the local check passed).
pub const ACTION_READY: &str = "@_hsready";
/// Password challenge and response.
pub const ACTION_HSDATA: &str = "@_hsdata";
/// Ping request.
pub const ACTION_PING: &str = "@_ping";
/// Ping reply.
pub const ACTION_PONG: &str = "@_pong";
/// Leaving the room.
pub const ACTION_LEAVE: &str = "@_leave";
/// meshrtc capabilities, sent just before `@_hsready`.
pub const ACTION_CAPS: &str = "@_mrcaps";
/// The capabilities this node sends: 2 added tracked frames and acknowledgements
/// ([`crate::wire::frame`]).
pub const CAPS_VERSION: u32 = 2;
/// An end-to-end sealed channel message (see [`crate::wire::e2e`]).
pub const ACTION_E2E: &str = "@_mre2e";
/// A signed frame of the cellular overlay (see [`crate::wire::cell`]).
pub const ACTION_CELL: &str = "@_mrcell";
/// Roster reconciliation between members of a cells room (see [`crate::wire::roster`]).
pub const ACTION_ROSTER: &str = "@_mrroster";
/// Which recent cell frames a member holds or wants (see [`crate::wire::cell`]).
pub const ACTION_INVENTORY: &str = "@_mrhave";
/// Durable channels: who keeps what, origin signatures, catch-up (see [`crate::wire::history`]).
pub const ACTION_HISTORY: &str = "@_mrhist";
/// Trystero 0.25's replies to request actions: metadata `{r}` or `{r, e}`.
pub const ACTION_RESPONSE: &str = "@_response";

/// A pending handshake is nudged after this long, then after twice, three times as long.
const HANDSHAKE_NUDGE: Duration = Duration::from_millis(1_500);
const HANDSHAKE_NUDGES: u32 = 3;

mod cells;
mod handshake;
pub mod media;
mod peer_state;

pub use cells::MrAction;
pub use peer_state::{LeaveReason, Security};

/// What happened in the room, for local sessions.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent {
    /// A peer completed the handshake.
    PeerJoin(String, Security),
    /// A joined peer left.
    PeerLeave(String, LeaveReason),
    /// A channel message.
    Message {
        /// Channel (action) name.
        channel: String,
        /// Sender.
        from: String,
        /// The payload.
        payload: Payload,
        /// Metadata, if any.
        meta: Option<Value>,
    },
    /// Progress of a chunked message.
    Progress {
        /// Channel.
        channel: String,
        /// Sender.
        from: String,
        /// 0.0..=1.0.
        fraction: f32,
        /// Metadata, if its chunk arrived.
        meta: Option<Value>,
    },
    /// A problem the app should hear about.
    Error {
        /// Stable code.
        code: &'static str,
        /// Human message.
        message: String,
        /// Peer concerned.
        peer: String,
    },
    /// A `@_pong` arrived.
    Pong(String),
    /// A `@_response` (the reply to a request action) from a joined peer.
    Response {
        /// The replying peer.
        from: String,
        /// The reply (`null` for an error).
        payload: Payload,
        /// `{r}` or `{r, e}`, unchecked.
        meta: Option<Value>,
    },
    /// A media message (renegotiation, stream or track metadata) from a joined peer.
    Media(String, media::MediaWire),
}

/// What the node must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send an outer frame to a peer.
    Send(String, Bytes),
    /// Send a liveness frame (a pong) to a peer ahead of the data queued for it.
    SendFirst(String, Bytes),
    /// Tell local sessions.
    Event(RoomEvent),
    /// Count a drop.
    Drop(DropReason),
    /// A cell frame arrived from a joined peer (the node's overlay decides what it is).
    Cell(String, Vec<u8>),
    /// A roster sync message arrived from a joined peer.
    Roster(String, Vec<u8>),
    /// A cell frame inventory (have / want) arrived from a joined peer.
    Inventory(String, Vec<u8>),
    /// A durable-channel message arrived from a joined peer.
    History(String, Vec<u8>),
    /// A peer sent its capabilities: it is a meshrtc daemon, not a plain Trystero peer. With
    /// the version of its capabilities ([`CAPS_VERSION`]).
    Capable(String, u32),
}

#[derive(Debug)]
struct PeerSlot {
    attached_at: Instant,
    /// Times presence (and our challenge) were sent again while the handshake was pending.
    nudges: u32,
    local_passed: bool,
    remote_ready: bool,
    joined: bool,
    challenge: Option<String>,
    caps_e2e: bool,
    /// It sent `@_mrcaps`: a meshrtc daemon. Reported once it joins (a peer without the
    /// password must not get anything for claiming it).
    caps: bool,
    /// The version its capabilities said.
    caps_version: u32,
    security: Security,
}

/// Why a send is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// Larger than the node's maximum message size.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// Channel names are 1..=32 bytes and may not start with `@_`.
    #[error("invalid channel name {0:?}: 1 to 32 bytes, not starting with @_")]
    BadChannel(String),
    /// The metadata does not fit in one chunk.
    #[error("metadata too large")]
    MetaTooLarge,
}

/// One room: its peers and their handshake, nonces and reassembly.
#[derive(Debug)]
pub struct Room {
    /// Draws password challenges; seeded with [`Room::with_seed`] for reproducible runs.
    rng: StdRng,
    self_id: String,
    app_id: String,
    room_id: String,
    password: String,
    token: String,
    peers: BTreeMap<String, PeerSlot>,
    nonces: BTreeMap<String, u16>,
    reassembly: Reassembler<String>,
    pings: BTreeMap<String, VecDeque<Instant>>,
    max_message: usize,
    handshake_timeout: Duration,
    e2e: Option<E2eKey>,
    require_e2e: bool,
}

/// Whether `name` may be used as a channel by apps.
pub fn valid_channel(name: &str) -> bool {
    !name.is_empty() && name.len() <= 32 && !name.starts_with("@_")
}

/// Limits and timers of a room.
#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    /// Largest message, in payload bytes.
    pub max_message: usize,
    /// A peer whose handshake is not done after this long is dropped.
    pub handshake_timeout: Duration,
    /// A partial message with no new chunk for this long is discarded.
    pub reassembly_timeout: Duration,
}

/// The counter of a message the reassembler refused.
fn reassembly_drop(e: crate::wire::ReassemblyError) -> DropReason {
    use crate::wire::ReassemblyError as E;
    match e {
        E::TooLarge => DropReason::MessageTooLarge,
        E::BuffersFull => DropReason::ReassemblyFull,
        E::NodeFull => DropReason::ReassemblyNodeFull,
        E::TooManyPartials => DropReason::ReassemblyTooMany,
        E::BadMeta => DropReason::ChunkBadMeta,
        E::BadPayload => DropReason::ChunkBadPayload,
    }
}

impl Room {
    /// A room held by this node; `e2e` is the key of a password room.
    pub fn new(
        self_id: &str,
        app_id: &str,
        room_id: &str,
        password: &str,
        limits: RoomLimits,
        e2e: Option<E2eKey>,
    ) -> Self {
        let RoomLimits {
            max_message,
            handshake_timeout,
            reassembly_timeout,
        } = limits;
        Room {
            rng: StdRng::from_entropy(),
            self_id: self_id.to_owned(),
            app_id: app_id.to_owned(),
            room_id: room_id.to_owned(),
            password: password.to_owned(),
            token: room_token(app_id, room_id),
            peers: BTreeMap::new(),
            nonces: BTreeMap::new(),
            reassembly: Reassembler::new(Limits {
                max_message,
                idle_timeout: reassembly_timeout,
                ..Limits::default()
            }),
            pings: BTreeMap::new(),
            max_message,
            handshake_timeout,
            e2e,
            require_e2e: false,
        }
    }

    /// The same room drawing its challenges from a generator seeded with `seed`.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = StdRng::seed_from_u64(seed);
        self
    }

    /// The same room counting its partial messages in the node's reassembly budget too.
    pub fn with_reassembly_budget(mut self, node: crate::wire::reassembly::NodeBudget) -> Self {
        self.reassembly = self.reassembly.with_node_budget(node);
        self
    }

    /// Refuses peers that cannot seal payloads end to end from now on.
    pub fn require_e2e(&mut self) {
        self.require_e2e = true;
    }

    /// Whether peers without end-to-end encryption are refused.
    pub fn requires_e2e(&self) -> bool {
        self.require_e2e
    }

    /// A joined peer's security level.
    pub fn peer_security(&self, peer: &str) -> Option<Security> {
        self.peers
            .get(peer)
            .filter(|s| s.joined)
            .map(|s| s.security)
    }

    /// The room token of this room's frames.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether the room has a password.
    pub fn has_password(&self) -> bool {
        !self.password.is_empty()
    }

    /// Peers that completed the handshake.
    pub fn joined_peers(&self) -> impl Iterator<Item = &str> {
        self.peers
            .iter()
            .filter(|(_, s)| s.joined)
            .map(|(p, _)| p.as_str())
    }

    /// Whether `peer` completed the handshake.
    pub fn is_joined(&self, peer: &str) -> bool {
        self.peers.get(peer).is_some_and(|s| s.joined)
    }

    /// Whether `peer` is attached (joined or handshaking).
    pub fn is_attached(&self, peer: &str) -> bool {
        self.peers.contains_key(peer)
    }

    fn next_nonce(&mut self, action: &str) -> u16 {
        let n = self.nonces.entry(action.to_owned()).or_insert(0);
        let current = *n;
        *n = n.wrapping_add(1);
        current
    }

    /// Encodes a message into outer frames (one per chunk) ready for any peer.
    pub fn encode(
        &mut self,
        action: &str,
        payload: &Payload,
        meta: Option<&Value>,
    ) -> Result<Vec<Bytes>, EncodeError> {
        let nonce = self.next_nonce(action);
        let prefix = data_prefix(&self.token);
        let frames = encode_payload_framed(&prefix, action, nonce, payload, meta)?;
        Ok(frames.into_iter().map(Bytes::from).collect())
    }

    /// Encodes an app message after checking channel name and size.
    pub fn encode_app(
        &mut self,
        channel: &str,
        payload: &Payload,
        meta: Option<&Value>,
    ) -> Result<Vec<Bytes>, SendError> {
        if !valid_channel(channel) {
            return Err(SendError::BadChannel(channel.to_owned()));
        }
        let size = match payload {
            Payload::Text(s) => s.len(),
            Payload::Binary(b) => b.len(),
            Payload::Json(v) => serde_json::to_vec(v).map(|v| v.len()).unwrap_or(0),
        };
        if size > self.max_message {
            return Err(SendError::TooLarge {
                size,
                limit: self.max_message,
            });
        }
        self.encode(channel, payload, meta)
            .map_err(|_| SendError::MetaTooLarge)
    }

    /// Encodes an app message sealed end to end (for peers whose security is [`Security::E2e`]).
    pub fn encode_sealed(
        &mut self,
        channel: &str,
        payload: &Payload,
        meta: Option<&Value>,
    ) -> Result<Vec<Bytes>, SendError> {
        let Some(key) = &self.e2e else {
            return self.encode_app(channel, payload, meta);
        };
        let sealed = Payload::Binary(e2e::seal(key, channel, payload, meta).into());
        self.encode(ACTION_E2E, &sealed, None)
            .map_err(|_| SendError::MetaTooLarge)
    }

    fn send_internal(&mut self, peer: &str, action: &str, payload: Payload, out: &mut Vec<Output>) {
        if let Ok(frames) = self.encode(action, &payload, None) {
            out.extend(frames.into_iter().map(|f| Output::Send(peer.to_owned(), f)));
        }
    }

    /// The frames of a `@_response` to `peer`: plain for a Trystero page, sealed for a peer
    /// that seals.
    pub fn response_frames(&mut self, peer: &str, payload: &Payload, meta: &Value) -> Vec<Bytes> {
        let frames = match (&self.e2e, self.peer_security(peer)) {
            (Some(key), Some(Security::E2e)) => {
                let sealed =
                    Payload::Binary(e2e::seal(key, ACTION_RESPONSE, payload, Some(meta)).into());
                self.encode(ACTION_E2E, &sealed, None)
            }
            _ => self.encode(ACTION_RESPONSE, payload, Some(meta)),
        };
        frames.unwrap_or_default()
    }

    /// The frames of a media message to a peer (renegotiation or metadata).
    pub fn media_frames(&mut self, wire: &media::MediaWire) -> Vec<Bytes> {
        let (action, payload) = wire.encode();
        self.encode(action, &payload, None).unwrap_or_default()
    }

    /// Presence frame announcing this room on a link.
    pub fn presence_frame(&self, joined: bool) -> Bytes {
        Bytes::from(encode_presence(&self.token, joined))
    }

    /// The peer is gone from this room.
    pub fn detach(&mut self, peer: &str, reason: LeaveReason) -> Vec<Output> {
        self.reassembly.forget_peer(&peer.to_owned());
        self.pings.remove(peer);
        match self.peers.remove(peer) {
            Some(slot) if slot.joined => {
                vec![Output::Event(RoomEvent::PeerLeave(peer.to_owned(), reason))]
            }
            _ => Vec::new(),
        }
    }

    /// Frames that tell `peer` we leave: `@_leave` then presence 0.
    pub fn leave_frames(&mut self, peer: &str) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.send_internal(peer, ACTION_LEAVE, Payload::Text(String::new()), &mut out);
        let mut frames: Vec<Bytes> = out
            .into_iter()
            .filter_map(|o| {
                if let Output::Send(_, f) = o {
                    Some(f)
                } else {
                    None
                }
            })
            .collect();
        frames.push(self.presence_frame(false));
        frames
    }

    /// Starts a ping; returns the frame to send, if the peer is joined.
    pub fn ping(&mut self, peer: &str, now: Instant) -> Option<Bytes> {
        if !self.is_joined(peer) {
            return None;
        }
        self.pings
            .entry(peer.to_owned())
            .or_default()
            .push_back(now);
        let mut out = Vec::new();
        self.send_internal(peer, ACTION_PING, Payload::Text(String::new()), &mut out);
        out.into_iter().find_map(|o| {
            if let Output::Send(_, f) = o {
                Some(f)
            } else {
                None
            }
        })
    }

    /// Round trip of the oldest outstanding ping to `peer`, consumed on its pong.
    pub fn take_ping(&mut self, peer: &str, now: Instant) -> Option<Duration> {
        let start = self.pings.get_mut(peer)?.pop_front()?;
        Some(now.saturating_duration_since(start))
    }

    /// Drops peers whose handshake timed out, and stale partial messages.
    pub fn tick(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let expired = self.reassembly.expire(now);
        out.extend((0..expired).map(|_| Output::Drop(DropReason::ReassemblyExpired)));
        let stale: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, s)| {
                !s.joined && now.saturating_duration_since(s.attached_at) >= self.handshake_timeout
            })
            .map(|(p, _)| p.clone())
            .collect();
        // A handshake still pending after a while is nudged: presence again (a browser may not
        // have tied the new connection to the room when ours first arrived) and our challenge.
        let token_frame = self.presence_frame(true);
        let mut nudged = Vec::new();
        for (peer, slot) in self.peers.iter_mut() {
            let due = HANDSHAKE_NUDGE * (slot.nudges + 1);
            if !slot.joined
                && slot.nudges < HANDSHAKE_NUDGES
                && now.saturating_duration_since(slot.attached_at) >= due
            {
                slot.nudges += 1;
                out.push(Output::Send(peer.clone(), token_frame.clone()));
                nudged.push(peer.clone());
            }
        }
        for peer in nudged {
            out.push(Output::Drop(DropReason::HandshakeNudged));
            self.resend_handshake(&peer, &mut out);
        }
        for peer in stale {
            self.peers.remove(&peer);
            out.push(Output::Drop(DropReason::HandshakeTimeout));
            out.push(Output::Event(RoomEvent::Error {
                code: "handshake_timeout",
                message: format!("peer {peer} did not complete the handshake"),
                peer,
            }));
        }
        out
    }

    /// One action chunk from `peer` (already attached by the caller).
    pub fn on_chunk(&mut self, peer: &str, bytes: &[u8], now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let chunk = match ActionChunk::decode(bytes) {
            Ok(c) => c,
            Err(_) => {
                out.push(Output::Drop(DropReason::ChunkMalformed));
                return out;
            }
        };
        let Some(slot) = self.peers.get(peer) else {
            out.push(Output::Drop(DropReason::ChunkUnattached));
            return out;
        };
        let internal = chunk.action.starts_with("@_");
        if !slot.joined
            && !matches!(
                chunk.action,
                ACTION_READY | ACTION_HSDATA | ACTION_LEAVE | ACTION_CAPS
            )
        {
            out.push(Output::Drop(DropReason::ChunkBeforeHandshake));
            return out;
        }
        let step = match self.reassembly.push(&peer.to_owned(), &chunk, now) {
            Ok(s) => s,
            Err(e) => {
                out.push(Output::Drop(reassembly_drop(e)));
                return out;
            }
        };
        match step {
            Step::Partial {
                action,
                progress,
                meta,
            } => {
                if !internal {
                    out.push(Output::Event(RoomEvent::Progress {
                        channel: action,
                        from: peer.to_owned(),
                        fraction: f32::from(progress) / 255.0,
                        meta,
                    }));
                }
            }
            Step::Complete(msg) => self.on_message(peer, msg, &mut out),
        }
        out
    }

    /// A whole action arrived from `peer`.
    fn on_message(&mut self, peer: &str, msg: Assembled, out: &mut Vec<Output>) {
        match msg.action.as_str() {
            ACTION_READY => {
                if let Some(slot) = self.peers.get_mut(peer) {
                    slot.remote_ready = true;
                }
                self.maybe_join(peer, out);
            }
            ACTION_HSDATA => self.on_hsdata(peer, &msg.payload, out),
            ACTION_PING => {
                // Ahead of queued data: a peer whose ping waits behind a bulk message it is
                // receiving from us would take a healthy link for dead.
                if let Ok(frames) = self.encode(ACTION_PONG, &Payload::Text(String::new()), None) {
                    out.extend(
                        frames
                            .into_iter()
                            .map(|f| Output::SendFirst(peer.to_owned(), f)),
                    );
                }
            }
            ACTION_PONG => out.push(Output::Event(RoomEvent::Pong(peer.to_owned()))),
            ACTION_LEAVE => out.extend(self.detach(peer, LeaveReason::Leave)),
            ACTION_CAPS => {
                let e2e = matches!(&msg.payload, Payload::Json(v) if v.get("e2e").and_then(Value::as_bool) == Some(true));
                let version = match &msg.payload {
                    Payload::Json(v) => v.get("v").and_then(Value::as_u64).unwrap_or(1),
                    _ => 1,
                };
                let version = u32::try_from(version).unwrap_or(u32::MAX);
                if let Some(slot) = self.peers.get_mut(peer) {
                    if !slot.joined {
                        slot.caps_e2e = e2e;
                    } else if !slot.caps {
                        out.push(Output::Capable(peer.to_owned(), version));
                    }
                    slot.caps = true;
                    slot.caps_version = version;
                }
            }
            ACTION_E2E => self.on_sealed(peer, msg.payload, out),
            // An e2e peer seals its replies too (see `response_frames`).
            ACTION_RESPONSE if self.peer_security(peer) == Some(Security::E2e) => {
                out.push(Output::Drop(DropReason::E2ePlaintextRefused))
            }
            ACTION_RESPONSE => out.push(Output::Event(RoomEvent::Response {
                from: peer.to_owned(),
                payload: msg.payload,
                meta: msg.meta,
            })),
            media::ACTION_SIGNAL | media::ACTION_STREAM | media::ACTION_TRACK => {
                match media::MediaWire::parse(&msg.action, &msg.payload) {
                    Some(wire) if self.is_joined(peer) => {
                        out.push(Output::Event(RoomEvent::Media(peer.to_owned(), wire)))
                    }
                    _ => out.push(Output::Drop(DropReason::MediaMalformed)),
                }
            }
            ACTION_CELL => match msg.payload {
                Payload::Binary(bytes) if self.is_joined(peer) => {
                    out.push(Output::Cell(peer.to_owned(), bytes.into()))
                }
                _ => out.push(Output::Drop(DropReason::CellUnexpected)),
            },
            ACTION_INVENTORY => match msg.payload {
                Payload::Binary(bytes) if self.is_joined(peer) => {
                    out.push(Output::Inventory(peer.to_owned(), bytes.into()))
                }
                _ => out.push(Output::Drop(DropReason::CellUnexpected)),
            },
            ACTION_ROSTER => match msg.payload {
                Payload::Binary(bytes) if self.is_joined(peer) => {
                    out.push(Output::Roster(peer.to_owned(), bytes.into()))
                }
                _ => out.push(Output::Drop(DropReason::RosterMalformed)),
            },
            ACTION_HISTORY => match msg.payload {
                Payload::Binary(bytes) if self.is_joined(peer) => match self.open_history(bytes) {
                    Ok(plain) => out.push(Output::History(peer.to_owned(), plain.into())),
                    Err(reason) => out.push(Output::Drop(reason)),
                },
                _ => out.push(Output::Drop(DropReason::HistoryMalformed)),
            },
            a if a.starts_with("@_") => out.push(Output::Drop(DropReason::ActionUnknownInternal)),
            "" => out.push(Output::Drop(DropReason::ActionEmpty)),
            // An e2e peer never sends plaintext: this would be a downgrade.
            _ if self.peer_security(peer) == Some(Security::E2e) => {
                out.push(Output::Drop(DropReason::E2ePlaintextRefused))
            }
            _ => out.push(Output::Event(RoomEvent::Message {
                channel: msg.action,
                from: peer.to_owned(),
                payload: msg.payload,
                meta: msg.meta,
            })),
        }
    }

    fn on_sealed(&mut self, peer: &str, payload: Payload, out: &mut Vec<Output>) {
        let (Some(key), Payload::Binary(bytes)) = (&self.e2e, payload) else {
            out.push(Output::Drop(DropReason::E2eMalformed));
            return;
        };
        if self.peer_security(peer) != Some(Security::E2e) {
            out.push(Output::Drop(DropReason::E2eUnexpected));
            return;
        }
        match e2e::open(key, &bytes) {
            Ok((channel, payload, meta)) if valid_channel(&channel) => {
                out.push(Output::Event(RoomEvent::Message {
                    channel,
                    from: peer.to_owned(),
                    payload,
                    meta,
                }));
            }
            Ok((channel, payload, meta)) if channel == ACTION_RESPONSE => {
                out.push(Output::Event(RoomEvent::Response {
                    from: peer.to_owned(),
                    payload,
                    meta,
                }));
            }
            Ok(_) => out.push(Output::Drop(DropReason::E2eMalformed)),
            Err(e2e::E2eError::Decrypt) => out.push(Output::Drop(DropReason::E2eDecryptFailed)),
            Err(e2e::E2eError::Malformed) => out.push(Output::Drop(DropReason::E2eMalformed)),
        }
    }
}

#[cfg(test)]
mod tests;
