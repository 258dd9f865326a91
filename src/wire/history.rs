//! Durable-channel messages between meshrtc peers (payload of the internal action `@_mrhist`):
//! who keeps what, the origin signatures that let kept messages be checked later, and catch-up
//! requests and pages.
//!
//! ```text
//! 1 KEEPS    u8 n, n × (u8 len, channel)
//! 2 SIG      origin key (32), seq u64, digest (32), BIP-340 signature (64): the next message on
//!            this link from the origin is signed (digest: see `message_digest`)
//! 3 REQUEST  after_ms u64, after_cursor u64, u8 n, n × (u8 len, channel)   (n = 0: every kept)
//! 4 ENTRIES  done u8, next_cursor u64, u16 n, n × entry
//!   entry    u8 len, origin id, origin seq u64, origin ms u64, signed u8 (0 none, 1 over the
//!            message, 3 a cell frame's over its signed body; 2, a version 1 frame's, is
//!            refused), [key (32), signature (64)], u32 len, message (the E2E plaintext
//!            encoding, or when 3 the frame's signed body: its hop limit, then its payload)
//! ```

use nostr_sdk::secp256k1::schnorr::Signature;
use nostr_sdk::secp256k1::{Message, XOnlyPublicKey};
use nostr_sdk::{Keys, SECP256K1};
use sha2::{Digest as _, Sha256};

/// Most channels one KEEPS or REQUEST names.
pub const MAX_CHANNELS: usize = 64;
/// Most entries in one page.
pub const PAGE_ENTRIES: usize = 256;
/// Most message bytes in one page (a larger single message goes alone).
pub const PAGE_BYTES: usize = 512 << 10;

/// An origin's signature over a kept message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginSig {
    /// The origin's x-only key (its peer id derives from it).
    pub key: [u8; 32],
    /// The origin's sequence number for the message.
    pub seq: u64,
    /// BIP-340 over [`message_digest`].
    pub sig: [u8; 64],
}

/// One kept message as a keeper serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEntry {
    /// The origin's peer id.
    pub origin: String,
    /// When the origin sent it (ms).
    pub origin_ms: u64,
    /// Its signature, when the origin could sign.
    pub signed: Option<OriginSig>,
    /// The signature is a cell frame's, and `message` the frame's signed body it covers (see
    /// [`crate::wire::cell::CellFrame::signed_body`]).
    pub framed: bool,
    /// The message: channel, payload and meta as the E2E plaintext encodes them (or as a cell
    /// frame carried them, when `framed`).
    pub message: Vec<u8>,
}

/// A durable-channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistMsg {
    /// The sender keeps these channels.
    Keeps(Vec<String>),
    /// The sender's next message on this link is signed so.
    Sig {
        /// The digest it signs.
        digest: [u8; 32],
        /// The signature.
        sig: OriginSig,
    },
    /// Asks a keeper for what it kept: sent after `after_ms`, from its cursor `after_cursor`.
    Request {
        /// Origin time floor (ms; 0: everything).
        after_ms: u64,
        /// Resume after this keeper cursor (0: from the start).
        after_cursor: u64,
        /// Channels (empty: every kept channel).
        channels: Vec<String>,
    },
    /// A page of kept messages.
    Entries {
        /// Nothing more after this page.
        done: bool,
        /// Ask again after this cursor for the next page.
        next_cursor: u64,
        /// The messages, oldest first.
        entries: Vec<WireEntry>,
    },
}

/// The digest an origin signs for a kept message.
pub fn message_digest(room_salt: &[u8], key: &[u8; 32], seq: u64, message: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"meshrtc/kept/v1");
    h.update((room_salt.len() as u32).to_be_bytes());
    h.update(room_salt);
    h.update(key);
    h.update(seq.to_be_bytes());
    h.update((message.len() as u32).to_be_bytes());
    h.update(message);
    h.finalize().into()
}

