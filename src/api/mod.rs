//! The transport-neutral core: every operation of the API (info, analyze,
//! batch, stream items, embed) over the loaded engine, with the limits,
//! admission in bytes and articles, deadlines and cancellation, API keys
//! and metrics that every door shares. The doors — gRPC
//! ([`crate::service`]) and HTTP/JSON (`crate::http`) — read their
//! transport, call [`Core`], and map a [`ServiceError`] to their own status
//! in one function each.

mod budget;
pub mod convert;

pub use budget::{Charge, DecodeBudget};

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use khulasa_analysis::AnalysisRequest;
use khulasa_embed::{EncodeError, InputKind, StopReason, StopToken};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::pipeline::{ArticleInput, ErrorCode, PipelineError, analyze_input};
use crate::proto;
use crate::record;
use crate::request::RequestLimits;

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
    /// No API key, or one this server does not accept.
    Unauthenticated(String),
    /// The request is larger than this server reads (before it is decoded).
    TooLarge(String),
}

impl ServiceError {
    /// Its code: what each door maps to its own status.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { .. } => ErrorCode::InvalidArgument,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Exhausted => ErrorCode::ResourceExhausted,
            Self::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            Self::Cancelled => ErrorCode::Cancelled,
            Self::Internal(_) => ErrorCode::Internal,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::TooLarge(_) => ErrorCode::ResourceExhausted,
        }
    }

    /// What a client is told, whatever the door.
    pub fn message(&self) -> String {
        match self {
            Self::Invalid { field, message } => format!("{field}: {message}"),
            Self::Unavailable(m)
            | Self::Internal(m)
            | Self::Unauthenticated(m)
            | Self::TooLarge(m) => m.clone(),
            Self::Exhausted => "the server is at capacity; retry with backoff".into(),
            Self::DeadlineExceeded => StopReason::DeadlineExceeded.to_string(),
            Self::Cancelled => StopReason::Cancelled.to_string(),
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

/// The core every door calls: the engine, the limits, admission and
/// metrics. Each operation takes a proto request and a deadline and
/// answers a proto response or a [`ServiceError`]; a door only reads its
/// transport (headers, body), calls it, and maps the error once.
pub struct Core {
    engine: OnceLock<(Arc<khulasa_analysis::Analyzer>, Option<Liveness>)>,
    limits: Limits,
    articles: Arc<Semaphore>,
    /// In KiB.
    bytes: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

/// Admission units of [`Core::bytes`].
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
    pub(crate) fn split(&mut self, kib: usize) -> Admitted {
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

impl Core {
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

    pub(crate) fn engine(&self) -> Result<Arc<khulasa_analysis::Analyzer>, ServiceError> {
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
    pub(crate) fn admit(
        &self,
        articles: usize,
        kib: usize,
        field: &str,
    ) -> Result<Admitted, ServiceError> {
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

/// Which door a call came through, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// gRPC ([`crate::service`]).
    Grpc,
    /// HTTP/JSON.
    Http,
}

impl Door {
    fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http",
        }
    }
}

/// Cancels the work of a call when the call's future is dropped (the client
/// went away, or the server gave up on it).
struct StopOnDrop(StopToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// The longest timeout a client may set through any door; longer ones
/// mean "no deadline" in practice and are capped here so arithmetic cannot
/// overflow.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The deadline of a call whose client allowed `timeout` from `arrived`
/// (when its headers came in), capped at [`MAX_TIMEOUT`].
pub fn deadline_after(arrived: Instant, timeout: Duration) -> Instant {
    arrived + timeout.min(MAX_TIMEOUT)
}

/// The API keys a server accepts; none means every call is let in.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys(HashSet<String>);

impl ApiKeys {
    /// Keys from a set (empty: no authentication).
    pub fn new(keys: HashSet<String>) -> Self {
        Self(keys)
    }

    /// Whether calls need a key at all.
    pub fn required(&self) -> bool {
        !self.0.is_empty()
    }

    /// Checks the value of an `authorization` header, whichever door it
    /// came through.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), ServiceError> {
        if self.0.is_empty() {
            return Ok(());
        }
        match authorization.map(|v| v.strip_prefix("Bearer ")) {
            Some(Some(k)) if self.0.contains(k) => Ok(()),
            Some(Some(_)) => Err(ServiceError::Unauthenticated("invalid API key".into())),
            _ => Err(ServiceError::Unauthenticated(
                "missing `authorization: Bearer <key>`".into(),
            )),
        }
    }
}

impl Core {
    /// The limits it enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Its metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Counts a finished call by door, operation and code, and logs an
    /// internal failure; the door then maps the error.
    pub fn finish<T>(
        &self,
        door: Door,
        rpc: &str,
        result: Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let code = match &result {
            Ok(_) => "OK",
            Err(e) => e.code().grpc_name(),
        };
        self.metrics
            .requests
            .with_label_values(&[door.as_str(), rpc, code])
            .inc();
        if let Err(e @ ServiceError::Internal(_)) = &result {
            tracing::error!(door = door.as_str(), rpc, error = ?e, "request failed");
        }
        result
    }

    /// The loaded label sets' names.
    pub(crate) fn label_names(engine: &khulasa_analysis::Analyzer) -> Vec<String> {
        engine.data().label_sets.keys().cloned().collect()
    }

    /// GetInfo: the model, label sets, defaults and limits.
    pub fn info(&self) -> Result<proto::GetInfoResponse, ServiceError> {
        let engine = self.engine()?;
        let data = engine.data();
        let target = data.default_target();
        let l = &self.limits;
        Ok(proto::GetInfoResponse {
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
        })
    }

    /// Analyze: one article.
    pub async fn analyze(
        self: &Arc<Self>,
        r: proto::AnalyzeRequest,
        deadline: Option<Instant>,
    ) -> Result<proto::AnalyzeResponse, ServiceError> {
        let engine = self.engine()?;
        let input = convert::article(r.article, "article", &self.limits)?;
        let options = convert::options(
            r.options,
            "options",
            &self.limits,
            &Self::label_names(&engine),
        )?;
        let admitted = self.admit_article(&input, &options)?;
        self.clone()
            .run_one(engine, input, options, deadline, admitted)
            .await
    }

    /// AnalyzeBatch: every article under the same options, each answered
    /// on its own (a bad article fails alone).
    pub async fn analyze_batch(
        self: &Arc<Self>,
        r: proto::AnalyzeBatchRequest,
        deadline: Option<Instant>,
    ) -> Result<proto::AnalyzeBatchResponse, ServiceError> {
        let engine = self.engine()?;
        if r.articles.is_empty() || r.articles.len() > self.limits.max_batch_articles {
            return Err(ServiceError::Invalid {
                field: "articles".into(),
                message: format!(
                    "{} articles; give 1 to {}",
                    r.articles.len(),
                    self.limits.max_batch_articles
                ),
            });
        }
        let options = convert::options(
            r.options,
            "options",
            &self.limits,
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
                    convert::article(Some(a), &format!("articles[{i}]"), &self.limits),
                )
            })
            .collect();
        let costs: Vec<usize> = inputs
            .iter()
            .map(|(_, a)| a.as_ref().map_or(0, |a| kib(cost::article(a))))
            .collect();
        let valid = inputs.iter().filter(|(_, a)| a.is_ok()).count();
        let mut admitted = self.admit(
            valid,
            costs.iter().sum::<usize>() + kib(cost::options(&options)),
            "articles",
        )?;
        // Every article runs as a task of this set: if the call is dropped
        // (client gone) or times out, the set is dropped and every
        // article's work is told to stop.
        let mut tasks = JoinSet::new();
        let mut results: Vec<Option<proto::AnalyzeResult>> = Vec::with_capacity(inputs.len());
        for (i, ((id, input), kib)) in inputs.into_iter().zip(costs).enumerate() {
            match input {
                Ok(input) => {
                    let fut = self.clone().run_one(
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

    /// Admits one article under `options`, or refuses at once.
    pub(crate) fn admit_article(
        &self,
        input: &ArticleInput,
        options: &AnalysisRequest,
    ) -> Result<Admitted, ServiceError> {
        let cost = kib(cost::article(input) + cost::options(options));
        self.admit(1, cost, "article")
    }

    /// Runs one admitted article on a blocking thread. If this future is
    /// dropped (the client cancelled) or the deadline passes, the work is
    /// told to stop and the admission is returned at once; the blocking
    /// thread stops at its next check (between stages and forward passes).
    pub(crate) async fn run_one(
        self: Arc<Self>,
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
                self.metrics
                    .stage_seconds
                    .with_label_values(&[stage])
                    .observe(ms / 1e3);
            }
        }
        Ok(response)
    }

    /// Embed: vectors for texts.
    pub async fn embed(
        &self,
        r: proto::EmbedRequest,
        deadline: Option<Instant>,
    ) -> Result<proto::EmbedResponse, ServiceError> {
        let engine = self.engine()?;
        let l = &self.limits;
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
        let _admitted = self.admit(1, kib(bytes.max(cost::MIN_ARTICLE)), "texts")?;
        let stop = StopToken::new(deadline);
        let _guard = StopOnDrop(stop.clone());
        let texts = r.texts;
        let worker = engine.clone();
        let max_tokens = l.max_embed_tokens;
        let job = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            // Bytes are a poor measure of cost for text where a byte or two
            // is a token: counted first (tokenizing is cheap).
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

/// An item that failed, as its result record.
pub(crate) fn error_result(id: String, e: ServiceError) -> proto::AnalyzeResult {
    record::failed(id, e.code(), e.message())
}

/// One item of a stream or batch: its result once run.
pub(crate) fn outcome(
    id: String,
    result: Result<proto::AnalyzeResponse, ServiceError>,
) -> proto::AnalyzeResult {
    match result {
        Ok(r) => record::ok(r),
        Err(e) => error_result(id, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_checked_the_same_for_every_door() {
        let open = ApiKeys::default();
        assert!(open.check(None).is_ok());
        let keys = ApiKeys::new(["k1".to_string()].into());
        assert!(keys.check(Some("Bearer k1")).is_ok());
        for bad in [None, Some("Bearer k2"), Some("k1"), Some("Basic k1")] {
            let e = keys.check(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::Unauthenticated, "{bad:?}");
        }
    }

    #[test]
    fn timeouts_are_capped_at_a_day() {
        let now = Instant::now();
        assert_eq!(
            deadline_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(deadline_after(now, Duration::MAX), now + MAX_TIMEOUT);
    }

    #[test]
    fn admission_counts_bytes_and_returns_them_when_dropped() {
        let metrics = Arc::new(Metrics::new());
        let limits = Limits {
            max_queued: 10,
            max_queued_bytes: 64 << 10,
            ..Limits::default()
        };
        let state = Core::new(limits, metrics.clone());
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
