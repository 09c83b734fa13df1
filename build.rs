//! Compiles `proto/khulasa/v1/*.proto` with the pure-Rust protox compiler
//! (no system `protoc` needed) and generates tonic/prost code, the encoded
//! descriptor set that server reflection serves, and the messages'
//! canonical JSON mapping (pbjson): the one wire contract of gRPC and JSONL
//! alike. It also lists the analysis data under `models/` (labels, stance,
//! events, focus, fitted) for `include_str!`, so the binary carries its
//! data and runs from any folder (`src/model_dir.rs`).

use std::path::{Path, PathBuf};

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
    let descriptors = fds.encode_to_vec();
    std::fs::write(out.join("khulasa_descriptor.bin"), &descriptors)?;
    // The messages' canonical JSON mapping (serde), which is also the JSONL
    // record of `khulasa analyze`: the proto field names, every field
    // written (a reader sees `truncated: false`, not a missing key).
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .preserve_proto_field_names()
        .emit_fields()
        .build(&[".khulasa.v1"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Undecodable requests are INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::service::codec::StrictCodec")
        .compile_fds(fds)?;
    bundle_data(&out)?;
    Ok(())
}

/// The folders of `models/` that are analysis data (the model weights,
/// fetched beside them, are not).
const DATA_DIRS: &[&str] = &["labels", "stance", "events", "focus", "fitted"];

/// Writes `bundled_data.rs`: a `&[(path, include_str!(...))]` of every
/// data file, paths relative to `models/`.
fn bundle_data(out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("models");
    let mut files = Vec::new();
    for dir in DATA_DIRS {
        println!("cargo:rerun-if-changed=models/{dir}");
        walk(&root, &root.join(dir), &mut files)?;
    }
    files.sort();
    let mut code = String::from("&[\n");
    for rel in &files {
        let abs = root.join(rel);
        code.push_str(&format!(
            "    ({rel:?}, include_str!({:?})),\n",
            abs.display().to_string()
        ));
    }
    code.push_str("]\n");
    std::fs::write(out.join("bundled_data.rs"), code)?;
    Ok(())
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            walk(root, &path, files)?;
        } else if path
            .extension()
            .is_some_and(|x| x == "toml" || x == "json" || x == "tsv")
        {
            let rel = path.strip_prefix(root).expect("under the root");
            let rel: Vec<_> = rel.iter().map(|c| c.to_string_lossy()).collect();
            files.push(rel.join("/"));
        }
    }
    Ok(())
}
