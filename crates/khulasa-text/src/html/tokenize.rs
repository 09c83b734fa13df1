//! A linear HTML tokenizer: start tags (name, attributes), end tags and
//! text, in one pass over the bytes, following the structure of the HTML
//! tokenizer (tags, quoted attribute values, comments, doctype, raw text
//! of `<script>`/`<style>`/`<textarea>`...) but building nothing.
//!
//! Written rather than taken from html5ever: html5ever's tokenizer checks
//! every new attribute against all earlier ones of the tag, so one tag with
//! 40,000 attributes (270 KB) took 368 ms and 2 MB of them about 20 s. Here
//! every byte is looked at a bounded number of times.
//!
//! Where this tokenizer and the parser might disagree, it errs on the side
//! of seeing *more* markup: raw text ends at the first `</script` (the
//! parser's escaped script states only make it longer), and no raw text
//! starts inside `<svg>`/`<math>`, whose `<style>` and `<script>` hold
//! markup. So the shape it measures is never smaller than the parser's.

/// The text of a raw-text element, which is not markup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawText {
    /// `<script>`: never shown.
    Script,
    /// `<style>`, `<noscript>`, `<iframe>`, `<noembed>`, `<noframes>`:
    /// not shown (`<noscript>` is shown only when scripts are off).
    Hidden,
    /// `<title>`: shown in the tab, not the page.
    Title,
    /// `<xmp>` and `<plaintext>`: shown as it is, like `<pre>`.
    Verbatim,
    /// `<textarea>`: shown as it is, with character references decoded.
    Textarea,
    /// A CDATA section inside `<svg>`/`<math>`.
    Cdata,
}

/// A start tag.
#[derive(Debug)]
pub(crate) struct StartTag<'a> {
    /// Lowercased name.
    pub name: &'a str,
    /// `<br/>`: only meaningful inside `<svg>`/`<math>`.
    pub self_closing: bool,
    /// The first [`KEPT_ATTRIBUTES`] attributes as written (name, raw value).
    pub attributes: &'a [(&'a str, &'a str)],
    /// How many attributes the tag has, duplicates included.
    pub attribute_count: usize,
    /// Bytes of the tag after its name: what its attributes weigh.
    pub attribute_bytes: usize,
}

/// Attributes kept per tag (the rest are counted, not kept).
pub(crate) const KEPT_ATTRIBUTES: usize = 32;

/// What the tokenizer hands on.
pub(crate) trait Sink {
    /// A start tag.
    fn start_tag(&mut self, tag: &StartTag<'_>);
    /// An end tag (lowercased name) and how many attributes it was written with.
    fn end_tag(&mut self, name: &str, attribute_count: usize);
    /// Text of the page, with character references still encoded.
    fn text(&mut self, text: &str);
    /// Text of a raw-text element (references encoded only in a textarea).
    fn raw_text(&mut self, text: &str, kind: RawText);
}

fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn find(bytes: &[u8], from: usize, byte: u8) -> Option<usize> {
    bytes[from..]
        .iter()
        .position(|&b| b == byte)
        .map(|n| from + n)
}

/// Runs the tokenizer over `html`, handing every token to `sink`.
pub(crate) fn tokenize(html: &str, sink: &mut impl Sink) {
    let bytes = html.as_bytes();
    let mut name = String::new();
    let mut attributes = Vec::with_capacity(KEPT_ATTRIBUTES);
    // Open <svg>/<math> elements, counted without a tree (see the module
    // comment: while any may be open, nothing is raw text).
    let mut foreign = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let lt = find(bytes, i, b'<').unwrap_or(bytes.len());
        if lt > i {
            sink.text(&html[i..lt]);
        }
        i = lt;
        if i >= bytes.len() {
            break;
        }
        match bytes.get(i + 1) {
            Some(c) if c.is_ascii_alphabetic() => {
                let Some(tag) = read_tag(html, i + 1, &mut name, &mut attributes) else {
                    return; // EOF inside a tag: the tag is dropped.
                };
                i = tag.end;
                let start = StartTag {
                    name: &name,
                    self_closing: tag.self_closing,
                    attributes: &attributes,
                    attribute_count: tag.attribute_count,
                    attribute_bytes: tag.attribute_bytes,
                };
                sink.start_tag(&start);
                if matches!(name.as_str(), "svg" | "math") && !tag.self_closing {
                    foreign += 1;
                }
                if foreign == 0 {
                    i = raw_text_after(html, i, &name, sink);
                }
            }
            Some(b'/') => match bytes.get(i + 2) {
                Some(c) if c.is_ascii_alphabetic() => {
                    let Some(tag) = read_tag(html, i + 2, &mut name, &mut attributes) else {
                        return;
                    };
                    i = tag.end;
                    sink.end_tag(&name, tag.attribute_count);
                    if matches!(name.as_str(), "svg" | "math") {
                        foreign = foreign.saturating_sub(1);
                    }
                }
                Some(b'>') => i += 3,
                Some(_) => i = bogus_comment(bytes, i + 2),
                None => {
                    sink.text("</");
                    return;
                }
            },
            Some(b'!') => i = markup_declaration(html, i, foreign > 0, sink),
            Some(b'?') => i = bogus_comment(bytes, i + 1),
            _ => {
                sink.text("<");
                i += 1;
            }
        }
    }
}

