//! Writes a standard Hugging Face model folder from a parsed E5S1 model:
//! `config.json`, `model.safetensors` (f32, the names candle-transformers'
//! `BertModel` expects, no `bert.` prefix), the tokenizer, the
//! sentence-transformers metadata that carries the e5 prompts and pooling,
//! and a NOTICE.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde_json::json;

use crate::ImportError;
use crate::e5s1::{E5s1, HyperParams};

/// The prompts and provenance written beside the weights.
#[derive(Debug, Clone)]
pub struct FolderMeta {
    /// Prompt for queries, e.g. `"query: "`.
    pub query_prefix: String,
    /// Prompt for passages, e.g. `"passage: "`.
    pub passage_prefix: String,
    /// Text of the NOTICE file (sources and licences).
    pub notice: String,
}

/// Maps an E5S1 tensor name to its Hugging Face BERT name, e.g.
/// `l3.fi.w` → `encoder.layer.3.intermediate.dense.weight`.
pub fn hf_name(e5_name: &str) -> Option<String> {
    let (stem, leaf) = e5_name.rsplit_once('.')?;
    let leaf = match leaf {
        "w" => "weight",
        "b" => "bias",
        _ => return None,
    };
    let module = match stem {
        "emb.word" => {
            return (leaf == "weight").then(|| "embeddings.word_embeddings.weight".into());
        }
        "emb.pos" => {
            return (leaf == "weight").then(|| "embeddings.position_embeddings.weight".into());
        }
        "emb.type" => {
            return (leaf == "weight").then(|| "embeddings.token_type_embeddings.weight".into());
        }
        "emb.ln" => "embeddings.LayerNorm".to_string(),
        _ => {
            let (layer, part) = stem.split_once('.')?;
            let n: usize = layer.strip_prefix('l')?.parse().ok()?;
            let part = match part {
                "q" => "attention.self.query",
                "k" => "attention.self.key",
                "v" => "attention.self.value",
                "ao" => "attention.output.dense",
                "aln" => "attention.output.LayerNorm",
                "fi" => "intermediate.dense",
                "fo" => "output.dense",
                "oln" => "output.LayerNorm",
                _ => return None,
            };
            format!("encoder.layer.{n}.{part}")
        }
    };
    Some(format!("{module}.{leaf}"))
}

/// The shape a tensor must have, from its Hugging Face name.
fn expected_shape(hf: &str, h: &HyperParams) -> Vec<usize> {
    let vector = |n| vec![n];
    match hf {
        "embeddings.word_embeddings.weight" => vec![h.vocab, h.hidden],
        "embeddings.position_embeddings.weight" => vec![h.max_positions, h.hidden],
        "embeddings.token_type_embeddings.weight" => vec![h.token_types, h.hidden],
        _ if hf.ends_with("intermediate.dense.weight") => vec![h.ffn, h.hidden],
        _ if hf.ends_with("intermediate.dense.bias") => vector(h.ffn),
        _ if hf.ends_with("output.dense.weight") && !hf.contains("attention") => {
            vec![h.hidden, h.ffn]
        }
        _ if hf.ends_with(".weight") && !hf.contains("LayerNorm") => vec![h.hidden, h.hidden],
        _ => vector(h.hidden),
    }
}

/// The `config.json` of the converted model.
pub fn config_json(h: &HyperParams) -> serde_json::Value {
    // The header stores eps as f32; print it the short way (1e-12), not as the
    // widened f64 (9.999999960041972e-13).
    let eps: f64 = h.layer_norm_eps.to_string().parse().unwrap_or(1e-12);
    json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.token_types,
        "initializer_range": 0.02,
        "layer_norm_eps": eps,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizer",
        "torch_dtype": "float32",
    })
}

