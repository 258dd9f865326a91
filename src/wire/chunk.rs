//! Action chunks: Trystero's framing of one message into 16 KiB pieces.

use bytes::Bytes;
use serde_json::Value;

/// Bytes of the zero-padded action name.
pub const ACTION_NAME_LEN: usize = 32;
/// Bytes before a chunk's payload: name, nonce, tag, progress.
pub const HEADER_LEN: usize = ACTION_NAME_LEN + 4;
/// Total size of a full chunk.
pub const CHUNK_SIZE: usize = 16_384;
/// Payload bytes a chunk carries at most.
pub const CHUNK_PAYLOAD: usize = CHUNK_SIZE - HEADER_LEN;

/// Tag bit: this is the last chunk of the message.
pub const TAG_LAST: u8 = 0x01;
/// Tag bit: this chunk carries the message's metadata (JSON).
pub const TAG_META: u8 = 0x02;
/// Tag bit: the payload is binary.
pub const TAG_BINARY: u8 = 0x04;
/// Tag bit: the payload is JSON (set together with binary for binary payloads).
pub const TAG_JSON: u8 = 0x08;

/// A message payload as Trystero types it.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A string, sent as raw UTF-8.
    Text(String),
    /// Any other JSON value.
    Json(Value),
    /// Raw bytes.
    Binary(Bytes),
}

/// A writer that only counts bytes.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Payload {
    /// Bytes of the payload as sent (JSON values as their text).
    pub fn wire_len(&self) -> usize {
        match self {
            Payload::Text(t) => t.len(),
            Payload::Binary(b) => b.len(),
            Payload::Json(v) => {
                // Counted as it is written, without building the text.
                let mut n = ByteCount(0);
                let _ = serde_json::to_writer(&mut n, v);
                n.0
            }
        }
    }

    /// Type bits of this payload's chunks.
    fn type_bits(&self) -> u8 {
        match self {
            Payload::Text(_) => 0,
            Payload::Json(_) => TAG_JSON,
            Payload::Binary(_) => TAG_BINARY | TAG_JSON,
        }
    }

    /// Encoded payload bytes, borrowed when the payload already is bytes.
    pub fn as_wire(&self) -> std::borrow::Cow<'_, [u8]> {
        use std::borrow::Cow;
        match self {
            Payload::Text(s) => Cow::Borrowed(s.as_bytes()),
            Payload::Json(v) => Cow::Owned(serde_json::to_vec(v).unwrap_or_default()),
            Payload::Binary(b) => Cow::Borrowed(b),
        }
    }
}

/// Why an action chunk could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    /// Shorter than the 36-byte header.
    #[error("chunk shorter than its header")]
    Truncated,
    /// Longer than a full chunk.
    #[error("chunk larger than {CHUNK_SIZE} bytes")]
    Oversized,
    /// The action name is not UTF-8.
    #[error("action name is not UTF-8")]
    BadName,
}

/// One decoded action chunk, borrowing its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionChunk<'a> {
    /// Action name with the zero padding removed.
    pub action: &'a str,
    /// Per-action message counter.
    pub nonce: u16,
    /// Tag bits (`TAG_*`).
    pub tag: u8,
    /// `round((i+1)/chunks*255)`.
    pub progress: u8,
    /// Payload bytes of this chunk.
    pub payload: &'a [u8],
}

impl<'a> ActionChunk<'a> {
    /// Decodes a chunk.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, ChunkError> {
        if bytes.len() < HEADER_LEN {
            return Err(ChunkError::Truncated);
        }
        if bytes.len() > CHUNK_SIZE {
            return Err(ChunkError::Oversized);
        }
        let name = &bytes[..ACTION_NAME_LEN];
        let end = name.iter().position(|&b| b == 0).unwrap_or(ACTION_NAME_LEN);
        let action = std::str::from_utf8(&name[..end]).map_err(|_| ChunkError::BadName)?;
        Ok(ActionChunk {
            action,
            nonce: u16::from_be_bytes([bytes[32], bytes[33]]),
            tag: bytes[34],
            progress: bytes[35],
            payload: &bytes[HEADER_LEN..],
        })
    }

    /// Whether this is the message's last chunk.
    pub fn is_last(&self) -> bool {
        self.tag & TAG_LAST != 0
    }

    /// Whether this chunk carries metadata.
    pub fn is_meta(&self) -> bool {
        self.tag & TAG_META != 0
    }
}

