#![no_main]
//! Durable-channel messages (`@_mrhist`, src/wire/history.rs) as a peer sends them.
//!
//! Every input is decoded; one that decodes must re-encode to bytes that decode to the same
//! message (the encoding is canonical for what it carries).
use libfuzzer_sys::fuzz_target;
use meshrtc::wire::history::HistMsg;

fuzz_target!(|data: &[u8]| {
    let Some(msg) = HistMsg::decode(data) else {
        return;
    };
    let again = HistMsg::decode(&msg.encode());
    assert_eq!(again.as_ref(), Some(&msg), "encode/decode lost something");
});
