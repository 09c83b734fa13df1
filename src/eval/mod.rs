//! `khulasa eval`: topic macro-F1, stance macro-F1 and summary ROUGE-1/2 on
//! a dev set (tests/fixtures/devset/devset.jsonl), and real labelled sets
//! with their baselines ([`suite`]).

pub mod suite;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use khulasa_analysis::{AnalysisRequest, Analyzer, FocusChoice, SummaryStatus};
use khulasa_embed::StopToken;
use khulasa_text::normalize::normalize_for_matching;
use serde::{Deserialize, Serialize};

use crate::pipeline::{ArticleInput, analyze_input};
use crate::record;

/// One dev-set article with its gold answers.
#[derive(Debug, Clone, Deserialize)]
pub struct DevArticle {
    /// Id.
    pub id: String,
    /// Language.
    pub lang: String,
    /// The page.
    pub text: String,
    /// Gold topic ids.
    pub topics: Vec<String>,
    /// Stance target (`None`: the default target).
    pub target: Option<String>,
    /// Gold stance.
    pub stance: String,
    /// Gold summary sentences.
    pub summary: Vec<String>,
    /// Whether the story has content about the default focus.
    pub focus_relevant: bool,
}

/// Dev-set figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Articles evaluated.
    pub articles: usize,
    /// Macro-F1 of multi-label topics (labels with probability ≥ 0.5, or the
    /// primary one when none is).
    pub topic_macro_f1: f64,
    /// Share of articles whose primary topic is among the gold topics.
    pub topic_primary_accuracy: f64,
    /// Macro-F1 of the four stance labels.
    pub stance_macro_f1: f64,
    /// Stance accuracy.
    pub stance_accuracy: f64,
    /// Focused-summary ROUGE-1 F1 on articles with focus content.
    pub summary_rouge1: f64,
    /// Focused-summary ROUGE-2 F1 on articles with focus content.
    pub summary_rouge2: f64,
    /// Generic-summary ROUGE-1 F1 on articles without focus content.
    pub generic_rouge1: f64,
    /// Generic-summary ROUGE-2 F1 on articles without focus content.
    pub generic_rouge2: f64,
    /// Share of articles where "no relevant content" was answered exactly
    /// when the story has no focus content.
    pub abstention_accuracy: f64,
    /// Stance confusion: gold → predicted → count.
    pub stance_confusion: BTreeMap<String, BTreeMap<String, usize>>,
    /// Per-article gold and predicted values, for error analysis.
    #[serde(skip)]
    pub details: Vec<serde_json::Value>,
}

/// Reads a dev set.
pub fn read_devset(path: &Path) -> anyhow::Result<Vec<DevArticle>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

/// Evaluates `analyzer` on `devset`.
pub fn evaluate(analyzer: &Analyzer, devset: &[DevArticle]) -> anyhow::Result<Report> {
    let mut topic_counts: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new(); // tp, fp, fn
    let mut primary_hits = 0;
    let mut stance_pairs = Vec::new();
    let (mut r1, mut r2, mut n_focus) = (0.0, 0.0, 0);
    let (mut g1, mut g2, mut n_generic) = (0.0, 0.0, 0);
    let mut abstained_right = 0;
    let mut details = Vec::new();
    for a in devset {
        let input = ArticleInput {
            id: a.id.clone(),
            text: Some(a.text.clone()),
            target: a.target.clone(),
            ..ArticleInput::default()
        };
        let run = |options: &AnalysisRequest| {
            analyze_input(analyzer, &input, options, &StopToken::never())
                .map_err(|e| anyhow::anyhow!("{}: {e}", a.id))
        };
        let analyzed = run(&AnalysisRequest::default())?;
        // The details show what a client would read.
        let shown = record::analyzed(analyzed.clone(), "", Default::default());
        let out = analyzed.analysis;
        // Topics.
        let primary_topic = out.topics.as_ref().and_then(|t| t.primary.clone());
        let topics = out.topics.map(|t| t.labels).unwrap_or_default();
        let mut predicted: BTreeSet<String> = topics
            .iter()
            .filter(|t| t.probability >= 0.5)
            .map(|t| t.label.clone())
            .collect();
        if predicted.is_empty() {
            predicted.extend(primary_topic.clone());
        }
        let gold: BTreeSet<String> = a.topics.iter().cloned().collect();
        for l in predicted.union(&gold) {
            let c = topic_counts.entry(l.clone()).or_default();
            match (predicted.contains(l), gold.contains(l)) {
                (true, true) => c.0 += 1,
                (true, false) => c.1 += 1,
                (false, true) => c.2 += 1,
                _ => {}
            }
        }
        if primary_topic.as_ref().is_some_and(|p| gold.contains(p)) {
            primary_hits += 1;
        }
        // Stance.
        let label = out
            .stance
            .as_ref()
            .map_or("none", |s| s.label.as_str())
            .to_string();
        stance_pairs.push((a.stance.clone(), label));
        // Summaries.
        let summary = out.summary.expect("summary requested");
        let abstained = summary.status == SummaryStatus::NoRelevantContent;
        if abstained != a.focus_relevant {
            abstained_right += 1;
        }
        details.push(serde_json::json!({
            "id": a.id, "lang": a.lang,
            "gold_topics": a.topics, "topics": shown.topics,
            "gold_stance": a.stance, "stance": shown.stance,
            "focus_relevant": a.focus_relevant, "summary": shown.summary,
            "gold_summary": a.summary,
        }));
        let selected: Vec<String> = summary.sentences.iter().map(|s| s.text.clone()).collect();
        if a.focus_relevant {
            let (x, y) = rouge(&selected, &a.summary);
            r1 += x;
            r2 += y;
            n_focus += 1;
        } else {
            let generic = run(&AnalysisRequest {
                focus: FocusChoice::Generic,
                ..AnalysisRequest::default()
            })?;
            let selected: Vec<String> = generic
                .analysis
                .summary
                .map(|s| s.sentences.into_iter().map(|s| s.text).collect())
                .unwrap_or_default();
            let (x, y) = rouge(&selected, &a.summary);
            g1 += x;
            g2 += y;
            n_generic += 1;
        }
    }
    let n = devset.len().max(1) as f64;
    let f1 = |tp: usize, fp: usize, fn_: usize| {
        if tp == 0 {
            0.0
        } else {
            2.0 * tp as f64 / (2 * tp + fp + fn_) as f64
        }
    };
    let topic_macro_f1 = topic_counts
        .values()
        .map(|&(tp, fp, fn_)| f1(tp, fp, fn_))
        .sum::<f64>()
        / topic_counts.len().max(1) as f64;
    let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (g, p) in &stance_pairs {
        *confusion
            .entry(g.clone())
            .or_default()
            .entry(p.clone())
            .or_default() += 1;
    }
    let classes = ["supportive", "neutral", "critical", "unrelated"];
    let stance_macro_f1 = classes
        .iter()
        .map(|c| {
            let tp = stance_pairs
                .iter()
                .filter(|(g, p)| g == c && p == c)
                .count();
            let fp = stance_pairs
                .iter()
                .filter(|(g, p)| g != c && p == c)
                .count();
            let fn_ = stance_pairs
                .iter()
                .filter(|(g, p)| g == c && p != c)
                .count();
            f1(tp, fp, fn_)
        })
        .sum::<f64>()
        / classes.len() as f64;
    Ok(Report {
        articles: devset.len(),
        topic_macro_f1,
        topic_primary_accuracy: primary_hits as f64 / n,
        stance_macro_f1,
        stance_accuracy: stance_pairs.iter().filter(|(g, p)| g == p).count() as f64 / n,
        summary_rouge1: r1 / n_focus.max(1) as f64,
        summary_rouge2: r2 / n_focus.max(1) as f64,
        generic_rouge1: g1 / n_generic.max(1) as f64,
        generic_rouge2: g2 / n_generic.max(1) as f64,
        abstention_accuracy: abstained_right as f64 / n,
        stance_confusion: confusion,
        details,
    })
}

