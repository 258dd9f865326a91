//! Request actions in the core: an app's requests to peers and their outcomes, peers' requests
//! to the sessions that serve their channel and the answers. The decisions are the room's
//! [`Requests`](super::requests::Requests) table's; this file wires it to rooms, links and
//! sessions.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::requests::{self, Answer, Refusal, Resolved};
use super::{Core, LinkKey, RoomKey, SendPlan};
use crate::drops::DropReason;
use crate::node::core::events::{EventKind, SessionId};
use crate::node::core::types::NodeError;
use crate::room::Security;
use crate::wire::Payload;

/// An app's request, as the core takes it.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// The app's id of it; outcomes name it.
    pub app_request: u64,
    /// Channel (the page's request action).
    pub channel: String,
    /// The data.
    pub payload: Payload,
    /// The app's metadata (Trystero's `m`).
    pub meta: Option<Value>,
    /// Peers asked (at least one).
    pub targets: Vec<String>,
    /// Deadline in ms (0: the default).
    pub timeout_ms: u64,
}

impl Core {
    /// Input: an app asks peers. Returns the links to queue each target's request on; targets
    /// not in the room resolve at once as disconnected (an event, like every outcome).
    pub fn request(
        &mut self,
        session: SessionId,
        handle: u32,
        spec: RequestSpec,
        now: Instant,
    ) -> Result<SendPlan, NodeError> {
        self.at(now);
        let key = self.session_room(session, handle)?;
        if spec.targets.is_empty() {
            return Err(NodeError::InvalidArgument(
                "a request names at least one target peer".into(),
            ));
        }
        if spec.targets.contains(&self.identity.peer_id) {
            return Err(NodeError::InvalidArgument(
                "a request goes to remote peers, not to this node".into(),
            ));
        }
        let mut targets = spec.targets.clone();
        targets.sort();
        targets.dedup();
        let deadline = requests::deadline(now, spec.timeout_ms);
        let Some(entry) = self.st.rooms.get(&key) else {
            return Err(NodeError::NotFound("room not held".into()));
        };
        entry.requests.admit(session, targets.len()).map_err(|_| {
            NodeError::ResourceExhausted(format!(
                "at most {} request targets pending per session and room",
                requests::MAX_OUTGOING_PER_SESSION
            ))
        })?;
        let mut plan = SendPlan::default();
        let mut absent = Vec::new();
        for peer in targets {
            let Some(entry) = self.st.rooms.get(&key) else {
                break;
            };
            let conn = self.st.link_conn(&LinkKey::new(&key.app, &peer));
            let Some(conn) = conn.filter(|_| entry.room.is_joined(&peer)) else {
                absent.push(peer);
                continue;
            };
            let rid = loop {
                let rid = requests::request_id(|| self.seed());
                if self
                    .st
                    .rooms
                    .get(&key)
                    .is_some_and(|e| !e.requests.has_rid(&rid))
                {
                    break rid;
                }
            };
            let Some(entry) = self.st.rooms.get_mut(&key) else {
                break;
            };
            let meta = requests::request_meta(&rid, spec.meta.clone());
            let frames = if entry.room.peer_security(&peer) == Some(Security::E2e) {
                entry
                    .room
                    .encode_sealed(&spec.channel, &spec.payload, Some(&meta))?
            } else {
                entry
                    .room
                    .encode_app(&spec.channel, &spec.payload, Some(&meta))?
            };
            entry
                .requests
                .start(session, spec.app_request, &peer, rid, deadline);
            plan.links.push((peer, conn, Arc::new(frames)));
        }
        self.traffic
            .message_out(spec.payload.wire_len(), plan.links.len());
        for peer in absent {
            self.resolved(
                &key,
                Resolved {
                    session,
                    app_request: spec.app_request,
                    peer,
                    outcome: requests::Outcome::Disconnected,
                },
            );
        }
        Ok(plan)
    }

    /// Input: a session answers a peer's request it was handed (`Err`: an error message, which
    /// the requester sees as a rejection).
    pub fn respond(
        &mut self,
        session: SessionId,
        handle: u32,
        id: u64,
        result: Result<Payload, String>,
        now: Instant,
    ) -> Result<(), NodeError> {
        self.at(now);
        let key = self.session_room(session, handle)?;
        if let Ok(p) = &result
            && p.wire_len() > self.config.limits.max_message
        {
            return Err(NodeError::Send(crate::room::SendError::TooLarge {
                size: p.wire_len(),
                limit: self.config.limits.max_message,
            }));
        }
        let Some(entry) = self.st.rooms.get_mut(&key) else {
            return Err(NodeError::NotFound("room not held".into()));
        };
        let answer = entry
            .requests
            .answer(session, id, result)
            .map_err(|e| match e {
                Refusal::UnknownRequest | Refusal::TooManyOutgoing => NodeError::NotFound(format!(
                    "no pending request {id} (answered, expired, or its peer left)"
                )),
            })?;
        self.send_answer(&key, answer);
        Ok(())
    }

