#![no_main]
//! End-to-end envelopes of password rooms (src/wire/e2e.rs).
//!
//! First byte picks a mode: 0 = open the rest as a received envelope; 1 = seal the rest as
//! raw plaintext with the room key (so the parser behind the AEAD is reached) and open it;
//! 2 = seal (channel, text) split at the first NUL and require it to open again.
use std::sync::LazyLock;

use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use libfuzzer_sys::fuzz_target;
use meshrtc::wire::chunk::Payload;
use meshrtc::wire::e2e::{E2eKey, KDF_ITERATIONS, derive_key, open, seal};

static KEY: LazyLock<E2eKey> = LazyLock::new(|| derive_key("pw", "app", "room"));
/// The same key, rebuilt from e2e.rs's documented KDF, to seal arbitrary plaintext.
static RAW: LazyLock<XChaCha20Poly1305> = LazyLock::new(|| {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
        b"pw",
        b"meshrtc/e2e/v1\0app\0room",
        KDF_ITERATIONS,
        &mut key,
    );
    XChaCha20Poly1305::new((&key).into())
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let _ = open(&KEY, rest);
        }
        1 => {
            let nonce = [0u8; 24];
            let aad = b"meshrtc-e2e-v1";
            let Ok(sealed) =
                RAW.encrypt(XNonce::from_slice(&nonce), AeadPayload { msg: rest, aad })
            else {
                return;
            };
            let envelope = [&[1u8][..], &nonce, &sealed].concat();
            if let Ok((channel, payload, meta)) = open(&KEY, &envelope) {
                let again = open(&KEY, &seal(&KEY, &channel, &payload, meta.as_ref()));
                let Ok((c2, p2, m2)) = again else {
                    panic!("re-sealed envelope does not open: {again:?}");
                };
                assert_eq!(c2, channel);
                assert_eq!(m2.is_some(), meta.is_some());
                // JSON floats may not re-parse bit for bit; text and binary must.
                if !matches!(payload, Payload::Json(_)) {
                    assert_eq!(p2, payload);
                }
            }
        }
        _ => {
            let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let (Ok(channel), Ok(text)) = (
                std::str::from_utf8(&rest[..split]),
                std::str::from_utf8(rest.get(split + 1..).unwrap_or_default()),
            ) else {
                return;
            };
            let payload = Payload::Text(text.to_owned());
            let opened = open(&KEY, &seal(&KEY, channel, &payload, None));
            // seal() keeps at most 255 bytes of channel; room::valid_channel caps apps at 32.
            if channel.len() <= 255 {
                assert_eq!(opened, Ok((channel.to_owned(), payload, None)));
            }
        }
    }
});
