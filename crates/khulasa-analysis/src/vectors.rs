//! Sentence, title and article vectors of a cleaned article, by one of two
//! methods: pooling token states from one pass over the whole story (cheap),
//! or embedding every sentence on its own (as the label prototypes are).

use khulasa_embed::{EncodeError, InputKind, TextEncoder};
use khulasa_text::CleanedArticle;
use serde::Serialize;

use crate::math::{l2_normalize, weighted_unit};

/// How sentence vectors are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SentenceVectors {
    /// Each sentence embedded separately (one short sequence each).
    #[default]
    Separate,
    /// Token states of one pass over the story, mean-pooled by sentence span.
    Pooled,
}

/// The vectors one article needs.
#[derive(Debug, Clone)]
pub(crate) struct ArticleVectors {
    /// One unit vector per sentence of the article (title sentences included),
    /// in the article's sentence order.
    pub sentences: Vec<Vec<f32>>,
    /// The whole story (title weighted in), unit length.
    pub article: Vec<f32>,
}

/// Weight of the title in the article vector.
const TITLE_WEIGHT: f32 = 0.35;

pub(crate) fn article_vectors(
    encoder: &dyn TextEncoder,
    article: &CleanedArticle,
    source: &str,
    method: SentenceVectors,
) -> Result<ArticleVectors, EncodeError> {
    let dim = encoder.info().dim;
    let body = article.main_story.text.as_str();
    let title = article.main_story.title.as_deref();
    if article.sentences.is_empty() {
        return Ok(ArticleVectors {
            sentences: Vec::new(),
            article: vec![0.0; dim],
        });
    }
    match method {
        SentenceVectors::Separate => {
            let mut texts: Vec<&str> = article.sentences.iter().map(|s| s.text.as_str()).collect();
            texts.push(if body.is_empty() {
                title.unwrap_or("")
            } else {
                body
            });
            if let Some(t) = title {
                texts.push(t);
            }
            let mut vectors = encoder.embed(&texts, InputKind::Passage)?;
            let title_vec = title.map(|_| vectors.pop().expect("title embedded"));
            let body_vec = vectors.pop().expect("body embedded");
            let article_vec = match &title_vec {
                Some(t) => {
                    weighted_unit(&[(t, TITLE_WEIGHT), (&body_vec, 1.0 - TITLE_WEIGHT)], dim)
                }
                None => body_vec,
            };
            Ok(ArticleVectors {
                sentences: vectors,
                article: article_vec,
            })
        }
        SentenceVectors::Pooled => {
            // One text: the story's paragraphs (title first) as they are in
            // the source, so sentence spans map by a per-part shift.
            let parts: Vec<std::ops::Range<usize>> = article
                .main_story
                .title_span
                .iter()
                .chain(&article.main_story.paragraphs)
                .map(|s| s.range())
                .collect();
            let mut story = String::new();
            let mut shifts = Vec::with_capacity(parts.len());
            for p in &parts {
                if !story.is_empty() {
                    story.push_str("\n\n");
                }
                shifts.push((p.clone(), story.len() as isize - p.start as isize));
                story.push_str(&source[p.clone()]);
            }
            let states = encoder
                .token_states(&[&story], InputKind::Passage)?
                .pop()
                .expect("one text, one result");
            let map = |r: std::ops::Range<usize>| {
                shifts
                    .iter()
                    .find(|(p, _)| p.start <= r.start && r.end <= p.end)
                    .map(|(_, d)| (r.start as isize + d) as usize..(r.end as isize + d) as usize)
            };
            let sentences = article
                .sentences
                .iter()
                .map(|s| {
                    map(s.span.range())
                        .and_then(|r| states.pool_span(r))
                        .unwrap_or_else(|| vec![0.0; dim])
                })
                .collect();
            let title_len = article.main_story.title_span.map_or(0, |t| t.end - t.start);
            let title_vec = (title_len > 0)
                .then(|| states.pool_span(0..title_len))
                .flatten();
            let body_start = if title_len > 0 { title_len + 2 } else { 0 };
            let mut body_vec = states
                .pool_span(body_start..story.len())
                .unwrap_or_else(|| vec![0.0; dim]);
            l2_normalize(&mut body_vec);
            let article_vec = match &title_vec {
                Some(t) => {
                    weighted_unit(&[(t, TITLE_WEIGHT), (&body_vec, 1.0 - TITLE_WEIGHT)], dim)
                }
                None => body_vec,
            };
            Ok(ArticleVectors {
                sentences,
                article: article_vec,
            })
        }
    }
}
