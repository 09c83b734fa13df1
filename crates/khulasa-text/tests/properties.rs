//! Properties that hold for any input: no panic, offsets inside the text
//! and on character boundaries, sentences ordered and disjoint, and every
//! visible character either in the main story or in a removed block, with
//! the limits hit too; capped sentences are the first of the uncapped
//! ones; flattened HTML keeps every visible character.

use khulasa_text::{
    CleanLimits, CleanOptions, CleanedArticle, HtmlExtraction, Page, Span, clean,
    html::flatten_text,
};
use proptest::prelude::*;

/// Pieces that make page-like input: words in several scripts, cue
/// phrases, punctuation, markup, control and invisible characters.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("وقال المتحدث إن التعاون مستمر".to_string()),
        Just("إقرأ أيضاً:".to_string()),
        Just("اقرأ أيضا:عنوان آخر".to_string()),
        Just("مقالات مشابهة".to_string()),
        Just("  • خبر قصير".to_string()),
        Just("المصدر: وكالة".to_string()),
        Just("التعليقات".to_string()),
        Just("Your browser does not support the video tag.".to_string()),
        Just("Read also: Markets".to_string()),
        Just("آخر تحديث: 8 مارس 2024 - 12:25 م".to_string()),
        Just("Home | World | Sport".to_string()),
        Just("د. محمد".to_string()),
        Just("13.04.2024".to_string()),
        Just("1,035".to_string()),
        Just("؟".to_string()),
        Just("…".to_string()),
        Just("“".to_string()),
        Just("»".to_string()),
        Just("<p>".to_string()),
        Just("</div>".to_string()),
        Just("&amp;".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\n\n".to_string()),
        Just(" ".to_string()),
        Just("\t".to_string()),
        Just("\u{0}".to_string()),
        Just("\u{200f}".to_string()),
        Just("\u{feff}".to_string()),
        Just("\u{a0}".to_string()),
        Just("\u{2028}".to_string()),
        Just("\u{0640}\u{064e}".to_string()),
        Just("😀".to_string()),
        "[a-zA-Z0-9 .,!?]{0,30}",
        "[ء-ي ،.؟]{0,40}",
        any::<char>().prop_map(String::from),
    ]
}

fn page() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(fragment(), 0..80).prop_map(|f| f.concat()),
        any::<String>(),
        // A very long line.
        "[ء-ي ]{2000,4000}",
    ]
}

fn invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

fn check_span(text: &str, s: &Span) {
    assert!(
        s.start <= s.end && s.end <= text.len(),
        "{s:?} outside {}",
        text.len()
    );
    assert!(
        text.is_char_boundary(s.start) && text.is_char_boundary(s.end),
        "{s:?}"
    );
    assert_eq!(s.char_start, text[..s.start].chars().count());
    assert_eq!(s.char_end, text[..s.end].chars().count());
}

fn check(text: &str, a: &CleanedArticle) {
    let story: Vec<&Span> = a
        .main_story
        .title_span
        .iter()
        .chain(&a.main_story.paragraphs)
        .collect();
    for s in &story {
        check_span(text, s);
    }
    for r in &a.removed {
        check_span(text, &r.span);
        assert_eq!(r.text, text[r.span.range()]);
    }
    for (i, s) in a.sentences.iter().enumerate() {
        check_span(text, &s.span);
        assert_eq!(s.index, i);
        assert_eq!(s.text, text[s.span.range()]);
        assert!(!s.text.trim().is_empty());
        assert!(
            story
                .iter()
                .any(|p| p.start <= s.span.start && s.span.end <= p.end)
        );
    }
    assert!(
        a.sentences
            .windows(2)
            .all(|w| w[0].span.end <= w[1].span.start)
    );
    // Story and removed blocks are disjoint and, together, cover every
    // visible character.
    let mut covered: Vec<(usize, usize)> = story
        .iter()
        .map(|s| (s.start, s.end))
        .chain(a.removed.iter().map(|r| (r.span.start, r.span.end)))
        .collect();
    covered.sort();
    assert!(
        covered.windows(2).all(|w| w[0].1 <= w[1].0),
        "overlapping blocks {covered:?}"
    );
    for (i, c) in text.char_indices() {
        if !invisible(c) {
            assert!(
                covered.iter().any(|&(s, e)| s <= i && i < e),
                "{c:?} at byte {i} is neither story nor removed"
            );
        }
    }
}

