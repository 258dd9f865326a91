//! Trystero 0.25's request actions (*pure*): one room's requests in flight, both ways.
//!
//! Wire (Trystero 0.25.4, `actions.ts`): a request is an ordinary message on the action, its
//! metadata `{r: <20-char id>}` or `{r, m: userMetadata}`; the answer goes to the requester
//! alone on the internal action `@_response`, payload = the reply and metadata `{r}`, or payload
//! `null` and metadata `{r, e: message}` for an error. The requester matches `r` *and* the
//! replying peer; timeouts are the requester's own, nothing on the wire.
//!
//! This table decides everything about them with `now` passed in: which outgoing requests are
//! pending, until when, what a reply resolves, what a departed peer fails; which incoming
//! requests a local session owes an answer, and what is answered for it when it cannot. The
//! core turns its answers into frames and session events.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::node::core::events::SessionId;
use crate::wire::Payload;

/// Outgoing request targets one session may have pending in one room.
pub const MAX_OUTGOING_PER_SESSION: usize = 256;
/// Incoming requests one session may owe answers to in one room.
pub const MAX_INCOMING_PER_SESSION: usize = 256;
/// A request's deadline when the app gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest deadline an app may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// An incoming request no session answered in this long is answered with an error.
pub const INCOMING_TTL: Duration = Duration::from_secs(600);
/// Length of a request id, as Trystero makes them (`genId(20)`).
pub const REQUEST_ID_LEN: usize = 20;

/// The error Trystero answers when no handler takes a request.
pub const ERR_NO_HANDLER: &str = "request handler unavailable";
/// Answered for an incoming request nobody answered within [`INCOMING_TTL`].
pub const ERR_EXPIRED: &str = "request timed out at the responder";
pub use super::events::Outcome;

/// Answered when a session already owes too many answers.
pub const ERR_BUSY: &str = "too many pending requests";

/// One target's outcome, for the session that asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The session that made the request.
    pub session: SessionId,
    /// The app's id of the request (its `ClientMessage.request_id`).
    pub app_request: u64,
    /// The target.
    pub peer: String,
    /// How it ended.
    pub outcome: Outcome,
}

/// An answer the node must send on `@_response` for a local session.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The requester.
    pub peer: String,
    /// Its request id.
    pub rid: String,
    /// The reply, or the error message.
    pub result: Result<Payload, String>,
}

impl Answer {
    /// The `@_response` payload and metadata, exactly as Trystero sends them.
    pub fn wire(&self) -> (Payload, Value) {
        match &self.result {
            Ok(p) => (p.clone(), json!({ "r": self.rid })),
            Err(e) => (Payload::Json(Value::Null), json!({ "r": self.rid, "e": e })),
        }
    }
}

/// A request's metadata: `{r}` or `{r, m}` (`None`: not a request — Trystero ignores it).
pub fn parse_request_meta(meta: Option<&Value>) -> Option<(String, Option<Value>)> {
    let obj = meta?.as_object()?;
    let r = obj.get("r")?.as_str()?;
    Some((r.to_owned(), obj.get("m").cloned()))
}

/// A request's metadata for the wire.
pub fn request_meta(rid: &str, user: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("r".into(), Value::String(rid.to_owned()));
    if let Some(user) = user {
        m.insert("m".into(), user);
    }
    Value::Object(m)
}

/// A reply's metadata: the request id and, for an error, its message (a non-string `e` is
/// ignored, as Trystero does). `None`: not a reply.
pub fn parse_response_meta(meta: Option<&Value>) -> Option<(String, Option<String>)> {
    let obj = meta?.as_object()?;
    let r = obj.get("r")?.as_str()?;
    let e = obj.get("e").and_then(Value::as_str).map(str::to_owned);
    Some((r.to_owned(), e))
}

/// A 20-character request id from Trystero's alphabet, drawn from `seed`.
pub fn request_id(mut seed: impl FnMut() -> u64) -> String {
    const SET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..REQUEST_ID_LEN)
        .map(|_| char::from(SET[(seed() % SET.len() as u64) as usize]))
        .collect()
}

/// Why a request or an answer is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The session is at [`MAX_OUTGOING_PER_SESSION`].
    TooManyOutgoing,
    /// No pending incoming request of this session has that handle.
    UnknownRequest,
}

#[derive(Debug, Clone)]
struct Outgoing {
    session: SessionId,
    app_request: u64,
    peer: String,
    deadline: Instant,
}

#[derive(Debug, Clone)]
struct Incoming {
    session: SessionId,
    peer: String,
    rid: String,
    expires: Instant,
}

