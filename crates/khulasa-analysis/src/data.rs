//! The analysis knowledge that is data, not code: label sets
//! (`models/labels/*.toml`), stance targets, polarity prototypes, target
//! templates, cue lexicons, claim rules and word frequencies
//! (`models/stance/`), event prototypes (`models/events/`), the summary
//! focus (`models/focus/`), and what was fitted for one model
//! (`models/fitted/<model id>/`: a news mean vector, a pair classifier).
//! Everything but the fitted vectors is plain text a user can edit or
//! extend.

use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::AnalysisError;

/// Limits on label sets, so an inline set in a request cannot exhaust the
/// server.
pub const MAX_LABELS: usize = 64;
/// Most descriptions plus examples per label.
pub const MAX_TEXTS_PER_LABEL: usize = 64;
/// Longest description or example, in characters.
pub const MAX_TEXT_CHARS: usize = 1000;

/// A set of labels an article is classified against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSet {
    /// How requests refer to it.
    pub name: String,
    /// Whether an article may carry several labels.
    #[serde(default = "yes")]
    pub multi_label: bool,
    /// What the set is for.
    #[serde(default)]
    pub description: String,
    /// The labels.
    #[serde(rename = "label")]
    pub labels: Vec<Label>,
    /// A head trained by `khulasa train` on labelled articles (a JSON file,
    /// relative to the TOML file), for single-label sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<PathBuf>,
    /// The head, once read.
    #[serde(skip)]
    pub trained: Option<std::sync::Arc<crate::topic::TopicHead>>,
}

fn yes() -> bool {
    true
}

/// One label: descriptions (zero-shot) and optional example sentences
/// (few-shot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// Identifier returned in results.
    pub id: String,
    /// One or more descriptions, in any language.
    #[serde(deserialize_with = "one_or_many")]
    pub description: Vec<String>,
    /// Example sentences of articles with this label.
    #[serde(default)]
    pub examples: Vec<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl LabelSet {
    /// Reads a label set's TOML file, and the head it names (relative to
    /// the file).
    pub fn from_file(path: &Path) -> Result<Self, AnalysisError> {
        let origin = path.display().to_string();
        let mut set = Self::from_toml(&read(path)?, &origin)?;
        if let Some(head) = &set.head {
            let file = path.parent().unwrap_or(Path::new(".")).join(head);
            let bad = |message: String| AnalysisError::Data {
                origin: file.display().to_string(),
                message,
            };
            let trained: crate::topic::TopicHead =
                serde_json::from_str(&read(&file)?).map_err(|e| bad(e.to_string()))?;
            if set.multi_label {
                return Err(bad(
                    "trained heads are for single-label sets (multi_label = false)".into(),
                ));
            }
            if !trained.labels.iter().eq(set.labels.iter().map(|l| &l.id)) {
                return Err(bad(format!(
                    "trained for labels {:?}, but the set has {:?}: train it again",
                    trained.labels,
                    set.labels.iter().map(|l| &l.id).collect::<Vec<_>>()
                )));
            }
            set.trained = Some(std::sync::Arc::new(trained));
        }
        Ok(set)
    }

    /// Parses and validates a label set from TOML.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, AnalysisError> {
        let set: Self = toml::from_str(text).map_err(|e| AnalysisError::Data {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        set.validate().map_err(|message| AnalysisError::Data {
            origin: origin.to_string(),
            message,
        })?;
        Ok(set)
    }

    /// Checks names, sizes and uniqueness.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("the label set has no name".into());
        }
        if self.labels.is_empty() {
            return Err(format!("label set {} has no labels", self.name));
        }
        if self.labels.len() > MAX_LABELS {
            return Err(format!(
                "label set {} has {} labels; at most {MAX_LABELS} are allowed",
                self.name,
                self.labels.len()
            ));
        }
        let mut seen = HashSet::new();
        for l in &self.labels {
            if l.id.trim().is_empty() {
                return Err(format!("label set {} has a label without an id", self.name));
            }
            if !seen.insert(l.id.as_str()) {
                return Err(format!("label {} appears twice in {}", l.id, self.name));
            }
            if l.description.iter().all(|d| d.trim().is_empty()) {
                return Err(format!("label {} has no description", l.id));
            }
            if l.description.len() + l.examples.len() > MAX_TEXTS_PER_LABEL {
                return Err(format!(
                    "label {} has more than {MAX_TEXTS_PER_LABEL} descriptions and examples",
                    l.id
                ));
            }
            if let Some(t) = l
                .description
                .iter()
                .chain(&l.examples)
                .find(|t| t.chars().count() > MAX_TEXT_CHARS)
            {
                return Err(format!(
                    "label {}: a text of {} characters; at most {MAX_TEXT_CHARS}",
                    l.id,
                    t.chars().count()
                ));
            }
        }
        Ok(())
    }

    /// A hash of the whole set, to cache what is computed from it.
    pub fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.name.hash(&mut h);
        self.multi_label.hash(&mut h);
        for l in &self.labels {
            l.id.hash(&mut h);
            l.description.hash(&mut h);
            l.examples.hash(&mut h);
        }
        if let Some(t) = &self.trained {
            t.examples.hash(&mut h);
            t.centre.iter().for_each(|x| x.to_bits().hash(&mut h));
        }
        h.finish()
    }
}

