//! Runs Hugging Face transformer encoders with Candle: the only crate in
//! khulasa that names a Candle type.
//!
//! [`CandleEncoder::load`] reads a model folder (`config.json`,
//! `tokenizer.json`, `model.safetensors`, mmapped) of the BERT or XLM-RoBERTa
//! family and implements [`khulasa_embed::TextEncoder`]: texts are tokenized
//! with the model's prompt, split into overlapping windows when longer than
//! the model takes, packed into length-sorted batches under a token budget,
//! run, and pooled (mean over the attention mask, or CLS) and L2-normalised.
//! It can also return each token's final state with its byte span, so a
//! caller pools sentence vectors from one pass over a whole article.
#![deny(missing_docs)]

mod config;
mod embedding;
mod model;
mod ops;

use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use khulasa_embed::{
    EncodeError, InputKind, ModelInfo, StopToken, TextEncoder, TokenSpan, TokenStates,
};
pub use khulasa_tokenize::Backend as TokenizerBackend;
use khulasa_tokenize::Tokenizer;

pub use config::{Architecture, FolderConfig, Pooling};
use model::Backbone;
pub use model::MatmulWeights;

/// Errors while loading a model folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A metadata file is malformed or says something unsupported.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The folder holds a model family khulasa cannot run.
    #[error(
        "{}: unsupported architecture ({found}); khulasa runs BERT and XLM-RoBERTa encoders",
        path.display()
    )]
    UnsupportedArchitecture {
        /// What `config.json` says.
        found: String,
        /// The config file.
        path: PathBuf,
    },
    /// A required file is absent.
    #[error("{} has no {file}{hint}", dir.display())]
    MissingFile {
        /// The folder.
        dir: PathBuf,
        /// The missing file.
        file: String,
        /// Advice, e.g. what other weight files were found.
        hint: String,
    },
    /// The tokenizer could not be loaded or does not fit the model.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The device string is not understood or the device is not available.
    #[error("device {0}")]
    Device(String),
    /// The weights do not match the configuration.
    #[error("loading weights from {}: {message}", path.display())]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// Candle's message.
        message: String,
    },
}

/// How to load and run a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `cpu`, `cuda`, `cuda:N` or `metal`.
    pub device: String,
    /// Most (padded) tokens in one forward pass; bounds memory. The default,
    /// 2,048, measured the same speed as 8,192 with 170 MiB less peak RSS
    /// while serving (docs/performance.md).
    pub token_budget: usize,
    /// Tokens shared by consecutive windows of a long text.
    pub window_overlap: usize,
    /// Which tokenizer implementation runs `tokenizer.json`: by default the
    /// compact SentencePiece one where it applies (same ids, ~280 MB less
    /// memory for XLM-R vocabularies).
    pub tokenizer: TokenizerBackend,
    /// How the layers' weight matrices are kept: f32 (default, exact) or
    /// Candle's quantised Q8_0/Q4_0 blocks (see docs/performance.md for
    /// their speed and accuracy).
    pub matmul_weights: MatmulWeights,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: "cpu".to_string(),
            token_budget: 2048,
            window_overlap: 64,
            tokenizer: TokenizerBackend::Auto,
            matmul_weights: MatmulWeights::F32,
        }
    }
}

/// A transformer encoder loaded from a model folder, run with Candle.
pub struct CandleEncoder {
    backbone: Backbone,
    tokenizer: Tokenizer,
    device: Device,
    info: ModelInfo,
    pooling: Pooling,
    pad_id: u32,
    /// Special tokens before and after the content of every window.
    head: Vec<u32>,
    tail: Vec<u32>,
    token_budget: usize,
    window_overlap: usize,
}

/// One text made ready for windowing.
struct Prepared {
    /// Prompt tokens, repeated at the start of every window.
    prompt: Vec<u32>,
    /// Content token ids.
    ids: Vec<u32>,
    /// Byte span of each content token in the caller's text.
    spans: Vec<TokenSpan>,
}

/// Least share of real (not padding) tokens in a forward pass.
const MIN_FILL: f32 = 0.75;

/// One forward-pass row: a window of one text.
struct Job {
    text: usize,
    /// The content tokens of the text this window covers.
    content: Range<usize>,
    ids: Vec<u32>,
}

