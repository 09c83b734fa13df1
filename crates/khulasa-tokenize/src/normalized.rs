//! A string being normalized, with the original span of every byte.
//!
//! This reproduces the bookkeeping of Hugging Face's `NormalizedString`, rule
//! for rule, because token offsets must come out the same as theirs: each
//! byte of the normalized text carries the byte range, in the original text,
//! of the character it came from. Edits are written as HF writes them, a list
//! of `(char, changes)`: `0` replaces the next original character, a positive
//! value inserts a character (which takes the span of the character before
//! it), and `-n` replaces the next character and removes the `n` after it.

use std::ops::Range;

#[derive(Debug, Clone)]
pub(crate) struct Normalized {
    text: String,
    /// Per byte of `text`: the original byte range it came from.
    align: Vec<(usize, usize)>,
}

impl Normalized {
    pub(crate) fn new(original: &str) -> Self {
        let mut align = Vec::with_capacity(original.len());
        for (i, c) in original.char_indices() {
            let span = (i, i + c.len_utf8());
            align.extend(std::iter::repeat_n(span, c.len_utf8()));
        }
        Self {
            text: original.to_string(),
            align,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The original byte range of the normalized bytes `range` (non-empty).
    pub(crate) fn original_span(&self, range: Range<usize>) -> (usize, usize) {
        (self.align[range.start].0, self.align[range.end - 1].1)
    }

    /// Rewrites the whole text with `edits` (HF's `NormalizedString::transform`).
    pub(crate) fn transform(&mut self, edits: &[(char, isize)]) {
        let mut text = String::with_capacity(self.text.len());
        let mut align = Vec::with_capacity(self.align.len());
        self.transform_into(0..self.text.len(), 0, edits, &mut text, &mut align);
        self.text = text;
        self.align = align;
    }

    /// Replaces every match of `pattern` with `content`.
    pub(crate) fn replace(&mut self, matches: &[Range<usize>], content: &str) {
        if matches.is_empty() {
            return;
        }
        let edits: Vec<(char, isize)> = content.chars().map(|c| (c, 1)).collect();
        let mut text = String::with_capacity(self.text.len());
        let mut align = Vec::with_capacity(self.align.len());
        let mut last = 0;
        for m in matches {
            text.push_str(&self.text[last..m.start]);
            align.extend_from_slice(&self.align[last..m.start]);
            let removed = self.text[m.clone()].chars().count();
            self.transform_into(m.clone(), removed, &edits, &mut text, &mut align);
            last = m.end;
        }
        text.push_str(&self.text[last..]);
        align.extend_from_slice(&self.align[last..]);
        self.text = text;
        self.align = align;
    }

    /// Puts `c` in front of the text (nothing when the text is empty).
    pub(crate) fn prepend(&mut self, c: char) {
        let Some(first) = self.text.chars().next() else {
            return;
        };
        let edits = [(c, 0), (first, 1)];
        let mut text = String::with_capacity(self.text.len() + c.len_utf8());
        let mut align = Vec::with_capacity(text.capacity());
        self.transform_into(0..first.len_utf8(), 0, &edits, &mut text, &mut align);
        text.push_str(&self.text[first.len_utf8()..]);
        align.extend_from_slice(&self.align[first.len_utf8()..]);
        self.text = text;
        self.align = align;
    }

    /// HF's `transform_range` on `range`, written to `text`/`align`: the
    /// first `skip` characters of the range are dropped, then `edits` apply.
    fn transform_into(
        &self,
        range: Range<usize>,
        skip: usize,
        edits: &[(char, isize)],
        text: &mut String,
        align: &mut Vec<(usize, usize)>,
    ) {
        let mut old = self.text[range.clone()].chars();
        let mut offset = range.start + (&mut old).take(skip).map(char::len_utf8).sum::<usize>();
        for &(c, changes) in edits {
            let span = if changes > 0 {
                // An inserted character shares the span of the one before it.
                if offset == 0 {
                    (0, 0)
                } else {
                    self.align[offset - 1]
                }
            } else {
                self.align[offset]
            };
            if changes <= 0 {
                offset += old.next().map_or(0, char::len_utf8);
            }
            if changes < 0 {
                offset += (&mut old)
                    .take(changes.unsigned_abs())
                    .map(char::len_utf8)
                    .sum::<usize>();
            }
            text.push(c);
            align.extend(std::iter::repeat_n(span, c.len_utf8()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_keeps_spans() {
        let mut n = Normalized::new("ab  c");
        n.replace(std::slice::from_ref(&(2..4)), " ");
        assert_eq!(n.as_str(), "ab c");
        // The inserted space takes the span of the last removed one.
        assert_eq!(n.original_span(2..3), (3, 4));
        assert_eq!(n.original_span(3..4), (4, 5));
    }

    #[test]
    fn prepend_takes_the_first_span() {
        let mut n = Normalized::new("مرحبا");
        n.prepend('▁');
        assert_eq!(n.as_str(), "▁مرحبا");
        assert_eq!(n.original_span(0..3), (0, 2));
        assert_eq!(n.original_span(0..n.as_str().len()), (0, 10));
    }

    #[test]
    fn expansion_then_removal() {
        // HF writes "™\x1eg" → "TMg" as three plain replacements (the
        // removal of \x1e cancels the insertion of M), so M takes the span
        // of \x1e.
        let mut n = Normalized::new("™\x1eg");
        n.transform(&[('T', 0), ('M', 0), ('g', 0)]);
        assert_eq!(n.as_str(), "TMg");
        assert_eq!(n.original_span(0..1), (0, 3));
        assert_eq!(n.original_span(1..2), (3, 4));
        assert_eq!(n.original_span(2..3), (4, 5));
    }
}