/// A stance target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Identifier.
    pub id: String,
    /// Whether this is the default target.
    #[serde(default)]
    pub default: bool,
    /// Descriptions (Arabic and English).
    #[serde(deserialize_with = "one_or_many")]
    pub description: Vec<String>,
}

/// Statements that carry an attitude, whatever the target.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Polarity {
    /// Supportive statements (welcome, praise, commit, agree...).
    pub supportive: Statements,
    /// Critical statements (reject, condemn, demand withdrawal, warn...).
    pub critical: Statements,
    /// Plain reporting without attitude.
    pub neutral: Statements,
}

/// A list of statements.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Statements {
    /// The statements.
    pub statements: Vec<String>,
}

/// Cue lexicons for stance, matched on the normalised view.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StanceCues {
    /// Words that flip the polarity of a cue that follows them closely.
    pub negations: Vec<String>,
    /// Supportive cue words and phrases.
    pub supportive: Vec<String>,
    /// Critical cue words and phrases.
    pub critical: Vec<String>,
}

/// One event type with its Goldstein-style weight.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventType {
    /// Identifier.
    pub id: String,
    /// verbal/material cooperation/conflict, or neutral.
    pub quad: String,
    /// Weight in [−10, 10].
    pub goldstein: f32,
    /// Example sentences.
    pub examples: Vec<String>,
}

#[derive(Deserialize)]
struct EventsFile {
    event: Vec<EventType>,
}

#[derive(Deserialize)]
struct TargetsFile {
    target: Vec<Target>,
}

/// The default focus of summaries.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Focus {
    /// Identifier.
    pub id: String,
    /// Descriptions.
    #[serde(deserialize_with = "one_or_many")]
    pub description: Vec<String>,
}

/// Statements for and against a target, `{target}` standing for its text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StanceTemplates {
    /// For the target.
    pub favor: Vec<String>,
    /// Against the target.
    pub against: Vec<String>,
}

impl StanceTemplates {
    /// The templates with `target` filled in: (favor, against).
    pub fn fill(&self, target: &str) -> (Vec<String>, Vec<String>) {
        let f = |v: &[String]| v.iter().map(|t| t.replace("{target}", target)).collect();
        (f(&self.favor), f(&self.against))
    }
}

/// The rules of claim stance (`models/stance/claims.toml`, which explains
/// them).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClaimRules {
    /// Weight of the best sentence's claim-word coverage in the relevance.
    pub coverage_weight: f32,
    /// Weight of the pair classifier's P(unrelated) in the relevance.
    pub other_weight: f32,
    /// Relevance below which the article does not address the claim.
    pub unrelated_below: f32,
    /// Relevance from which an addressing article agrees (else discusses).
    pub agree_from: f32,
    /// Slope of the soft relevance gate.
    pub gate_slope: f32,
    /// Distinct refutation words and phrases that make it disagree.
    pub refutations: usize,
    /// Sentences searched for refutations: those that cover the claim best.
    pub refutation_sentences: usize,
    /// Candidate sentences for the similarity: the first ones...
    pub first_sentences: usize,
    /// ...and the best by coverage among the rest.
    pub best_sentences: usize,
    /// Refutation words (matched on the normalised view).
    pub refutation_words: Vec<String>,
    /// Refutation phrases.
    pub refutation_phrases: Vec<String>,
    /// Prefixes cut from a word to stem it.
    pub prefixes: Vec<String>,
    /// Function words, whitespace-separated.
    pub stopwords: String,
}

/// Document frequencies of content stems, for claim-word weights.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WordFrequencies {
    /// Texts counted.
    pub docs: usize,
    /// Texts each stem was seen in.
    pub df: std::collections::HashMap<String, u32>,
}

