//! CPU kernels the generic Candle ops do slowly for us: self-attention read
//! straight from the fused QKV projection (scores, masked softmax and
//! context per head, no permuted copies, no score tensor), and the
//! epilogues of the matmuls (bias, bias + exact-erf GELU, bias + residual +
//! layer norm), each one pass.
//!
//! Candle runs every elementwise op as its own pass, and binary ones on a
//! barrier pool whose worker spins for ~25,000 iterations after each op,
//! fighting the matmul threads for the two cores (11% of a pipeline
//! profile); fusing them removed 72 such ops per e5-small forward pass.
//!
//! Candle's `gelu_erf` calls a scalar libm `erf` per element; in a profile of
//! one e5-small forward pass that was 18% of all time. Here `erf` is a
//! branch-free rational approximation (the one Eigen and XLA use: max error a
//! few ULP over all of f32) that LLVM vectorises, split over the cores.
//! Likewise the softmax adds the key mask, takes a vectorised `exp` and
//! normalises in one pass per row, where Candle adds the mask as its own
//! broadcast op and calls a scalar `expf`.

use std::ops::Range;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// Vector widths the kernels are compiled for, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Simd {
    Plain = 0,
    Avx2 = 1,
    Avx512 = 2,
}

/// Widest kernels allowed: `KHULASA_SIMD` (`plain`, `avx2`, `avx512`) read
/// once, or a test's choice; `u8::MAX` until read.
static SIMD_CAP: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(u8::MAX);

/// The widest kernels this CPU runs, capped by `KHULASA_SIMD` (so the
/// narrower ones can be run and checked on a machine that has wider).
pub(crate) fn simd() -> Simd {
    use std::sync::atomic::Ordering::Relaxed;
    let mut cap = SIMD_CAP.load(Relaxed);
    if cap == u8::MAX {
        cap = match std::env::var("KHULASA_SIMD").as_deref() {
            Ok("plain") => Simd::Plain,
            Ok("avx2") => Simd::Avx2,
            _ => Simd::Avx512,
        } as u8;
        SIMD_CAP.store(cap, Relaxed);
    }
    let detected = detected_simd();
    if (detected as u8) <= cap {
        detected
    } else if cap >= Simd::Avx2 as u8 {
        Simd::Avx2
    } else {
        Simd::Plain
    }
}

fn detected_simd() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        let fma = std::arch::is_x86_feature_detected!("fma");
        if fma && std::arch::is_x86_feature_detected!("avx512f") {
            return Simd::Avx512;
        }
        if fma && std::arch::is_x86_feature_detected!("avx2") {
            return Simd::Avx2;
        }
    }
    Simd::Plain
}

#[cfg(test)]
pub(crate) fn cap_simd_for_tests(cap: Simd) {
    SIMD_CAP.store(cap as u8, std::sync::atomic::Ordering::Relaxed);
}

/// Runs `f` once per vector width this CPU has: the body is compiled for
/// AVX-512, for AVX2+FMA and plainly, and the widest available is picked
/// at run time ([`simd`]), so one binary runs everywhere. (Without a target
/// feature, `mul_add` is a libm call per element, so the plain build uses
/// [`Separate`] multiply-adds through the body's `M`.)
macro_rules! dispatch {
    ($name:ident ( $($arg:ident : $ty:ty),* ) $body:block) => {
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body<M: MulAdd>($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,fma")]
                #[allow(clippy::too_many_arguments)]
                fn wide($($arg: $ty),*) { body::<Fused>($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn narrow($($arg: $ty),*) { body::<Fused>($($arg),*) }
                match simd() {
                    // SAFETY: `simd` only names features this CPU has.
                    Simd::Avx512 => return unsafe { wide($($arg),*) },
                    // SAFETY: as above.
                    Simd::Avx2 => return unsafe { narrow($($arg),*) },
                    Simd::Plain => {}
                }
            }
            body::<Separate>($($arg),*)
        }
    };
}

/// How a kernel build multiplies and adds.
trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// One fused instruction: the AVX-512 and AVX2+FMA builds.
struct Fused;

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// The plain build: on x86 without FMA, `f32::mul_add` is a libm call per
/// element (the whole encoder ran at 332 tokens/s against 5,476 with AVX2),
/// so multiply, then add. Other architectures have FMA in their baseline.
struct Separate;

impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        if cfg!(any(target_arch = "x86", target_arch = "x86_64")) {
            a * b + c
        } else {
            a.mul_add(b, c)
        }
    }
}