impl CandleEncoder {
    /// Loads the model folder `dir`.
    pub fn load(dir: &Path, options: &LoadOptions) -> Result<Self, LoadError> {
        let cfg = FolderConfig::read(dir)?;
        let device = parse_device(&options.device)?;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            let others: Vec<String> = ["pytorch_model.bin", "model.onnx", "tf_model.h5"]
                .iter()
                .filter(|f| dir.join(f).is_file())
                .map(|f| f.to_string())
                .collect();
            let hint = if others.is_empty() {
                String::new()
            } else {
                format!(
                    " (found {}; convert it to safetensors first)",
                    others.join(", ")
                )
            };
            return Err(LoadError::MissingFile {
                dir: dir.to_path_buf(),
                file: "model.safetensors".into(),
                hint,
            });
        }
        let tokenizer_path = dir.join("tokenizer.json");
        if !tokenizer_path.is_file() {
            return Err(LoadError::MissingFile {
                dir: dir.to_path_buf(),
                file: "tokenizer.json".into(),
                hint: String::new(),
            });
        }
        // Windowing and batching are ours: the tokenizer neither cuts nor
        // pads, and says which special tokens go around a window.
        let tokenizer = Tokenizer::from_file(&tokenizer_path, options.tokenizer)
            .map_err(|e| LoadError::Tokenizer(e.to_string()))?;
        let (head, tail) = tokenizer.special_tokens();
        let (head, tail) = (head.to_vec(), tail.to_vec());

        // SAFETY: the weights file is mmapped read-only; khulasa never writes
        // it, and a model folder that is modified while served is documented
        // as unsupported.
        let weights_error = |message: String| LoadError::Weights {
            path: weights.clone(),
            message,
        };
        let mapped = unsafe { candle_core::safetensors::MmapedSafetensors::new(&weights) }
            .map_err(|e| weights_error(e.to_string()))?;
        let words = {
            let tensors = mapped.tensors();
            let name = model::word_embeddings_name(tensors.iter().map(|(n, _)| n.as_str()))
                .ok_or_else(|| weights_error("no embeddings.word_embeddings.weight".into()))?;
            let view = mapped
                .get(&name)
                .map_err(|e| weights_error(e.to_string()))?;
            embedding::WordTable::load(&view, &device).map_err(|e| weights_error(e.to_string()))?
        };
        let vb = VarBuilder::from_backend(Box::new(mapped), DType::F32, device.clone());
        let backbone = Backbone::load(&cfg, vb, words, options.matmul_weights)
            .map_err(|e| weights_error(e.to_string()))?;