impl WordFrequencies {
    /// Parses the `models/stance/idf.tsv` format: `#docs<TAB>N`, then
    /// `stem<TAB>df` lines; other `#` lines are comments.
    pub fn parse(text: &str, origin: &str) -> Result<Self, AnalysisError> {
        let mut out = Self::default();
        for (i, line) in text.lines().enumerate() {
            let bad = || AnalysisError::Data {
                origin: format!("{origin}:{}", i + 1),
                message: format!("expected WORD<TAB>COUNT, got {line:?}"),
            };
            if let Some(n) = line.strip_prefix("#docs\t") {
                out.docs = n.trim().parse().map_err(|_| bad())?;
            } else if line.starts_with('#') || line.trim().is_empty() {
                continue;
            } else {
                let (w, n) = line.split_once('\t').ok_or_else(bad)?;
                out.df
                    .insert(w.to_string(), n.trim().parse().map_err(|_| bad())?);
            }
        }
        Ok(out)
    }

    /// `ln((docs + 1) / (df + 0.5))`: rare words weigh most, unseen ones
    /// the most of all.
    pub fn idf(&self, stem: &str) -> f32 {
        let df = self.df.get(stem).copied().unwrap_or(0) as f32;
        ((self.docs as f32 + 1.0) / (df + 0.5)).ln()
    }
}

/// A linear classifier over sentence-pair features `[u, v, u*v, |u-v|]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PairHead {
    /// Class names, in the order of `weights`.
    pub classes: Vec<String>,
    /// One row of `4 * dim` weights per class.
    pub weights: Vec<Vec<f32>>,
    /// One bias per class.
    pub bias: Vec<f32>,
}

/// What was fitted for one model (`models/fitted/<model id>/`): used only
/// when that model is loaded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fitted {
    /// The mean article vector of real news, to centre topic scores.
    pub news_mean: Option<Vec<f32>>,
    /// The sentence-pair classifier (claim stance).
    pub pair_head: Option<PairHead>,
}

#[derive(Deserialize)]
struct FittedFile<T> {
    model: String,
    dim: usize,
    #[serde(flatten)]
    value: T,
}

#[derive(Deserialize)]
struct MeanValue {
    mean: Vec<f32>,
}

impl Fitted {
    /// Reads `dir` (a `models/fitted/<model id>` folder), checking that
    /// every file is for `model` and its vectors have its dimension.
    fn load(dir: &Path, model: &str) -> Result<Self, AnalysisError> {
        let json = |name: &str| -> Result<Option<String>, AnalysisError> {
            let path = dir.join(name);
            if path.is_file() {
                read(&path).map(Some)
            } else {
                Ok(None)
            }
        };
        let bad = |name: &str, message: String| AnalysisError::Data {
            origin: dir.join(name).display().to_string(),
            message,
        };
        let mut fitted = Self::default();
        if let Some(text) = json("news-mean.json")? {
            let f: FittedFile<MeanValue> =
                serde_json::from_str(&text).map_err(|e| bad("news-mean.json", e.to_string()))?;
            if f.model != model || f.value.mean.len() != f.dim {
                return Err(bad(
                    "news-mean.json",
                    format!(
                        "for {} with {} values, in the folder of {model}",
                        f.model,
                        f.value.mean.len()
                    ),
                ));
            }
            fitted.news_mean = Some(f.value.mean);
        }
        if let Some(text) = json("pair-head.json")? {
            let f: FittedFile<PairHead> =
                serde_json::from_str(&text).map_err(|e| bad("pair-head.json", e.to_string()))?;
            let h = &f.value;
            if f.model != model
                || h.weights.len() != h.classes.len()
                || h.bias.len() != h.classes.len()
                || h.weights.iter().any(|w| w.len() != 4 * f.dim)
                || !h.classes.iter().any(|c| c == "other")
            {
                return Err(bad(
                    "pair-head.json",
                    "malformed, or for another model".into(),
                ));
            }
            fitted.pair_head = Some(f.value);
        }
        Ok(fitted)
    }
}

/// Everything the analysis reads from the data folder.
#[derive(Debug, Clone)]
pub struct AnalysisData {
    /// Label sets by name (sorted).
    pub label_sets: BTreeMap<String, LabelSet>,
    /// The label set used when a request names none.
    pub default_label_set: String,
    /// Stance targets.
    pub targets: Vec<Target>,
    /// Polarity prototypes.
    pub polarity: Polarity,
    /// Stance cue lexicons.
    pub cues: StanceCues,
    /// Event prototypes.
    pub events: Vec<EventType>,
    /// The default summary focus.
    pub focus: Focus,
    /// Statements for and against a target.
    pub templates: StanceTemplates,
    /// The rules of claim stance.
    pub claims: ClaimRules,
    /// Word frequencies for claim-word weights.
    pub frequencies: WordFrequencies,
    /// What was fitted, by model id (`models/fitted/<model id>/`).
    pub fitted: BTreeMap<String, Fitted>,
}

