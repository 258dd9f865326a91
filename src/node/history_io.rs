//! The history store's own thread: keeping, replaying and listing run there, in the order the
//! core decided them, and never under the node's lock.
//!
//! Why a thread: a kept message costs an encryption and a sled write, a replay or a listing
//! reads and opens up to a room's whole history. Done under the node's lock (as they were),
//! every peer's frames and every app's call waited for the disk. One thread, fed in order,
//! also gives a replay every message kept before it (it reads after the writes queued ahead
//! of it), and the session's queue holds live events behind the replay until it is read
//! (`SessionQueue::hold`).

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::core::history::{KeptMessage, Replay};
use super::core::types::StoreReport;
use super::session::{Hold, SessionQueue};
use crate::history::listing::{self, ChannelListing, HeldTag};
use crate::history::{self, Cursor, HistoryKey, Totals};
use crate::store::history::{HistoryReader, HistoryStore};

/// A kept message is on disk this long after it was stored at the latest (a `kill -9` loses
/// at most what was kept in this window). The store's thread writes it out itself, so an idle
/// node has no flusher waking it (sled's own ran every 50 ms with an fsync each time).
const KEPT_ON_DISK_WITHIN: Duration = Duration::from_millis(50);

/// One job for the store's thread.
pub(super) enum HistoryJob {
    /// Encrypt and store a kept message.
    Keep(KeptMessage),
    /// Read a room's kept messages after `after` into a session's held place.
    Replay {
        /// The room's history id.
        room: [u8; 16],
        /// The room's history key.
        key: HistoryKey,
        /// Replay what was kept after this cursor.
        after: Cursor,
        /// Which entries the session gets, and how each is told.
        to: Replay,
        /// The session's queue.
        queue: Arc<SessionQueue>,
        /// Its place for the replay.
        hold: Hold,
    },
    /// List a room's channels, after clearing one if asked.
    List {
        /// The room's history id.
        room: [u8; 16],
        /// The room's history key.
        key: HistoryKey,
        /// The channels the room keeps now.
        kept: Vec<String>,
        /// The channel to clear first, if any.
        clear: Option<String>,
        /// Where the listing goes.
        reply: oneshot::Sender<Result<Listing, String>>,
    },
    /// Run this once every job queued before it is done (a catch-up page read elsewhere
    /// must see every message kept before the request).
    Then(Box<dyn FnOnce() + Send>),
    /// Write what is buffered to disk.
    Flush {
        /// Told when done.
        reply: oneshot::Sender<()>,
    },
}

/// A room's history as the `history` call tells it.
#[derive(Debug)]
pub(super) struct Listing {
    /// Its channels.
    pub channels: Vec<ChannelListing>,
    /// The whole room.
    pub all: Totals,
    /// Entries cleared first.
    pub cleared: u64,
}

/// The node's handle on the store's thread.
#[derive(Debug)]
pub(super) struct HistoryIo {
    jobs: mpsc::Sender<HistoryJob>,
    reader: HistoryReader,
}

impl HistoryIo {
    /// Starts the thread that owns `store`; what goes wrong there is told to `report`.
    pub fn spawn(
        store: HistoryStore,
        report: impl Fn(StoreReport) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel();
        let reader = store.reader();
        std::thread::Builder::new()
            .name("meshrtc-history".into())
            .spawn(move || run(store, rx, report))?;
        Ok(HistoryIo { jobs, reader })
    }

    /// Queues a job (in order after every job queued before it).
    pub fn send(&self, job: HistoryJob) {
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            // The thread is gone: a held replay must not hold its session forever, and what
            // waits for the jobs before it has nothing left to wait for.
            match job {
                HistoryJob::Replay { queue, hold, .. } => queue.release(hold, Vec::new()),
                HistoryJob::Then(next) => next(),
                _ => {}
            }
        }
    }

    /// A read-only handle for catch-up pages read on other threads.
    pub fn reader(&self) -> HistoryReader {
        self.reader.clone()
    }
}

