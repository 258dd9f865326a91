//! Local sessions: a bounded event queue per app connection that drops the oldest on overflow.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::Notify;

use crate::room::{LeaveReason, Security};
use crate::wire::Payload;

/// Identifies a local session.
pub type SessionId = u64;

/// What kind of peer an event names, as far as the node knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerType {
    /// Only seen announcing on a relay.
    Unknown,
    /// A member of the room.
    Member,
    /// A member that keeps channels of the room for peers catching up.
    Keeper,
}

/// What a session hears about one of its rooms.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A peer completed the handshake, with how its payloads are protected and what it is.
    PeerJoin(String, Security, PeerType),
    /// A peer left, and why.
    PeerLeave(String, LeaveReason),
    /// A peer announced itself for the first time, or a joined peer declared it keeps channels.
    PeerSeen(String, PeerType),
    /// A cells room: a link to a member came up or went down.
    MeshPeerState {
        /// The member.
        peer: String,
        /// The link is up.
        linked: bool,
        /// Its cell in the topology in force.
        cell: u32,
        /// It sits in another cell (a bridge link).
        bridge: bool,
    },
    /// A channel message.
    Message {
        /// Channel name.
        channel: String,
        /// Sender peer id (the node's own id for local sends).
        from: String,
        /// Sent by another session on this node.
        local: bool,
        /// Payload.
        payload: Payload,
        /// Metadata.
        meta: Option<Value>,
        /// Its place in the room's kept history (0: its channel is not kept).
        cursor: crate::history::Cursor,
        /// Replayed from the node's history, not live.
        history: bool,
        /// For history: the origin's signature was checked (false: an origin that cannot sign,
        /// such as a Trystero page).
        verified: bool,
    },
    /// Receive progress of a chunked message.
    Progress {
        /// Channel name.
        channel: String,
        /// Sender.
        from: String,
        /// 0.0..=1.0.
        fraction: f32,
        /// Metadata.
        meta: Option<Value>,
    },
    /// A room-level problem.
    Error {
        /// Stable code.
        code: String,
        /// Human message.
        message: String,
        /// Peer concerned, if any.
        peer: String,
    },
    /// This many events were dropped because the session did not keep up.
    Lagged(u64),
    /// A cells room's topology changed.
    MeshState(crate::node::cells::CellInfo),
    /// A peer's media stream arrived (its first track, with the stream's metadata).
    StreamAdd {
        /// The sending peer.
        peer: String,
        /// The media stream id.
        stream_id: String,
        /// The sender's metadata.
        meta: Option<Value>,
    },
    /// A peer's track arrived.
    TrackAdd {
        /// The sending peer.
        peer: String,
        /// The media stream id.
        stream_id: String,
        /// The track id.
        track_id: String,
        /// Its codec.
        codec: crate::transport::media::Codec,
        /// The sender's metadata.
        meta: Option<Value>,
    },
    /// One of this session's tracks is negotiated with a peer: media written now reaches it.
    TrackReady {
        /// The local track's id.
        track: u64,
        /// The peer.
        peer: String,
    },
    /// A peer asks for a keyframe of one of this session's tracks (RTCP PLI or FIR): the next
    /// frame written should be one.
    KeyframeWanted {
        /// The local track's id.
        track: u64,
        /// The peer.
        peer: String,
    },
    /// A peer's track ended.
    TrackRemove {
        /// The sending peer.
        peer: String,
        /// The track id.
        track_id: String,
    },
}

/// An event for one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvent {
    /// The session's handle of the room (0 for session-wide events).
    pub room: u32,
    /// App id.
    pub app: String,
    /// Room id.
    pub room_id: String,
    /// What happened.
    pub kind: EventKind,
}

#[derive(Debug, Default)]
struct QueueState {
    events: VecDeque<SessionEvent>,
    dropped: u64,
    closed: bool,
}

/// Bounded queue of a session's events.
#[derive(Debug)]
pub struct SessionQueue {
    state: Mutex<QueueState>,
    notify: Notify,
    capacity: usize,
}

impl SessionQueue {
    /// A queue holding at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        SessionQueue {
            state: Mutex::new(QueueState::default()),
            notify: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    /// Adds an event, dropping the oldest if full.
    pub fn push(&self, event: SessionEvent) {
        {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.closed {
                return;
            }
            if s.events.len() >= self.capacity {
                s.events.pop_front();
                s.dropped += 1;
            }
            s.events.push_back(event);
        }
        self.notify.notify_one();
    }

    /// Ends the queue; `next` returns `None` once drained.
    pub fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.notify.notify_one();
    }

    /// The next event; a `Lagged` event first if any were dropped.
    pub async fn next(&self) -> Option<SessionEvent> {
        loop {
            {
                let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if s.dropped > 0 {
                    let n = std::mem::take(&mut s.dropped);
                    return Some(SessionEvent {
                        room: 0,
                        app: String::new(),
                        room_id: String::new(),
                        kind: EventKind::Lagged(n),
                    });
                }
                if let Some(e) = s.events.pop_front() {
                    return Some(e);
                }
                if s.closed {
                    return None;
                }
            }
            self.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u32) -> SessionEvent {
        SessionEvent {
            room: n,
            app: "a".into(),
            room_id: "r".into(),
            kind: EventKind::PeerSeen(n.to_string(), PeerType::Unknown),
        }
    }

    #[tokio::test]
    async fn overflow_drops_oldest_and_reports_lag() {
        let q = SessionQueue::new(2);
        for n in 1..=5 {
            q.push(ev(n));
        }
        assert_eq!(q.next().await.map(|e| e.kind), Some(EventKind::Lagged(3)));
        assert_eq!(q.next().await.map(|e| e.room), Some(4));
        assert_eq!(q.next().await.map(|e| e.room), Some(5));
        q.close();
        assert_eq!(q.next().await, None);
    }
}