impl AnalysisData {
    /// Reads the data under `models_dir` (`labels/`, `stance/`, `events/`,
    /// `focus/`), plus label sets from `extra_label_dirs`.
    pub fn load(models_dir: &Path, extra_label_dirs: &[PathBuf]) -> Result<Self, AnalysisError> {
        let mut label_sets = BTreeMap::new();
        for dir in
            std::iter::once(models_dir.join("labels")).chain(extra_label_dirs.iter().cloned())
        {
            for path in toml_files(&dir)? {
                let set = LabelSet::from_file(&path)?;
                if let Some(old) = label_sets.insert(set.name.clone(), set) {
                    tracing::warn!(name = %old.name, file = %path.display(), "label set replaced by a later file");
                }
            }
        }
        let default_label_set = "security-news".to_string();
        if !label_sets.contains_key(&default_label_set) {
            return Err(AnalysisError::Data {
                origin: models_dir.join("labels").display().to_string(),
                message: format!("the default label set {default_label_set} is missing"),
            });
        }
        let targets: TargetsFile = parse(&models_dir.join("stance/targets.toml"))?;
        let targets = targets.target;
        if targets.iter().filter(|t| t.default).count() != 1 {
            return Err(AnalysisError::Data {
                origin: models_dir.join("stance/targets.toml").display().to_string(),
                message: "exactly one target must be marked default = true".into(),
            });
        }
        let events: EventsFile = parse(&models_dir.join("events/cameo.toml"))?;
        let idf = models_dir.join("stance/idf.tsv");
        let mut fitted = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(models_dir.join("fitted")) {
            for e in entries.flatten().filter(|e| e.path().is_dir()) {
                let model = e.file_name().to_string_lossy().into_owned();
                fitted.insert(model.clone(), Fitted::load(&e.path(), &model)?);
            }
        }
        Ok(Self {
            templates: parse(&models_dir.join("stance/templates.toml"))?,
            claims: parse(&models_dir.join("stance/claims.toml"))?,
            frequencies: WordFrequencies::parse(&read(&idf)?, &idf.display().to_string())?,
            fitted,
            label_sets,
            default_label_set,
            targets,
            polarity: parse(&models_dir.join("stance/polarity.toml"))?,
            cues: parse(&models_dir.join("stance/cues.toml"))?,
            events: events.event,
            focus: parse(&models_dir.join("focus/security-cooperation.toml"))?,
        })
    }

    /// The default stance target.
    pub fn default_target(&self) -> &Target {
        self.targets
            .iter()
            .find(|t| t.default)
            .expect("checked at load")
    }
}

fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, AnalysisError> {
    let entries = std::fs::read_dir(dir).map_err(|e| AnalysisError::Data {
        origin: dir.display().to_string(),
        message: e.to_string(),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

fn read(path: &Path) -> Result<String, AnalysisError> {
    std::fs::read_to_string(path).map_err(|e| AnalysisError::Data {
        origin: path.display().to_string(),
        message: e.to_string(),
    })
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, AnalysisError> {
    toml::from_str(&read(path)?).map_err(|e| AnalysisError::Data {
        origin: path.display().to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_parse_with_one_or_many_descriptions() {
        let set = LabelSet::from_toml(
            r#"
name = "t"
[[label]]
id = "a"
description = "one"
[[label]]
id = "b"
description = ["x", "y"]
examples = ["e1"]
"#,
            "inline",
        )
        .unwrap();
        assert!(set.multi_label);
        assert_eq!(set.labels[0].description, ["one"]);
        assert_eq!(set.labels[1].examples, ["e1"]);
    }

    #[test]
    fn invalid_label_sets_say_what_is_wrong() {
        let check = |toml: &str, needle: &str| {
            let err = LabelSet::from_toml(toml, "req").unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains("req"), "{err}");
        };
        check("name = \"t\"\nlabel = []", "no labels");
        check(
            "name = \"t\"\n[[label]]\nid = \"a\"\ndescription = \"x\"\n[[label]]\nid = \"a\"\ndescription = \"y\"",
            "twice",
        );
        check(
            "name = \"t\"\n[[label]]\nid = \"a\"\ndescription = \"  \"",
            "no description",
        );
        check("name = \"t\"\n[[label]]\nid = \"a\"", "description");
        let many: String = (0..70)
            .map(|i| format!("[[label]]\nid = \"l{i}\"\ndescription = \"d\"\n"))
            .collect();
        check(&format!("name = \"t\"\n{many}"), "at most 64");
    }

    #[test]
    fn fingerprint_changes_with_content() {
        let a = LabelSet::from_toml(
            "name = \"t\"\n[[label]]\nid = \"a\"\ndescription = \"x\"",
            "",
        )
        .unwrap();
        let mut b = a.clone();
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.labels[0].examples.push("new".into());
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
