#![no_main]
//! Encrypted SDP text: decrypt hostile text; encrypt/decrypt round-trips.
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use meshrtc::wire::sdp_crypto::{decrypt, encrypt_with_iv, room_key};

static KEY: LazyLock<[u8; 32]> = LazyLock::new(|| room_key("pw", "app", "room"));

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(plain) = decrypt(&KEY, s) {
        let again = encrypt_with_iv(&KEY, &[7; 16], &plain);
        assert_eq!(decrypt(&KEY, &again), Ok(plain));
    }
    // The input as a plaintext (what we send) must come back unchanged.
    if s.len() <= 4096 {
        let sealed = encrypt_with_iv(&KEY, &[9; 16], s);
        assert_eq!(decrypt(&KEY, &sealed).as_deref(), Ok(s));
    }
});
