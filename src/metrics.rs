//! Prometheus metrics (shared by every door) and the small HTTP/1.1 server that serves them on
//! their own port (`GET /metrics`), with a connection limit and timeouts so
//! that idle or slow clients cannot hold it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    /// Finished requests by door (grpc, http), operation and gRPC code.
    pub requests: IntCounterVec,
    /// Articles (and Embed calls) admitted and not yet finished.
    pub queue_depth: IntGauge,
    /// Bytes of work admitted and not yet finished.
    pub queued_bytes: IntGauge,
    /// Connections closed at once because the connection limit was reached.
    pub connections_refused: IntCounter,
    /// Texts per model call of the batcher.
    pub batch_texts: Histogram,
    /// Tokens per model call of the batcher (before padding and windowing).
    pub batch_tokens: Histogram,
    /// Seconds per stage (clean, queue, inference, analysis, total).
    pub stage_seconds: HistogramVec,
    /// Model jobs dropped because their request was cancelled or expired.
    pub dropped_jobs: IntCounter,
    /// Encoder calls that panicked (their callers got INTERNAL).
    pub inference_panics: IntCounter,
}

/// The batcher's reports, as metrics.
impl khulasa_batch::BatchObserver for Metrics {
    fn chunk(&self, texts: usize, tokens: usize) {
        self.batch_texts.observe(texts as f64);
        self.batch_tokens.observe(tokens as f64);
    }
    fn ran(&self, seconds: f64) {
        self.stage_seconds
            .with_label_values(&["inference"])
            .observe(seconds);
    }
    fn dropped(&self) {
        self.dropped_jobs.inc();
    }
    fn panicked(&self) {
        self.inference_panics.inc();
    }
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
            &["door", "rpc", "code"],
        )
        .expect("valid metric");
        let queue_depth = IntGauge::new("queue_depth", "Requests admitted and not finished")
            .expect("valid metric");
        let queued_bytes = IntGauge::new(
            "queued_bytes",
            "Bytes of work (article text) admitted and not finished",
        )
        .expect("valid metric");
        let connections_refused = IntCounter::new(
            "connections_refused_total",
            "Connections closed at once because the connection limit was reached",
        )
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
        let inference_panics = IntCounter::new(
            "inference_panics_total",
            "Encoder calls that panicked; their callers got INTERNAL",
        )
        .expect("valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(queue_depth.clone()),
            Box::new(queued_bytes.clone()),
            Box::new(connections_refused.clone()),
            Box::new(batch_texts.clone()),
            Box::new(batch_tokens.clone()),
            Box::new(stage_seconds.clone()),
            Box::new(dropped_jobs.clone()),
            Box::new(inference_panics.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        Self {
            registry,
            requests,
            queue_depth,
            queued_bytes,
            connections_refused,
            batch_texts,
            batch_tokens,
            stage_seconds,
            dropped_jobs,
            inference_panics,
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

/// Most metrics connections open at once (scrapers keep one or two).
const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may live, request and response included.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `GET /metrics` on `listener` until the task is dropped: HTTP/1.1
/// by hyper, one request per connection, at most [`MAX_CONNECTIONS`] at once
/// (more are closed at once), each given [`HEADER_TIMEOUT`] to send its
/// request and [`CONNECTION_TIMEOUT`] in all.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // E.g. out of file descriptors: wait rather than spin.
                tracing::warn!(error = %e, "metrics accept failed; backing off");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(socket);
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |request| {
                let metrics = metrics.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&request, &metrics)) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(socket), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
        });
    }
}

fn respond<B>(request: &http::Request<B>, metrics: &Metrics) -> http::Response<Full<Bytes>> {
    let (status, content_type, body) =
        if request.method() == http::Method::GET && request.uri().path() == "/metrics" {
            (
                http::StatusCode::OK,
                "text/plain; version=0.0.4",
                metrics.render(),
            )
        } else {
            (
                http::StatusCode::NOT_FOUND,
                "text/plain",
                "see GET /metrics\n".to_string(),
            )
        };
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
