//! Tokenizers for khulasa's encoders.
//!
//! [`Tokenizer::from_file`] reads a model folder's `tokenizer.json`. A
//! SentencePiece-unigram pipeline (XLM-RoBERTa and the multilingual e5
//! models) is run by this crate's compact reimplementation, which gives the
//! same ids and offsets as Hugging Face's `tokenizers` in about 3% of its
//! memory (the 250k-piece XLM-R vocabulary costs ~280 MB there). Anything
//! else (WordPiece for BERT, BPE, unusual normalizers) is handed to
//! `tokenizers` itself.
//!
//! Encodings carry no special tokens; [`Tokenizer::special_tokens`] says
//! which the model expects around a sequence, so that callers can window
//! long texts themselves.

mod normalized;
mod sentencepiece;

use std::path::{Path, PathBuf};

use sentencepiece::SentencePiece;

/// Token ids of a text and the byte range of each in the text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoding {
    pub ids: Vec<u32>,
    pub offsets: Vec<(usize, usize)>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    /// A `tokenizer.json` file could not be read or used.
    #[error("{path}: {message}")]
    Load { path: PathBuf, message: String },
    /// A `tokenizer.json` text is not a tokenizer either implementation
    /// can run.
    #[error("invalid tokenizer: {0}")]
    Invalid(String),
    /// Encoding a text failed (only Hugging Face's implementation can).
    #[error("tokenizing failed: {0}")]
    Encode(String),
}

/// Which implementation runs a `tokenizer.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// The compact one when it reproduces the file's pipeline, else
    /// Hugging Face's.
    #[default]
    Auto,
    /// Always Hugging Face's `tokenizers` (to compare, or as an escape
    /// hatch).
    HuggingFace,
}

pub struct Tokenizer {
    inner: Inner,
    head: Vec<u32>,
    tail: Vec<u32>,
}

enum Inner {
    SentencePiece(Box<SentencePiece>),
    HuggingFace(Box<tokenizers::Tokenizer>),
}

impl Tokenizer {
    /// Loads `path` (a `tokenizer.json`).
    pub fn from_file(path: &Path, backend: Backend) -> Result<Self, TokenizeError> {
        let load_error = |message: String| TokenizeError::Load {
            path: path.to_path_buf(),
            message,
        };
        let json = std::fs::read_to_string(path).map_err(|e| load_error(e.to_string()))?;
        Self::from_json(&json, backend).map_err(|e| match e {
            TokenizeError::Invalid(message) => load_error(message),
            other => other,
        })
    }

    /// Loads a `tokenizer.json` already read.
    pub fn from_json(json: &str, backend: Backend) -> Result<Self, TokenizeError> {
        let invalid = |e: String| TokenizeError::Invalid(e);
        if backend == Backend::Auto {
            match SentencePiece::from_json(json).map_err(|e| invalid(e.to_string()))? {
                Ok(sp) => {
                    let (head, tail) = sp.special_tokens();
                    let (head, tail) = (head.to_vec(), tail.to_vec());
                    tracing::debug!(pieces = sp.vocab_size(), "compact SentencePiece tokenizer");
                    return Ok(Self {
                        inner: Inner::SentencePiece(Box::new(sp)),
                        head,
                        tail,
                    });
                }
                Err(why) => {
                    tracing::debug!(reason = %why.0, "tokenizer left to Hugging Face's tokenizers")
                }
            }
        }
        let mut tokenizer: tokenizers::Tokenizer =
            json.parse().map_err(|e| invalid(format!("{e}")))?;
        // Windowing and batching are the caller's: never cut nor pad.
        tokenizer
            .with_truncation(None)
            .map_err(|e| invalid(e.to_string()))?;
        tokenizer.with_padding(None);
        let (head, tail) = hf_special_tokens(&tokenizer).map_err(invalid)?;
        Ok(Self {
            inner: Inner::HuggingFace(Box::new(tokenizer)),
            head,
            tail,
        })
    }

    /// Which implementation runs this tokenizer: `"sentencepiece"` (this
    /// crate's) or `"huggingface"`.
    pub fn implementation(&self) -> &'static str {
        match self.inner {
            Inner::SentencePiece(_) => "sentencepiece",
            Inner::HuggingFace(_) => "huggingface",
        }
    }

    /// Ids and byte offsets of `text`, without the model's special tokens
    /// around it (special tokens written in the text itself are kept).
    pub fn encode(&self, text: &str) -> Result<Encoding, TokenizeError> {
        match &self.inner {
            Inner::SentencePiece(sp) => Ok(sp.encode(text)),
            Inner::HuggingFace(t) => {
                let e = t
                    .encode(text, false)
                    .map_err(|e| TokenizeError::Encode(e.to_string()))?;
                Ok(Encoding {
                    ids: e.get_ids().to_vec(),
                    offsets: e.get_offsets().to_vec(),
                })
            }
        }
    }

    /// The special tokens the model expects before and after a single
    /// sequence (`[CLS]`/`[SEP]`, `<s>`/`</s>`).
    pub fn special_tokens(&self) -> (&[u32], &[u32]) {
        (&self.head, &self.tail)
    }
}

/// Reads the special tokens off the post-processor by encoding one word.
fn hf_special_tokens(tokenizer: &tokenizers::Tokenizer) -> Result<(Vec<u32>, Vec<u32>), String> {
    let enc = tokenizer.encode("a", true).map_err(|e| e.to_string())?;
    let ids = enc.get_ids();
    let special = enc.get_special_tokens_mask();
    let first = special.iter().position(|&s| s == 0).unwrap_or(ids.len());
    let last = special
        .iter()
        .rposition(|&s| s == 0)
        .map_or(ids.len(), |i| i + 1);
    Ok((ids[..first].to_vec(), ids[last..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_and_where() {
        let missing = Path::new("/nonexistent/tokenizer.json");
        match Tokenizer::from_file(missing, Backend::Auto) {
            Err(TokenizeError::Load { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected a load error, got {:?}", other.err()),
        }
        for backend in [Backend::Auto, Backend::HuggingFace] {
            assert!(matches!(
                Tokenizer::from_json("{not json", backend),
                Err(TokenizeError::Invalid(_))
            ));
        }
    }
}
