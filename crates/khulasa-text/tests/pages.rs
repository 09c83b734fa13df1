//! Data-driven main-story tests over annotated pages (tests/fixtures/pages:
//! every line tagged with what it is), in several site layouts, Arabic and
//! English. Each page must come out exactly as annotated.

use std::path::{Path, PathBuf};

use khulasa_text::{CleanOptions, CleanedArticle, Page, clean};

struct Fixture {
    name: String,
    lang: String,
    text: String,
    /// (byte range of the line, expected tag) for every non-empty line.
    lines: Vec<(std::ops::Range<usize>, String)>,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pages")
}

fn load(path: &Path) -> Fixture {
    let source = std::fs::read_to_string(path).unwrap();
    let mut text = String::new();
    let mut lines = Vec::new();
    let mut lang = String::new();
    for raw in source.lines() {
        if let Some(meta) = raw.strip_prefix('#') {
            if let Some(l) = meta.trim().strip_prefix("lang:") {
                lang = l.trim().to_string();
            }
            continue;
        }
        if !raw.is_empty() {
            let (tag, line) = raw
                .strip_prefix('[')
                .and_then(|r| r.split_once("] "))
                .unwrap_or_else(|| panic!("{}: bad line {raw:?}", path.display()));
            lines.push((text.len()..text.len() + line.len(), tag.to_string()));
            text.push_str(line);
        }
        text.push('\n');
    }
    Fixture {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        lang,
        text,
        lines,
    }
}

fn overlaps(a: &std::ops::Range<usize>, b: &std::ops::Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// What the cleaner made of a line: title, body, or the removal reason.
/// A line split in two (a date notice running into the lead) counts as body
/// if any of it is body.
fn actual_tag(a: &CleanedArticle, line: &std::ops::Range<usize>) -> String {
    if a.main_story
        .title_span
        .is_some_and(|t| overlaps(&t.range(), line))
    {
        return "title".into();
    }
    if a.main_story
        .paragraphs
        .iter()
        .any(|p| overlaps(&p.range(), line))
    {
        return "body".into();
    }
    a.removed
        .iter()
        .find(|r| overlaps(&r.span.range(), line))
        .map(|r| r.reason.as_str().to_string())
        .unwrap_or_else(|| "LOST".into())
}

fn all_fixtures() -> Vec<Fixture> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "page"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load(p)).collect()
}

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
