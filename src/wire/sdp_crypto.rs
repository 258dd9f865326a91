//! AES-GCM encryption of SDP and candidates, in Trystero's text form `iv,iv,...$base64`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest as _, Sha256};

/// Trystero uses a 16-byte IV, not the usual 12.
type Cipher = AesGcm<Aes256, aes_gcm::aead::consts::U16>;

/// Length of the IV Trystero writes before the `$`.
pub const IV_LEN: usize = 16;

/// Largest encrypted text we attempt to decrypt (an SDP is a few KiB).
pub const MAX_TEXT_LEN: usize = 64 * 1024;

/// Why an encrypted signaling field could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpCryptoError {
    /// The text is not `iv$base64`.
    #[error("malformed encrypted text")]
    Malformed,
    /// The text is larger than any SDP we accept.
    #[error("encrypted text too large")]
    TooLarge,
    /// Authentication failed: wrong password or tampered data.
    #[error("decryption failed (wrong password or tampered)")]
    Decrypt,
    /// The plaintext is not UTF-8.
    #[error("plaintext is not UTF-8")]
    NotUtf8,
}

/// The raw AES-256 key of a room: SHA-256(`password:appId:roomId`).
pub fn room_key(password: &str, app_id: &str, room_id: &str) -> [u8; 32] {
    Sha256::digest(format!("{password}:{app_id}:{room_id}").as_bytes()).into()
}

/// Encrypts `plaintext` with a given IV (tests) into Trystero's text form.
pub fn encrypt_with_iv(key: &[u8; 32], iv: &[u8; IV_LEN], plaintext: &str) -> String {
    let cipher = Cipher::new(key.into());
    // Encryption into a Vec cannot fail for inputs of this size.
    let sealed = cipher
        .encrypt(Nonce::from_slice(iv), plaintext.as_bytes())
        .unwrap_or_default();
    let iv_text: Vec<String> = iv.iter().map(u8::to_string).collect();
    format!("{}${}", iv_text.join(","), B64.encode(sealed))
}

/// Encrypts `plaintext` with a fresh random IV.
pub fn encrypt(key: &[u8; 32], plaintext: &str) -> String {
    let iv: [u8; IV_LEN] = rand::random();
    encrypt_with_iv(key, &iv, plaintext)
}

/// Decrypts Trystero's text form.
pub fn decrypt(key: &[u8; 32], text: &str) -> Result<String, SdpCryptoError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(SdpCryptoError::TooLarge);
    }
    let (iv_text, data) = text.split_once('$').ok_or(SdpCryptoError::Malformed)?;
    let mut iv = [0u8; IV_LEN];
    let mut parts = iv_text.split(',');
    for slot in iv.iter_mut() {
        let part = parts.next().ok_or(SdpCryptoError::Malformed)?;
        *slot = part.trim().parse().map_err(|_| SdpCryptoError::Malformed)?;
    }
    if parts.next().is_some() {
        return Err(SdpCryptoError::Malformed);
    }
    let sealed = B64.decode(data).map_err(|_| SdpCryptoError::Malformed)?;
    let cipher = Cipher::new(key.into());
    let plain = cipher
        .decrypt(Nonce::from_slice(&iv), sealed.as_slice())
        .map_err(|_| SdpCryptoError::Decrypt)?;
    String::from_utf8(plain).map_err(|_| SdpCryptoError::NotUtf8)
}

/// The `@_hsdata` response hash: hex SHA-256(`c:password:appId:roomId`).
pub fn password_proof(challenge: &str, password: &str, app_id: &str, room_id: &str) -> String {
    hex::encode(Sha256::digest(
        format!("{challenge}:{password}:{app_id}:{room_id}").as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_password_key_vector() {
        assert_eq!(
            hex::encode(room_key("", "san_narciso_3d", "yoyodyne")),
            "0864755233260b1472542e663a3706e36715329954245c9911dc6bd1dab0e260"
        );
    }

    #[test]
    fn round_trip_and_text_form() {
        let key = room_key("pw", "app", "room");
        let iv = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 255];
        let text = encrypt_with_iv(&key, &iv, "v=0\r\n");
        assert!(text.starts_with("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,255$"));
        // 5 bytes of ciphertext + 16 bytes of tag.
        let b64 = text.split_once('$').map(|(_, b)| b).unwrap_or_default();
        assert_eq!(B64.decode(b64).map(|v| v.len()), Ok(21));
        assert_eq!(decrypt(&key, &text).as_deref(), Ok("v=0\r\n"));
        assert_eq!(decrypt(&key, &encrypt(&key, "x")).as_deref(), Ok("x"));
    }

    #[test]
    fn wrong_key_and_garbage_are_errors() {
        let key = room_key("pw", "app", "room");
        let other = room_key("nope", "app", "room");
        let text = encrypt(&key, "secret");
        assert_eq!(decrypt(&other, &text), Err(SdpCryptoError::Decrypt));
        assert_eq!(decrypt(&key, "nonsense"), Err(SdpCryptoError::Malformed));
        assert_eq!(decrypt(&key, "1,2$AAAA"), Err(SdpCryptoError::Malformed));
        assert_eq!(
            decrypt(&key, "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,999$AAAA"),
            Err(SdpCryptoError::Malformed)
        );
        assert_eq!(
            decrypt(&key, "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0$!!!"),
            Err(SdpCryptoError::Malformed)
        );
        assert_eq!(
            decrypt(&key, "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0$AAAA"),
            Err(SdpCryptoError::Decrypt)
        );
    }

    #[test]
    fn proof_is_hex_sha256() {
        let p = password_proof("c", "pw", "a", "r");
        assert_eq!(p.len(), 64);
        assert_eq!(p, hex::encode(Sha256::digest(b"c:pw:a:r")));
    }
}
