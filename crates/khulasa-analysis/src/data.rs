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
/// Longest label id, vocabulary code or URI, in characters.
pub const MAX_CODE_CHARS: usize = 256;

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
    /// The label's code in a controlled vocabulary, e.g. an IPTC Media
    /// Topic's `medtop:16000000`, returned with its score.
    #[serde(default)]
    pub code: Option<String>,
    /// The code's URI, e.g. `http://cv.iptc.org/newscodes/mediatopic/16000000`.
    #[serde(default)]
    pub uri: Option<String>,
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
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        Self::read_from(&DataDir::new(dir), name.as_deref().unwrap_or_default())
    }

    /// Reads the label set `file` of `files`, and the head it names
    /// (relative to it).
    fn read_from(files: &dyn DataFiles, file: &str) -> Result<Self, AnalysisError> {
        let origin = files.origin(file);
        let text = files.read(file)?.ok_or_else(|| AnalysisError::Data {
            origin: origin.clone(),
            message: "no such file".into(),
        })?;
        let mut set = Self::from_toml(&text, &origin)?;
        if let Some(head) = &set.head {
            let rel = match file.rsplit_once('/') {
                Some((dir, _)) => format!("{dir}/{}", head.display()),
                None => head.display().to_string(),
            };
            let bad = |message: String| AnalysisError::Data {
                origin: files.origin(&rel),
                message,
            };
            let text = files
                .read(&rel)?
                .ok_or_else(|| bad("no such file".into()))?;
            let trained: crate::topic::TopicHead =
                serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
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
            for (what, v) in [
                ("code", &l.code),
                ("uri", &l.uri),
                ("id", &Some(l.id.clone())),
            ] {
                if let Some(v) = v
                    && v.chars().count() > MAX_CODE_CHARS
                {
                    return Err(format!(
                        "label {}: its {what} has {} characters; at most {MAX_CODE_CHARS}",
                        l.id.chars().take(40).collect::<String>(),
                        v.chars().count()
                    ));
                }
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
            l.code.hash(&mut h);
            l.uri.hash(&mut h);
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
    /// Reads `dir` (a `fitted/<model id>` folder of `files`), checking that
    /// every file is for `model` and its vectors have its dimension.
    fn load(files: &dyn DataFiles, dir: &str, model: &str) -> Result<Self, AnalysisError> {
        let json = |name: &str| files.read(&format!("{dir}/{name}"));
        let bad = |name: &str, message: String| AnalysisError::Data {
            origin: files.origin(&format!("{dir}/{name}")),
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
    /// `focus/`, `fitted/`), plus label sets from `extra_label_dirs`.
    pub fn load(models_dir: &Path, extra_label_dirs: &[PathBuf]) -> Result<Self, AnalysisError> {
        Self::from_files(&DataDir::new(models_dir), extra_label_dirs)
    }

    /// Reads the data from `files` (a folder, or files compiled into the
    /// binary), plus label sets from the folders `extra_label_dirs`.
    pub fn from_files(
        files: &dyn DataFiles,
        extra_label_dirs: &[PathBuf],
    ) -> Result<Self, AnalysisError> {
        let mut label_sets = BTreeMap::new();
        let extra: Vec<DataDir> = extra_label_dirs.iter().map(DataDir::new).collect();
        let sources = std::iter::once((files, "labels"))
            .chain(extra.iter().map(|d| (d as &dyn DataFiles, "")));
        for (source, dir) in sources {
            for file in source.files(dir, "toml")? {
                let set = LabelSet::read_from(source, &file)?;
                if let Some(old) = label_sets.insert(set.name.clone(), set) {
                    tracing::warn!(name = %old.name, file = %source.origin(&file), "label set replaced by a later file");
                }
            }
        }
        let default_label_set = "security-news".to_string();
        if !label_sets.contains_key(&default_label_set) {
            return Err(AnalysisError::Data {
                origin: files.origin("labels"),
                message: format!("the default label set {default_label_set} is missing"),
            });
        }
        let targets: TargetsFile = parse(files, "stance/targets.toml")?;
        let targets = targets.target;
        if targets.iter().filter(|t| t.default).count() != 1 {
            return Err(AnalysisError::Data {
                origin: files.origin("stance/targets.toml"),
                message: "exactly one target must be marked default = true".into(),
            });
        }
        let events: EventsFile = parse(files, "events/cameo.toml")?;
        let mut fitted = BTreeMap::new();
        for model in files.dirs("fitted")? {
            let dir = format!("fitted/{model}");
            fitted.insert(model.clone(), Fitted::load(files, &dir, &model)?);
        }
        Ok(Self {
            templates: parse(files, "stance/templates.toml")?,
            claims: parse(files, "stance/claims.toml")?,
            frequencies: WordFrequencies::parse(
                &required(files, "stance/idf.tsv")?,
                &files.origin("stance/idf.tsv"),
            )?,
            fitted,
            label_sets,
            default_label_set,
            targets,
            polarity: parse(files, "stance/polarity.toml")?,
            cues: parse(files, "stance/cues.toml")?,
            events: events.event,
            focus: parse(files, "focus/security-cooperation.toml")?,
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

/// Where the data files come from: a folder ([`DataDir`]) or files
/// compiled into the binary ([`BundledData`]). Paths are relative and
/// `/`-separated (`stance/targets.toml`).
pub trait DataFiles {
    /// The text of `path`, or `None` if there is no such file.
    fn read(&self, path: &str) -> Result<Option<String>, AnalysisError>;
    /// The files directly in folder `dir` (`""`: the top) whose names end
    /// in `.ext`, as paths, sorted. A missing folder is an error.
    fn files(&self, dir: &str, ext: &str) -> Result<Vec<String>, AnalysisError>;
    /// The names of the folders in `dir`, sorted; none if it is missing.
    fn dirs(&self, dir: &str) -> Result<Vec<String>, AnalysisError>;
    /// How errors name `path`.
    fn origin(&self, path: &str) -> String;
}

/// Data files in a folder.
#[derive(Debug, Clone)]
pub struct DataDir(PathBuf);

impl DataDir {
    /// The folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self(dir.into())
    }

    fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.0.clone()
        } else {
            self.0.join(rel)
        }
    }

    fn entries(&self, dir: &str, want_dirs: bool, ext: &str) -> std::io::Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(dir))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir() == want_dirs)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| want_dirs || Path::new(n).extension().is_some_and(|x| x == ext))
            .collect();
        names.sort();
        Ok(names)
    }
}

impl DataFiles for DataDir {
    fn read(&self, path: &str) -> Result<Option<String>, AnalysisError> {
        match std::fs::read_to_string(self.path(path)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AnalysisError::Data {
                origin: self.origin(path),
                message: e.to_string(),
            }),
        }
    }

    fn files(&self, dir: &str, ext: &str) -> Result<Vec<String>, AnalysisError> {
        let names = self
            .entries(dir, false, ext)
            .map_err(|e| AnalysisError::Data {
                origin: self.origin(dir),
                message: e.to_string(),
            })?;
        Ok(names.into_iter().map(|n| join(dir, &n)).collect())
    }

    fn dirs(&self, dir: &str) -> Result<Vec<String>, AnalysisError> {
        Ok(self.entries(dir, true, "").unwrap_or_default())
    }

    fn origin(&self, path: &str) -> String {
        self.path(path).display().to_string()
    }
}

