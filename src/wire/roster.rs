//! Roster records and the messages that reconcile them over a link, in cells rooms.
//!
//! A record says "this key is a member of this room since `issued`", signed by that key. The
//! key fixes both the member's peer id and its placement, so any peer can pass records on and
//! no peer can forge, move or alter one. Record layout (104 bytes, integers big-endian; 120 in
//! password rooms):
//!
//! ```text
//! 0..32    key     x-only secp256k1 public key of the member
//! 32..40   issued  Unix seconds when the member joined
//! 40..104  sig     BIP-340 signature over SHA-256(tag, room salt, key, issued)
//! 104..120 mac     password rooms only: HMAC-SHA256(roster key, bytes 0..104), first 16 bytes
//! ```
//!
//! Anyone can sign a record for a fresh key; in a password room the MAC shows that whoever
//! made it (or vouched for it) holds the room key, which derives from the password (see
//! [`mac_key`]), so peers that never learnt the password cannot add members.
//!
//! Sync messages travel as the payload of the internal action `@_mrroster` (first byte: kind):
//!
//! ```text
//! 1 Digest   reply:u8, then 64 × (count:u32, fingerprint:u64)  — one per placement bucket
//! 2 Request  mask:u64                                          — buckets wanted
//! 3 Records  done:u64, n:u16, n × record (104 bytes)           — done: buckets complete now
//! 4 Records  done:u64, n:u16, n × record with its mac (120)    — the same, in password rooms
//! ```

use hmac::{Hmac, Mac as _};
use nostr_sdk::secp256k1::schnorr::Signature;
use nostr_sdk::secp256k1::{Message, XOnlyPublicKey};
use nostr_sdk::{Keys, SECP256K1};
use sha2::{Digest as _, Sha256};

/// Bytes of an encoded record without its MAC.
pub const RECORD_LEN: usize = 104;
/// Bytes of a record's MAC (password rooms).
pub const MAC_LEN: usize = 16;
/// Placement buckets a digest summarizes (the top 6 bits of a member's placement).
pub const BUCKETS: usize = 64;
/// Most records one `Records` message carries.
pub const RECORDS_PER_PAGE: usize = 128;

const KIND_DIGEST: u8 = 1;
const KIND_REQUEST: u8 = 2;
const KIND_RECORDS: u8 = 3;
const KIND_RECORDS_MAC: u8 = 4;

/// A member's signed roster record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RosterRecord {
    /// The member's x-only public key.
    pub key: [u8; 32],
    /// When it joined, Unix seconds.
    pub issued: u64,
    /// BIP-340 signature by `key`.
    pub sig: [u8; 64],
    /// In password rooms: the MAC that proves the room key (see [`RosterRecord::with_mac`]).
    pub mac: Option<[u8; MAC_LEN]>,
}

/// The key of a password room's record MACs, from the room's end-to-end key.
pub fn mac_key(room_key: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"meshrtc/roster/mac/v1");
    h.update(room_key);
    h.finalize().into()
}

fn record_mac(mac_key: &[u8; 32], record: &RosterRecord) -> Hmac<Sha256> {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(mac_key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(&record.key);
    mac.update(&record.issued.to_be_bytes());
    mac.update(&record.sig);
    mac
}

fn record_digest(room_salt: &[u8], key: &[u8; 32], issued: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"meshrtc/roster/v1");
    h.update((room_salt.len() as u32).to_be_bytes());
    h.update(room_salt);
    h.update(key);
    h.update(issued.to_be_bytes());
    h.finalize().into()
}

impl RosterRecord {
    /// This node's record for a room.
    pub fn sign(keys: &Keys, room_salt: &[u8], issued: u64) -> RosterRecord {
        let key = keys.public_key().to_bytes();
        let msg = Message::from_digest(record_digest(room_salt, &key, issued));
        RosterRecord {
            key,
            issued,
            sig: *keys.sign_schnorr(&msg).as_ref(),
            mac: None,
        }
    }

    /// The record with its MAC under a password room's [`mac_key`].
    pub fn with_mac(mut self, mac_key: &[u8; 32]) -> RosterRecord {
        let tag = record_mac(mac_key, &self).finalize().into_bytes();
        let mut mac = [0; MAC_LEN];
        mac.copy_from_slice(&tag[..MAC_LEN]);
        self.mac = Some(mac);
        self
    }

    /// Whether the record carries a valid MAC under `mac_key` (checked in constant time).
    pub fn mac_holds(&self, mac_key: &[u8; 32]) -> bool {
        self.mac
            .is_some_and(|m| record_mac(mac_key, self).verify_truncated_left(&m).is_ok())
    }

