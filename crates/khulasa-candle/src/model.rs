//! The transformer encoder itself: BERT and XLM-RoBERTa (one stack, they
//! differ only in where positions start), written here rather than taken
//! from candle-transformers so that the forward pass is ours to make fast
//! and small:
//!
//! - the word-embedding table (250,037 × 384 for e5-small, 82% of the
//!   weights) is kept compact ([`crate::embedding`]) and rows are decoded to
//!   f32 as they are looked up;
//! - query, key and value are one matmul, with 1/√d folded into the query
//!   weights at load;
//! - every matmul's epilogue is one of our own vectorised
//!   kernels ([`crate::ops`]): bias (+ GELU) after the up projection and the
//!   query/key/value one, bias + residual + layer norm after the two others,
//!   each one pass over the matmul's output;
//! - on the CPU, attention is one kernel over the QKV projection
//!   ([`crate::ops`]); elsewhere it runs in slices of rows so its
//!   `[rows, heads, len, len]` scores stay under a fixed size.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::config::{Architecture, FolderConfig};
use crate::embedding::WordTable;

/// The name of the word-embedding table among `names`, with or without a
/// task model's `bert.`/`roberta.` prefix.
pub(crate) fn word_embeddings_name<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let wanted = [
        "embeddings.word_embeddings.weight",
        "bert.embeddings.word_embeddings.weight",
        "roberta.embeddings.word_embeddings.weight",
    ];
    let names: Vec<&str> = names.into_iter().collect();
    wanted
        .into_iter()
        .find(|w| names.contains(w))
        .map(str::to_string)
}

/// The fields of `config.json` the forward pass needs.
#[derive(Debug, Deserialize)]
struct Config {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "gelu")]
    hidden_act: String,
    max_position_embeddings: usize,
    #[serde(default = "one")]
    type_vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
}

fn gelu() -> String {
    "gelu".into()
}

fn one() -> usize {
    1
}

fn default_eps() -> f64 {
    1e-12
}

/// Most attention scores (rows × heads × len × len) computed at once: 4M
/// f32, 16 MiB, whatever the batch.
const ATTENTION_SCORES: usize = 1 << 22;

#[derive(Debug, Clone, Copy)]
enum Activation {
    GeluErf,
    GeluTanh,
    Relu,
}

struct Linear {
    /// `[out, in]`.
    weight: Weight,
    bias: Tensor,
}

impl Linear {
    fn load(vb: &VarBuilder, in_dim: usize, out_dim: usize, kind: MatmulWeights) -> Result<Self> {
        Ok(Self {
            weight: Weight::new(vb.get((out_dim, in_dim), "weight")?, kind)?,
            bias: vb.get(out_dim, "bias")?,
        })
    }

    /// `x` is `[n, in]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::ops::bias_act(&self.weight.apply(x)?, &self.bias, false)
    }
}

/// How the weight matrices of the encoder layers are stored and multiplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum MatmulWeights {
    /// f32, as in the checkpoint (the default: exact).
    #[default]
    F32,
    /// Candle's 8-bit blocks (`QMatMul` over Q8_0).
    #[cfg_attr(feature = "clap", value(name = "q8_0"))]
    Q8_0,
    /// Candle's 4-bit blocks (`QMatMul` over Q4_0).
    #[cfg_attr(feature = "clap", value(name = "q4_0"))]
    Q4_0,
}

/// A weight matrix `[out, in]`, multiplied as `x·Wᵀ`.
enum Weight {
    F32(Tensor),
    Quantized(QMatMul),
}

impl Weight {
    fn new(w: Tensor, kind: MatmulWeights) -> Result<Self> {
        let dtype = match kind {
            MatmulWeights::F32 => return Ok(Self::F32(w)),
            MatmulWeights::Q8_0 => GgmlDType::Q8_0,
            MatmulWeights::Q4_0 => GgmlDType::Q4_0,
        };
        Ok(Self::Quantized(QMatMul::from_qtensor(QTensor::quantize(
            &w, dtype,
        )?)?))
    }

    /// `x·Wᵀ` for `x` `[n, in]`.
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::F32(w) => x.matmul(&w.t()?),
            Self::Quantized(q) => q.forward(x),
        }
    }
}

/// A dense layer whose output is added to a residual and layer-normed,
/// done as one pass after the matmul.
struct DenseNorm {
    weight: Weight,
    /// `[3, out]`: the dense bias, the norm's weight, the norm's bias.
    params: Tensor,
    eps: f32,
}

