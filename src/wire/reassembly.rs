//! Reassembly of chunked messages, keyed by (peer, action, nonce), bounded and expiring.
//!
//! Bounds, in bytes of buffer actually reserved: per message, per peer, per reassembler (a
//! room), and across every reassembler sharing a [`NodeBudget`] (the node's rooms). A chunk that
//! would cross one drops its own partial message, nothing else.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::chunk::{ActionChunk, CHUNK_PAYLOAD, Payload, TAG_BINARY, TAG_JSON};

/// Limits on buffered partial messages.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest message accepted, in payload bytes.
    pub max_message: usize,
    /// Bytes buffered for one peer across its partial messages.
    pub max_per_peer: usize,
    /// Bytes buffered across all peers.
    pub max_total: usize,
    /// Partial messages one peer may have open at once.
    pub max_partials_per_peer: usize,
    /// A partial message with no new chunk for this long is discarded.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 64 << 20,
            max_per_peer: 128 << 20,
            max_total: 512 << 20,
            max_partials_per_peer: 64,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Bytes of partial messages buffered across every reassembler that shares it: one per node,
/// shared by its rooms. Clones share the count.
#[derive(Debug, Clone)]
pub struct NodeBudget {
    used: Arc<AtomicUsize>,
    cap: usize,
}

impl NodeBudget {
    /// A budget of `cap` bytes, none used.
    pub fn new(cap: usize) -> Self {
        NodeBudget {
            used: Arc::new(AtomicUsize::new(0)),
            cap,
        }
    }

    /// Bytes in use across the reassemblers sharing it.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Takes `n` bytes if they fit under the cap.
    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(n).filter(|&t| t <= self.cap)
            })
            .is_ok()
    }

    /// Gives `n` bytes back.
    fn give(&self, n: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(n))
            });
    }
}

/// A complete message.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    /// Action (channel) name.
    pub action: String,
    /// The typed payload.
    pub payload: Payload,
    /// Metadata sent with the payload, if any.
    pub meta: Option<Value>,
}

/// What one chunk produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// More chunks are expected; `progress` is the sender's fraction in 0..=255.
    Partial {
        /// Action name.
        action: String,
        /// Progress byte of the chunk.
        progress: u8,
        /// Metadata, once its chunk has arrived.
        meta: Option<Value>,
    },
    /// The message is complete.
    Complete(Assembled),
}

/// Why a chunk was dropped (each is a named counter upstream).
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum ReassemblyError {
    /// The message grew past the maximum message size.
    #[error("message exceeds the size limit")]
    TooLarge,
    /// The peer or the room has too much buffered already.
    #[error("reassembly buffers full")]
    BuffersFull,
    /// The node's rooms together have their whole [`NodeBudget`] buffered.
    #[error("the node's reassembly budget is used up")]
    NodeFull,
    /// Too many partial messages from one peer.
    #[error("too many partial messages from one peer")]
    TooManyPartials,
    /// Metadata chunk is not JSON or came twice.
    #[error("bad metadata chunk")]
    BadMeta,
    /// Final payload does not match its type bits.
    #[error("payload does not match its type")]
    BadPayload,
}

#[derive(Debug)]
struct Partial {
    data: Vec<u8>,
    /// Bytes counted against the limits: the buffer reserved for `data`.
    charged: usize,
    meta: Option<Value>,
    last_seen: Instant,
}

/// Buffers partial messages for many peers.
#[derive(Debug)]
pub struct Reassembler<K> {
    limits: Limits,
    partials: HashMap<(K, String, u16), Partial>,
    per_peer: HashMap<K, (usize, usize)>,
    total: usize,
    node: NodeBudget,
}

impl<K> Drop for Reassembler<K> {
    /// What is still buffered goes back to the node's budget (a room closing with partials).
    fn drop(&mut self) {
        self.node.give(self.total);
    }
}