/// Writes the whole folder into `dir` (which must exist and be empty).
pub fn write_folder(
    model: &E5s1<'_>,
    tokenizer_json: &[u8],
    meta: &FolderMeta,
    dir: &Path,
) -> Result<(), ImportError> {
    let h = &model.hparams;
    if !h.hidden.is_multiple_of(h.heads) {
        return Err(ImportError::Format(format!(
            "hidden size {} is not a multiple of {} heads",
            h.hidden, h.heads
        )));
    }

    // Every tensor BertModel needs must be present exactly once.
    let mut wanted: Vec<String> = [
        "emb.word.w",
        "emb.pos.w",
        "emb.type.w",
        "emb.ln.w",
        "emb.ln.b",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for l in 0..h.layers {
        for part in ["q", "k", "v", "ao", "aln", "fi", "fo", "oln"] {
            wanted.push(format!("l{l}.{part}.w"));
            wanted.push(format!("l{l}.{part}.b"));
        }
    }
    // E5S1 names the embedding tables without a `.w` (`emb.word`).
    let lookup = |n: &str| {
        model
            .tensor(n)
            .or_else(|| model.tensor(n.trim_end_matches(".w")))
    };

    let mut converted: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(wanted.len());
    for name in &wanted {
        let t =
            lookup(name).ok_or_else(|| ImportError::Format(format!("tensor {name} is missing")))?;
        let hf = hf_name(name).expect("every wanted name maps");
        let shape = expected_shape(&hf, h);
        if shape.iter().product::<usize>() != t.count {
            return Err(ImportError::Format(format!(
                "tensor {} has {} elements, {hf} needs {shape:?}",
                t.name, t.count
            )));
        }
        let bytes: Vec<u8> = t.to_f32().iter().flat_map(|x| x.to_le_bytes()).collect();
        converted.push((hf, shape, bytes));
    }
    let views = converted
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (name.as_str(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ImportError::Format(format!("safetensors view: {e}")))?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::tensor::serialize_to_file(views, Some(metadata), &dir.join("model.safetensors"))
        .map_err(|e| ImportError::Io {
        what: "writing model.safetensors".into(),
        source: std::io::Error::other(e.to_string()),
    })?;

    write_json(&dir.join("config.json"), &config_json(h))?;
    write_json(
        &dir.join("config_sentence_transformers.json"),
        &json!({
            "prompts": {"query": meta.query_prefix, "passage": meta.passage_prefix},
            "default_prompt_name": null,
        }),
    )?;
    write_json(
        &dir.join("sentence_bert_config.json"),
        &json!({"max_seq_length": h.max_positions, "do_lower_case": false}),
    )?;
    write_json(
        &dir.join("modules.json"),
        &json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ]),
    )?;
    let pooling_dir = dir.join("1_Pooling");
    fs::create_dir_all(&pooling_dir).map_err(|e| ImportError::io("creating 1_Pooling", e))?;
    write_json(
        &pooling_dir.join("config.json"),
        &json!({
            "word_embedding_dimension": h.hidden,
            "pooling_mode_cls_token": false,
            "pooling_mode_mean_tokens": true,
            "pooling_mode_max_tokens": false,
            "pooling_mode_mean_sqrt_len_tokens": false,
        }),
    )?;
    write_file(&dir.join("tokenizer.json"), tokenizer_json)?;
    write_file(&dir.join("NOTICE"), meta.notice.as_bytes())?;
    Ok(())
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), ImportError> {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    text.push('\n');
    write_file(path, text.as_bytes())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ImportError> {
    fs::write(path, bytes).map_err(|e| ImportError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e5s1::tests::quantize_q4_0;
    use crate::fetch::{default_meta, import};

    const H: usize = 32;
    const FFN: usize = 64;
    const VOCAB: usize = 5;
    const POS: usize = 8;

    /// A tiny but complete E5S1 file: 1 layer, hidden 32, 2 heads. Every
    /// weight is distinct (w[i] = seed + i/1000) so a mix-up shows.
    fn tiny_e5s1() -> Vec<u8> {
        let mut tensors: Vec<(String, u8, Vec<f32>)> = vec![
            ("emb.word".into(), 1, vec![0.0; VOCAB * H]),
            ("emb.pos".into(), 0, vec![0.0; POS * H]),
            ("emb.type".into(), 0, vec![0.0; 2 * H]),
            ("emb.ln.w".into(), 0, vec![0.0; H]),
            ("emb.ln.b".into(), 0, vec![0.0; H]),
        ];
        for (part, out, inp) in [
            ("q", H, H),
            ("k", H, H),
            ("v", H, H),
            ("ao", H, H),
            ("fi", FFN, H),
            ("fo", H, FFN),
        ] {
            tensors.push((format!("l0.{part}.w"), 1, vec![0.0; out * inp]));
            tensors.push((format!("l0.{part}.b"), 0, vec![0.0; out]));
        }
        for ln in ["aln", "oln"] {
            tensors.push((format!("l0.{ln}.w"), 0, vec![0.0; H]));
            tensors.push((format!("l0.{ln}.b"), 0, vec![0.0; H]));
        }
        for (seed, (_, _, w)) in tensors.iter_mut().enumerate() {
            for (i, x) in w.iter_mut().enumerate() {
                *x = seed as f32 * 0.1 - (i % 97) as f32 / 1000.0;
            }
        }
        let mut out = b"E5S1".to_vec();
        out.extend(1u32.to_le_bytes());
        for v in [H, 1, 2, FFN, VOCAB, POS, 2] {
            out.extend((v as i32).to_le_bytes());
        }
        out.extend(1e-12f32.to_le_bytes());
        out.extend(32i32.to_le_bytes());
        // An empty embedded tokenizer: 0 pieces, ids, blob length, one offset.
        out.extend(0i32.to_le_bytes());
        out.extend([0u8; 16]);
        out.extend(0u64.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(0i32.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        let payloads: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, dt, w)| match dt {
                1 => quantize_q4_0(w),
                _ => w.iter().flat_map(|x| x.to_le_bytes()).collect(),
            })
            .collect();
        let dir_len: usize = 4 + tensors
            .iter()
            .map(|(n, _, _)| 2 + n.len() + 1 + 4 + 16)
            .sum::<usize>();
        let mut offset = out.len() + dir_len;
        out.extend((tensors.len() as i32).to_le_bytes());
        for ((name, dt, w), p) in tensors.iter().zip(&payloads) {
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(name.as_bytes());
            out.push(*dt);
            out.extend((w.len() as u32).to_le_bytes());
            out.extend((offset as u64).to_le_bytes());
            out.extend((p.len() as u64).to_le_bytes());
            offset += p.len();
        }
        for p in payloads {
            out.extend(p);
        }
        out
    }

    #[test]
    fn import_writes_a_loadable_bert_folder_with_every_tensor() {
        let bytes = tiny_e5s1();
        let model = E5s1::parse(&bytes).unwrap();
        assert_eq!(model.hparams.layers, 1);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tiny");
        import(&bytes, b"{}", &default_meta(), &out).unwrap();

        let st = fs::read(out.join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&st).unwrap();
        let mut names = st.names();
        names.sort();
        assert_eq!(names.len(), 5 + 16);
        for t in &model.tensors {
            // The embedding tables have no `.w` in E5S1.
            let hf = hf_name(&t.name)
                .or_else(|| hf_name(&format!("{}.w", t.name)))
                .unwrap();
            let view = st.tensor(&hf).unwrap();
            assert_eq!(view.dtype(), Dtype::F32);
            assert_eq!(view.shape().iter().product::<usize>(), t.count, "{hf}");
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            assert_eq!(values, t.to_f32(), "{hf} holds {}'s values", t.name);
        }
        assert_eq!(
            st.tensor("encoder.layer.0.intermediate.dense.weight")
                .unwrap()
                .shape(),
            [FFN, H]
        );
        assert_eq!(
            st.tensor("encoder.layer.0.output.dense.weight")
                .unwrap()
                .shape(),
            [H, FFN]
        );
        assert_eq!(
            st.tensor("embeddings.word_embeddings.weight")
                .unwrap()
                .shape(),
            [VOCAB, H]
        );

        let config: serde_json::Value =
            serde_json::from_slice(&fs::read(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["layer_norm_eps"], 1e-12);
        assert_eq!(config["intermediate_size"], FFN);
        let prompts: serde_json::Value = serde_json::from_slice(
            &fs::read(out.join("config_sentence_transformers.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(prompts["prompts"]["query"], "query: ");
        // Nothing but the folder is left behind in the parent.
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn a_failed_import_leaves_nothing_behind() {
        let mut bytes = tiny_e5s1();
        bytes.truncate(bytes.len() - 10);
        let dir = tempfile::tempdir().unwrap();
        let err = import(&bytes, b"{}", &default_meta(), &dir.path().join("tiny")).unwrap_err();
        assert!(matches!(err, ImportError::Format(_)), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn names_follow_candle_bert() {
        let check = |e5: &str, hf: &str| assert_eq!(hf_name(e5).as_deref(), Some(hf), "{e5}");
        check("emb.word.w", "embeddings.word_embeddings.weight");
        check("emb.pos.w", "embeddings.position_embeddings.weight");
        check("emb.type.w", "embeddings.token_type_embeddings.weight");
        check("emb.ln.w", "embeddings.LayerNorm.weight");
        check("emb.ln.b", "embeddings.LayerNorm.bias");
        check("l0.q.w", "encoder.layer.0.attention.self.query.weight");
        check("l11.k.b", "encoder.layer.11.attention.self.key.bias");
        check("l2.v.w", "encoder.layer.2.attention.self.value.weight");
        check("l3.ao.w", "encoder.layer.3.attention.output.dense.weight");
        check(
            "l3.aln.b",
            "encoder.layer.3.attention.output.LayerNorm.bias",
        );
        check("l4.fi.w", "encoder.layer.4.intermediate.dense.weight");
        check("l4.fo.b", "encoder.layer.4.output.dense.bias");
        check("l5.oln.w", "encoder.layer.5.output.LayerNorm.weight");
        assert_eq!(hf_name("l5.pool.w"), None);
        assert_eq!(hf_name("sae.w"), None);
    }
}
