//! Calibrated topic classification against a label set.
//!
//! Zero-shot: each label is the mean of its descriptions (embedded as
//! queries). e5 cosines crowd into 0.7–1.0, so each label's score is turned
//! into a z-score against its scores over a background of varied news
//! sentences, then into probabilities (a sigmoid per label when multi-label,
//! a softmax otherwise). Few-shot: examples form a prototype blended with
//! the descriptions; from [`HEAD_MIN_EXAMPLES`] examples per label a
//! logistic-regression head is fitted (milliseconds) and cached by the label
//! set's fingerprint. An article is scored on its whole-story vector and on
//! its best sentences, so a story touching several topics gets several.

use serde::Serialize;

use crate::data::LabelSet;
use crate::math::{
    Calibration, Linear, cosine, fit_one_vs_rest, fit_softmax, mean_unit, sigmoid, softmax,
    top_k_mean,
};

/// Examples per label from which a logistic-regression head is fitted.
pub const HEAD_MIN_EXAMPLES: usize = 8;

/// How the probabilities were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicMethod {
    /// Descriptions only.
    ZeroShot,
    /// Descriptions blended with example prototypes.
    FewShotPrototypes,
    /// A logistic-regression head fitted on the examples.
    FewShotLogistic,
}

/// One label's probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelScore {
    /// The label id.
    pub label: String,
    /// Probability in [0, 1].
    pub probability: f32,
}

/// Topics of one article.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicResult {
    /// The label set used.
    pub label_set: String,
    /// Every label with its probability, most probable first.
    pub labels: Vec<LabelScore>,
    /// The most probable label.
    pub primary: Option<String>,
    /// How the probabilities were obtained.
    pub method: TopicMethod,
}

/// A label set made ready for scoring: vectors, calibration and head.
#[derive(Debug, Clone)]
pub(crate) struct TopicModel {
    name: String,
    multi_label: bool,
    ids: Vec<String>,
    descriptions: Vec<Vec<f32>>,
    prototypes: Vec<Option<Vec<f32>>>,
    calibration: Vec<Calibration>,
    head: Option<Linear>,
    method: TopicMethod,
}

/// Probability at which a multi-label label counts as present: a label is
/// in when its calibrated score is this many background deviations up.
const ZERO_SHOT_THRESHOLD_Z: f32 = 2.0;
const ZERO_SHOT_SLOPE: f32 = 1.5;
const SINGLE_LABEL_TEMPERATURE: f32 = 0.7;
const PROTOTYPE_WEIGHT: f32 = 0.5;
const MULTI_LABEL_MIDPOINT: f32 = 0.35;
const MULTI_LABEL_SLOPE: f32 = 12.0;

impl TopicModel {
    /// Prepares `set` from its embedded descriptions (`descriptions[l]`, as
    /// queries), examples (`examples[l]`, as passages) and the background.
    pub fn build(
        set: &LabelSet,
        descriptions: Vec<Vec<Vec<f32>>>,
        examples: Vec<Vec<Vec<f32>>>,
        background: &[Vec<f32>],
        dim: usize,
    ) -> Self {
        let descriptions: Vec<Vec<f32>> = descriptions.iter().map(|d| mean_unit(d, dim)).collect();
        let prototypes: Vec<Option<Vec<f32>>> = examples
            .iter()
            .map(|e| (!e.is_empty()).then(|| mean_unit(e, dim)))
            .collect();
        let has_examples = prototypes.iter().any(Option::is_some);
        let enough = examples.iter().all(|e| e.len() >= HEAD_MIN_EXAMPLES);
        let mut model = Self {
            name: set.name.clone(),
            multi_label: set.multi_label,
            ids: set.labels.iter().map(|l| l.id.clone()).collect(),
            descriptions,
            prototypes,
            calibration: Vec::new(),
            head: None,
            method: if enough {
                TopicMethod::FewShotLogistic
            } else if has_examples {
                TopicMethod::FewShotPrototypes
            } else {
                TopicMethod::ZeroShot
            },
        };
        model.calibration = (0..model.ids.len())
            .map(|l| Calibration::fit(background.iter().map(|b| model.similarity(l, b))))
            .collect();
        if enough {
            let mut x = Vec::new();
            let mut class = Vec::new();
            for (l, ex) in examples.iter().enumerate() {
                for v in ex {
                    x.push(v.clone());
                    class.push(l);
                }
            }
            model.head = Some(if set.multi_label {
                let targets: Vec<Vec<bool>> = class
                    .iter()
                    .map(|&c| (0..model.ids.len()).map(|l| l == c).collect())
                    .collect();
                fit_one_vs_rest(&x, &targets, 1e-3)
            } else {
                fit_softmax(&x, &class, model.ids.len(), 1e-3)
            });
        }
        model
    }