/// One room's requests in flight.
#[derive(Debug, Default)]
pub struct Requests {
    /// Outgoing, by wire request id.
    outgoing: BTreeMap<String, Outgoing>,
    /// Incoming a local session owes, by the handle it was given.
    incoming: BTreeMap<u64, Incoming>,
}

impl Requests {
    /// Outgoing targets a session has pending.
    pub fn outgoing_of(&self, session: SessionId) -> usize {
        self.outgoing
            .values()
            .filter(|o| o.session == session)
            .count()
    }

    /// Whether this wire id is taken (a fresh one is drawn).
    pub fn has_rid(&self, rid: &str) -> bool {
        self.outgoing.contains_key(rid)
    }

    /// Checks that a session may start `targets` more requests.
    pub fn admit(&self, session: SessionId, targets: usize) -> Result<(), Refusal> {
        if self.outgoing_of(session) + targets > MAX_OUTGOING_PER_SESSION {
            return Err(Refusal::TooManyOutgoing);
        }
        Ok(())
    }

    /// Records an outgoing request to `peer` under wire id `rid`, failing at `deadline`.
    pub fn start(
        &mut self,
        session: SessionId,
        app_request: u64,
        peer: &str,
        rid: String,
        deadline: Instant,
    ) {
        self.outgoing.insert(
            rid,
            Outgoing {
                session,
                app_request,
                peer: peer.to_owned(),
                deadline,
            },
        );
    }

    /// A `@_response` from `peer`; `None` if it answers nothing pending from that peer (a late
    /// or forged reply).
    pub fn on_response(
        &mut self,
        peer: &str,
        payload: Payload,
        meta: Option<&Value>,
    ) -> Option<Resolved> {
        let (rid, error) = parse_response_meta(meta)?;
        if self.outgoing.get(&rid)?.peer != peer {
            return None;
        }
        let o = self.outgoing.remove(&rid)?;
        let outcome = match error {
            Some(e) => Outcome::Rejected(e),
            None => Outcome::Fulfilled(payload),
        };
        Some(Resolved {
            session: o.session,
            app_request: o.app_request,
            peer: o.peer,
            outcome,
        })
    }

    /// An incoming request for `session`; returns its handle, or the error to answer at once.
    pub fn accept(
        &mut self,
        session: SessionId,
        handle: u64,
        peer: &str,
        rid: String,
        now: Instant,
    ) -> Result<u64, Answer> {
        let owed = self
            .incoming
            .values()
            .filter(|i| i.session == session)
            .count();
        if owed >= MAX_INCOMING_PER_SESSION {
            return Err(Answer {
                peer: peer.to_owned(),
                rid,
                result: Err(ERR_BUSY.into()),
            });
        }
        self.incoming.insert(
            handle,
            Incoming {
                session,
                peer: peer.to_owned(),
                rid,
                expires: now + INCOMING_TTL,
            },
        );
        Ok(handle)
    }

    /// A session answers the incoming request `handle`.
    pub fn answer(
        &mut self,
        session: SessionId,
        handle: u64,
        result: Result<Payload, String>,
    ) -> Result<Answer, Refusal> {
        match self.incoming.get(&handle) {
            Some(i) if i.session == session => {}
            _ => return Err(Refusal::UnknownRequest),
        }
        let i = self
            .incoming
            .remove(&handle)
            .ok_or(Refusal::UnknownRequest)?;
        Ok(Answer {
            peer: i.peer,
            rid: i.rid,
            result,
        })
    }