/// exp(x) for f32 (relative error < 2e-7): Cody–Waite reduction to
/// |r| ≤ ln2/2 and a degree-6 polynomial, scaled by 2^n through the
/// exponent bits. Inputs below −87 give 0, as a masked key must.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let c = x.clamp(-87.0, 88.0);
    let n = (c * std::f32::consts::LOG2_E + 0.5).floor();
    let r = c - n * LN2_HI - n * LN2_LO;
    let mut p = 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.0 { 0.0 } else { p * scale }
}

/// Lanes of the independent accumulators in the reductions below: float
/// sums and maxima only vectorise when written as separate lanes (LLVM may
/// not reorder one running sum).
const LANES: usize = 16;

#[inline(always)]
fn max_of(xs: &[f32]) -> f32 {
    let mut lanes = [f32::MIN; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = if x > *l { x } else { *l };
        }
    }
    let tail = chunks.remainder().iter().fold(f32::MIN, |m, &x| m.max(x));
    lanes.iter().fold(tail, |m, &x| m.max(x))
}

#[inline(always)]
fn sum_of(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    chunks.remainder().iter().sum::<f32>() + lanes.iter().sum::<f32>()
}

/// erf(x) for f32, |error| < 2e-7 (clamped to ±4, where erf is ±1 in f32).
#[inline(always)]
fn erf<M: MulAdd>(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = M::mul_add(x2, -2.726_142_3e-10, 2.770_681_4e-8);
    p = M::mul_add(x2, p, -2.101_024e-6);
    p = M::mul_add(x2, p, -5.692_506_4e-5);
    p = M::mul_add(x2, p, -7.349_906_3e-4);
    p = M::mul_add(x2, p, -2.954_600_1e-3);
    p = M::mul_add(x2, p, -1.609_603_3e-2);
    let mut q = M::mul_add(x2, -1.456_607_2e-5, -2.133_740_6e-4);
    q = M::mul_add(x2, q, -1.682_827e-3);
    q = M::mul_add(x2, q, -7.373_329e-3);
    q = M::mul_add(x2, q, -1.426_474e-2);
    x * p / q
}

