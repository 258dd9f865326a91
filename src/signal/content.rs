//! The JSON content of Trystero's signaling events.

use serde::{Deserialize, Serialize};

use crate::wire::topic::is_valid_peer_id;

/// Largest event content we parse (an encrypted SDP is a few KiB).
pub const MAX_CONTENT_LEN: usize = 64 * 1024;

/// The raw JSON object carried in an event's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawContent {
    /// Sender's peer id.
    #[serde(rename = "peerId")]
    pub peer_id: String,
    /// Offer id tying offers, answers and candidates together.
    #[serde(rename = "offerId", skip_serializing_if = "Option::is_none", default)]
    pub offer_id: Option<String>,
    /// Encrypted offer SDP.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub offer: Option<String>,
    /// Encrypted answer SDP.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub answer: Option<String>,
    /// Encrypted candidate JSON.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub candidate: Option<String>,
    /// Passive peers only listen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub passive: Option<bool>,
}

/// A signaling message, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Presence (on the root topic, or a poke on our self topic).
    Announce {
        /// Sender.
        peer: String,
        /// Passive peers are never dialled.
        passive: bool,
    },
    /// An encrypted offer.
    Offer {
        /// Sender.
        peer: String,
        /// Offer id.
        offer_id: String,
        /// Encrypted SDP text.
        sdp: String,
    },
    /// An encrypted answer.
    Answer {
        /// Sender.
        peer: String,
        /// Offer id being answered.
        offer_id: String,
        /// Encrypted SDP text.
        sdp: String,
    },
    /// An encrypted ICE candidate.
    Candidate {
        /// Sender.
        peer: String,
        /// Offer id of the connection attempt.
        offer_id: String,
        /// Encrypted candidate JSON.
        candidate: String,
    },
}

/// Why event content was dropped.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum ContentError {
    /// Larger than any signaling message.
    #[error("content too large")]
    TooLarge,
    /// Not the expected JSON object.
    #[error("content is not a signaling object")]
    NotJson,
    /// `peerId` is not a 20-symbol id.
    #[error("invalid peer id")]
    BadPeerId,
    /// Offer, answer or candidate without an offer id.
    #[error("missing offer id")]
    MissingOfferId,
}

impl Signal {
    /// Parses and classifies event content.
    pub fn parse(content: &str) -> Result<Signal, ContentError> {
        if content.len() > MAX_CONTENT_LEN {
            return Err(ContentError::TooLarge);
        }
        let raw: RawContent = serde_json::from_str(content).map_err(|_| ContentError::NotJson)?;
        if !is_valid_peer_id(&raw.peer_id) {
            return Err(ContentError::BadPeerId);
        }
        let peer = raw.peer_id;
        let need_id = |id: Option<String>| {
            id.filter(|i| !i.is_empty() && i.len() <= 64)
                .ok_or(ContentError::MissingOfferId)
        };
        Ok(match (raw.offer, raw.answer, raw.candidate) {
            (Some(sdp), _, _) => Signal::Offer {
                peer,
                offer_id: need_id(raw.offer_id)?,
                sdp,
            },
            (None, Some(sdp), _) => Signal::Answer {
                peer,
                offer_id: need_id(raw.offer_id)?,
                sdp,
            },
            (None, None, Some(candidate)) => Signal::Candidate {
                peer,
                offer_id: need_id(raw.offer_id)?,
                candidate,
            },
            (None, None, None) => Signal::Announce {
                peer,
                passive: raw.passive.unwrap_or(false),
            },
        })
    }

    /// The sender's peer id.
    pub fn peer(&self) -> &str {
        match self {
            Signal::Announce { peer, .. }
            | Signal::Offer { peer, .. }
            | Signal::Answer { peer, .. }
            | Signal::Candidate { peer, .. } => peer,
        }
    }

    /// Serializes to event content.
    pub fn to_content(&self) -> String {
        let raw = match self.clone() {
            Signal::Announce { peer, passive } => RawContent {
                peer_id: peer,
                passive: passive.then_some(true),
                ..Default::default()
            },
            Signal::Offer {
                peer,
                offer_id,
                sdp,
            } => RawContent {
                peer_id: peer,
                offer_id: Some(offer_id),
                offer: Some(sdp),
                ..Default::default()
            },
            Signal::Answer {
                peer,
                offer_id,
                sdp,
            } => RawContent {
                peer_id: peer,
                offer_id: Some(offer_id),
                answer: Some(sdp),
                ..Default::default()
            },
            Signal::Candidate {
                peer,
                offer_id,
                candidate,
            } => RawContent {
                peer_id: peer,
                offer_id: Some(offer_id),
                candidate: Some(candidate),
                ..Default::default()
            },
        };
        serde_json::to_string(&raw).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "AAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn classify() {
        assert_eq!(
            Signal::parse(&format!(r#"{{"peerId":"{P}"}}"#)),
            Ok(Signal::Announce {
                peer: P.into(),
                passive: false
            })
        );
        assert_eq!(
            Signal::parse(&format!(r#"{{"peerId":"{P}","offerId":"o1","offer":"x"}}"#)),
            Ok(Signal::Offer {
                peer: P.into(),
                offer_id: "o1".into(),
                sdp: "x".into()
            })
        );
        assert_eq!(
            Signal::parse(&format!(
                r#"{{"peerId":"{P}","answer":"x","offerId":"o1"}}"#
            )),
            Ok(Signal::Answer {
                peer: P.into(),
                offer_id: "o1".into(),
                sdp: "x".into()
            })
        );
        assert_eq!(
            Signal::parse(&format!(
                r#"{{"peerId":"{P}","offerId":"o1","candidate":"c"}}"#
            )),
            Ok(Signal::Candidate {
                peer: P.into(),
                offer_id: "o1".into(),
                candidate: "c".into()
            })
        );
    }

    #[test]
    fn round_trip_and_wire_names() {
        let s = Signal::Offer {
            peer: P.into(),
            offer_id: "o".into(),
            sdp: "s".into(),
        };
        assert_eq!(
            s.to_content(),
            format!(r#"{{"peerId":"{P}","offerId":"o","offer":"s"}}"#)
        );
        assert_eq!(Signal::parse(&s.to_content()), Ok(s));
    }

    #[test]
    fn bad_content() {
        assert_eq!(Signal::parse("nope"), Err(ContentError::NotJson));
        assert_eq!(Signal::parse("[1]"), Err(ContentError::NotJson));
        assert_eq!(
            Signal::parse(r#"{"peerId":"short"}"#),
            Err(ContentError::BadPeerId)
        );
        assert_eq!(
            Signal::parse(&format!(r#"{{"peerId":"{P}","offer":"x"}}"#)),
            Err(ContentError::MissingOfferId)
        );
        assert_eq!(
            Signal::parse(&"x".repeat(MAX_CONTENT_LEN + 1)),
            Err(ContentError::TooLarge)
        );
    }
}
