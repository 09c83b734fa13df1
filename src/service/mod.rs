//! The gRPC service: `khulasa.v1.Analyzer` over the pipeline, with dynamic
//! batching (`khulasa-batch`), admission control, limits, deadlines and
//! cancellation, health, reflection, metrics ([`metrics`]), API keys and
//! graceful shutdown ([`server`]).
//!
//! Every failure is mapped to a gRPC status in one place,
//! [`ServiceError::into_status`]; bad input carries `google.rpc.BadRequest`
//! field violations.

pub mod codec;
pub mod convert;
pub mod metrics;
pub mod server;
pub mod wire;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use khulasa_analysis::AnalysisRequest;
use khulasa_embed::{EncodeError, InputKind, StopReason, StopToken};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::Instrument;

use crate::pipeline::{ArticleInput, ErrorCode, PipelineError, analyze_input};
use crate::proto;
use crate::record;
use crate::request::RequestLimits;
use metrics::Metrics;

/// Limits enforced on requests.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request message in bytes (checked on the length prefix,
    /// before the message is read).
    pub max_message_bytes: usize,
    /// Largest response message in bytes.
    pub max_response_bytes: usize,
    /// Largest article in bytes.
    pub max_article_bytes: usize,
    /// Longest title in characters.
    pub max_title_chars: usize,
    /// Most articles per AnalyzeBatch.
    pub max_batch_articles: usize,
    /// Most labels in an inline label set.
    pub max_inline_labels: usize,
    /// Most bytes of descriptions and examples in an inline label set.
    pub max_inline_label_set_bytes: usize,
    /// Longest target or focus in characters.
    pub max_target_chars: usize,
    /// Most texts per Embed.
    pub max_embed_texts: usize,
    /// Most model tokens per Embed call (before windowing).
    pub max_embed_tokens: usize,
    /// Most articles of one stream in work at once.
    pub max_stream_in_flight: usize,
    /// Articles (and Embed calls) admitted, queued or running, before
    /// RESOURCE_EXHAUSTED.
    pub max_queued: usize,
    /// Bytes of work admitted, queued or running, before RESOURCE_EXHAUSTED
    /// (see [`cost`]).
    pub max_queued_bytes: usize,
    /// Largest summary length a request may ask for.
    pub max_summary_sentences: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let r = RequestLimits::default();
        Self {
            max_message_bytes: 8 << 20,
            max_response_bytes: 64 << 20,
            max_article_bytes: r.max_article_bytes,
            max_title_chars: r.max_title_chars,
            max_batch_articles: 64,
            max_inline_labels: r.max_inline_labels,
            max_inline_label_set_bytes: r.max_inline_label_set_bytes,
            max_target_chars: r.max_target_chars,
            max_embed_texts: 256,
            // About 30 s of encoder time on 2 cores.
            max_embed_tokens: 128 << 10,
            max_stream_in_flight: 8,
            max_queued: 64,
            // On 2 cores the pipeline reads ~50-100 KB of article text a
            // second, so a full queue is a few minutes of work at most.
            max_queued_bytes: 16 << 20,
            max_summary_sentences: r.max_summary_sentences,
        }
    }
}

impl Limits {
    /// The bounds on one article and its options.
    pub fn request(&self) -> RequestLimits {
        RequestLimits {
            max_article_bytes: self.max_article_bytes,
            max_title_chars: self.max_title_chars,
            max_target_chars: self.max_target_chars,
            max_summary_sentences: self.max_summary_sentences,
            max_inline_labels: self.max_inline_labels,
            max_inline_label_set_bytes: self.max_inline_label_set_bytes,
        }
    }
}

/// What requests cost in admission: bytes of the text the pipeline reads.
pub mod cost {
    use crate::pipeline::ArticleInput;
    use khulasa_analysis::{AnalysisRequest, LabelSetChoice};

    /// An article costs at least this much: even a tiny one takes a
    /// cleaning pass, a handful of encoder calls and a blocking thread.
    pub const MIN_ARTICLE: usize = 4 << 10;

