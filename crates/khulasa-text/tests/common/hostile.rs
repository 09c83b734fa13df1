//! Generated hostile pages (text and HTML) shared by `tests/limits.rs` and
//! `benches/clean.rs`: each is a shape that once cost far more than its
//! size, named after what it is.

/// Whether a generated page is text or HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // each includer uses some of this
pub enum Kind {
    Text,
    Html,
}

/// A prose sentence long enough to be a story paragraph.
#[allow(dead_code)]
pub const PROSE: &str = "The ministry said on Monday that the talks with the union would resume next week in the capital.";

/// Deterministic bytes (xorshift64), so runs are comparable.
#[allow(dead_code)]
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// `n` nested `<div>`s around one paragraph.
#[allow(dead_code)]
pub fn nested_divs(n: usize) -> String {
    format!(
        "<html><body>{}<p>{PROSE}</p>{}</body></html>",
        "<div>".repeat(n),
        "</div>".repeat(n)
    )
}

/// `n` tables, each inside the cell of the one before.
#[allow(dead_code)]
pub fn nested_tables(n: usize) -> String {
    format!(
        "<html><body>{}<p>{PROSE}</p></body></html>",
        "<table><tr><td>".repeat(n)
    )
}

/// `tags` unclosed formatting elements with distinct attributes inside a
/// paragraph, then `paragraphs` paragraphs: the parser re-opens every one
/// of them in each paragraph.
#[allow(dead_code)]
pub fn formatting_bomb(tags: usize, paragraphs: usize) -> String {
    let names = ["b", "i", "font", "u"];
    let mut s = String::from("<html><body><p>");
    for i in 0..tags {
        s.push_str(&format!("<{} class=c{i}>", names[i % names.len()]));
    }
    for _ in 0..paragraphs {
        s.push_str("<p>x");
    }
    s
}

/// One tag with `n` distinct attributes.
#[allow(dead_code)]
pub fn attribute_storm(n: usize) -> String {
    let attrs: String = (0..n).map(|i| format!(" a{i}")).collect();
    format!("<html><body><p>{PROSE}</p><div{attrs}>x</div></body></html>")
}

/// A well-formed article of `paragraphs` paragraphs under `depth` wrappers.
#[allow(dead_code)]
pub fn article(depth: usize, paragraphs: usize) -> String {
    let mut s = String::from("<html><body>");
    s.push_str(&"<div class=wrap>".repeat(depth));
    s.push_str("<article><h1>Talks with the union resume next week</h1>");
    for i in 0..paragraphs {
        s.push_str(&format!(
            "<p>Paragraph {i}: the ministry said on Monday that the <a href=\"/t/{i}\">talks</a> would <b>resume</b> next week.</p>\n"
        ));
    }
    s.push_str("</article>");
    s.push_str(&"</div>".repeat(depth));
    s.push_str("</body></html>");
    s
}

/// A generated page.
#[allow(dead_code)]
pub type Generate = fn() -> String;

/// `text` greedily wrapped at `width` characters.
#[allow(dead_code)]
pub fn wrapped(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut len = 0;
    for word in text.split_whitespace() {
        let n = word.chars().count();
        if len > 0 && len + 1 + n > width {
            out.push('\n');
            len = 0;
        } else if len > 0 {
            out.push(' ');
            len += 1;
        }
        out.push_str(word);
        len += n;
    }
    out
}

/// Every generated case: (name, kind, how to make the page).
#[allow(dead_code)]
pub fn cases() -> Vec<(&'static str, Kind, Generate)> {
    use Kind::*;
    vec![
        ("one_word_lines_2mb", Text, || "ab\n".repeat(700_000)),
        ("removed_lines_700k", Text, || {
            "ab\n".repeat(700_000) + PROSE + "\n"
        }),
        ("one_line_2mb", Text, || "word ".repeat(400_000)),
        ("a_bang_2mb", Text, || "a! ".repeat(700_000)),
        ("word_1mb", Text, || "x".repeat(1_000_000)),
        ("blank_lines_100k", Text, || {
            "\n".repeat(100_000) + PROSE + "\n"
        }),
        ("rtl_marks_2mb", Text, || {
            format!("كلمة{} ", "\u{200f}\u{200e}\u{202b}".repeat(20)).repeat(10_000)
        }),
        ("combining_marks_2mb", Text, || {
            format!("ب{} ", "\u{064e}".repeat(10_000)).repeat(100)
        }),
        ("sentences_50k", Text, || "Word. ".repeat(50_000)),
        ("wrapped_2mb", Text, || {
            let paragraph = wrapped(&format!("{PROSE} ").repeat(8), 70);
            format!("{paragraph}\n\n").repeat(2_600)
        }),
        ("random_bytes_2mb", Text, || {
            String::from_utf8_lossy(&random_bytes(2_000_000, 7)).into_owned()
        }),
        ("nested_divs_2500", Html, || nested_divs(2_500)),
        ("nested_divs_5000", Html, || nested_divs(5_000)),
        ("nested_divs_10000", Html, || nested_divs(10_000)),
        ("nested_divs_20000", Html, || nested_divs(20_000)),
        ("nested_tables_5000", Html, || nested_tables(5_000)),
        ("formatting_bomb_35kb", Html, || {
            formatting_bomb(2_000, 1_000)
        }),
        ("attribute_storm_2mb", Html, || attribute_storm(250_000)),
        ("random_bytes_html_2mb", Html, || {
            String::from_utf8_lossy(&random_bytes(2_000_000, 11)).into_owned()
        }),
        ("article_2mb", Html, || article(3, 15_000)),
        // The worst pages the default limits let through to readability:
        // ~48,000 elements 20 deep, ~8,000 elements 127 deep (each about
        // a depth sum of 1,000,000).
        ("article_at_limits_wide", Html, || article(18, 16_000)),
        ("article_at_limits_deep", Html, || article(124, 2_600)),
    ]
}
