//! Shared set-up for tests that run the real default model.

#![allow(dead_code)]

pub mod raw;
pub mod server;

use std::path::PathBuf;
use std::sync::OnceLock;

use khulasa_candle::{CandleEncoder, LoadOptions};

/// The default model folder, which `scripts/test` fetches before testing.
pub fn model_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/multilingual-e5-small");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run `scripts/test` (it fetches the model first) or \
         `cargo run -- model fetch`",
        dir.display()
    );
    dir
}

/// Loads the default model with `options`.
pub fn load_encoder(options: &LoadOptions) -> CandleEncoder {
    CandleEncoder::load(&model_dir(), options).expect("the default model loads")
}

/// The default model with default options, loaded once per test binary.
pub fn encoder() -> &'static CandleEncoder {
    static ENCODER: OnceLock<CandleEncoder> = OnceLock::new();
    ENCODER.get_or_init(|| load_encoder(&LoadOptions::default()))
}
