//! Reading a Hugging Face model folder's metadata: which architecture it is,
//! how long its inputs may be, its prompts and its pooling.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::LoadError;

/// The encoder families khulasa can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// BERT and models saved as BERT (multilingual-e5-small is one, despite
    /// its XLM-R tokenizer): positions count from 0.
    Bert,
    /// XLM-RoBERTa and RoBERTa: positions count from `pad_token_id + 1`.
    XlmRoberta,
}

impl Architecture {
    /// The name reported in [`khulasa_embed::ModelInfo`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Bert => "bert",
            Self::XlmRoberta => "xlm-roberta",
        }
    }
}

/// How token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over every non-padding token (special tokens included), as
    /// sentence-transformers does.
    Mean,
    /// The first token's state.
    Cls,
}

/// What khulasa needs to know about a model folder besides its weights.
#[derive(Debug, Clone)]
pub struct FolderConfig {
    /// The architecture.
    pub architecture: Architecture,
    /// `config.json`, verbatim, for the model constructors.
    pub config_json: String,
    /// Most tokens per forward pass, special tokens included.
    pub max_tokens: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Token id used for padding.
    pub pad_token_id: u32,
    /// Prompt for queries.
    pub query_prefix: String,
    /// Prompt for passages.
    pub passage_prefix: String,
    /// Pooling mode.
    pub pooling: Pooling,
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    #[serde(default)]
    architectures: Vec<String>,
    hidden_size: usize,
    max_position_embeddings: usize,
    #[serde(default)]
    pad_token_id: Option<u32>,
}

#[derive(Deserialize, Default)]
struct SentenceTransformersConfig {
    #[serde(default)]
    prompts: std::collections::HashMap<String, String>,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

impl FolderConfig {
    /// Reads the metadata of the model folder `dir`.
    pub fn read(dir: &Path) -> Result<Self, LoadError> {
        let config_path = dir.join("config.json");
        let config_json = read_text(&config_path)?;
        let raw: RawConfig = parse(&config_path, &config_json)?;
        let kind = raw
            .model_type
            .clone()
            .unwrap_or_else(|| raw.architectures.join(","));
        let architecture = match kind.as_str() {
            "bert" => Architecture::Bert,
            "xlm-roberta" | "roberta" | "camembert" => Architecture::XlmRoberta,
            _ => {
                return Err(LoadError::UnsupportedArchitecture {
                    found: if kind.is_empty() {
                        "no model_type or architectures".to_string()
                    } else {
                        kind
                    },
                    path: config_path,
                });
            }
        };
        let pad_token_id = raw.pad_token_id.unwrap_or(match architecture {
            Architecture::Bert => 0,
            Architecture::XlmRoberta => 1,
        });
        // RoBERTa-style models reserve the first pad+1 positions.
        let mut max_tokens = match architecture {
            Architecture::Bert => raw.max_position_embeddings,
            Architecture::XlmRoberta => raw
                .max_position_embeddings
                .saturating_sub(pad_token_id as usize + 1),
        };
        let sbert = dir.join("sentence_bert_config.json");
        if sbert.is_file() {
            let c: SentenceBertConfig = parse(&sbert, &read_text(&sbert)?)?;
            if let Some(n) = c.max_seq_length {
                max_tokens = max_tokens.min(n);
            }
        }
        if max_tokens < 8 {
            return Err(LoadError::Config {
                path: config_path,
                message: format!("model takes only {max_tokens} tokens"),
            });
        }

        let st_path = dir.join("config_sentence_transformers.json");
        let st: SentenceTransformersConfig = if st_path.is_file() {
            parse(&st_path, &read_text(&st_path)?)?
        } else {
            SentenceTransformersConfig::default()
        };
        let prompt = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| st.prompts.get(*n).cloned())
                .unwrap_or_default()
        };

        let pool_path = dir.join("1_Pooling").join("config.json");
        let pooling = if pool_path.is_file() {
            let p: PoolingConfig = parse(&pool_path, &read_text(&pool_path)?)?;
            match (p.pooling_mode_mean_tokens, p.pooling_mode_cls_token) {
                (false, true) => Pooling::Cls,
                (true, false) | (false, false) => Pooling::Mean,
                (true, true) => {
                    return Err(LoadError::Config {
                        path: pool_path,
                        message: "both mean and CLS pooling are set; khulasa supports one".into(),
                    });
                }
            }
        } else {
            Pooling::Mean
        };

        Ok(Self {
            architecture,
            hidden_size: raw.hidden_size,
            max_tokens,
            pad_token_id,
            query_prefix: prompt(&["query"]),
            passage_prefix: prompt(&["passage", "document"]),
            pooling,
            config_json,
        })
    }
}

fn read_text(path: &Path) -> Result<String, LoadError> {
    fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T, LoadError> {
    serde_json::from_str(text).map_err(|e| LoadError::Config {
        path: PathBuf::from(path),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        dir
    }

    #[test]
    fn e5_style_folder_reads_prompts_and_bert_positions() {
        let dir = folder(&[
            (
                "config.json",
                r#"{"model_type":"bert","hidden_size":384,"max_position_embeddings":512,"pad_token_id":0}"#,
            ),
            (
                "config_sentence_transformers.json",
                r#"{"prompts":{"query":"query: ","passage":"passage: "}}"#,
            ),
        ]);
        let c = FolderConfig::read(dir.path()).unwrap();
        assert_eq!(c.architecture, Architecture::Bert);
        assert_eq!((c.max_tokens, c.hidden_size), (512, 384));
        assert_eq!(
            (c.query_prefix.as_str(), c.passage_prefix.as_str()),
            ("query: ", "passage: ")
        );
        assert_eq!(c.pooling, Pooling::Mean);
    }

    #[test]
    fn xlm_roberta_loses_the_reserved_positions_and_honours_max_seq_length() {
        let dir = folder(&[
            (
                "config.json",
                r#"{"model_type":"xlm-roberta","hidden_size":768,"max_position_embeddings":514,"pad_token_id":1}"#,
            ),
            (
                "1_Pooling/config.json",
                r#"{"pooling_mode_cls_token":true}"#,
            ),
        ]);
        let c = FolderConfig::read(dir.path()).unwrap();
        assert_eq!(
            (c.architecture, c.max_tokens),
            (Architecture::XlmRoberta, 512)
        );
        assert_eq!(c.pooling, Pooling::Cls);
        assert_eq!(c.passage_prefix, "");
        fs::write(
            dir.path().join("sentence_bert_config.json"),
            r#"{"max_seq_length":256}"#,
        )
        .unwrap();
        assert_eq!(FolderConfig::read(dir.path()).unwrap().max_tokens, 256);
    }

    #[test]
    fn unknown_architecture_names_what_was_found() {
        let dir = folder(&[(
            "config.json",
            r#"{"model_type":"llama","hidden_size":8,"max_position_embeddings":64}"#,
        )]);
        let err = FolderConfig::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("llama") && err.contains("config.json"),
            "{err}"
        );
    }

    #[test]
    fn missing_config_is_an_io_error_naming_the_file() {
        let dir = folder(&[]);
        let err = FolderConfig::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }
}
