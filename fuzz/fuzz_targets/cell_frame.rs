#![no_main]
//! Signed cell frames of the overlay (src/wire/cell.rs), as a hop receives them.
//!
//! Every input is decoded and, when it decodes, verified against a fixed room salt; a frame
//! that decodes must re-encode to the input bytes (unknown flag bits aside); one that verifies
//! must still verify after the hop fields (flags, hops) change, which are outside the signature,
//! and must not once its signed hop limit (`max_hops`) is raised.
use libfuzzer_sys::fuzz_target;
use meshrtc::wire::cell::CellFrame;

const ROOM_SALT: &[u8] = b"fuzz-room-salt";

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = CellFrame::decode(data) else {
        return;
    };
    // Flag bits other than the fan-out bit are ignored, so they do not come back.
    let mut expected = data.to_vec();
    expected[1] &= 1;
    assert_eq!(
        frame.encode(),
        expected,
        "decode/encode is not the identity"
    );
    if frame.verify(ROOM_SALT).is_ok() {
        let mut hop = frame.clone();
        hop.hops = hop.hops.wrapping_add(1);
        hop.fanout = !hop.fanout;
        assert!(
            hop.verify(ROOM_SALT).is_ok(),
            "hop fields broke the signature"
        );
        let mut raised = frame.clone();
        raised.max_hops = raised.max_hops.wrapping_add(1);
        assert!(
            raised.verify(ROOM_SALT).is_err(),
            "the hop limit is outside the signature"
        );
    }
});