/// GELU with the exact (erf) form, as BERT's `gelu` activation.
#[inline(always)]
fn gelu<M: MulAdd>(x: f32) -> f32 {
    0.5 * x * (1.0 + erf::<M>(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Elements below which splitting over threads costs more than it saves.
const PARALLEL_MIN: usize = 1 << 16;

/// Cores to split a kernel over (read once: the lookup is not free).
fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Fills `dst` (`rows` rows of `width`) by `f(rows, dst_rows)`, split over
/// the cores when the work is big enough to pay for it.
fn by_rows(
    rows: usize,
    width: usize,
    dst: &mut [f32],
    f: impl Fn(Range<usize>, &mut [f32]) + Sync,
) {
    let threads = threads();
    if threads > 1 && rows > 1 && rows * width >= PARALLEL_MIN {
        let per = rows.div_ceil(threads);
        let f = &f;
        std::thread::scope(|s| {
            for (i, out) in dst.chunks_mut(per * width).enumerate() {
                let first = i * per;
                s.spawn(move || f(first..first + out.len() / width, out));
            }
        });
    } else {
        f(0..rows, dst);
    }
}

dispatch!(bias_rows(src: &[f32], bias: &[f32], dst: &mut [f32]) {
    for (row, out) in src.chunks_exact(bias.len()).zip(dst.chunks_exact_mut(bias.len())) {
        for ((o, &s), &b) in out.iter_mut().zip(row).zip(bias) {
            *o = s + b;
        }
    }
});

dispatch!(bias_gelu_rows(src: &[f32], bias: &[f32], dst: &mut [f32]) {
    for (row, out) in src.chunks_exact(bias.len()).zip(dst.chunks_exact_mut(bias.len())) {
        for ((o, &s), &b) in out.iter_mut().zip(row).zip(bias) {
            *o = gelu::<M>(s + b);
        }
    }
});

dispatch!(residual_norm_rows(src: &[f32], residual: &[f32], params: &[f32], eps: f32, dst: &mut [f32]) {
    let width = params.len() / 3;
    let (bias, rest) = params.split_at(width);
    let (gamma, beta) = rest.split_at(width);
    let n = width as f32;
    for ((row, res), out) in src
        .chunks_exact(width)
        .zip(residual.chunks_exact(width))
        .zip(dst.chunks_exact_mut(width))
    {
        for (((o, &s), &r), &b) in out.iter_mut().zip(row).zip(res).zip(bias) {
            *o = s + b + r;
        }
        let mean = sum_of(out) / n;
        let mut lanes = [0f32; LANES];
        let mut chunks = out.chunks_exact(LANES);
        for c in &mut chunks {
            for (l, &x) in lanes.iter_mut().zip(c) {
                *l += (x - mean) * (x - mean);
            }
        }
        let tail: f32 = chunks.remainder().iter().map(|&x| (x - mean) * (x - mean)).sum();
        let var = (tail + lanes.iter().sum::<f32>()) / n;
        let inv = 1.0 / (var + eps).sqrt();
        for ((o, &g), &b) in out.iter_mut().zip(gamma).zip(beta) {
            *o = (*o - mean) * inv * g + b;
        }
    }
});

/// One head of one sequence: `q`, `k`, `v` are read from the fused QKV rows
/// (`len` rows of `stride` floats, the head's columns at `q_at`, `k_at`,
/// `v_at`); `bias` is the key mask; the context goes to `out` (`len × d`).
/// `kt`, `vv` and `scores` are scratch (`d × len`, `len × d`, two of `len`).
#[allow(clippy::too_many_arguments)]
fn attend_head(
    qkv: &[f32],
    stride: usize,
    (q_at, k_at, v_at): (usize, usize, usize),
    d: usize,
    bias: &[f32],
    kt: &mut [f32],
    vv: &mut [f32],
    scores: &mut [Vec<f32>],
    out: &mut [f32],
) {
    let len = bias.len();
    for (j, row) in qkv.chunks_exact(stride).enumerate() {
        for c in 0..d {
            kt[c * len + j] = row[k_at + c];
        }
        vv[j * d..(j + 1) * d].copy_from_slice(&row[v_at..v_at + d]);
    }
    attend_rows(qkv, stride, q_at, d, bias, kt, vv, scores, out);
}

/// Keys scored at a time: four registers' worth, four independent chains.
const KEY_TILE: usize = 4 * LANES;

/// Attention for `R` query rows at once (each key tile loaded once for all
/// of them): `q[r]` are the rows' queries, `scores[r]` their scratch,
/// `out[r]` their contexts.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_block<M: MulAdd, const R: usize>(
    q: [&[f32]; R],
    d: usize,
    bias: &[f32],
    kt: &[f32],
    vv: &[f32],
    scores: &mut [Vec<f32>],
    out: &mut [&mut [f32]; R],
) {
    let len = bias.len();
    let mut j = 0;
    while j + KEY_TILE <= len {
        let mut acc = [[0f32; KEY_TILE]; R];
        for a in acc.iter_mut() {
            a.copy_from_slice(&bias[j..j + KEY_TILE]);
        }
        for (c, kc) in kt.chunks_exact(len).enumerate() {
            let k: &[f32; KEY_TILE] = kc[j..j + KEY_TILE].try_into().expect("a whole tile");
            for r in 0..R {
                let qc = q[r][c];
                for (a, &kv) in acc[r].iter_mut().zip(k) {
                    *a = M::mul_add(qc, kv, *a);
                }
            }
        }
        for r in 0..R {
            scores[r][j..j + KEY_TILE].copy_from_slice(&acc[r]);
        }
        j += KEY_TILE;
    }
    for r in 0..R {
        for jj in j..len {
            scores[r][jj] = kt
                .chunks_exact(len)
                .zip(q[r])
                .fold(bias[jj], |s, (kc, &qc)| M::mul_add(qc, kc[jj], s));
        }
    }
    let mut inv = [0f32; R];
    for r in 0..R {
        let s = &mut scores[r][..len];
        let max = max_of(s);
        for x in s.iter_mut() {
            *x = exp(*x - max);
        }
        inv[r] = 1.0 / sum_of(s);
    }
    // The context a lane-wide slice of the head at a time, two keys per
    // step, each row's sums in registers.
    let mut c0 = 0;
    while c0 + LANES <= d {
        let mut acc = [[[0f32; LANES]; 2]; R];
        let mut pairs = vv.chunks_exact(2 * d);
        for (step, v) in (&mut pairs).enumerate() {
            let x0: &[f32; LANES] = v[c0..c0 + LANES].try_into().expect("lanes");
            let x1: &[f32; LANES] = v[d + c0..d + c0 + LANES].try_into().expect("lanes");
            for r in 0..R {
                let (p0, p1) = (scores[r][2 * step], scores[r][2 * step + 1]);
                for (a, &x) in acc[r][0].iter_mut().zip(x0) {
                    *a = M::mul_add(p0, x, *a);
                }
                for (a, &x) in acc[r][1].iter_mut().zip(x1) {
                    *a = M::mul_add(p1, x, *a);
                }
            }
        }
        if let Some(v) = pairs.remainder().get(..d) {
            for r in 0..R {
                let p = scores[r][len - 1];
                for (a, &x) in acc[r][0].iter_mut().zip(&v[c0..c0 + LANES]) {
                    *a = M::mul_add(p, x, *a);
                }
            }
        }
        for r in 0..R {
            for (l, x) in out[r][c0..c0 + LANES].iter_mut().enumerate() {
                *x = (acc[r][0][l] + acc[r][1][l]) * inv[r];
            }
        }
        c0 += LANES;
    }
    for r in 0..R {
        for c in c0..d {
            out[r][c] = scores[r][..len]
                .iter()
                .zip(vv.chunks_exact(d))
                .map(|(&p, v)| p * v[c])
                .sum::<f32>()
                * inv[r];
        }
    }
}

dispatch!(attend_rows(
    qkv: &[f32],
    stride: usize,
    q_at: usize,
    d: usize,
    bias: &[f32],
    kt: &[f32],
    vv: &[f32],
    scores: &mut [Vec<f32>],
    out: &mut [f32]
) {
    let mut rows = qkv.chunks_exact(stride).zip(out.chunks_exact_mut(d));
    loop {
        match (rows.next(), rows.next()) {
            (Some((r0, o0)), Some((r1, o1))) => {
                let q = [&r0[q_at..q_at + d], &r1[q_at..q_at + d]];
                attend_block::<M, 2>(q, d, bias, kt, vv, scores, &mut [o0, o1]);
            }
            (Some((r0, o0)), None) => {
                attend_block::<M, 1>([&r0[q_at..q_at + d]], d, bias, kt, vv, scores, &mut [o0]);
                break;
            }
            _ => break,
        }
    }
});

/// Multi-head self-attention read straight from the fused QKV projection:
/// no permuted copies of q, k and v and no `[heads, len, len]` score
/// tensor; each (sequence, head) is one task, shared over the cores.
struct Attention {
    heads: usize,
}

impl CustomOp2 for Attention {
    fn name(&self) -> &'static str {
        "khulasa-attention"
    }

    /// `s1`: `[b, len, 3·hidden]`, queries pre-scaled; `s2`: the key bias
    /// `[b, len]`. Returns the context `[b, len, hidden]`.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (qkv, bias) = (
            cpu_slice(self.name(), s1, l1)?,
            cpu_slice(self.name(), s2, l2)?,
        );
        let (b, len, h3) = l1.shape().dims3()?;
        let h = h3 / 3;
        if h3 % 3 != 0 || h % self.heads != 0 || bias.len() != b * len {
            candle_core::bail!("{}: shapes do not match", self.name());
        }
        let d = h / self.heads;
        let tasks = b * self.heads;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = |results: &mut Vec<(usize, Vec<f32>)>| {
            let (mut kt, mut vv) = (vec![0f32; d * len], vec![0f32; len * d]);
            let mut scores = vec![vec![0f32; len]; 2];
            loop {
                let t = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if t >= tasks {
                    break;
                }
                let (r, head) = (t / self.heads, t % self.heads);
                let rows = &qkv[r * len * h3..(r + 1) * len * h3];
                let mut out = vec![0f32; len * d];
                let at = (head * d, h + head * d, 2 * h + head * d);
                attend_head(
                    rows,
                    h3,
                    at,
                    d,
                    &bias[r * len..(r + 1) * len],
                    &mut kt,
                    &mut vv,
                    &mut scores,
                    &mut out,
                );
                results.push((t, out));
            }
        };
        let threads = threads().min(tasks).max(1);
        let mut parts: Vec<(usize, Vec<f32>)> = Vec::with_capacity(tasks);
        if threads > 1 {
            let chunks: Vec<Vec<(usize, Vec<f32>)>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        s.spawn(|| {
                            let mut mine = Vec::new();
                            work(&mut mine);
                            mine
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("attention worker"))
                    .collect()
            });
            parts.extend(chunks.into_iter().flatten());
        } else {
            work(&mut parts);
        }
        let mut dst = vec![0f32; b * len * h];
        for (t, out) in parts {
            let (r, head) = (t / self.heads, t % self.heads);
            for (i, o) in out.chunks_exact(d).enumerate() {
                let at = (r * len + i) * h + head * d;
                dst[at..at + d].copy_from_slice(o);
            }
        }
        Ok((CpuStorage::F32(dst), Shape::from((b, len, h))))
    }
}

