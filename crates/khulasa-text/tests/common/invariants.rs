//! The invariants every cleaned article keeps, whatever the page: offsets
//! inside the text and on character boundaries, sentences inside the story,
//! ordered and disjoint, and every visible character either in the main
//! story or in exactly one removed block.
#![allow(dead_code)] // each includer uses some of this

use khulasa_text::{CleanedArticle, Span};

fn invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

fn check_span(text: &str, s: &Span) {
    assert!(
        s.start <= s.end && s.end <= text.len(),
        "{s:?} outside {}",
        text.len()
    );
    assert!(
        text.is_char_boundary(s.start) && text.is_char_boundary(s.end),
        "{s:?}"
    );
    assert_eq!(s.char_start, text[..s.start].chars().count());
    assert_eq!(s.char_end, text[..s.end].chars().count());
}

/// Checks the invariants of `a`, cleaned from `text` (or extracted from it).
pub fn check(text: &str, a: &CleanedArticle) {
    let story: Vec<&Span> = a
        .main_story
        .title_span
        .iter()
        .chain(&a.main_story.paragraphs)
        .collect();
    for s in &story {
        check_span(text, s);
    }
    for r in &a.removed {
        check_span(text, &r.span);
        assert_eq!(r.text, text[r.span.range()]);
    }
    for (i, s) in a.sentences.iter().enumerate() {
        check_span(text, &s.span);
        assert_eq!(s.index, i);
        assert_eq!(s.text, text[s.span.range()]);
        assert!(!s.text.trim().is_empty());
        assert!(
            story
                .iter()
                .any(|p| p.start <= s.span.start && s.span.end <= p.end)
        );
    }
    assert!(
        a.sentences
            .windows(2)
            .all(|w| w[0].span.end <= w[1].span.start)
    );
    // Story and removed blocks are disjoint and, together, cover every
    // visible character.
    let mut covered: Vec<(usize, usize)> = story
        .iter()
        .map(|s| (s.start, s.end))
        .chain(a.removed.iter().map(|r| (r.span.start, r.span.end)))
        .collect();
    covered.sort();
    assert!(
        covered.windows(2).all(|w| w[0].1 <= w[1].0),
        "overlapping blocks {covered:?}"
    );
    for (i, c) in text.char_indices() {
        if !invisible(c) {
            assert!(
                covered.iter().any(|&(s, e)| s <= i && i < e),
                "{c:?} at byte {i} is neither story nor removed"
            );
        }
    }
}
