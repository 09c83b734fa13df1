//! ninjs, the IPTC's JSON news item, in and out: an item becomes an
//! [`proto::AnalyzeRequest`], and the analysis goes back into the item as
//! `subjects[]` (and the summary as a `description`), every other field of
//! the item kept as it came. ninjs 2.x (`headlines[]`, `bodies[]`) and the
//! 1.x fields (`headline`, `body_html`, `body_text`) are read.

use serde_json::{Map, Value, json};

use crate::api::ServiceError;
use crate::proto;

/// Who added a subject or description (`creator` / `role` of ours).
pub const CREATOR: &str = "khulasa";

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The first `value` of a ninjs 2.x list (`headlines`, `bodies`) whose
/// `contenttype` is one of `types` (in order of preference; an entry with
/// no contenttype counts as `text/plain`).
fn pick<'a>(
    item: &'a Map<String, Value>,
    list: &str,
    types: &[&'static str],
) -> Option<(&'static str, &'a str)> {
    let entries = item.get(list)?.as_array()?;
    types.iter().find_map(|want| {
        entries.iter().find_map(|e| {
            let ct = e
                .get("contenttype")
                .and_then(Value::as_str)
                .unwrap_or("text/plain");
            let ct = ct.split(';').next().unwrap_or(ct).trim();
            let value = e.get("value").and_then(Value::as_str)?;
            (ct.eq_ignore_ascii_case(want) && !value.trim().is_empty()).then_some((*want, value))
        })
    })
}

fn text_field<'a>(item: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// The article of a ninjs item: its body (HTML preferred, else plain
/// text), headline, language and URI (as id and URL).
pub fn article(item: &Value) -> Result<proto::Article, ServiceError> {
    let item = item
        .as_object()
        .ok_or_else(|| invalid("item", "a ninjs item is a JSON object"))?;
    let content = match pick(item, "bodies", &["text/html", "text/plain"]) {
        Some(("text/html", v)) => proto::article::Content::Html(v.to_string()),
        Some((_, v)) => proto::article::Content::Text(v.to_string()),
        None => match (text_field(item, "body_html"), text_field(item, "body_text")) {
            (Some(h), _) => proto::article::Content::Html(h.to_string()),
            (None, Some(t)) => proto::article::Content::Text(t.to_string()),
            (None, None) => {
                return Err(invalid(
                    "item.bodies",
                    "no body: give bodies[] with a text/html or text/plain value (or body_html / body_text)",
                ));
            }
        },
    };
    let title = pick(item, "headlines", &["text/plain", "text/html"])
        .map(|(_, v)| v)
        .or_else(|| text_field(item, "headline"))
        .unwrap_or_default();
    let uri = text_field(item, "uri").unwrap_or_default();
    Ok(proto::Article {
        id: uri.to_string(),
        title: title.to_string(),
        url: if uri.starts_with("http://") || uri.starts_with("https://") {
            uri.to_string()
        } else {
            String::new()
        },
        language_hint: text_field(item, "language").unwrap_or_default().to_string(),
        content: Some(content),
    })
}

/// A label id as a subject name (`conflict_war_and_peace` → `conflict war
/// and peace`).
fn name_of(label: &str) -> String {
    label.replace('_', " ")
}

/// A probability as ninjs's 0–100 scale.
fn percent(p: f32) -> u64 {
    (p.clamp(0.0, 1.0) * 100.0).round() as u64
}

