//! Hostile input: every stage bounded and linear. Each test pins a bug a
//! generated page once triggered (names in `tests/common/hostile.rs`):
//! unbounded sentences, HTML trees quadratic in their depth, formatting
//! bombs, attribute storms, quadratic merging of removed lines.
//!
//! Linearity is asserted on allocation, which is deterministic: a counting
//! allocator measures what cleaning one page allocates on the test's
//! thread, and ten times the input must cost about ten times, not a
//! hundred. Wall-clock guards are only a net against hangs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::mpsc;
use std::time::Duration;

use khulasa_text::{
    CleanLimits, CleanOptions, CleanedArticle, HtmlExtraction, Page, clean, html::flatten_text,
};

mod common;
use common::hostile::{self, PROSE};

/// Counts bytes allocated, and the peak of bytes live, per thread.
struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(grow: isize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + grow);
        let _ = PEAK.try_with(|p| p.set(p.get().max(live.get())));
    });
    if grow > 0 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + grow as usize));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// What running `f` allocated in all, and its peak of live bytes.
fn allocation<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let before = ALLOCATED.with(Cell::get);
    let live = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(live));
    let out = f();
    let total = ALLOCATED.with(Cell::get) - before;
    let peak = (PEAK.with(Cell::get) - live).max(0) as usize;
    (out, total, peak)
}

/// Runs `f` on its own thread; a hang (quadratic code on a big input)
/// fails the test after `secs` instead of stalling the suite.
fn guard<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("still running after {secs} s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the guarded code panicked"),
    }
}

fn text(page: &str) -> CleanedArticle {
    clean(Page::Text(page), &CleanOptions::default()).unwrap()
}

fn html(page: &str) -> CleanedArticle {
    clean(Page::Html(page), &CleanOptions::default()).unwrap()
}

fn with_cap(cap: usize) -> CleanOptions {
    CleanOptions {
        limits: CleanLimits {
            max_sentences: cap,
            ..CleanLimits::default()
        },
        ..CleanOptions::default()
    }
}

#[test]
fn fifty_thousand_one_word_sentences_stop_at_the_cap() {
    // Regression: nothing capped sentences, so 2 MB of "a! " made 699,000.
    let a = guard(60, || text(&"Word. ".repeat(50_000)));
    assert_eq!(a.sentences.len(), CleanLimits::default().max_sentences);
    assert!(a.truncated);
    assert_eq!(a.sentences.last().unwrap().text, "Word.");
    // Only the sentences stop: the story keeps all of it.
    assert_eq!(a.main_story.paragraphs.len(), 1);
    assert_eq!(
        a.main_story.text.len(),
        "Word. ".repeat(50_000).trim().len()
    );
}

#[test]
fn the_cap_keeps_the_first_sentences_and_says_whether_it_cut() {
    // Title "Headline here", then three paragraphs of two sentences.
    let page = format!(
        "Talks resume next week in the capital\n\n{PROSE} It was agreed.\n\n{PROSE} It was agreed.\n\n{PROSE} It was agreed.\n"
    );
    let all = clean(Page::Text(&page), &with_cap(usize::MAX)).unwrap();
    assert_eq!(all.sentences.len(), 7, "{:?}", all.sentences);
    assert!(!all.truncated);
    for cap in [0, 1, 2, 3, 6, 7, 8, 1000] {
        let a = clean(Page::Text(&page), &with_cap(cap)).unwrap();
        let n = cap.min(7);
        assert_eq!(a.sentences, all.sentences[..n], "cap {cap}");
        assert_eq!(a.truncated, cap < 7, "cap {cap}");
        assert_eq!(a.main_story, all.main_story, "cap {cap}");
    }
}

#[test]
fn the_cap_holds_inside_an_overlong_sentence() {
    // One sentence with no stop at all, cut at clause boundaries.
    let page = format!("{} end", "word, ".repeat(20_000));
    let all = clean(Page::Text(&page), &with_cap(usize::MAX)).unwrap();
    assert!(all.sentences.len() > 300);
    let a = clean(Page::Text(&page), &with_cap(300)).unwrap();
    assert_eq!(a.sentences, all.sentences[..300]);
    assert!(a.truncated);
}

/// (name, page, how it must be extracted, text that must survive).
fn hostile_html() -> Vec<(&'static str, String, HtmlExtraction, &'static str)> {
    use HtmlExtraction::*;
    vec![
        // Regression: readability took 65.6 s on 20,000 nested <div>s.
        (
            "nested_divs_20000",
            hostile::nested_divs(20_000),
            Flattened,
            PROSE,
        ),
        // Regression: 18.6 s on 5,000 nested tables.
        (
            "nested_tables_5000",
            hostile::nested_tables(5_000),
            Flattened,
            PROSE,
        ),
        // Regression: a 27 KB page of unclosed formatting tags, 426 MB.
        (
            "formatting_bomb",
            hostile::formatting_bomb(2_000, 1_000),
            Flattened,
            "x",
        ),
        // Regression: html5ever's tokenizer is quadratic in one tag's attributes.
        (
            "attribute_storm",
            hostile::attribute_storm(250_000),
            Flattened,
            PROSE,
        ),
        // Readability reads every clone's attributes again.
        (
            "cloned_attributes",
            format!(
                "<p>{PROSE}<b class=\"{}\">{}",
                "z".repeat(100_000),
                "<p>x".repeat(200)
            ),
            Flattened,
            PROSE,
        ),
        // Within the limits readability still runs.
        (
            "nested_divs_100",
            hostile::nested_divs(100),
            Readability,
            PROSE,
        ),
        (
            "article",
            hostile::article(20, 200),
            Readability,
            "Paragraph 199:",
        ),
        // Readability drops footers: no article, so all the text.
        (
            "no_article",
            format!("<html><body><footer>{PROSE}</footer></body></html>"),
            AllText,
            PROSE,
        ),
    ]
}

