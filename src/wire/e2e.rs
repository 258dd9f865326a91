//! End-to-end envelope of password rooms: channel, payload and metadata sealed together.
//!
//! Key: PBKDF2-HMAC-SHA256 of the password, salted with app and room, 600,000 iterations.
//! Envelope: version byte, 24-byte random nonce, XChaCha20-Poly1305 ciphertext of
//! `kind | channel length | channel | metadata length (u32 BE) | metadata JSON | payload`.
//! Random 192-bit nonces make reuse practically impossible without any counter state.

use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::Value;

use super::chunk::Payload;

/// PBKDF2 iterations (OWASP 2023 guidance for PBKDF2-HMAC-SHA256).
pub const KDF_ITERATIONS: u32 = 600_000;
/// Envelope format version.
const VERSION: u8 = 1;
/// Associated data binding ciphertexts to this protocol.
const AAD: &[u8] = b"meshrtc-e2e-v1";
/// Envelope nonce length (XChaCha20).
pub const NONCE_LEN: usize = 24;

/// A room's end-to-end key.
#[derive(Clone)]
pub struct E2eKey(XChaCha20Poly1305, [u8; 32]);

impl std::fmt::Debug for E2eKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("E2eKey(..)")
    }
}

/// Why an envelope could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum E2eError {
    /// Wrong version or too short.
    #[error("malformed envelope")]
    Malformed,
    /// Authentication failed: wrong key or tampered.
    #[error("envelope does not authenticate")]
    Decrypt,
}

/// Derives the key of (password, app, room). Slow on purpose: call it off the async runtime.
pub fn derive_key(password: &str, app_id: &str, room_id: &str) -> E2eKey {
    E2eKey::from_bytes(&derive_key_bytes(password, app_id, room_id))
}

impl E2eKey {
    /// The key made of raw bytes from [`derive_key_bytes`].
    pub fn from_bytes(key: &[u8; 32]) -> E2eKey {
        E2eKey(XChaCha20Poly1305::new(key.into()), *key)
    }

    /// The raw key bytes (other keys of the room, such as its history's, derive from them).
    pub fn bytes(&self) -> &[u8; 32] {
        &self.1
    }
}

/// The raw 32 key bytes behind [`derive_key`] (known-answer tests check them).
pub fn derive_key_bytes(password: &str, app_id: &str, room_id: &str) -> [u8; 32] {
    let mut salt = b"meshrtc/e2e/v1\0".to_vec();
    salt.extend_from_slice(app_id.as_bytes());
    salt.push(0);
    salt.extend_from_slice(room_id.as_bytes());
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, KDF_ITERATIONS, &mut key);
    key
}

fn kind_byte(p: &Payload) -> u8 {
    match p {
        Payload::Text(_) => 0,
        Payload::Json(_) => 1,
        Payload::Binary(_) => 2,
    }
}

/// Encodes a channel message as the envelope's plaintext: kind, channel, metadata, body.
pub fn encode_message(channel: &str, payload: &Payload, meta: Option<&Value>) -> Vec<u8> {
    let meta_bytes = meta
        .map(|m| serde_json::to_vec(m).unwrap_or_default())
        .unwrap_or_default();
    let body = payload.as_wire();
    // Channel names are at most 32 bytes; cut longer ones on a character boundary.
    let mut cut = channel.len().min(255);
    while !channel.is_char_boundary(cut) {
        cut -= 1;
    }
    let channel = &channel.as_bytes()[..cut];
    let mut plain = Vec::with_capacity(6 + channel.len() + meta_bytes.len() + body.len());
    plain.push(kind_byte(payload));
    plain.push(channel.len() as u8);
    plain.extend_from_slice(channel);
    plain.extend_from_slice(&(meta_bytes.len() as u32).to_be_bytes());
    plain.extend_from_slice(&meta_bytes);
    plain.extend_from_slice(&body);
    plain
}

/// Decodes what [`encode_message`] wrote into (channel, payload, metadata).
pub fn decode_message(plain: &[u8]) -> Result<(String, Payload, Option<Value>), E2eError> {
    let (&kind, rest) = plain.split_first().ok_or(E2eError::Malformed)?;
    let (&chan_len, rest) = rest.split_first().ok_or(E2eError::Malformed)?;
    let chan_len = chan_len as usize;
    if rest.len() < chan_len + 4 {
        return Err(E2eError::Malformed);
    }
    let channel = std::str::from_utf8(&rest[..chan_len])
        .map_err(|_| E2eError::Malformed)?
        .to_owned();
    let rest = &rest[chan_len..];
    let meta_len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let rest = &rest[4..];
    if rest.len() < meta_len {
        return Err(E2eError::Malformed);
    }
    let meta = if meta_len == 0 {
        None
    } else {
        Some(serde_json::from_slice(&rest[..meta_len]).map_err(|_| E2eError::Malformed)?)
    };
    let body = rest[meta_len..].to_vec();
    let payload = match kind {
        0 => Payload::Text(String::from_utf8(body).map_err(|_| E2eError::Malformed)?),
        1 => Payload::Json(serde_json::from_slice(&body).map_err(|_| E2eError::Malformed)?),
        2 => Payload::Binary(body.into()),
        _ => return Err(E2eError::Malformed),
    };
    Ok((channel, payload, meta))
}

