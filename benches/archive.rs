//! Archive throughput: articles/s of `khulasa analyze` over a generated
//! corpus, in process (1 and 2 workers over the batching encoder) and
//! against one local server over AnalyzeStream.
//!
//! The corpus cycles through our own fixtures: the 49 dev-set articles and
//! the 17 annotated scraped pages (with their navigation, read-also inserts
//! and appended stories), each under a fresh id.
//!
//! `cargo bench --bench archive -- [N] [local|local1|local:W|pooled|server|fsync]`
//! (default: 1000 articles, every engine; `local` is the CLI's default of 8
//! workers, `local:W` any other count, `pooled` 8 workers with
//! `--sentence-vectors pooled`; `fsync` writes N real records through the
//! output alone, with no model, as `--fsync 0`, `1` and `100` would). The corpus is also written to
//! `target/bench-corpus-N.jsonl` for trying the CLI on it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

// As in the khulasa binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use khulasa::archive::{self, ArchiveOptions, Engine, remote::RemoteOptions, sink::Format};
use khulasa::eval::read_devset;
use khulasa::metrics::Metrics;
use khulasa::proto::analyzer_client::AnalyzerClient;
use khulasa::service::server;
use khulasa_analysis::{AnalysisData, Analyzer, AnalyzerOptions};
use khulasa_batch::{BatchingEncoder, BatchingOptions};
use khulasa_candle::{CandleEncoder, LoadOptions};

fn fixture_texts(root: &Path) -> Vec<String> {
    let mut texts: Vec<String> = read_devset(&root.join("tests/fixtures/devset/devset.jsonl"))
        .unwrap()
        .into_iter()
        .map(|a| a.text)
        .collect();
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("tests/fixtures/pages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "page"))
        .collect();
    pages.sort();
    for p in pages {
        let annotated = std::fs::read_to_string(&p).unwrap();
        let page: Vec<&str> = annotated
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split_once("] ").map_or(l, |(_, line)| line))
            .collect();
        texts.push(page.join("\n"));
    }
    texts
}

fn corpus(root: &Path, n: usize) -> PathBuf {
    let texts = fixture_texts(root);
    let path = root.join(format!("target/bench-corpus-{n}.jsonl"));
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({"id": format!("doc-{i:05}"), "text": texts[i % texts.len()]})
                .to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn analyzer(
    encoder: Arc<CandleEncoder>,
    metrics: Arc<Metrics>,
    options: AnalyzerOptions,
) -> Arc<Analyzer> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let batching = BatchingEncoder::start(encoder, BatchingOptions::default(), metrics);
    let data = AnalysisData::load(&root.join("models"), &[]).unwrap();
    Arc::new(Analyzer::new(Arc::new(batching), data, options).unwrap())
}

fn run(label: &str, input: &Path, engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let summary = archive::run(
        ArchiveOptions {
            durability: Default::default(),
            inputs: vec![input.to_path_buf()],
            output: Some(out.clone()),
            format: Format::Jsonl,
            errors: None,
            resume: false,
            force: false,
            progress: archive::stderr_is_terminal(),
            run: Default::default(),
            shard: None,
        },
        engine,
    )
    .unwrap();
    let ids: HashSet<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string())
        .collect();
    assert_eq!(ids.len(), summary.succeeded + summary.failed);
    println!("{label:<28} {}", summary.line());
}

/// Records per second through the output file for each `--fsync` setting.
fn fsync(n: usize) {
    use khulasa::archive::sink::{Durability, Sink};
    // A typical record: a real article's size of summary and sentences.
    let mut record = khulasa::record::ok(khulasa::proto::AnalyzeResponse {
        language: "ar".into(),
        main_story: Some(khulasa::proto::MainStory {
            title: "عنوان".into(),
            text: "وأكد الوزير أن التعاون الأمني مستمر بين البلدين. ".repeat(60),
        }),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    for (label, durability) in [
        ("--fsync 0", Durability::Written),
        ("--fsync 100", Durability::SyncEvery(100)),
        ("--fsync 1", Durability::SyncEvery(1)),
    ] {
        let path = dir.path().join(label.replace(' ', ""));
        let (sink, _) = Sink::open(&path, Format::Jsonl, false, true).unwrap();
        let mut sink = sink.with_durability(durability);
        let started = std::time::Instant::now();
        for i in 0..n {
            record.id = format!("r{i}");
            sink.write(&record).unwrap();
        }
        sink.finish().unwrap();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{label:<12} {n} records of {} bytes: {:.0} records/s ({:.3} ms each)",
            Format::Jsonl.line(&record).unwrap().len(),
            n as f64 / secs,
            secs * 1e3 / n as f64
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1000);
    let mode = args.iter().find(|a| a.parse::<usize>().is_err()).cloned();
    let wants = |m: &str| mode.as_deref().is_none_or(|x| x == m);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if mode.as_deref() == Some("fsync") {
        return fsync(n);
    }
    let input = corpus(root, n);
    let encoder = Arc::new(
        CandleEncoder::load(
            &root.join("models/multilingual-e5-small"),
            &LoadOptions::default(),
        )
        .expect("run `cargo run -- model fetch` first"),
    );
    let metrics = Arc::new(Metrics::new());
    let local = analyzer(encoder.clone(), metrics.clone(), AnalyzerOptions::default());
    let extra: Vec<(String, usize)> = mode
        .as_deref()
        .and_then(|m| m.strip_prefix("local:"))
        .and_then(|w| w.parse().ok())
        .map(|w| vec![(format!("local:{w}"), w)])
        .unwrap_or_default();
    let engines: Vec<(String, usize)> = [
        ("local1".to_string(), 1),
        ("local".to_string(), 8),
        ("pooled".to_string(), 8),
    ]
    .into_iter()
    .chain(extra)
    .collect();
    for (m, workers) in engines {
        if wants(&m) {
            let local = if m == "pooled" {
                analyzer(
                    encoder.clone(),
                    metrics.clone(),
                    AnalyzerOptions {
                        sentence_vectors: khulasa_analysis::SentenceVectors::Pooled,
                    },
                )
            } else {
                local.clone()
            };
            let (tokens, calls) = (
                metrics.batch_tokens.get_sample_sum(),
                metrics.batch_tokens.get_sample_count(),
            );
            let vectors = if m == "pooled" { ", pooled" } else { "" };
            run(
                &format!("in process, {workers} worker(s){vectors}"),
                &input,
                Engine::Local {
                    analyzer: local.clone(),
                    workers,
                },
            );
            let calls = metrics.batch_tokens.get_sample_count() - calls;
            println!(
                "{:<28} {:.0} tokens per article through the batcher, {:.0} per model call",
                "",
                (metrics.batch_tokens.get_sample_sum() - tokens) / n as f64,
                (metrics.batch_tokens.get_sample_sum() - tokens) / calls.max(1) as f64,
            );
        }
    }
    if wants("server") {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (addr, stop, done) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let analyzer = local.clone();
            let done = tokio::spawn(server::serve(
                listener,
                server::ServeConfig {
                    grace: Duration::from_secs(5),
                    ..Default::default()
                },
                Arc::new(Metrics::new()),
                move || Ok(analyzer),
                async {
                    let _ = stopped.await;
                },
            ));
            while AnalyzerClient::connect(format!("http://{addr}"))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (addr, stop, done)
        });
        run(
            "one local server",
            &input,
            Engine::Remote(RemoteOptions {
                servers: vec![format!("http://{addr}")],
                ..Default::default()
            }),
        );
        stop.send(()).unwrap();
        runtime.block_on(done).unwrap().unwrap();
    }
}
