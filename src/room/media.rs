//! Trystero's media actions on a room: renegotiation on `@_signal` and stream and track
//! metadata on `@_stream` and `@_track`, parsed and built here so the node only sees types.
//!
//! Wire facts (Trystero 0.25.4): `@_signal` carries `{type, sdp}` — offers, answers, and ICE
//! candidates as a JSON string in `sdp` — not Nostr-encrypted (the link is already secure).
//! `@_stream` is `{k, s, m?}` and `@_track` `{k, s, t, m?}`: a sender-chosen key, the media
//! stream id, the track id, and the app's metadata. A sender puts the metadata on the wire
//! before the track, and a remote stream is surfaced only once its metadata arrived.

use serde_json::{Map, Value, json};

use crate::wire::Payload;

/// Action carrying renegotiation.
pub const ACTION_SIGNAL: &str = "@_signal";
/// Action carrying a stream's metadata.
pub const ACTION_STREAM: &str = "@_stream";
/// Action carrying a track's metadata.
pub const ACTION_TRACK: &str = "@_track";

/// The step a `@_signal` message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// A renegotiation offer.
    Offer,
    /// Its answer.
    Answer,
    /// A trickled ICE candidate (JSON in `sdp`).
    Candidate,
}

impl SignalKind {
    fn name(self) -> &'static str {
        match self {
            SignalKind::Offer => "offer",
            SignalKind::Answer => "answer",
            SignalKind::Candidate => "candidate",
        }
    }
}

/// A media message on a room.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaWire {
    /// `@_signal`: a renegotiation step.
    Signal {
        /// Offer, answer or candidate.
        kind: SignalKind,
        /// The SDP (or candidate JSON).
        sdp: String,
    },
    /// `@_stream`: a stream is coming.
    Stream(MediaMeta),
    /// `@_track`: a track is coming.
    Track(MediaMeta),
}

/// The metadata of a stream or track.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaMeta {
    /// The sender's key for the stream or track.
    pub key: String,
    /// The media stream id.
    pub stream_id: Option<String>,
    /// The track id (tracks only).
    pub track_id: Option<String>,
    /// The app's metadata.
    pub meta: Option<Value>,
}

/// Longest SDP or id accepted from a peer.
const MAX_SDP: usize = 64 * 1024;
const MAX_ID: usize = 256;

fn short(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| s.len() <= MAX_ID)
        .map(str::to_owned)
}

impl MediaWire {
    /// Parses the payload of a media action; None when it is not one or is malformed.
    pub fn parse(action: &str, payload: &Payload) -> Option<MediaWire> {
        let Payload::Json(Value::Object(o)) = payload else {
            return None;
        };
        match action {
            ACTION_SIGNAL => {
                let kind = match o.get("type").and_then(Value::as_str)? {
                    "offer" => SignalKind::Offer,
                    "answer" => SignalKind::Answer,
                    "candidate" => SignalKind::Candidate,
                    _ => return None,
                };
                let sdp = o
                    .get("sdp")
                    .and_then(Value::as_str)
                    .filter(|s| s.len() <= MAX_SDP)?;
                Some(MediaWire::Signal {
                    kind,
                    sdp: sdp.to_owned(),
                })
            }
            ACTION_STREAM | ACTION_TRACK => {
                let meta = MediaMeta {
                    key: short(o.get("k"))?,
                    stream_id: short(o.get("s")),
                    track_id: short(o.get("t")),
                    meta: o.get("m").cloned(),
                };
                Some(if action == ACTION_STREAM {
                    MediaWire::Stream(meta)
                } else {
                    MediaWire::Track(meta)
                })
            }
            _ => None,
        }
    }

    /// The action and payload that carry this message.
    pub fn encode(&self) -> (&'static str, Payload) {
        match self {
            MediaWire::Signal { kind, sdp } => (
                ACTION_SIGNAL,
                Payload::Json(json!({"type": kind.name(), "sdp": sdp})),
            ),
            MediaWire::Stream(m) => (ACTION_STREAM, Payload::Json(m.to_json())),
            MediaWire::Track(m) => (ACTION_TRACK, Payload::Json(m.to_json())),
        }
    }
}

