//! Compiles `proto/khulasa/v1/*.proto` with the pure-Rust protox compiler
//! (no system `protoc` needed) and generates tonic/prost code, plus the
//! encoded descriptor set that server reflection serves.

use std::path::PathBuf;

use protox::prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("proto/khulasa/v1");
    let mut protos: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    protos.sort();
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(&protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("khulasa_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Undecodable requests are INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::service::codec::StrictCodec")
        .compile_fds(fds)?;
    Ok(())
}
