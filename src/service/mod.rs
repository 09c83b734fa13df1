//! The gRPC service: `khulasa.v1.Analyzer` over the pipeline, with dynamic
//! batching ([`batcher`]), admission control, limits, deadlines and
//! cancellation, health, reflection, metrics ([`metrics`]), API keys and
//! graceful shutdown ([`server`]).
//!
//! Every failure is mapped to a gRPC status in one place,
//! [`ServiceError::into_status`]; bad input carries `google.rpc.BadRequest`
//! field violations.

pub mod batcher;
pub mod convert;
pub mod metrics;
pub mod server;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use khulasa_embed::InputKind;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::Instrument;

use crate::pipeline::{ArticleInput, PipelineError, RunOptions, analyze_input};
use crate::proto;
use batcher::RequestScope;
use metrics::Metrics;

/// Limits enforced on requests.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request message in bytes.
    pub max_message_bytes: usize,
    /// Largest article in bytes.
    pub max_article_bytes: usize,
    /// Most articles per AnalyzeBatch.
    pub max_batch_articles: usize,
    /// Most labels in an inline label set.
    pub max_inline_labels: usize,
    /// Longest target or focus in characters.
    pub max_target_chars: usize,
    /// Most texts per Embed.
    pub max_embed_texts: usize,
    /// Most articles of one stream in work at once.
    pub max_stream_in_flight: usize,
    /// Articles admitted (queued or running) before RESOURCE_EXHAUSTED.
    pub max_queued: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 << 20,
            max_article_bytes: 2 << 20,
            max_batch_articles: 64,
            max_inline_labels: khulasa_analysis::data::MAX_LABELS,
            max_target_chars: khulasa_analysis::MAX_TARGET_CHARS,
            max_embed_texts: 256,
            max_stream_in_flight: 8,
            max_queued: 64,
        }
    }
}

/// Everything that can fail in a call, before it becomes a [`Status`].
#[derive(Debug)]
pub enum ServiceError {
    /// A request field is wrong.
    Invalid {
        /// Its path, e.g. `article.text`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The model is still loading, or the server is stopping.
    Unavailable(String),
    /// The admission queue is full.
    Exhausted,
    /// The call's deadline passed.
    DeadlineExceeded,
    /// Something failed inside.
    Internal(String),
}

impl ServiceError {
    /// The one mapping from errors to gRPC statuses.
    pub fn into_status(self) -> Status {
        match self {
            Self::Invalid { field, message } => Status::with_error_details(
                Code::InvalidArgument,
                format!("{field}: {message}"),
                ErrorDetails::with_bad_request_violation(field, message),
            ),
            Self::Unavailable(m) => Status::unavailable(m),
            Self::Exhausted => {
                Status::resource_exhausted("the server is at capacity; retry with backoff")
            }
            Self::DeadlineExceeded => {
                Status::deadline_exceeded("the deadline passed before the work finished")
            }
            Self::Internal(m) => Status::internal(m),
        }
    }

    fn code_name(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "INVALID_ARGUMENT",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Exhausted => "RESOURCE_EXHAUSTED",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl From<PipelineError> for ServiceError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Invalid(m) => Self::Invalid {
                field: "article".into(),
                message: m,
            },
            PipelineError::Internal(m) if m.contains("cancelled or timed out") => {
                Self::DeadlineExceeded
            }
            PipelineError::Internal(m) => Self::Internal(m),
        }
    }
}

/// Shared state of the service.
pub struct State {
    engine: OnceLock<Arc<khulasa_analysis::Analyzer>>,
    limits: Limits,
    admission: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl State {
    /// A service with no model yet; [`State::set_engine`] makes it serve.
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> Self {
        Self {
            engine: OnceLock::new(),
            admission: Arc::new(Semaphore::new(limits.max_queued)),
            limits,
            metrics,
        }
    }

    /// Installs the loaded analyzer.
    pub fn set_engine(&self, analyzer: Arc<khulasa_analysis::Analyzer>) {
        let _ = self.engine.set(analyzer);
    }

    fn engine(&self) -> Result<Arc<khulasa_analysis::Analyzer>, ServiceError> {
        self.engine
            .get()
            .cloned()
            .ok_or_else(|| ServiceError::Unavailable("the model is still loading".into()))
    }

    fn admit(&self, n: usize) -> Result<OwnedSemaphorePermit, ServiceError> {
        self.admission
            .clone()
            .try_acquire_many_owned(n as u32)
            .map_err(|_| ServiceError::Exhausted)
    }
}

/// The `khulasa.v1.Analyzer` implementation.
#[derive(Clone)]
pub struct AnalyzerService {
    state: Arc<State>,
}

impl AnalyzerService {
    /// A service over `state`.
    pub fn new(state: Arc<State>) -> Self {
        Self { state }
    }

