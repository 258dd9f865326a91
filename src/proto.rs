//! Generated types and services of `proto/meshrtc/v1/meshrtc.proto`.
#![allow(missing_docs, clippy::all)]

tonic::include_proto!("meshrtc.v1");
include!(concat!(env!("OUT_DIR"), "/meshrtc.v1.serde.rs"));

/// Encoded file descriptor set, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/meshrtc_descriptor.bin"));