/// Self-attention context `[b, len, hidden]` from the fused projection
/// `qkv` (`[b, len, 3·hidden]`, queries pre-scaled) and the additive key
/// bias (`[b, len]`), on the CPU; `None` elsewhere (the caller runs the
/// generic ops).
pub(crate) fn attention(qkv: &Tensor, key_bias: &Tensor, heads: usize) -> Option<Result<Tensor>> {
    fast_path(&[qkv, key_bias]).then(|| qkv.apply_op2_no_bwd(key_bias, &Attention { heads }))
}

/// Checks a kernel input: contiguous f32 on the CPU, as a slice.
fn cpu_slice<'a>(op: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: f32 only");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: contiguous inputs only");
    };
    Ok(&data[start..end])
}

/// `x + bias`, then GELU when `gelu`: a linear layer's epilogue.
struct BiasAct {
    gelu: bool,
}

impl CustomOp2 for BiasAct {
    fn name(&self) -> &'static str {
        "khulasa-bias-act"
    }

    /// `s1`: `[rows, width]`; `s2`: the bias, `[width]`.
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (src, bias) = (
            cpu_slice(self.name(), s1, l1)?,
            cpu_slice(self.name(), s2, l2)?,
        );
        let width = bias.len();
        if width == 0 || src.len() % width != 0 || l1.dims().last() != Some(&width) {
            candle_core::bail!("{}: the bias must match the last dimension", self.name());
        }
        let mut dst = vec![0f32; src.len()];
        by_rows(src.len() / width, width, &mut dst, |rows, out| {
            let src = &src[rows.start * width..rows.end * width];
            if self.gelu {
                bias_gelu_rows(src, bias, out);
            } else {
                bias_rows(src, bias, out);
            }
        });
        Ok((CpuStorage::F32(dst), l1.shape().clone()))
    }
}

