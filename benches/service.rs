//! The real server on the default model, measured from a real client.
//!
//! - `batching`: 8 single-article Analyze calls one after another vs the
//!   same 8 at once, with the 4 ms batching window and with batching off.
//! - `latency`: single-article Analyze latency p50/p99 unloaded and with 8
//!   and 32 concurrent clients, throughput under load, and peak RSS while
//!   serving (the high-water mark is reset after the model is loaded).
//! - `doors`: the same article through gRPC `Analyze` and HTTP
//!   `POST /v1/analyze` of the same server, calls alternating so both see
//!   the same machine; p50/p99 of each and what the HTTP door adds.
//!
//! `cargo bench --bench service [-- batching|latency|doors] [ARTICLE.txt]`;
//! with no mode all run. Articles come from the dev set; an optional text file
//! (e.g. a real scraped page) is the single article of `latency`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

// As in the khulasa binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use khulasa::eval::read_devset;
use khulasa::metrics::Metrics;
use khulasa::proto;
use khulasa::proto::analyzer_client::AnalyzerClient;
use khulasa::service::server;
use khulasa_analysis::{AnalysisData, Analyzer, AnalyzerOptions};
use khulasa_batch::{BatchingEncoder, BatchingOptions};
use khulasa_candle::{CandleEncoder, LoadOptions, TokenizerBackend};
use tonic::transport::Channel;

type Client = AnalyzerClient<Channel>;

