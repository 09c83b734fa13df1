//! The whole per-article pipeline (clean → embed → analyse), shared by
//! `khulasa analyze`, `khulasa eval` and the service; what it answers goes
//! out as [`crate::record`].

use std::path::Path;

use khulasa_analysis::{
    Analysis, AnalysisError, AnalysisRequest, Analyzer, FocusChoice, LabelSet, LabelSetChoice,
    TargetKind,
};
use khulasa_embed::{EncodeError, StopReason, StopToken};
use khulasa_text::{CleanOptions, Page};
use serde::Deserialize;

use crate::proto::AnalyzeResult;
use crate::record;

/// One article as clients send it (a JSONL line of `khulasa analyze`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArticleInput {
    /// The caller's id, echoed back.
    #[serde(default)]
    pub id: String,
    /// The page as plain text (exactly one of `text` and `html`).
    pub text: Option<String>,
    /// The page as HTML.
    pub html: Option<String>,
    /// The headline, if the caller knows it and the text lacks it.
    pub title: Option<String>,
    /// Where the page came from (informational).
    pub url: Option<String>,
    /// Language hint (informational; the language is detected).
    pub language_hint: Option<String>,
    /// Stance target for this article (free text).
    pub target: Option<String>,
    /// What the target is: `topic` (default) or `claim`.
    pub target_kind: Option<TargetKind>,
    /// Summary focus for this article (free text).
    pub focus: Option<String>,
    /// Label set name for this article.
    pub label_set: Option<String>,
}

impl ArticleInput {
    /// The analysis this article asks for: `defaults` (the run's or the
    /// call's options) with this article's own `label_set`, `target`,
    /// `target_kind` and `focus` in their place. The one place per-article
    /// overrides are applied, in process and before a `--server` call alike.
    pub fn request(&self, defaults: &AnalysisRequest) -> AnalysisRequest {
        AnalysisRequest {
            tasks: defaults.tasks,
            label_set: match &self.label_set {
                Some(name) => LabelSetChoice::Named(name.clone()),
                None => defaults.label_set.clone(),
            },
            target: self.target.clone().or_else(|| defaults.target.clone()),
            target_kind: self.target_kind.unwrap_or(defaults.target_kind),
            focus: match &self.focus {
                Some(f) => FocusChoice::Text(f.clone()),
                None => defaults.focus.clone(),
            },
            budget: defaults.budget.clone(),
        }
    }
}

/// What kind of failure, in the gRPC status code set: the one code every
/// door maps (to a gRPC status, an error record's `code`, an exit status).
/// It is written by its gRPC status name (`INVALID_ARGUMENT`) everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The input or its options are at fault.
    InvalidArgument,
    /// The deadline passed before the work was done.
    DeadlineExceeded,
    /// The caller went away.
    Cancelled,
    /// The server was at capacity (and stayed so past the retries).
    ResourceExhausted,
    /// The server was not serving (loading, stopping, or gone).
    Unavailable,
    /// Something failed inside.
    Internal,
    /// The caller gave no API key, or a wrong one.
    Unauthenticated,
}

impl ErrorCode {
    /// Every code, for tests and docs.
    pub const ALL: [Self; 7] = [
        Self::InvalidArgument,
        Self::DeadlineExceeded,
        Self::Cancelled,
        Self::ResourceExhausted,
        Self::Unavailable,
        Self::Internal,
        Self::Unauthenticated,
    ];

    /// The gRPC status name, e.g. `INVALID_ARGUMENT`.
    pub fn grpc_name(self) -> &'static str {
        match self {
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::Cancelled => "CANCELLED",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
            Self::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The code a gRPC status name stands for; any other name (a code this
    /// project never sends) is `Internal`.
    pub fn from_grpc_name(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|c| c.grpc_name() == name)
            .unwrap_or(Self::Internal)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.grpc_name())
    }
}

/// Runs the pipeline on one input, in process (the input checked against
/// the default [`crate::request::RequestLimits`]), as the record every door
/// writes: its analysis, or why it failed.
pub fn run(analyzer: &Analyzer, input: &ArticleInput, options: &AnalysisRequest) -> AnalyzeResult {
    let started = std::time::Instant::now();
    let stop = StopToken::never();
    let analyzed = crate::request::check_article(input, &Default::default())
        .map_err(|e| PipelineError::Invalid(e.to_string()))
        .and_then(|()| analyze_input(analyzer, input, options, &stop));
    match analyzed {
        Ok(a) => {
            let timings = record::timings(&a, &stop, started);
            record::ok(record::analyzed(a, &analyzer.encoder().info().id, timings))
        }
        Err(e) => record::failed(input.id.clone(), e.code(), e.to_string()),
    }
}

