//! The analysis knowledge that is data, not code: label sets
//! (`models/labels/*.toml`), stance targets, polarity prototypes and cue
//! lexicons (`models/stance/`), event prototypes (`models/events/`) and the
//! summary focus (`models/focus/`). Everything is plain TOML a user can edit
//! or extend.

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
                let set = LabelSet::from_toml(&read(&path)?, &path.display().to_string())?;
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
        Ok(Self {
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
