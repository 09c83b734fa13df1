//! Encoder throughput on the default model: tokens per second for batches of
//! 16×256, 64×64 and 1×512 tokens (padding-free, so every token is real work).
//!
//! `cargo bench --bench encoder` (add `-- --threads N` to pin the Candle
//! thread count through RAYON_NUM_THREADS before the model loads, and
//! `--write-texts FILE` to save the texts as JSON for the PyTorch peer in
//! `scripts/peer/`, `--matmul-weights q8_0|q4_0` to run Candle's quantised
//! matmuls and print their cosine to the f32 model on the fidelity texts).

use std::time::Instant;

// As in the khulasa binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use khulasa_candle::{CandleEncoder, LoadOptions, MatmulWeights};
use khulasa_embed::{InputKind, TextEncoder};

/// A text that the model tokenizes to exactly `n` tokens (prompt and
/// special tokens included), cut from an Arabic/English word stream.
fn text_of(enc: &CandleEncoder, n: usize, seed: usize) -> String {
    const WORDS: &str = "أعلنت قيادة العمليات المشتركة انطلاق المرحلة الثالثة من عمليات \
        تطهير المناطق الصحراوية بمشاركة الجيش والشرطة الاتحادية وبإسناد جوي من التحالف \
        الدولي the coalition said advisers would stay to support training and intelligence \
        sharing while parliament debated a timetable for withdrawal of foreign forces";
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut text = String::new();
    let mut i = seed;
    loop {
        let next = format!("{text} {}", words[i % words.len()]);
        let count = enc.count_tokens(next.trim(), InputKind::Passage).unwrap();
        if count > n {
            break;
        }
        text = next;
        i += 1;
    }
    let text = text.trim().to_string();
    // Word boundaries may leave us one token short: pad with a single-token word.
    let mut padded = text.clone();
    while enc.count_tokens(&padded, InputKind::Passage).unwrap() < n {
        padded.push_str(" a");
    }
    if enc.count_tokens(&padded, InputKind::Passage).unwrap() == n {
        padded
    } else {
        text
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--threads") {
        // SAFETY: set before any thread pool exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", &args[i + 1]) };
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/multilingual-e5-small");
    let matmul_weights = match args
        .iter()
        .position(|a| a == "--matmul-weights")
        .map(|i| args[i + 1].as_str())
    {
        None | Some("f32") => MatmulWeights::F32,
        Some("q8_0") => MatmulWeights::Q8_0,
        Some("q4_0") => MatmulWeights::Q4_0,
        Some(other) => panic!("--matmul-weights {other}: expected f32, q8_0 or q4_0"),
    };
    let load = |matmul_weights| {
        CandleEncoder::load(
            &dir,
            &LoadOptions {
                token_budget: 16 * 512,
                matmul_weights,
                ..LoadOptions::default()
            },
        )
        .expect("run `cargo run -- model fetch` first")
    };
    let enc = load(matmul_weights);
    if matmul_weights != MatmulWeights::F32 {
        fidelity(&enc, &load(MatmulWeights::F32));
    }
    println!("after load: {}", memory());
    println!(
        "threads: {}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into())
    );
    let write_texts = args
        .iter()
        .position(|a| a == "--write-texts")
        .map(|i| args[i + 1].clone());
    let mut shapes = Vec::new();
    // `--only BxL` runs one shape (for profiling).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| args[i + 1].clone());
    for (batch, len) in [(16, 256), (64, 64), (1, 512)] {
        if only
            .as_ref()
            .is_some_and(|o| *o != format!("{batch}x{len}"))
        {
            continue;
        }
        let texts: Vec<String> = (0..batch).map(|i| text_of(&enc, len, i)).collect();
        shapes.push(serde_json::json!({"batch": batch, "len": len, "texts": texts}));
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokens: usize = refs
            .iter()
            .map(|t| enc.count_tokens(t, InputKind::Passage).unwrap())
            .sum();
        enc.embed(&refs, InputKind::Passage).unwrap(); // warm-up
        let runs = (20_000 / tokens).clamp(3, 20);
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            enc.embed(&refs, InputKind::Passage).unwrap();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "{batch:>3}×{len:<4} {tokens:>6} tokens  median {:>8.1} ms  {:>7.0} tokens/s  ({runs} runs)",
            median * 1e3,
            tokens as f64 / median
        );
    }
    println!("after runs: {}", memory());
    if let Some(path) = write_texts {
        std::fs::write(&path, serde_json::to_string(&shapes).unwrap()).unwrap();
    }
}

/// Cosine of `enc`'s embeddings to `exact`'s on the fidelity fixture texts.
fn fidelity(enc: &CandleEncoder, exact: &CandleEncoder) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/encoder_reference.json")).unwrap(),
    )
    .unwrap();
    let mut cosines = Vec::new();
    for case in fixture["cases"].as_array().unwrap() {
        let kind = match case["kind"].as_str() {
            Some("query") => InputKind::Query,
            _ => InputKind::Passage,
        };
        let text = case["text"].as_str().unwrap();
        let a = enc.embed(&[text], kind).unwrap().pop().unwrap();
        let b = exact.embed(&[text], kind).unwrap().pop().unwrap();
        cosines.push(a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>());
    }
    cosines.sort_by(f32::total_cmp);
    println!(
        "cosine to f32 over {} fidelity texts: min {:.5}, median {:.5}",
        cosines.len(),
        cosines[0],
        cosines[cosines.len() / 2]
    );
}

/// Resident and peak resident memory of this process (Linux).
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or_else(|| "?".to_string(), |kb| format!("{} MiB", kb / 1024))
    };
    format!("RSS {}, peak {}", field("VmRSS:"), field("VmHWM:"))
}
