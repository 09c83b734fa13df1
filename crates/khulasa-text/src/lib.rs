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
//! Whatever a scraper found is answered in bounded time and memory: every
//! stage is linear in the page's size, segmentation stops at
//! [`CleanLimits::max_sentences`], and an HTML page whose tree would be
//! too deep or too big for the extractor is flattened to its visible text
//! in one pass instead ([`HtmlExtraction::Flattened`]).
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
mod wrap;

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
    /// A "read also" marker or an inline "read also: `<headline>`" insert.
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
    /// UTF-16 code-unit offset of the first character (how JavaScript
    /// strings index: a character past U+FFFF counts two).
    pub utf16_start: usize,
    /// UTF-16 code-unit offset just past the last character.
    pub utf16_end: usize,
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

/// How the text of an HTML page was extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HtmlExtraction {
    /// The readability extractor found the article.
    Readability,
    /// The readability extractor found no article; the text is all of the
    /// page's visible text.
    AllText,
    /// The page was past one of the HTML limits ([`CleanLimits`]), so no
    /// tree was built: the text is all of the page's visible text, taken
    /// from the markup in one pass.
    Flattened,
}

impl HtmlExtraction {
    /// The snake_case name used in JSON and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Readability => "readability",
            Self::AllText => "all_text",
            Self::Flattened => "flattened",
        }
    }
}

/// The result of cleaning a page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CleanedArticle {
    /// For HTML input, the text extracted from it, which every offset
    /// refers to; `None` for text input (offsets refer to the input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extracted_text: Option<String>,
    /// For HTML input, how its text was extracted; `None` for text input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html_extraction: Option<HtmlExtraction>,
    /// The main story.
    pub main_story: MainStory,
    /// The main story's sentences in order (title first), at most
    /// [`CleanLimits::max_sentences`] of them.
    pub sentences: Vec<Sentence>,
    /// True when `sentences` stopped at [`CleanLimits::max_sentences`]
    /// with more of the story left; the main story's text and paragraphs
    /// still hold all of it.
    pub truncated: bool,
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
    /// Bounds on the work one page may cost.
    pub limits: CleanLimits,
}

/// Bounds on the work one page may cost, so that whatever a scraper found
/// is answered in bounded time and memory. Every stage is linear in the
/// size of the page; these bound the stages whose cost grows with the
/// page's shape rather than its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanLimits {
    /// Sentences segmented per article, title included (default 1,000).
    /// Segmentation stops at the cap ([`CleanedArticle::truncated`]).
    pub max_sentences: usize,
    /// Deepest element nesting of an HTML page handed to the readability
    /// extractor (default 256).
    pub max_html_depth: usize,
    /// Most elements of an HTML page handed to the readability extractor
    /// (default 50,000), counting those the parser re-creates for unclosed
    /// formatting tags. 60,000 shallow elements (a 2.2 MB page) took 0.28 s.
    pub max_html_elements: usize,
    /// Most nesting of an HTML page handed to the readability extractor,
    /// as the sum of every element's depth (default 1,000,000). The
    /// extractor's cost grows with it, not with the page's size: about
    /// 2.3 µs per element plus 0.2-0.35 µs per unit of this sum (15,000
    /// elements under 256 nested `<div>`s took 0.81 s, under 32 0.13 s;
    /// 2,500 nested `<div>`s, a sum of 3.1 million, 1.1 s). With the
    /// element limit the worst page let through costs about half a second.
    pub max_html_depth_sum: usize,
    /// Most formatting elements (`<b>`, `<i>`, `<a>`, `<font>`...) open at
    /// once in an HTML page handed to the readability extractor (default
    /// 64). The parser re-opens every one of them in each new paragraph:
    /// 1,500 unclosed distinct ones before 1,000 paragraphs, a 27 KB page,
    /// took 3.9 s and 426 MB.
    pub max_html_open_formatting: usize,
}

impl Default for CleanLimits {
    fn default() -> Self {
        Self {
            max_sentences: 1000,
            max_html_depth: 256,
            max_html_elements: 50_000,
            max_html_depth_sum: 1_000_000,
            max_html_open_formatting: 64,
        }
    }
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
            let (extracted, how) = html::extract_text(source, &options.limits)?;
            let mut article = clean_text(&extracted, options);
            article.extracted_text = Some(extracted);
            article.html_extraction = Some(how);
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
    // Which of the title (first) and paragraphs are rejoined wrapped lines.
    let mut wrapped = vec![false];
    // Removed blocks as (reason, byte range) first: merging consecutive
    // ones by re-copying the growing text was quadratic (700,000 removed
    // one-word lines took 19.5 s; 70,000 took 0.34 s).
    let mut removed: Vec<(Reason, Range<usize>)> = Vec::new();
    for (b, role) in blocks.iter().zip(&roles) {
        match role {
            Role::Title => {
                title = Some(offsets.span(b.range.clone()));
                wrapped[0] = b.wrapped;
            }
            Role::Body => {
                paragraphs.push(offsets.span(b.range.clone()));
                wrapped.push(b.wrapped);
            }
            Role::Removed(reason) => match removed.last_mut() {
                // Consecutive blocks removed for one reason form one block.
                Some((last, range))
                    if last == reason && blocks::is_blank(&text[range.end..b.range.start]) =>
                {
                    range.end = b.range.end;
                }
                _ => removed.push((*reason, b.range.clone())),
            },
        }
    }
    let removed = removed
        .into_iter()
        .map(|(reason, range)| RemovedBlock {
            reason,
            text: text[range.clone()].to_string(),
            span: offsets.span(range),
        })
        .collect();