fn run(mut store: HistoryStore, jobs: mpsc::Receiver<HistoryJob>, report: impl Fn(StoreReport)) {
    let mut deadline = FlushDeadline::default();
    loop {
        // Checked before every job, not only when the queue runs dry: a busy queue must not
        // postpone the flush.
        if deadline.due(Instant::now()) {
            flush(&store);
            deadline.flushed();
        }
        let job = match deadline.wait(Instant::now()) {
            None => jobs
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(wait) => jobs.recv_timeout(wait),
        };
        let job = match job {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match job {
            HistoryJob::Keep(kept) => {
                let value = history::encode(&kept.entry, &kept.key, rand::random());
                let (room, cursor) = (kept.room, kept.cursor);
                let stored = store.append(&room, cursor, &value, Some(kept.rule), kept.budgets);
                if let Err(e) = stored {
                    tracing::warn!(error = %e, "history: a kept message was not stored");
                    report(StoreReport::WriteFailed);
                }
                deadline.kept(Instant::now());
            }
            HistoryJob::Replay {
                room,
                key,
                after,
                to,
                queue,
                hold,
            } => {
                let mut events = Vec::new();
                let mut unreadable = 0;
                for (cursor, value) in store.after(&room, after) {
                    match history::decode(&value, &key) {
                        Ok(e) => events.extend(to.event(cursor, e)),
                        Err(_) => unreadable += 1,
                    }
                }
                queue.release(hold, events);
                if unreadable > 0 {
                    report(StoreReport::Unreadable(unreadable));
                }
            }
            HistoryJob::List {
                room,
                key,
                kept,
                clear,
                reply,
            } => {
                if clear.is_some() {
                    deadline.kept(Instant::now());
                }
                let _ = reply.send(list(&mut store, &room, &key, &kept, clear.as_deref()));
            }
            HistoryJob::Then(next) => next(),
            HistoryJob::Flush { reply } => {
                flush(&store);
                deadline.flushed();
                let _ = reply.send(());
            }
        }
    }
    if let Err(e) = store.flush() {
        tracing::error!(error = %e, "history: flush at shutdown failed");
    }
}

/// When what the store's thread kept must be on disk: [`KEPT_ON_DISK_WITHIN`] after the first
/// message kept since the last flush. Nothing kept, no deadline: the thread sleeps until a job.
#[derive(Debug, Default)]
struct FlushDeadline(Option<Instant>);

impl FlushDeadline {
    /// Something was kept at `now`; the first keep since the last flush sets the deadline.
    fn kept(&mut self, now: Instant) {
        self.0.get_or_insert(now);
    }

    /// Everything kept is on disk.
    fn flushed(&mut self) {
        self.0 = None;
    }

    /// Whether the flush is due at `now`.
    fn due(&self, now: Instant) -> bool {
        self.0
            .is_some_and(|first| now >= first + KEPT_ON_DISK_WITHIN)
    }

    /// How long the thread may wait for its next job (`None`: as long as it takes).
    fn wait(&self, now: Instant) -> Option<Duration> {
        self.0
            .map(|first| (first + KEPT_ON_DISK_WITHIN).saturating_duration_since(now))
    }
}

/// Writes what the store buffers to disk; a failure is logged (the next flush tries again).
fn flush(store: &HistoryStore) {
    if let Err(e) = store.flush() {
        tracing::error!(error = %e, "history: flush failed");
    }
}

/// Clears `clear` if named, then lists what the room holds.
fn list(
    store: &mut HistoryStore,
    room: &[u8; 16],
    key: &HistoryKey,
    kept: &[String],
    clear: Option<&str>,
) -> Result<Listing, String> {
    let cleared = match clear {
        Some(channel) => store
            .clear(room, key.tag(channel))
            .map_err(|e| e.to_string())? as u64,
        None => 0,
    };
    let held: Vec<HeldTag> = store
        .tags(room)
        .into_iter()
        .map(|tag| {
            let totals = store.totals(room, Some(tag));
            // Only a channel no longer kept needs its name read back from an entry.
            let named = kept.iter().any(|n| key.tag(n) == tag);
            let newest_name = (!named)
                .then(|| totals.newest.unwrap_or_default())
                .and_then(|newest| store.after(room, newest.minus_micros(1)).next())
                .and_then(|(_, v)| history::decode(&v, key).ok())
                .map(|e| e.channel);
            HeldTag {
                tag,
                totals,
                newest_name,
            }
        })
        .collect();
    Ok(Listing {
        channels: listing::listing(key, kept, &held),
        all: store.totals(room, None),
        cleared,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_of_keeps_does_not_postpone_the_flush() {
        let t0 = Instant::now();
        let mut d = FlushDeadline::default();
        assert_eq!(d.wait(t0), None, "nothing kept: no wake-up");
        // A keep every 10 ms: the deadline stays where the first keep put it.
        for i in 0..5 {
            let now = t0 + Duration::from_millis(10 * i);
            d.kept(now);
            assert!(!d.due(now));
        }
        let at = t0 + KEPT_ON_DISK_WITHIN;
        assert!(d.due(at));
        assert_eq!(d.wait(at), Some(Duration::ZERO));
        d.flushed();
        assert!(!d.due(at + Duration::from_secs(1)));
        assert_eq!(d.wait(at), None);
    }
}