    /// Whether the signature holds for this room.
    pub fn verify(&self, room_salt: &[u8]) -> bool {
        let (Ok(key), Ok(sig)) = (
            XOnlyPublicKey::from_slice(&self.key),
            Signature::from_slice(&self.sig),
        ) else {
            return false;
        };
        let msg = Message::from_digest(record_digest(room_salt, &self.key, self.issued));
        SECP256K1.verify_schnorr(&sig, &msg, &key).is_ok()
    }

    /// A 64-bit fingerprint for digests (from the signature: unique per record).
    pub fn fingerprint(&self) -> u64 {
        u64::from_be_bytes([
            self.sig[0],
            self.sig[1],
            self.sig[2],
            self.sig[3],
            self.sig[4],
            self.sig[5],
            self.sig[6],
            self.sig[7],
        ])
    }

    /// Encodes the record, with its MAC when it has one.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.issued.to_be_bytes());
        out.extend_from_slice(&self.sig);
        if let Some(mac) = &self.mac {
            out.extend_from_slice(mac);
        }
    }

    /// Decodes a record of [`RECORD_LEN`] bytes, or of that plus [`MAC_LEN`] with its MAC
    /// (its signature and MAC are checked separately).
    pub fn decode(bytes: &[u8]) -> Option<RosterRecord> {
        let mac = match bytes.len() {
            RECORD_LEN => None,
            n if n == RECORD_LEN + MAC_LEN => Some(bytes[RECORD_LEN..].try_into().ok()?),
            _ => return None,
        };
        Some(RosterRecord {
            key: bytes[0..32].try_into().ok()?,
            issued: u64::from_be_bytes(bytes[32..40].try_into().ok()?),
            sig: bytes[40..104].try_into().ok()?,
            mac,
        })
    }
}

/// One bucket of a digest: how many records, and the XOR of their fingerprints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Records in the bucket.
    pub count: u32,
    /// XOR of their fingerprints.
    pub fingerprint: u64,
}

/// A roster sync message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterMsg {
    /// What the sender holds, per bucket; `reply` when it answers another digest.
    Digest {
        /// An answer (not answered again).
        reply: bool,
        /// The buckets.
        buckets: Box<[Bucket; BUCKETS]>,
    },
    /// Send me every record of these buckets.
    Request {
        /// Bit `b` asks for bucket `b`.
        mask: u64,
    },
    /// Records; `done` names the buckets this page completes.
    Records {
        /// Buckets complete with this page.
        done: u64,
        /// The records.
        records: Vec<RosterRecord>,
    },
}

