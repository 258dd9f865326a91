//! Generated types and services of `proto/meshrtc/v1/meshrtc.proto`.
#![allow(missing_docs, clippy::all)]

tonic::include_proto!("meshrtc.v1");
include!(concat!(env!("OUT_DIR"), "/meshrtc.v1.serde.rs"));

/// Encoded file descriptor set, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/meshrtc_descriptor.bin"));

impl LayerState {
    /// The state of a `LinkHealth` layer field as a lowercase word ("connected"); an unknown
    /// number reads "unknown".
    pub fn word_of(state: i32) -> String {
        LayerState::try_from(state)
            .unwrap_or(LayerState::Unknown)
            .as_str_name()
            .trim_start_matches("LAYER_STATE_")
            .to_lowercase()
    }
}

impl std::fmt::Display for LinkHealth {
    /// One line: each layer's state, where bytes wait, and what crossed the channel.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ice {} dtls {} sctp {} channel {}, {} B buffered in SCTP of a {} B window, \
             {} frames queued, sent {} msgs / {} B, received {} msgs / {} B",
            LayerState::word_of(self.ice),
            LayerState::word_of(self.dtls),
            LayerState::word_of(self.sctp),
            LayerState::word_of(self.channel),
            self.buffered_bytes,
            self.window_bytes,
            self.queued_frames,
            self.messages_sent,
            self.bytes_sent,
            self.messages_received,
            self.bytes_received
        )
    }
}