/// Limits small enough for generated pages to hit.
fn tight_limits() -> impl Strategy<Value = CleanLimits> {
    (0usize..6, 1usize..6, 1usize..40, 1usize..200, 0usize..4).prop_map(
        |(max_sentences, max_html_depth, max_html_elements, max_html_depth_sum, formatting)| {
            CleanLimits {
                max_sentences,
                max_html_depth,
                max_html_elements,
                max_html_depth_sum,
                max_html_open_formatting: formatting,
            }
        },
    )
}

fn unlimited_sentences() -> CleanOptions {
    let mut o = CleanOptions::default();
    o.limits.max_sentences = usize::MAX;
    o
}

/// Markup pieces with the text a browser shows for each.
fn markup() -> impl Strategy<Value = (String, String)> {
    let shown = |s: &str, v: &str| Just((s.to_string(), v.to_string()));
    prop_oneof![
        "[a-zA-Z0-9 .,!?ء-ي]{1,20}".prop_map(|t| (t.clone(), t)),
        shown("<p>", ""),
        shown("</p>", ""),
        shown("<div class=\"a>b\">", ""),
        shown("</div>", ""),
        shown("<b>", ""),
        shown("<font color=red>", ""),
        shown("</b>", ""),
        shown("<br>", ""),
        shown("<table><tr><td>", ""),
        shown("&amp;", "&"),
        shown("&#1580;", "ج"),
        shown("&lt;", "<"),
        shown("&nbsp;", "\u{a0}"),
        shown("<script>if (a<b) {}</script>", ""),
        shown("<style>p { }</style>", ""),
        shown("<!-- <p>hidden</p> -->", ""),
        shown("<title>T</title>", ""),
        shown("<img alt=x src=y.png>", ""),
        shown("\n", ""),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn limits_hit_keep_the_invariants_and_cap_a_prefix(text in page(), limits in tight_limits()) {
        let options = CleanOptions { limits, ..CleanOptions::default() };
        let a = clean(Page::Text(&text), &options).unwrap();
        check(&text, &a);
        let all = clean(Page::Text(&text), &unlimited_sentences()).unwrap();
        let n = all.sentences.len().min(limits.max_sentences);
        prop_assert_eq!(&a.sentences[..], &all.sentences[..n]);
        prop_assert_eq!(a.truncated, all.sentences.len() > limits.max_sentences);
        prop_assert_eq!(&a.main_story, &all.main_story);
        prop_assert_eq!(&a.removed, &all.removed);
    }

    #[test]
    fn html_past_its_limits_keeps_the_invariants(text in page(), limits in tight_limits()) {
        let html = format!("<html><body><article><p>{text}</p><div><b>{text}</b></div></body>");
        let options = CleanOptions { limits, ..CleanOptions::default() };
        if let Ok(a) = clean(Page::Html(&html), &options) {
            prop_assert!(a.html_extraction.is_some());
            check(a.extracted_text.as_deref().unwrap(), &a);
        }
    }

    #[test]
    fn flattened_html_shows_every_visible_character(pieces in prop::collection::vec(markup(), 0..60)) {
        let html: String = "<p>".to_string() + &pieces.iter().map(|(h, _)| h.as_str()).collect::<String>();
        let shown: String = pieces.iter().map(|(_, v)| v.as_str()).collect();
        let visible = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        let flat = flatten_text(&html);
        prop_assert_eq!(visible(&flat), visible(&shown), "{:?}", html);
        // The same text reaches the cleaner when a limit is passed.
        let mut options = CleanOptions::default();
        options.limits.max_html_depth = 0;
        let a = clean(Page::Html(&html), &options).unwrap();
        prop_assert_eq!(a.html_extraction, Some(HtmlExtraction::Flattened));
        prop_assert_eq!(a.extracted_text.as_deref(), Some(flat.as_str()));
    }

    #[test]
    fn any_text_page_keeps_the_invariants(text in page()) {
        let a = clean(Page::Text(&text), &CleanOptions::default()).unwrap();
        prop_assert!(a.extracted_text.is_none());
        check(&text, &a);
    }

    #[test]
    fn any_html_page_keeps_the_invariants_on_its_extracted_text(text in page()) {
        let html = format!("<html><body><article><p>{text}</p><div>{text}</div></body>");
        if let Ok(a) = clean(Page::Html(&html), &CleanOptions::default()) {
            let extracted = a.extracted_text.clone().unwrap();
            check(&extracted, &a);
        }
    }
}