/// LayerNorm(x + bias + residual): a dense layer's epilogue in BERT.
struct ResidualNorm {
    eps: f32,
}

impl CustomOp3 for ResidualNorm {
    fn name(&self) -> &'static str {
        "khulasa-residual-norm"
    }

    /// `s1`: `[rows, width]`; `s2`: the residual, same shape; `s3`: `[3,
    /// width]`, the dense bias, then the norm's weight and bias.
    #[allow(clippy::too_many_arguments)]
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let src = cpu_slice(self.name(), s1, l1)?;
        let residual = cpu_slice(self.name(), s2, l2)?;
        let params = cpu_slice(self.name(), s3, l3)?;
        let width = params.len() / 3;
        if width == 0
            || params.len() != 3 * width
            || residual.len() != src.len()
            || l1.dims().last() != Some(&width)
        {
            candle_core::bail!("{}: shapes do not match", self.name());
        }
        let mut dst = vec![0f32; src.len()];
        by_rows(src.len() / width, width, &mut dst, |rows, out| {
            let span = rows.start * width..rows.end * width;
            residual_norm_rows(&src[span.clone()], &residual[span], params, self.eps, out);
        });
        Ok((CpuStorage::F32(dst), l1.shape().clone()))
    }
}

fn fast_path(xs: &[&Tensor]) -> bool {
    xs.iter()
        .all(|x| x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && x.is_contiguous())
}