struct TagEnd {
    /// Byte just past the `>`.
    end: usize,
    self_closing: bool,
    attribute_count: usize,
    attribute_bytes: usize,
}

/// Reads a tag from its name (at `at`) to its `>`: the name lowercased
/// into `name`, the first attributes into `attributes`. `None` at EOF.
fn read_tag<'a>(
    html: &'a str,
    at: usize,
    name: &mut String,
    attributes: &mut Vec<(&'a str, &'a str)>,
) -> Option<TagEnd> {
    let bytes = html.as_bytes();
    let stops = |b: u8| is_space(b) || b == b'/' || b == b'>';
    let mut i = at;
    while i < bytes.len() && !stops(bytes[i]) {
        i += 1;
    }
    name.clear();
    name.extend(html[at..i].chars().map(|c| c.to_ascii_lowercase()));
    attributes.clear();
    let name_end = i;
    let mut count = 0;
    loop {
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        match *bytes.get(i)? {
            b'>' => {
                return Some(TagEnd {
                    end: i + 1,
                    self_closing: false,
                    attribute_count: count,
                    attribute_bytes: i - name_end,
                });
            }
            b'/' => {
                i += 1;
                if *bytes.get(i)? == b'>' {
                    return Some(TagEnd {
                        end: i + 1,
                        self_closing: true,
                        attribute_count: count,
                        attribute_bytes: i - name_end,
                    });
                }
                continue; // a stray '/': read on as before an attribute
            }
            _ => {}
        }
        // An attribute name (its first character may be '=').
        let name_start = i;
        i += 1;
        while i < bytes.len() && !stops(bytes[i]) && bytes[i] != b'=' {
            i += 1;
        }
        let attribute = &html[name_start..i];
        count += 1;
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        let mut value = "";
        if bytes.get(i) == Some(&b'=') {
            i += 1;
            while i < bytes.len() && is_space(bytes[i]) {
                i += 1;
            }
            match *bytes.get(i)? {
                quote @ (b'"' | b'\'') => {
                    let end = find(bytes, i + 1, quote)?;
                    value = &html[i + 1..end];
                    i = end + 1;
                }
                b'>' => {}
                _ => {
                    let start = i;
                    while i < bytes.len() && !is_space(bytes[i]) && bytes[i] != b'>' {
                        i += 1;
                    }
                    value = &html[start..i];
                }
            }
        }
        if attributes.len() < KEPT_ATTRIBUTES {
            attributes.push((attribute, value));
        }
    }
}

/// Skips a bogus comment (`<?...>`, `</ ...>`, `<!x...>`) whose content
/// starts at `at`: it ends at the first `>`.
fn bogus_comment(bytes: &[u8], at: usize) -> usize {
    find(bytes, at, b'>').map_or(bytes.len(), |p| p + 1)
}