/// Signs a message for a room.
pub fn sign(keys: &Keys, room_salt: &[u8], seq: u64, message: &[u8]) -> ([u8; 32], OriginSig) {
    let key = keys.public_key().to_bytes();
    let digest = message_digest(room_salt, &key, seq, message);
    let sig = keys.sign_schnorr(&Message::from_digest(digest));
    (
        digest,
        OriginSig {
            key,
            seq,
            sig: *sig.as_ref(),
        },
    )
}

/// Checks an origin's signature over a message.
pub fn verify(room_salt: &[u8], sig: &OriginSig, message: &[u8]) -> bool {
    let (Ok(key), Ok(s)) = (
        XOnlyPublicKey::from_slice(&sig.key),
        Signature::from_slice(&sig.sig),
    ) else {
        return false;
    };
    let digest = message_digest(room_salt, &sig.key, sig.seq, message);
    SECP256K1
        .verify_schnorr(&s, &Message::from_digest(digest), &key)
        .is_ok()
}

fn put_names(out: &mut Vec<u8>, names: &[String]) {
    let names: Vec<&String> = names
        .iter()
        .filter(|n| n.len() <= u8::MAX as usize)
        .take(MAX_CHANNELS)
        .collect();
    out.push(names.len() as u8);
    for n in names {
        out.push(n.len() as u8);
        out.extend_from_slice(n.as_bytes());
    }
}

/// Reads what was written, front to back; `None` on any shortfall.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn string(&mut self, len: usize) -> Option<String> {
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn names(&mut self) -> Option<Vec<String>> {
        let n = self.u8()? as usize;
        if n > MAX_CHANNELS {
            return None;
        }
        (0..n)
            .map(|_| {
                let len = self.u8()? as usize;
                self.string(len)
            })
            .collect()
    }
}

