//! The word-embedding table, kept small: 250,037 × 384 for e5-small, 82% of
//! the weights (384 MB in f32).
//!
//! When every 32-value block of an f32 table is exactly `(q − 8) · d` for
//! 4-bit `q` and an f16 scale `d` — as the default model's is, since it was
//! converted from Q4_0 weights — the table is stored as those Q4_0 blocks
//! (54 MB) and rows are decoded as they are looked up, giving back exactly
//! the f32 values. Any other table is kept in f16 on the CPU (192 MB), and
//! in f32 on GPUs.

use candle_core::{DType, Device, Result, Tensor};

/// Values per block.
const QK: usize = 32;
/// Bytes per block: an f16 scale and 16 bytes of nibbles.
const BLOCK_BYTES: usize = 2 + QK / 2;

pub(crate) enum WordTable {
    /// Q4_0 blocks, row after row.
    Q4 {
        blocks: Vec<u8>,
        rows: usize,
        dim: usize,
    },
    /// A `[rows, dim]` tensor (f16 on the CPU, f32 elsewhere).
    Dense(Tensor),
}

impl WordTable {
    /// Reads the table from the mapped weights file.
    pub(crate) fn load(
        view: &safetensors::tensor::TensorView<'_>,
        device: &Device,
    ) -> Result<Self> {
        let &[rows, dim] = view.shape() else {
            candle_core::bail!(
                "word embeddings: expected 2 dimensions, found {:?}",
                view.shape()
            );
        };
        if device.is_cpu() && view.dtype() == safetensors::Dtype::F32 {
            let bytes = view.data();
            let value = |i: usize| {
                let b = &bytes[4 * i..4 * i + 4];
                f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            };
            if dim.is_multiple_of(QK)
                && let Some(blocks) = exact_q4(bytes)
            {
                tracing::debug!(
                    rows,
                    dim,
                    bytes = blocks.len(),
                    "word embeddings: exact Q4_0"
                );
                return Ok(Self::Q4 { blocks, rows, dim });
            }
            tracing::debug!(rows, dim, "word embeddings: f16");
            let halves: Vec<half::f16> = (0..rows * dim)
                .map(|i| half::f16::from_f32(value(i)))
                .collect();
            return Ok(Self::Dense(Tensor::from_vec(halves, (rows, dim), device)?));
        }
        let dense = candle_core::safetensors::Load::load(view, device)?;
        Ok(Self::Dense(dense.to_dtype(DType::F32)?))
    }

    /// `(rows, dim)`.
    pub(crate) fn shape(&self) -> (usize, usize) {
        match self {
            Self::Q4 { rows, dim, .. } => (*rows, *dim),
            Self::Dense(t) => t.dims2().unwrap_or((0, 0)),
        }
    }

    /// The f32 rows of `ids` (any shape), as `[ids, dim]`.
    pub(crate) fn lookup(&self, ids: &Tensor) -> Result<Tensor> {
        let ids = ids.flatten_all()?;
        match self {
            Self::Dense(t) => t.index_select(&ids, 0)?.to_dtype(DType::F32),
            Self::Q4 { blocks, rows, dim } => {
                let ids = ids.to_vec1::<u32>()?;
                let per_row = dim / QK * BLOCK_BYTES;
                let mut out = Vec::with_capacity(ids.len() * dim);
                for &id in &ids {
                    let id = id as usize;
                    if id >= *rows {
                        candle_core::bail!("token id {id} is outside the vocabulary of {rows}");
                    }
                    for block in blocks[id * per_row..(id + 1) * per_row].chunks_exact(BLOCK_BYTES)
                    {
                        decode(block, &mut out);
                    }
                }
                Tensor::from_vec(out, (ids.len(), *dim), &Device::Cpu)
            }
        }
    }
}

