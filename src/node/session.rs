//! Local sessions: a bounded event queue per app connection that drops the oldest on overflow.
//! What the events are is the core's (`node::core::events`).

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

pub use super::core::events::{EventKind, PeerType, SessionEvent, SessionId};

/// Payload bytes one session's queue may hold: a count of events alone would let 4,096 messages
/// of 64 MiB wait for a reader that stopped. Room for two of the largest messages.
pub const SESSION_QUEUE_BYTES: usize = 128 << 20;
/// How far back a progress event looks for an earlier one of the same message to replace.
const PROGRESS_COALESCE_WINDOW: usize = 64;

/// Payload bytes a queued event holds (the rest of an event is small and bounded by the count).
fn event_bytes(e: &SessionEvent) -> usize {
    match &e.kind {
        EventKind::Message { payload, .. } | EventKind::Request { payload, .. } => {
            payload.wire_len()
        }
        EventKind::Response {
            outcome: crate::node::core::requests::Outcome::Fulfilled(payload),
            ..
        } => payload.wire_len(),
        _ => 0,
    }
}

/// The room, sender and channel of a message or of its progress.
fn stream_of(e: &SessionEvent) -> Option<(u32, &str, &str)> {
    match &e.kind {
        EventKind::Message { channel, from, .. } | EventKind::Progress { channel, from, .. } => {
            Some((e.room, from, channel))
        }
        _ => None,
    }
}

#[derive(Debug, Default)]
struct QueueState {
    events: VecDeque<SessionEvent>,
    /// Payload bytes of `events`.
    bytes: usize,
    dropped: u64,
    closed: bool,
    /// Replays being read, oldest first, each with the live events that came after it.
    holds: VecDeque<(Hold, VecDeque<SessionEvent>)>,
    next_hold: u64,
}

/// A place kept in a session's queue for a replay read off the node's lock: live events that
/// come meanwhile wait behind it, so the session sees kept messages before newer live ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold(u64);

/// Bounded queue of a session's events, in events and in payload bytes.
#[derive(Debug)]
pub struct SessionQueue {
    state: Mutex<QueueState>,
    notify: Notify,
    capacity: usize,
    max_bytes: usize,
}

impl SessionQueue {
    /// A queue holding at most `capacity` events and [`SESSION_QUEUE_BYTES`] of payloads.
    pub fn new(capacity: usize) -> Self {
        Self::with_byte_limit(capacity, SESSION_QUEUE_BYTES)
    }

    /// A queue holding at most `capacity` events and `max_bytes` of payloads.
    pub fn with_byte_limit(capacity: usize, max_bytes: usize) -> Self {
        SessionQueue {
            state: Mutex::new(QueueState::default()),
            notify: Notify::new(),
            capacity: capacity.max(1),
            max_bytes,
        }
    }

    /// Adds an event, dropping the oldest while the queue is over either bound (the reader is
    /// told with a `Lagged` event). A progress event replaces a queued one of the same message:
    /// every chunk of a large message reports progress, and those must not push out messages.
    pub fn push(&self, event: SessionEvent) {
        {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.closed {
                return;
            }
            if let Some((_, waiting)) = s.holds.back_mut() {
                // Bounded like the queue: a replay that never comes back cannot make it grow.
                let full = waiting.len() >= self.capacity;
                if full {
                    waiting.pop_front();
                }
                waiting.push_back(event);
                s.dropped += u64::from(full);
                return;
            }
            self.admit(&mut s, event);
        }
        self.notify.notify_one();
    }

    /// Keeps a place for a replay: events pushed from now on wait until it is released.
    pub fn hold(&self) -> Hold {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let hold = Hold(s.next_hold);
        s.next_hold += 1;
        s.holds.push_back((hold, VecDeque::new()));
        hold
    }

    /// Fills a held place with the replayed events, then lets the live events that waited
    /// behind it through (up to the next hold).
    pub fn release(&self, hold: Hold, replayed: Vec<SessionEvent>) {
        {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let Some(at) = s.holds.iter().position(|(h, _)| *h == hold) else {
                return;
            };
            let waiting = s.holds.remove(at).map(|(_, w)| w).unwrap_or_default();
            let events = replayed.into_iter().chain(waiting);
            let closed = s.closed;
            match at.checked_sub(1).and_then(|before| s.holds.get_mut(before)) {
                // An older replay is still out: these go behind it, in order.
                Some((_, earlier)) => earlier.extend(events),
                None if closed => {}
                None => {
                    for e in events {
                        self.admit(&mut s, e);
                    }
                }
            }
        }
        self.notify.notify_one();
    }

