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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Linear {
    /// One row per output: a weight per feature, then the bias.
    pub weights: Vec<Vec<f32>>,
}

impl Linear {
    /// One logit per output.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        self.weights
            .iter()
            .map(|w| dot(&w[..x.len()], x) + w[x.len()])
            .collect()
    }
}

/// Fits an L2-regularised multinomial logistic regression to convergence:
/// minimises `mean_i loss_i + l2 / 2 * |W|^2` (biases unpenalised) by
/// accelerated gradient descent with a step from the data's largest
/// curvature. `l2 = 1 / (C n)` is scikit-learn's `C`. `y[i]` is the class
/// of `x[i]`.
pub fn fit_logistic(x: &[Vec<f32>], y: &[usize], classes: usize, l2: f32) -> Linear {
    let dim = x.first().map_or(0, Vec::len);
    let n = x.len().max(1) as f32;
    // The loss's curvature is at most half the largest eigenvalue of the
    // features' second moment (with the bias as a feature of 1): found by
    // power iteration.
    let mut v = vec![1.0f32; dim + 1];
    let mut lambda = 1.0f32;
    for _ in 0..30 {
        let mut next = vec![0f32; dim + 1];
        for xi in x {
            let p = dot(&v[..dim], xi) + v[dim];
            next.iter_mut().zip(xi).for_each(|(a, b)| *a += p * b / n);
            next[dim] += p / n;
        }
        lambda = next.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-6);
        v = next.into_iter().map(|a| a / lambda).collect();
    }
    let step = 1.0 / (0.5 * lambda + l2);
    let zero = vec![vec![0f32; dim + 1]; classes];
    let (mut w, mut prev, mut t) = (zero.clone(), zero, 1.0f32);
    for _ in 0..1000 {
        // Nesterov: the gradient at the extrapolated point.
        let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
        let beta = (t - 1.0) / t_next;
        let look: Vec<Vec<f32>> = w
            .iter()
            .zip(&prev)
            .map(|(a, b)| a.iter().zip(b).map(|(a, b)| a + beta * (a - b)).collect())
            .collect();
        let mut grad = vec![vec![0f32; dim + 1]; classes];
        for (xi, &yi) in x.iter().zip(y) {
            let logits: Vec<f32> = look.iter().map(|r| dot(&r[..dim], xi) + r[dim]).collect();
            let p = softmax(&logits);
            for c in 0..classes {
                let g = (p[c] - if c == yi { 1.0 } else { 0.0 }) / n;
                let row = &mut grad[c];
                row.iter_mut().zip(xi).for_each(|(r, v)| *r += g * v);
                row[dim] += g;
            }
        }
        let mut change = 0f32;
        let next: Vec<Vec<f32>> = look
            .iter()
            .zip(&grad)
            .map(|(l, g)| {
                l.iter()
                    .zip(g)
                    .enumerate()
                    .map(|(j, (l, g))| {
                        let reg = if j < dim { l2 * l } else { 0.0 };
                        let d = step * (g + reg);
                        change = change.max(d.abs());
                        l - d
                    })
                    .collect()
            })
            .collect();
        prev = std::mem::replace(&mut w, next);
        t = t_next;
        if change < 1e-6 {
            break;
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
        let m = fit_logistic(&x, &[0, 0, 1, 1], 2, 1e-3);
        assert!(softmax(&m.logits(&[0.95, 0.05]))[0] > 0.8);
        assert!(softmax(&m.logits(&[0.05, 0.95]))[1] > 0.8);
    }

    #[test]
    fn fit_logistic_converges_to_the_regularised_optimum() {
        // Two 1-d classes near -1 and +1: the optimum has w > 0, b near 0, and a
        // gradient of zero: mean(p - y) x + l2 w = 0.
        let x = vec![vec![-1.0], vec![-0.8], vec![0.9], vec![1.1]];
        let y = [0, 0, 1, 1];
        let l2 = 0.1;
        let m = fit_logistic(&x, &y, 2, l2);
        let w = m.weights[1][0] - m.weights[0][0];
        let b = m.weights[1][1] - m.weights[0][1];
        let grad: f32 = x
            .iter()
            .zip(y)
            .map(|(xi, yi)| (sigmoid(w * xi[0] + b) - yi as f32) * xi[0])
            .sum::<f32>()
            / 4.0;
        // The symmetric parametrisation splits the penalty over two rows.
        assert!((grad + l2 * w / 2.0).abs() < 1e-3, "gradient {grad}, w {w}");
        assert!(b.abs() < 0.3 && w > 1.0, "w {w} b {b}");
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
