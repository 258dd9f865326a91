//! Outer frames on the shared data channel: room data and room presence (Trystero's), and
//! between meshrtc daemons, tracked data and its acknowledgement.
//!
//! Tracked frames exist because a link can die with a message half sent: SCTP delivers in
//! order within one association, but says nothing about what arrived once it is gone. A
//! daemon numbers each message it sends another daemon (`seq`, within the sender's `epoch`,
//! a random number per peer that changes when the sender restarts), wraps every frame of it,
//! and keeps it until the receiver acknowledges; on the next link it sends what is still
//! unacknowledged again, and the receiver drops what it already had.

/// Tag byte of a room data frame.
const TAG_DATA: u8 = 0x01;
/// Tag byte of a room presence frame.
const TAG_PRESENCE: u8 = 0x02;
/// Tag byte of a tracked data frame (daemons only).
const TAG_TRACKED: u8 = 0x03;
/// Tag byte of an acknowledgement (daemons only).
const TAG_ACK: u8 = 0x04;
/// Tag byte of a sender's base: its oldest message not yet acknowledged (daemons only).
const TAG_BASE: u8 = 0x05;
/// Flag of a tracked frame: the message's last frame.
const FLAG_FINAL: u8 = 0x01;
/// Bytes before a tracked frame's inner frame: tag, flags, epoch, seq.
const TRACKED_HEADER: usize = 2 + 8 + 8;
/// Room tokens are 64 hex characters; anything much longer is hostile.
pub const MAX_TOKEN_LEN: usize = 256;

/// A decoded outer frame, borrowing from the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OuterFrame<'a> {
    /// An action chunk for the room identified by `token`.
    Data {
        /// Room token (hex SHA-256 of the app and room ids).
        token: &'a [u8],
        /// The action chunk bytes.
        chunk: &'a [u8],
    },
    /// The sender joined (`true`) or left (`false`) the room identified by `token`.
    Presence {
        /// Whether the sender is in the room.
        joined: bool,
        /// Room token.
        token: &'a [u8],
    },
    /// One frame of message `seq` from a daemon that keeps the message until acknowledged.
    Tracked {
        /// The sender's numbering (changes when it restarts).
        epoch: u64,
        /// The message's number.
        seq: u64,
        /// Whether this is the message's last frame.
        last: bool,
        /// A data frame.
        inner: &'a [u8],
    },
    /// Sent first on a new link: the sender's oldest message of `epoch` still kept is `next`;
    /// the receiver stops waiting for anything before it (it was received, or given up).
    Base {
        /// The sender's numbering.
        epoch: u64,
        /// Its oldest kept message (or the next it will number).
        next: u64,
    },
    /// The receiver has every tracked message of `epoch` up to and including `upto`.
    Ack {
        /// The sender's numbering being acknowledged.
        epoch: u64,
        /// Highest message number received with none missing before it.
        upto: u64,
    },
}

/// Why an outer frame was dropped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// First byte is neither data nor presence.
    #[error("unknown frame tag {0:#04x}")]
    UnknownTag(u8),
    /// The frame ends before its declared lengths.
    #[error("truncated frame")]
    Truncated,
    /// The token is longer than any room token.
    #[error("room token too long")]
    TokenTooLong,
    /// Presence frames carry exactly a token.
    #[error("trailing bytes after presence token")]
    Trailing,
    /// A tracked frame wraps something other than a data frame.
    #[error("a tracked frame must wrap a data frame")]
    BadInner,
}

fn be_u64(bytes: &[u8], at: usize) -> Result<u64, FrameError> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or(FrameError::Truncated)
}

fn take_token(bytes: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    if bytes.len() < 2 {
        return Err(FrameError::Truncated);
    }
    let len = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
    if len > MAX_TOKEN_LEN {
        return Err(FrameError::TokenTooLong);
    }
    let rest = &bytes[2..];
    if rest.len() < len {
        return Err(FrameError::Truncated);
    }
    Ok(rest.split_at(len))
}

impl<'a> OuterFrame<'a> {
    /// Decodes one received message.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, FrameError> {
        match bytes.first() {
            Some(&TAG_DATA) => {
                let (token, chunk) = take_token(&bytes[1..])?;
                Ok(OuterFrame::Data { token, chunk })
            }
            Some(&TAG_PRESENCE) => {
                let flag = *bytes.get(1).ok_or(FrameError::Truncated)?;
                let (token, rest) = take_token(&bytes[2..])?;
                if !rest.is_empty() {
                    return Err(FrameError::Trailing);
                }
                Ok(OuterFrame::Presence {
                    joined: flag != 0,
                    token,
                })
            }
            Some(&TAG_TRACKED) => {
                let flags = *bytes.get(1).ok_or(FrameError::Truncated)?;
                let (epoch, seq) = (be_u64(bytes, 2)?, be_u64(bytes, 10)?);
                let inner = &bytes[TRACKED_HEADER..];
                if inner.first() != Some(&TAG_DATA) {
                    return Err(FrameError::BadInner);
                }
                Ok(OuterFrame::Tracked {
                    epoch,
                    seq,
                    last: flags & FLAG_FINAL != 0,
                    inner,
                })
            }
            Some(&tag @ (TAG_ACK | TAG_BASE)) => {
                if bytes.len() != 17 {
                    return Err(FrameError::Truncated);
                }
                let (epoch, n) = (be_u64(bytes, 1)?, be_u64(bytes, 9)?);
                Ok(if tag == TAG_ACK {
                    OuterFrame::Ack { epoch, upto: n }
                } else {
                    OuterFrame::Base { epoch, next: n }
                })
            }
            Some(&other) => Err(FrameError::UnknownTag(other)),
            None => Err(FrameError::Truncated),
        }
    }
}

