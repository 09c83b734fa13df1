//! Sentence, title and article vectors of a cleaned article, by one of two
//! methods: pooling token states from one pass over the whole story (cheap),
//! or embedding every sentence on its own (as the label prototypes are).

use khulasa_embed::{EncodeError, InputKind, StopToken, TextEncoder};
use khulasa_text::CleanedArticle;
use serde::Serialize;

use crate::math::{l2_normalize, weighted_unit};

/// How sentence vectors are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum SentenceVectors {
    /// Each sentence embedded separately (one short sequence each).
    #[default]
    Separate,
    /// Token states of one pass over the story, mean-pooled by sentence
    /// span: about twice as fast end to end. Topics and stance compare these
    /// with the separately embedded data; the summary centres them on the
    /// article first ([`CENTERING`]).
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
    /// Sentence vectors for the summary when they differ from `sentences`
    /// (pooled: centred on the article, see [`CENTERING`]).
    pub for_summary: Option<Vec<Vec<f32>>>,
}

/// Most bytes of one sentence that are embedded. A sentence is a few dozen
/// tokens (the segmenter splits run-ons past 320 characters); this only
/// bounds pathological ones (a 1 MB "word", a storm of combining marks,
/// where a byte or two is a token), to one window at most.
pub(crate) const MAX_SENTENCE_BYTES: usize = 1024;
/// Most bytes of the story embedded for the whole-story vector (its lead,
/// where news carries its topic): a few windows at most.
const MAX_STORY_BYTES: usize = 8 * 1024;

/// Most bytes of the story read in one pass by the pooled method.
const MAX_POOLED_STORY_BYTES: usize = 256 * 1024;

/// The longest prefix of `text` of at most `max` bytes that ends on a char
/// boundary.
pub(crate) fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Weight of the title in the article vector.
const TITLE_WEIGHT: f32 = 0.35;

/// Share of the context's mean taken out of pooled sentence vectors for
/// the summary.
///
/// Token states carry their whole context, so sentences pooled from one
/// pass are all alike (cosine ≥ 0.95 to each other and to the title, which
/// the summary then drops as duplicates). Taking out the context's mean
/// leaves what sets each sentence apart, which is what the summary's
/// centrality, redundancy and relevance need; the focus is calibrated on a
/// background of data sentences treated the same way ([`in_context`]).
/// Topics and stance compare sentences with the data itself, and centring
/// wrecked them (dev set: topic macro-F1 0.29), so they get the plain
/// pooled vectors.
const CENTERING: f32 = 1.0;

/// Subtracts [`CENTERING`] × the mean of `vectors` from each, then
/// normalises (zero vectors, from unmapped spans, stay zero).
fn center(vectors: &mut [Vec<f32>], dim: usize) {
    let alpha = CENTERING;
    let live: Vec<&Vec<f32>> = vectors
        .iter()
        .filter(|v| v.iter().any(|&x| x != 0.0))
        .collect();
    if alpha == 0.0 || live.len() < 2 {
        return;
    }
    let mut mean = vec![0f32; dim];
    for v in &live {
        for (m, x) in mean.iter_mut().zip(v.iter()) {
            *m += x / live.len() as f32;
        }
    }
    for v in vectors.iter_mut().filter(|v| v.iter().any(|&x| x != 0.0)) {
        for (x, m) in v.iter_mut().zip(&mean) {
            *x -= alpha * m;
        }
        l2_normalize(v);
    }
}

/// Sentences per pseudo-article when data sentences are embedded in
/// context.
const GROUP: usize = 8;

/// Data sentences (the calibration background) as the pooled method's
/// summary sees article sentences: `texts` are read in runs of [`GROUP`] as
/// one paragraph each, every sentence pooled from its run's pass and
/// centred on the run. Vectors come back in input order.
pub(crate) fn in_context(
    encoder: &dyn TextEncoder,
    texts: &[&str],
) -> Result<Vec<Vec<f32>>, EncodeError> {
    let dim = encoder.info().dim;
    let mut paragraphs = Vec::new();
    let mut spans = Vec::new();
    for run in texts.chunks(GROUP) {
        let mut paragraph = String::new();
        let mut run_spans = Vec::with_capacity(run.len());
        for t in run {
            if !paragraph.is_empty() {
                paragraph.push(' ');
            }
            let t = t.trim();
            run_spans.push(paragraph.len()..paragraph.len() + t.len());
            paragraph.push_str(t);
        }
        paragraphs.push(paragraph);
        spans.push(run_spans);
    }
    let refs: Vec<&str> = paragraphs.iter().map(String::as_str).collect();
    let states = encoder.token_states_until(&refs, InputKind::Passage, &StopToken::never())?;
    let mut out = Vec::with_capacity(texts.len());
    for (states, spans) in states.iter().zip(spans) {
        let mut run: Vec<Vec<f32>> = spans
            .into_iter()
            .map(|r| states.pool_span(r).unwrap_or_else(|| vec![0.0; dim]))
            .collect();
        center(&mut run, dim);
        out.extend(run);
    }
    Ok(out)
}

