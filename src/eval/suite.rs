//! `khulasa eval --suite DIR`: scores labelled JSONL sets of real data, in
//! the shapes of the development data kept beside a checkout (`devdata`),
//! with the trivial baselines computed on the same items beside every
//! figure.
//!
//! A set is one `.jsonl` file, one item per line with `id`, `text` and
//! `label`; its other fields say what it tests:
//! - `claim`: claim–article stance (agree / disagree / discuss / unrelated),
//!   the claim as the target;
//! - `reference_headline`: headline-pair stance (agree / disagree / other),
//!   the reference headline as the target;
//! - `target`: stance toward a free-text target (Favor / Against / None);
//! - `summary` (a list of sentences): extractive summaries, scored by
//!   ROUGE against lead-N at the same length;
//! - none of these: topics against a label set given with `--labels
//!   STEM=FILE.toml` (STEM is the file name without `.jsonl`).
//!
//! Our stance labels map onto each set's: supportive → Favor / agree,
//! critical → Against / disagree, neutral → None / discuss / other,
//! unrelated → None / unrelated / other.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use khulasa_analysis::{
    AnalysisRequest, Analyzer, FocusChoice, LabelSet, LabelSetChoice, StanceLabel, TargetKind,
    Tasks, fit_logistic,
};
use khulasa_embed::{InputKind, cosine};
use serde::{Deserialize, Serialize};

use crate::pipeline::{ArticleInput, analyze_input};

/// What a set tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SetKind {
    /// Topics against a label set.
    Topics,
    /// Stance toward a free-text target.
    TargetStance,
    /// Claim–article stance.
    ClaimStance,
    /// Headline-pair stance.
    PairStance,
    /// Extractive summaries.
    Summaries,
}

/// One labelled item, whatever its set's kind.
#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    /// Id.
    pub id: String,
    /// The article, tweet or headline.
    pub text: String,
    /// Gold label (absent for summaries).
    #[serde(default)]
    pub label: String,
    /// Headline, when the set has one.
    #[serde(default)]
    pub title: Option<String>,
    /// Stance target.
    #[serde(default)]
    pub target: Option<String>,
    /// Claim (claim–article stance).
    #[serde(default)]
    pub claim: Option<String>,
    /// Reference headline (headline-pair stance).
    #[serde(default)]
    pub reference_headline: Option<String>,
    /// Gold summary sentences.
    #[serde(default)]
    pub summary: Option<Vec<String>>,
}

impl Item {
    fn kind(&self) -> SetKind {
        if self.claim.is_some() {
            SetKind::ClaimStance
        } else if self.reference_headline.is_some() {
            SetKind::PairStance
        } else if self.target.is_some() {
            SetKind::TargetStance
        } else if self.summary.is_some() {
            SetKind::Summaries
        } else {
            SetKind::Topics
        }
    }

    /// The stance target this item is scored against.
    fn stance_target(&self) -> Option<&str> {
        self.claim
            .as_deref()
            .or(self.reference_headline.as_deref())
            .or(self.target.as_deref())
    }
}

/// One labelled set read from disk.
pub struct LabelledSet {
    /// The file name without `.jsonl`.
    pub name: String,
    /// What it tests.
    pub kind: SetKind,
    /// Its items.
    pub items: Vec<Item>,
}

/// Reads every `.jsonl` file of `path` (a file or a directory, recursively),
/// in name order; `limit` keeps the first items of each.
pub fn read_sets(path: &Path, limit: Option<usize>) -> anyhow::Result<Vec<LabelledSet>> {
    let mut files = Vec::new();
    collect(path, &mut files);
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "no .jsonl files under {}",
        path.display()
    );
    files
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            let items: Vec<Item> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .take(limit.unwrap_or(usize::MAX))
                .map(|(i, l)| {
                    serde_json::from_str(l).with_context(|| format!("{}:{}", f.display(), i + 1))
                })
                .collect::<anyhow::Result<_>>()?;
            let kind = items.first().map_or(SetKind::Topics, Item::kind);
            anyhow::ensure!(
                items.iter().all(|i| i.kind() == kind),
                "{}: items of different kinds in one set",
                f.display()
            );
            Ok(LabelledSet {
                name: f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                kind,
                items,
            })
        })
        .collect()
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_path_buf());
    } else if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect(&p, out);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                out.push(p);
            }
        }
    }
}