/// Handles `<!` at `lt`: a comment, a doctype, a CDATA section or a bogus
/// comment. Returns where the data state resumes.
fn markup_declaration(html: &str, lt: usize, foreign: bool, sink: &mut impl Sink) -> usize {
    let bytes = html.as_bytes();
    let rest = &bytes[lt + 2..];
    if rest.starts_with(b"--") {
        return comment_end(bytes, lt + 4);
    }
    if rest.len() >= 7 && rest[..7].eq_ignore_ascii_case(b"doctype") {
        return bogus_comment(bytes, lt + 9);
    }
    if rest.starts_with(b"[CDATA[") && foreign {
        let start = lt + 9;
        let end = html[start..].find("]]>").map_or(html.len(), |p| start + p);
        sink.raw_text(&html[start..end], RawText::Cdata);
        return (end + 3).min(html.len());
    }
    bogus_comment(bytes, lt + 2)
}

/// Where a comment whose content starts at `at` ends: `<!-->` and
/// `<!--->` are empty comments, otherwise the first `-->` or `--!>`.
fn comment_end(bytes: &[u8], at: usize) -> usize {
    let rest = &bytes[at.min(bytes.len())..];
    if rest.starts_with(b">") {
        return at + 1;
    }
    if rest.starts_with(b"->") {
        return at + 2;
    }
    let mut i = at;
    while let Some(dash) = find(bytes, i, b'-') {
        let after = &bytes[dash..];
        if after.starts_with(b"-->") {
            return dash + 3;
        }
        if after.starts_with(b"--!>") {
            return dash + 4;
        }
        i = dash + 1;
    }
    bytes.len()
}

/// After the start tag `name` ending at `at`: if the element holds raw
/// text, hands it on and returns where its end tag starts; else `at`.
fn raw_text_after(html: &str, at: usize, name: &str, sink: &mut impl Sink) -> usize {
    let kind = match name {
        "script" => RawText::Script,
        "style" | "noscript" | "iframe" | "noembed" | "noframes" => RawText::Hidden,
        "title" => RawText::Title,
        "textarea" => RawText::Textarea,
        "xmp" => RawText::Verbatim,
        "plaintext" => {
            sink.raw_text(&html[at..], RawText::Verbatim);
            return html.len();
        }
        _ => return at,
    };
    let end = raw_text_end(html.as_bytes(), at, name.as_bytes());
    if end > at {
        sink.raw_text(&html[at..end], kind);
    }
    end
}