        let id = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let info = ModelInfo {
            id,
            architecture: cfg.architecture.name().to_string(),
            dim: cfg.hidden_size,
            max_tokens: cfg.max_tokens,
            device: options.device.clone(),
            query_prefix: cfg.query_prefix.clone(),
            passage_prefix: cfg.passage_prefix.clone(),
        };
        let encoder = Self {
            backbone,
            tokenizer,
            device,
            info,
            pooling: cfg.pooling,
            pad_id: cfg.pad_token_id,
            head,
            tail,
            token_budget: options.token_budget.max(cfg.max_tokens),
            window_overlap: options.window_overlap,
        };
        if encoder.content_budget(&encoder.prompt_ids(InputKind::Passage)?) < 16 {
            return Err(LoadError::Tokenizer(format!(
                "the prompt leaves fewer than 16 of {} tokens for text",
                cfg.max_tokens
            )));
        }
        tracing::info!(
            model = %encoder.info.id,
            architecture = %encoder.info.architecture,
            dim = encoder.info.dim,
            max_tokens = encoder.info.max_tokens,
            device = %encoder.info.device,
            tokenizer = encoder.tokenizer.implementation(),
            "encoder loaded"
        );
        Ok(encoder)
    }

    /// The content-token windows `embed` would use for `text`, as byte
    /// ranges of `text` (one range when the text fits in one pass).
    pub fn windows(&self, text: &str, kind: InputKind) -> Result<Vec<Range<usize>>, EncodeError> {
        let p = self.prepare(text, kind)?;
        Ok(self
            .window_ranges(&p)
            .into_iter()
            .filter(|w| !w.is_empty())
            .map(|w| p.spans[w.start].start..p.spans[w.end - 1].end)
            .collect())
    }

    /// Number of tokens (prompt and special tokens included, before
    /// windowing) that `text` takes.
    pub fn count_tokens(&self, text: &str, kind: InputKind) -> Result<usize, EncodeError> {
        let p = self.prepare(text, kind)?;
        Ok(self.head.len() + p.prompt.len() + p.ids.len() + self.tail.len())
    }

    /// The full token ids of `text` as the model sees them when it fits one
    /// window (special tokens and prompt included).
    pub fn token_ids(&self, text: &str, kind: InputKind) -> Result<Vec<u32>, EncodeError> {
        let p = self.prepare(text, kind)?;
        Ok(self.sequence(&p, 0..p.ids.len()))
    }

    fn prompt_ids(&self, kind: InputKind) -> Result<Vec<u32>, LoadError> {
        let prefix = self.info.prefix(kind).trim_end();
        if prefix.is_empty() {
            return Ok(Vec::new());
        }
        let enc = self
            .tokenizer
            .encode(prefix)
            .map_err(|e| LoadError::Tokenizer(e.to_string()))?;
        Ok(enc.ids)
    }

    fn content_budget(&self, prompt: &[u32]) -> usize {
        self.info
            .max_tokens
            .saturating_sub(self.head.len() + self.tail.len() + prompt.len())
    }

    /// Tokenizes `prompt + text` as one string (as the reference
    /// implementations do) and splits the prompt tokens off.
    fn prepare(&self, text: &str, kind: InputKind) -> Result<Prepared, EncodeError> {
        let prefix = self.info.prefix(kind);
        let full = format!("{prefix}{text}");
        let enc = self
            .tokenizer
            .encode(full.as_str())
            .map_err(|e| EncodeError::Tokenizer(e.to_string()))?;
        let ids = &enc.ids;
        let offsets = &enc.offsets;
        let prompt = self
            .prompt_ids(kind)
            .map_err(|e| EncodeError::Tokenizer(e.to_string()))?;
        // The prompt normally tokenizes the same alone and in front of text;
        // if a tokenizer merges across the boundary, keep the merged tokens
        // as content rather than drop them.
        let n_prompt = if ids.starts_with(&prompt) {
            prompt.len()
        } else {
            0
        };
        let plen = prefix.len();
        let spans = offsets[n_prompt..]
            .iter()
            .map(|&(s, e)| {
                let start = s.max(plen) - plen;
                let end = e.max(plen) - plen;
                TokenSpan {
                    start,
                    end: end.max(start),
                }
            })
            .collect();
        Ok(Prepared {
            prompt: ids[..n_prompt].to_vec(),
            ids: ids[n_prompt..].to_vec(),
            spans,
        })
    }

    /// Content-token ranges of the windows of `p`: one when it fits,
    /// otherwise windows of the full budget overlapping by `window_overlap`,
    /// the last one aligned to the end.
    fn window_ranges(&self, p: &Prepared) -> Vec<Range<usize>> {
        let n = p.ids.len();
        let size = self.content_budget(&p.prompt);
        if n <= size {
            return std::iter::once(0..n).collect();
        }
        let stride = size - self.window_overlap.min(size / 2);
        let mut windows = Vec::new();
        let mut start = 0;
        while start + size < n {
            windows.push(start..start + size);
            start += stride;
        }
        windows.push(n - size..n);
        windows
    }

    fn sequence(&self, p: &Prepared, content: Range<usize>) -> Vec<u32> {
        let mut ids =
            Vec::with_capacity(self.head.len() + p.prompt.len() + content.len() + self.tail.len());
        ids.extend_from_slice(&self.head);
        ids.extend_from_slice(&p.prompt);
        ids.extend_from_slice(&p.ids[content]);
        ids.extend_from_slice(&self.tail);
        ids
    }

    fn jobs(
        &self,
        texts: &[&str],
        kind: InputKind,
    ) -> Result<(Vec<Prepared>, Vec<Job>), EncodeError> {
        let prepared = texts
            .iter()
            .map(|t| self.prepare(t, kind))
            .collect::<Result<Vec<_>, _>>()?;
        let mut jobs = Vec::new();
        for (i, p) in prepared.iter().enumerate() {
            for w in self.window_ranges(p) {
                jobs.push(Job {
                    text: i,
                    ids: self.sequence(p, w.clone()),
                    content: w,
                });
            }
        }
        Ok((prepared, jobs))
    }

    /// Groups job indices into batches: longest first, so each batch pads
    /// little, and no batch exceeds the token budget.
    /// Groups jobs into forward passes: longest first, each pass within the
    /// token budget (padded tokens) and at least [`MIN_FILL`] real tokens,
    /// so a 250-token story and its 25-token sentences do not all run
    /// padded to 250 (an article's call was 9× padding before this).
    fn batches(&self, jobs: &[Job]) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].ids.len()));
        let mut batches: Vec<(Vec<usize>, usize)> = Vec::new();
        for i in order {
            let len = jobs[i].ids.len();
            match batches.last_mut() {
                // Sorted descending, so the batch's first job is its longest.
                Some((b, real))
                    if {
                        let padded = (b.len() + 1) * jobs[b[0]].ids.len();
                        padded <= self.token_budget
                            && (*real + len) as f32 >= MIN_FILL * padded as f32
                    } =>
                {
                    b.push(i);
                    *real += len;
                }
                _ => batches.push((vec![i], len)),
            }
        }
        batches.into_iter().map(|(b, _)| b).collect()
    }

    /// Runs one batch; returns the final hidden states `[batch, len, dim]`
    /// and the attention mask `[batch, len]`.
    fn forward(&self, rows: &[&[u32]]) -> candle_core::Result<(Tensor, Tensor)> {
        let len = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * len);
        let mut mask = Vec::with_capacity(rows.len() * len);
        for r in rows {
            ids.extend_from_slice(r);
            ids.extend(std::iter::repeat_n(self.pad_id, len - r.len()));
            mask.extend(std::iter::repeat_n(1u32, r.len()));
            mask.extend(std::iter::repeat_n(0u32, len - r.len()));
        }
        let ids = Tensor::from_vec(ids, (rows.len(), len), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows.len(), len), &self.device)?;
        let hidden = self.backbone.forward(&ids, &mask)?;
        Ok((hidden, mask))
    }

    /// Runs every job in token-budget batches and hands each job's output
    /// to `sink` in job order. `stop` is checked before every forward pass,
    /// so a caller that has gone costs at most one more pass.
    fn run<T>(
        &self,
        jobs: &[Job],
        stop: &StopToken,
        per_batch: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Vec<T>>,
    ) -> Result<Vec<T>, EncodeError> {
        let mut out: Vec<Option<T>> = (0..jobs.len()).map(|_| None).collect();
        for batch in self.batches(jobs) {
            stop.check()?;
            let rows: Vec<&[u32]> = batch.iter().map(|&i| jobs[i].ids.as_slice()).collect();
            let span = tracing::debug_span!("forward", rows = rows.len(), len = rows[0].len());
            let _enter = span.enter();
            let results = self
                .forward(&rows)
                .and_then(|(hidden, mask)| per_batch(&hidden, &mask))
                .map_err(|e| EncodeError::Inference(e.to_string()))?;
            for (&i, r) in batch.iter().zip(results) {
                out[i] = Some(r);
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.expect("every job is in one batch"))
            .collect())
    }
}