    /// Bytes of an article's content, title and per-article options.
    pub fn article(a: &ArticleInput) -> usize {
        let len = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        (len(&a.text)
            + len(&a.html)
            + len(&a.title)
            + len(&a.target)
            + len(&a.focus)
            + len(&a.label_set))
        .max(MIN_ARTICLE)
    }

    /// Bytes of the options' free text: target, focus and an inline label
    /// set's descriptions and examples (embedded when first seen).
    pub fn options(o: &AnalysisRequest) -> usize {
        let labels = match &o.label_set {
            LabelSetChoice::Inline(set) => set
                .labels
                .iter()
                .flat_map(|l| l.description.iter().chain(&l.examples))
                .map(String::len)
                .sum(),
            _ => 0,
        };
        labels + o.target.as_ref().map_or(0, String::len) + focus_len(o)
    }

    fn focus_len(o: &AnalysisRequest) -> usize {
        match &o.focus {
            khulasa_analysis::FocusChoice::Text(t) => t.len(),
            _ => 0,
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
    /// The client cancelled.
    Cancelled,
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
                Status::deadline_exceeded(StopReason::DeadlineExceeded.to_string())
            }
            Self::Cancelled => Status::cancelled(StopReason::Cancelled.to_string()),
            Self::Internal(m) => Status::internal(m),
        }
    }

    /// Its code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { .. } => ErrorCode::InvalidArgument,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Exhausted => ErrorCode::ResourceExhausted,
            Self::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            Self::Cancelled => ErrorCode::Cancelled,
            Self::Internal(_) => ErrorCode::Internal,
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
            PipelineError::Stopped(r) => r.into(),
            PipelineError::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<StopReason> for ServiceError {
    fn from(r: StopReason) -> Self {
        match r {
            StopReason::Cancelled => Self::Cancelled,
            StopReason::DeadlineExceeded => Self::DeadlineExceeded,
        }
    }
}

/// What a service needs of its engine besides the analyzer: whether the
/// inference thread still runs.
pub use khulasa_batch::Liveness;

/// Shared state of the service.
pub struct State {
    engine: OnceLock<(Arc<khulasa_analysis::Analyzer>, Option<Liveness>)>,
    limits: Limits,
    articles: Arc<Semaphore>,
    /// In KiB.
    bytes: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

/// Admission units of [`State::bytes`].
const KIB: usize = 1024;

/// An admitted request's share of the queue, returned when dropped (when
/// the work ends, or the call is cancelled or times out).
pub struct Admitted {
    articles: OwnedSemaphorePermit,
    kib: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
    counted: i64,
}

impl Admitted {
    /// Splits off one article costing `kib` units (as admitted).
    fn split(&mut self, kib: usize) -> Admitted {
        let one = Admitted {
            articles: self
                .articles
                .split(1)
                .expect("one permit per article admitted"),
            kib: self
                .kib
                .split(kib)
                .expect("the article's cost was admitted"),
            metrics: self.metrics.clone(),
            counted: 1,
        };
        self.counted -= 1;
        one
    }
}

/// Admission units (KiB, rounded up) of `bytes`.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(KIB)
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.metrics.queue_depth.sub(self.counted);
        self.metrics
            .queued_bytes
            .sub((self.kib.num_permits() * KIB) as i64);
    }
}

impl State {
    /// A service with no model yet; [`State::set_engine`] makes it serve.
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> Self {
        Self {
            engine: OnceLock::new(),
            articles: Arc::new(Semaphore::new(limits.max_queued.max(1))),
            bytes: Arc::new(Semaphore::new(
                limits
                    .max_queued_bytes
                    .div_ceil(KIB)
                    .clamp(1, u32::MAX as usize),
            )),
            limits,
            metrics,
        }
    }

    /// Installs the loaded analyzer; `alive`, when given, says whether its
    /// inference thread still runs.
    pub fn set_engine(&self, analyzer: Arc<khulasa_analysis::Analyzer>, alive: Option<Liveness>) {
        let _ = self.engine.set((analyzer, alive));
    }

