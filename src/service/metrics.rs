//! Prometheus metrics and the small HTTP endpoint that serves them on their
//! own port (`GET /metrics`).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    /// Finished requests by RPC and gRPC code.
    pub requests: IntCounterVec,
    /// Requests admitted and not yet finished.
    pub queue_depth: IntGauge,
    /// Texts per model call of the batcher.
    pub batch_texts: Histogram,
    /// Tokens per model call of the batcher (before padding and windowing).
    pub batch_tokens: Histogram,
    /// Seconds per stage (clean, queue, inference, analysis, total).
    pub stage_seconds: HistogramVec,
    /// Model jobs dropped because their request was cancelled or expired.
    pub dropped_jobs: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("khulasa".into()), None).expect("valid prefix");
        let requests = IntCounterVec::new(
            Opts::new("requests_total", "Finished requests"),
            &["rpc", "code"],
        )
        .expect("valid metric");
        let queue_depth = IntGauge::new("queue_depth", "Requests admitted and not finished")
            .expect("valid metric");
        let batch_texts = Histogram::with_opts(
            HistogramOpts::new("batch_texts", "Texts per model call").buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
            ]),
        )
        .expect("valid metric");
        let batch_tokens = Histogram::with_opts(
            HistogramOpts::new("batch_tokens", "Tokens per model call").buckets(vec![
                16.0, 64.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0,
            ]),
        )
        .expect("valid metric");
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new("stage_seconds", "Seconds per stage").buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["stage"],
        )
        .expect("valid metric");
        let dropped_jobs = IntCounter::new(
            "dropped_jobs_total",
            "Model jobs dropped for cancelled or expired requests",
        )
        .expect("valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(queue_depth.clone()),
            Box::new(batch_texts.clone()),
            Box::new(batch_tokens.clone()),
            Box::new(stage_seconds.clone()),
            Box::new(dropped_jobs.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        Self {
            registry,
            requests,
            queue_depth,
            batch_texts,
            batch_tokens,
            stage_seconds,
            dropped_jobs,
        }
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding does not fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if request.starts_with("GET /metrics") {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "see /metrics\n".to_string())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}