impl TextEncoder for CandleEncoder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn count_tokens(&self, text: &str, kind: InputKind) -> Option<usize> {
        CandleEncoder::count_tokens(self, text, kind).ok()
    }

    fn embed_until(
        &self,
        texts: &[&str],
        kind: InputKind,
        stop: &StopToken,
    ) -> Result<Vec<Vec<f32>>, EncodeError> {
        stop.check()?;
        let (_, jobs) = self.jobs(texts, kind)?;
        let pooling = self.pooling;
        // Per window: the sum of its pooled token states and how many
        // tokens that sum covers, so windows combine weighted by length.
        let sums = self.run(&jobs, stop, |hidden, mask| {
            let (sum, count) = match pooling {
                Pooling::Mean => {
                    let m = mask.to_dtype(DType::F32)?;
                    let sum = hidden.broadcast_mul(&m.unsqueeze(2)?)?.sum(1)?;
                    (sum, m.sum(1)?)
                }
                Pooling::Cls => {
                    let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
                    let ones = Tensor::ones(cls.dim(0)?, DType::F32, cls.device())?;
                    (cls, ones)
                }
            };
            let sum = sum.to_vec2::<f32>()?;
            let count = count.to_vec1::<f32>()?;
            Ok(sum.into_iter().zip(count).collect::<Vec<_>>())
        })?;
        let mut vectors = vec![vec![0f32; self.info.dim]; texts.len()];
        let mut counts = vec![0f32; texts.len()];
        for (job, (sum, count)) in jobs.iter().zip(sums) {
            for (v, s) in vectors[job.text].iter_mut().zip(sum) {
                *v += s;
            }
            counts[job.text] += count;
        }
        for (v, c) in vectors.iter_mut().zip(counts) {
            v.iter_mut().for_each(|x| *x /= c.max(1.0));
            khulasa_embed::l2_normalize(v);
        }
        Ok(vectors)
    }

    fn token_states_until(
        &self,
        texts: &[&str],
        kind: InputKind,
        stop: &StopToken,
    ) -> Result<Vec<TokenStates>, EncodeError> {
        stop.check()?;
        let (prepared, jobs) = self.jobs(texts, kind)?;
        let dim = self.info.dim;
        let skip = self.head.len();
        // Per window: the states of its content tokens only.
        let window_states = self.run(&jobs, stop, |hidden, _| {
            let rows = hidden.to_vec3::<f32>()?;
            Ok(rows)
        })?;
        let mut result: Vec<TokenStates> = prepared
            .iter()
            .map(|p| TokenStates {
                dim,
                tokens: p.spans.clone(),
                states: vec![0f32; p.ids.len() * dim],
            })
            .collect();
        // A token in several windows takes its state from the window where
        // it is furthest from an edge (the most context on both sides).
        let mut best: Vec<Vec<usize>> = prepared.iter().map(|p| vec![0; p.ids.len()]).collect();
        let mut taken: Vec<Vec<bool>> = prepared.iter().map(|p| vec![false; p.ids.len()]).collect();
        for (job, rows) in jobs.iter().zip(window_states) {
            let prompt = prepared[job.text].prompt.len();
            for (k, tok) in job.content.clone().enumerate() {
                let margin = k.min(job.content.len() - 1 - k);
                if taken[job.text][tok] && best[job.text][tok] >= margin {
                    continue;
                }
                taken[job.text][tok] = true;
                best[job.text][tok] = margin;
                result[job.text].states[tok * dim..(tok + 1) * dim]
                    .copy_from_slice(&rows[skip + prompt + k]);
            }
        }
        Ok(result)
    }
}

fn parse_device(spec: &str) -> Result<Device, LoadError> {
    let unavailable = |e: candle_core::Error| LoadError::Device(format!("{spec}: {e}"));
    match spec {
        "cpu" => Ok(Device::Cpu),
        "metal" => Device::new_metal(0).map_err(unavailable),
        _ => match spec.strip_prefix("cuda") {
            Some("") => Device::new_cuda(0).map_err(unavailable),
            Some(n) => {
                let ordinal = n
                    .strip_prefix(':')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| LoadError::Device(format!("{spec}: expected cuda:N")))?;
                Device::new_cuda(ordinal).map_err(unavailable)
            }
            None => Err(LoadError::Device(format!(
                "{spec}: expected cpu, cuda, cuda:N or metal"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_strings() {
        assert!(matches!(parse_device("cpu"), Ok(Device::Cpu)));
        assert!(matches!(parse_device("tpu"), Err(LoadError::Device(_))));
        assert!(matches!(parse_device("cuda:x"), Err(LoadError::Device(_))));
        // Without the cuda feature candle reports the device as unavailable.
        #[cfg(not(feature = "cuda"))]
        assert!(matches!(parse_device("cuda:0"), Err(LoadError::Device(_))));
    }
}