impl RosterMsg {
    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            RosterMsg::Digest { reply, buckets } => {
                let mut out = Vec::with_capacity(2 + BUCKETS * 12);
                out.push(KIND_DIGEST);
                out.push(u8::from(*reply));
                for b in buckets.iter() {
                    out.extend_from_slice(&b.count.to_be_bytes());
                    out.extend_from_slice(&b.fingerprint.to_be_bytes());
                }
                out
            }
            RosterMsg::Request { mask } => {
                let mut out = vec![KIND_REQUEST];
                out.extend_from_slice(&mask.to_be_bytes());
                out
            }
            RosterMsg::Records { done, records } => {
                let n = records.len().min(RECORDS_PER_PAGE);
                let records = &records[..n];
                // With MACs (password rooms) every record carries one: a missing one goes as
                // zeros, which verify for no key.
                let maced = records.iter().any(|r| r.mac.is_some());
                let mut out = Vec::with_capacity(11 + n * (RECORD_LEN + MAC_LEN));
                out.push(if maced {
                    KIND_RECORDS_MAC
                } else {
                    KIND_RECORDS
                });
                out.extend_from_slice(&done.to_be_bytes());
                out.extend_from_slice(&(n as u16).to_be_bytes());
                for r in records {
                    let mut r = *r;
                    if maced {
                        r.mac.get_or_insert([0; MAC_LEN]);
                    }
                    r.encode(&mut out);
                }
                out
            }
        }
    }

    /// Decodes a message; `None` for anything malformed or oversized.
    pub fn decode(bytes: &[u8]) -> Option<RosterMsg> {
        let (&kind, rest) = bytes.split_first()?;
        match kind {
            KIND_DIGEST => {
                if rest.len() != 1 + BUCKETS * 12 || rest[0] > 1 {
                    return None;
                }
                let mut buckets = Box::new([Bucket::default(); BUCKETS]);
                for (b, chunk) in buckets.iter_mut().zip(rest[1..].chunks_exact(12)) {
                    b.count = u32::from_be_bytes(chunk[0..4].try_into().ok()?);
                    b.fingerprint = u64::from_be_bytes(chunk[4..12].try_into().ok()?);
                }
                Some(RosterMsg::Digest {
                    reply: rest[0] == 1,
                    buckets,
                })
            }
            KIND_REQUEST => Some(RosterMsg::Request {
                mask: u64::from_be_bytes(rest.try_into().ok()?),
            }),
            KIND_RECORDS | KIND_RECORDS_MAC => {
                if rest.len() < 10 {
                    return None;
                }
                let len = if kind == KIND_RECORDS_MAC {
                    RECORD_LEN + MAC_LEN
                } else {
                    RECORD_LEN
                };
                let done = u64::from_be_bytes(rest[0..8].try_into().ok()?);
                let n = u16::from_be_bytes(rest[8..10].try_into().ok()?) as usize;
                let body = &rest[10..];
                if n > RECORDS_PER_PAGE || body.len() != n * len {
                    return None;
                }
                let records = body
                    .chunks_exact(len)
                    .map(RosterRecord::decode)
                    .collect::<Option<Vec<_>>>()?;
                Some(RosterMsg::Records { done, records })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_verifies_only_for_its_room_and_unaltered() {
        let keys = Keys::generate();
        let r = RosterRecord::sign(&keys, b"room", 1_700_000_000);
        assert!(r.verify(b"room"));
        assert!(!r.verify(b"other room"));
        let mut later = r;
        later.issued += 1;
        assert!(!later.verify(b"room"));
        let mut moved = r;
        moved.key = Keys::generate().public_key().to_bytes();
        assert!(!moved.verify(b"room"));
        let mut bytes = Vec::new();
        r.encode(&mut bytes);
        assert_eq!(bytes.len(), RECORD_LEN);
        assert_eq!(RosterRecord::decode(&bytes), Some(r));
    }

    #[test]
    fn a_mac_proves_the_room_key_and_travels_with_the_record() {
        let keys = Keys::generate();
        let (key, other) = (mac_key(&[1; 32]), mac_key(&[2; 32]));
        let plain = RosterRecord::sign(&keys, b"room", 7);
        assert!(!plain.mac_holds(&key), "no MAC, no proof");
        let maced = plain.with_mac(&key);
        assert!(maced.mac_holds(&key));
        assert!(!maced.mac_holds(&other), "another password");
        assert!(maced.verify(b"room"), "the MAC is outside the signature");
        let mut moved = maced;
        moved.issued += 1;
        assert!(!moved.mac_holds(&key), "the MAC covers the record");
        let mut bytes = Vec::new();
        maced.encode(&mut bytes);
        assert_eq!(bytes.len(), RECORD_LEN + MAC_LEN);
        assert_eq!(RosterRecord::decode(&bytes), Some(maced));
        // A page mixing both goes with MACs; the one without gets zeros, which prove nothing.
        let page = RosterMsg::Records {
            done: 1,
            records: vec![maced, plain],
        };
        let Some(RosterMsg::Records { records, .. }) = RosterMsg::decode(&page.encode()) else {
            panic!("no records");
        };
        assert!(records[0].mac_holds(&key) && !records[1].mac_holds(&key));
        assert_eq!(page.encode()[0], KIND_RECORDS_MAC);
    }

    #[test]
    fn messages_round_trip_and_bad_lengths_are_refused() {
        let keys = Keys::generate();
        let r = RosterRecord::sign(&keys, b"room", 7);
        let mut buckets = Box::new([Bucket::default(); BUCKETS]);
        buckets[3] = Bucket {
            count: 2,
            fingerprint: 99,
        };
        for m in [
            RosterMsg::Digest {
                reply: true,
                buckets,
            },
            RosterMsg::Request { mask: 1 << 63 | 5 },
            RosterMsg::Records {
                done: 8,
                records: vec![r, r],
            },
        ] {
            let bytes = m.encode();
            assert_eq!(RosterMsg::decode(&bytes), Some(m));
            assert_eq!(RosterMsg::decode(&bytes[..bytes.len() - 1]), None);
        }
        assert_eq!(RosterMsg::decode(&[]), None);
        assert_eq!(RosterMsg::decode(&[9, 0, 0]), None);
        // A page claiming more records than allowed.
        let mut big = vec![KIND_RECORDS];
        big.extend_from_slice(&0u64.to_be_bytes());
        big.extend_from_slice(&(RECORDS_PER_PAGE as u16 + 1).to_be_bytes());
        big.extend(std::iter::repeat_n(
            0u8,
            (RECORDS_PER_PAGE + 1) * RECORD_LEN,
        ));
        assert_eq!(RosterMsg::decode(&big), None);
    }
}