    let (sentences, truncated) = sentences(text, title, &paragraphs, &wrapped, &offsets, options);
    let body: Vec<&str> = paragraphs.iter().map(|p| &text[p.range()]).collect();
    let body = body.join("\n\n");
    let title_text = title.map(|t| text[t.range()].to_string());
    let language = language::detect(title_text.as_deref().unwrap_or(""), &body);
    CleanedArticle {
        extracted_text: None,
        html_extraction: None,
        main_story: MainStory {
            title: title_text,
            title_span: title,
            text: body,
            paragraphs,
        },
        sentences,
        truncated,
        removed,
        language,
    }
}

/// The sentences of the title and paragraphs, up to the cap, and whether
/// the cap left some of the story out. `wrapped[0]` says whether the title
/// is rejoined wrapped lines, `wrapped[i + 1]` whether paragraph `i` is: a
/// line break in them is a space, not the end of a sentence.
fn sentences(
    text: &str,
    title: Option<Span>,
    paragraphs: &[Span],
    wrapped: &[bool],
    offsets: &CharOffsets,
    options: &CleanOptions,
) -> (Vec<Sentence>, bool) {
    let cap = options.limits.max_sentences;
    let mut sentences = Vec::new();
    let parts = title
        .iter()
        .map(|s| (None, s))
        .chain(paragraphs.iter().enumerate().map(|(i, s)| (Some(i), s)));
    for (paragraph, block) in parts {
        let breaks = if wrapped[paragraph.map_or(0, |i| i + 1)] {
            segment::LineBreaks::Space
        } else {
            segment::LineBreaks::End
        };
        if sentences.len() >= cap {
            // Blocks are never blank, so this one holds a sentence more.
            return (sentences, true);
        }
        let (ranges, more) = segment::segment_capped(
            &text[block.range()],
            &options.segment,
            breaks,
            cap - sentences.len(),
        );
        for r in ranges {
            let range = block.start + r.start..block.start + r.end;
            sentences.push(Sentence {
                index: sentences.len(),
                text: text[range.clone()].to_string(),
                span: offsets.span(range),
                paragraph,
                is_title: paragraph.is_none(),
            });
        }
        if more {
            return (sentences, true);
        }
    }
    (sentences, false)
}

/// Byte → code-point and UTF-16 offset conversion for one text: the
/// number of chars (and of chars past U+FFFF, which are two UTF-16 units)
/// before every 64th byte, and a count of the bytes up to 64 after it.
/// (Every char boundary, 8 bytes a char, took 16 MB for a 2 MB page.)
struct CharOffsets<'a> {
    text: &'a str,
    /// Chars starting before byte `64 * i`, and then all of them.
    checkpoints: Vec<usize>,
    /// Chars past U+FFFF starting before byte `64 * i`, and then all.
    astral: Vec<usize>,
}

const CHECKPOINT_BYTES: usize = 64;

/// Whether a byte starts a char (is not a UTF-8 continuation byte).
fn starts_char(b: u8) -> bool {
    (b as i8) >= -0x40
}

/// Whether a byte starts a char past U+FFFF (a 4-byte sequence).
fn starts_astral(b: u8) -> bool {
    b >= 0xF0
}

impl<'a> CharOffsets<'a> {
    fn new(text: &'a str) -> Self {
        let mut checkpoints = Vec::with_capacity(text.len() / CHECKPOINT_BYTES + 1);
        let mut astral = Vec::with_capacity(text.len() / CHECKPOINT_BYTES + 1);
        let (mut chars, mut wide) = (0, 0);
        for chunk in text.as_bytes().chunks(CHECKPOINT_BYTES) {
            checkpoints.push(chars);
            astral.push(wide);
            chars += chunk.iter().filter(|&&b| starts_char(b)).count();
            wide += chunk.iter().filter(|&&b| starts_astral(b)).count();
        }
        checkpoints.push(chars);
        astral.push(wide);
        Self {
            text,
            checkpoints,
            astral,
        }
    }

    fn utf16_before(&self, byte: usize) -> usize {
        let k = byte / CHECKPOINT_BYTES;
        let from = k * CHECKPOINT_BYTES;
        self.chars_before(byte)
            + self.astral[k]
            + self.text.as_bytes()[from..byte]
                .iter()
                .filter(|&&b| starts_astral(b))
                .count()
    }

    fn chars_before(&self, byte: usize) -> usize {
        let k = byte / CHECKPOINT_BYTES;
        let from = k * CHECKPOINT_BYTES;
        self.checkpoints[k]
            + self.text.as_bytes()[from..byte]
                .iter()
                .filter(|&&b| starts_char(b))
                .count()
    }

    fn span(&self, r: Range<usize>) -> Span {
        Span {
            start: r.start,
            end: r.end,
            char_start: self.chars_before(r.start),
            char_end: self.chars_before(r.end),
            utf16_start: self.utf16_before(r.start),
            utf16_end: self.utf16_before(r.end),
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
        // The emoji is two UTF-16 units, as JavaScript counts it.
        assert_eq!((s.utf16_start, s.utf16_end), (1, 6));
        assert_eq!(
            text.encode_utf16().count(),
            o.utf16_before(text.len()),
            "the whole text"
        );
        assert_eq!(o.chars_before(3), 2);
        // Across checkpoints, at every boundary, and at the very end.
        let text = "aب€😀z".repeat(40);
        let o = CharOffsets::new(&text);
        for (chars, (byte, _)) in text.char_indices().enumerate() {
            assert_eq!(o.chars_before(byte), chars);
            assert_eq!(o.utf16_before(byte), text[..byte].encode_utf16().count());
        }
        assert_eq!(o.chars_before(text.len()), text.chars().count());
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