/// Why an input failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineError {
    /// The input or its options are at fault.
    Invalid(String),
    /// The caller went away or its deadline passed; the work was dropped.
    Stopped(StopReason),
    /// Something failed inside.
    Internal(String),
}

impl PipelineError {
    /// Its code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::InvalidArgument,
            Self::Stopped(StopReason::Cancelled) => ErrorCode::Cancelled,
            Self::Stopped(StopReason::DeadlineExceeded) => ErrorCode::DeadlineExceeded,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl std::fmt::Display for PipelineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(m) | Self::Internal(m) => f.write_str(m),
            Self::Stopped(r) => write!(f, "{r}"),
        }
    }
}

impl std::error::Error for PipelineError {}

impl From<AnalysisError> for PipelineError {
    fn from(e: AnalysisError) -> Self {
        match e {
            AnalysisError::UnknownLabelSet(_)
            | AnalysisError::InvalidRequest(_)
            | AnalysisError::Data { .. } => Self::Invalid(e.to_string()),
            AnalysisError::Encode(EncodeError::Stopped(r)) => Self::Stopped(r),
            _ => Self::Internal(e.to_string()),
        }
    }
}

impl From<StopReason> for PipelineError {
    fn from(r: StopReason) -> Self {
        Self::Stopped(r)
    }
}

/// One article after the pipeline: the cleaned page and its analyses.
#[derive(Debug, Clone)]
pub struct Analyzed {
    /// The input's id.
    pub id: String,
    /// Main story, sentences, removed blocks, language.
    pub article: khulasa_text::CleanedArticle,
    /// Topics, stance, summary.
    pub analysis: Analysis,
    /// Time spent cleaning, in milliseconds.
    pub clean_ms: f64,
    /// Time spent in the analysis (model included), in milliseconds.
    pub analysis_ms: f64,
}

/// Cleans and analyses one input; `stop` is checked between stages and by
/// the encoder between forward passes.
pub fn analyze_input(
    analyzer: &Analyzer,
    input: &ArticleInput,
    options: &AnalysisRequest,
    stop: &StopToken,
) -> Result<Analyzed, PipelineError> {
    stop.check()?;
    let started = std::time::Instant::now();
    let page = match (&input.text, &input.html) {
        (Some(t), None) => Page::Text(t),
        (None, Some(h)) => Page::Html(h),
        (Some(_), Some(_)) => {
            return Err(PipelineError::Invalid("give text or html, not both".into()));
        }
        (None, None) => {
            return Err(PipelineError::Invalid(
                "the article has neither text nor html".into(),
            ));
        }
    };
    let source = match page {
        Page::Text(t) | Page::Html(t) => t,
    };
    if source.trim().is_empty() {
        return Err(PipelineError::Invalid("the article is empty".into()));
    }
    let mut article = khulasa_text::clean(page, &CleanOptions::default())
        .map_err(|e| PipelineError::Invalid(e.to_string()))?;
    if article.main_story.title.is_none() {
        article.main_story.title = input.title.clone().filter(|t| !t.trim().is_empty());
    }
    analyzer.fit_token_budget(&mut article);
    let clean_ms = started.elapsed().as_secs_f64() * 1e3;
    stop.check()?;
    let request = input.request(options);
    let analysis_started = std::time::Instant::now();
    let offsets_in = article.extracted_text.as_deref().unwrap_or(source);
    let analysis = analyzer.analyze_until(&article, offsets_in, &request, stop)?;
    Ok(Analyzed {
        id: input.id.clone(),
        article,
        analysis,
        clean_ms,
        analysis_ms: analysis_started.elapsed().as_secs_f64() * 1e3,
    })
}

/// A label-set option: a loaded set's name, or a path to a TOML file.
pub fn label_set_choice(value: &str) -> anyhow::Result<LabelSetChoice> {
    let path = Path::new(value);
    if value.ends_with(".toml") || path.is_file() {
        Ok(LabelSetChoice::Inline(LabelSet::from_file(path)?))
    } else {
        Ok(LabelSetChoice::Named(value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_have_one_name_per_door() {
        for code in ErrorCode::ALL {
            // The gRPC name comes back as the same code.
            assert_eq!(ErrorCode::from_grpc_name(code.grpc_name()), code);
        }
        // A code this project never sends is a failure inside.
        assert_eq!(ErrorCode::from_grpc_name("DATA_LOSS"), ErrorCode::Internal);
        assert_eq!(ErrorCode::from_grpc_name(""), ErrorCode::Internal);
    }
}
