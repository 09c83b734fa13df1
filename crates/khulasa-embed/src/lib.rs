//! The text-encoder contract that khulasa's analysis is written against.
//!
//! This crate knows nothing about Candle, tokenizers or gRPC: it holds the
//! [`TextEncoder`] trait, the values that cross it ([`ModelInfo`],
//! [`TokenStates`]), the error type, and the small vector maths every caller
//! needs (pooling a byte span, cosine similarity). Analysis code depends on
//! this crate only, so it can be tested with a fake encoder.
#![deny(missing_docs)]

use std::ops::Range;

use serde::Serialize;

pub mod stop;
pub mod testing;

pub use crate::stop::{EncoderTime, StopReason, StopToken};

/// How a text is going to be used, which selects the model's input prompt
/// (for e5 models `"query: "` or `"passage: "`, read from the model folder's
/// metadata, never written at call sites).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// A short query or label description that is compared to passages.
    Query,
    /// A document, article or sentence being searched or classified.
    Passage,
}

/// What a loaded encoder is, for logs, `GetInfo` and provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// A short id: the model folder's name, e.g. `multilingual-e5-small`.
    pub id: String,
    /// The architecture that was recognised, e.g. `bert` or `xlm-roberta`.
    pub architecture: String,
    /// Dimension of every vector the encoder returns.
    pub dim: usize,
    /// Most tokens one forward pass takes, special tokens included; longer
    /// texts are split into overlapping windows.
    pub max_tokens: usize,
    /// Where inference runs: `cpu`, `cuda:0`, `metal`.
    pub device: String,
    /// The prompt prepended to [`InputKind::Query`] texts (may be empty).
    pub query_prefix: String,
    /// The prompt prepended to [`InputKind::Passage`] texts (may be empty).
    pub passage_prefix: String,
}

impl ModelInfo {
    /// The prompt for `kind`.
    pub fn prefix(&self, kind: InputKind) -> &str {
        match kind {
            InputKind::Query => &self.query_prefix,
            InputKind::Passage => &self.passage_prefix,
        }
    }
}

/// Errors an encoder reports while embedding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The tokenizer rejected a text.
    #[error("tokenization failed: {0}")]
    Tokenizer(String),
    /// The forward pass failed (out of memory, device error, bad shapes).
    #[error("model inference failed: {0}")]
    Inference(String),
    /// The caller's [`StopToken`] fired (cancelled, or past its deadline)
    /// before the work was done; what was left of it did not run.
    #[error("{0}")]
    Stopped(StopReason),
}

impl From<StopReason> for EncodeError {
    fn from(reason: StopReason) -> Self {
        Self::Stopped(reason)
    }
}

/// One token of a text with its contextual vector's place in [`TokenStates`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TokenSpan {
    /// UTF-8 byte offset where the token starts in the caller's text.
    pub start: usize,
    /// UTF-8 byte offset where the token ends (exclusive).
    pub end: usize,
}

/// The final hidden states of every content token of one text, with the byte
/// span each token covers in the text the caller passed (prompt and special
/// tokens excluded), so a caller can pool the vector of any span — e.g. a
/// sentence — from a single pass over a whole article.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenStates {
    /// Dimension of each state.
    pub dim: usize,
    /// Token spans, in text order.
    pub tokens: Vec<TokenSpan>,
    /// Row-major `tokens.len() × dim` hidden states.
    pub states: Vec<f32>,
}

impl TokenStates {
    /// The hidden state of token `i`.
    pub fn state(&self, i: usize) -> &[f32] {
        &self.states[i * self.dim..(i + 1) * self.dim]
    }