impl DenseNorm {
    fn load(
        dense: &VarBuilder,
        norm: &VarBuilder,
        (in_dim, out_dim): (usize, usize),
        eps: f64,
        kind: MatmulWeights,
    ) -> Result<Self> {
        let dense = Linear::load(dense, in_dim, out_dim, kind)?;
        let norm = LayerNorm::load(norm, out_dim, eps)?;
        Ok(Self {
            weight: dense.weight,
            params: Tensor::stack(&[dense.bias, norm.weight, norm.bias], 0)?,
            eps: norm.eps,
        })
    }

    /// LayerNorm(x·Wᵀ + b + residual); `x` is `[n, in]`.
    fn forward(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        crate::ops::residual_norm(&self.weight.apply(x)?, residual, &self.params, self.eps)
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn load(vb: &VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            bias: vb.get(dim, "bias")?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

struct Layer {
    /// Query, key and value stacked: `[3·hidden, hidden]`, the query part
    /// pre-scaled by 1/√head_dim.
    qkv: Linear,
    /// The attention's output projection, residual and norm.
    attention_out: DenseNorm,
    up: Linear,
    /// The feed-forward's down projection, residual and norm.
    down: DenseNorm,
}

impl Layer {
    fn load(vb: &VarBuilder, c: &Config, kind: MatmulWeights) -> Result<Self> {
        let h = c.hidden_size;
        let head_dim = h / c.num_attention_heads;
        let attention = vb.pp("attention");
        let own = attention.pp("self");
        let part = |name: &str| -> Result<(Tensor, Tensor)> {
            let p = own.pp(name);
            Ok((p.get((h, h), "weight")?, p.get(h, "bias")?))
        };
        let ((qw, qb), (kw, kb), (vw, vb_)) = (part("query")?, part("key")?, part("value")?);
        let scale = 1.0 / (head_dim as f64).sqrt();
        let qkv = Linear {
            weight: Weight::new(Tensor::cat(&[(qw * scale)?, kw, vw], 0)?, kind)?,
            bias: Tensor::cat(&[(qb * scale)?, kb, vb_], 0)?,
        };
        Ok(Self {
            qkv,
            attention_out: DenseNorm::load(
                &attention.pp("output").pp("dense"),
                &attention.pp("output").pp("LayerNorm"),
                (h, h),
                c.layer_norm_eps,
                kind,
            )?,
            up: Linear::load(
                &vb.pp("intermediate").pp("dense"),
                h,
                c.intermediate_size,
                kind,
            )?,
            down: DenseNorm::load(
                &vb.pp("output").pp("dense"),
                &vb.pp("output").pp("LayerNorm"),
                (c.intermediate_size, h),
                c.layer_norm_eps,
                kind,
            )?,
        })
    }
}

/// A loaded encoder stack that maps token ids to final hidden states.
pub(crate) struct Backbone {
    word_embeddings: WordTable,
    /// `[max_len, hidden]`: the position embedding of each content position
    /// (shifted for XLM-R) plus the token-type-0 embedding.
    position_embeddings: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    activation: Activation,
}

impl Backbone {
    /// `words` is the word-embedding table, read apart from `vb` (see
    /// [`word_embeddings_name`]).
    /// `kind` says how the layers' weight matrices are kept.
    pub(crate) fn load(
        cfg: &FolderConfig,
        vb: VarBuilder,
        words: WordTable,
        kind: MatmulWeights,
    ) -> Result<Self> {
        let c: Config = serde_json::from_str(&cfg.config_json)
            .map_err(|e| candle_core::Error::Msg(format!("config.json: {e}")))?;
        if !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            candle_core::bail!(
                "config.json: hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden_size,
                c.num_attention_heads
            );
        }
        let activation = match c.hidden_act.as_str() {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_approximate" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => candle_core::bail!("config.json: unsupported hidden_act {other:?}"),
        };
        // Checkpoints saved from a task model nest the encoder.
        let vb = ["bert", "roberta"]
            .into_iter()
            .find(|p| vb.contains_tensor(&format!("{p}.embeddings.word_embeddings.weight")))
            .map_or(vb.clone(), |p| vb.pp(p));
        let h = c.hidden_size;
        let emb = vb.pp("embeddings");
        if words.shape() != (c.vocab_size, h) {
            candle_core::bail!(
                "word embeddings are {:?}, config.json says ({}, {h})",
                words.shape(),
                c.vocab_size
            );
        }
        let first_position = match cfg.architecture {
            Architecture::Bert => 0,
            Architecture::XlmRoberta => cfg.pad_token_id as usize + 1,
        };
        let positions = emb
            .pp("position_embeddings")
            .get((c.max_position_embeddings, h), "weight")?;
        let token_type = emb
            .pp("token_type_embeddings")
            .get((c.type_vocab_size, h), "weight")?
            .get(0)?;
        let position_embeddings = positions
            .narrow(
                0,
                first_position,
                c.max_position_embeddings - first_position,
            )?
            .broadcast_add(&token_type)?;
        let embedding_norm = LayerNorm::load(&emb.pp("LayerNorm"), h, c.layer_norm_eps)?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::load(&vb.pp(format!("encoder.layer.{i}")), &c, kind))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word_embeddings: words,
            position_embeddings,
            embedding_norm,
            layers,
            heads: c.num_attention_heads,
            hidden: h,
            activation,
        })
    }

    /// `ids` and `mask` are `[batch, len]` u32; returns `[batch, len, hidden]`.
    pub(crate) fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, len) = ids.dims2()?;
        let h = self.hidden;
        let n = b * len;
        let words = self
            .word_embeddings
            .lookup(ids)?
            .to_device(ids.device())?
            .reshape((b, len, h))?;
        let x = words.broadcast_add(&self.position_embeddings.narrow(0, 0, len)?)?;
        let mut x = self.embedding_norm.forward(&x)?.reshape((n, h))?;
        // Additive key mask, as Hugging Face builds it: 0 or the f32 minimum.
        let min = f64::from(f32::MIN);
        let key_bias = mask
            .to_dtype(DType::F32)?
            .affine(-min, min)?
            .reshape((b, 1, 1, len))?;
        for layer in &self.layers {
            let context = self.attention(layer, &x, &key_bias, b, len)?;
            let attended = layer.attention_out.forward(&context, &x)?;
            let inner = self.up_activated(layer, &attended)?;
            x = layer.down.forward(&inner, &attended)?;
        }
        x.reshape((b, len, h))
    }

    /// The feed-forward's up projection and activation (exact GELU fused
    /// with the bias).
    fn up_activated(&self, layer: &Layer, x: &Tensor) -> Result<Tensor> {
        let up = &layer.up;
        let y = up.weight.apply(x)?;
        match self.activation {
            Activation::GeluErf => crate::ops::bias_act(&y, &up.bias, true),
            Activation::GeluTanh => crate::ops::bias_act(&y, &up.bias, false)?.gelu(),
            Activation::Relu => crate::ops::bias_act(&y, &up.bias, false)?.relu(),
        }
    }

    /// Multi-head self-attention of `x` (`[b·len, hidden]`), returned as
    /// `[b·len, hidden]` context before the output projection.
    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        key_bias: &Tensor,
        b: usize,
        len: usize,
    ) -> Result<Tensor> {
        let (heads, h) = (self.heads, self.hidden);
        let d = h / heads;
        let projected = layer.qkv.forward(x)?.reshape((b, len, 3 * h))?;
        if let Some(context) =
            crate::ops::attention(&projected, &key_bias.reshape((b, len))?, heads)
        {
            return context?.reshape((b * len, h));
        }
        // [3, b, heads, len, d]
        let qkv = projected
            .reshape((b, len, 3, heads, d))?
            .permute((2, 0, 3, 1, 4))?;
        let rows = (ATTENTION_SCORES / (heads * len * len)).clamp(1, b);
        let mut contexts = Vec::with_capacity(b.div_ceil(rows));
        for start in (0..b).step_by(rows) {
            let r = rows.min(b - start);
            let part = qkv.narrow(1, start, r)?;
            let q = part.get(0)?.contiguous()?;
            let k = part.get(1)?.contiguous()?;
            let v = part.get(2)?.contiguous()?;
            let scores = q.matmul(&k.t()?)?;
            let probs = candle_nn::ops::softmax_last_dim(
                &scores.broadcast_add(&key_bias.narrow(0, start, r)?)?,
            )?;
            // [r, heads, len, d] → [r, len, heads, d]
            contexts.push(probs.matmul(&v)?.transpose(1, 2)?);
        }
        let context = if contexts.len() == 1 {
            contexts.pop().expect("one part")
        } else {
            Tensor::cat(&contexts, 0)?
        };
        context.reshape((b * len, h))
    }
}