impl Report {
    /// A table for people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "articles                 {}", self.articles);
        let _ = writeln!(s, "topic macro-F1           {:.3}", self.topic_macro_f1);
        let _ = writeln!(
            s,
            "topic primary accuracy   {:.3}",
            self.topic_primary_accuracy
        );
        let _ = writeln!(s, "stance macro-F1          {:.3}", self.stance_macro_f1);
        let _ = writeln!(s, "stance accuracy          {:.3}", self.stance_accuracy);
        let _ = writeln!(
            s,
            "summary ROUGE-1 / 2      {:.3} / {:.3}  (focus)",
            self.summary_rouge1, self.summary_rouge2
        );
        let _ = writeln!(
            s,
            "summary ROUGE-1 / 2      {:.3} / {:.3}  (generic, no-focus articles)",
            self.generic_rouge1, self.generic_rouge2
        );
        let _ = writeln!(
            s,
            "abstention accuracy      {:.3}",
            self.abstention_accuracy
        );
        let _ = writeln!(s, "stance confusion (gold → predicted):");
        for (g, row) in &self.stance_confusion {
            let _ = writeln!(s, "  {g:<11} {row:?}");
        }
        s
    }
}

fn tokens(text: &str) -> Vec<String> {
    normalize_for_matching(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn ngrams(tokens: &[String], n: usize) -> BTreeMap<Vec<String>, usize> {
    let mut m = BTreeMap::new();
    for w in tokens.windows(n) {
        *m.entry(w.to_vec()).or_default() += 1;
    }
    m
}

/// ROUGE-1 and ROUGE-2 F1 of `candidate` sentences against `reference` ones.
pub fn rouge(candidate: &[String], reference: &[String]) -> (f64, f64) {
    let c = tokens(&candidate.join(" "));
    let r = tokens(&reference.join(" "));
    let f = |n: usize| {
        let (cn, rn) = (ngrams(&c, n), ngrams(&r, n));
        let overlap: usize = cn
            .iter()
            .map(|(g, k)| (*k).min(*rn.get(g).unwrap_or(&0)))
            .sum();
        let (ct, rt) = (cn.values().sum::<usize>(), rn.values().sum::<usize>());
        if overlap == 0 || ct == 0 || rt == 0 {
            0.0
        } else {
            let (p, rc) = (overlap as f64 / ct as f64, overlap as f64 / rt as f64);
            2.0 * p * rc / (p + rc)
        }
    };
    (f(1), f(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rouge_of_identical_and_disjoint_texts() {
        let a = vec!["قال الوزير إن التعاون مستمر".to_string()];
        assert_eq!(rouge(&a, &a), (1.0, 1.0));
        assert_eq!(
            rouge(&a, &["football final tonight".to_string()]),
            (0.0, 0.0)
        );
        let (r1, r2) = rouge(&a, &["قال الوزير إن الاتفاق مستمر".to_string()]);
        assert!((r1 - 0.8).abs() < 1e-9 && r2 > 0.0 && r2 < r1);
    }
}