/// Wraps one data frame of tracked message `seq`.
pub fn encode_tracked(epoch: u64, seq: u64, last: bool, inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TRACKED_HEADER + inner.len());
    out.push(TAG_TRACKED);
    out.push(if last { FLAG_FINAL } else { 0 });
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(inner);
    out
}

/// Acknowledges every tracked message of `epoch` up to `upto`.
pub fn encode_ack(epoch: u64, upto: u64) -> Vec<u8> {
    numbered(TAG_ACK, epoch, upto)
}

/// Tells the receiver the sender's oldest kept message of `epoch` is `next`.
pub fn encode_base(epoch: u64, next: u64) -> Vec<u8> {
    numbered(TAG_BASE, epoch, next)
}

fn numbered(tag: u8, epoch: u64, n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(17);
    out.push(tag);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&n.to_be_bytes());
    out
}

/// Encodes a room data frame around an action chunk.
pub fn encode_data(token: &str, chunk: &[u8]) -> Vec<u8> {
    let mut out = data_prefix(token);
    out.extend_from_slice(chunk);
    out
}

/// The bytes of a data frame before its chunk.
pub fn data_prefix(token: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + token.len());
    out.push(TAG_DATA);
    out.extend_from_slice(&(token.len() as u16).to_be_bytes());
    out.extend_from_slice(token.as_bytes());
    out
}

/// Encodes a room presence frame.
pub fn encode_presence(token: &str, joined: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + token.len());
    out.push(TAG_PRESENCE);
    out.push(u8::from(joined));
    out.extend_from_slice(&(token.len() as u16).to_be_bytes());
    out.extend_from_slice(token.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_round_trip() {
        let bytes = encode_data("abcd", &[9, 8, 7]);
        assert_eq!(bytes, [1, 0, 4, b'a', b'b', b'c', b'd', 9, 8, 7]);
        assert_eq!(
            OuterFrame::decode(&bytes),
            Ok(OuterFrame::Data {
                token: b"abcd",
                chunk: &[9, 8, 7]
            })
        );
    }

    #[test]
    fn presence_round_trip() {
        let bytes = encode_presence("tk", true);
        assert_eq!(bytes, [2, 1, 0, 2, b't', b'k']);
        assert_eq!(
            OuterFrame::decode(&bytes),
            Ok(OuterFrame::Presence {
                joined: true,
                token: b"tk"
            })
        );
        assert_eq!(
            OuterFrame::decode(&encode_presence("tk", false)),
            Ok(OuterFrame::Presence {
                joined: false,
                token: b"tk"
            })
        );
    }

    #[test]
    fn tracked_and_ack_round_trip() {
        let inner = encode_data("tk", &[1, 2]);
        let bytes = encode_tracked(7, 42, true, &inner);
        assert_eq!(
            OuterFrame::decode(&bytes),
            Ok(OuterFrame::Tracked {
                epoch: 7,
                seq: 42,
                last: true,
                inner: &inner
            })
        );
        let not_last = encode_tracked(7, 42, false, &inner);
        assert!(matches!(
            OuterFrame::decode(&not_last),
            Ok(OuterFrame::Tracked { last: false, .. })
        ));
        assert_eq!(
            OuterFrame::decode(&encode_ack(7, 41)),
            Ok(OuterFrame::Ack { epoch: 7, upto: 41 })
        );
        assert_eq!(
            OuterFrame::decode(&encode_base(7, 43)),
            Ok(OuterFrame::Base { epoch: 7, next: 43 })
        );
    }

    #[test]
    fn bad_tracked_frames() {
        let presence = encode_presence("tk", true);
        assert_eq!(
            OuterFrame::decode(&encode_tracked(1, 1, true, &presence)),
            Err(FrameError::BadInner)
        );
        let nested = encode_tracked(1, 1, true, &encode_tracked(1, 2, true, &[1]));
        assert_eq!(OuterFrame::decode(&nested), Err(FrameError::BadInner));
        assert_eq!(
            OuterFrame::decode(&[3, 1, 0, 0]),
            Err(FrameError::Truncated)
        );
        assert_eq!(OuterFrame::decode(&[4, 0, 0]), Err(FrameError::Truncated));
        assert_eq!(
            OuterFrame::decode(&[&encode_ack(1, 1)[..], &[0]].concat()),
            Err(FrameError::Truncated)
        );
    }

    #[test]
    fn bad_frames() {
        assert_eq!(OuterFrame::decode(&[]), Err(FrameError::Truncated));
        assert_eq!(OuterFrame::decode(&[7, 0]), Err(FrameError::UnknownTag(7)));
        assert_eq!(OuterFrame::decode(&[1, 0]), Err(FrameError::Truncated));
        assert_eq!(
            OuterFrame::decode(&[1, 0, 5, 1]),
            Err(FrameError::Truncated)
        );
        assert_eq!(
            OuterFrame::decode(&[1, 0xff, 0xff]),
            Err(FrameError::TokenTooLong)
        );
        assert_eq!(OuterFrame::decode(&[2]), Err(FrameError::Truncated));
        assert_eq!(
            OuterFrame::decode(&[2, 1, 0, 1, b'a', b'b']),
            Err(FrameError::Trailing)
        );
    }
}
