//! The two facts a room reports about a peer beyond its id: how its payloads are protected and
//! why it left. Typed here, named (`as_str`) only at the API edge.

/// How a peer's channel payloads are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Sealed end to end with the room password's key (meshrtc peers in password rooms).
    E2e,
    /// DTLS only (Trystero pages, rooms without a password).
    Transport,
}

impl Security {
    /// Stable name used in events and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Security::E2e => "e2e",
            Security::Transport => "transport",
        }
    }
}

/// Why a peer left a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// It sent `@_leave` or presence 0.
    Leave,
    /// The link failed or was closed.
    Link,
    /// Handshake or watchdog timeout.
    Timeout,
    /// The password check failed.
    Password,
}

impl LeaveReason {
    /// Stable name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Leave => "leave",
            LeaveReason::Link => "link",
            LeaveReason::Timeout => "timeout",
            LeaveReason::Password => "password",
        }
    }
}
