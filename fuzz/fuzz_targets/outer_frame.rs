#![no_main]
//! Outer data-channel frames: decode, and re-encode what decodes.
use libfuzzer_sys::fuzz_target;
use meshrtc::wire::frame::{
    MAX_TOKEN_LEN, OuterFrame, encode_ack, encode_base, encode_data, encode_presence,
    encode_tracked,
};

fuzz_target!(|data: &[u8]| {
    match OuterFrame::decode(data) {
        Ok(OuterFrame::Data { token, chunk }) => {
            assert!(token.len() <= MAX_TOKEN_LEN);
            if let Ok(t) = std::str::from_utf8(token) {
                assert_eq!(encode_data(t, chunk), data, "data frame must round-trip");
            }
        }
        Ok(OuterFrame::Presence { joined, token }) => {
            assert!(token.len() <= MAX_TOKEN_LEN);
            if let Ok(t) = std::str::from_utf8(token) {
                let again = encode_presence(t, joined);
                assert_eq!(
                    OuterFrame::decode(&again),
                    Ok(OuterFrame::Presence { joined, token })
                );
                // Any non-zero flag means "joined"; canonical flags re-encode byte for byte.
                if data[1] <= 1 {
                    assert_eq!(again, data, "presence frame must round-trip");
                }
            }
        }
        Ok(OuterFrame::Tracked {
            epoch,
            seq,
            last,
            inner,
        }) => {
            assert!(matches!(
                OuterFrame::decode(inner),
                Ok(OuterFrame::Data { .. }) | Err(_)
            ));
            // Flags other than "last" are ignored; canonical ones re-encode byte for byte.
            if data[1] <= 1 {
                assert_eq!(encode_tracked(epoch, seq, last, inner), data);
            }
        }
        Ok(OuterFrame::Ack { epoch, upto }) => assert_eq!(encode_ack(epoch, upto), data),
        Ok(OuterFrame::Base { epoch, next }) => assert_eq!(encode_base(epoch, next), data),
        Err(_) => {}
    }
});
