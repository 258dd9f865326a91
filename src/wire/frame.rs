//! Outer frames on the shared data channel: room data and room presence.

/// Tag byte of a room data frame.
const TAG_DATA: u8 = 0x01;
/// Tag byte of a room presence frame.
const TAG_PRESENCE: u8 = 0x02;
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
            Some(&other) => Err(FrameError::UnknownTag(other)),
            None => Err(FrameError::Truncated),
        }
    }
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
