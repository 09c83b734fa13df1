//! HTML input: readability extraction, then the same cleaning as text, with
//! offsets into the extracted text that is returned.

use khulasa_text::{CleanOptions, HtmlExtraction, Page, Reason, clean};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../../tests/fixtures/html/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

fn reasons(a: &khulasa_text::CleanedArticle) -> Vec<Reason> {
    a.removed.iter().map(|r| r.reason).collect()
}

#[test]
fn arabic_portal_keeps_the_article_and_drops_site_furniture() {
    let a = clean(
        Page::Html(&fixture("ar_portal.html")),
        &CleanOptions::default(),
    )
    .unwrap();
    assert_eq!(a.html_extraction, Some(HtmlExtraction::Readability));
    let text = a
        .extracted_text
        .as_deref()
        .expect("HTML input returns its extracted text");
    assert_eq!(
        a.main_story.title.as_deref(),
        Some("بغداد وواشنطن تبحثان جدول انسحاب مستشاري التحالف")
    );
    assert_eq!(a.main_story.paragraphs.len(), 4);
    let body = &a.main_story.text;
    assert!(body.starts_with("بغداد – عقد وفد عسكري"));
    assert!(body.contains("وأضاف أن الولايات المتحدة أكدت"));
    for noise in [
        "الرئيسية",
        "عاجل",
        "المنتخب الوطني",
        "الأكثر قراءة",
        "جميع الحقوق",
        "المصدر",
    ] {
        assert!(!body.contains(noise), "{noise} leaked into the story");
    }
    assert!(reasons(&a).contains(&Reason::ReadAlso));
    // Offsets refer to the extracted text.
    for s in &a.sentences {
        assert_eq!(&text[s.span.range()], s.text);
    }
    assert_eq!(a.language.as_ref().unwrap().code, "ar");
}

#[test]
fn english_wire_page() {
    let a = clean(
        Page::Html(&fixture("en_wire.html")),
        &CleanOptions::default(),
    )
    .unwrap();
    assert_eq!(
        a.main_story.title.as_deref(),
        Some("Coalition hands over Ain al-Asad operations centre")
    );
    assert_eq!(a.html_extraction, Some(HtmlExtraction::Readability));
    let body = &a.main_story.text;
    assert!(body.starts_with("ANBAR, Iraq"));
    assert!(body.contains("Some lawmakers in Baghdad criticised"));
    for noise in [
        "Oil prices",
        "By Staff Reporter",
        "Finally some good news",
        "All rights reserved",
        "Home",
    ] {
        assert!(!body.contains(noise), "{noise} leaked into the story");
    }
    assert_eq!(a.language.as_ref().unwrap().code, "en");
}

#[test]
fn html_without_an_article_falls_back_to_its_text() {
    let a = clean(
        Page::Html("<html><body><div>وقال المتحدث إن الاجتماع انتهى باتفاق على مواصلة التدريب المشترك بين القوات.</div></body></html>"),
        &CleanOptions::default(),
    )
    .unwrap();
    assert!(a.main_story.text.contains("وقال المتحدث"), "{a:?}");
}

#[test]
fn empty_and_broken_html_do_not_fail() {
    for html in [
        "",
        "<",
        "<html><body>",
        "<p>unclosed <b>tags <i>everywhere",
        "<script>var x = 1;</script>",
    ] {
        let a = clean(Page::Html(html), &CleanOptions::default()).unwrap();
        assert!(a.extracted_text.is_some(), "{html:?}");
        assert!(a.html_extraction.is_some(), "{html:?}");
    }
}

#[test]
fn a_page_without_an_article_gives_all_its_text_a_block_a_line() {
    // Regression: the fallback took the body's text in one piece, so
    // "Copyright<br>Contact" came out as "CopyrightContact".
    let a = clean(
        Page::Html(
            "<html><body><footer>Copyright 2024 Example News<br>Contact us</footer></body></html>",
        ),
        &CleanOptions::default(),
    )
    .unwrap();
    assert_eq!(a.html_extraction, Some(HtmlExtraction::AllText));
    assert_eq!(
        a.extracted_text.as_deref(),
        Some("Copyright 2024 Example News\nContact us\n")
    );
}
