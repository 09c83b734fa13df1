//! HTML input: one linear pass over the page's tokens measures the tree a
//! parser would build from it (`shape`) and writes its visible text
//! (`flatten`). Within the limits ([`CleanLimits`]) the main content is
//! then extracted by dom_smoothie (a port of Mozilla's readability) as
//! formatted text, one paragraph per line; past one, no tree is built and
//! the flattened text is used. Either text then goes through the same
//! cleaning as plain text.
//!
//! The pass exists because the tree costs far more than the page's size
//! suggests: readability took 1.1 / 4.3 / 16.5 / 65.6 s on 2,500 / 5,000 /
//! 10,000 / 20,000 nested `<div>`s, 18.6 s on 5,000 nested tables, and a
//! 27 KB page of unclosed formatting tags took 3.9 s and 426 MB.

mod flatten;
mod shape;
mod tokenize;

use dom_smoothie::{Config, Readability, TextMode};

use self::flatten::Flatten;
use self::shape::Shape;
use self::tokenize::{RawText, Sink, StartTag};
use crate::{CleanError, CleanLimits, HtmlExtraction};

/// Extracts the readable text of an HTML page, and says how: the article
/// title on the first line (when the page has one), then its paragraphs,
/// one per line ([`HtmlExtraction::Readability`]); or, when readability
/// finds no article ([`HtmlExtraction::AllText`]) or the page is past a
/// limit ([`HtmlExtraction::Flattened`]), all of its visible text, a
/// blank line between blocks.
pub fn extract_text(
    html: &str,
    limits: &CleanLimits,
) -> Result<(String, HtmlExtraction), CleanError> {
    let mut scan = Scan {
        shape: Shape::new(limits),
        text: Flatten::default(),
    };
    tokenize::tokenize(html, &mut scan);
    if scan.shape.exceeded().is_some() {
        return Ok((scan.text.finish(), HtmlExtraction::Flattened));
    }
    let config = Config {
        text_mode: TextMode::Formatted,
        ..Config::default()
    };
    let mut readability =
        Readability::new(html, None, Some(config)).map_err(|e| CleanError::Html(e.to_string()))?;
    let article = match readability.parse() {
        Ok(a) => a,
        // No readable content: every text node, so nothing is lost.
        Err(_) => return Ok((scan.text.finish(), HtmlExtraction::AllText)),
    };
    let mut text = String::new();
    let title = article.title.trim();
    let body = article.text_content.to_string();
    if !title.is_empty() && !body.trim_start().starts_with(title) {
        text.push_str(title);
        text.push_str("\n\n");
    }
    // Formatted text separates paragraphs by blank lines; keep lines as blocks.
    for line in body.lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    Ok((text, HtmlExtraction::Readability))
}

/// The visible text of an HTML page, taken from its tokens in linear time
/// without building a tree: text as shown, a blank line between blocks,
/// a line break at `<br>`, no script, style or template content.
pub fn flatten_text(html: &str) -> String {
    let mut text = Flatten::default();
    tokenize::tokenize(html, &mut TextOnly(&mut text));
    text.finish()
}

/// The one pass: the shape measure and the text, fed the same tokens.
struct Scan {
    shape: Shape,
    text: Flatten,
}

impl Sink for Scan {
    fn start_tag(&mut self, tag: &StartTag<'_>) {
        self.shape.start_tag(tag);
        self.text.start_tag(tag.name);
    }
    fn end_tag(&mut self, name: &str, attribute_count: usize) {
        self.shape.end_tag(name, attribute_count);
        self.text.end_tag(name);
    }
    fn text(&mut self, text: &str) {
        self.shape.text(text);
        self.text.text(text);
    }
    fn raw_text(&mut self, text: &str, kind: RawText) {
        self.text.raw_text(text, kind);
    }
}

struct TextOnly<'a>(&'a mut Flatten);

impl Sink for TextOnly<'_> {
    fn start_tag(&mut self, tag: &StartTag<'_>) {
        self.0.start_tag(tag.name);
    }
    fn end_tag(&mut self, name: &str, _: usize) {
        self.0.end_tag(name);
    }
    fn text(&mut self, text: &str) {
        self.0.text(text);
    }
    fn raw_text(&mut self, text: &str, kind: RawText) {
        self.0.raw_text(text, kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattened_text_is_what_a_browser_shows() {
        let check = |html: &str, expected: &str| assert_eq!(flatten_text(html), expected, "{html}");
        check(
            "<html><head><title>T</title><style>p{}</style></head><body>\
             <h1>Headline &amp; more</h1>\n  <p>First   line<br>second\n line.</p>\
             <script>var x = '<p>';</script><div>Caf&eacute; <b>bold</b><i>it</i></div>\
             <template><p>never</p></template><!-- <p>no --></body></html>",
            "Headline & more\n\nFirst line\nsecond line.\n\nCafé boldit\n",
        );
        check(
            "<pre>  a\n   b</pre><ul><li>one<li>two</ul><table><tr><td>c1<td>c2</table>",
            "  a\n   b\n\none\n\ntwo\n\nc1\n\nc2\n",
        );
        check("", "");
        check("<p> </p><div>\n</div>", "");
        check("plain &lt;text&gt;", "plain <text>\n");
    }
}