#[test]
fn pages_past_a_limit_are_flattened_and_keep_their_text() {
    for (name, page, expected, kept) in hostile_html() {
        let a = guard(60, move || html(&page));
        assert_eq!(a.html_extraction, Some(expected), "{name}");
        let extracted = a.extracted_text.as_deref().unwrap();
        assert!(extracted.contains(kept), "{name}: {kept:?} lost");
        if kept == PROSE {
            assert!(a.main_story.text.contains(PROSE), "{name}: {a:?}");
        }
    }
}

#[test]
fn the_html_limits_are_the_callers() {
    // 40 wrappers, 20 paragraphs: 102 elements, 43 deep.
    let page = hostile::article(40, 20);
    let limits = |f: fn(&mut CleanLimits)| {
        let mut options = CleanOptions::default();
        f(&mut options.limits);
        clean(Page::Html(&page), &options).unwrap().html_extraction
    };
    use HtmlExtraction::*;
    assert_eq!(limits(|_| {}), Some(Readability));
    assert_eq!(limits(|l| l.max_html_depth = 30), Some(Flattened));
    assert_eq!(limits(|l| l.max_html_elements = 30), Some(Flattened));
    assert_eq!(limits(|l| l.max_html_depth_sum = 500), Some(Flattened));
    let bold = format!("<p><b><i><u>{PROSE}</u></i></b></p>");
    let mut options = CleanOptions::default();
    options.limits.max_html_open_formatting = 2;
    let a = clean(Page::Html(&bold), &options).unwrap();
    assert_eq!(a.html_extraction, Some(Flattened));
    assert_eq!(a.main_story.text, PROSE);
}

#[test]
fn a_formatting_bomb_takes_bounded_memory() {
    // Regression: html5ever re-opened 2,000 formatting elements in each of
    // 1,000 paragraphs (426 MB for 1,500). Flattened, the page costs a
    // small multiple of its size.
    let page = hostile::formatting_bomb(2_000, 1_000);
    let (a, total, peak) = allocation(|| html(&page));
    assert_eq!(a.html_extraction, Some(HtmlExtraction::Flattened));
    assert!(
        peak < 40 * page.len(),
        "peak {peak} for {} bytes",
        page.len()
    );
    assert!(total < 80 * page.len(), "{total} for {} bytes", page.len());
}

/// Makes a page of `n` units.
type Scaled = fn(usize) -> String;

/// Generators of pages of `n` units (HTML or not), for the linearity check.
fn scalable() -> Vec<(&'static str, Scaled, bool)> {
    vec![
        // Regression: merging consecutive removed lines re-copied the
        // growing block: 700,000 removed lines took 19.5 s.
        ("removed_lines", |n| "ab\n".repeat(n) + PROSE + "\n", false),
        ("one_word_lines", |n| "ab\n".repeat(n), false),
        ("one_line", |n| "word ".repeat(n), false),
        ("a_bang", |n| "a! ".repeat(n), false),
        ("one_word", |n| "x".repeat(n), false),
        ("blank_lines", |n| "\n".repeat(n) + PROSE, false),
        ("rtl_marks", |n| "\u{200f}\u{200e} كلمة\n".repeat(n), false),
        (
            "combining_marks",
            |n| format!("ب{} ", "\u{064e}".repeat(n)),
            false,
        ),
        ("run_on_clauses", |n| "word, ".repeat(n), false),
        (
            "wrapped_lines",
            |n| hostile::wrapped(&format!("{PROSE} ").repeat(n / 16), 64),
            false,
        ),
        (
            "random_bytes",
            |n| String::from_utf8_lossy(&hostile::random_bytes(n, 3)).into_owned(),
            false,
        ),
        ("nested_divs", hostile::nested_divs, true),
        ("formatting_tags", |n| hostile::formatting_bomb(n, n), true),
        ("attributes", hostile::attribute_storm, true),
        ("paragraphs", |n| "<p>x".repeat(n), true),
    ]
}

#[test]
fn ten_times_the_input_allocates_about_ten_times() {
    for (name, page, is_html) in scalable() {
        let cost = |n: usize| {
            let page = page(n);
            let (_, total, _) = allocation(|| if is_html { html(&page) } else { text(&page) });
            total
        };
        let (small, large) = (cost(3_000), cost(30_000));
        let ratio = large as f64 / small as f64;
        assert!(
            ratio < 16.0,
            "{name}: {small} bytes for 3,000 units, {large} for 30,000 ({ratio:.1}x)"
        );
    }
}

#[test]
fn flattening_is_one_pass_over_any_markup() {
    // Every structure, big, and each unclosed construct that runs to the
    // end of the page: flattened well inside the guard even in debug.
    let pages = [
        [
            hostile::nested_divs(20_000),
            hostile::formatting_bomb(5_000, 5_000),
            hostile::attribute_storm(50_000),
            "&amp;&#1580;&notin ".repeat(20_000),
        ]
        .concat(),
        format!("<p>{PROSE}{}", "<!--".repeat(100_000)),
        format!("<p>{PROSE}{}", "<script></scrip".repeat(50_000)),
        format!("<p>{PROSE}{}", "<a ".repeat(200_000)),
        format!("<p>{PROSE}{}", "<a".repeat(200_000)),
        format!("<p>{PROSE}<div class=\"{}", "x".repeat(500_000)),
    ];
    for page in pages {
        let flat = guard(60, move || flatten_text(&page));
        assert!(flat.contains(PROSE), "{}", &flat[..flat.len().min(200)]);
    }
}