/// Appends the 32 values of one block: low nibbles are values 0..16, high
/// nibbles 16..32 (ggml's Q4_0 layout).
fn decode(block: &[u8], out: &mut Vec<f32>) {
    let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
    let nibbles = &block[2..];
    out.extend(nibbles.iter().map(|b| ((b & 0x0f) as i32 - 8) as f32 * d));
    out.extend(nibbles.iter().map(|b| ((b >> 4) as i32 - 8) as f32 * d));
}

/// Q4_0 blocks that decode to exactly the little-endian f32 `bytes`, or
/// `None` if some block is not of that form (then the table is not a
/// dequantised Q4_0 one). Works block by block: no f32 copy of the table.
fn exact_q4(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut blocks = Vec::with_capacity(bytes.len() / 4 / QK * BLOCK_BYTES);
    let mut block = [0f32; QK];
    for chunk in bytes.chunks_exact(4 * QK) {
        for (v, b) in block.iter_mut().zip(chunk.chunks_exact(4)) {
            *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        let m = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        if m == 0.0 {
            blocks.extend_from_slice(&half::f16::ZERO.to_le_bytes());
            blocks.extend_from_slice(&[0x88; QK / 2]);
            continue;
        }
        // The largest magnitude is |q − 8| · |d| with |q − 8| in 1..=8, and
        // d may be negative: try each.
        let found = (1..=8)
            .rev()
            .flat_map(|k| [m / k as f32, -m / k as f32])
            .find_map(|d| {
                let d16 = half::f16::from_f32(d);
                let d = d16.to_f32();
                let q: Option<Vec<u8>> = block
                    .iter()
                    .map(|&v| {
                        let n = (v / d).round();
                        ((-8.0..=7.0).contains(&n) && n * d == v).then_some((n as i32 + 8) as u8)
                    })
                    .collect();
                q.map(|q| (d16, q))
            });
        let (d, q) = found?;
        blocks.extend_from_slice(&d.to_le_bytes());
        blocks.extend((0..QK / 2).map(|j| q[j] | (q[j + QK / 2] << 4)));
    }
    Some(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks as a Q4_0 quantiser writes them, with scales of both signs.
    fn q4_values(rows: usize, dim: usize) -> Vec<f32> {
        let mut out = Vec::new();
        let mut block = Vec::new();
        for b in 0..rows * dim / QK {
            let d =
                half::f16::from_f32(if b % 2 == 0 { 0.013 } else { -0.021 } * (1 + b % 5) as f32);
            block.clear();
            block.extend_from_slice(&d.to_le_bytes());
            block.extend(
                (0..QK / 2)
                    .map(|j| ((b * 7 + j * 3) % 16) as u8 | ((((b + j * 5) % 16) as u8) << 4)),
            );
            decode(&block, &mut out);
        }
        out
    }

    fn le_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn a_dequantised_q4_table_is_recovered_exactly() {
        let values = q4_values(10, 64);
        let blocks = exact_q4(&le_bytes(&values)).expect("every block is exact");
        assert_eq!(blocks.len(), values.len() / QK * BLOCK_BYTES);
        let table = WordTable::Q4 {
            blocks,
            rows: 10,
            dim: 64,
        };
        let ids = Tensor::new(&[3u32, 0, 9, 3], &Device::Cpu).unwrap();
        let rows = table.lookup(&ids).unwrap().to_vec2::<f32>().unwrap();
        for (row, id) in rows.iter().zip([3usize, 0, 9, 3]) {
            assert_eq!(row.as_slice(), &values[id * 64..(id + 1) * 64]);
        }
        let outside = Tensor::new(&[10u32], &Device::Cpu).unwrap();
        assert!(table.lookup(&outside).is_err());
    }

    #[test]
    fn any_other_table_is_not_taken_for_q4() {
        let mut values = q4_values(2, 32);
        values[5] += 1e-4;
        assert!(exact_q4(&le_bytes(&values)).is_none());
        let zeros = vec![0f32; 64];
        let blocks = exact_q4(&le_bytes(&zeros)).unwrap();
        let mut out = Vec::new();
        decode(&blocks[..BLOCK_BYTES], &mut out);
        assert!(out.iter().all(|&v| v == 0.0));
    }
}
