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
