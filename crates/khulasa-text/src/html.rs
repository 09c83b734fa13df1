//! HTML input: the main content is extracted by dom_smoothie (a port of
//! Mozilla's readability) as formatted text, one paragraph per line, which
//! then goes through the same cleaning as plain text.

use dom_smoothie::{Config, Readability, TextMode};

use crate::CleanError;

/// Extracts the readable text of an HTML page: the article title on the
/// first line (when the page has one), then its paragraphs, one per line.
pub fn extract_text(html: &str) -> Result<String, CleanError> {
    let config = Config {
        text_mode: TextMode::Formatted,
        ..Config::default()
    };
    let mut readability =
        Readability::new(html, None, Some(config)).map_err(|e| CleanError::Html(e.to_string()))?;
    let article = match readability.parse() {
        Ok(a) => a,
        // No readable content: fall back to every text node, so nothing is lost.
        Err(_) => return Ok(all_text(html)),
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
    Ok(text)
}

fn all_text(html: &str) -> String {
    let doc = dom_query::Document::from(html);
    doc.select("body").text().to_string()
}