    /// A peer left the room: its outgoing requests fail as disconnected, and nothing owed to it
    /// is answered any more.
    pub fn peer_left(&mut self, peer: &str) -> Vec<Resolved> {
        self.incoming.retain(|_, i| i.peer != peer);
        let gone: Vec<String> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.peer == peer)
            .map(|(rid, _)| rid.clone())
            .collect();
        gone.into_iter()
            .filter_map(|rid| self.outgoing.remove(&rid))
            .map(|o| Resolved {
                session: o.session,
                app_request: o.app_request,
                peer: o.peer,
                outcome: Outcome::Disconnected,
            })
            .collect()
    }

    /// A session left the room: its outgoing requests are forgotten, and what it owed is
    /// answered as Trystero answers a request with no handler.
    pub fn session_gone(&mut self, session: SessionId) -> Vec<Answer> {
        self.outgoing.retain(|_, o| o.session != session);
        let owed: Vec<u64> = self
            .incoming
            .iter()
            .filter(|(_, i)| i.session == session)
            .map(|(h, _)| *h)
            .collect();
        owed.into_iter()
            .filter_map(|h| self.incoming.remove(&h))
            .map(|i| Answer {
                peer: i.peer,
                rid: i.rid,
                result: Err(ERR_NO_HANDLER.into()),
            })
            .collect()
    }

    /// Time passed: deadlines that fell fail as timeouts; incoming requests held too long are
    /// answered with an error.
    pub fn tick(&mut self, now: Instant) -> (Vec<Resolved>, Vec<Answer>) {
        let late: Vec<String> = self
            .outgoing
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(rid, _)| rid.clone())
            .collect();
        let timeouts = late
            .into_iter()
            .filter_map(|rid| self.outgoing.remove(&rid))
            .map(|o| Resolved {
                session: o.session,
                app_request: o.app_request,
                peer: o.peer,
                outcome: Outcome::Timeout,
            })
            .collect();
        let stale: Vec<u64> = self
            .incoming
            .iter()
            .filter(|(_, i)| i.expires <= now)
            .map(|(h, _)| *h)
            .collect();
        let answers = stale
            .into_iter()
            .filter_map(|h| self.incoming.remove(&h))
            .map(|i| Answer {
                peer: i.peer,
                rid: i.rid,
                result: Err(ERR_EXPIRED.into()),
            })
            .collect();
        (timeouts, answers)
    }

    /// The next deadline, if anything is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        let out = self.outgoing.values().map(|o| o.deadline);
        let inc = self.incoming.values().map(|i| i.expires);
        out.chain(inc).min()
    }
}