/// Why a message cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// Action names are at most 32 bytes of UTF-8.
    #[error("action name longer than {ACTION_NAME_LEN} bytes")]
    NameTooLong,
    /// Metadata must fit in one chunk.
    #[error("metadata larger than one chunk")]
    MetaTooLarge,
}

/// Number of chunks a payload of `len` bytes (plus optional metadata) takes.
pub fn chunk_count(len: usize, has_meta: bool) -> usize {
    len.div_ceil(CHUNK_PAYLOAD).max(1) + usize::from(has_meta)
}

fn progress_byte(index: usize, total: usize) -> u8 {
    ((index + 1) as f64 / total as f64 * 255.0).round() as u8
}

fn header(out: &mut Vec<u8>, action: &str, nonce: u16, tag: u8, progress: u8) {
    out.extend_from_slice(action.as_bytes());
    out.resize(out.len() + ACTION_NAME_LEN - action.len(), 0);
    out.extend_from_slice(&nonce.to_be_bytes());
    out.push(tag);
    out.push(progress);
}

/// Encodes a message into its chunks; metadata (if any) goes first.
pub fn encode_message(
    action: &str,
    nonce: u16,
    payload: &[u8],
    type_bits: u8,
    meta: Option<&Value>,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    encode_framed(&[], action, nonce, payload, type_bits, meta)
}

/// Encodes a message into chunks as [`encode_message`] does, each written after `prefix` (the
/// outer frame's header) in one buffer: the payload is copied once, into the frames sent.
pub fn encode_framed(
    prefix: &[u8],
    action: &str,
    nonce: u16,
    payload: &[u8],
    type_bits: u8,
    meta: Option<&Value>,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    if action.len() > ACTION_NAME_LEN {
        return Err(EncodeError::NameTooLong);
    }
    let meta_bytes = meta.map(|m| serde_json::to_vec(m).unwrap_or_default());
    if meta_bytes.as_ref().is_some_and(|m| m.len() > CHUNK_PAYLOAD) {
        return Err(EncodeError::MetaTooLarge);
    }
    let total = chunk_count(payload.len(), meta_bytes.is_some());
    let mut chunks = Vec::with_capacity(total);
    let mut index = 0;
    if let Some(m) = meta_bytes {
        let mut c = Vec::with_capacity(prefix.len() + HEADER_LEN + m.len());
        c.extend_from_slice(prefix);
        header(
            &mut c,
            action,
            nonce,
            type_bits | TAG_META,
            progress_byte(0, total),
        );
        c.extend_from_slice(&m);
        chunks.push(c);
        index = 1;
    }
    let mut pieces = payload.chunks(CHUNK_PAYLOAD).peekable();
    if pieces.peek().is_none() {
        let mut c = Vec::with_capacity(prefix.len() + HEADER_LEN);
        c.extend_from_slice(prefix);
        header(&mut c, action, nonce, type_bits | TAG_LAST, 255);
        chunks.push(c);
        return Ok(chunks);
    }
    while let Some(piece) = pieces.next() {
        let last = if pieces.peek().is_none() { TAG_LAST } else { 0 };
        let mut c = Vec::with_capacity(prefix.len() + HEADER_LEN + piece.len());
        c.extend_from_slice(prefix);
        header(
            &mut c,
            action,
            nonce,
            type_bits | last,
            progress_byte(index, total),
        );
        c.extend_from_slice(piece);
        chunks.push(c);
        index += 1;
    }
    Ok(chunks)
}

/// Encodes a typed payload into its chunks.
pub fn encode_payload(
    action: &str,
    nonce: u16,
    payload: &Payload,
    meta: Option<&Value>,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    encode_payload_framed(&[], action, nonce, payload, meta)
}