    /// Whether the engine is loaded and its inference thread alive.
    pub fn healthy(&self) -> bool {
        self.engine
            .get()
            .is_some_and(|(_, alive)| alive.as_ref().is_none_or(|a| a()))
    }

    fn engine(&self) -> Result<Arc<khulasa_analysis::Analyzer>, ServiceError> {
        match self.engine.get() {
            None => Err(ServiceError::Unavailable(
                "the model is still loading".into(),
            )),
            Some((_, Some(alive))) if !alive() => Err(ServiceError::Unavailable(
                "the inference engine has stopped; this server must be restarted".into(),
            )),
            Some((engine, _)) => Ok(engine.clone()),
        }
    }

    /// Admits `articles` items costing `kib` units in all (see [`kib`]),
    /// or refuses at once: RESOURCE_EXHAUSTED when the queue is full,
    /// INVALID_ARGUMENT (on `field`) when the request alone is more than
    /// the whole queue.
    fn admit(&self, articles: usize, kib: usize, field: &str) -> Result<Admitted, ServiceError> {
        let kib = kib.max(1);
        let capacity = self.limits.max_queued_bytes.div_ceil(KIB);
        if kib > capacity || articles > self.limits.max_queued {
            return Err(ServiceError::Invalid {
                field: field.to_string(),
                message: format!(
                    "the request costs {articles} articles and {} KiB of text; this server \
                     admits at most {} articles and {capacity} KiB at once: split it",
                    kib, self.limits.max_queued
                ),
            });
        }
        let a = self
            .articles
            .clone()
            .try_acquire_many_owned(articles as u32)
            .map_err(|_| ServiceError::Exhausted)?;
        let k = self
            .bytes
            .clone()
            .try_acquire_many_owned(kib as u32)
            .map_err(|_| ServiceError::Exhausted)?;
        self.metrics.queue_depth.add(articles as i64);
        self.metrics.queued_bytes.add((kib * KIB) as i64);
        Ok(Admitted {
            articles: a,
            kib: k,
            metrics: self.metrics.clone(),
            counted: articles as i64,
        })
    }
}

/// The `khulasa.v1.Analyzer` implementation.
#[derive(Clone)]
pub struct AnalyzerService {
    state: Arc<State>,
}

/// Cancels the work of a call when the call's future is dropped (the client
/// went away, or the server gave up on it).
struct StopOnDrop(StopToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl AnalyzerService {
    /// A service over `state`.
    pub fn new(state: Arc<State>) -> Self {
        Self { state }
    }

    fn label_names(engine: &khulasa_analysis::Analyzer) -> Vec<String> {
        engine.data().label_sets.keys().cloned().collect()
    }

    /// Runs one admitted article on a blocking thread. If this future is
    /// dropped (the client cancelled) or the deadline passes, the work is
    /// told to stop and the admission is returned at once; the blocking
    /// thread stops at its next check (between stages and forward passes).
    async fn run_one(
        state: Arc<State>,
        engine: Arc<khulasa_analysis::Analyzer>,
        input: ArticleInput,
        options: AnalysisRequest,
        deadline: Option<Instant>,
        admitted: Admitted,
    ) -> Result<proto::AnalyzeResponse, ServiceError> {
        let _admitted = admitted;
        let started = Instant::now();
        let stop = StopToken::new(deadline);
        let _guard = StopOnDrop(stop.clone());
        let metrics = state.metrics.clone();
        let span = tracing::info_span!("article", id = %input.id);
        let job = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let analyzed = analyze_input(&engine, &input, &options, &stop)?;
            let timings = record::timings(&analyzed, &stop, started);
            Ok::<_, ServiceError>(record::analyzed(
                analyzed,
                &engine.encoder().info().id,
                timings,
            ))
        });
        let result = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), job).await {
                Ok(joined) => joined,
                Err(_) => return Err(ServiceError::DeadlineExceeded),
            },
            None => job.await,
        };
        let response =
            result.map_err(|e| ServiceError::Internal(panic_message("the analysis", e)))??;
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
        record(&self.state.metrics, rpc, result)
    }
}

