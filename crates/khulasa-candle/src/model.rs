//! The transformer backbones, from candle-transformers, behind one forward.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{bert, xlm_roberta};

use crate::config::{Architecture, FolderConfig};

/// A loaded encoder stack that maps token ids to final hidden states.
pub(crate) enum Backbone {
    Bert(bert::BertModel),
    XlmRoberta(xlm_roberta::XLMRobertaModel),
}

impl Backbone {
    pub(crate) fn load(cfg: &FolderConfig, vb: VarBuilder) -> Result<Self> {
        let json_err = |e: serde_json::Error| candle_core::Error::Msg(format!("config.json: {e}"));
        match cfg.architecture {
            // BertModel itself finds weights with or without a `bert.` prefix.
            Architecture::Bert => {
                let c: bert::Config = serde_json::from_str(&cfg.config_json).map_err(json_err)?;
                Ok(Self::Bert(bert::BertModel::load(vb, &c)?))
            }
            Architecture::XlmRoberta => {
                let c: xlm_roberta::Config =
                    serde_json::from_str(&cfg.config_json).map_err(json_err)?;
                // Checkpoints saved from a task model nest the encoder.
                let vb = if vb.contains_tensor("roberta.embeddings.word_embeddings.weight") {
                    vb.pp("roberta")
                } else {
                    vb
                };
                Ok(Self::XlmRoberta(xlm_roberta::XLMRobertaModel::new(&c, vb)?))
            }
        }
    }

    /// `ids` and `mask` are `[batch, len]` u32; returns `[batch, len, hidden]`.
    pub(crate) fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let token_types = ids.zeros_like()?;
        match self {
            Self::Bert(m) => m.forward(ids, &token_types, Some(mask)),
            Self::XlmRoberta(m) => m.forward(ids, mask, &token_types, None, None, None),
        }
    }
}
