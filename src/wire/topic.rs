//! Topic strings, event kinds and room tokens, exactly as Trystero 0.25.4 derives them.

use sha1::{Digest as _, Sha1};
use sha2::Sha256;

/// The 62-symbol alphabet Trystero draws peer ids from.
pub const PEER_ID_ALPHABET: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Length of a Trystero peer id.
pub const PEER_ID_LEN: usize = 20;

/// Writes `n` in base 36 with lowercase digits and no padding, like JavaScript's `toString(36)`.
fn base36(mut n: u8, out: &mut String) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buf = [0u8; 2];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(n % 36) as usize];
        n /= 36;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(b as char);
    }
}

/// Trystero's "sha1 topic": each SHA-1 byte of `input` in base 36, concatenated.
pub fn sha1_topic(input: &str) -> String {
    let digest = Sha1::digest(input.as_bytes());
    let mut out = String::with_capacity(40);
    for b in digest {
        base36(b, &mut out);
    }
    out
}

/// The topic every member of a room announces on.
pub fn root_topic(app_id: &str, room_id: &str) -> String {
    sha1_topic(&format!("Trystero@{app_id}@{room_id}"))
}

/// The topic a peer receives offers, answers and candidates on.
pub fn self_topic(app_id: &str, room_id: &str, peer_id: &str) -> String {
    sha1_topic(&format!("Trystero@{app_id}@{room_id}@{peer_id}"))
}

/// The Nostr event kind used for a topic: 20000 + (sum of UTF-16 code units) mod 10000.
pub fn topic_kind(topic: &str) -> u16 {
    let sum: u64 = topic.encode_utf16().map(u64::from).sum();
    20_000 + (sum % 10_000) as u16
}

/// The room token that prefixes data frames: hex SHA-256 of `Trystero:app:room`.
pub fn room_token(app_id: &str, room_id: &str) -> String {
    hex::encode(Sha256::digest(
        format!("Trystero:{app_id}:{room_id}").as_bytes(),
    ))
}

/// Whether `id` looks like a Trystero peer id (20 symbols of the alphabet).
pub fn is_valid_peer_id(id: &str) -> bool {
    id.len() == PEER_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Maps bytes onto `len` symbols of the peer-id alphabet (rejection sampling, no bias).
pub fn id_from_bytes(bytes: &[u8], len: usize) -> Option<String> {
    let out: String = bytes
        .iter()
        .filter(|&&b| b < 248) // 248 = 4 * 62: keeps the mapping uniform
        .take(len)
        .map(|&b| PEER_ID_ALPHABET[(b % 62) as usize] as char)
        .collect();
    (out.len() == len).then_some(out)
}

/// A fresh random id of `len` alphabet symbols (offer ids, challenge ids).
pub fn random_id(len: usize) -> String {
    random_id_from(&mut rand::thread_rng(), len)
}

/// [`random_id`] drawn from a given generator (a seeded one makes it reproducible).
pub fn random_id_from(rng: &mut impl rand::Rng, len: usize) -> String {
    (0..len)
        .map(|_| PEER_ID_ALPHABET[rng.gen_range(0..62)] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_topic_vector() {
        let t = root_topic("san_narciso_3d", "yoyodyne");
        assert_eq!(t, "i0aen1b2o614w3517243645a3o2p2fmh");
        assert_eq!(topic_kind(&t), 22349);
    }

    #[test]
    fn room_token_vector() {
        assert_eq!(
            room_token("san_narciso_3d", "yoyodyne"),
            "e3fbab117053e1adef77010f67d1dd136b26dd2caf65a45cf11b813c2b5b68b6"
        );
    }

    #[test]
    fn base36_matches_javascript() {
        let mut s = String::new();
        for n in [0u8, 9, 10, 35, 36, 255] {
            base36(n, &mut s);
            s.push('|');
        }
        assert_eq!(s, "0|9|a|z|10|73|");
    }

    #[test]
    fn peer_ids() {
        assert!(is_valid_peer_id("abcdefghij0123456789"));
        assert!(!is_valid_peer_id("abcdefghij012345678"));
        assert!(!is_valid_peer_id("abcdefghij012345678-"));
        let id = id_from_bytes(&[0u8; 32], 20).expect("enough bytes");
        assert_eq!(id, "00000000000000000000");
        assert!(id_from_bytes(&[250u8; 32], 20).is_none());
        assert!(is_valid_peer_id(&random_id(20)));
    }
}
