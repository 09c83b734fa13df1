//! Fuzzes the cleaner with arbitrary bytes as text and as HTML, with the
//! default limits and with tight ones (taken from the first byte), checking
//! the offset invariants and the limits on every result.
#![no_main]

use khulasa_text::{CleanLimits, CleanOptions, CleanedArticle, Page, clean};
use libfuzzer_sys::fuzz_target;

fn check(text: &str, a: &CleanedArticle, limits: &CleanLimits) {
    assert!(a.sentences.len() <= limits.max_sentences);
    assert!(!a.truncated || a.sentences.len() == limits.max_sentences);
    for w in a.sentences.windows(2) {
        assert!(w[0].span.end <= w[1].span.start);
    }
    for s in &a.sentences {
        assert!(s.span.end <= text.len() && text.is_char_boundary(s.span.start));
        assert_eq!(&text[s.span.range()], s.text);
    }
    for r in &a.removed {
        assert_eq!(&text[r.span.range()], r.text);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&knob, data)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tight = CleanLimits {
        max_sentences: usize::from(knob % 8),
        max_html_depth: usize::from(knob % 5),
        max_html_elements: usize::from(knob % 32),
        max_html_depth_sum: usize::from(knob) * 4,
        max_html_open_formatting: usize::from(knob % 3),
    };
    for limits in [CleanLimits::default(), tight] {
        let options = CleanOptions {
            limits,
            ..CleanOptions::default()
        };
        let a = clean(Page::Text(text), &options).expect("text never fails");
        assert!(a.html_extraction.is_none());
        check(text, &a, &limits);
        if let Ok(a) = clean(Page::Html(text), &options) {
            assert!(a.html_extraction.is_some());
            let extracted = a.extracted_text.clone().unwrap();
            check(&extracted, &a, &limits);
        }
    }
});
