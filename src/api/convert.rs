//! From protobuf requests to the pipeline's types, validating them on the
//! way in (each problem names the field it is about), and back for a
//! client of khulasa (`--server`). Results go out as [`crate::record`].

use khulasa_analysis::{AnalysisRequest, FocusChoice, LabelSetChoice, TargetKind, Tasks};

use super::{Limits, ServiceError};
use crate::pipeline::ArticleInput;
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
                        code: Some(l.code).filter(|c| !c.is_empty()),
                        uri: Some(l.uri).filter(|u| !u.is_empty()),
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
                        code: l.code.clone().unwrap_or_default(),
                        uri: l.uri.clone().unwrap_or_default(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use khulasa_analysis::SummaryBudget;

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
