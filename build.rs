//! Compiles the API proto with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/meshrtc/v1/meshrtc.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor = out.join("meshrtc_descriptor.bin");
    std::fs::write(&descriptor, prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure()
        // Payloads and RTP packets as `Bytes`: decoding slices them out of the receive buffer
        // instead of copying each into a fresh Vec, and clones are free.
        .bytes(".")
        .file_descriptor_set_path(&descriptor)
        .skip_protoc_run()
        .compile_fds(fds)?;
    // serde impls following the proto3 JSON mapping, for the WebSocket bridge.
    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptor)?)?
        .build(&[".meshrtc.v1"])?;
    Ok(())
}