    fn label_names(engine: &khulasa_analysis::Analyzer) -> Vec<String> {
        engine.data().label_sets.keys().cloned().collect()
    }

    /// Runs one admitted article on a blocking thread; the work is dropped
    /// if the caller goes away or the deadline passes.
    async fn run_one(
        state: Arc<State>,
        engine: Arc<khulasa_analysis::Analyzer>,
        input: ArticleInput,
        options: RunOptions,
        deadline: Option<Instant>,
        permit: OwnedSemaphorePermit,
    ) -> Result<proto::AnalyzeResponse, ServiceError> {
        let started = Instant::now();
        let cancel = Arc::new(AtomicBool::new(false));
        // Dropped with this future when the client cancels: flags the work.
        let _guard = CancelOnDrop(cancel.clone());
        state.metrics.queue_depth.inc();
        let metrics = state.metrics.clone();
        let span = tracing::info_span!("article", id = %input.id);
        let job = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _permit = permit;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(ServiceError::DeadlineExceeded);
            }
            let scope = RequestScope::enter(cancel, deadline);
            let analyzed = analyze_input(&engine, &input, &options)?;
            let (queue_ms, inference_ms) = scope.timings();
            let timings = proto::Timings {
                clean_ms: analyzed.clean_ms,
                queue_ms,
                inference_ms,
                analysis_ms: (analyzed.analysis_ms - queue_ms - inference_ms).max(0.0),
                total_ms: started.elapsed().as_secs_f64() * 1e3,
            };
            Ok(convert::response(
                analyzed,
                &engine.encoder().info().id,
                timings,
            ))
        });
        let result = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), job).await {
                Ok(joined) => joined,
                Err(_) => {
                    metrics.queue_depth.dec();
                    return Err(ServiceError::DeadlineExceeded);
                }
            },
            None => job.await,
        };
        metrics.queue_depth.dec();
        let response =
            result.map_err(|e| ServiceError::Internal(format!("the analysis failed: {e}")))??;
        if let Some(t) = &response.timings {
            for (stage, ms) in [
                ("clean", t.clean_ms),
                ("queue", t.queue_ms),
                ("analysis", t.analysis_ms),
                ("total", t.total_ms),
            ] {
                metrics
                    .stage_seconds
                    .with_label_values(&[stage])
                    .observe(ms / 1e3);
            }
        }
        Ok(response)
    }

    fn record<T>(&self, rpc: &str, result: Result<T, ServiceError>) -> Result<T, Status> {
        let code = match &result {
            Ok(_) => "OK",
            Err(e) => e.code_name(),
        };
        self.state
            .metrics
            .requests
            .with_label_values(&[rpc, code])
            .inc();
        result.map_err(|e| {
            if matches!(e, ServiceError::Internal(_)) {
                tracing::error!(rpc, error = ?e, "request failed");
            }
            e.into_status()
        })
    }
}

struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The deadline a client set with `grpc-timeout`.
fn deadline<T>(request: &Request<T>) -> Option<Instant> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (n, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    let d = match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    Some(Instant::now() + d)
}

/// A span for one call, carrying the caller's W3C trace id (from
/// `traceparent`) so logs can be joined with the caller's trace; with an
/// OTLP exporter the span is also a child of the caller's span.
fn rpc_span<T>(rpc: &'static str, request: &Request<T>) -> tracing::Span {
    let trace_id = crate::telemetry::trace_id(request.metadata()).unwrap_or("");
    let span = tracing::info_span!("rpc", rpc, trace_id);
    crate::telemetry::adopt_remote_parent(&span, request.metadata());
    span
}

fn error_result(id: String, e: ServiceError) -> proto::AnalyzeResult {
    let code = e.code_name().to_string();
    let message = e.into_status().message().to_string();
    proto::AnalyzeResult {
        id,
        outcome: Some(proto::analyze_result::Outcome::Error(proto::ArticleError {
            code,
            message,
        })),
    }
}

fn ok_result(r: proto::AnalyzeResponse) -> proto::AnalyzeResult {
    proto::AnalyzeResult {
        id: r.id.clone(),
        outcome: Some(proto::analyze_result::Outcome::Response(r)),
    }
}

