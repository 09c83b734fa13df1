//! Properties that hold for any input: no panic, offsets inside the text
//! and on character boundaries, sentences ordered and disjoint, and every
//! visible character either in the main story or in a removed block, with
//! the limits hit too; capped sentences are the first of the uncapped
//! ones; flattened HTML keeps every visible character.

use khulasa_text::{CleanLimits, CleanOptions, HtmlExtraction, Page, clean, html::flatten_text};
use proptest::prelude::*;

mod common;
use common::invariants::check;

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

/// Words of running text, with function words and sentence ends.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,12}",
        "[ء-ي]{1,10}",
        Just("the".to_string()),
        Just("of".to_string()),
        Just("في".to_string()),
        Just("من".to_string()),
        Just("said.".to_string()),
        Just("قال،".to_string()),
        Just("BAGHDAD —".to_string()),
        Just("2024.".to_string()),
    ]
}

/// Hard-wrapped paragraphs at one width, apart or not, with page noise
/// between them.
fn wrapped_page() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::collection::vec(word(), 5..60), 1..6),
        40usize..100,
        prop::collection::vec(fragment(), 0..6),
        any::<bool>(),
    )
        .prop_map(|(paragraphs, width, noise, apart)| {
            let mut out = String::new();
            for (k, words) in paragraphs.iter().enumerate() {
                let mut len = 0;
                for w in words {
                    let n = w.chars().count();
                    if len > 0 && len + 1 + n > width {
                        out.push('\n');
                        len = 0;
                    } else if len > 0 {
                        out.push(' ');
                        len += 1;
                    }
                    out.push_str(w);
                    len += n;
                }
                out.push_str(if apart { "\n\n" } else { "\n" });
                if let Some(n) = noise.get(k) {
                    out.push_str(n);
                    out.push('\n');
                }
            }
            out
        })
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
    fn wrapped_pages_keep_the_invariants(text in wrapped_page(), limits in tight_limits()) {
        let a = clean(Page::Text(&text), &CleanOptions::default()).unwrap();
        check(&text, &a);
        let options = CleanOptions { limits, ..CleanOptions::default() };
        let capped = clean(Page::Text(&text), &options).unwrap();
        check(&text, &capped);
        let all = clean(Page::Text(&text), &unlimited_sentences()).unwrap();
        let n = all.sentences.len().min(limits.max_sentences);
        prop_assert_eq!(&capped.sentences[..], &all.sentences[..n]);
    }

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
