//! Dynamic batching through the real server: 8 single-article Analyze calls
//! one after another vs the same 8 at once, and the same with batching off
//! (a 0 ms window). Articles come from the dev set.
//!
//! `cargo bench --bench service`

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use khulasa::proto;
use khulasa::proto::analyzer_client::AnalyzerClient;
use khulasa::service::batcher::{BatchingEncoder, BatchingOptions};
use khulasa::service::metrics::Metrics;
use khulasa::service::{Limits, server};
use khulasa_analysis::{AnalysisData, Analyzer, AnalyzerOptions};
use khulasa_candle::{CandleEncoder, LoadOptions};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let articles: Vec<String> =
        std::fs::read_to_string(root.join("tests/fixtures/devset/devset.jsonl"))
            .unwrap()
            .lines()
            .take(8)
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
    let encoder = Arc::new(
        CandleEncoder::load(
            &root.join("models/multilingual-e5-small"),
            &LoadOptions::default(),
        )
        .expect("run `cargo run -- model fetch` first"),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for window_ms in [4u64, 0] {
        let metrics = Arc::new(Metrics::new());
        let batching = BatchingEncoder::start(
            encoder.clone(),
            BatchingOptions {
                window: Duration::from_millis(window_ms),
                ..Default::default()
            },
            metrics.clone(),
        );
        let data = AnalysisData::load(&root.join("models"), &[]).unwrap();
        let analyzer =
            Arc::new(Analyzer::new(Arc::new(batching), data, AnalyzerOptions::default()).unwrap());
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let done = tokio::spawn(server::serve(
                listener,
                server::ServeConfig {
                    limits: Limits::default(),
                    api_keys: Default::default(),
                    grace: Duration::from_secs(5),
                    metrics: None,
                    tls: None,
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
            let call = |mut c: AnalyzerClient<tonic::transport::Channel>, text: String| async move {
                c.analyze(proto::AnalyzeRequest {
                    article: Some(proto::Article {
                        content: Some(proto::article::Content::Text(text)),
                        ..Default::default()
                    }),
                    options: None,
                })
                .await
                .unwrap()
            };
            call(client.clone(), articles[0].clone()).await; // warm-up
            let t = Instant::now();
            for a in &articles {
                call(client.clone(), a.clone()).await;
            }
            let sequential = t.elapsed();
            let t = Instant::now();
            let handles: Vec<_> = articles.iter().map(|a| tokio::spawn(call(client.clone(), a.clone()))).collect();
            for h in handles {
                h.await.unwrap();
            }
            let concurrent = t.elapsed();
            println!(
                "window {window_ms} ms: 8 sequential {:.2} s, 8 concurrent {:.2} s ({:.2}x), model calls {} (mean {:.1} texts)",
                sequential.as_secs_f64(),
                concurrent.as_secs_f64(),
                sequential.as_secs_f64() / concurrent.as_secs_f64(),
                metrics.batch_texts.get_sample_count(),
                metrics.batch_texts.get_sample_sum() / metrics.batch_texts.get_sample_count().max(1) as f64,
            );
            stop.send(()).unwrap();
            done.await.unwrap().unwrap();
        });
    }
}
