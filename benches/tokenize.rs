//! The compact SentencePiece tokenizer against Hugging Face's on the default
//! model's `tokenizer.json`: load time, memory it adds, and tokens per second
//! over the dev-set articles (one thread).
//!
//! `cargo bench --bench tokenize`

use std::path::Path;
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use khulasa::eval::read_devset;
use khulasa_tokenize::{Backend, Tokenizer};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("models/multilingual-e5-small/tokenizer.json");
    let texts: Vec<String> = read_devset(&root.join("tests/fixtures/devset/devset.jsonl"))
        .unwrap()
        .into_iter()
        .map(|a| a.text)
        .collect();
    // Each backend in turn, in that order, so the memory each adds is read
    // off the same baseline.
    for backend in [Backend::Auto, Backend::HuggingFace] {
        let before = rss_mib();
        let t = Instant::now();
        let tokenizer =
            Tokenizer::from_file(&path, backend).expect("run `cargo run -- model fetch` first");
        let load = t.elapsed();
        let added = rss_mib() - before;
        let rounds = 20;
        let t = Instant::now();
        let mut tokens = 0;
        for _ in 0..rounds {
            for text in &texts {
                tokens += tokenizer.encode(text).unwrap().ids.len();
            }
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{:<13} load {:6.0} ms  +{:5.0} MiB  {:9.0} tokens/s  ({} articles × {rounds})",
            tokenizer.implementation(),
            load.as_secs_f64() * 1e3,
            added,
            tokens as f64 / secs,
            texts.len(),
        );
        drop(tokenizer);
    }
}