/// Seals a channel message.
pub fn seal(key: &E2eKey, channel: &str, payload: &Payload, meta: Option<&Value>) -> Vec<u8> {
    seal_with_nonce(key, rand::random(), channel, payload, meta)
}

/// Seals with a given nonce. Only [`seal`]'s random nonces are safe to send; this exists so
/// known-answer tests can pin the output.
pub fn seal_with_nonce(
    key: &E2eKey,
    nonce: [u8; NONCE_LEN],
    channel: &str,
    payload: &Payload,
    meta: Option<&Value>,
) -> Vec<u8> {
    let plain = encode_message(channel, payload, meta);
    let sealed = key
        .0
        .encrypt(
            XNonce::from_slice(&nonce),
            AeadPayload {
                msg: &plain,
                aad: AAD,
            },
        )
        .unwrap_or_default();
    let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Opens an envelope into (channel, payload, metadata).
pub fn open(key: &E2eKey, envelope: &[u8]) -> Result<(String, Payload, Option<Value>), E2eError> {
    if envelope.len() < 1 + NONCE_LEN + 16 || envelope[0] != VERSION {
        return Err(E2eError::Malformed);
    }
    let nonce = XNonce::from_slice(&envelope[1..1 + NONCE_LEN]);
    let plain = key
        .0
        .decrypt(
            nonce,
            AeadPayload {
                msg: &envelope[1 + NONCE_LEN..],
                aad: AAD,
            },
        )
        .map_err(|_| E2eError::Decrypt)?;
    decode_message(&plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::OnceLock;

    fn keys() -> &'static (E2eKey, E2eKey) {
        static KEYS: OnceLock<(E2eKey, E2eKey)> = OnceLock::new();
        KEYS.get_or_init(|| {
            (
                derive_key("pw", "app", "room"),
                derive_key("pw", "app", "other-room"),
            )
        })
    }

    #[test]
    fn round_trip_every_kind() {
        let (k, _) = keys();
        for (p, m) in [
            (Payload::Text("héllo".into()), None),
            (Payload::Json(json!({"a": [1, 2]})), None),
            (
                Payload::Binary(bytes::Bytes::from(vec![0, 1, 255])),
                Some(json!({"name": "f"})),
            ),
        ] {
            let env = seal(k, "chat", &p, m.as_ref());
            assert_eq!(open(k, &env), Ok(("chat".to_string(), p, m)));
        }
    }

    #[test]
    fn nothing_readable_and_nonces_differ() {
        let (k, _) = keys();
        let p = Payload::Text("top secret words".into());
        let a = seal(k, "secret-channel", &p, None);
        let b = seal(k, "secret-channel", &p, None);
        assert_ne!(a[1..25], b[1..25], "nonce reused");
        for needle in [&b"top secret"[..], b"secret-channel"] {
            assert!(
                !a.windows(needle.len()).any(|w| w == needle),
                "plaintext visible in the envelope"
            );
        }
    }

    #[test]
    fn tampering_and_wrong_keys_fail() {
        let (k, other) = keys();
        let mut env = seal(k, "chat", &Payload::Text("x".into()), None);
        assert_eq!(
            open(other, &env),
            Err(E2eError::Decrypt),
            "salt must bind the room"
        );
        let last = env.len() - 1;
        env[last] ^= 1;
        assert_eq!(open(k, &env), Err(E2eError::Decrypt));
        assert_eq!(open(k, &[1, 2, 3]), Err(E2eError::Malformed));
        assert_eq!(open(k, &[9; 64]), Err(E2eError::Malformed));
    }

    /// Known answer computed outside this crate (Python's hashlib PBKDF2 and libsodium's
    /// XChaCha20-Poly1305 through PyNaCl), so a change to the salt, the iteration count, the
    /// associated data or the plaintext layout breaks compatibility visibly.
    #[test]
    fn known_answer_key_and_envelope() {
        let key = derive_key_bytes("correct horse battery staple", "kat-app", "kat-room");
        assert_eq!(
            hex(&key),
            "44803602137d304026e6473085f4dd99fe5d3d0b5d5f918ba23f558795d39f5a"
        );
        let key = derive_key("correct horse battery staple", "kat-app", "kat-room");
        let mut nonce = [0u8; NONCE_LEN];
        for (i, b) in nonce.iter_mut().enumerate() {
            *b = i as u8;
        }
        let meta = json!({"name": "a"});
        let env = seal_with_nonce(
            &key,
            nonce,
            "chat",
            &Payload::Json(json!({"n": 1})),
            Some(&meta),
        );
        let expected = "01000102030405060708090a0b0c0d0e0f10111213141516176aa0b63e912375ac4385\
                        bfef2ed2c138494788a10bee96a326aab3e06931e50d9dfe1c4e558971382a754b1f68";
        assert_eq!(hex(&env), expected);
        let (channel, payload, got_meta) = open(&key, &env).expect("opens");
        assert_eq!(channel, "chat");
        assert_eq!(payload, Payload::Json(json!({"n": 1})));
        assert_eq!(got_meta, Some(meta));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