impl MediaMeta {
    fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("k".into(), Value::String(self.key.clone()));
        if let Some(s) = &self.stream_id {
            o.insert("s".into(), Value::String(s.clone()));
        }
        if let Some(t) = &self.track_id {
            o.insert("t".into(), Value::String(t.clone()));
        }
        if let Some(m) = &self.meta {
            o.insert("m".into(), m.clone());
        }
        Value::Object(o)
    }
}

/// The track ids an SDP's sender is sending: `a=msid` of every media section that is not
/// rejected (port 0) and whose direction is `sendrecv` (the default) or `sendonly`. A track
/// missing from a new offer or answer was removed by its sender.
pub fn sending_tracks(sdp: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for section in sdp.split("\nm=").skip(1) {
        let mut lines = section.lines();
        let rejected = lines
            .next()
            .and_then(|m| m.split_whitespace().nth(1))
            .is_some_and(|port| port == "0");
        let mut sending = true;
        let mut tracks = Vec::new();
        for line in section.lines() {
            let line = line.trim_end_matches('\r');
            match line {
                "a=recvonly" | "a=inactive" => sending = false,
                _ => {
                    if let Some(msid) = line.strip_prefix("a=msid:")
                        && let Some(track) = msid.split_whitespace().nth(1)
                    {
                        tracks.push(track.to_owned());
                    }
                }
            }
        }
        if sending && !rejected {
            out.extend(tracks);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trystero_media_messages_parse_and_round_trip() {
        let offer = Payload::Json(json!({"type": "offer", "sdp": "v=0\r\na=rtpmap:96 VP8/90000"}));
        let wire = MediaWire::parse(ACTION_SIGNAL, &offer).expect("offer");
        assert!(matches!(
            &wire,
            MediaWire::Signal {
                kind: SignalKind::Offer,
                ..
            }
        ));
        assert_eq!(wire.encode(), (ACTION_SIGNAL, offer));

        let track =
            Payload::Json(json!({"k": "abc", "s": "stream", "t": "track", "m": {"cam": 1}}));
        let wire = MediaWire::parse(ACTION_TRACK, &track).expect("track");
        let MediaWire::Track(m) = &wire else {
            panic!("{wire:?}")
        };
        assert_eq!(m.track_id.as_deref(), Some("track"));
        assert_eq!(m.meta, Some(json!({"cam": 1})));
        assert_eq!(wire.encode(), (ACTION_TRACK, track));

        let stream = Payload::Json(json!({"k": "abc", "s": "stream"}));
        let wire = MediaWire::parse(ACTION_STREAM, &stream).expect("stream");
        assert_eq!(wire.encode(), (ACTION_STREAM, stream));
    }

    #[test]
    fn the_tracks_an_sdp_sends_are_read_from_its_media_sections() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendrecv\r\na=msid:cam video-1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\na=msid:cam audio-1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=msid:cam gone-1\r\n\
m=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\na=msid:cam rejected\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        let tracks: Vec<String> = sending_tracks(sdp).into_iter().collect();
        assert_eq!(tracks, ["audio-1", "video-1"]);
        assert!(
            sending_tracks("v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n")
                .is_empty()
        );
    }

    #[test]
    fn malformed_media_messages_are_refused() {
        for (action, payload) in [
            (ACTION_SIGNAL, Payload::Text("offer".into())),
            (
                ACTION_SIGNAL,
                Payload::Json(json!({"type": "pranswer", "sdp": ""})),
            ),
            (ACTION_SIGNAL, Payload::Json(json!({"type": "offer"}))),
            (
                ACTION_SIGNAL,
                Payload::Json(json!({"type": "offer", "sdp": "x".repeat(MAX_SDP + 1)})),
            ),
            (ACTION_TRACK, Payload::Json(json!({"s": "no key"}))),
            (
                ACTION_TRACK,
                Payload::Binary(bytes::Bytes::from(vec![1, 2])),
            ),
            (
                ACTION_STREAM,
                Payload::Json(json!({"k": "x".repeat(MAX_ID + 1)})),
            ),
        ] {
            assert!(
                MediaWire::parse(action, &payload).is_none(),
                "{action} {payload:?}"
            );
        }
    }
}