impl HistMsg {
    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            HistMsg::Keeps(channels) => {
                out.push(1);
                put_names(&mut out, channels);
            }
            HistMsg::Sig { digest, sig } => {
                out.push(2);
                out.extend_from_slice(&sig.key);
                out.extend_from_slice(&sig.seq.to_be_bytes());
                out.extend_from_slice(digest);
                out.extend_from_slice(&sig.sig);
            }
            HistMsg::Request {
                after_ms,
                after_cursor,
                channels,
            } => {
                out.push(3);
                out.extend_from_slice(&after_ms.to_be_bytes());
                out.extend_from_slice(&after_cursor.to_be_bytes());
                put_names(&mut out, channels);
            }
            HistMsg::Entries {
                done,
                next_cursor,
                entries,
            } => {
                out.push(4);
                out.push(u8::from(*done));
                out.extend_from_slice(&next_cursor.to_be_bytes());
                let entries = &entries[..entries.len().min(u16::MAX as usize)];
                out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
                for e in entries {
                    let origin = &e.origin.as_bytes()[..e.origin.len().min(u8::MAX as usize)];
                    out.push(origin.len() as u8);
                    out.extend_from_slice(origin);
                    out.extend_from_slice(&e.signed.map_or(0, |s| s.seq).to_be_bytes());
                    out.extend_from_slice(&e.origin_ms.to_be_bytes());
                    match &e.signed {
                        Some(s) => {
                            out.push(if e.framed { 3 } else { 1 });
                            out.extend_from_slice(&s.key);
                            out.extend_from_slice(&s.sig);
                        }
                        None => out.push(0),
                    }
                    out.extend_from_slice(&(e.message.len() as u32).to_be_bytes());
                    out.extend_from_slice(&e.message);
                }
            }
        }
        out
    }

    /// Decodes a message; `None` when malformed.
    pub fn decode(bytes: &[u8]) -> Option<HistMsg> {
        let mut r = Reader(bytes);
        let msg = match r.u8()? {
            1 => HistMsg::Keeps(r.names()?),
            2 => {
                let key = r.array::<32>()?;
                let seq = r.u64()?;
                let digest = r.array::<32>()?;
                let sig = r.array::<64>()?;
                HistMsg::Sig {
                    digest,
                    sig: OriginSig { key, seq, sig },
                }
            }
            3 => HistMsg::Request {
                after_ms: r.u64()?,
                after_cursor: r.u64()?,
                channels: r.names()?,
            },
            4 => {
                let done = r.u8()? != 0;
                let next_cursor = r.u64()?;
                let n = u16::from_be_bytes(r.array::<2>()?) as usize;
                let mut entries = Vec::with_capacity(n.min(PAGE_ENTRIES));
                for _ in 0..n {
                    let len = r.u8()? as usize;
                    let origin = r.string(len)?;
                    let seq = r.u64()?;
                    let origin_ms = r.u64()?;
                    let kind = r.u8()?;
                    let signed = match kind {
                        0 => None,
                        1 | 3 => Some(OriginSig {
                            key: r.array::<32>()?,
                            sig: r.array::<64>()?,
                            seq,
                        }),
                        _ => return None,
                    };
                    let len = u32::from_be_bytes(r.array::<4>()?) as usize;
                    let message = r.take(len)?.to_vec();
                    entries.push(WireEntry {
                        origin,
                        origin_ms,
                        signed,
                        framed: kind == 3,
                        message,
                    });
                }
                HistMsg::Entries {
                    done,
                    next_cursor,
                    entries,
                }
            }
            _ => return None,
        };
        r.0.is_empty().then_some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_junk_is_refused() {
        let keys = Keys::generate();
        let (digest, sig) = sign(&keys, b"salt", 7, b"hello");
        let msgs = [
            HistMsg::Keeps(vec!["chat".into(), "files".into()]),
            HistMsg::Sig { digest, sig },
            HistMsg::Request {
                after_ms: 5,
                after_cursor: 9,
                channels: vec![],
            },
            HistMsg::Entries {
                done: false,
                next_cursor: 42,
                entries: vec![
                    WireEntry {
                        origin: "a".repeat(20),
                        origin_ms: 1,
                        signed: Some(sig),
                        framed: true,
                        message: b"hello".to_vec(),
                    },
                    WireEntry {
                        origin: "b".repeat(20),
                        origin_ms: 2,
                        signed: None,
                        framed: false,
                        message: vec![],
                    },
                ],
            },
        ];
        for m in msgs {
            let bytes = m.encode();
            assert_eq!(HistMsg::decode(&bytes), Some(m));
            assert_eq!(HistMsg::decode(&bytes[..bytes.len() - 1]), None);
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(HistMsg::decode(&longer), None);
        }
        assert_eq!(HistMsg::decode(&[9]), None);
        // An entry carrying a version 1 cell frame's signature (kind 2) is refused.
        let page = HistMsg::Entries {
            done: true,
            next_cursor: 1,
            entries: vec![WireEntry {
                origin: "a".repeat(20),
                origin_ms: 1,
                signed: Some(sig),
                framed: true,
                message: b"x".to_vec(),
            }],
        };
        let mut bytes = page.encode();
        let kind_at = 1 + 1 + 8 + 2 + 1 + 20 + 8 + 8;
        assert_eq!(bytes[kind_at], 3);
        bytes[kind_at] = 2;
        assert_eq!(HistMsg::decode(&bytes), None);
    }

    #[test]
    fn signatures_bind_room_key_sequence_and_message() {
        let keys = Keys::generate();
        let (_, sig) = sign(&keys, b"room", 3, b"msg");
        assert!(verify(b"room", &sig, b"msg"));
        assert!(!verify(b"room", &sig, b"msG"), "altered message");
        assert!(!verify(b"other", &sig, b"msg"), "another room");
        let mut replayed = sig;
        replayed.seq = 4;
        assert!(!verify(b"room", &replayed, b"msg"), "another sequence");
        let mut forged = sig;
        forged.key = Keys::generate().public_key().to_bytes();
        assert!(!verify(b"room", &forged, b"msg"), "another origin");
    }
}