    /// Queues one event within the bounds (see [`SessionQueue::push`]).
    fn admit(&self, s: &mut QueueState, event: SessionEvent) {
        // The latest queued event of the same sender and channel, if it is progress, is
        // progress of this same message (a message of theirs in between ends the search).
        if matches!(event.kind, EventKind::Progress { .. })
            && let Some(queued) = s
                .events
                .iter_mut()
                .rev()
                .take(PROGRESS_COALESCE_WINDOW)
                .find(|q| stream_of(q).is_some() && stream_of(q) == stream_of(&event))
            && matches!(queued.kind, EventKind::Progress { .. })
        {
            *queued = event;
            return;
        }
        let size = event_bytes(&event);
        while !s.events.is_empty()
            && (s.events.len() >= self.capacity || s.bytes + size > self.max_bytes)
        {
            if let Some(old) = s.events.pop_front() {
                s.bytes -= event_bytes(&old);
            }
            s.dropped += 1;
        }
        s.bytes += size;
        s.events.push_back(event);
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
                    s.bytes -= event_bytes(&e);
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
            kind: EventKind::PeerSeen(crate::ids::PeerId::from(n.to_string()), PeerType::Unknown),
        }
    }

    async fn rooms(q: &SessionQueue, n: usize) -> Vec<u32> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(q.next().await.map_or(0, |e| e.room));
        }
        out
    }

    #[tokio::test]
    async fn a_replay_read_off_the_lock_comes_before_the_live_events_behind_it() {
        let q = SessionQueue::new(16);
        q.push(ev(1));
        let hold = q.hold();
        q.push(ev(10));
        q.push(ev(11));
        q.release(hold, vec![ev(5), ev(6)]);
        q.push(ev(12));
        assert_eq!(rooms(&q, 6).await, vec![1, 5, 6, 10, 11, 12]);
    }

    #[tokio::test]
    async fn replays_released_out_of_order_still_come_in_the_order_they_were_held() {
        let q = SessionQueue::new(16);
        let first = q.hold();
        q.push(ev(10));
        let second = q.hold();
        q.push(ev(20));
        q.release(second, vec![ev(2)]);
        q.release(first, vec![ev(1)]);
        assert_eq!(rooms(&q, 4).await, vec![1, 10, 2, 20]);
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

    fn message(room: u32, bytes: usize) -> SessionEvent {
        SessionEvent {
            room,
            app: "a".into(),
            room_id: "r".into(),
            kind: EventKind::Message {
                channel: "c".into(),
                from: "p".into(),
                local: false,
                payload: crate::wire::Payload::Binary(vec![0; bytes].into()),
                meta: None,
                cursor: crate::history::Cursor::default(),
                history: false,
                verified: false,
            },
        }
    }

    fn progress(room: u32, from: &str, fraction: f32) -> SessionEvent {
        SessionEvent {
            room,
            app: "a".into(),
            room_id: "r".into(),
            kind: EventKind::Progress {
                channel: "c".into(),
                from: from.into(),
                fraction,
                meta: None,
            },
        }
    }

    #[tokio::test]
    async fn large_messages_are_bounded_in_bytes_and_the_reader_told() {
        let q = SessionQueue::with_byte_limit(4_096, 10 << 20);
        for n in 1..=5 {
            q.push(message(n, 4 << 20));
        }
        // 20 MiB offered to a 10 MiB queue: the oldest three go, the newest two stay.
        assert_eq!(q.next().await.map(|e| e.kind), Some(EventKind::Lagged(3)));
        assert_eq!(q.next().await.map(|e| e.room), Some(4));
        assert_eq!(q.next().await.map(|e| e.room), Some(5));
        // A message larger than the bound still gets through alone.
        q.push(message(6, 11 << 20));
        assert_eq!(q.next().await.map(|e| e.room), Some(6));
    }

    #[tokio::test]
    async fn progress_of_one_message_is_coalesced_and_pushes_nothing_out() {
        let q = SessionQueue::new(3);
        q.push(ev(1));
        for i in 0..1_000 {
            q.push(progress(1, "p", i as f32 / 1_000.0));
        }
        q.push(progress(1, "other", 0.5));
        // The first event survives 1,001 progress reports: one per message is kept, the latest.
        assert_eq!(q.next().await.map(|e| e.room), Some(1));
        assert_eq!(q.next().await, Some(progress(1, "p", 0.999)));
        assert_eq!(q.next().await, Some(progress(1, "other", 0.5)));
        // Progress of the next message never moves ahead of the message before it.
        q.push(progress(1, "p", 0.5));
        q.push(message(1, 10));
        q.push(progress(1, "p", 0.1));
        assert!(matches!(
            q.next().await.map(|e| e.kind),
            Some(EventKind::Progress { .. })
        ));
        assert!(matches!(
            q.next().await.map(|e| e.kind),
            Some(EventKind::Message { .. })
        ));
        assert_eq!(q.next().await, Some(progress(1, "p", 0.1)));
    }
}
