//! Problems with the ICE servers (a TURN server refusing the node's credentials or not
//! answering) told to apps as a room error, since their peers may never connect because of it.

use std::time::Instant;

use super::types::IceProblem;
use super::{Core, RoomKey};
use crate::node::core::events::{EventKind, SessionId};

impl Core {
    /// Input: the ICE servers' problem changed (None: all is well). A new problem is told to
    /// every session of every room; sessions that join later are told on joining.
    pub(super) fn ice_problem(&mut self, problem: Option<IceProblem>, now: Instant) {
        self.at(now);
        if self.st.ice_problem == problem {
            return;
        }
        self.st.ice_problem = problem.clone();
        let Some(IceProblem { code, message }) = problem else {
            return;
        };
        tracing::warn!(code, message, "ICE servers");
        let keys: Vec<RoomKey> = self.st.rooms.keys().cloned().collect();
        for key in keys {
            self.emit(&key, ice_error(&code, &message));
        }
    }

    /// A session joined a room: it hears of a standing ICE problem.
    pub(super) fn tell_ice_problem(&mut self, session: SessionId, handle: u32, key: &RoomKey) {
        if let Some(IceProblem { code, message }) = &self.st.ice_problem {
            let kind = ice_error(code, message);
            self.effect(super::Effect::deliver(session, handle, key, kind));
        }
    }
}

fn ice_error(code: &str, message: &str) -> EventKind {
    EventKind::Error {
        code: code.to_owned(),
        message: message.to_owned(),
        peer: crate::ids::PeerId::default(),
    }
}
