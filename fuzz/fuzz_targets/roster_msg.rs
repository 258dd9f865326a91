#![no_main]
//! Roster sync messages of cells rooms (`@_mrroster`, src/wire/roster.rs) as a peer sends them.
//!
//! Every input is decoded; one that decodes must survive an encode/decode round trip, and each
//! record it carries is verified and its MAC checked (which must not panic, whatever the key,
//! signature and MAC bytes).
use libfuzzer_sys::fuzz_target;
use meshrtc::wire::roster::{mac_key, RosterMsg, RosterRecord, MAC_LEN, RECORD_LEN};

const ROOM_SALT: &[u8] = b"fuzz-room-salt";
const ROOM_KEY: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    if data.len() == RECORD_LEN || data.len() == RECORD_LEN + MAC_LEN {
        if let Some(r) = RosterRecord::decode(data) {
            let _ = r.verify(ROOM_SALT);
            let _ = r.mac_holds(&mac_key(&ROOM_KEY));
        }
    }
    let Some(msg) = RosterMsg::decode(data) else {
        return;
    };
    let again = RosterMsg::decode(&msg.encode());
    assert_eq!(again.as_ref(), Some(&msg), "encode/decode lost something");
    if let RosterMsg::Records { records, .. } = &msg {
        for r in records {
            let _ = r.verify(ROOM_SALT);
            let _ = r.mac_holds(&mac_key(&ROOM_KEY));
        }
    }
});
