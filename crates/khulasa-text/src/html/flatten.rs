//! The visible text of a page straight from its tokens, in one pass: text
//! with white space collapsed as a browser shows it, a blank line at every
//! block element (a line break at `<br>`), script, style and template
//! content dropped, character references decoded. Nothing shown is lost,
//! nothing hidden by markup alone (`hidden`, CSS) is dropped.

use html5ever::data::{C1_REPLACEMENTS, NAMED_ENTITIES};

use super::tokenize::RawText;

/// Elements a browser lays out as blocks (or rows and cells): each starts
/// and ends a paragraph of the text.
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "body"
            | "caption"
            | "center"
            | "dd"
            | "details"
            | "dialog"
            | "dir"
            | "div"
            | "dl"
            | "dt"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "form"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "header"
            | "hgroup"
            | "hr"
            | "html"
            | "legend"
            | "li"
            | "listing"
            | "main"
            | "menu"
            | "nav"
            | "ol"
            | "option"
            | "p"
            | "plaintext"
            | "pre"
            | "search"
            | "section"
            | "select"
            | "summary"
            | "table"
            | "tbody"
            | "td"
            | "textarea"
            | "tfoot"
            | "th"
            | "thead"
            | "tr"
            | "ul"
            | "xmp"
    )
}

/// The text being built.
#[derive(Debug, Default)]
pub(crate) struct Flatten {
    out: String,
    /// White space seen since the last character, not yet written.
    space: bool,
    /// Open `<template>`s, whose content is never shown.
    template: usize,
    /// Open `<pre>`/`<listing>`s, whose white space is kept.
    pre: usize,
}

impl Flatten {
    pub(crate) fn start_tag(&mut self, name: &str) {
        match name {
            "br" => self.line_break(1),
            "template" => self.template += 1,
            "pre" | "listing" => {
                self.line_break(2);
                self.pre += 1;
            }
            _ if is_block(name) => self.line_break(2),
            _ => {}
        }
    }

    pub(crate) fn end_tag(&mut self, name: &str) {
        match name {
            "br" => self.line_break(1),
            "template" => self.template = self.template.saturating_sub(1),
            "pre" | "listing" => {
                self.pre = self.pre.saturating_sub(1);
                self.line_break(2);
            }
            _ if is_block(name) => self.line_break(2),
            _ => {}
        }
    }

    pub(crate) fn text(&mut self, text: &str) {
        if self.template == 0 {
            let verbatim = self.pre > 0;
            self.decoded(text, verbatim);
        }
    }

    pub(crate) fn raw_text(&mut self, text: &str, kind: RawText) {
        if self.template > 0 {
            return;
        }
        match kind {
            RawText::Script | RawText::Hidden | RawText::Title => {}
            RawText::Verbatim | RawText::Cdata => text.chars().for_each(|c| self.push(c, true)),
            RawText::Textarea => self.decoded(text, true),
        }
    }

    /// The text, ending in a line break unless empty.
    pub(crate) fn finish(mut self) -> String {
        self.line_break(1);
        let keep = self.out.trim_end_matches('\n').len();
        self.out.truncate(keep);
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        self.out
    }

    /// Writes `text` with its character references decoded.
    fn decoded(&mut self, text: &str, verbatim: bool) {
        let mut rest = text;
        while let Some(amp) = rest.find('&') {
            rest[..amp].chars().for_each(|c| self.push(c, verbatim));
            let after = &rest[amp + 1..];
            match decode_reference(after) {
                Some((len, first, second)) => {
                    self.push(first, verbatim);
                    if let Some(c) = second {
                        self.push(c, verbatim);
                    }
                    rest = &after[len..];
                }
                None => {
                    self.push('&', verbatim);
                    rest = after;
                }
            }
        }
        rest.chars().for_each(|c| self.push(c, verbatim));
    }