    /// Raw similarity of `v` to label `l`: its description, blended with its
    /// prototype when it has examples.
    fn similarity(&self, l: usize, v: &[f32]) -> f32 {
        let d = cosine(v, &self.descriptions[l]);
        match &self.prototypes[l] {
            Some(p) => (1.0 - PROTOTYPE_WEIGHT) * d + PROTOTYPE_WEIGHT * cosine(v, p),
            None => d,
        }
    }

    /// Per-label probabilities of one vector.
    fn probabilities(&self, v: &[f32]) -> Vec<f32> {
        let n = self.ids.len();
        let z: Vec<f32> = (0..n)
            .map(|l| self.calibration[l].z(self.similarity(l, v)))
            .collect();
        let calibrated = if self.multi_label {
            z.iter()
                .map(|z| sigmoid(ZERO_SHOT_SLOPE * (z - ZERO_SHOT_THRESHOLD_Z)))
                .collect()
        } else {
            softmax(
                &z.iter()
                    .map(|z| z / SINGLE_LABEL_TEMPERATURE)
                    .collect::<Vec<_>>(),
            )
        };
        match &self.head {
            None => calibrated,
            Some(head) => {
                let logits = head.logits(v);
                let learned: Vec<f32> = if self.multi_label {
                    logits.into_iter().map(sigmoid).collect()
                } else {
                    softmax(&logits)
                };
                // The head knows the examples; the calibrated similarity keeps
                // the descriptions in play.
                learned
                    .iter()
                    .zip(&calibrated)
                    .map(|(a, b)| 0.6 * a + 0.4 * b)
                    .collect()
            }
        }
    }

    /// Topics of an article from its story vector and sentence vectors.
    pub fn classify(&self, article: &[f32], sentences: &[&[f32]]) -> TopicResult {
        let whole = self.probabilities(article);
        let per_sentence: Vec<Vec<f32>> = sentences.iter().map(|s| self.probabilities(s)).collect();
        let mut probs: Vec<f32> = (0..self.ids.len())
            .map(|l| {
                let best = top_k_mean(per_sentence.iter().map(|p| p[l]), 3);
                if per_sentence.is_empty() {
                    whole[l]
                } else {
                    0.5 * whole[l] + 0.5 * best
                }
            })
            .collect();
        if self.multi_label {
            // Averaging over views shrinks scores toward the middle; this
            // Platt-style map (fitted on the dev set) puts the decision point
            // back at 0.5, so "probability ≥ 0.5" means "has the label".
            probs
                .iter_mut()
                .for_each(|p| *p = sigmoid(MULTI_LABEL_SLOPE * (*p - MULTI_LABEL_MIDPOINT)));
        } else {
            let sum: f32 = probs.iter().sum();
            if sum > 0.0 {
                probs.iter_mut().for_each(|p| *p /= sum);
            }
        }
        let mut labels: Vec<LabelScore> = self
            .ids
            .iter()
            .zip(&probs)
            .map(|(id, p)| LabelScore {
                label: id.clone(),
                probability: (p * 1000.0).round() / 1000.0,
            })
            .collect();
        labels.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        TopicResult {
            label_set: self.name.clone(),
            primary: labels.first().map(|l| l.label.clone()),
            labels,
            method: self.method,
        }
    }
}
