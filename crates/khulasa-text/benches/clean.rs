//! Cleaning and segmentation speed: microseconds per article.
//!
//! `cargo bench -p khulasa-text --bench clean [FILE...]`: times the given
//! pages (e.g. real scraped samples), or the annotated fixture pages.

use std::time::Instant;

use khulasa_text::{CleanOptions, Page, clean};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
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
