//! Small vector maths shared by the analyses: means, calibration against a
//! background, softmax, and a tiny logistic-regression trainer.

pub(crate) use khulasa_embed::{cosine, l2_normalize};

/// Dot product (the cosine of unit vectors).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// L2-normalised mean of `vectors` (a zero vector of `dim` if there are none).
pub(crate) fn mean_unit(vectors: &[Vec<f32>], dim: usize) -> Vec<f32> {
    let mut m = vec![0f32; dim];
    for v in vectors {
        m.iter_mut().zip(v).for_each(|(a, b)| *a += b);
    }
    l2_normalize(&mut m);
    m
}

/// Weighted sum of vectors, L2-normalised.
pub(crate) fn weighted_unit(parts: &[(&[f32], f32)], dim: usize) -> Vec<f32> {
    let mut m = vec![0f32; dim];
    for (v, w) in parts {
        m.iter_mut().zip(v.iter()).for_each(|(a, b)| *a += w * b);
    }
    l2_normalize(&mut m);
    m
}

/// Mean and standard deviation of a score over a background set, to turn
/// raw cosines (which crowd into 0.7–1.0 for e5 models) into z-scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Calibration {
    pub mean: f32,
    pub std: f32,
}

impl Calibration {
    pub fn fit(scores: impl IntoIterator<Item = f32>) -> Self {
        let v: Vec<f32> = scores.into_iter().collect();
        if v.is_empty() {
            return Self {
                mean: 0.0,
                std: 1.0,
            };
        }
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
        Self {
            mean,
            // A floor keeps a degenerate background from exploding z-scores.
            std: var.sqrt().max(0.01),
        }
    }

    pub fn z(&self, score: f32) -> f32 {
        (score - self.mean) / self.std
    }
}

pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

pub(crate) fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// Mean of the `k` largest values (all of them if fewer).
pub(crate) fn top_k_mean(values: impl IntoIterator<Item = f32>, k: usize) -> f32 {
    let mut v: Vec<f32> = values.into_iter().collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| b.total_cmp(a));
    let k = k.min(v.len()).max(1);
    v[..k].iter().sum::<f32>() / k as f32
}

/// A linear model: one weight row (with bias last) per output.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Linear {
    pub weights: Vec<Vec<f32>>,
}

impl Linear {
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        self.weights
            .iter()
            .map(|w| dot(&w[..x.len()], x) + w[x.len()])
            .collect()
    }
}

/// Fits a softmax (multinomial) logistic regression by full-batch gradient
/// descent with L2 regularisation. `y[i]` is the class of `x[i]`.
pub(crate) fn fit_softmax(x: &[Vec<f32>], y: &[usize], classes: usize, l2: f32) -> Linear {
    let dim = x.first().map_or(0, Vec::len);
    let mut w = vec![vec![0f32; dim + 1]; classes];
    let n = x.len().max(1) as f32;
    let lr = 2.0;
    for _ in 0..300 {
        let mut grad = vec![vec![0f32; dim + 1]; classes];
        for (xi, &yi) in x.iter().zip(y) {
            let logits: Vec<f32> = w.iter().map(|r| dot(&r[..dim], xi) + r[dim]).collect();
            let p = softmax(&logits);
            for c in 0..classes {
                let g = p[c] - if c == yi { 1.0 } else { 0.0 };
                let row = &mut grad[c];
                row.iter_mut().zip(xi).for_each(|(r, v)| *r += g * v);
                row[dim] += g;
            }
        }
        for (wc, gc) in w.iter_mut().zip(&grad) {
            for (j, (wj, gj)) in wc.iter_mut().zip(gc).enumerate() {
                let reg = if j < dim { l2 * *wj } else { 0.0 };
                *wj -= lr * (gj / n + reg);
            }
        }
    }
    Linear { weights: w }
}

/// Fits one binary logistic regression per column of `targets` (one-vs-rest).
pub(crate) fn fit_one_vs_rest(x: &[Vec<f32>], targets: &[Vec<bool>], l2: f32) -> Linear {
    let dim = x.first().map_or(0, Vec::len);
    let outputs = targets.first().map_or(0, Vec::len);
    let n = x.len().max(1) as f32;
    let lr = 2.0;
    let mut weights = Vec::with_capacity(outputs);
    for c in 0..outputs {
        let pos = targets.iter().filter(|t| t[c]).count().max(1) as f32;
        let neg = (x.len() as f32 - pos).max(1.0);
        // Balance positives and negatives so small classes are not drowned.
        let (wp, wn) = (n / (2.0 * pos), n / (2.0 * neg));
        let mut w = vec![0f32; dim + 1];
        for _ in 0..300 {
            let mut g = vec![0f32; dim + 1];
            for (xi, t) in x.iter().zip(targets) {
                let p = sigmoid(dot(&w[..dim], xi) + w[dim]);
                let (label, weight) = if t[c] { (1.0, wp) } else { (0.0, wn) };
                let d = weight * (p - label);
                g.iter_mut().zip(xi).for_each(|(gj, v)| *gj += d * v);
                g[dim] += d;
            }
            for (j, (wj, gj)) in w.iter_mut().zip(&g).enumerate() {
                let reg = if j < dim { l2 * *wj } else { 0.0 };
                *wj -= lr * (gj / n + reg);
            }
        }
        weights.push(w);
    }
    Linear { weights }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_turns_scores_into_z() {
        let c = Calibration::fit([0.8, 0.9, 1.0]);
        assert!((c.mean - 0.9).abs() < 1e-6);
        assert!((c.z(0.9)).abs() < 1e-5);
        assert!(c.z(1.0) > 1.0);
        assert_eq!(Calibration::fit([0.5, 0.5]).std, 0.01);
    }

    #[test]
    fn softmax_regression_separates_separable_classes() {
        let x = vec![
            vec![1.0, 0.0],
            vec![0.9, 0.1],
            vec![0.0, 1.0],
            vec![0.1, 0.9],
        ];
        let m = fit_softmax(&x, &[0, 0, 1, 1], 2, 1e-3);
        assert!(softmax(&m.logits(&[0.95, 0.05]))[0] > 0.8);
        assert!(softmax(&m.logits(&[0.05, 0.95]))[1] > 0.8);
    }

    #[test]
    fn one_vs_rest_learns_each_label() {
        let x = vec![
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![0.7, 0.7],
            vec![-1.0, 0.0],
        ];
        let t = vec![
            vec![true, false],
            vec![false, true],
            vec![true, true],
            vec![false, false],
        ];
        let m = fit_one_vs_rest(&x, &t, 1e-3);
        let p: Vec<f32> = m.logits(&[0.8, 0.6]).into_iter().map(sigmoid).collect();
        assert!(p[0] > 0.5 && p[1] > 0.5, "{p:?}");
        let p: Vec<f32> = m.logits(&[-0.9, 0.1]).into_iter().map(sigmoid).collect();
        assert!(p[0] < 0.5, "{p:?}");
    }

    #[test]
    fn top_k_mean_takes_the_largest() {
        assert_eq!(top_k_mean([0.1, 0.9, 0.5], 2), 0.7);
        assert_eq!(top_k_mean([], 3), 0.0);
    }
}
