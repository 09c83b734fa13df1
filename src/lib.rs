//! khulasa: main-story isolation, topic, stance and focused extractive
//! summaries for Arabic security news, served over gRPC.
//!
//! This package is the binary and its glue: the command line (`src/main.rs`),
//! the per-article pipeline and its JSON contract ([`pipeline`]), reading
//! inputs ([`inputs`]), the dev-set evaluation ([`eval`]), the generated
//! protobuf types ([`proto`]) and the model-folder defaults ([`model_dir`]). The model layer lives in `crates/` (see ARCHITECTURE.md).
#![deny(missing_docs)]

pub mod api;
pub mod archive;
pub mod eval;
pub mod fuzzing;
pub mod http;
pub mod inputs;
pub mod metrics;
pub mod model_dir;
pub mod ninjs;
pub mod pipeline;
pub mod record;
pub mod request;
pub mod service;
pub mod telemetry;

/// Types and service stubs generated from `proto/khulasa/v1/*.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("khulasa.v1");
    // The canonical JSON mapping of every message (`build.rs`, pbjson).
    include!(concat!(env!("OUT_DIR"), "/khulasa.v1.serde.rs"));

    /// The encoded descriptor set of every khulasa proto, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/khulasa_descriptor.bin"));

    impl From<&khulasa_embed::ModelInfo> for ModelInfo {
        fn from(m: &khulasa_embed::ModelInfo) -> Self {
            Self {
                id: m.id.clone(),
                architecture: m.architecture.clone(),
                dim: m.dim as u32,
                max_tokens: m.max_tokens as u32,
                device: m.device.clone(),
                query_prefix: m.query_prefix.clone(),
                passage_prefix: m.passage_prefix.clone(),
            }
        }
    }
}