fn record<T>(metrics: &Metrics, rpc: &str, result: Result<T, ServiceError>) -> Result<T, Status> {
    let code = match &result {
        Ok(_) => "OK",
        Err(e) => e.code().grpc_name(),
    };
    metrics.requests.with_label_values(&[rpc, code]).inc();
    result.map_err(|e| {
        if matches!(e, ServiceError::Internal(_)) {
            tracing::error!(rpc, error = ?e, "request failed");
        }
        e.into_status()
    })
}

/// What a failed blocking task says: its panic message, if it panicked.
fn panic_message(what: &str, e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        let panic = e.into_panic();
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic = %text, "{what} panicked");
        format!("{what} failed unexpectedly (a bug; it has been logged)")
    } else {
        format!("{what} was stopped")
    }
}

/// The longest `grpc-timeout` honoured; longer ones mean "no deadline"
/// in practice and are capped here so arithmetic cannot overflow.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The deadline a client set with `grpc-timeout` (gRPC over HTTP/2: at most
/// 8 digits and a unit). A malformed value is ignored, as the spec says;
/// an absurdly long one is capped at a day. It counts from the moment the
/// headers arrived ([`wire::Arrived`]), so it passes no later than tonic's
/// own timer for the same header and the client hears DEADLINE_EXCEEDED.
fn deadline<T>(request: &Request<T>) -> Option<Instant> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let arrived = request
        .extensions()
        .get::<wire::Arrived>()
        .map_or_else(Instant::now, |a| a.0);
    parse_timeout(value).map(|d| arrived + d.min(MAX_TIMEOUT))
}

fn parse_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 || !value.is_char_boundary(value.len() - 1) {
        return None;
    }
    let (n, unit) = value.split_at(value.len() - 1);
    if !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
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
    let code = e.code();
    record::failed(id, code, e.into_status().message().to_string())
}

/// One item of a stream or batch: its result once run.
fn outcome(
    id: String,
    result: Result<proto::AnalyzeResponse, ServiceError>,
) -> proto::AnalyzeResult {
    match result {
        Ok(r) => record::ok(r),
        Err(e) => error_result(id, e),
    }
}

