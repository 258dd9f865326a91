#![no_main]
//! Action chunks: decode, check the header fields, re-encode canonical single chunks.
use libfuzzer_sys::fuzz_target;
use meshrtc::wire::chunk::{
    ACTION_NAME_LEN, ActionChunk, CHUNK_SIZE, HEADER_LEN, TAG_BINARY, TAG_JSON, TAG_LAST,
    encode_message,
};

fuzz_target!(|data: &[u8]| {
    let Ok(c) = ActionChunk::decode(data) else {
        return;
    };
    assert!((HEADER_LEN..=CHUNK_SIZE).contains(&data.len()));
    assert!(c.action.len() <= ACTION_NAME_LEN && !c.action.contains('\0'));
    assert_eq!(&data[..c.action.len()], c.action.as_bytes());
    assert_eq!(
        (c.nonce.to_be_bytes(), c.tag, c.progress),
        ([data[32], data[33]], data[34], data[35])
    );
    assert_eq!(c.payload, &data[HEADER_LEN..]);
    // A zero-padded, single, last, non-meta chunk is exactly what the encoder makes.
    let type_bits = c.tag & (TAG_BINARY | TAG_JSON);
    let padded = data[c.action.len()..ACTION_NAME_LEN]
        .iter()
        .all(|&b| b == 0);
    if padded && c.tag == type_bits | TAG_LAST && c.progress == 255 {
        let chunks = encode_message(c.action, c.nonce, c.payload, type_bits, None);
        assert_eq!(chunks, Ok(vec![data.to_vec()]));
    }
});
