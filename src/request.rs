//! The rules a request must meet, written once for every door: the gRPC
//! service, `khulasa analyze` in process (flags and JSONL lines), and the
//! doors to come. A door turns what it received into an [`ArticleInput`]
//! and an [`OptionsSpec`], and these functions check them and build the
//! pipeline's [`AnalysisRequest`]; a problem is a [`FieldError`] naming the
//! field by its protobuf name (`text`, `ratio`, `inline_label_set.labels`),
//! which each door words its own way (`articles[3].text`, `--ratio`).

use khulasa_analysis::{
    AnalysisRequest, FocusChoice, LabelSetChoice, SummaryBudget, TargetKind, Tasks,
};

use crate::pipeline::ArticleInput;

/// Sentences in a summary when a request does not say.
pub const DEFAULT_SUMMARY_SENTENCES: usize = 3;

/// Bounds on one article and its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest article (text or html) in bytes.
    pub max_article_bytes: usize,
    /// Longest title in characters.
    pub max_title_chars: usize,
    /// Longest target or focus in characters.
    pub max_target_chars: usize,
    /// Largest summary length a request may ask for.
    pub max_summary_sentences: usize,
    /// Most labels in an inline label set.
    pub max_inline_labels: usize,
    /// Most bytes of descriptions and examples in an inline label set.
    pub max_inline_label_set_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_article_bytes: 2 << 20,
            max_title_chars: 2000,
            max_target_chars: khulasa_analysis::MAX_TARGET_CHARS,
            max_summary_sentences: khulasa_analysis::summary::MAX_SUMMARY_SENTENCES,
            max_inline_labels: khulasa_analysis::data::MAX_LABELS,
            max_inline_label_set_bytes: 256 << 10,
        }
    }
}

/// A field of a request that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's protobuf name, relative to the article or the options.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Checks one article: exactly one of text and html, not empty, within
/// the size bounds; and its own target and focus, if it has them (whether
/// a claim has its text is known only with the options: the pipeline
/// checks it).
pub fn check_article(input: &ArticleInput, limits: &RequestLimits) -> Result<(), FieldError> {
    let (name, body) = match (&input.text, &input.html) {
        (Some(t), None) => ("text", t),
        (None, Some(h)) => ("html", h),
        (Some(_), Some(_)) => {
            return Err(FieldError::new("content", "give text or html, not both"));
        }
        (None, None) => return Err(FieldError::new("content", "give text or html")),
    };
    if body.trim().is_empty() {
        return Err(FieldError::new(name, "the article is empty"));
    }
    if body.len() > limits.max_article_bytes {
        return Err(FieldError::new(
            name,
            format!(
                "the article has {} bytes; at most {} are accepted",
                body.len(),
                limits.max_article_bytes
            ),
        ));
    }
    if let Some(title) = &input.title {
        let n = title.chars().count();
        if n > limits.max_title_chars {
            return Err(FieldError::new(
                "title",
                format!(
                    "the title has {n} characters; at most {} are accepted",
                    limits.max_title_chars
                ),
            ));
        }
    }
    check_free_text("target", input.target.as_deref(), limits)?;
    check_free_text("focus", input.focus.as_deref(), limits)
}

fn check_free_text(
    field: &str,
    value: Option<&str>,
    limits: &RequestLimits,
) -> Result<(), FieldError> {
    let n = value.map_or(0, |v| v.chars().count());
    if n > limits.max_target_chars {
        return Err(FieldError::new(
            field,
            format!("{n} characters; at most {}", limits.max_target_chars),
        ));
    }
    Ok(())
}

/// Options as a door received them, before any check.
#[derive(Debug, Clone, Default)]
pub struct OptionsSpec {
    /// The label set (a named one is checked against the loaded sets by
    /// the analyzer).
    pub label_set: LabelSetChoice,
    /// Which analyses run.
    pub tasks: Tasks,
    /// The stance target (`None` or blank: the default target).
    pub target: Option<String>,
    /// What the target is.
    pub target_kind: TargetKind,
    /// The summary focus (`None` or blank: the default focus).
    pub focus: Option<String>,
    /// A generic summary instead of a focused one.
    pub generic_summary: bool,
    /// Most summary sentences (`None` or 0: [`DEFAULT_SUMMARY_SENTENCES`]).
    pub max_sentences: Option<usize>,
    /// Most summary characters (0: no limit).
    pub max_chars: usize,
    /// Most summary sentences as a share of the story's (0: no limit).
    pub ratio: f32,
}