fn finish(
    action: &str,
    tag: u8,
    data: Vec<u8>,
    meta: Option<Value>,
) -> Result<Assembled, ReassemblyError> {
    let payload = if tag & TAG_BINARY != 0 {
        Payload::Binary(data.into())
    } else if tag & TAG_JSON != 0 {
        Payload::Json(serde_json::from_slice(&data).map_err(|_| ReassemblyError::BadPayload)?)
    } else {
        Payload::Text(String::from_utf8(data).map_err(|_| ReassemblyError::BadPayload)?)
    };
    Ok(Assembled {
        action: action.to_owned(),
        payload,
        meta,
    })
}

/// Room for a message whose first data chunk is `chunk`, from its progress byte: growing the
/// buffer chunk by chunk copied a 64 KiB message's bytes almost twice more. Bounded, because a
/// peer chooses the progress byte.
fn expected_len(chunk: &ActionChunk<'_>, after_meta: bool, max_message: usize) -> usize {
    const MOST_CHUNKS: usize = 16;
    let index = 1 + usize::from(after_meta);
    let chunks = (index * 255)
        .div_ceil(usize::from(chunk.progress).max(1))
        .clamp(index, MOST_CHUNKS + index);
    ((chunks + 1 - index) * CHUNK_PAYLOAD).min(max_message)
}

impl<K: Hash + Eq + Clone> Reassembler<K> {
    /// A reassembler with the given limits (and a node budget of its own, no tighter than
    /// `max_total`).
    pub fn new(limits: Limits) -> Self {
        Reassembler {
            limits,
            partials: HashMap::new(),
            per_peer: HashMap::new(),
            total: 0,
            node: NodeBudget::new(usize::MAX),
        }
    }

    /// The same reassembler counting its buffers in `node` too (call before use).
    pub fn with_node_budget(mut self, node: NodeBudget) -> Self {
        // Anything buffered already moves with it, so the two counts stay true.
        self.node.give(self.total);
        node.used.fetch_add(self.total, Ordering::Relaxed);
        self.node = node;
        self
    }

    /// Bytes currently buffered across all peers.
    pub fn buffered(&self) -> usize {
        self.total
    }

    /// Number of open partial messages.
    pub fn open(&self) -> usize {
        self.partials.len()
    }

    fn release(&mut self, peer: &K, bytes: usize) {
        self.total -= bytes;
        self.node.give(bytes);
        if let Some(entry) = self.per_peer.get_mut(peer) {
            entry.0 -= bytes;
            entry.1 -= 1;
            if entry.1 == 0 {
                self.per_peer.remove(peer);
            }
        }
    }

    fn discard(&mut self, key: &(K, String, u16)) {
        if let Some(p) = self.partials.remove(key) {
            self.release(&key.0, p.charged);
        }
    }

    /// Starts a partial message, within the per-peer limit.
    fn open_partial(
        &mut self,
        key: &(K, String, u16),
        now: Instant,
    ) -> Result<(), ReassemblyError> {
        let (_, open) = self.per_peer.get(&key.0).copied().unwrap_or((0, 0));
        if open >= self.limits.max_partials_per_peer {
            return Err(ReassemblyError::TooManyPartials);
        }
        let partial = Partial {
            data: Vec::new(),
            charged: 0,
            meta: None,
            last_seen: now,
        };
        self.partials.insert(key.clone(), partial);
        self.per_peer.entry(key.0.clone()).or_insert((0, 0)).1 += 1;
        Ok(())
    }

    /// A metadata chunk: it must come first, once, and be JSON.
    fn push_meta(
        &mut self,
        key: &(K, String, u16),
        chunk: &ActionChunk<'_>,
        now: Instant,
    ) -> Result<Step, ReassemblyError> {
        let bad_meta = self
            .partials
            .get(key)
            .is_some_and(|p| p.meta.is_some() || !p.data.is_empty());
        let parsed: Option<Value> = serde_json::from_slice(chunk.payload).ok();
        let (false, Some(meta)) = (bad_meta, parsed) else {
            self.discard(key);
            return Err(ReassemblyError::BadMeta);
        };
        if let Some(p) = self.partials.get_mut(key) {
            p.meta = Some(meta.clone());
            p.last_seen = now;
        }
        Ok(Step::Partial {
            action: chunk.action.to_owned(),
            progress: chunk.progress,
            meta: Some(meta),
        })
    }

