//! Shared set-up for tests that run the real default model.

#![allow(dead_code)]

pub mod raw;
pub mod server;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

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

/// The default model with default options, loaded once for the whole test
/// binary and shared by every test that does not need options of its own.
fn shared() -> &'static Arc<CandleEncoder> {
    static ENCODER: OnceLock<Arc<CandleEncoder>> = OnceLock::new();
    ENCODER.get_or_init(|| Arc::new(load_encoder(&LoadOptions::default())))
}

/// The shared default model, to hand to an `Analyzer` or a batcher.
pub fn shared_encoder() -> Arc<CandleEncoder> {
    shared().clone()
}

/// The shared default model, borrowed.
pub fn encoder() -> &'static CandleEncoder {
    shared()
}
