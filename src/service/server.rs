//! Running the server: health (NOT_SERVING until the model is loaded and
//! warmed, NOT_SERVING again at shutdown), reflection v1 and v1alpha, API
//! keys on the analyzer service (health and reflection stay open), metrics
//! on their own port, and graceful shutdown within a grace period.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use khulasa_embed::InputKind;
use tokio::net::TcpListener;
use tonic::{Request, Status};

use super::wire::{DecodeBudgetLayer, limited_incoming};
use super::{AnalyzerService, status};
use crate::api::{ApiKeys, Core, DecodeBudget, Limits, Liveness};
use crate::metrics::{self, Metrics};
use crate::proto;

/// Limits of the transport: connections, HTTP/2 streams, time.
#[derive(Debug, Clone)]
pub struct TransportLimits {
    /// Connections open at once; more are closed as soon as accepted.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams (calls) per connection.
    pub max_concurrent_streams: u32,
    /// Longest time any call may take, whatever its deadline.
    pub request_timeout: Duration,
    /// Bytes of request messages being received at once, across all calls
    /// (see [`super::wire::DecodeBudget`]).
    pub decode_budget_bytes: usize,
    /// HTTP/2 pings on idle connections, to find dead peers.
    pub keepalive_interval: Duration,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_concurrent_streams: 64,
            request_timeout: Duration::from_secs(600),
            decode_budget_bytes: 64 << 20,
            keepalive_interval: Duration::from_secs(60),
        }
    }
}

/// What loading produces: the analyzer, and (with the batching encoder)
/// whether its inference thread still runs.
pub struct Loaded {
    /// The analyzer.
    pub analyzer: Arc<khulasa_analysis::Analyzer>,
    /// Liveness of the inference thread, watched for health.
    pub alive: Option<Liveness>,
}

impl From<Arc<khulasa_analysis::Analyzer>> for Loaded {
    fn from(analyzer: Arc<khulasa_analysis::Analyzer>) -> Self {
        Self {
            analyzer,
            alive: None,
        }
    }
}

/// How to run the server.
pub struct ServeConfig {
    /// Request limits.
    pub limits: Limits,
    /// Transport limits.
    pub transport: TransportLimits,
    /// Accepted API keys (`authorization: Bearer <key>`); empty: no auth.
    pub api_keys: HashSet<String>,
    /// How long in-flight work may run after shutdown begins.
    pub grace: Duration,
    /// Where to serve metrics, if anywhere.
    pub metrics: Option<TcpListener>,
    /// PEM certificate chain and private key, to serve over TLS (both
    /// doors).
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// The HTTP/JSON door, if it is served.
    pub http: Option<crate::http::HttpConfig>,
}

impl Default for ServeConfig {
    /// Default limits, no API keys, a 30 s grace period, no metrics
    /// listener, no HTTP door, plain text.
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            transport: TransportLimits::default(),
            api_keys: HashSet::new(),
            grace: Duration::from_secs(30),
            metrics: None,
            tls: None,
            http: None,
        }
    }
}

const SERVICE_NAME: &str = "khulasa.v1.Analyzer";

/// How often health looks at the inference thread.
const HEALTH_POLL: Duration = Duration::from_secs(1);

