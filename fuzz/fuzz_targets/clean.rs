//! Fuzzes the cleaner with arbitrary bytes as text and as HTML, checking
//! the offset invariants on every result.
#![no_main]

use khulasa_text::{CleanOptions, Page, clean};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let options = CleanOptions::default();
    let a = clean(Page::Text(text), &options).expect("text never fails");
    for s in &a.sentences {
        assert!(s.span.end <= text.len() && text.is_char_boundary(s.span.start));
        assert_eq!(&text[s.span.range()], s.text);
    }
    if let Ok(a) = clean(Page::Html(text), &options) {
        let extracted = a.extracted_text.unwrap();
        for s in &a.sentences {
            assert_eq!(&extracted[s.span.range()], s.text);
        }
    }
});