struct Running {
    client: Client,
    /// The HTTP door's base URL.
    http: String,
    metrics: Arc<Metrics>,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(encoder: Arc<CandleEncoder>, window_ms: u64) -> Running {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let metrics = Arc::new(Metrics::new());
    let batching = BatchingEncoder::start(
        encoder,
        BatchingOptions {
            window: Duration::from_millis(window_ms),
            ..Default::default()
        },
        metrics.clone(),
    );
    let data = AnalysisData::load(&root.join("models"), &[]).unwrap();
    let analyzer =
        Arc::new(Analyzer::new(Arc::new(batching), data, AnalyzerOptions::default()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", http_listener.local_addr().unwrap());
    let done = tokio::spawn(server::serve(
        listener,
        server::ServeConfig {
            grace: Duration::from_secs(5),
            http: Some(khulasa::http::HttpConfig {
                listener: http_listener,
                cors: Default::default(),
            }),
            ..Default::default()
        },
        metrics.clone(),
        move || Ok(analyzer),
        async {
            let _ = stopped.await;
        },
    ));
    let client = loop {
        if let Ok(mut c) = AnalyzerClient::connect(format!("http://{addr}")).await
            && c.get_info(proto::GetInfoRequest {}).await.is_ok()
        {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Running {
        client,
        http,
        metrics,
        stop,
        done,
    }
}

impl Running {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.done.await.unwrap().unwrap();
    }
}

/// One Analyze call; returns its latency.
async fn call(mut c: Client, text: String) -> Duration {
    let t = Instant::now();
    c.analyze(proto::AnalyzeRequest {
        article: Some(proto::Article {
            content: Some(proto::article::Content::Text(text)),
            ..Default::default()
        }),
        options: None,
    })
    .await
    .unwrap();
    t.elapsed()
}

async fn batching(encoder: Arc<CandleEncoder>, articles: &[String]) {
    for window_ms in [4u64, 0] {
        let s = start(encoder.clone(), window_ms).await;
        call(s.client.clone(), articles[0].clone()).await; // warm-up
        let t = Instant::now();
        for a in articles {
            call(s.client.clone(), a.clone()).await;
        }
        let sequential = t.elapsed();
        let t = Instant::now();
        let handles: Vec<_> = articles
            .iter()
            .map(|a| tokio::spawn(call(s.client.clone(), a.clone())))
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        let concurrent = t.elapsed();
        let m = &s.metrics;
        println!(
            "window {window_ms} ms: 8 sequential {:.2} s, 8 concurrent {:.2} s ({:.2}x), \
             model calls {} (mean {:.1} texts, {:.0} tokens)",
            sequential.as_secs_f64(),
            concurrent.as_secs_f64(),
            sequential.as_secs_f64() / concurrent.as_secs_f64(),
            m.batch_texts.get_sample_count(),
            m.batch_texts.get_sample_sum() / m.batch_texts.get_sample_count().max(1) as f64,
            m.batch_tokens.get_sample_sum() / m.batch_tokens.get_sample_count().max(1) as f64,
        );
        s.stop().await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// `clients` concurrent clients each make `calls` calls on `text`.
async fn load(client: &Client, text: &str, clients: usize, calls: usize) {
    let t = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (c, text) = (client.clone(), text.to_string());
            tokio::spawn(async move {
                let mut l = Vec::new();
                for _ in 0..calls {
                    l.push(call(c.clone(), text.clone()).await);
                }
                l
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let wall = t.elapsed().as_secs_f64();
    all.sort();
    println!(
        "{clients:>2} clients × {calls}: p50 {:7.0} ms  p99 {:7.0} ms  ({} calls, {:.2} articles/s)",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.len(),
        all.len() as f64 / wall,
    );
}

/// A `/proc/self/status` memory line (`VmHWM`, `VmRSS`) in MiB.
fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn peak_rss_mib() -> f64 {
    status_mib("VmHWM")
}

async fn latency(encoder: Arc<CandleEncoder>, text: &str) {
    let s = start(encoder, 4).await;
    call(s.client.clone(), text.to_string()).await; // warm-up
    // Reset the high-water mark: what follows is serving, not loading.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    println!("article: {} bytes", text.len());
    load(&s.client, text, 1, 30).await;
    load(&s.client, text, 8, 6).await;
    load(&s.client, text, 32, 2).await;
    println!("peak RSS while serving: {:.0} MiB", peak_rss_mib());
    s.stop().await;
}

/// The same article through both doors, alternating, one call at a time.
async fn doors(encoder: Arc<CandleEncoder>, text: &str) {
    const ROUNDS: usize = 40;
    let s = start(encoder, 4).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/analyze", s.http);
    let body = serde_json::to_vec(&proto::AnalyzeRequest {
        article: Some(proto::Article {
            content: Some(proto::article::Content::Text(text.to_string())),
            ..Default::default()
        }),
        options: None,
    })
    .unwrap();
    let post = || async {
        let t = Instant::now();
        let r = http.post(&url).body(body.clone()).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        r.bytes().await.unwrap();
        t.elapsed()
    };
    // Warm-up: a connection each, and the article once.
    call(s.client.clone(), text.to_string()).await;
    post().await;
    let (mut grpc, mut json) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        // Alternate which goes first, so neither always follows the other.
        if i % 2 == 0 {
            grpc.push(call(s.client.clone(), text.to_string()).await);
            json.push(post().await);
        } else {
            json.push(post().await);
            grpc.push(call(s.client.clone(), text.to_string()).await);
        }
    }
    grpc.sort();
    json.sort();
    let (g50, g99, h50, h99) = (
        percentile(&grpc, 0.5),
        percentile(&grpc, 0.99),
        percentile(&json, 0.5),
        percentile(&json, 0.99),
    );
    println!(
        "article {} bytes, {ROUNDS} calls each: gRPC p50 {g50:.1} ms p99 {g99:.1} ms; \
         HTTP/JSON p50 {h50:.1} ms p99 {h99:.1} ms; HTTP adds {:+.1}% at p50, {:+.1}% at p99",
        text.len(),
        (h50 / g50 - 1.0) * 100.0,
        (h99 / g99 - 1.0) * 100.0,
    );
    s.stop().await;
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mode = args.iter().find(|a| !a.ends_with(".txt")).cloned();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let articles: Vec<String> = read_devset(&root.join("tests/fixtures/devset/devset.jsonl"))
        .unwrap()
        .into_iter()
        .take(8)
        .map(|a| a.text)
        .collect();
    let single = match args.iter().find(|a| a.ends_with(".txt")) {
        Some(path) => std::fs::read_to_string(path).unwrap(),
        None => articles[0].clone(),
    };
    let encoder = Arc::new(
        CandleEncoder::load(
            &root.join("models/multilingual-e5-small"),
            &LoadOptions {
                // KHULASA_BENCH_TOKENIZER=huggingface measures the reference
                // tokenizer instead of the compact one.
                tokenizer: match std::env::var("KHULASA_BENCH_TOKENIZER").as_deref() {
                    Ok("huggingface") => TokenizerBackend::HuggingFace,
                    _ => TokenizerBackend::Auto,
                },
                ..LoadOptions::default()
            },
        )
        .expect("run `cargo run -- model fetch` first"),
    );
    println!(
        "RSS after load: {:.0} MiB (peak while loading {:.0} MiB)",
        status_mib("VmRSS"),
        peak_rss_mib()
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        if mode.as_deref().is_none_or(|m| m == "batching") {
            batching(encoder.clone(), &articles).await;
        }
        if mode.as_deref().is_none_or(|m| m == "latency") {
            latency(encoder.clone(), &single).await;
        }
        if mode.as_deref().is_none_or(|m| m == "doors") {
            doors(encoder, &single).await;
        }
    });
}
