//! Data-driven main-story tests over annotated pages (tests/fixtures/pages:
//! every line tagged with what it is), in several site layouts, Arabic and
//! English. Each page must come out exactly as annotated.

use khulasa_text::{CleanOptions, Page, clean};

mod common;
use common::pages::{actual_tag, all_fixtures};

#[test]
fn every_page_comes_out_as_annotated() {
    let fixtures = all_fixtures();
    assert!(fixtures.len() >= 12);
    let mut wrong = Vec::new();
    let mut total = 0;
    for f in &fixtures {
        let a = clean(Page::Text(&f.text), &CleanOptions::default()).unwrap();
        for (range, expected) in &f.lines {
            total += 1;
            let got = actual_tag(&a, range);
            if &got != expected {
                wrong.push(format!(
                    "{}: expected {expected}, got {got}: {}",
                    f.name,
                    &f.text[range.clone()].chars().take(70).collect::<String>()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {total} lines wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn main_story_language_is_detected() {
    for f in all_fixtures() {
        let a = clean(Page::Text(&f.text), &CleanOptions::default()).unwrap();
        let lang = a
            .language
            .unwrap_or_else(|| panic!("{}: no language", f.name));
        assert_eq!(lang.code, f.lang, "{}", f.name);
    }
}

#[test]
fn sentences_lie_inside_the_main_story_in_order() {
    for f in all_fixtures() {
        let a = clean(Page::Text(&f.text), &CleanOptions::default()).unwrap();
        assert!(a.sentences.len() >= 3, "{}", f.name);
        let story: Vec<_> = a
            .main_story
            .title_span
            .iter()
            .chain(&a.main_story.paragraphs)
            .map(|s| s.range())
            .collect();
        for (i, s) in a.sentences.iter().enumerate() {
            assert_eq!(s.index, i);
            assert_eq!(&f.text[s.span.range()], s.text);
            assert!(
                story
                    .iter()
                    .any(|p| p.start <= s.span.start && s.span.end <= p.end)
            );
            assert_eq!(s.span.char_start, f.text[..s.span.start].chars().count());
        }
        assert!(
            a.sentences
                .windows(2)
                .all(|w| w[0].span.end <= w[1].span.start)
        );
    }
}