/// `x + bias` over the last dimension, then exact GELU when `gelu`.
pub(crate) fn bias_act(x: &Tensor, bias: &Tensor, gelu: bool) -> Result<Tensor> {
    if fast_path(&[x, bias]) {
        x.apply_op2_no_bwd(bias, &BiasAct { gelu })
    } else {
        let y = x.broadcast_add(bias)?;
        if gelu { y.gelu_erf() } else { Ok(y) }
    }
}

/// LayerNorm(x + bias + residual) with `params` = `[bias; weight; beta]`
/// (`[3, width]`).
pub(crate) fn residual_norm(
    x: &Tensor,
    residual: &Tensor,
    params: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    if fast_path(&[x, residual, params]) {
        x.apply_op3_no_bwd(residual, params, &ResidualNorm { eps })
    } else {
        let y = (x.broadcast_add(&params.get(0)?)? + residual)?;
        candle_nn::ops::layer_norm(&y, &params.get(1)?, &params.get(2)?, eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 by its Taylor series (exact enough for |x| ≤ 4 with 80 terms).
    fn erf_reference(x: f64) -> f64 {
        let mut sum = 0.0;
        let mut term = x;
        for n in 0..200 {
            sum += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    fn erf_within<M: MulAdd>(bound: f64) {
        let mut worst = 0f64;
        for i in -4000..=4000 {
            let x = i as f64 / 1000.0;
            let err = (erf::<M>(x as f32) as f64 - erf_reference(x)).abs();
            worst = worst.max(err);
        }
        assert!(worst < bound, "worst |error| {worst:e}");
        assert!((erf::<M>(9.0) - 1.0).abs() < 2e-7 && (erf::<M>(-9.0) + 1.0).abs() < 2e-7);
        assert_eq!(erf::<M>(0.0), 0.0);
    }

    #[test]
    fn erf_matches_a_high_precision_reference_fused_or_not() {
        erf_within::<Fused>(5e-7);
        erf_within::<Separate>(5e-7);
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// `rows × width` values in about [-11, 11], varied.
    fn values(rows: usize, width: usize, seed: usize) -> Tensor {
        let v: Vec<f32> = (0..rows * width)
            .map(|i| (((i + seed) * 7919) % 2000) as f32 / 90.0 - 11.0)
            .collect();
        Tensor::from_vec(v, (rows, width), &candle_core::Device::Cpu).unwrap()
    }

    /// Every kernel at every vector width this CPU has, against Candle's
    /// ops: a machine without AVX-512 (or AVX2) runs the narrower code.
    #[test]
    fn every_vector_width_gives_the_same_results() {
        let widths: Vec<Simd> = [Simd::Plain, Simd::Avx2, Simd::Avx512]
            .into_iter()
            .filter(|&w| w <= detected_simd())
            .collect();
        for width in widths {
            cap_simd_for_tests(width);
            assert_eq!(simd(), width);
            bias_and_gelu_agree_with_candles_ops_split_or_not();
            residual_norm_agrees_with_candles_ops_split_or_not();
            attention_agrees_with_candles_ops();
        }
        cap_simd_for_tests(Simd::Avx512);
    }

    /// The fused attention against the same maths in Candle's ops, with
    /// masked keys, lengths that are not a multiple of the tiles and head
    /// sizes that are not a multiple of the lanes.
    fn attention_agrees_with_candles_ops() {
        for (b, len, heads, d) in [(2, 37, 3, 16), (1, 70, 2, 20), (3, 64, 4, 32)] {
            let h = heads * d;
            let qkv = (values(b * len, 3 * h, b + len) / 7.0).unwrap();
            let qkv = qkv.reshape((b, len, 3 * h)).unwrap();
            // The last 5 keys of every sequence but the first are padding.
            let bias: Vec<f32> = (0..b * len)
                .map(|i| {
                    if i / len > 0 && i % len >= len - 5 {
                        f32::MIN
                    } else {
                        0.0
                    }
                })
                .collect();
            let bias = Tensor::from_vec(bias, (b, len), &candle_core::Device::Cpu).unwrap();
            let ours = attention(&qkv, &bias, heads).unwrap().unwrap();
            let parts = qkv
                .reshape((b, len, 3, heads, d))
                .unwrap()
                .permute((2, 0, 3, 1, 4))
                .unwrap();
            let [q, k, v] = [0, 1, 2].map(|i| parts.get(i).unwrap().contiguous().unwrap());
            let scores = q.matmul(&k.t().unwrap()).unwrap();
            let scores = scores
                .broadcast_add(&bias.reshape((b, 1, 1, len)).unwrap())
                .unwrap();
            let probs = candle_nn::ops::softmax_last_dim(&scores).unwrap();
            let reference = probs
                .matmul(&v)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .reshape((b, len, h))
                .unwrap();
            let diff = max_diff(&ours, &reference);
            assert!(diff < 1e-5, "{b}x{len}, {heads} heads of {d}: {diff}");
        }
    }

    #[test]
    fn fused_attention_agrees_with_candles_ops() {
        attention_agrees_with_candles_ops();
    }

    #[test]
    fn bias_and_gelu_agree_with_candles_ops_split_or_not() {
        // 512 rows are split over the cores; 3 rows are not.
        for rows in [512, 3] {
            let x = values(rows, 384, 1);
            let bias = values(1, 384, 2).squeeze(0).unwrap();
            let plain = x.broadcast_add(&bias).unwrap();
            assert!(max_diff(&bias_act(&x, &bias, false).unwrap(), &plain) < 1e-6);
            let gelu = bias_act(&x, &bias, true).unwrap();
            let reference = plain.gelu_erf().unwrap();
            assert!(max_diff(&gelu, &reference) < 5e-6, "{rows} rows");
        }
    }

    #[test]
    fn residual_norm_agrees_with_candles_ops_split_or_not() {
        for rows in [512, 3] {
            let x = values(rows, 384, 3);
            let residual = values(rows, 384, 4);
            let params = Tensor::cat(
                &[
                    values(1, 384, 5),
                    (values(1, 384, 6) / 11.0).unwrap(),
                    values(1, 384, 7),
                ],
                0,
            )
            .unwrap();
            let ours = residual_norm(&x, &residual, &params, 1e-12).unwrap();
            let y = (x.broadcast_add(&params.get(0).unwrap()).unwrap() + &residual).unwrap();
            let reference = candle_nn::ops::layer_norm(
                &y,
                &params.get(1).unwrap(),
                &params.get(2).unwrap(),
                1e-12,
            )
            .unwrap();
            assert!(max_diff(&ours, &reference) < 2e-5, "{rows} rows");
        }
    }

    #[test]
    fn exp_matches_std_and_flushes_masked_keys_to_zero() {
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let (a, b) = (exp(x), x.exp());
            assert!((a - b).abs() <= 3e-7 * b, "{x}: {a} vs {b}");
        }
        assert_eq!(exp(f32::MIN + 3.0), 0.0);
    }
}
