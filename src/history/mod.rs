//! Durable channels, as a sans-IO core: what a room keeps, how a kept message is laid out at
//! rest, and which old messages go when a channel or the room is over its limits.
//!
//! A room joined with `keep` rules stores the messages of those channels (`store::history`
//! does the sled I/O). Each kept message gets a **cursor**: the node's microsecond clock when it
//! was kept, strictly increasing, so cursors order messages, date them, and let an app resume
//! ("everything after this cursor") without the store keeping any other index.
//!
//! Layout of a stored value (all integers big-endian):
//!
//! ```text
//! 0       version = 1
//! 1       flags (bit 0: body sealed with the room's history key; bit 1: origin verified)
//! 2..10   channel tag (keyed hash of the channel: pruning per channel without reading bodies)
//! ..      body: sealed → 24-byte nonce + XChaCha20-Poly1305 ciphertext of the plain body
//! ..      8   checksum: SHA-256 of everything before, first 8 bytes (corruption at rest)
//!
//! plain body: origin length u8, origin peer id, origin seq u64, origin time ms u64,
//!             signed u8 (0 none; 1 over the message; 3 a cell frame's, then u32 length and the
//!             signed body it covers: the frame's hop limit, then its payload; 2 a version 1
//!             cell frame's, whose signature is no longer checked: read as unsigned)
//!             [origin key (32), BIP-340 signature (64)],
//!             then the message as the E2E envelope encodes it (channel, payload, meta)
//! ```

pub mod index;
pub mod listing;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::time::Duration;

use crate::wire::chunk::Payload;
use crate::wire::e2e;
use crate::wire::history::OriginSig;

pub use index::{Prune, RoomIndex, Totals};

/// A kept message's place in its room's history: the node's clock (µs) when it was kept.
///
/// A type of its own so a cursor is never taken for a peer's `origin_ms` or an `after_ms`
/// (milliseconds, and the sender's clock, not ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Cursor(pub u64);

impl Cursor {
    /// The cursor `micros` µs of the node's clock name.
    pub const fn from_micros(micros: u64) -> Self {
        Cursor(micros)
    }

    /// The node's clock (µs) when the entry was kept.
    pub const fn micros(self) -> u64 {
        self.0
    }

    /// The cursor `micros` µs earlier (not before zero).
    pub const fn minus_micros(self, micros: u64) -> Self {
        Cursor(self.0.saturating_sub(micros))
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Byte budgets a new entry is kept within (the store drops the oldest to stay inside them).
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    /// Most bytes one room's history may take.
    pub room: u64,
    /// Most bytes every room's history may take together.
    pub node: u64,
}

/// Signature kind of a stored entry: a cell frame's (version 2) over its signed body.
const KIND_FRAMED: u8 = 3;
/// Signature kind of entries kept before cell frames signed their hop limit.
const KIND_FRAMED_V1: u8 = 2;

/// Value format version.
const VERSION: u8 = 1;
const FLAG_SEALED: u8 = 1;
const FLAG_VERIFIED: u8 = 2;
const HEADER: usize = 10;
const CHECKSUM: usize = 8;
const NONCE: usize = 24;

/// What a room keeps of one channel: the newest `max_messages`, none older than `max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeepRule {
    /// Most messages kept (`None`: no count limit).
    pub max_messages: Option<u64>,
    /// Oldest message kept (`None`: no age limit).
    pub max_age: Option<Duration>,
}

impl KeepRule {
    /// The looser of two rules (two sessions keeping one channel keep what either asked for).
    pub fn union(self, other: KeepRule) -> KeepRule {
        let looser = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.max(y)),
            _ => None,
        };
        KeepRule {
            max_messages: looser(self.max_messages, other.max_messages),
            max_age: looser(
                self.max_age.map(|d| d.as_secs()),
                other.max_age.map(|d| d.as_secs()),
            )
            .map(Duration::from_secs),
        }
    }
}

/// Why a `keep` option was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeepParseError {
    /// Not `CHANNEL=LIMIT[,LIMIT]`.
    #[error(
        "keep option {0:?}: expected CHANNEL=COUNT, CHANNEL=AGE (e.g. 7d, 12h, 30m) or both, comma-separated"
    )]
    Syntax(String),
}