/// A status from reading a stream's next message: decode failures are the
/// client's (INVALID_ARGUMENT); see [`wire::client_fault`].
fn inbound_status(status: Status) -> Status {
    wire::client_fault(status)
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
                    max_embed_tokens: l.max_embed_tokens as u64,
                    max_article_tokens: khulasa_analysis::MAX_ARTICLE_TOKENS as u32,
                    max_stream_in_flight: l.max_stream_in_flight as u32,
                    max_queued_requests: l.max_queued as u32,
                    max_queued_bytes: l.max_queued_bytes as u64,
                    max_sentences_per_article: khulasa_text::CleanLimits::default().max_sentences
                        as u32,
                    max_summary_sentences: l.max_summary_sentences as u32,
                    max_title_chars: l.max_title_chars as u32,
                    max_inline_label_set_bytes: l.max_inline_label_set_bytes as u64,
                    max_response_bytes: l.max_response_bytes as u64,
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
            let cost = kib(cost::article(&input) + cost::options(&options));
            let admitted = state.admit(1, cost, "article")?;
            Self::run_one(state.clone(), engine, input, options, deadline, admitted).await
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
            let inputs: Vec<(String, Result<ArticleInput, ServiceError>)> = r
                .articles
                .into_iter()
                .enumerate()
                .map(|(i, a)| {
                    let id = a.id.clone();
                    (
                        id,
                        convert::article(Some(a), &format!("articles[{i}]"), &state.limits),
                    )
                })
                .collect();
            let costs: Vec<usize> = inputs
                .iter()
                .map(|(_, a)| a.as_ref().map_or(0, |a| kib(cost::article(a))))
                .collect();
            let valid = inputs.iter().filter(|(_, a)| a.is_ok()).count();
            let mut admitted = state.admit(
                valid,
                costs.iter().sum::<usize>() + kib(cost::options(&options)),
                "articles",
            )?;
            // Every article runs as a task of this set: if the call is
            // dropped (client gone) or times out, the set is dropped and
            // every article's work is told to stop.
            let mut tasks = JoinSet::new();
            let mut results: Vec<Option<proto::AnalyzeResult>> = Vec::with_capacity(inputs.len());
            for (i, ((id, input), kib)) in inputs.into_iter().zip(costs).enumerate() {
                match input {
                    Ok(input) => {
                        let fut = Self::run_one(
                            state.clone(),
                            engine.clone(),
                            input,
                            options.clone(),
                            deadline,
                            admitted.split(kib),
                        );
                        tasks.spawn(async move { (i, outcome(id, fut.await)) }.in_current_span());
                        results.push(None);
                    }
                    Err(e) => results.push(Some(error_result(id, e))),
                }
            }
            while let Some(done) = tasks.join_next().await {
                match done {
                    Ok((i, result)) => results[i] = Some(result),
                    Err(e) => {
                        return Err(ServiceError::Internal(panic_message(
                            "an article's task",
                            e,
                        )));
                    }
                }
            }
            Ok(proto::AnalyzeBatchResponse {
                results: results
                    .into_iter()
                    .map(|r| r.expect("every article has a result"))
                    .collect(),
            })
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
        let deadline = deadline(&request);
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(state.limits.max_stream_in_flight * 2);
        tokio::spawn(stream_items(state, engine, inbound, deadline, tx).instrument(span));
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
            let bytes: usize = r.texts.iter().map(String::len).sum();
            let _admitted = state.admit(1, kib(bytes.max(cost::MIN_ARTICLE)), "texts")?;
            let stop = StopToken::new(deadline);
            let _guard = StopOnDrop(stop.clone());
            let texts = r.texts;
            let worker = engine.clone();
            let max_tokens = l.max_embed_tokens;
            let job = tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                // Bytes are a poor measure of cost for text where a byte or
                // two is a token: counted first (tokenizing is cheap).
                let tokens: usize = refs
                    .iter()
                    .map(|t| {
                        worker
                            .encoder()
                            .count_tokens(t, kind)
                            .unwrap_or(t.len() / 4)
                    })
                    .sum();
                if tokens > max_tokens {
                    return Err(ServiceError::Invalid {
                        field: "texts".into(),
                        message: format!(
                            "{tokens} model tokens; at most {max_tokens} per call: split it"
                        ),
                    });
                }
                worker
                    .encoder()
                    .embed_until(&refs, kind, &stop)
                    .map_err(|e| match e {
                        EncodeError::Stopped(r) => ServiceError::from(r),
                        other => ServiceError::Internal(other.to_string()),
                    })
            });
            let joined = match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), job)
                    .await
                    .map_err(|_| ServiceError::DeadlineExceeded)?,
                None => job.await,
            };
            let vectors =
                joined.map_err(|e| ServiceError::Internal(panic_message("embedding", e)))??;
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