/// Checks options and builds the pipeline's.
pub fn options(spec: OptionsSpec, limits: &RequestLimits) -> Result<AnalysisRequest, FieldError> {
    let target = spec.target.filter(|t| !t.trim().is_empty());
    let focus = spec.focus.filter(|f| !f.trim().is_empty());
    check_free_text("target", target.as_deref(), limits)?;
    check_free_text("focus", focus.as_deref(), limits)?;
    if let LabelSetChoice::Inline(set) = &spec.label_set {
        if set.labels.len() > limits.max_inline_labels {
            return Err(FieldError::new(
                "inline_label_set.labels",
                format!(
                    "{} labels; at most {}",
                    set.labels.len(),
                    limits.max_inline_labels
                ),
            ));
        }
        let bytes: usize = set
            .labels
            .iter()
            .flat_map(|l| l.description.iter().chain(&l.examples))
            .map(String::len)
            .sum();
        if bytes > limits.max_inline_label_set_bytes {
            return Err(FieldError::new(
                "inline_label_set.labels",
                format!(
                    "{bytes} bytes of descriptions and examples; at most {}",
                    limits.max_inline_label_set_bytes
                ),
            ));
        }
        set.validate()
            .map_err(|m| FieldError::new("inline_label_set", m))?;
    }
    if !(0.0..=1.0).contains(&spec.ratio) {
        return Err(FieldError::new("ratio", "must be between 0 and 1"));
    }
    let max_sentences = match spec.max_sentences {
        None | Some(0) => DEFAULT_SUMMARY_SENTENCES,
        Some(n) if n > limits.max_summary_sentences => {
            return Err(FieldError::new(
                "max_sentences",
                format!("{n} sentences; at most {}", limits.max_summary_sentences),
            ));
        }
        Some(n) => n,
    };
    if spec.generic_summary && focus.is_some() {
        return Err(FieldError::new(
            "focus",
            "a focus and generic_summary exclude each other",
        ));
    }
    if spec.target_kind == TargetKind::Claim && target.is_none() {
        return Err(FieldError::new(
            "target",
            "a claim target needs the claim's text",
        ));
    }
    Ok(AnalysisRequest {
        label_set: spec.label_set,
        target,
        target_kind: spec.target_kind,
        focus: match (spec.generic_summary, focus) {
            (true, _) => FocusChoice::Generic,
            (false, Some(f)) => FocusChoice::Text(f),
            (false, None) => FocusChoice::Default,
        },
        budget: SummaryBudget {
            max_sentences,
            max_chars: spec.max_chars,
            ratio: spec.ratio,
        },
        tasks: spec.tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> ArticleInput {
        ArticleInput {
            text: Some(t.into()),
            ..ArticleInput::default()
        }
    }

    fn field_of<T: std::fmt::Debug>(r: Result<T, FieldError>) -> String {
        r.unwrap_err().field
    }

    #[test]
    fn articles_are_checked_field_by_field() {
        let limits = RequestLimits {
            max_article_bytes: 10,
            max_title_chars: 3,
            max_target_chars: 4,
            ..RequestLimits::default()
        };
        assert!(check_article(&text("short"), &limits).is_ok());
        assert_eq!(field_of(check_article(&text("   "), &limits)), "text");
        assert_eq!(
            field_of(check_article(&text("eleven byte"), &limits)),
            "text"
        );
        let both = ArticleInput {
            html: Some("<p>x</p>".into()),
            ..text("x")
        };
        assert_eq!(field_of(check_article(&both, &limits)), "content");
        assert_eq!(
            field_of(check_article(&ArticleInput::default(), &limits)),
            "content"
        );
        let titled = ArticleInput {
            title: Some("عنوان".into()),
            ..text("x")
        };
        assert_eq!(field_of(check_article(&titled, &limits)), "title");
        let targeted = ArticleInput {
            target: Some("five!".into()),
            ..text("x")
        };
        assert_eq!(field_of(check_article(&targeted, &limits)), "target");
    }

    #[test]
    fn options_are_checked_once_for_every_door() {
        let limits = RequestLimits::default();
        let ok = options(OptionsSpec::default(), &limits).unwrap();
        assert_eq!(ok.budget.max_sentences, DEFAULT_SUMMARY_SENTENCES);
        assert!(matches!(ok.focus, FocusChoice::Default));
        let bad = |spec: OptionsSpec| field_of(options(spec, &limits));
        assert_eq!(
            bad(OptionsSpec {
                ratio: 1.5,
                ..Default::default()
            }),
            "ratio"
        );
        assert_eq!(
            bad(OptionsSpec {
                max_sentences: Some(limits.max_summary_sentences + 1),
                ..Default::default()
            }),
            "max_sentences"
        );
        assert_eq!(
            bad(OptionsSpec {
                generic_summary: true,
                focus: Some("security".into()),
                ..Default::default()
            }),
            "focus"
        );
        assert_eq!(
            bad(OptionsSpec {
                target_kind: TargetKind::Claim,
                target: Some("  ".into()),
                ..Default::default()
            }),
            "target"
        );
        let generic = options(
            OptionsSpec {
                generic_summary: true,
                focus: Some(" ".into()),
                max_sentences: Some(0),
                ..Default::default()
            },
            &limits,
        )
        .unwrap();
        assert!(matches!(generic.focus, FocusChoice::Generic));
        assert_eq!(generic.budget.max_sentences, DEFAULT_SUMMARY_SENTENCES);
    }
}