/// The start of the first `</name` followed by a space, `/` or `>`
/// (case-insensitive) at or after `at`, or the end of the input.
fn raw_text_end(bytes: &[u8], at: usize, name: &[u8]) -> usize {
    let mut i = at;
    while let Some(lt) = find(bytes, i, b'<') {
        let tail = &bytes[lt + 1..];
        if tail.first() == Some(&b'/')
            && tail.len() > name.len()
            && tail[1..=name.len()].eq_ignore_ascii_case(name)
            && tail
                .get(name.len() + 1)
                .is_some_and(|&b| is_space(b) || b == b'/' || b == b'>')
        {
            return lt;
        }
        i = lt + 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records tokens as strings: `<name n>` (n attributes), `</name>`,
    /// `"text"`, `raw:Kind:"text"`.
    #[derive(Default)]
    struct Record(Vec<String>);

    impl Sink for Record {
        fn start_tag(&mut self, tag: &StartTag<'_>) {
            let slash = if tag.self_closing { "/" } else { "" };
            let attrs: Vec<String> = tag
                .attributes
                .iter()
                .map(|(n, v)| format!(" {n}={v}"))
                .collect();
            self.0
                .push(format!("<{}{}{slash}>", tag.name, attrs.concat()));
        }
        fn end_tag(&mut self, name: &str, _: usize) {
            self.0.push(format!("</{name}>"));
        }
        fn text(&mut self, text: &str) {
            self.0.push(format!("{text:?}"));
        }
        fn raw_text(&mut self, text: &str, kind: RawText) {
            self.0.push(format!("raw:{kind:?}:{text:?}"));
        }
    }

    fn check(html: &str, expected: &[&str]) {
        let mut r = Record::default();
        tokenize(html, &mut r);
        assert_eq!(r.0, expected, "tokenizing {html:?}");
    }

    #[test]
    fn tags_attributes_and_text() {
        check(
            "<P Class=x id='a b' data-x=\"1>2\" hidden>Hi &amp; bye</p>",
            &[
                "<p Class=x id=a b data-x=1>2 hidden=>",
                "\"Hi &amp; bye\"",
                "</p>",
            ],
        );
        check("<br/><img src=a.png />", &["<br/>", "<img src=a.png/>"]);
        check(
            "a < b <3 </>",
            &["\"a \"", "\"<\"", "\" b \"", "\"<\"", "\"3 \""],
        );
        check("<div a=1 / b=2>", &["<div a=1 b=2>"]);
        check("<a =x>", &["<a =x=>"]);
    }

    #[test]
    fn comments_doctypes_and_bogus_comments_are_skipped() {
        check(
            "<!DOCTYPE html><!-- <p a=\"> --> x<!-- a -- b --!>y<!-->z<!--->w",
            &["\" x\"", "\"y\"", "\"z\"", "\"w\""],
        );
        check(
            "<?xml version=1?>a</ b>c<!x>d",
            &["\"a\"", "\"c\"", "\"d\""],
        );
        check("a<!-- never closed <p>", &["\"a\""]);
    }

    #[test]
    fn raw_text_ends_at_its_own_end_tag_only() {
        check(
            "<script>if (a<b) x = '</div>';</SCRIPT >t",
            &[
                "<script>",
                "raw:Script:\"if (a<b) x = '</div>';\"",
                "</script>",
                "\"t\"",
            ],
        );
        check(
            "<title>A &amp; B</title><textarea><p>x</textarea>",
            &[
                "<title>",
                "raw:Title:\"A &amp; B\"",
                "</title>",
                "<textarea>",
                "raw:Textarea:\"<p>x\"",
                "</textarea>",
            ],
        );
        check(
            "<style>p{}</styles></style>",
            &["<style>", "raw:Hidden:\"p{}</styles>\"", "</style>"],
        );
        check(
            "<plaintext><b>all</b>",
            &["<plaintext>", "raw:Verbatim:\"<b>all</b>\""],
        );
    }

    #[test]
    fn svg_holds_markup_not_raw_text() {
        check(
            "<svg><style><b>x</b></style><![CDATA[a<b]]></svg><style>y</style>",
            &[
                "<svg>",
                "<style>",
                "<b>",
                "\"x\"",
                "</b>",
                "</style>",
                "raw:Cdata:\"a<b\"",
                "</svg>",
                "<style>",
                "raw:Hidden:\"y\"",
                "</style>",
            ],
        );
    }

    #[test]
    fn eof_inside_a_tag_drops_it() {
        check("a<div class=\"x", &["\"a\""]);
        check("a<div", &["\"a\""]);
        check("a</", &["\"a\"", "\"</\""]);
    }

    #[test]
    fn attribute_storms_are_counted_in_one_pass() {
        struct Count(usize);
        impl Sink for Count {
            fn start_tag(&mut self, tag: &StartTag<'_>) {
                assert!(tag.attributes.len() <= KEPT_ATTRIBUTES);
                self.0 = self.0.max(tag.attribute_count);
            }
            fn end_tag(&mut self, _: &str, _: usize) {}
            fn text(&mut self, _: &str) {}
            fn raw_text(&mut self, _: &str, _: RawText) {}
        }
        let html: String = format!(
            "<div {}>x</div>",
            (0..50_000).map(|i| format!("a{i} ")).collect::<String>()
        );
        let mut c = Count(0);
        tokenize(&html, &mut c);
        assert_eq!(c.0, 50_000);
    }
}
