#![no_main]
//! Inventory messages of cells rooms (`@_mrhave`, src/wire/cell.rs) as a peer sends them.
//!
//! Every input is decoded; one that decodes names at most the documented number of frames and
//! re-encodes to exactly the input.
use libfuzzer_sys::fuzz_target;
use meshrtc::wire::cell::{decode_inventory, encode_inventory, MAX_INVENTORY};

fuzz_target!(|data: &[u8]| {
    let Some((kind, ids)) = decode_inventory(data) else {
        return;
    };
    assert!(ids.len() <= MAX_INVENTORY);
    assert_eq!(encode_inventory(kind, &ids), data, "decode/encode is not the identity");
});