/// The item with the analysis added: each topic the article has (multi
/// -label sets: probability ≥ 0.5; single-label: the primary) as a subject
/// with its code's `uri`, `name`, `literal` (the label id), `confidence`
/// and `relevance` (0–100, both the topic's probability), and the summary
/// as a `descriptions[]` entry with role `summary`. Subjects and
/// descriptions of ours from an earlier pass are replaced, others kept.
pub fn annotate(item: &Value, analysis: &proto::AnalyzeResponse) -> Value {
    let mut item = item.as_object().cloned().unwrap_or_default();
    let ours = |v: &Value| v.get("creator").and_then(Value::as_str) == Some(CREATOR);
    if let Some(topics) = &analysis.topics {
        let multi = topics.multi_label;
        let mut subjects: Vec<Value> = item
            .get("subjects")
            .and_then(Value::as_array)
            .map(|s| s.iter().filter(|v| !ours(v)).cloned().collect())
            .unwrap_or_default();
        for l in &topics.labels {
            let has = if multi {
                l.probability >= 0.5
            } else {
                l.label == topics.primary
            };
            if !has {
                continue;
            }
            let mut s = json!({
                "name": name_of(&l.label),
                "literal": l.label,
                "confidence": percent(l.probability),
                "relevance": percent(l.probability),
                "creator": CREATOR,
            });
            if !l.uri.is_empty() {
                s["uri"] = Value::from(l.uri.clone());
            }
            subjects.push(s);
        }
        item.insert("subjects".into(), Value::Array(subjects));
    }
    if let Some(summary) = analysis
        .summary
        .as_ref()
        .filter(|s| !s.sentences.is_empty())
    {
        let text = summary
            .sentences
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let mut descriptions: Vec<Value> = item
            .get("descriptions")
            .and_then(Value::as_array)
            .map(|d| d.iter().filter(|v| !ours(v)).cloned().collect())
            .unwrap_or_default();
        descriptions.push(json!({
            "role": "summary",
            "contenttype": "text/plain",
            "value": text,
            "creator": CREATOR,
        }));
        item.insert("descriptions".into(), Value::Array(descriptions));
    }
    Value::Object(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ninjs_2_item_prefers_its_html_body() {
        let item = json!({
            "uri": "https://news.example.org/2026/12/01/a1",
            "language": "ar",
            "headlines": [{"role": "main", "value": "تدريب القوات"}],
            "bodies": [
                {"contenttype": "text/plain", "value": "نص"},
                {"contenttype": "text/html; charset=utf-8", "value": "<p>نص</p>"}
            ]
        });
        let a = article(&item).unwrap();
        assert_eq!(a.title, "تدريب القوات");
        assert_eq!(a.language_hint, "ar");
        assert_eq!(a.url, "https://news.example.org/2026/12/01/a1");
        assert_eq!(
            a.content,
            Some(proto::article::Content::Html("<p>نص</p>".into()))
        );
        // 1.x fields, and a body-less item named by the field to fix.
        let a = article(&json!({"uri": "urn:x", "body_text": "نص"})).unwrap();
        assert_eq!((a.id.as_str(), a.url.as_str()), ("urn:x", ""));
        let e = article(&json!({"headlines": [{"value": "h"}]})).unwrap_err();
        assert!(matches!(e, ServiceError::Invalid { field, .. } if field == "item.bodies"));
    }

    #[test]
    fn topics_become_subjects_and_other_fields_stay() {
        let item = json!({
            "uri": "urn:x",
            "subjects": [
                {"name": "editor's pick", "uri": "urn:desk:1"},
                {"name": "old", "creator": CREATOR}
            ],
            "pubstatus": "usable"
        });
        let analysis = proto::AnalyzeResponse {
            topics: Some(proto::Topics {
                label_set: "iptc-media-topics".into(),
                primary: "conflict_war_and_peace".into(),
                labels: vec![
                    proto::TopicScore {
                        label: "conflict_war_and_peace".into(),
                        probability: 0.874,
                        code: "medtop:16000000".into(),
                        uri: "http://cv.iptc.org/newscodes/mediatopic/16000000".into(),
                    },
                    proto::TopicScore {
                        label: "politics".into(),
                        probability: 0.61,
                        ..Default::default()
                    },
                    proto::TopicScore {
                        label: "sport".into(),
                        probability: 0.02,
                        ..Default::default()
                    },
                ],
                method: String::new(),
                multi_label: true,
            }),
            ..Default::default()
        };
        let out = annotate(&item, &analysis);
        assert_eq!(out["pubstatus"], "usable");
        let subjects = out["subjects"].as_array().unwrap();
        let names: Vec<&str> = subjects
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["editor's pick", "conflict war and peace", "politics"]
        );
        assert_eq!(
            subjects[1]["uri"],
            "http://cv.iptc.org/newscodes/mediatopic/16000000"
        );
        assert_eq!(subjects[1]["confidence"], 87);
        assert!(subjects[2].get("uri").is_none());
        assert!(
            out.get("descriptions").is_none(),
            "no summary, no description"
        );
    }
}
