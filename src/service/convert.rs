//! Between protobuf messages and the pipeline's types, validating requests
//! on the way in (each problem names the field it is about).

use khulasa_analysis::{
    AnalysisRequest, Evidence, FocusChoice, LabelScore, LabelSetChoice, StanceLabel,
    StanceProbabilities, StanceResult, SummaryResult, SummarySentence, SummaryStatus, TargetKind,
    Tasks,
};

use super::{Limits, ServiceError};
use crate::pipeline::{Analyzed, ArticleInput, ArticleOutput, ErrorCode, MainStoryOut};
use crate::proto;
use crate::request;

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
        None => (None, None),
    };
    let input = ArticleInput {
        id: a.id,
        text,
        html,
        title: Some(a.title).filter(|t| !t.is_empty()),
        url: Some(a.url).filter(|t| !t.is_empty()),
        language_hint: Some(a.language_hint).filter(|t| !t.is_empty()),
        ..ArticleInput::default()
    };
    request::check_article(&input, &limits.request()).map_err(|e| at(field, e))?;
    Ok(input)
}

/// A rule's field error at `field` of the request.
fn at(field: &str, e: request::FieldError) -> ServiceError {
    invalid(&format!("{field}.{}", e.field), e.message)
}

/// Checks options and turns them into run options. `labels` are the loaded
/// label sets' names.
pub(crate) fn options(
    o: Option<proto::AnalyzeOptions>,
    field: &str,
    limits: &Limits,
    labels: &[String],
) -> Result<AnalysisRequest, ServiceError> {
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
            LabelSetChoice::Inline(khulasa_analysis::LabelSet {
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
                head: None,
                trained: None,
            })
        }
    };
    let target_kind = match proto::TargetKind::try_from(o.target_kind) {
        Ok(proto::TargetKind::Claim) => TargetKind::Claim,
        Ok(_) => TargetKind::Topic,
        Err(_) => {
            return Err(invalid(
                &format!("{field}.target_kind"),
                format!("unknown target kind {}", o.target_kind),
            ));
        }
    };
    let spec = request::OptionsSpec {
        label_set,
        tasks,
        target: Some(o.target),
        target_kind,
        focus: Some(o.focus),
        generic_summary: o.generic_summary,
        max_sentences: Some(o.max_sentences as usize),
        max_chars: o.max_chars as usize,
        ratio: o.ratio,
    };
    request::options(spec, &limits.request()).map_err(|e| at(field, e))
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
                paragraph: s.paragraph.map(|p| p as u32),
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
            polarity: s.polarity,
        }),
        summary: analysis.summary.map(|s| proto::Summary {
            status: match s.status {
                SummaryStatus::Ok => proto::SummaryStatus::Ok,
                SummaryStatus::NoRelevantContent => proto::SummaryStatus::NoRelevantContent,
                SummaryStatus::Empty => proto::SummaryStatus::Empty,
            } as i32,
            mode: s.mode.to_string(),
            focus_relevance: s.focus_relevance,
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
        truncated: article.truncated,
        html_extraction: article
            .html_extraction
            .map(|h| h.as_str().to_string())
            .unwrap_or_default(),
    }
}

// ---- The other way: what a client of khulasa sends and reads back. ----

/// A pipeline input as a proto article (per-article target, focus and label
/// set travel in the options, see [`proto_options`]).
pub fn article_to_proto(a: &ArticleInput) -> proto::Article {
    proto::Article {
        id: a.id.clone(),
        content: match (&a.text, &a.html) {
            (_, Some(h)) if a.text.is_none() => Some(proto::article::Content::Html(h.clone())),
            (Some(t), None) => Some(proto::article::Content::Text(t.clone())),
            // Both or neither: the server answers INVALID_ARGUMENT, as the
            // in-process pipeline would.
            _ => None,
        },
        title: a.title.clone().unwrap_or_default(),
        url: a.url.clone().unwrap_or_default(),
        language_hint: a.language_hint.clone().unwrap_or_default(),
    }
}