/// One method's figures on one set.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The method: ours, or a baseline.
    pub method: String,
    /// Macro-F1 over the set's labels (ROUGE-1 F1 for summaries).
    pub score: f64,
    /// Accuracy (ROUGE-2 F1 for summaries).
    pub accuracy: f64,
    /// F1 of each label (empty for summaries).
    pub per_label: BTreeMap<String, f64>,
}

/// The figures of one set.
#[derive(Debug, Clone, Serialize)]
pub struct SetReport {
    /// The set.
    pub name: String,
    /// What it tests.
    pub kind: SetKind,
    /// Items scored.
    pub items: usize,
    /// Gold label counts.
    pub labels: BTreeMap<String, usize>,
    /// Ours first, then the baselines.
    pub rows: Vec<Row>,
}

/// Macro-F1, accuracy and per-label F1 of `pairs` (gold, predicted) over
/// the gold labels (a label never gold but predicted counts as a false
/// positive of nothing).
pub fn classification_row(method: &str, pairs: &[(String, String)]) -> Row {
    let labels: BTreeSet<&String> = pairs.iter().map(|(g, _)| g).collect();
    let mut per_label = BTreeMap::new();
    for l in &labels {
        let tp = pairs.iter().filter(|(g, p)| g == *l && p == *l).count();
        let fp = pairs.iter().filter(|(g, p)| g != *l && p == *l).count();
        let fn_ = pairs.iter().filter(|(g, p)| g == *l && p != *l).count();
        let f1 = if tp == 0 {
            0.0
        } else {
            2.0 * tp as f64 / (2 * tp + fp + fn_) as f64
        };
        per_label.insert((*l).clone(), f1);
    }
    Row {
        method: method.to_string(),
        score: per_label.values().sum::<f64>() / per_label.len().max(1) as f64,
        accuracy: pairs.iter().filter(|(g, p)| g == p).count() as f64 / pairs.len().max(1) as f64,
        per_label,
    }
}

/// The majority-class baseline: every item gets the commonest gold label.
pub fn majority_row(gold: &[String]) -> Row {
    let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
    for g in gold {
        *counts.entry(g).or_default() += 1;
    }
    let majority = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(l, _)| (*l).clone())
        .unwrap_or_default();
    let pairs: Vec<(String, String)> = gold.iter().map(|g| (g.clone(), majority.clone())).collect();
    classification_row(&format!("majority ({majority})"), &pairs)
}

/// Our stance label in a set's vocabulary.
fn stance_in(kind: SetKind, label: StanceLabel) -> &'static str {
    match (kind, label) {
        (SetKind::TargetStance, StanceLabel::Supportive) => "Favor",
        (SetKind::TargetStance, StanceLabel::Critical) => "Against",
        (SetKind::TargetStance, _) => "None",
        (SetKind::ClaimStance, StanceLabel::Supportive) => "agree",
        (SetKind::ClaimStance, StanceLabel::Critical) => "disagree",
        (SetKind::ClaimStance, StanceLabel::Neutral) => "discuss",
        (SetKind::ClaimStance, StanceLabel::Unrelated) => "unrelated",
        (_, StanceLabel::Supportive) => "agree",
        (_, StanceLabel::Critical) => "disagree",
        (_, _) => "other",
    }
}

fn input(item: &Item) -> ArticleInput {
    ArticleInput {
        id: item.id.clone(),
        text: Some(item.text.clone()),
        title: item.title.clone(),
        ..ArticleInput::default()
    }
}

fn only(tasks: (bool, bool, bool)) -> Tasks {
    Tasks {
        topics: tasks.0,
        stance: tasks.1,
        summary: tasks.2,
    }
}