pub(crate) fn article_vectors(
    encoder: &dyn TextEncoder,
    article: &CleanedArticle,
    source: &str,
    method: SentenceVectors,
    stop: &StopToken,
) -> Result<ArticleVectors, EncodeError> {
    let dim = encoder.info().dim;
    let body = article.main_story.text.as_str();
    let title = article.main_story.title.as_deref();
    if article.sentences.is_empty() {
        return Ok(ArticleVectors {
            sentences: Vec::new(),
            article: vec![0.0; dim],
            for_summary: None,
        });
    }
    match method {
        SentenceVectors::Separate => {
            let mut texts: Vec<&str> = article
                .sentences
                .iter()
                .map(|s| prefix(&s.text, MAX_SENTENCE_BYTES))
                .collect();
            texts.push(if body.is_empty() {
                title.unwrap_or("")
            } else {
                prefix(body, MAX_STORY_BYTES)
            });
            if let Some(t) = title {
                texts.push(prefix(t, MAX_SENTENCE_BYTES));
            }
            let mut vectors = encoder.embed_until(&texts, InputKind::Passage, stop)?;
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
                for_summary: None,
            })
        }
        SentenceVectors::Pooled => {
            // One text: the story's paragraphs (title first) as they are in
            // the source, so sentence spans map by a per-part shift. Only
            // the part that has sentences is read (they may stop at the
            // cleaner's cap), and at most MAX_POOLED_STORY_BYTES of it;
            // sentences past that get no vector.
            let last_end = article.sentences.last().map_or(0, |s| s.span.end);
            let parts: Vec<std::ops::Range<usize>> = article
                .main_story
                .title_span
                .iter()
                .chain(&article.main_story.paragraphs)
                .map(|s| s.range())
                .filter(|r| r.start < last_end)
                .map(|r| r.start..r.end.min(last_end))
                .collect();
            let mut story = String::new();
            let mut shifts = Vec::with_capacity(parts.len());
            for p in &parts {
                if story.len() >= MAX_POOLED_STORY_BYTES {
                    break;
                }
                if !story.is_empty() {
                    story.push_str("\n\n");
                }
                let part = prefix(&source[p.clone()], MAX_POOLED_STORY_BYTES - story.len());
                let p = p.start..p.start + part.len();
                shifts.push((p.clone(), story.len() as isize - p.start as isize));
                story.push_str(part);
            }
            let states = encoder
                .token_states_until(&[&story], InputKind::Passage, stop)?
                .pop()
                .expect("one text, one result");
            let map = |r: std::ops::Range<usize>| {
                shifts
                    .iter()
                    .find(|(p, _)| p.start <= r.start && r.end <= p.end)
                    .map(|(_, d)| (r.start as isize + d) as usize..(r.end as isize + d) as usize)
            };
            let sentences: Vec<Vec<f32>> = article
                .sentences
                .iter()
                .map(|s| {
                    map(s.span.range())
                        .and_then(|r| states.pool_span(r))
                        .unwrap_or_else(|| vec![0.0; dim])
                })
                .collect();
            let mut for_summary = sentences.clone();
            center(&mut for_summary, dim);
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
                for_summary: Some(for_summary),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use khulasa_embed::testing::HashingEncoder;

    fn mean_pairwise(v: &[Vec<f32>]) -> f32 {
        let mut sum = 0.0;
        let mut n = 0;
        for i in 0..v.len() {
            for j in i + 1..v.len() {
                sum += crate::math::dot(&v[i], &v[j]);
                n += 1;
            }
        }
        sum / n as f32
    }

    #[test]
    fn in_context_gives_one_unit_vector_per_sentence_less_alike_than_plain() {
        let e = HashingEncoder::new(64);
        // Ten sentences sharing words, as a label's examples do: two runs.
        let texts: Vec<String> = (0..10)
            .map(|i| {
                format!(
                    "the army and the coalition train unit {i} near base {}",
                    i * 7
                )
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let centred = in_context(&e, &refs).unwrap();
        assert_eq!(centred.len(), texts.len());
        for v in &centred {
            let norm = crate::math::dot(v, v).sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        }
        let plain = e.embed(&refs[..GROUP], InputKind::Passage).unwrap();
        let (a, b) = (mean_pairwise(&centred[..GROUP]), mean_pairwise(&plain));
        assert!(a < b - 0.2, "centred {a} vs plain {b}");
    }

    #[test]
    fn centring_leaves_zero_vectors_and_lone_sentences_alone() {
        let mut one = vec![vec![0.6, 0.8]];
        center(&mut one, 2);
        assert_eq!(one, vec![vec![0.6, 0.8]]);
        let mut with_zero = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.0, 0.0]];
        center(&mut with_zero, 2);
        assert_eq!(with_zero[2], vec![0.0, 0.0]);
        // Two unit vectors centred on their mean point opposite ways.
        assert!(crate::math::dot(&with_zero[0], &with_zero[1]) < -0.99);
    }
}