/// An analysis request (one article's, overrides applied by
/// [`ArticleInput::request`]) as proto options.
pub fn proto_options(r: &AnalysisRequest) -> proto::AnalyzeOptions {
    let tasks = [
        (r.tasks.topics, proto::Task::Topics),
        (r.tasks.stance, proto::Task::Stance),
        (r.tasks.summary, proto::Task::Summary),
    ]
    .into_iter()
    .filter_map(|(on, task)| on.then_some(task as i32))
    .collect();
    let labels = match &r.label_set {
        LabelSetChoice::Default => None,
        LabelSetChoice::Named(n) => Some(proto::analyze_options::Labels::LabelSetName(n.clone())),
        LabelSetChoice::Inline(set) => Some(proto::analyze_options::Labels::InlineLabelSet(
            proto::LabelSet {
                name: set.name.clone(),
                multi_label: set.multi_label,
                labels: set
                    .labels
                    .iter()
                    .map(|l| proto::Label {
                        id: l.id.clone(),
                        description: l.description.clone(),
                        examples: l.examples.clone(),
                    })
                    .collect(),
            },
        )),
    };
    let (focus, generic_summary) = match &r.focus {
        FocusChoice::Default => (String::new(), false),
        FocusChoice::Generic => (String::new(), true),
        FocusChoice::Text(f) => (f.clone(), false),
    };
    proto::AnalyzeOptions {
        tasks,
        labels,
        target: r.target.clone().unwrap_or_default(),
        focus,
        generic_summary,
        max_sentences: r.budget.max_sentences as u32,
        max_chars: r.budget.max_chars as u32,
        ratio: r.budget.ratio,
        target_kind: match r.target_kind {
            TargetKind::Topic => proto::TargetKind::Unspecified,
            TargetKind::Claim => proto::TargetKind::Claim,
        } as i32,
    }
}

fn span_from(s: Option<proto::Span>) -> khulasa_text::Span {
    let s = s.unwrap_or_default();
    khulasa_text::Span {
        start: s.start as usize,
        end: s.end as usize,
        char_start: s.char_start as usize,
        char_end: s.char_end as usize,
    }
}

/// A server's result as the JSON contract of `khulasa analyze`, so records
/// from a server and from the in-process engine look the same.
pub fn result_to_output(r: proto::AnalyzeResult) -> ArticleOutput {
    match r.outcome {
        Some(proto::analyze_result::Outcome::Response(response)) => response_to_output(response),
        Some(proto::analyze_result::Outcome::Error(e)) => ArticleOutput::failed(
            r.id,
            ErrorCode::from_grpc_name(&e.code),
            format!("{}: {}", e.code, e.message),
        ),
        None => ArticleOutput::failed(
            r.id,
            ErrorCode::Internal,
            "the server sent an empty result".into(),
        ),
    }
}