/// The work of one AnalyzeStream: reads articles as slots free up (at most
/// `max_stream_in_flight` in work), runs each as a task of one set, and
/// sends each result as it is ready. If the client goes away (its side
/// errors or the response stream is dropped) or the stream's deadline
/// passes, the set is dropped and every article's work told to stop; when
/// the client half-closes, the articles in work finish first.
async fn stream_items(
    state: Arc<State>,
    engine: Arc<khulasa_analysis::Analyzer>,
    mut inbound: Streaming<proto::AnalyzeStreamRequest>,
    deadline: Option<Instant>,
    tx: mpsc::Sender<Result<proto::AnalyzeResult, Status>>,
) {
    let in_flight = Arc::new(Semaphore::new(state.limits.max_stream_in_flight));
    let labels = AnalyzerService::label_names(&engine);
    let mut options = AnalysisRequest::default();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let expired = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    loop {
        // Reap finished items so the set stays small.
        while tasks.try_join_next().is_some() {}
        let slot = tokio::select! {
            () = tx.closed() => return,
            () = &mut expired => break,
            slot = in_flight.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => return,
            },
        };
        let message = tokio::select! {
            () = tx.closed() => return,
            () = &mut expired => break,
            m = inbound.message() => m,
        };
        let message = match message {
            Ok(Some(m)) => m,
            Ok(None) => {
                // Half-closed: finish what is in work, unless the client
                // goes away or the deadline passes meanwhile.
                tokio::select! {
                    () = tx.closed() => {}
                    () = &mut expired => {
                        let _ = tx.send(Err(ServiceError::DeadlineExceeded.into_status())).await;
                    }
                    () = async { while tasks.join_next().await.is_some() {} } => {}
                }
                return;
            }
            Err(status) => {
                tracing::debug!(%status, "stream ended by the client");
                let _ = tx.send(Err(inbound_status(status))).await;
                return;
            }
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
        let cost = kib(cost::article(&input) + cost::options(&options));
        let admitted = match state.admit(1, cost, "article") {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Ok(error_result(id, e))).await;
                continue;
            }
        };
        let (state, engine, options, tx) =
            (state.clone(), engine.clone(), options.clone(), tx.clone());
        tasks.spawn(
            async move {
                let _slot = slot;
                let result =
                    AnalyzerService::run_one(state, engine, input, options, deadline, admitted)
                        .await;
                let _ = tx.send(Ok(outcome(id, result))).await;
            }
            .in_current_span(),
        );
    }
    // The deadline passed: the set is dropped below, stopping every article.
    let _ = tx
        .send(Err(ServiceError::DeadlineExceeded.into_status()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_within_the_spec_and_never_overflow() {
        let check = |v: &str, want: Option<Duration>| assert_eq!(parse_timeout(v), want, "{v}");
        check("5S", Some(Duration::from_secs(5)));
        check("250m", Some(Duration::from_millis(250)));
        check("99999999H", Some(Duration::from_secs(99_999_999 * 3600)));
        check("7n", Some(Duration::from_nanos(7)));
        // Regression: 20 digits were parsed and overflowed `Instant + Duration`.
        check("18446744073709551615S", None);
        check("123456789S", None);
        check("S", None);
        check("", None);
        check("-5S", None);
        check("+5S", None);
        check("5s", None);
        check("5é", None);
        let far = deadline(&{
            let mut r = Request::new(());
            r.metadata_mut()
                .insert("grpc-timeout", "99999999H".parse().unwrap());
            r
        });
        assert!(far.is_some_and(|d| d <= Instant::now() + MAX_TIMEOUT));
    }

    #[test]
    fn admission_counts_bytes_and_returns_them_when_dropped() {
        let metrics = Arc::new(Metrics::new());
        let limits = Limits {
            max_queued: 10,
            max_queued_bytes: 64 << 10,
            ..Limits::default()
        };
        let state = State::new(limits, metrics.clone());
        let a = state.admit(1, 40, "article").unwrap();
        assert!(matches!(
            state.admit(1, 30, "article"),
            Err(ServiceError::Exhausted)
        ));
        let b = state.admit(1, 20, "article").unwrap();
        assert_eq!(metrics.queue_depth.get(), 2);
        assert_eq!(metrics.queued_bytes.get(), 60 << 10);
        drop(a);
        assert_eq!(metrics.queue_depth.get(), 1);
        assert_eq!(metrics.queued_bytes.get(), 20 << 10);
        // More than the whole queue can never be admitted: the client must
        // split it, so it is told so rather than to retry.
        assert!(matches!(
            state.admit(1, 65, "articles"),
            Err(ServiceError::Invalid { .. })
        ));
        drop(b);
        let mut batch = state.admit(3, 3 + 2 + 1 + 4, "articles").unwrap();
        let one = batch.split(3);
        let two = batch.split(2);
        assert_eq!(metrics.queue_depth.get(), 3);
        drop(one);
        assert_eq!(metrics.queue_depth.get(), 2);
        assert_eq!(metrics.queued_bytes.get(), 7 << 10);
        drop(batch);
        drop(two);
        assert_eq!(
            (metrics.queue_depth.get(), metrics.queued_bytes.get()),
            (0, 0)
        );
    }
}