/// Data files compiled into the binary: `(path, text)` pairs.
#[derive(Debug, Clone, Copy)]
pub struct BundledData(pub &'static [(&'static str, &'static str)]);

impl DataFiles for BundledData {
    fn read(&self, path: &str) -> Result<Option<String>, AnalysisError> {
        Ok(self
            .0
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, text)| text.to_string()))
    }

    fn files(&self, dir: &str, ext: &str) -> Result<Vec<String>, AnalysisError> {
        let mut files: Vec<String> = self
            .0
            .iter()
            .filter_map(|(p, _)| {
                let name = in_dir(p, dir)?;
                (!name.contains('/') && Path::new(name).extension().is_some_and(|x| x == ext))
                    .then(|| p.to_string())
            })
            .collect();
        if files.is_empty() && self.dirs(dir)?.is_empty() {
            return Err(AnalysisError::Data {
                origin: self.origin(dir),
                message: "no such folder".into(),
            });
        }
        files.sort();
        Ok(files)
    }

    fn dirs(&self, dir: &str) -> Result<Vec<String>, AnalysisError> {
        let mut dirs: Vec<String> = self
            .0
            .iter()
            .filter_map(|(p, _)| Some(in_dir(p, dir)?.split_once('/')?.0.to_string()))
            .collect();
        dirs.sort();
        dirs.dedup();
        Ok(dirs)
    }

    fn origin(&self, path: &str) -> String {
        format!("(built in) {path}")
    }
}

/// `path` relative to `dir`, if it is inside it.
fn in_dir<'a>(path: &'a str, dir: &str) -> Option<&'a str> {
    if dir.is_empty() {
        Some(path)
    } else {
        path.strip_prefix(dir)?.strip_prefix('/')
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn required(files: &dyn DataFiles, path: &str) -> Result<String, AnalysisError> {
    files.read(path)?.ok_or_else(|| AnalysisError::Data {
        origin: files.origin(path),
        message: "no such file".into(),
    })
}

fn parse<T: for<'de> Deserialize<'de>>(
    files: &dyn DataFiles,
    path: &str,
) -> Result<T, AnalysisError> {
    toml::from_str(&required(files, path)?).map_err(|e| AnalysisError::Data {
        origin: files.origin(path),
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