/// How many labelled examples per label topic sets are also scored with
/// (k-shot: a head trained on k articles per label, tested on the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shots {
    /// k per label, over several random draws.
    PerLabel(usize),
    /// Every item, by 5-fold cross-validation.
    All,
}

impl std::str::FromStr for Shots {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Self::All),
            k => k
                .parse()
                .map(Self::PerLabel)
                .map_err(|_| format!("{s:?}: give a number of examples per label, or all")),
        }
    }
}

/// Scores one set: ours and the baselines. Topic sets need `labels`; for
/// single-label ones, `shots` adds k-shot rows over `draws` random draws.
pub fn evaluate_set(
    analyzer: &Analyzer,
    set: &LabelledSet,
    labels: Option<&LabelSet>,
    shots: &[Shots],
    draws: usize,
) -> anyhow::Result<SetReport> {
    let gold: Vec<String> = set.items.iter().map(|i| i.label.clone()).collect();
    let mut counts = BTreeMap::new();
    for g in &gold {
        *counts.entry(g.clone()).or_default() += 1;
    }
    let rows = match set.kind {
        SetKind::Topics => {
            let labels = labels.with_context(|| {
                format!(
                    "{}: a topic set needs its label set: --labels {}=FILE.toml",
                    set.name, set.name
                )
            })?;
            topic_rows(analyzer, set, labels, &gold, shots, draws)?
        }
        SetKind::Summaries => summary_rows(analyzer, set)?,
        kind => {
            let options = AnalysisRequest {
                tasks: only((false, true, false)),
                ..AnalysisRequest::default()
            };
            let mut pairs = Vec::with_capacity(set.items.len());
            for item in &set.items {
                let mut a = input(item);
                a.target = item.stance_target().map(str::to_string);
                // A claim, or a headline to agree or disagree with, is one
                // statement; a target of tweets is a topic.
                a.target_kind = Some(match kind {
                    SetKind::TargetStance => TargetKind::Topic,
                    _ => TargetKind::Claim,
                });
                let out = analyze_input(analyzer, &a, &options, &Default::default())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", item.id))?;
                let label = out
                    .analysis
                    .stance
                    .map_or("None", |s| stance_in(kind, s.label));
                pairs.push((item.label.clone(), label.to_string()));
            }
            let mut rows = vec![classification_row("khulasa", &pairs), majority_row(&gold)];
            // Sets with several targets: each target alone too.
            let targets: BTreeSet<&str> = set
                .items
                .iter()
                .filter_map(|i| i.target.as_deref())
                .collect();
            if targets.len() > 1 {
                for t in targets {
                    let of: Vec<usize> = (0..set.items.len())
                        .filter(|&i| set.items[i].target.as_deref() == Some(t))
                        .collect();
                    let mine: Vec<(String, String)> =
                        of.iter().map(|&i| pairs[i].clone()).collect();
                    let theirs: Vec<String> = of.iter().map(|&i| gold[i].clone()).collect();
                    let ours = classification_row(&format!("khulasa, target {t:?}"), &mine);
                    let mut majority = majority_row(&theirs);
                    majority.method = format!("{}, target {t:?}", majority.method);
                    rows.push(ours);
                    rows.push(majority);
                }
            }
            rows
        }
    };
    Ok(SetReport {
        name: set.name.clone(),
        kind: set.kind,
        items: set.items.len(),
        labels: counts,
        rows,
    })
}

