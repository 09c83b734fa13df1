//! Between protobuf messages and the pipeline's types, validating requests
//! on the way in (each problem names the field it is about).

use khulasa_analysis::{
    FocusChoice, LabelSetChoice, StanceLabel, SummaryBudget, SummaryStatus, Tasks,
};

use super::{Limits, ServiceError};
use crate::pipeline::{Analyzed, ArticleInput, RunOptions};
use crate::proto;

/// A field violation: the field's path and what is wrong with it.
fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Checks an article and turns it into a pipeline input. `field` is its
/// path in the request (e.g. `articles[3]`).
pub(crate) fn article(
    a: Option<proto::Article>,
    field: &str,
    limits: &Limits,
) -> Result<ArticleInput, ServiceError> {
    let a = a.ok_or_else(|| invalid(field, "the article is missing"))?;
    let (text, html) = match a.content {
        Some(proto::article::Content::Text(t)) => (Some(t), None),
        Some(proto::article::Content::Html(h)) => (None, Some(h)),
        None => return Err(invalid(&format!("{field}.content"), "give text or html")),
    };
    let (name, body) = match (&text, &html) {
        (Some(t), _) => ("text", t),
        (_, Some(h)) => ("html", h),
        _ => unreachable!("one of them is set"),
    };
    if body.trim().is_empty() {
        return Err(invalid(&format!("{field}.{name}"), "the article is empty"));
    }
    if body.len() > limits.max_article_bytes {
        return Err(invalid(
            &format!("{field}.{name}"),
            format!(
                "the article has {} bytes; at most {} are accepted",
                body.len(),
                limits.max_article_bytes
            ),
        ));
    }
    Ok(ArticleInput {
        id: a.id,
        text,
        html,
        title: Some(a.title).filter(|t| !t.is_empty()),
        url: Some(a.url).filter(|t| !t.is_empty()),
        language_hint: Some(a.language_hint).filter(|t| !t.is_empty()),
        ..ArticleInput::default()
    })
}

/// Checks options and turns them into run options. `labels` are the loaded
/// label sets' names.
pub(crate) fn options(
    o: Option<proto::AnalyzeOptions>,
    field: &str,
    limits: &Limits,
    labels: &[String],
) -> Result<RunOptions, ServiceError> {
    let o = o.unwrap_or_default();
    let mut tasks = Tasks {
        topics: false,
        stance: false,
        summary: false,
    };
    for &t in &o.tasks {
        match proto::Task::try_from(t) {
            Ok(proto::Task::Topics) => tasks.topics = true,
            Ok(proto::Task::Stance) => tasks.stance = true,
            Ok(proto::Task::Summary) => tasks.summary = true,
            _ => {
                return Err(invalid(
                    &format!("{field}.tasks"),
                    format!("unknown task {t}"),
                ));
            }
        }
    }
    if o.tasks.is_empty() {
        tasks = Tasks::default();
    }
    let label_set = match o.labels {
        None => LabelSetChoice::Default,
        Some(proto::analyze_options::Labels::LabelSetName(n)) if n.is_empty() => {
            LabelSetChoice::Default
        }
        Some(proto::analyze_options::Labels::LabelSetName(n)) => {
            if !labels.contains(&n) {
                return Err(invalid(
                    &format!("{field}.label_set_name"),
                    format!("unknown label set {n:?}; loaded: {}", labels.join(", ")),
                ));
            }
            LabelSetChoice::Named(n)
        }
        Some(proto::analyze_options::Labels::InlineLabelSet(s)) => {
            let f = format!("{field}.inline_label_set");
            if s.labels.len() > limits.max_inline_labels {
                return Err(invalid(
                    &format!("{f}.labels"),
                    format!(
                        "{} labels; at most {}",
                        s.labels.len(),
                        limits.max_inline_labels
                    ),
                ));
            }
            let set = khulasa_analysis::LabelSet {
                name: if s.name.is_empty() {
                    "inline".into()
                } else {
                    s.name
                },
                multi_label: s.multi_label,
                description: String::new(),
                labels: s
                    .labels
                    .into_iter()
                    .map(|l| khulasa_analysis::Label {
                        id: l.id,
                        description: l.description,
                        examples: l.examples,
                    })
                    .collect(),
            };
            set.validate().map_err(|m| invalid(&f, m))?;
            LabelSetChoice::Inline(set)
        }
    };
    for (name, value) in [("target", &o.target), ("focus", &o.focus)] {
        let n = value.chars().count();
        if n > limits.max_target_chars {
            return Err(invalid(
                &format!("{field}.{name}"),
                format!("{n} characters; at most {}", limits.max_target_chars),
            ));
        }
    }
    if !(0.0..=1.0).contains(&o.ratio) {
        return Err(invalid(
            &format!("{field}.ratio"),
            "must be between 0 and 1",
        ));
    }
    if o.generic_summary && !o.focus.trim().is_empty() {
        return Err(invalid(
            &format!("{field}.focus"),
            "a focus and generic_summary exclude each other",
        ));
    }
    Ok(RunOptions {
        label_set,
        target: Some(o.target).filter(|t| !t.trim().is_empty()),
        focus: if o.generic_summary {
            FocusChoice::Generic
        } else if o.focus.trim().is_empty() {
            FocusChoice::Default
        } else {
            FocusChoice::Text(o.focus)
        },
        budget: SummaryBudget {
            max_sentences: if o.max_sentences == 0 {
                3
            } else {
                o.max_sentences as usize
            },
            max_chars: o.max_chars as usize,
            ratio: o.ratio,
        },
        tasks,
    })
}