#[tonic::async_trait]
impl proto::analyzer_server::Analyzer for AnalyzerService {
    async fn get_info(
        &self,
        _: Request<proto::GetInfoRequest>,
    ) -> Result<Response<proto::GetInfoResponse>, Status> {
        let result = self.state.engine().map(|engine| {
            let data = engine.data();
            let target = data.default_target();
            let l = &self.state.limits;
            proto::GetInfoResponse {
                model: Some(engine.encoder().info().into()),
                version: env!("CARGO_PKG_VERSION").to_string(),
                label_sets: data
                    .label_sets
                    .values()
                    .map(|s| proto::LabelSetInfo {
                        name: s.name.clone(),
                        multi_label: s.multi_label,
                        labels: s.labels.iter().map(|l| l.id.clone()).collect(),
                        description: s.description.clone(),
                    })
                    .collect(),
                default_label_set: data.default_label_set.clone(),
                default_target: target.id.clone(),
                default_target_description: target.description.clone(),
                default_focus: data.focus.description.clone(),
                limits: Some(proto::Limits {
                    max_message_bytes: l.max_message_bytes as u64,
                    max_article_bytes: l.max_article_bytes as u64,
                    max_batch_articles: l.max_batch_articles as u32,
                    max_inline_labels: l.max_inline_labels as u32,
                    max_target_chars: l.max_target_chars as u32,
                    max_embed_texts: l.max_embed_texts as u32,
                    max_stream_in_flight: l.max_stream_in_flight as u32,
                    max_queued_requests: l.max_queued as u32,
                }),
            }
        });
        self.record("GetInfo", result).map(Response::new)
    }

    async fn analyze(
        &self,
        request: Request<proto::AnalyzeRequest>,
    ) -> Result<Response<proto::AnalyzeResponse>, Status> {
        const RPC: &str = "Analyze";
        let deadline = deadline(&request);
        let span = rpc_span(RPC, &request);
        let r = request.into_inner();
        let state = self.state.clone();
        let result = async {
            let engine = state.engine()?;
            let input = convert::article(r.article, "article", &state.limits)?;
            let options = convert::options(
                r.options,
                "options",
                &state.limits,
                &Self::label_names(&engine),
            )?;
            let permit = state.admit(1)?;
            Self::run_one(state.clone(), engine, input, options, deadline, permit).await
        }
        .instrument(span)
        .await;
        self.record(RPC, result).map(Response::new)
    }

    async fn analyze_batch(
        &self,
        request: Request<proto::AnalyzeBatchRequest>,
    ) -> Result<Response<proto::AnalyzeBatchResponse>, Status> {
        const RPC: &str = "AnalyzeBatch";
        let deadline = deadline(&request);
        let span = rpc_span(RPC, &request);
        let r = request.into_inner();
        let state = self.state.clone();
        let result = async {
            let engine = state.engine()?;
            if r.articles.is_empty() || r.articles.len() > state.limits.max_batch_articles {
                return Err(ServiceError::Invalid {
                    field: "articles".into(),
                    message: format!(
                        "{} articles; give 1 to {}",
                        r.articles.len(),
                        state.limits.max_batch_articles
                    ),
                });
            }
            let options = convert::options(
                r.options,
                "options",
                &state.limits,
                &Self::label_names(&engine),
            )?;
            let mut permit = state.admit(r.articles.len())?;
            let mut tasks = Vec::with_capacity(r.articles.len());
            for (i, a) in r.articles.into_iter().enumerate() {
                let id = a.id.clone();
                let one = permit.split(1).expect("one permit per article");
                match convert::article(Some(a), &format!("articles[{i}]"), &state.limits) {
                    Ok(input) => {
                        let fut = Self::run_one(
                            state.clone(),
                            engine.clone(),
                            input,
                            options.clone(),
                            deadline,
                            one,
                        );
                        tasks.push((id, Some(tokio::spawn(fut.in_current_span())), None));
                    }
                    Err(e) => tasks.push((id, None, Some(e))),
                }
            }
            let mut results = Vec::with_capacity(tasks.len());
            for (id, task, err) in tasks {
                results.push(match (task, err) {
                    (Some(t), _) => match t.await {
                        Ok(Ok(r)) => ok_result(r),
                        Ok(Err(e)) => error_result(id, e),
                        Err(e) => error_result(id, ServiceError::Internal(e.to_string())),
                    },
                    (None, Some(e)) => error_result(id, e),
                    (None, None) => unreachable!("a task or an error"),
                });
            }
            Ok(proto::AnalyzeBatchResponse { results })
        }
        .instrument(span)
        .await;
        self.record(RPC, result).map(Response::new)
    }