    /// Input: which channels' requests a session answers in a room (replacing the set).
    pub fn serve(
        &mut self,
        session: SessionId,
        handle: u32,
        channels: &[String],
    ) -> Result<(), NodeError> {
        if let Some(sr) = self.session_state_mut(session, handle)? {
            sr.serves = channels.iter().cloned().collect();
        }
        Ok(())
    }

    /// A peer's message on a channel a session serves, with request metadata, becomes that
    /// session's request; anything else is handed back to go out as a message.
    pub(super) fn take_request(
        &mut self,
        key: &RoomKey,
        channel: String,
        from: String,
        payload: Payload,
        meta: Option<Value>,
    ) -> Option<(String, String, Payload, Option<Value>)> {
        let server = self.st.rooms.get(key).and_then(|e| {
            e.sessions
                .iter()
                .find(|(_, sr)| sr.serves.contains(&channel))
                .map(|(s, sr)| (*s, sr.handle))
        });
        let (Some((session, handle)), Some((rid, user))) =
            (server, requests::parse_request_meta(meta.as_ref()))
        else {
            return Some((channel, from, payload, meta));
        };
        let id = self.new_id();
        let now = self.now;
        let accepted = match self.st.rooms.get_mut(key) {
            Some(e) => e.requests.accept(session, id, &from, rid, now),
            None => return None,
        };
        self.traffic.message_in(payload.wire_len());
        match accepted {
            Ok(id) => {
                let kind = EventKind::Request {
                    id,
                    channel,
                    from: from.into(),
                    payload,
                    meta: user,
                };
                self.effects
                    .push(super::Effect::deliver(session, handle, key, kind));
            }
            Err(answer) => {
                self.count(DropReason::RequestBusy);
                self.send_answer(key, answer);
            }
        }
        None
    }

    /// The metadata a progress event shows: on a served channel, the requester's own (`m`).
    pub(super) fn progress_meta(
        &self,
        key: &RoomKey,
        channel: &str,
        meta: Option<Value>,
    ) -> Option<Value> {
        let served = self
            .st
            .rooms
            .get(key)
            .is_some_and(|e| e.sessions.values().any(|sr| sr.serves.contains(channel)));
        match requests::parse_request_meta(meta.as_ref()) {
            Some((_, user)) if served => user,
            _ => meta,
        }
    }

    /// A `@_response` arrived.
    pub(super) fn on_response(
        &mut self,
        key: &RoomKey,
        from: &str,
        payload: Payload,
        meta: Option<Value>,
    ) {
        let resolved = self
            .st
            .rooms
            .get_mut(key)
            .and_then(|e| e.requests.on_response(from, payload, meta.as_ref()));
        match resolved {
            Some(r) => self.resolved(key, r),
            None => self.count(DropReason::ResponseUnmatched),
        }
    }

    /// A peer left a room: its requests fail, nothing owed to it is answered.
    pub(super) fn requests_peer_left(&mut self, key: &RoomKey, peer: &str) {
        let lost = self
            .st
            .rooms
            .get_mut(key)
            .map(|e| e.requests.peer_left(peer))
            .unwrap_or_default();
        for r in lost {
            self.resolved(key, r);
        }
    }

    /// A session left a room: what it owed is answered with Trystero's "no handler" error.
    pub(super) fn requests_session_gone(&mut self, key: &RoomKey, session: SessionId) {
        let owed = self
            .st
            .rooms
            .get_mut(key)
            .map(|e| e.requests.session_gone(session))
            .unwrap_or_default();
        for a in owed {
            self.send_answer(key, a);
        }
    }

    /// A room's request deadlines; returns the next one.
    pub(super) fn requests_tick(&mut self, key: &RoomKey, now: Instant) -> Option<Instant> {
        let (timeouts, answers) = self
            .st
            .rooms
            .get_mut(key)
            .map(|e| e.requests.tick(now))
            .unwrap_or_default();
        for r in timeouts {
            self.resolved(key, r);
        }
        for a in answers {
            self.send_answer(key, a);
        }
        self.st
            .rooms
            .get(key)
            .and_then(|e| e.requests.next_deadline())
    }

    fn send_answer(&mut self, key: &RoomKey, answer: Answer) {
        let (payload, meta) = answer.wire();
        let Some(entry) = self.st.rooms.get_mut(key) else {
            return;
        };
        let frames = entry.room.response_frames(&answer.peer, &payload, &meta);
        match self.st.link_conn(&LinkKey::new(&key.app, &answer.peer)) {
            Some(conn) => self.frames(conn, frames),
            None => self.count(DropReason::SendNoLink),
        }
    }

    fn resolved(&mut self, key: &RoomKey, r: Resolved) {
        let Some(handle) = self
            .st
            .rooms
            .get(key)
            .and_then(|e| e.sessions.get(&r.session))
            .map(|sr| sr.handle)
        else {
            return;
        };
        let kind = EventKind::Response {
            request: r.app_request,
            peer: r.peer.into(),
            outcome: r.outcome,
        };
        self.effects
            .push(super::Effect::deliver(r.session, handle, key, kind));
    }
}