/// Parses `chat=10000`, `files=7d` or `chat=10000,7d` into a channel and its rule.
pub fn parse_keep(text: &str) -> Result<(String, KeepRule), KeepParseError> {
    let bad = || KeepParseError::Syntax(text.to_owned());
    let (channel, limits) = text.split_once('=').ok_or_else(bad)?;
    if channel.is_empty() || limits.is_empty() {
        return Err(bad());
    }
    let mut rule = KeepRule::default();
    for limit in limits.split(',') {
        if let Ok(n) = limit.parse::<u64>() {
            rule.max_messages = Some(n.max(1));
        } else {
            rule.max_age = Some(parse_age(limit).ok_or_else(bad)?);
        }
    }
    Ok((channel.to_owned(), rule))
}

/// Parses an age: a number and a unit (`s`, `m`, `h`, `d`).
pub fn parse_age(text: &str) -> Option<Duration> {
    let unit = text.chars().last()?;
    let n: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3_600)?,
        'd' => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// One kept message.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Channel name.
    pub channel: String,
    /// The origin's peer id.
    pub origin: String,
    /// The origin's sequence number (0 when its wire carries none).
    pub origin_seq: u64,
    /// When the origin sent it, as far as this node knows (ms since the Unix epoch).
    pub origin_ms: u64,
    /// The message.
    pub payload: Payload,
    /// Its metadata.
    pub meta: Option<Value>,
    /// The origin's identity was checked (its signature, or this node is the origin).
    pub verified: bool,
    /// The origin's signature, kept so that peers catching up can check it themselves.
    pub signed: Option<OriginSig>,
    /// In cells rooms: the cell frame's signed body that signature covers (its hop limit, then
    /// the message as the frame carried it, sealed in password rooms; see
    /// [`crate::wire::cell::CellFrame::signed_body`]).
    pub framed: Option<Vec<u8>>,
}

/// Why a stored value could not be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Truncated, wrong version, or the checksum does not match: damaged at rest.
    #[error("damaged history entry")]
    Damaged,
    /// Sealed, and this key does not open it (or no key was given).
    #[error("sealed history entry (wrong or missing room key)")]
    Sealed,
}

/// The key a room's history is sealed and tagged with.
#[derive(Clone)]
pub struct HistoryKey {
    cipher: Option<XChaCha20Poly1305>,
    tag_key: [u8; 32],
}

impl std::fmt::Debug for HistoryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HistoryKey(sealed: {})", self.cipher.is_some())
    }
}

impl HistoryKey {
    /// The key of an open room: tags only (nothing is secret in an open room).
    pub fn open_room(app: &str, room: &str) -> HistoryKey {
        HistoryKey {
            cipher: None,
            tag_key: hash(&[b"meshrtc/history/open/v1", app.as_bytes(), room.as_bytes()]),
        }
    }

    /// The key of a password room, derived from the room key: bodies are sealed at rest.
    pub fn password_room(room_key: &[u8; 32]) -> HistoryKey {
        let seal = hash(&[b"meshrtc/history/seal/v1", room_key]);
        HistoryKey {
            cipher: Some(XChaCha20Poly1305::new((&seal).into())),
            tag_key: hash(&[b"meshrtc/history/tag/v1", room_key]),
        }
    }

    /// True when bodies are sealed.
    pub fn seals(&self) -> bool {
        self.cipher.is_some()
    }

    /// The channel's tag under this key.
    pub fn tag(&self, channel: &str) -> [u8; 8] {
        let h = hash(&[&self.tag_key, channel.as_bytes()]);
        [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]
    }
}

/// The 16-byte id a room's history is filed under (its name is not stored).
pub fn room_id(app: &str, room: &str) -> [u8; 16] {
    let h = hash(&[
        b"meshrtc/history/room/v1",
        app.as_bytes(),
        &[0],
        room.as_bytes(),
    ]);
    let mut out = [0; 16];
    out.copy_from_slice(&h[..16]);
    out
}

fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u32).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM] {
    let d = Sha256::digest(bytes);
    let mut out = [0; CHECKSUM];
    out.copy_from_slice(&d[..CHECKSUM]);
    out
}