    fn push(&mut self, c: char, verbatim: bool) {
        match c {
            '\0' => {}
            '\r' if verbatim => self.out.push('\n'),
            _ if verbatim => self.out.push(c),
            '\t' | '\n' | '\x0c' | '\r' | ' ' => self.space = true,
            _ => {
                if self.space && !self.out.is_empty() && !self.out.ends_with('\n') {
                    self.out.push(' ');
                }
                self.space = false;
                self.out.push(c);
            }
        }
    }

    /// Ends the line, leaving `newlines` line breaks (at most) after the text.
    fn line_break(&mut self, newlines: usize) {
        self.space = false;
        if self.out.is_empty() {
            return;
        }
        let have = self.out.len() - self.out.trim_end_matches('\n').len();
        for _ in have..newlines {
            self.out.push('\n');
        }
    }
}

/// Longest entity name, with its ';' ("CounterClockwiseContourIntegral;").
const LONGEST_ENTITY: usize = 33;

/// Decodes the character reference at the start of `s` (just after its
/// '&'): how many bytes it takes and the character(s) it stands for, or
/// `None` when it is not one (the '&' is then shown as it is).
fn decode_reference(s: &str) -> Option<(usize, char, Option<char>)> {
    let bytes = s.as_bytes();
    if bytes.first() == Some(&b'#') {
        let hex = matches!(bytes.get(1), Some(b'x' | b'X'));
        let start = if hex { 2 } else { 1 };
        let radix = if hex { 16 } else { 10 };
        let digits = bytes[start.min(bytes.len())..]
            .iter()
            .take_while(|b| (**b as char).is_digit(radix))
            .count();
        if digits == 0 {
            return None;
        }
        let value = s[start..start + digits]
            .chars()
            .filter_map(|c| c.to_digit(radix))
            .fold(0u32, |v, d| v.saturating_mul(radix).saturating_add(d));
        let len = start + digits + usize::from(bytes.get(start + digits) == Some(&b';'));
        let c = match value {
            0 => '\u{FFFD}',
            0x80..=0x9F => C1_REPLACEMENTS[(value - 0x80) as usize]
                .or(char::from_u32(value))
                .unwrap_or('\u{FFFD}'),
            _ => char::from_u32(value).unwrap_or('\u{FFFD}'),
        };
        return Some((len, c, None));
    }
    // NAMED_ENTITIES holds every prefix of every name (as (0, 0)), so the
    // walk stops as soon as no name can match.
    let mut best = None;
    for (i, &b) in bytes.iter().enumerate().take(LONGEST_ENTITY) {
        if !(b.is_ascii_alphanumeric() || b == b';') {
            break;
        }
        match NAMED_ENTITIES.get(&s[..=i]) {
            None => break,
            Some(&(0, _)) => {}
            Some(&(first, second)) => best = Some((i + 1, first, second)),
        }
        if b == b';' {
            break;
        }
    }
    let (len, first, second) = best?;
    Some((
        len,
        char::from_u32(first)?,
        char::from_u32(second).filter(|_| second != 0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_references_decode() {
        let check = |s: &str, expected: Option<(usize, char, Option<char>)>| {
            assert_eq!(decode_reference(s), expected, "{s:?}");
        };
        check("amp; x", Some((4, '&', None)));
        check("amp x", Some((3, '&', None)));
        check("nbsp;", Some((5, '\u{a0}', None)));
        check("notin;", Some((6, '∉', None)));
        check("notit;", Some((3, '¬', None)));
        check("NotEqualTilde;", Some((14, '≂', Some('\u{338}'))));
        check("#1580;", Some((6, 'ج', None)));
        check("#x62c;", Some((6, 'ج', None)));
        check("#X62C", Some((5, 'ج', None)));
        check("#0;", Some((3, '\u{FFFD}', None)));
        check("#x80;", Some((5, '€', None)));
        check("#xD800;", Some((7, '\u{FFFD}', None)));
        check(
            &format!("#{};", "9".repeat(40)),
            Some((42, '\u{FFFD}', None)),
        );
        check("#;", None);
        check("#x;", None);
        check("zzz;", None);
        check("", None);
    }
}