    /// L2-normalised mean of the states of the tokens that overlap `span`
    /// (byte offsets into the text), or `None` when no token does.
    pub fn pool_span(&self, span: Range<usize>) -> Option<Vec<f32>> {
        let mut sum = vec![0f32; self.dim];
        let mut n = 0usize;
        // Tokens are in text order: start at the first that ends after the
        // span starts, so pooling every sentence of an article stays linear.
        let first = self.tokens.partition_point(|t| t.end <= span.start);
        for (i, t) in self.tokens.iter().enumerate().skip(first) {
            if t.start >= span.end {
                break;
            }
            if t.end > span.start {
                for (s, x) in sum.iter_mut().zip(self.state(i)) {
                    *s += x;
                }
                n += 1;
            }
        }
        (n > 0).then(|| {
            l2_normalize(&mut sum);
            sum
        })
    }
}

/// A text encoder: turns texts into unit-length vectors.
///
/// Implementations must be usable from several threads; they batch, window
/// and pool internally, and return results in input order.
pub trait TextEncoder: Send + Sync {
    /// What this encoder is.
    fn info(&self) -> &ModelInfo;

    /// One L2-normalised vector per text, in input order. Texts longer than
    /// the model's window are split into overlapping windows and pooled.
    fn embed(&self, texts: &[&str], kind: InputKind) -> Result<Vec<Vec<f32>>, EncodeError> {
        self.embed_until(texts, kind, &StopToken::never())
    }

    /// Per-token final hidden states of each text, in input order.
    fn token_states(
        &self,
        texts: &[&str],
        kind: InputKind,
    ) -> Result<Vec<TokenStates>, EncodeError> {
        self.token_states_until(texts, kind, &StopToken::never())
    }

    /// [`TextEncoder::embed`] for a caller that may go away: `stop` is
    /// checked between units of work (forward passes, batches), and once it
    /// fires the rest is skipped with [`EncodeError::Stopped`].
    fn embed_until(
        &self,
        texts: &[&str],
        kind: InputKind,
        stop: &StopToken,
    ) -> Result<Vec<Vec<f32>>, EncodeError>;

    /// [`TextEncoder::token_states`] with a [`StopToken`], as
    /// [`TextEncoder::embed_until`].
    fn token_states_until(
        &self,
        texts: &[&str],
        kind: InputKind,
        stop: &StopToken,
    ) -> Result<Vec<TokenStates>, EncodeError>;

    /// How many tokens the model sees for `text` (special tokens and prompt
    /// included, before windowing), for metrics and budgets; `None` when
    /// the encoder has no tokenizer to ask.
    fn count_tokens(&self, text: &str, kind: InputKind) -> Option<usize> {
        let _ = (text, kind);
        None
    }
}

/// Scales `v` to unit length in place; a zero vector stays zero.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Cosine similarity of two vectors of equal length (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "cosine of vectors of different lengths");
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        dot += f64::from(*x) * f64::from(*y);
        na += f64::from(*x) * f64::from(*x);
        nb += f64::from(*y) * f64::from(*y);
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (dot / (na.sqrt() * nb.sqrt())) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states() -> TokenStates {
        TokenStates {
            dim: 2,
            tokens: vec![
                TokenSpan { start: 0, end: 3 },
                TokenSpan { start: 3, end: 7 },
                TokenSpan { start: 8, end: 12 },
            ],
            states: vec![1.0, 0.0, 0.0, 1.0, 3.0, 4.0],
        }
    }

    #[test]
    fn pool_span_averages_overlapping_tokens_and_normalises() {
        let s = states();
        let v = s.pool_span(0..7).unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((v[0] - h).abs() < 1e-6 && (v[1] - h).abs() < 1e-6, "{v:?}");
        // A span touching only part of a token still takes that token.
        let v = s.pool_span(9..10).unwrap();
        assert!(
            (v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6,
            "{v:?}"
        );
    }

    #[test]
    fn pool_span_outside_every_token_is_none() {
        assert_eq!(states().pool_span(7..8), None);
        assert_eq!(states().pool_span(20..30), None);
    }

    #[test]
    fn cosine_handles_zero_and_parallel_vectors() {
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[2.0, 0.0], &[5.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!((cosine(&[1.0, 0.0], &[-1.0, 0.0]) + 1.0).abs() < 1e-6);
    }
}