/// Encodes an entry for the store (`nonce` is fresh randomness; used only when sealing).
pub fn encode(entry: &Entry, key: &HistoryKey, nonce: [u8; NONCE]) -> Vec<u8> {
    let origin = &entry.origin.as_bytes()[..entry.origin.len().min(u8::MAX as usize)];
    let mut plain = Vec::with_capacity(32 + entry.payload_len());
    plain.push(origin.len() as u8);
    plain.extend_from_slice(origin);
    plain.extend_from_slice(&entry.origin_seq.to_be_bytes());
    plain.extend_from_slice(&entry.origin_ms.to_be_bytes());
    match (&entry.signed, &entry.framed) {
        (Some(s), framed) => {
            plain.push(if framed.is_some() { KIND_FRAMED } else { 1 });
            plain.extend_from_slice(&s.key);
            plain.extend_from_slice(&s.sig);
            if let Some(f) = framed {
                plain.extend_from_slice(&(f.len() as u32).to_be_bytes());
                plain.extend_from_slice(f);
            }
        }
        (None, _) => plain.push(0),
    }
    plain.extend(e2e::encode_message(
        &entry.channel,
        &entry.payload,
        entry.meta.as_ref(),
    ));
    let mut flags = 0;
    if entry.verified {
        flags |= FLAG_VERIFIED;
    }
    let body = match &key.cipher {
        Some(cipher) => {
            flags |= FLAG_SEALED;
            let sealed = cipher
                .encrypt(XNonce::from_slice(&nonce), plain.as_slice())
                .unwrap_or_default();
            let mut b = nonce.to_vec();
            b.extend(sealed);
            b
        }
        None => plain,
    };
    let mut out = Vec::with_capacity(HEADER + body.len() + CHECKSUM);
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&key.tag(&entry.channel));
    out.extend(body);
    let sum = checksum(&out);
    out.extend_from_slice(&sum);
    out
}

/// The channel tag of a stored value, after checking it is whole (no key needed).
pub fn check(value: &[u8]) -> Result<[u8; 8], EntryError> {
    if value.len() < HEADER + CHECKSUM || value[0] != VERSION {
        return Err(EntryError::Damaged);
    }
    let (data, sum) = value.split_at(value.len() - CHECKSUM);
    if checksum(data) != sum {
        return Err(EntryError::Damaged);
    }
    let mut tag = [0; 8];
    tag.copy_from_slice(&value[2..HEADER]);
    Ok(tag)
}

/// Decodes a stored value.
pub fn decode(value: &[u8], key: &HistoryKey) -> Result<Entry, EntryError> {
    check(value)?;
    let flags = value[1];
    let body = &value[HEADER..value.len() - CHECKSUM];
    let plain;
    let body = if flags & FLAG_SEALED != 0 {
        let cipher = key.cipher.as_ref().ok_or(EntryError::Sealed)?;
        if body.len() < NONCE {
            return Err(EntryError::Damaged);
        }
        let (nonce, sealed) = body.split_at(NONCE);
        plain = cipher
            .decrypt(XNonce::from_slice(nonce), sealed)
            .map_err(|_| EntryError::Sealed)?;
        plain.as_slice()
    } else {
        body
    };
    let n = *body.first().ok_or(EntryError::Damaged)? as usize;
    let origin = body.get(1..1 + n).ok_or(EntryError::Damaged)?;
    let origin = String::from_utf8(origin.to_vec()).map_err(|_| EntryError::Damaged)?;
    let u64_at = |at: usize| -> Result<u64, EntryError> {
        let b = body.get(at..at + 8).ok_or(EntryError::Damaged)?;
        Ok(u64::from_be_bytes(
            b.try_into().map_err(|_| EntryError::Damaged)?,
        ))
    };
    let origin_seq = u64_at(1 + n)?;
    let origin_ms = u64_at(9 + n)?;
    let mut at = 17 + n;
    let kind = *body.get(at).ok_or(EntryError::Damaged)?;
    at += 1;
    let mut signed = match kind {
        0 => None,
        1 | KIND_FRAMED_V1 | KIND_FRAMED => {
            let key = body.get(at..at + 32).ok_or(EntryError::Damaged)?;
            let sig = body.get(at + 32..at + 96).ok_or(EntryError::Damaged)?;
            at += 96;
            Some(OriginSig {
                key: key.try_into().map_err(|_| EntryError::Damaged)?,
                seq: origin_seq,
                sig: sig.try_into().map_err(|_| EntryError::Damaged)?,
            })
        }
        _ => return Err(EntryError::Damaged),
    };
    let framed = if kind == KIND_FRAMED || kind == KIND_FRAMED_V1 {
        let len = body.get(at..at + 4).ok_or(EntryError::Damaged)?;
        let len = u32::from_be_bytes(len.try_into().map_err(|_| EntryError::Damaged)?) as usize;
        let f = body.get(at + 4..at + 4 + len).ok_or(EntryError::Damaged)?;
        at += 4 + len;
        Some(f.to_vec())
    } else {
        None
    };
    // A version 1 frame's signature left its hop limit out; peers no longer check those, so
    // the entry is served unsigned (it stays verified here if it was).
    if kind == KIND_FRAMED_V1 {
        signed = None;
    }
    let framed = framed.filter(|_| kind == KIND_FRAMED);
    let message = body.get(at..).ok_or(EntryError::Damaged)?;
    let (channel, payload, meta) = e2e::decode_message(message).map_err(|_| EntryError::Damaged)?;
    Ok(Entry {
        channel,
        origin,
        origin_seq,
        origin_ms,
        payload,
        meta,
        verified: flags & FLAG_VERIFIED != 0,
        signed,
        framed,
    })
}

