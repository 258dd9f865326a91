#![no_main]
//! WebSocket bridge requests: JSON text frames and binary protobuf frames.
use axum::body::Bytes;
use axum::extract::ws::Message;
use libfuzzer_sys::fuzz_target;
use meshrtc::api::ws::decode_client_message;
use meshrtc::proto::ClientMessage;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    if let Some(Ok(m)) = decode_client_message(&Message::Binary(Bytes::copy_from_slice(data))) {
        let again = ClientMessage::decode(m.encode_to_vec().as_slice());
        assert_eq!(again.as_ref(), Ok(&m), "protobuf must round-trip");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(Ok(m)) = decode_client_message(&Message::Text(text.into())) {
        let json = serde_json::to_string(&m).expect("ClientMessage serializes");
        let again: Result<ClientMessage, _> = serde_json::from_str(&json);
        assert_eq!(
            again.as_ref().ok(),
            Some(&m),
            "JSON must round-trip: {json}"
        );
    }
});
