//! Generates the gRPC code from `proto/` with a vendored `protoc`, so a fresh
//! machine builds without a system protobuf compiler, and the proto3 JSON
//! mapping of every message (pbjson) for the HTTP/JSON API.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not when it is built: one compiled script
    // serves every checkout that shares a target directory.
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files: Vec<PathBuf> = ["record", "catalog", "admin", "federation"]
        .iter()
        .map(|name| proto_root.join(format!("meridian/v1/{name}.proto")))
        .collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = out_dir.join("meridian_descriptor.bin");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptors)
        .compile_with_config(config, &files, &[proto_root])?;
    // Every field is written, defaults included, so a JSON client reads one
    // shape whatever the values; unknown fields in input are refused.
    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptors)?)?
        .emit_fields()
        .build(&[".meridian.v1"])?;
    Ok(())
}