    /// Feeds one chunk from `peer`.
    pub fn push(
        &mut self,
        peer: &K,
        chunk: &ActionChunk<'_>,
        now: Instant,
    ) -> Result<Step, ReassemblyError> {
        let key = (peer.clone(), chunk.action.to_owned(), chunk.nonce);
        if chunk.is_last() && !chunk.is_meta() && !self.partials.contains_key(&key) {
            return finish(chunk.action, chunk.tag, chunk.payload.to_vec(), None)
                .map(Step::Complete);
        }
        if !self.partials.contains_key(&key) {
            self.open_partial(&key, now)?;
        }
        if chunk.is_meta() {
            return self.push_meta(&key, chunk, now);
        }
        let add = chunk.payload.len();
        let (current, reserved, has_meta) = self.partials.get(&key).map_or((0, 0, false), |p| {
            (p.data.len(), p.charged, p.meta.is_some())
        });
        if current + add > self.limits.max_message || add > CHUNK_PAYLOAD {
            self.discard(&key);
            return Err(ReassemblyError::TooLarge);
        }
        // The buffer this chunk needs, and what reserving it costs: the first data chunk sizes
        // it from its progress byte, later growth doubles it (within the message limit), and
        // the last chunk takes exactly what is missing.
        let need = current + add;
        let room_for = if need <= reserved {
            reserved
        } else if chunk.is_last() {
            need
        } else if reserved == 0 {
            expected_len(chunk, has_meta, self.limits.max_message).max(need)
        } else {
            reserved
                .saturating_mul(2)
                .min(self.limits.max_message)
                .max(need)
        };
        let grow = room_for - reserved;
        let peer_bytes = self.per_peer.get(peer).map_or(0, |e| e.0);
        if peer_bytes + grow > self.limits.max_per_peer || self.total + grow > self.limits.max_total
        {
            self.discard(&key);
            return Err(ReassemblyError::BuffersFull);
        }
        if !self.node.take(grow) {
            self.discard(&key);
            return Err(ReassemblyError::NodeFull);
        }
        self.total += grow;
        if let Some(e) = self.per_peer.get_mut(peer) {
            e.0 += grow;
        }
        if chunk.is_last() {
            let Some(p) = self.partials.remove(&key) else {
                self.node.give(grow);
                self.total -= grow;
                return Err(ReassemblyError::BadPayload);
            };
            self.release(peer, p.charged + grow);
            let mut data = p.data;
            data.reserve_exact(add);
            data.extend_from_slice(chunk.payload);
            return finish(chunk.action, chunk.tag, data, p.meta).map(Step::Complete);
        }
        let meta = match self.partials.get_mut(&key) {
            Some(p) => {
                if room_for > p.data.capacity() {
                    p.data.reserve_exact(room_for - p.data.len());
                }
                p.charged = room_for;
                p.data.extend_from_slice(chunk.payload);
                p.last_seen = now;
                p.meta.clone()
            }
            None => None,
        };
        Ok(Step::Partial {
            action: chunk.action.to_owned(),
            progress: chunk.progress,
            meta,
        })
    }

