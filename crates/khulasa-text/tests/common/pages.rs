//! Annotated page fixtures (tests/fixtures/pages: every line tagged with
//! what it is) and what the cleaner made of each line.
#![allow(dead_code)] // each includer uses some of this

use std::path::{Path, PathBuf};

use khulasa_text::CleanedArticle;

/// An annotated page.
pub struct Fixture {
    /// File name.
    pub name: String,
    /// `# lang:` of the page.
    pub lang: String,
    /// The page, without annotations.
    pub text: String,
    /// (byte range of the line, expected tag) for every non-empty line.
    pub lines: Vec<(std::ops::Range<usize>, String)>,
}

/// The annotated pages shared with the rest of the project.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pages")
}

/// Reads one annotated page.
pub fn load(path: &Path) -> Fixture {
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
pub fn actual_tag(a: &CleanedArticle, line: &std::ops::Range<usize>) -> String {
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

/// Every annotated page in `tests/fixtures/pages`.
pub fn all_fixtures() -> Vec<Fixture> {
    fixtures_in(&fixtures_dir())
}

/// Every annotated page (`*.page`) in `dir`, by name.
pub fn fixtures_in(dir: &Path) -> Vec<Fixture> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "page"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load(p)).collect()
}