fn span(s: &khulasa_text::Span) -> proto::Span {
    proto::Span {
        start: s.start as u32,
        end: s.end as u32,
        char_start: s.char_start as u32,
        char_end: s.char_end as u32,
    }
}

/// The response for an analysed article.
pub(crate) fn response(
    a: Analyzed,
    model_id: &str,
    timings: proto::Timings,
) -> proto::AnalyzeResponse {
    let article = a.article;
    let analysis = a.analysis;
    proto::AnalyzeResponse {
        id: a.id,
        language: article
            .language
            .as_ref()
            .map(|l| l.code.clone())
            .unwrap_or_default(),
        main_story: Some(proto::MainStory {
            title: article.main_story.title.clone().unwrap_or_default(),
            text: article.main_story.text.clone(),
        }),
        sentences: article
            .sentences
            .iter()
            .map(|s| proto::Sentence {
                index: s.index as u32,
                text: s.text.clone(),
                span: Some(span(&s.span)),
                is_title: s.is_title,
            })
            .collect(),
        removed: article
            .removed
            .iter()
            .map(|r| proto::RemovedBlock {
                reason: r.reason.as_str().to_string(),
                span: Some(span(&r.span)),
            })
            .collect(),
        extracted_text: article.extracted_text.unwrap_or_default(),
        topics: analysis.topics.map(|t| proto::Topics {
            label_set: t.label_set,
            primary: t.primary.unwrap_or_default(),
            method: serde_json::to_value(t.method)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            labels: t
                .labels
                .into_iter()
                .map(|l| proto::TopicScore {
                    label: l.label,
                    probability: l.probability,
                })
                .collect(),
        }),
        stance: analysis.stance.map(|s| proto::Stance {
            target: s.target,
            label: match s.label {
                StanceLabel::Supportive => proto::StanceLabel::Supportive,
                StanceLabel::Neutral => proto::StanceLabel::Neutral,
                StanceLabel::Critical => proto::StanceLabel::Critical,
                StanceLabel::Unrelated => proto::StanceLabel::Unrelated,
            } as i32,
            supportive: s.probabilities.supportive,
            neutral: s.probabilities.neutral,
            critical: s.probabilities.critical,
            unrelated: s.probabilities.unrelated,
            evidence: s
                .evidence
                .into_iter()
                .map(|e| proto::Evidence {
                    sentence: e.sentence as u32,
                    score: e.score,
                    relevance: e.relevance,
                })
                .collect(),
            cooperation_conflict: s.cooperation_conflict,
            relevance: s.relevance,
        }),
        summary: analysis.summary.map(|s| proto::Summary {
            status: match s.status {
                SummaryStatus::Ok => proto::SummaryStatus::Ok,
                SummaryStatus::NoRelevantContent => proto::SummaryStatus::NoRelevantContent,
                SummaryStatus::Empty => proto::SummaryStatus::Empty,
            } as i32,
            mode: s.mode.to_string(),
            sentences: s
                .sentences
                .into_iter()
                .map(|x| proto::SummarySentence {
                    index: x.index as u32,
                    text: x.text,
                    span: Some(span(&khulasa_text::Span {
                        start: x.start,
                        end: x.end,
                        char_start: x.char_start,
                        char_end: x.char_end,
                    })),
                    score: x.score,
                })
                .collect(),
        }),
        model_id: model_id.to_string(),
        timings: Some(timings),
    }
}
