//! Turns a scraped news page (plain text or HTML) into its main story and
//! its sentences, with offsets into the text the client sent.
//!
//! [`clean`] cuts the page into blocks (lines), classifies each as title,
//! body or removed-with-a-reason ([`Reason`]), segments the main story into
//! sentences ([`segment`]) and detects its language. Every non-blank
//! character of the input is either in the main story or in a removed block.
//! HTML first goes through a readability extractor ([`html`]) and the same
//! cleaning then runs on the extracted text, which is returned.
//!
//! **Invariant:** knows nothing about models or gRPC.
#![deny(missing_docs)]

mod blocks;
mod classify;
pub mod cues;
pub mod html;
mod language;
pub mod normalize;
pub mod segment;

use std::ops::Range;

use serde::Serialize;

use crate::classify::Role;
pub use crate::language::Language;
pub use crate::segment::SegmentOptions;

/// What a client sends: the page as scraped.
#[derive(Debug, Clone, Copy)]
pub enum Page<'a> {
    /// UTF-8 text; offsets refer to it.
    Text(&'a str),
    /// HTML; offsets refer to the extracted text returned in
    /// [`CleanedArticle::extracted_text`].
    Html(&'a str),
}

/// Why a block is not part of the main story.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Site menus, section names, trending lists, tickers, share buttons,
    /// previous/next links.
    Navigation,
    /// A "read also" marker or inline "read also: <headline>" insert.
    ReadAlso,
    /// Another story appended after a "read also" marker.
    AppendedStory,
    /// A list of related headlines.
    RelatedList,
    /// A source or agency credit line.
    SourceCredit,
    /// A tags line.
    Tags,
    /// A comments section (and the headlines inside it).
    Comments,
    /// A video or image player remnant.
    MediaRemnant,
    /// A repeat of the title.
    DuplicateTitle,
    /// Copyright, site links, cookie notices.
    Footer,
    /// Anything else: date lines, stray text after the story.
    Other,
}

impl Reason {
    /// The snake_case name used in JSON and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Navigation => "navigation",
            Self::ReadAlso => "read_also",
            Self::AppendedStory => "appended_story",
            Self::RelatedList => "related_list",
            Self::SourceCredit => "source_credit",
            Self::Tags => "tags",
            Self::Comments => "comments",
            Self::MediaRemnant => "media_remnant",
            Self::DuplicateTitle => "duplicate_title",
            Self::Footer => "footer",
            Self::Other => "other",
        }
    }
}

/// A piece of the text, by UTF-8 byte offsets and Unicode code-point offsets
/// (end exclusive), so clients in any language can highlight it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset just past the last byte.
    pub end: usize,
    /// Code-point offset of the first character.
    pub char_start: usize,
    /// Code-point offset just past the last character.
    pub char_end: usize,
}

impl Span {
    /// The byte range.
    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// The main story: its title (when one was found) and body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MainStory {
    /// The headline, as in the page.
    pub title: Option<String>,
    /// Where the title is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title_span: Option<Span>,
    /// The body paragraphs, as in the page, joined by blank lines.
    pub text: String,
    /// Where each body paragraph is.
    pub paragraphs: Vec<Span>,
}

/// One sentence of the main story.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sentence {
    /// Position among the main story's sentences, from 0.
    pub index: usize,
    /// The sentence, exactly as in the text.
    pub text: String,
    /// Where it is.
    #[serde(flatten)]
    pub span: Span,
    /// Which body paragraph it belongs to (`None` for the title).
    pub paragraph: Option<usize>,
    /// Whether it is (part of) the title.
    pub is_title: bool,
}

/// A removed block: consecutive lines removed for the same reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemovedBlock {
    /// Why it is not main story.
    pub reason: Reason,
    /// The block, exactly as in the text (several lines may be included).
    pub text: String,
    /// Where it is.
    #[serde(flatten)]
    pub span: Span,
}

/// The result of cleaning a page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CleanedArticle {
    /// For HTML input, the text extracted from it, which every offset
    /// refers to; `None` for text input (offsets refer to the input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extracted_text: Option<String>,
    /// The main story.
    pub main_story: MainStory,
    /// The main story's sentences in order (title first).
    pub sentences: Vec<Sentence>,
    /// Everything else, in page order.
    pub removed: Vec<RemovedBlock>,
    /// Language of the main story, when it can be told.
    pub language: Option<Language>,
}