/// Most stored bytes one catch-up page reads (matching or not): a request that matches little
/// still costs the keeper a bounded amount, and the requester pages on from `next_cursor`.
pub const SCAN_BYTES: usize = 2 << 20;
/// Most stored entries one catch-up page looks at.
pub const SCAN_ENTRIES: usize = 4 * crate::wire::history::PAGE_ENTRIES;

/// Where a keeper's scan for a catch-up request starts: past `after_cursor`, and past the
/// entries kept before `after_ms` (an entry's time is when it was kept, and its cursor is that
/// time in µs or later), so a request for the future costs a seek and nothing else.
pub fn scan_from(after_cursor: Cursor, after_ms: u64) -> Cursor {
    after_cursor.max(Cursor::from_micros(after_ms.saturating_mul(1_000)))
}

/// One catch-up page and what reading it cost.
#[derive(Debug)]
pub struct ServedPage {
    /// The page to send.
    pub msg: crate::wire::history::HistMsg,
    /// `msg` encoded, made with the page on the reading thread: up to a page of bytes copied
    /// that the node's lock need not wait for.
    pub encoded: Vec<u8>,
    /// Stored bytes read for it (the keeper's work, charged to the requester's budget).
    pub cost: usize,
}

/// One catch-up page from stored values after `from` (in cursor order, as the store holds
/// them): entries kept after `after_ms` on `channels`, at most
/// [`PAGE_ENTRIES`](crate::wire::history::PAGE_ENTRIES) and about
/// [`PAGE_BYTES`](crate::wire::history::PAGE_BYTES) of messages, reading at most
/// [`SCAN_ENTRIES`] and [`SCAN_BYTES`]. Other channels are skipped by their tag without being
/// opened; entries that do not open are skipped (their cursor still advances).
pub fn page<V: AsRef<[u8]>>(
    values: impl Iterator<Item = (Cursor, V)>,
    key: &HistoryKey,
    from: Cursor,
    after_ms: u64,
    channels: &std::collections::BTreeSet<String>,
) -> ServedPage {
    use crate::wire::history::{HistMsg, PAGE_BYTES, PAGE_ENTRIES, WireEntry};
    let tags: Vec<[u8; 8]> = channels.iter().map(|c| key.tag(c)).collect();
    if tags.is_empty() {
        return ServedPage::new(
            HistMsg::Entries {
                done: true,
                next_cursor: from.micros(),
                entries: Vec::new(),
            },
            0,
        );
    }
    let mut out = Vec::new();
    let (mut bytes, mut scanned, mut looked) = (0, 0, 0);
    let mut next_cursor = from;
    let mut done = true;
    for (cursor, value) in values {
        if out.len() >= PAGE_ENTRIES
            || bytes >= PAGE_BYTES
            || looked >= SCAN_ENTRIES
            || scanned >= SCAN_BYTES
        {
            done = false;
            break;
        }
        let value = value.as_ref();
        looked += 1;
        scanned += value.len();
        next_cursor = cursor;
        let Some(tag) = value.get(2..HEADER) else {
            continue;
        };
        if !tags.iter().any(|t| t == tag) {
            continue;
        }
        let Ok(e) = decode(value, key) else { continue };
        if e.origin_ms <= after_ms || !channels.contains(&e.channel) {
            continue;
        }
        let (message, framed) = match e.framed {
            Some(f) if e.signed.is_some() => (f, true),
            _ => (
                e2e::encode_message(&e.channel, &e.payload, e.meta.as_ref()),
                false,
            ),
        };
        bytes += message.len();
        out.push(WireEntry {
            origin: e.origin,
            origin_ms: e.origin_ms,
            signed: e.signed,
            framed,
            message,
        });
    }
    ServedPage::new(
        HistMsg::Entries {
            done,
            next_cursor: next_cursor.micros(),
            entries: out,
        },
        scanned,
    )
}

impl ServedPage {
    fn new(msg: crate::wire::history::HistMsg, cost: usize) -> Self {
        let encoded = msg.encode();
        ServedPage { msg, encoded, cost }
    }
}

impl Entry {
    fn payload_len(&self) -> usize {
        match &self.payload {
            Payload::Text(t) => t.len(),
            Payload::Json(v) => v.to_string().len(),
            Payload::Binary(b) => b.len(),
        }
    }
}

#[cfg(test)]
mod tests;