/// An analysis response as the JSON contract of `khulasa analyze`.
pub fn response_to_output(r: proto::AnalyzeResponse) -> ArticleOutput {
    let topics = r.topics;
    ArticleOutput {
        id: r.id,
        language: Some(r.language).filter(|l| !l.is_empty()),
        main_story: r.main_story.map(|m| MainStoryOut {
            title: Some(m.title).filter(|t| !t.is_empty()),
            text: m.text,
        }),
        sentences: Some(
            r.sentences
                .into_iter()
                .map(|s| khulasa_text::Sentence {
                    index: s.index as usize,
                    text: s.text,
                    span: span_from(s.span),
                    paragraph: s.paragraph.map(|p| p as usize),
                    is_title: s.is_title,
                })
                .collect(),
        ),
        truncated: r.truncated,
        html_extraction: match r.html_extraction.as_str() {
            "readability" => Some(khulasa_text::HtmlExtraction::Readability),
            "all_text" => Some(khulasa_text::HtmlExtraction::AllText),
            "flattened" => Some(khulasa_text::HtmlExtraction::Flattened),
            _ => None,
        },
        primary_topic: topics
            .as_ref()
            .map(|t| t.primary.clone())
            .filter(|p| !p.is_empty()),
        topics: topics.map(|t| {
            t.labels
                .into_iter()
                .map(|l| LabelScore {
                    label: l.label,
                    probability: l.probability,
                })
                .collect()
        }),
        stance: r.stance.map(|s| StanceResult {
            target: s.target,
            label: match proto::StanceLabel::try_from(s.label) {
                Ok(proto::StanceLabel::Supportive) => StanceLabel::Supportive,
                Ok(proto::StanceLabel::Critical) => StanceLabel::Critical,
                Ok(proto::StanceLabel::Unrelated) => StanceLabel::Unrelated,
                _ => StanceLabel::Neutral,
            },
            probabilities: StanceProbabilities {
                supportive: s.supportive,
                neutral: s.neutral,
                critical: s.critical,
                unrelated: s.unrelated,
            },
            evidence: s
                .evidence
                .into_iter()
                .map(|e| Evidence {
                    sentence: e.sentence as usize,
                    score: e.score,
                    relevance: e.relevance,
                })
                .collect(),
            relevance: s.relevance,
            polarity: s.polarity,
            cooperation_conflict: s.cooperation_conflict,
        }),
        summary: r.summary.map(|s| SummaryResult {
            status: match proto::SummaryStatus::try_from(s.status) {
                Ok(proto::SummaryStatus::NoRelevantContent) => SummaryStatus::NoRelevantContent,
                Ok(proto::SummaryStatus::Empty) => SummaryStatus::Empty,
                _ => SummaryStatus::Ok,
            },
            mode: if s.mode == "generic" {
                "generic"
            } else {
                "focus"
            },
            focus_relevance: s.focus_relevance,
            sentences: s
                .sentences
                .into_iter()
                .map(|x| {
                    let span = span_from(x.span);
                    SummarySentence {
                        index: x.index as usize,
                        text: x.text,
                        start: span.start,
                        end: span.end,
                        char_start: span.char_start,
                        char_end: span.char_end,
                        score: x.score,
                    }
                })
                .collect(),
        }),
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use khulasa_analysis::{AnalysisData, Analyzer, AnalyzerOptions};
    use khulasa_embed::testing::HashingEncoder;

    use super::*;
    use crate::pipeline::analyze_input;
    use khulasa_analysis::SummaryBudget;

    fn analyzer() -> Analyzer {
        let data =
            AnalysisData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models"), &[]).unwrap();
        Analyzer::new(
            Arc::new(HashingEncoder::new(384)),
            data,
            AnalyzerOptions::default(),
        )
        .unwrap()
    }

    /// What a server sends, read back by a client, is the record the
    /// in-process pipeline writes: the two engines of `khulasa analyze`
    /// produce the same lines.
    #[test]
    fn a_response_reads_back_as_the_in_process_record() {
        let a = analyzer();
        let input = ArticleInput {
            id: "x".into(),
            text: Some(
                "بغداد توقع اتفاقا أمنيا مع واشنطن\n\nوقع العراق والولايات المتحدة اتفاقا \
                 لتدريب القوات العراقية. وقال المسؤولون إن التعاون سيستمر.\n\n\
                 Officials said the training mission would continue next year."
                    .into(),
            ),
            ..Default::default()
        };
        for focus in [FocusChoice::Default, FocusChoice::Generic] {
            let options = AnalysisRequest {
                focus,
                ..Default::default()
            };
            let analyzed =
                analyze_input(&a, &input, &options, &khulasa_embed::StopToken::never()).unwrap();
            let direct = ArticleOutput::from(analyzed.clone());
            let response = response(analyzed, "m", proto::Timings::default());
            let back = result_to_output(proto::AnalyzeResult {
                id: "x".into(),
                outcome: Some(proto::analyze_result::Outcome::Response(response)),
            });
            assert_eq!(
                serde_json::to_value(&back).unwrap(),
                serde_json::to_value(&direct).unwrap()
            );
        }
    }

    #[test]
    fn proto_options_carry_article_overrides_and_the_budget() {
        let run = AnalysisRequest {
            focus: FocusChoice::Generic,
            target: Some("default target".into()),
            budget: SummaryBudget {
                max_sentences: 2,
                max_chars: 300,
                ratio: 0.5,
            },
            ..Default::default()
        };
        let plain = proto_options(&ArticleInput::default().request(&run));
        assert!(plain.generic_summary);
        assert_eq!(plain.target, "default target");
        assert_eq!((plain.max_sentences, plain.max_chars), (2, 300));
        assert_eq!(plain.tasks.len(), 3);
        let article = ArticleInput {
            target: Some("mine".into()),
            focus: Some("oil".into()),
            label_set: Some("iptc-media-topics".into()),
            ..Default::default()
        };
        let o = proto_options(&article.request(&run));
        assert_eq!((o.target.as_str(), o.focus.as_str()), ("mine", "oil"));
        assert!(!o.generic_summary);
        assert_eq!(
            o.labels,
            Some(proto::analyze_options::Labels::LabelSetName(
                "iptc-media-topics".into()
            ))
        );
        // And the server reads them back into the same run options.
        let limits = Limits::default();
        let back = options(Some(o), "options", &limits, &["iptc-media-topics".into()]).unwrap();
        assert_eq!(back.target.as_deref(), Some("mine"));
        assert!(matches!(back.focus, FocusChoice::Text(ref f) if f == "oil"));
    }
}