    /// Discards partial messages idle past the timeout; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let timeout = self.limits.idle_timeout;
        let stale: Vec<_> = self
            .partials
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_seen) >= timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &stale {
            self.discard(key);
        }
        stale.len()
    }

    /// Discards everything buffered for `peer`.
    pub fn forget_peer(&mut self, peer: &K) {
        let keys: Vec<_> = self
            .partials
            .keys()
            .filter(|k| &k.0 == peer)
            .cloned()
            .collect();
        for key in &keys {
            self.discard(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::chunk::{encode_message, encode_payload};
    use super::*;
    use serde_json::json;

    #[test]
    fn first_chunk_sizes_the_buffer_and_a_lying_one_is_bounded() {
        let meta = json!({"name": "f"});
        for len in [CHUNK_PAYLOAD + 1, 65_536, 5 * CHUNK_PAYLOAD, 200_000] {
            for with_meta in [false, true] {
                let chunks = encode_message(
                    "bin",
                    1,
                    &vec![1; len],
                    TAG_BINARY,
                    with_meta.then_some(&meta),
                )
                .expect("encode");
                let first = ActionChunk::decode(&chunks[usize::from(with_meta)]).expect("decode");
                let room = expected_len(&first, with_meta, 64 << 20);
                assert!(
                    room >= len,
                    "{len} bytes, meta {with_meta}: room for {room}"
                );
                assert!(room < len + 2 * CHUNK_PAYLOAD, "{len}: room for {room}");
            }
        }
        let small = encode_message("bin", 1, &[1; 10], TAG_BINARY, None).expect("encode");
        let mut lying = ActionChunk::decode(&small[0]).expect("decode");
        lying.progress = 1;
        assert_eq!(expected_len(&lying, false, 64 << 20), 17 * CHUNK_PAYLOAD);
        assert_eq!(expected_len(&lying, false, 1_000), 1_000);
    }

    fn feed(
        r: &mut Reassembler<u32>,
        peer: u32,
        chunks: &[Vec<u8>],
    ) -> Vec<Result<Step, ReassemblyError>> {
        let now = Instant::now();
        chunks
            .iter()
            .map(|c| r.push(&peer, &ActionChunk::decode(c).expect("valid chunk"), now))
            .collect()
    }

    #[test]
    fn single_chunk_types() {
        let mut r = Reassembler::new(Limits::default());
        for payload in [
            Payload::Text("héllo".into()),
            Payload::Json(json!({"a": [1, 2]})),
            Payload::Json(json!(42)),
            Payload::Binary(bytes::Bytes::from(vec![0, 1, 2])),
        ] {
            let chunks = encode_payload("chat", 0, &payload, None).expect("encodes");
            let out = feed(&mut r, 1, &chunks);
            assert_eq!(
                out.last(),
                Some(&Ok(Step::Complete(Assembled {
                    action: "chat".into(),
                    payload,
                    meta: None
                })))
            );
        }
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn multi_chunk_with_meta_and_interleaving() {
        let mut r = Reassembler::new(Limits::default());
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let a = encode_payload(
            "file",
            0,
            &Payload::Binary(bytes::Bytes::from(big.clone())),
            Some(&json!({"n": 1})),
        )
        .expect("encodes");
        let b =
            encode_payload("file", 1, &Payload::Text("x".repeat(40_000)), None).expect("encodes");
        let now = Instant::now();
        let mut done = Vec::new();
        for i in 0..a.len().max(b.len()) {
            for (peer, set) in [(1u32, &a), (2u32, &b), (1u32, &b)] {
                if let Some(c) = set.get(i) {
                    let chunk = ActionChunk::decode(c).expect("valid");
                    if let Ok(Step::Complete(m)) = r.push(&peer, &chunk, now) {
                        done.push((peer, m));
                    }
                }
            }
        }
        assert_eq!(done.len(), 3);
        let file = done
            .iter()
            .find(|(_, m)| matches!(m.payload, Payload::Binary(_)))
            .expect("binary");
        assert_eq!(file.1.payload, Payload::Binary(bytes::Bytes::from(big)));
        assert_eq!(file.1.meta, Some(json!({"n": 1})));
        assert_eq!(r.buffered(), 0);
        assert_eq!(r.open(), 0);
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_message: 20_000,
            max_partials_per_peer: 2,
            ..Limits::default()
        };
        let mut r = Reassembler::new(limits);
        let chunks =
            encode_message("a", 0, &vec![1; 40_000], TAG_BINARY | TAG_JSON, None).expect("encodes");
        let out = feed(&mut r, 1, &chunks);
        assert!(out.contains(&Err(ReassemblyError::TooLarge)));
        assert_eq!(r.buffered(), 0);
        // Never-ending messages: only two may be open per peer.
        for nonce in 0..3u16 {
            let c = encode_message("b", nonce, &vec![1; 20_000], TAG_BINARY | TAG_JSON, None)
                .expect("encodes");
            let res = feed(&mut r, 1, &c[..1]);
            if nonce < 2 {
                assert!(res[0].is_ok());
            } else {
                assert_eq!(res[0], Err(ReassemblyError::TooManyPartials));
            }
        }
        assert_eq!(r.open(), 2);
        assert_eq!(r.expire(Instant::now() + Duration::from_secs(31)), 2);
        assert_eq!(r.buffered(), 0);
    }

    /// Rooms sharing a node budget: a message that would cross it is dropped on its own
    /// (`NodeFull`), the others complete, and whatever a room still buffers goes back to the
    /// budget when it closes.
    #[test]
    fn a_node_budget_caps_every_room_together_and_drops_only_the_message_over_it() {
        let message = |nonce: u16, len: usize| {
            encode_message("bin", nonce, &vec![nonce as u8; len], TAG_BINARY, None)
                .expect("encodes")
        };
        let reserve = |chunks: &[Vec<u8>]| {
            expected_len(
                &ActionChunk::decode(&chunks[0]).expect("valid"),
                false,
                64 << 20,
            )
        };
        let (a, b, c) = (message(1, 40_000), message(2, 60_000), message(3, 20_000));
        // Room for a and b at once, not for c as well.
        let node = NodeBudget::new(reserve(&a) + reserve(&b) + reserve(&c) / 2);
        let mut one = Reassembler::new(Limits::default()).with_node_budget(node.clone());
        let mut two = Reassembler::new(Limits::default()).with_node_budget(node.clone());
        assert!(
            feed(&mut one, 1, &a[..a.len() - 1])
                .iter()
                .all(Result::is_ok)
        );
        assert!(
            feed(&mut two, 2, &b[..b.len() - 1])
                .iter()
                .all(Result::is_ok)
        );
        assert_eq!(node.used(), one.buffered() + two.buffered());
        assert!(
            one.buffered() >= 40_000 - CHUNK_PAYLOAD,
            "reserved, not received, counts"
        );
        // c in either room is over the node's budget, though far under any room's own.
        assert_eq!(
            feed(&mut two, 3, &c[..1]),
            vec![Err(ReassemblyError::NodeFull)]
        );
        assert_eq!(
            feed(&mut one, 3, &c[..1]),
            vec![Err(ReassemblyError::NodeFull)]
        );
        assert_eq!((one.open(), two.open()), (1, 1), "only c was dropped");
        // a and b complete, whole.
        for (r, peer, chunks, len) in [(&mut one, 1, &a, 40_000), (&mut two, 2, &b, 60_000)] {
            match feed(r, peer, &chunks[chunks.len() - 1..]).pop() {
                Some(Ok(Step::Complete(m))) => {
                    assert_eq!(
                        m.payload,
                        Payload::Binary(bytes::Bytes::from(vec![peer as u8; len]))
                    )
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(node.used(), 0);
        // With the room freed, c goes through; a room closed mid-message gives its bytes back.
        assert!(matches!(
            feed(&mut one, 3, &c).pop(),
            Some(Ok(Step::Complete(_)))
        ));
        assert!(feed(&mut two, 2, &b[..2]).iter().all(Result::is_ok));
        assert!(node.used() > 0);
        drop(two);
        assert_eq!(node.used(), 0);
    }

    #[test]
    fn bad_payloads_are_errors() {
        let mut r = Reassembler::new(Limits::default());
        let c = encode_message("a", 0, b"{not json", TAG_JSON, None).expect("encodes");
        assert_eq!(feed(&mut r, 1, &c)[0], Err(ReassemblyError::BadPayload));
        let c = encode_message("a", 0, &[0xff, 0xfe], 0, None).expect("encodes");
        assert_eq!(feed(&mut r, 1, &c)[0], Err(ReassemblyError::BadPayload));
        let mut c = encode_payload(
            "a",
            0,
            &Payload::Binary(bytes::Bytes::from(vec![1])),
            Some(&json!(1)),
        )
        .expect("encodes");
        c[0].truncate(36);
        c[0].extend_from_slice(b"{{");
        assert_eq!(feed(&mut r, 1, &c)[0], Err(ReassemblyError::BadMeta));
        r.forget_peer(&1);
        assert_eq!(r.open(), 0);
    }
}