fn topic_rows(
    analyzer: &Analyzer,
    set: &LabelledSet,
    labels: &LabelSet,
    gold: &[String],
    shots: &[Shots],
    draws: usize,
) -> anyhow::Result<Vec<Row>> {
    let options = AnalysisRequest {
        tasks: only((true, false, false)),
        label_set: LabelSetChoice::Inline(labels.clone()),
        ..AnalysisRequest::default()
    };
    // Ours, through the whole pipeline; for single-label sets also each
    // article's topic view, which k-shot heads are trained and tested on.
    let mut ours = Vec::with_capacity(set.items.len());
    let mut views = Vec::with_capacity(set.items.len());
    for item in &set.items {
        let out = analyze_input(analyzer, &input(item), &options, &Default::default())
            .map_err(|e| anyhow::anyhow!("{}: {e}", item.id))?;
        if !labels.multi_label && !shots.is_empty() {
            let source = out.article.extracted_text.as_deref().unwrap_or(&item.text);
            views.push(analyzer.topic_view(&out.article, source, &Default::default())?);
        }
        let primary = out
            .analysis
            .topics
            .and_then(|t| t.primary)
            .unwrap_or_default();
        ours.push((item.label.clone(), primary));
    }
    // Baseline: the article (title and text, one passage) against each
    // label's descriptions (queries, averaged), nearest wins.
    let encoder = analyzer.encoder();
    let descriptions: Vec<Vec<f32>> = labels
        .labels
        .iter()
        .map(|l| {
            let refs: Vec<&str> = l.description.iter().map(String::as_str).collect();
            let vectors = encoder.embed(&refs, InputKind::Query)?;
            Ok(mean(&vectors))
        })
        .collect::<anyhow::Result<_>>()?;
    let texts: Vec<String> = set
        .items
        .iter()
        .map(|i| match &i.title {
            Some(t) => format!("{t}\n{}", i.text),
            None => i.text.clone(),
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let articles = encoder.embed(&refs, InputKind::Passage)?;
    let cosine_pairs: Vec<(String, String)> = articles
        .iter()
        .zip(gold)
        .map(|(a, g)| {
            let best = descriptions
                .iter()
                .enumerate()
                .max_by(|x, y| cosine(a, x.1).total_cmp(&cosine(a, y.1)))
                .map_or(0, |(i, _)| i);
            (g.clone(), labels.labels[best].id.clone())
        })
        .collect();
    let mut rows = vec![
        classification_row("khulasa, zero-shot", &ours),
        classification_row("cosine to descriptions", &cosine_pairs),
        majority_row(gold),
    ];
    for &k in shots {
        rows.extend(k_shot_rows(
            analyzer, labels, gold, &views, &articles, k, draws,
        )?);
    }
    Ok(rows)
}

/// A deterministic shuffle (xorshift64*), so draws are the same every run.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in (1..v.len()).rev() {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let j = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// Train/test splits of item indices: k per label per draw, or 5 folds.
fn splits(gold: &[String], shots: Shots, draws: usize) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut by_label: BTreeMap<&String, Vec<usize>> = BTreeMap::new();
    for (i, g) in gold.iter().enumerate() {
        by_label.entry(g).or_default().push(i);
    }
    match shots {
        Shots::PerLabel(k) => (0..draws.max(1) as u64)
            .map(|seed| {
                let (mut train, mut test) = (Vec::new(), Vec::new());
                for items in by_label.values() {
                    let mut items = items.clone();
                    shuffle(&mut items, seed + 1);
                    // Leave every label some test items.
                    let k = k.min(items.len().saturating_sub(1));
                    train.extend_from_slice(&items[..k]);
                    test.extend_from_slice(&items[k..]);
                }
                (train, test)
            })
            .collect(),
        Shots::All => {
            let mut fold = vec![0usize; gold.len()];
            for items in by_label.values() {
                let mut items = items.clone();
                shuffle(&mut items, 1);
                for (n, i) in items.into_iter().enumerate() {
                    fold[i] = n % 5;
                }
            }
            (0..5)
                .map(|f| {
                    let (test, train) = (0..gold.len()).partition(|&i| fold[i] == f);
                    (train, test)
                })
                .collect()
        }
    }
}

/// Mean and spread of macro-F1 over splits: ours (a head trained on the
/// shots' views) and a logistic head on the raw article embeddings.
#[allow(clippy::too_many_arguments)]
fn k_shot_rows(
    analyzer: &Analyzer,
    labels: &LabelSet,
    gold: &[String],
    views: &[Vec<f32>],
    raw: &[Vec<f32>],
    shots: Shots,
    draws: usize,
) -> anyhow::Result<Vec<Row>> {
    if labels.multi_label || views.len() != gold.len() {
        return Ok(Vec::new());
    }
    let ids: Vec<&String> = labels.labels.iter().map(|l| &l.id).collect();
    let (mut ours, mut baseline) = (Vec::new(), Vec::new());
    for (train, test) in splits(gold, shots, draws) {
        let examples: Vec<(String, Vec<f32>)> = train
            .iter()
            .map(|&i| (gold[i].clone(), views[i].clone()))
            .collect();
        let mut trained = labels.clone();
        trained.trained = Some(std::sync::Arc::new(analyzer.train_head(labels, &examples)?));
        let mut pairs = Vec::with_capacity(test.len());
        for &i in &test {
            let t = analyzer.classify_view(&trained, &views[i])?;
            pairs.push((gold[i].clone(), t.primary.unwrap_or_default()));
        }
        ours.push(classification_row("", &pairs));
        // The baseline: multinomial logistic regression (C = 1) on the raw
        // embeddings of the same shots.
        let x: Vec<Vec<f32>> = train.iter().map(|&i| raw[i].clone()).collect();
        let y: Vec<usize> = train
            .iter()
            .map(|&i| ids.iter().position(|id| **id == gold[i]).unwrap_or(0))
            .collect();
        let head = fit_logistic(&x, &y, ids.len(), 1.0 / x.len().max(1) as f32);
        let pairs: Vec<(String, String)> = test
            .iter()
            .map(|&i| {
                let logits = head.logits(&raw[i]);
                let best = (0..logits.len())
                    .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
                    .unwrap_or(0);
                (gold[i].clone(), ids[best].clone())
            })
            .collect();
        baseline.push(classification_row("", &pairs));
    }
    let what = match shots {
        Shots::PerLabel(k) => format!("{k}-shot, {} draws", draws.max(1)),
        Shots::All => "all, 5-fold".to_string(),
    };
    Ok(vec![
        averaged(&format!("khulasa, {what}"), &ours),
        averaged(
            &format!("logistic head on raw embeddings, {what}"),
            &baseline,
        ),
    ])
}

/// The mean row of `rows`, its name giving the spread of the score.
fn averaged(method: &str, rows: &[Row]) -> Row {
    let n = rows.len().max(1) as f64;
    let score = rows.iter().map(|r| r.score).sum::<f64>() / n;
    let sd = (rows.iter().map(|r| (r.score - score).powi(2)).sum::<f64>() / n).sqrt();
    let mut per_label = BTreeMap::new();
    for r in rows {
        for (l, f) in &r.per_label {
            *per_label.entry(l.clone()).or_insert(0.0) += f / n;
        }
    }
    Row {
        method: format!("{method} (± {sd:.3})"),
        score,
        accuracy: rows.iter().map(|r| r.accuracy).sum::<f64>() / n,
        per_label,
    }
}

fn mean(vectors: &[Vec<f32>]) -> Vec<f32> {
    let mut m = vec![0f32; vectors.first().map_or(0, Vec::len)];
    for v in vectors {
        m.iter_mut().zip(v).for_each(|(a, b)| *a += b);
    }
    khulasa_embed::l2_normalize(&mut m);
    m
}

fn summary_rows(analyzer: &Analyzer, set: &LabelledSet) -> anyhow::Result<Vec<Row>> {
    let (mut ours, mut lead) = ((0.0, 0.0), (0.0, 0.0));
    for item in &set.items {
        let reference = item.summary.clone().unwrap_or_default();
        let options = AnalysisRequest {
            tasks: only((false, false, true)),
            focus: FocusChoice::Generic,
            budget: khulasa_analysis::SummaryBudget {
                max_sentences: reference.len().max(1),
                ..Default::default()
            },
            ..AnalysisRequest::default()
        };
        let out = analyze_input(analyzer, &input(item), &options, &Default::default())
            .map_err(|e| anyhow::anyhow!("{}: {e}", item.id))?;
        let picked: Vec<String> = out
            .analysis
            .summary
            .map(|s| s.sentences.into_iter().map(|s| s.text).collect())
            .unwrap_or_default();
        let first: Vec<String> = out
            .article
            .sentences
            .iter()
            .filter(|s| !s.is_title)
            .take(reference.len().max(1))
            .map(|s| s.text.clone())
            .collect();
        let (a, b) = super::rouge(&picked, &reference);
        ours = (ours.0 + a, ours.1 + b);
        let (a, b) = super::rouge(&first, &reference);
        lead = (lead.0 + a, lead.1 + b);
    }
    let n = set.items.len().max(1) as f64;
    let row = |method: &str, (r1, r2): (f64, f64)| Row {
        method: method.to_string(),
        score: r1 / n,
        accuracy: r2 / n,
        per_label: BTreeMap::new(),
    };
    Ok(vec![row("khulasa", ours), row("lead-N", lead)])
}

/// The figures of every set as Markdown.
pub fn render(reports: &[SetReport]) -> String {
    let mut s = String::new();
    for r in reports {
        let (score, second) = match r.kind {
            SetKind::Summaries => ("ROUGE-1", "ROUGE-2"),
            _ => ("macro-F1", "accuracy"),
        };
        let _ = writeln!(
            s,
            "\n### {} ({:?}, {} items: {})\n",
            r.name,
            r.kind,
            r.items,
            r.labels
                .iter()
                .filter(|(l, _)| !l.is_empty())
                .map(|(l, n)| format!("{l} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let labels: Vec<&String> = r
            .rows
            .first()
            .map(|x| x.per_label.keys().collect())
            .unwrap_or_default();
        let _ = write!(s, "| method | {score} | {second} |");
        for l in &labels {
            let _ = write!(s, " F1 {l} |");
        }
        let _ = write!(s, "\n|---|---|---|");
        for _ in &labels {
            let _ = write!(s, "---|");
        }
        s.push('\n');
        for row in &r.rows {
            let _ = write!(
                s,
                "| {} | {:.3} | {:.3} |",
                row.method, row.score, row.accuracy
            );
            for l in &labels {
                let _ = write!(s, " {:.3} |", row.per_label.get(*l).copied().unwrap_or(0.0));
            }
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(g, x)| (g.to_string(), x.to_string()))
            .collect()
    }

    #[test]
    fn macro_f1_and_the_majority_baseline() {
        let r = classification_row(
            "x",
            &pairs(&[("a", "a"), ("a", "b"), ("b", "b"), ("c", "a")]),
        );
        assert!((r.per_label["a"] - 0.5).abs() < 1e-9);
        assert!((r.per_label["b"] - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.per_label["c"], 0.0);
        assert!((r.accuracy - 0.5).abs() < 1e-9);
        let gold: Vec<String> = ["x", "x", "x", "y"].iter().map(|s| s.to_string()).collect();
        let m = majority_row(&gold);
        assert!(m.method.contains("(x)"));
        // F1(x) = 2·3 / (2·3 + 1) = 6/7; F1(y) = 0.
        assert!((m.score - 3.0 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn kinds_are_told_by_their_fields() {
        let item = |json: &str| serde_json::from_str::<Item>(json).unwrap().kind();
        assert_eq!(
            item(r#"{"id":"1","text":"t","label":"x"}"#),
            SetKind::Topics
        );
        assert_eq!(
            item(r#"{"id":"1","text":"t","label":"Favor","target":"x"}"#),
            SetKind::TargetStance
        );
        assert_eq!(
            item(r#"{"id":"1","text":"t","label":"agree","claim":"c"}"#),
            SetKind::ClaimStance
        );
        assert_eq!(
            item(r#"{"id":"1","text":"t","label":"agree","reference_headline":"h"}"#),
            SetKind::PairStance
        );
        assert_eq!(
            item(r#"{"id":"1","text":"t","summary":["s"]}"#),
            SetKind::Summaries
        );
        assert_eq!(
            stance_in(SetKind::TargetStance, StanceLabel::Unrelated),
            "None"
        );
        assert_eq!(
            stance_in(SetKind::PairStance, StanceLabel::Neutral),
            "other"
        );
    }
}