/// The deadline of a request asked with `timeout_ms` (0: the default), capped.
pub fn deadline(now: Instant, timeout_ms: u64) -> Instant {
    let t = if timeout_ms == 0 {
        DEFAULT_TIMEOUT
    } else {
        Duration::from_millis(timeout_ms).min(MAX_TIMEOUT)
    };
    now + t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn request_metadata_is_trysteros() {
        assert_eq!(request_meta("abc", None), json!({"r": "abc"}));
        assert_eq!(
            request_meta("abc", Some(json!({"k": 1}))),
            json!({"r": "abc", "m": {"k": 1}})
        );
        assert_eq!(
            parse_request_meta(Some(&json!({"r": "x", "m": null}))),
            Some(("x".into(), Some(Value::Null)))
        );
        assert_eq!(parse_request_meta(Some(&json!({"r": 5}))), None);
        assert_eq!(parse_request_meta(Some(&json!(["r"]))), None);
        assert_eq!(parse_request_meta(None), None);
    }

    #[test]
    fn answers_are_trysteros_response_shape() {
        let ok = Answer {
            peer: "p".into(),
            rid: "r1".into(),
            result: Ok(Payload::Text("hi".into())),
        };
        assert_eq!(ok.wire(), (Payload::Text("hi".into()), json!({"r": "r1"})));
        let err = Answer {
            result: Err("nope".into()),
            ..ok
        };
        assert_eq!(
            err.wire(),
            (Payload::Json(Value::Null), json!({"r": "r1", "e": "nope"}))
        );
        // A non-string `e` is no error, as in Trystero's getResponseMetadata.
        assert_eq!(
            parse_response_meta(Some(&json!({"r": "a", "e": 3}))),
            Some(("a".into(), None))
        );
    }

    #[test]
    fn request_ids_are_20_alphanumerics() {
        let mut n = 0u64;
        let id = request_id(|| {
            n += 7;
            n
        });
        assert_eq!(id.len(), REQUEST_ID_LEN);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn a_reply_resolves_only_from_the_peer_asked() {
        let now = t0();
        let mut r = Requests::default();
        r.start(
            SessionId(1),
            9,
            "alice",
            "rid1".into(),
            now + Duration::from_secs(5),
        );
        let meta = json!({"r": "rid1"});
        assert_eq!(
            r.on_response("mallory", Payload::Text("x".into()), Some(&meta)),
            None
        );
        let got = r.on_response("alice", Payload::Text("ok".into()), Some(&meta));
        assert_eq!(
            got,
            Some(Resolved {
                session: SessionId(1),
                app_request: 9,
                peer: "alice".into(),
                outcome: Outcome::Fulfilled(Payload::Text("ok".into())),
            })
        );
        // Answered once: a second reply matches nothing.
        assert_eq!(
            r.on_response("alice", Payload::Text("ok".into()), Some(&meta)),
            None
        );
    }

    #[test]
    fn a_rejection_carries_its_message() {
        let now = t0();
        let mut r = Requests::default();
        r.start(
            SessionId(1),
            9,
            "alice",
            "rid1".into(),
            now + Duration::from_secs(5),
        );
        let got = r.on_response(
            "alice",
            Payload::Json(Value::Null),
            Some(&json!({"r": "rid1", "e": "Trystero: nope"})),
        );
        assert_eq!(
            got.map(|g| g.outcome),
            Some(Outcome::Rejected("Trystero: nope".into()))
        );
    }

    #[test]
    fn deadlines_time_out_and_departures_disconnect() {
        let now = t0();
        let mut r = Requests::default();
        r.start(
            SessionId(1),
            1,
            "alice",
            "a".into(),
            now + Duration::from_secs(1),
        );
        r.start(
            SessionId(1),
            1,
            "bob",
            "b".into(),
            now + Duration::from_secs(10),
        );
        assert_eq!(r.next_deadline(), Some(now + Duration::from_secs(1)));
        let (early, _) = r.tick(now + Duration::from_millis(999));
        assert!(early.is_empty());
        let (late, _) = r.tick(now + Duration::from_secs(1));
        assert_eq!(late.len(), 1);
        assert_eq!(
            (late[0].peer.as_str(), &late[0].outcome),
            ("alice", &Outcome::Timeout)
        );
        let gone = r.peer_left("bob");
        assert_eq!(gone[0].outcome, Outcome::Disconnected);
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn outgoing_requests_are_bounded_per_session() {
        let now = t0();
        let mut r = Requests::default();
        for i in 0..MAX_OUTGOING_PER_SESSION {
            r.start(SessionId(1), 1, "p", format!("r{i}"), now + DEFAULT_TIMEOUT);
        }
        assert_eq!(r.admit(SessionId(1), 1), Err(Refusal::TooManyOutgoing));
        assert_eq!(r.admit(SessionId(2), 1), Ok(()));
    }

    #[test]
    fn incoming_requests_are_answered_once_by_their_session() {
        let now = t0();
        let mut r = Requests::default();
        assert_eq!(
            r.accept(SessionId(1), 42, "page", "rid".into(), now),
            Ok(42)
        );
        assert_eq!(
            r.answer(SessionId(2), 42, Ok(Payload::Text("x".into()))),
            Err(Refusal::UnknownRequest)
        );
        let a = r
            .answer(SessionId(1), 42, Ok(Payload::Text("x".into())))
            .ok();
        assert_eq!(
            a.map(|a| (a.peer, a.rid)),
            Some(("page".into(), "rid".into()))
        );
        assert_eq!(
            r.answer(SessionId(1), 42, Ok(Payload::Text("x".into()))),
            Err(Refusal::UnknownRequest)
        );
    }

    #[test]
    fn a_session_that_goes_owes_errors_and_a_busy_one_refuses() {
        let now = t0();
        let mut r = Requests::default();
        for h in 0..MAX_INCOMING_PER_SESSION as u64 {
            assert!(
                r.accept(SessionId(1), h, "page", format!("r{h}"), now)
                    .is_ok()
            );
        }
        let busy = r.accept(SessionId(1), 999, "page", "over".into(), now);
        assert_eq!(busy.map_err(|a| a.result), Err(Err(ERR_BUSY.into())));
        let owed = r.session_gone(SessionId(1));
        assert_eq!(owed.len(), MAX_INCOMING_PER_SESSION);
        assert!(owed.iter().all(|a| a.result == Err(ERR_NO_HANDLER.into())));
    }

    #[test]
    fn unanswered_incoming_requests_expire_with_an_error() {
        let now = t0();
        let mut r = Requests::default();
        r.accept(SessionId(1), 1, "page", "rid".into(), now).ok();
        let (_, none) = r.tick(now + INCOMING_TTL - Duration::from_millis(1));
        assert!(none.is_empty());
        let (_, answers) = r.tick(now + INCOMING_TTL);
        assert_eq!(answers[0].result, Err(ERR_EXPIRED.into()));
        // A peer that left is owed nothing.
        r.accept(SessionId(1), 2, "page", "rid2".into(), now).ok();
        r.peer_left("page");
        assert_eq!(
            r.answer(SessionId(1), 2, Err("x".into())),
            Err(Refusal::UnknownRequest)
        );
    }

    #[test]
    fn deadlines_default_and_cap() {
        let now = t0();
        assert_eq!(deadline(now, 0), now + DEFAULT_TIMEOUT);
        assert_eq!(deadline(now, 1500), now + Duration::from_millis(1500));
        assert_eq!(deadline(now, u64::MAX), now + MAX_TIMEOUT);
    }
}
