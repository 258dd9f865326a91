//! A link's send window: how many bytes may wait in SCTP for the peer's acknowledgement before
//! the link's writer waits.
//!
//! The engine's own limit is fixed when a connection is built, before the daemon knows what the
//! peer is. So the engine gets the widest window any peer may have and each link's writer paces
//! itself to a narrower one until the peer proves it is a meshrtc daemon (its `@_mrcaps`).
//! Throughput on one link is about window ÷ round trip, and between daemons the round trip
//! includes both daemons' other work: 256 KiB held daemon-to-daemon transfers to ~0.77 × the
//! engine alone, 2 MiB lets them keep up with it (BENCHMARKS.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::Channel;

/// In flight per link until the peer is known: kept below a browser's SCTP receive window,
/// because webrtc-rs stalls for seconds when it fills one.
pub const UNKNOWN_PEER_WINDOW: usize = 256 << 10;
/// In flight per link to another meshrtc daemon, whose SCTP receive buffer is 4 MiB.
pub const DAEMON_WINDOW: usize = 2 << 20;
/// The engine's event is edge-triggered on SCTP's own buffered amount, while the writer compares
/// outstanding bytes (which also count what is still on its way into SCTP): a crossing can come
/// while the writer still sees the window full, so it looks again after this long.
const RECHECK: Duration = Duration::from_millis(5);

/// One link's window, shared by its writer (which waits on it) and the channel's event pump
/// (which reports the engine's "buffered amount low").
#[derive(Debug)]
pub struct SendWindow {
    /// Bytes the writer lets wait in SCTP.
    limit: AtomicUsize,
    /// The engine's own limit for this connection: a window at or above it needs no pacing.
    ceiling: usize,
    /// Signalled when the engine's buffered amount falls below `limit`, or on close.
    drained: Notify,
    /// The link was closed: a waiting writer gives up. A closed connection keeps reporting the
    /// bytes it never got acknowledged, so waiting for them to drain would never end.
    closed: AtomicBool,
}

impl SendWindow {
    /// A window of `min(UNKNOWN_PEER_WINDOW, ceiling)` under an engine limit of `ceiling`.
    pub fn new(ceiling: usize) -> Arc<Self> {
        Arc::new(SendWindow {
            limit: AtomicUsize::new(UNKNOWN_PEER_WINDOW.min(ceiling)),
            ceiling,
            drained: Notify::new(),
            closed: AtomicBool::new(false),
        })
    }

    /// Bytes the writer currently lets wait in SCTP.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// The peer is a meshrtc daemon: the window opens to [`DAEMON_WINDOW`] (or the engine's
    /// limit, if lower — a relayed link keeps its narrower one).
    pub fn open_for_daemon(&self) {
        self.limit
            .store(DAEMON_WINDOW.min(self.ceiling), Ordering::Relaxed);
        self.drained.notify_one();
    }

    /// The link is closed: its writer stops waiting (and writing).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.drained.notify_one();
    }

    /// The engine reported its buffered amount fell below the threshold.
    pub(super) fn drained(&self) {
        self.drained.notify_one();
    }

    /// Waits until `channel` has fewer than `limit` bytes waiting; the engine itself waits at
    /// `ceiling`. Err when the channel or the link closed.
    pub(super) async fn wait_for_room(&self, channel: &Channel) -> Result<(), ()> {
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return Err(());
            }
            let limit = self.limit();
            if limit >= self.ceiling {
                return Ok(());
            }
            let waiting = channel.outstanding_bytes().await.map_err(|_| ())?;
            if waiting < limit {
                return Ok(());
            }
            let _ = tokio::time::timeout(RECHECK, self.drained.notified()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_opens_for_a_daemon_but_never_past_the_engines_limit() {
        let direct = SendWindow::new(DAEMON_WINDOW);
        assert_eq!(direct.limit(), UNKNOWN_PEER_WINDOW);
        direct.open_for_daemon();
        assert_eq!(direct.limit(), DAEMON_WINDOW);
        let relayed = SendWindow::new(64 << 10);
        assert_eq!(relayed.limit(), 64 << 10);
        relayed.open_for_daemon();
        assert_eq!(relayed.limit(), 64 << 10);
    }

    #[test]
    fn a_closed_window_lets_its_waiting_writer_go() {
        let w = SendWindow::new(DAEMON_WINDOW);
        assert!(!w.closed.load(Ordering::Relaxed));
        w.close();
        assert!(w.closed.load(Ordering::Relaxed));
        // The wake-up is stored for a writer that was not waiting yet.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), w.drained.notified())
                .await
                .expect("stored wake-up");
        });
    }
}