/// Encodes a typed payload into chunks, each after `prefix` (see [`encode_framed`]).
pub fn encode_payload_framed(
    prefix: &[u8],
    action: &str,
    nonce: u16,
    payload: &Payload,
    meta: Option<&Value>,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    encode_framed(
        prefix,
        action,
        nonce,
        &payload.as_wire(),
        payload.type_bits(),
        meta,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hsready_vector() {
        let chunks =
            encode_payload("@_hsready", 0, &Payload::Text(String::new()), None).expect("encodes");
        assert_eq!(chunks.len(), 1);
        let expected = format!("405f687372656164790000{}000001ff", "00".repeat(21));
        assert_eq!(chunks[0].len(), 36);
        assert_eq!(hex::encode(&chunks[0]), expected);
    }

    #[test]
    fn json_vector() {
        let chunks =
            encode_payload("chat", 0, &Payload::Json(json!({"hi": 1})), None).expect("encodes");
        assert_eq!(chunks[0][34], 0x09);
        assert_eq!(&chunks[0][36..], br#"{"hi":1}"#);
    }

    #[test]
    fn binary_with_meta_vector() {
        let chunks = encode_payload(
            "file",
            7,
            &Payload::Binary(bytes::Bytes::from(vec![1, 2, 3])),
            Some(&json!({"name": "a"})),
        )
        .expect("encodes");
        assert_eq!(chunks.len(), 2);
        assert_eq!((chunks[0][34], chunks[0][35]), (0x0e, 0x80));
        assert_eq!((chunks[1][34], chunks[1][35]), (0x0d, 0xff));
        assert_eq!(&chunks[0][32..34], &[0, 7]);
        assert_eq!(&chunks[1][36..], &[1, 2, 3]);
    }

    #[test]
    fn large_payload_is_split() {
        let data = vec![5u8; CHUNK_PAYLOAD * 2 + 1];
        let chunks = encode_message("big", 1, &data, TAG_BINARY | TAG_JSON, None).expect("encodes");
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.len() <= CHUNK_SIZE));
        assert_eq!(chunks[0].len(), CHUNK_SIZE);
        assert_eq!(chunks[0][35], 85);
        assert_eq!(chunks[2][34] & TAG_LAST, TAG_LAST);
        assert_eq!(chunks[1][34] & TAG_LAST, 0);
        let decoded = ActionChunk::decode(&chunks[2]).expect("decodes");
        assert_eq!(
            (decoded.action, decoded.nonce, decoded.payload.len()),
            ("big", 1, 1)
        );
    }

    #[test]
    fn decode_errors() {
        assert_eq!(ActionChunk::decode(&[0; 35]), Err(ChunkError::Truncated));
        assert_eq!(
            ActionChunk::decode(&vec![0; CHUNK_SIZE + 1]),
            Err(ChunkError::Oversized)
        );
        let mut bad = vec![0u8; 36];
        bad[0] = 0xff;
        assert_eq!(ActionChunk::decode(&bad), Err(ChunkError::BadName));
        assert_eq!(
            encode_message(&"x".repeat(33), 0, b"", 0, None),
            Err(EncodeError::NameTooLong)
        );
    }

    #[test]
    fn framed_chunks_are_the_plain_chunks_after_the_prefix() {
        let payload = Payload::Binary((0..40_000u32).map(|i| i as u8).collect());
        let meta = json!({"name": "f"});
        let plain = encode_payload("file", 7, &payload, Some(&meta)).expect("encodes");
        let framed =
            encode_payload_framed(b"PREFIX", "file", 7, &payload, Some(&meta)).expect("encodes");
        assert_eq!(plain.len(), 4);
        assert_eq!(framed.len(), plain.len());
        for (f, p) in framed.iter().zip(&plain) {
            assert_eq!(&f[..6], b"PREFIX");
            assert_eq!(&f[6..], &p[..]);
        }
    }
}
