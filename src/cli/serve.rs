//! `khulasa serve`: the gRPC API, and the same API as HTTP/JSON, on a
//! loaded model.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use khulasa::api::Limits;
use khulasa::metrics::Metrics;
use khulasa::model_dir;
use khulasa::service::server::{self, TransportLimits};

use khulasa_batch::BatchingOptions;

use super::{AnalysisArgs, ModelArgs};

/// What `serve` is given.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    analysis: AnalysisArgs,
    /// Address to serve gRPC on.
    #[arg(long, default_value = "127.0.0.1:50051", env = "KHULASA_LISTEN")]
    listen: String,
    /// Address to serve the HTTP/JSON API on (`off` to disable).
    #[arg(long, default_value = "127.0.0.1:8080", env = "KHULASA_HTTP_LISTEN")]
    http_listen: String,
    /// A browser origin allowed to call the HTTP API (CORS), e.g.
    /// `https://cms.example.org`; repeat for more, `*` for any. Without
    /// one, only same-origin pages can.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Address to serve metrics on (`off` to disable).
    #[arg(long, default_value = "127.0.0.1:9464", env = "KHULASA_METRICS_LISTEN")]
    metrics_listen: String,
    /// File with accepted API keys, one per line (also KHULASA_API_KEYS,
    /// comma-separated). Without keys, no authentication.
    #[arg(long)]
    api_keys_file: Option<PathBuf>,
    /// PEM certificate (chain) to serve gRPC and HTTP over TLS (with
    /// --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Seconds in-flight work may run after SIGTERM/SIGINT.
    #[arg(long, default_value_t = server::ServeConfig::default().grace.as_secs())]
    grace_period: u64,
    /// Articles (and Embed calls) queued or running before
    /// RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = Limits::default().max_queued)]
    max_queue: usize,
    /// Bytes of work (article text) queued or running before
    /// RESOURCE_EXHAUSTED; a request costing more on its own is refused
    /// with INVALID_ARGUMENT.
    #[arg(long, default_value_t = Limits::default().max_queued_bytes)]
    max_queue_bytes: usize,
    /// Most articles per AnalyzeBatch.
    #[arg(long, default_value_t = Limits::default().max_batch_articles)]
    max_batch: usize,
    /// Largest article in bytes.
    #[arg(long, default_value_t = Limits::default().max_article_bytes)]
    max_article_bytes: usize,
    /// Largest request message in bytes (refused on its length prefix,
    /// before it is read).
    #[arg(long, default_value_t = Limits::default().max_message_bytes)]
    max_message_bytes: usize,
    /// Largest response message in bytes.
    #[arg(long, default_value_t = Limits::default().max_response_bytes)]
    max_response_bytes: usize,
    /// Connections open at once; more are closed as soon as accepted.
    #[arg(long, default_value_t = TransportLimits::default().max_connections)]
    max_connections: usize,
    /// Concurrent calls (HTTP/2 streams) per connection.
    #[arg(long, default_value_t = TransportLimits::default().max_concurrent_streams)]
    max_concurrent_streams: u32,
    /// Seconds any call may take, whatever deadline the client set.
    #[arg(long, default_value_t = TransportLimits::default().request_timeout.as_secs())]
    request_timeout: u64,
    /// Most articles of one stream in work at once.
    #[arg(long, default_value_t = Limits::default().max_stream_in_flight)]
    max_stream_in_flight: usize,
    /// Milliseconds the batcher waits to gather concurrent requests.
    #[arg(long, default_value_t = BatchingOptions::default().window.as_millis() as u64)]
    batch_window_ms: u64,
}

/// Serves until SIGTERM/SIGINT.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        analysis,
        listen,
        http_listen,
        cors_origins,
        metrics_listen,
        api_keys_file,
        tls_cert,
        tls_key,
        grace_period,
        max_queue,
        max_queue_bytes,
        max_batch,
        max_article_bytes,
        max_message_bytes,
        max_response_bytes,
        max_connections,
        max_concurrent_streams,
        request_timeout,
        max_stream_in_flight,
        batch_window_ms,
    } = args;
    let mut keys: std::collections::HashSet<String> = std::env::var("KHULASA_API_KEYS")
        .unwrap_or_default()
        .split(',')
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    if let Some(path) = &api_keys_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from),
        );
    }
    let limits = Limits {
        max_queued: max_queue.max(1),
        max_queued_bytes: max_queue_bytes.max(1),
        max_batch_articles: max_batch.max(1),
        max_article_bytes,
        max_message_bytes,
        max_response_bytes,
        max_stream_in_flight: max_stream_in_flight.max(1),
        ..Limits::default()
    };
    let transport = TransportLimits {
        max_connections: max_connections.max(1),
        max_concurrent_streams: max_concurrent_streams.max(1),
        request_timeout: std::time::Duration::from_secs(request_timeout.max(1)),
        // Room for a few largest messages being received at once.
        decode_budget_bytes: max_message_bytes.saturating_mul(8),
        ..TransportLimits::default()
    };
    let tls = match (&tls_cert, &tls_key) {
        (Some(c), Some(k)) => Some((
            std::fs::read(c).with_context(|| format!("reading {}", c.display()))?,
            std::fs::read(k).with_context(|| format!("reading {}", k.display()))?,
        )),
        _ => None,
    };
    let cors = khulasa::http::Cors::from_origins(&cors_origins)?;
    // Resolve (and, on first use, fetch) the model before serving.
    let model_dir = model_dir::resolve(analysis.model.model.as_deref())?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let metrics_listener = if metrics_listen == "off" {
            None
        } else {
            Some(
                tokio::net::TcpListener::bind(&metrics_listen)
                    .await
                    .with_context(|| format!("binding {metrics_listen}"))?,
            )
        };
        let http = if http_listen == "off" {
            None
        } else {
            Some(khulasa::http::HttpConfig {
                listener: tokio::net::TcpListener::bind(&http_listen)
                    .await
                    .with_context(|| format!("binding {http_listen}"))?,
                cors,
            })
        };
        if keys.is_empty() {
            tracing::warn!("no API keys configured: the analyzer service is open");
        } else {
            tracing::info!(keys = keys.len(), "API keys required");
        }
        let metrics = Arc::new(Metrics::new());
        let load_metrics = metrics.clone();
        let load = move || -> anyhow::Result<server::Loaded> {
            let analysis = AnalysisArgs {
                model: ModelArgs {
                    model: Some(model_dir),
                    ..analysis.model
                },
                ..analysis
            };
            let (analyzer, alive) = analysis.batched_analyzer(
                std::time::Duration::from_millis(batch_window_ms),
                load_metrics,
            )?;
            Ok(server::Loaded {
                analyzer: Arc::new(analyzer),
                alive: Some(alive),
            })
        };
        server::serve(
            listener,
            server::ServeConfig {
                limits,
                transport,
                api_keys: keys,
                grace: std::time::Duration::from_secs(grace_period),
                metrics: metrics_listener,
                tls,
                http,
            },
            metrics,
            load,
            server::shutdown_signal(),
        )
        .await
    })
}
