//! Hooks for the test suite's in-process peer: speak raw actions on a real link and record the
//! raw frames a link delivers.
//!
//! They exist so tests can prove what only the wire shows — that a password room's frames hold
//! no plaintext, that a hostile member's frames are dropped and counted — with a real daemon at
//! the other end of a real WebRTC link. Nothing in the daemon or its API calls them; a node
//! records nothing until [`Node::hook_record_frames`] is called.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Node;
use crate::wire::Payload;

/// Raw frames as received: (sending peer id, bytes).
pub type RecordedFrames = Vec<(String, Vec<u8>)>;

/// Frames recorded once a test turns recording on. Every received frame passes here, so the
/// off case is one relaxed atomic load, not a lock.
#[derive(Debug, Default)]
pub(super) struct FrameTap {
    on: AtomicBool,
    frames: Mutex<RecordedFrames>,
}

impl FrameTap {
    /// Keeps a copy of a received frame if recording is on.
    pub(super) fn record(&self, peer: &str, bytes: &[u8]) {
        if self.on.load(Ordering::Relaxed) {
            self.lock().push((peer.to_owned(), bytes.to_vec()));
        }
    }

    /// Whether recording is on.
    pub(super) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecordedFrames> {
        self.frames.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Node {
    /// Encodes `action` with `payload` for a room and queues the frames on the link to `peer`,
    /// bypassing every check a normal send makes. False when the room or link is missing.
    #[doc(hidden)]
    pub fn hook_send_action(
        &self,
        app: &str,
        room: &str,
        peer: &str,
        action: &str,
        payload: Payload,
    ) -> bool {
        let mut inner = self.lock();
        let Some((conn, frames)) = inner.core.hook_frames(app, room, peer, action, &payload) else {
            return false;
        };
        let Some(writer) = inner.io.writers.get(&conn) else {
            return false;
        };
        frames
            .into_iter()
            .all(|f| writer.frames.try_send(f).is_ok())
    }

    /// Starts recording every frame that arrives on any link, with the sending peer's id.
    #[doc(hidden)]
    pub fn hook_record_frames(&self) {
        self.frame_tap.on.store(true, Ordering::Relaxed);
    }

    /// The frames recorded so far, as (peer id, raw bytes).
    #[doc(hidden)]
    pub fn hook_recorded_frames(&self) -> RecordedFrames {
        self.frame_tap.lock().clone()
    }

    /// The salt a cells room signs its frames over; None when it is not a cells room here.
    #[doc(hidden)]
    pub fn hook_cell_salt(&self, app: &str, room: &str) -> Option<Vec<u8>> {
        self.lock().core.cell_salt(app, room)
    }

    /// A channel message encoded as a cells room carries it inside a cell frame (sealed in
    /// password rooms); None when the room is missing or refuses the message.
    #[doc(hidden)]
    pub fn hook_cell_payload(
        &self,
        app: &str,
        room: &str,
        channel: &str,
        payload: &Payload,
    ) -> Option<Vec<u8>> {
        self.lock().core.cell_payload(app, room, channel, payload)
    }
}
