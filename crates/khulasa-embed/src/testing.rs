//! A deterministic stand-in encoder for tests of code written against
//! [`TextEncoder`]: each word is hashed to a fixed random unit vector and a
//! text is the normalised mean of its words, so texts that share words are
//! similar and texts that share none are nearly orthogonal. It knows no
//! language; use it to test mechanics (batching, offsets, aggregation),
//! not quality.

use crate::{
    EncodeError, InputKind, ModelInfo, StopToken, TextEncoder, TokenSpan, TokenStates, l2_normalize,
};

/// The hashing encoder. `dim` should be a few hundred for words to stay
/// near-orthogonal.
#[derive(Debug, Clone)]
pub struct HashingEncoder {
    info: ModelInfo,
}

impl HashingEncoder {
    /// An encoder producing `dim`-dimensional vectors.
    pub fn new(dim: usize) -> Self {
        Self {
            info: ModelInfo {
                id: "hashing-test-encoder".into(),
                architecture: "hashing".into(),
                dim,
                max_tokens: usize::MAX,
                device: "cpu".into(),
                query_prefix: String::new(),
                passage_prefix: String::new(),
            },
        }
    }

    /// The unit vector of one word (lower-cased).
    pub fn word_vector(&self, word: &str) -> Vec<f32> {
        let word = word.to_lowercase();
        // FNV-1a seeds a xorshift generator: the same word, the same vector.
        let mut seed = word.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let mut v: Vec<f32> = (0..self.info.dim)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        l2_normalize(&mut v);
        v
    }

    fn words(text: &str) -> Vec<TokenSpan> {
        let mut spans = Vec::new();
        let mut start = None;
        for (i, c) in text
            .char_indices()
            .chain(std::iter::once((text.len(), ' ')))
        {
            let word_char = c.is_alphanumeric();
            match (start, word_char) {
                (None, true) => start = Some(i),
                (Some(s), false) => {
                    spans.push(TokenSpan { start: s, end: i });
                    start = None;
                }
                _ => {}
            }
        }
        spans
    }
}

impl TextEncoder for HashingEncoder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn embed_until(
        &self,
        texts: &[&str],
        kind: InputKind,
        stop: &StopToken,
    ) -> Result<Vec<Vec<f32>>, EncodeError> {
        Ok(self
            .token_states_until(texts, kind, stop)?
            .into_iter()
            .map(|s| {
                let mut v = vec![0f32; s.dim];
                for i in 0..s.tokens.len() {
                    v.iter_mut().zip(s.state(i)).for_each(|(a, b)| *a += b);
                }
                l2_normalize(&mut v);
                v
            })
            .collect())
    }

    /// One token per word, plus two for the start and end markers.
    fn count_tokens(&self, text: &str, _: InputKind) -> Option<usize> {
        Some(Self::words(text).len() + 2)
    }

    fn token_states_until(
        &self,
        texts: &[&str],
        _: InputKind,
        stop: &StopToken,
    ) -> Result<Vec<TokenStates>, EncodeError> {
        stop.check()?;
        Ok(texts
            .iter()
            .map(|t| {
                let tokens = Self::words(t);
                let states = tokens
                    .iter()
                    .flat_map(|s| self.word_vector(&t[s.start..s.end]))
                    .collect();
                TokenStates {
                    dim: self.info.dim,
                    tokens,
                    states,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosine;

    #[test]
    fn shared_words_make_similar_texts() {
        let e = HashingEncoder::new(256);
        let v = e
            .embed(
                &[
                    "security cooperation talks",
                    "security cooperation",
                    "football final",
                ],
                InputKind::Passage,
            )
            .unwrap();
        assert!(cosine(&v[0], &v[1]) > 0.7);
        assert!(cosine(&v[0], &v[2]).abs() < 0.3);
        assert_eq!(
            v,
            e.embed(
                &[
                    "security cooperation talks",
                    "security cooperation",
                    "football final"
                ],
                InputKind::Query
            )
            .unwrap()
        );
    }

    #[test]
    fn token_spans_are_words() {
        let e = HashingEncoder::new(8);
        let s = e
            .token_states(&["قال: التعاون، مستمر!"], InputKind::Passage)
            .unwrap()
            .remove(0);
        let text = "قال: التعاون، مستمر!";
        let words: Vec<&str> = s.tokens.iter().map(|t| &text[t.start..t.end]).collect();
        assert_eq!(words, ["قال", "التعاون", "مستمر"]);
    }
}
