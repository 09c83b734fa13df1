//! Cleaning and segmentation speed: microseconds per article, and the
//! cost of hostile pages.
//!
//! `cargo bench -p khulasa-text --bench clean [FILE...]`: times the given
//! pages (e.g. real scraped samples), or the annotated fixture pages.
//! `cargo bench -p khulasa-text --bench clean -- hostile [NAME...]`: times
//! the generated hostile pages of `tests/common/hostile.rs` (all, or those
//! named), once each, with what came out; run one under `/usr/bin/time -v`
//! for its peak memory.

use std::time::Instant;

use khulasa_text::{CleanOptions, Page, clean};

#[path = "../tests/common/hostile.rs"]
mod hostile;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.first().is_some_and(|a| a == "hostile") {
        return hostile_pages(&args[1..]);
    }
    let pages: Vec<(String, String)> = if args.is_empty() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pages");
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        paths
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "page"))
            .map(|p| {
                let text: String = std::fs::read_to_string(&p)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(|l| l.split_once("] ").map_or("", |(_, t)| t))
                    .collect::<Vec<_>>()
                    .join("\n");
                (p.file_name().unwrap().to_string_lossy().into_owned(), text)
            })
            .collect()
    } else {
        args.iter()
            .map(|p| (p.clone(), std::fs::read_to_string(p).unwrap()))
            .collect()
    };
    let options = CleanOptions::default();
    let mut total = 0.0;
    for (name, text) in &pages {
        let runs = 200;
        let t = Instant::now();
        for _ in 0..runs {
            std::hint::black_box(clean(Page::Text(text), &options).unwrap());
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / runs as f64;
        total += us;
        println!("{us:>8.1} µs  {:>6} bytes  {name}", text.len());
    }
    println!(
        "{:>8.1} µs  mean over {} pages",
        total / pages.len() as f64,
        pages.len()
    );
}

/// Cleans each generated hostile page once and prints the time and shape
/// of the result.
fn hostile_pages(only: &[String]) {
    let options = CleanOptions::default();
    for (name, kind, generate) in hostile::cases() {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let page = generate();
        let t = Instant::now();
        let a = match kind {
            hostile::Kind::Text => clean(Page::Text(&page), &options),
            hostile::Kind::Html => clean(Page::Html(&page), &options),
        }
        .unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let how = a.html_extraction.map_or("text", |h| h.as_str());
        println!(
            "{ms:>9.1} ms  {:>8} bytes  {name:<22} {how:<11} {:>5} sentences{} {:>6} paragraphs {:>6} removed",
            page.len(),
            a.sentences.len(),
            if a.truncated { " (truncated)" } else { "" },
            a.main_story.paragraphs.len(),
            a.removed.len(),
        );
    }
}