/// Serves on `listener` until `shutdown` resolves. `load` builds the
/// analyzer on a blocking thread while health reports NOT_SERVING.
pub async fn serve<L: Into<Loaded>>(
    listener: TcpListener,
    config: ServeConfig,
    metrics: Arc<Metrics>,
    load: impl FnOnce() -> anyhow::Result<L> + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health_reporter = Health {
        reporter,
        ready: Arc::new(AtomicBool::new(false)),
    };
    set_health(&health_reporter, tonic_health::ServingStatus::NotServing).await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let state = Arc::new(Core::new(config.limits.clone(), metrics.clone()));
    let keys = Arc::new(ApiKeys::new(config.api_keys));
    let service = proto::analyzer_server::AnalyzerServer::new(AnalyzerService::new(state.clone()))
        .max_decoding_message_size(config.limits.max_message_bytes)
        .max_encoding_message_size(config.limits.max_response_bytes);
    // Only the analyzer needs a key: health and reflection stay open.
    let grpc_keys = keys.clone();
    let intercepted = tonic::service::interceptor::InterceptedService::new(service, move |r| {
        check_key(&grpc_keys, r)
    });

    if let Some(m) = config.metrics {
        tracing::info!(addr = %m.local_addr()?, "metrics on /metrics");
        tokio::spawn(metrics::serve(m, metrics.clone()));
    }

    // Load and warm the model without blocking the listener.
    let loader_state = state.clone();
    let loader_health = health_reporter.clone();
    let loading = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let Loaded { analyzer, alive } = load()?.into();
        analyzer.encoder().embed(&["warm-up"], InputKind::Passage)?;
        loader_state.set_engine(analyzer, alive);
        Ok(())
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let t = &config.transport;
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(t.max_concurrent_streams)
        .timeout(t.request_timeout)
        .http2_keepalive_interval(Some(t.keepalive_interval))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        // Header blocks are a few hundred bytes; 16 KiB leaves room for
        // tracing and auth metadata and no more.
        .http2_max_header_list_size(16 << 10)
        // Bounds on streams a client resets (the "rapid reset" attack).
        .http2_max_pending_accept_reset_streams(Some(64))
        .http2_max_local_error_reset_streams(Some(256));
    let budget = DecodeBudget::new(t.decode_budget_bytes, config.limits.max_message_bytes);
    let (http_stop, http_stopped) = tokio::sync::watch::channel(false);
    let mut http_task = match config.http {
        Some(http) => {
            let tls = match &config.tls {
                Some((cert, key)) => Some(crate::http::serve::tls_acceptor(cert, key)?),
                None => None,
            };
            let router = crate::http::router(
                Arc::new(crate::http::HttpState::new(
                    state.clone(),
                    keys.clone(),
                    budget.clone(),
                    health_reporter.ready.clone(),
                    t.request_timeout,
                )),
                &http.cors,
            );
            Some(tokio::spawn(crate::http::serve(
                http.listener,
                router,
                t.max_connections,
                tls,
                metrics.clone(),
                http_stopped,
            )))
        }
        None => None,
    };
    if let Some((cert, key)) = config.tls {
        let identity = tonic::transport::Identity::from_pem(cert, key);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| anyhow::anyhow!("TLS configuration: {e}"))?;
    }
    let incoming = limited_incoming(listener, t.max_connections, metrics.clone());
    let server = builder
        .layer(DecodeBudgetLayer(budget))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(intercepted)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stop_rx.await;
        });
    let mut server = tokio::spawn(server);
    tracing::info!(%addr, "listening (NOT_SERVING until the model is loaded)");

    let mut loading = loading;
    let mut loaded = false;
    let mut serving = false;
    let mut health_poll = tokio::time::interval(HEALTH_POLL);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = health_poll.tick(), if loaded => {
                // The inference thread only dies through a bug; if it has,
                // every call would fail, so say so to the load balancer.
                let healthy = state.healthy();
                if healthy != serving {
                    serving = healthy;
                    let status = if healthy {
                        tonic_health::ServingStatus::Serving
                    } else {
                        tracing::error!("the inference thread has stopped: NOT_SERVING");
                        tonic_health::ServingStatus::NotServing
                    };
                    set_health(&health_reporter, status).await;
                }
            }
            done = &mut loading, if !loaded => {
                loaded = true;
                match done {
                    Ok(Ok(())) => {
                        set_health(&loader_health, tonic_health::ServingStatus::Serving).await;
                        serving = true;
                        tracing::info!("model loaded and warmed: SERVING");
                    }
                    Ok(Err(e)) => {
                        let _ = stop_tx.send(());
                        return Err(e.context("loading the model"));
                    }
                    Err(e) => {
                        let _ = stop_tx.send(());
                        anyhow::bail!("loading the model panicked: {e}");
                    }
                }
            }
            ended = &mut server => {
                return match ended {
                    Ok(r) => r.map_err(Into::into),
                    Err(e) => Err(e.into()),
                };
            }
            () = &mut shutdown => break,
        }
    }

    tracing::info!(grace = ?config.grace, "shutting down: NOT_SERVING, finishing in-flight work");
    set_health(&health_reporter, tonic_health::ServingStatus::NotServing).await;
    let _ = stop_tx.send(());
    let _ = http_stop.send(true);
    let finished = async {
        let grpc = (&mut server).await;
        if let Some(http) = http_task.as_mut() {
            let _ = http.await;
        }
        grpc
    };
    match tokio::time::timeout(config.grace, finished).await {
        Ok(Ok(r)) => r?,
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => tracing::warn!("grace period over; exiting with work still in flight"),
    }
    Ok(())
}

/// The health state: gRPC's health service, and the flag the HTTP door's
/// `/health/ready` reads.
#[derive(Clone)]
struct Health {
    reporter: tonic_health::server::HealthReporter,
    ready: Arc<AtomicBool>,
}

/// Sets the overall ("") and the analyzer's health, for both doors.
async fn set_health(health: &Health, status: tonic_health::ServingStatus) {
    health.ready.store(
        status == tonic_health::ServingStatus::Serving,
        Ordering::Release,
    );
    health.reporter.set_service_status("", status).await;
    health
        .reporter
        .set_service_status(SERVICE_NAME, status)
        .await;
}

/// Accepts a request when no keys are configured or it carries one of them.
fn check_key(keys: &ApiKeys, request: Request<()>) -> Result<Request<()>, Status> {
    let presented = request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    keys.check(presented).map_err(status)?;
    Ok(request)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