/// How to clean.
#[derive(Debug, Clone, Default)]
pub struct CleanOptions {
    /// Sentence segmentation options.
    pub segment: SegmentOptions,
}

/// Errors cleaning a page.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CleanError {
    /// The HTML could not be parsed.
    Html(String),
}

impl std::fmt::Display for CleanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Html(m) => write!(f, "could not extract text from the HTML: {m}"),
        }
    }
}

impl std::error::Error for CleanError {}

/// Cleans a page: isolates its main story, segments it, detects its language.
pub fn clean(page: Page<'_>, options: &CleanOptions) -> Result<CleanedArticle, CleanError> {
    match page {
        Page::Text(text) => Ok(clean_text(text, options)),
        Page::Html(source) => {
            let extracted = html::extract_text(source)?;
            let mut article = clean_text(&extracted, options);
            article.extracted_text = Some(extracted);
            Ok(article)
        }
    }
}

fn clean_text(text: &str, options: &CleanOptions) -> CleanedArticle {
    let blocks = blocks::blocks(text);
    let roles = classify::classify(&blocks);
    let offsets = CharOffsets::new(text);

    let mut title = None;
    let mut paragraphs = Vec::new();
    let mut removed: Vec<RemovedBlock> = Vec::new();
    for (b, role) in blocks.iter().zip(&roles) {
        let span = offsets.span(b.range.clone());
        match role {
            Role::Title => title = Some(span),
            Role::Body => paragraphs.push(span),
            Role::Removed(reason) => match removed.last_mut() {
                // Consecutive blocks removed for one reason form one block.
                Some(last)
                    if last.reason == *reason
                        && text[last.span.end..span.start].trim().is_empty() =>
                {
                    last.span = offsets.span(last.span.start..span.end);
                    last.text = text[last.span.range()].to_string();
                }
                _ => removed.push(RemovedBlock {
                    reason: *reason,
                    text: text[span.range()].to_string(),
                    span,
                }),
            },
        }
    }

    let mut sentences = Vec::new();
    let parts = title
        .iter()
        .map(|s| (None, s))
        .chain(paragraphs.iter().enumerate().map(|(i, s)| (Some(i), s)));
    for (paragraph, block) in parts {
        for r in segment::segment(&text[block.range()], &options.segment) {
            let range = block.start + r.start..block.start + r.end;
            sentences.push(Sentence {
                index: sentences.len(),
                text: text[range.clone()].to_string(),
                span: offsets.span(range),
                paragraph,
                is_title: paragraph.is_none(),
            });
        }
    }

    let body: Vec<&str> = paragraphs.iter().map(|p| &text[p.range()]).collect();
    let body = body.join("\n\n");
    let title_text = title.map(|t| text[t.range()].to_string());
    let language = language::detect(title_text.as_deref().unwrap_or(""), &body);
    CleanedArticle {
        extracted_text: None,
        main_story: MainStory {
            title: title_text,
            title_span: title,
            text: body,
            paragraphs,
        },
        sentences,
        removed,
        language,
    }
}

/// Byte → code-point offset conversion for one text, in O(log n) per lookup.
struct CharOffsets {
    /// Byte offset of every char boundary, in order.
    boundaries: Vec<usize>,
}

impl CharOffsets {
    fn new(text: &str) -> Self {
        let mut boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        boundaries.push(text.len());
        Self { boundaries }
    }

    fn chars_before(&self, byte: usize) -> usize {
        self.boundaries.partition_point(|&b| b < byte)
    }

    fn span(&self, r: Range<usize>) -> Span {
        Span {
            start: r.start,
            end: r.end,
            char_start: self.chars_before(r.start),
            char_end: self.chars_before(r.end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_offsets_count_code_points() {
        let text = "aب€😀z";
        let o = CharOffsets::new(text);
        let s = o.span(1..text.len());
        assert_eq!((s.char_start, s.char_end), (1, 5));
        assert_eq!(o.chars_before(3), 2);
    }

    #[test]
    fn empty_and_blank_pages_give_empty_articles() {
        for text in ["", "   \n\t\n"] {
            let a = clean(Page::Text(text), &CleanOptions::default()).unwrap();
            assert!(a.sentences.is_empty() && a.removed.is_empty(), "{text:?}");
            assert_eq!(a.main_story.title, None);
            assert_eq!(a.language, None);
        }
    }
}