    type AnalyzeStreamStream = ReceiverStream<Result<proto::AnalyzeResult, Status>>;

    async fn analyze_stream(
        &self,
        request: Request<Streaming<proto::AnalyzeStreamRequest>>,
    ) -> Result<Response<Self::AnalyzeStreamStream>, Status> {
        let state = self.state.clone();
        let engine = self.record("AnalyzeStream", state.engine())?;
        let span = rpc_span("AnalyzeStream", &request);
        let mut inbound = request.into_inner();
        let in_flight = Arc::new(Semaphore::new(state.limits.max_stream_in_flight));
        let (tx, rx) = mpsc::channel(state.limits.max_stream_in_flight * 2);
        let labels = Self::label_names(&engine);
        tokio::spawn(
            async move {
                let mut options = RunOptions::default();
                loop {
                    let message = match inbound.message().await {
                        Ok(Some(m)) => m,
                        Ok(None) => break,
                        Err(status) => {
                            tracing::debug!(%status, "stream ended by the client");
                            break;
                        }
                    };
                    // Backpressure: wait for a free slot of this stream.
                    let Ok(slot) = in_flight.clone().acquire_owned().await else {
                        break;
                    };
                    let id = message
                        .article
                        .as_ref()
                        .map(|a| a.id.clone())
                        .unwrap_or_default();
                    if message.options.is_some() {
                        match convert::options(message.options, "options", &state.limits, &labels) {
                            Ok(o) => options = o,
                            Err(e) => {
                                let _ = tx.send(Ok(error_result(id, e))).await;
                                continue;
                            }
                        }
                    }
                    let input = match convert::article(message.article, "article", &state.limits) {
                        Ok(i) => i,
                        Err(e) => {
                            let _ = tx.send(Ok(error_result(id, e))).await;
                            continue;
                        }
                    };
                    let permit = match state.admit(1) {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = tx.send(Ok(error_result(id, e))).await;
                            continue;
                        }
                    };
                    let (state, engine, options, tx) =
                        (state.clone(), engine.clone(), options.clone(), tx.clone());
                    tokio::spawn(
                        async move {
                            let _slot = slot;
                            let result =
                                match Self::run_one(state, engine, input, options, None, permit)
                                    .await
                                {
                                    Ok(r) => ok_result(r),
                                    Err(e) => error_result(id, e),
                                };
                            let _ = tx.send(Ok(result)).await;
                        }
                        .in_current_span(),
                    );
                }
            }
            .instrument(span),
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn embed(
        &self,
        request: Request<proto::EmbedRequest>,
    ) -> Result<Response<proto::EmbedResponse>, Status> {
        const RPC: &str = "Embed";
        let deadline = deadline(&request);
        let span = rpc_span(RPC, &request);
        let r = request.into_inner();
        let state = self.state.clone();
        let result = async {
            let engine = state.engine()?;
            let l = &state.limits;
            if r.texts.is_empty() || r.texts.len() > l.max_embed_texts {
                return Err(ServiceError::Invalid {
                    field: "texts".into(),
                    message: format!("{} texts; give 1 to {}", r.texts.len(), l.max_embed_texts),
                });
            }
            if let Some(i) = r.texts.iter().position(|t| t.len() > l.max_article_bytes) {
                return Err(ServiceError::Invalid {
                    field: format!("texts[{i}]"),
                    message: format!("longer than {} bytes", l.max_article_bytes),
                });
            }
            let kind = match proto::InputKind::try_from(r.kind) {
                Ok(proto::InputKind::Query) => InputKind::Query,
                Ok(_) => InputKind::Passage,
                Err(_) => {
                    return Err(ServiceError::Invalid {
                        field: "kind".into(),
                        message: format!("unknown input kind {}", r.kind),
                    });
                }
            };
            let permit = state.admit(1)?;
            let cancel = Arc::new(AtomicBool::new(false));
            let _guard = CancelOnDrop(cancel.clone());
            let texts = r.texts;
            let worker = engine.clone();
            let vectors = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let _scope = RequestScope::enter(cancel, deadline);
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                worker.encoder().embed(&refs, kind)
            })
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(|e| PipelineError::Internal(e.to_string()))?;
            Ok(proto::EmbedResponse {
                embeddings: vectors
                    .into_iter()
                    .map(|values| proto::Embedding { values })
                    .collect(),
                model_id: engine.encoder().info().id.clone(),
            })
        }
        .instrument(span)
        .await;
        self.record(RPC, result).map(Response::new)
    }
}
