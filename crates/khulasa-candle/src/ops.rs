//! CPU kernels the generic Candle ops do slowly for us: exact-erf GELU.
//!
//! Candle's `gelu_erf` calls a scalar libm `erf` per element; in a profile of
//! one e5-small forward pass that was 18% of all time. Here `erf` is a
//! branch-free rational approximation (the one Eigen and XLA use: max error a
//! few ULP over all of f32) that LLVM vectorises, split over the cores.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// erf(x) for f32, |error| < 2e-7 (clamped to ±4, where erf is ±1 in f32).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2.mul_add(-2.726_142_3e-10, 2.770_681_4e-8);
    p = x2.mul_add(p, -2.101_024e-6);
    p = x2.mul_add(p, -5.692_506_4e-5);
    p = x2.mul_add(p, -7.349_906_3e-4);
    p = x2.mul_add(p, -2.954_600_1e-3);
    p = x2.mul_add(p, -1.609_603_3e-2);
    let mut q = x2.mul_add(-1.456_607_2e-5, -2.133_740_6e-4);
    q = x2.mul_add(q, -1.682_827e-3);
    q = x2.mul_add(q, -7.373_329e-3);
    q = x2.mul_add(q, -1.426_474e-2);
    x * p / q
}

/// GELU with the exact (erf) form, as BERT's `gelu` activation.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_loop(src: &[f32], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = gelu(s);
    }
}

/// The same loop compiled for AVX-512 (16 lanes, fused multiply-add).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn gelu_avx512(src: &[f32], dst: &mut [f32]) {
    gelu_loop(src, dst);
}

/// The same loop compiled for AVX2 and FMA (8 lanes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_avx2(src: &[f32], dst: &mut [f32]) {
    gelu_loop(src, dst);
}

/// Picks the widest vector unit this CPU has at run time, so one binary
/// runs everywhere and uses AVX-512 where there is one. (Without a target
/// feature `mul_add` is a call into libm per element: slower than libm erf.)
fn gelu_slice(src: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { gelu_avx512(src, dst) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            return unsafe { gelu_avx2(src, dst) };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // NEON and FMA are baseline on aarch64.
        return gelu_loop(src, dst);
    }
    #[allow(unreachable_code)]
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = gelu_plain(s);
    }
}

/// `gelu` without fused multiply-add, for CPUs that lack it.
fn gelu_plain(x: f32) -> f32 {
    let x = x * std::f32::consts::FRAC_1_SQRT_2;
    let c = x.clamp(-4.0, 4.0);
    let x2 = c * c;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p - 2.101_024e-6;
    p = x2 * p - 5.692_506_4e-5;
    p = x2 * p - 7.349_906_3e-4;
    p = x2 * p - 2.954_600_1e-3;
    p = x2 * p - 1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
    q = x2 * q - 1.682_827e-3;
    q = x2 * q - 7.373_329e-3;
    q = x2 * q - 1.426_474e-2;
    let erf = c * p / q;
    x * std::f32::consts::FRAC_1_SQRT_2 * (1.0 + erf)
}

/// Elements below which splitting over threads costs more than it saves.
const PARALLEL_MIN: usize = 1 << 16;

struct FastGelu;

impl CustomOp1 for FastGelu {
    fn name(&self) -> &'static str {
        "khulasa-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("{}: f32 only", self.name());
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{}: contiguous input only", self.name());
        };
        let src = &data[start..end];
        let mut dst = vec![0f32; src.len()];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if threads > 1 && src.len() >= PARALLEL_MIN {
            let chunk = src.len().div_ceil(threads);
            std::thread::scope(|s| {
                for (i, o) in src.chunks(chunk).zip(dst.chunks_mut(chunk)) {
                    s.spawn(move || gelu_slice(i, o));
                }
            });
        } else {
            gelu_slice(src, &mut dst);
        }
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// Exact GELU: the fast kernel for contiguous f32 on the CPU, Candle's
/// `gelu_erf` anywhere else (GPUs, other dtypes).
pub(crate) fn gelu_erf(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 && xs.is_contiguous() {
        xs.apply_op1_no_bwd(&FastGelu)
    } else {
        xs.gelu_erf()
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

    #[test]
    fn erf_matches_a_high_precision_reference() {
        let mut worst = 0f64;
        for i in -4000..=4000 {
            let x = i as f64 / 1000.0;
            let err = (erf(x as f32) as f64 - erf_reference(x)).abs();
            worst = worst.max(err);
        }
        assert!(worst < 5e-7, "worst |error| {worst:e}");
        assert!((erf(9.0) - 1.0).abs() < 2e-7 && (erf(-9.0) + 1.0).abs() < 2e-7);
        assert_eq!(erf(0.0), 0.0);
    }

    #[test]
    fn the_path_without_fma_computes_the_same_gelu() {
        for i in -6000..=6000 {
            let x = i as f32 / 1000.0;
            let (a, b) = (gelu_plain(x), gelu(x));
            assert!((a - b).abs() <= 1e-6 * x.abs().max(1.0), "{x}: {a} vs {b}");
        }
    }

    #[test]
    fn the_kernel_agrees_with_candles_gelu_erf() {
        let values: Vec<f32> = (0..200_000)
            .map(|i| (i as f32 - 100_000.0) / 9_000.0)
            .collect();
        let t = Tensor::new(values.as_slice(), &candle_core::Device::Cpu).unwrap();
        let fast = gelu_erf(&t).unwrap().to_vec1::<f32>().unwrap();
        let slow = t.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
        let worst = fast
            .iter()
            .zip(&slow)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 5e-6, "worst |difference| {worst:e}");
    }
}
