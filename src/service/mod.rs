//! The gRPC door: `khulasa.v1.Analyzer` over the [`Core`], with the
//! transport's own parts — `grpc-timeout` deadlines, the decode budget and
//! connection limit ([`wire`]), health, reflection, API keys and graceful
//! shutdown ([`server`]).
//!
//! Every failure is mapped to a gRPC status in one place, [`status`]; bad
//! input carries `google.rpc.BadRequest` field violations.

pub mod codec;
pub mod server;
pub mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use khulasa_analysis::AnalysisRequest;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::Instrument;

use crate::api::{self, Core, Door, ServiceError, convert, error_result, outcome};
use crate::proto;

/// The one mapping from the core's errors to gRPC statuses.
pub fn status(e: ServiceError) -> Status {
    let message = e.message();
    match e {
        ServiceError::Invalid { field, message: m } => Status::with_error_details(
            Code::InvalidArgument,
            message,
            ErrorDetails::with_bad_request_violation(field, m),
        ),
        ServiceError::Unavailable(_) => Status::unavailable(message),
        ServiceError::Exhausted | ServiceError::TooLarge(_) => Status::resource_exhausted(message),
        ServiceError::DeadlineExceeded => Status::deadline_exceeded(message),
        ServiceError::Cancelled => Status::cancelled(message),
        ServiceError::Internal(_) => Status::internal(message),
        ServiceError::Unauthenticated(_) => Status::unauthenticated(message),
    }
}

/// The `khulasa.v1.Analyzer` implementation.
#[derive(Clone)]
pub struct AnalyzerService {
    core: Arc<Core>,
}

impl AnalyzerService {
    /// A service over `core`.
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Counts the call and maps its error.
    fn finish<T>(&self, rpc: &str, result: Result<T, ServiceError>) -> Result<Response<T>, Status> {
        self.core
            .finish(Door::Grpc, rpc, result)
            .map(Response::new)
            .map_err(status)
    }
}

/// The deadline a client set with `grpc-timeout` (gRPC over HTTP/2: at most
/// 8 digits and a unit). A malformed value is ignored, as the spec says;
/// an absurdly long one is capped at a day ([`api::MAX_TIMEOUT`]). It counts from the moment the
/// headers arrived ([`wire::Arrived`]), so it passes no later than tonic's
/// own timer for the same header and the client hears DEADLINE_EXCEEDED.
fn deadline<T>(request: &Request<T>) -> Option<Instant> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let arrived = request
        .extensions()
        .get::<wire::Arrived>()
        .map_or_else(Instant::now, |a| a.0);
    parse_timeout(value).map(|d| api::deadline_after(arrived, d))
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
    let headers = request.metadata().as_ref();
    let trace_id = crate::telemetry::trace_id(headers).unwrap_or("");
    let span = tracing::info_span!("rpc", door = "grpc", rpc, trace_id);
    crate::telemetry::adopt_remote_parent(&span, headers);
    span
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
        self.finish("GetInfo", self.core.info())
    }

    async fn analyze(
        &self,
        request: Request<proto::AnalyzeRequest>,
    ) -> Result<Response<proto::AnalyzeResponse>, Status> {
        const RPC: &str = "Analyze";
        let deadline = deadline(&request);
        let span = rpc_span(RPC, &request);
        let result = self
            .core
            .analyze(request.into_inner(), deadline)
            .instrument(span)
            .await;
        self.finish(RPC, result)
    }

    async fn analyze_batch(
        &self,
        request: Request<proto::AnalyzeBatchRequest>,
    ) -> Result<Response<proto::AnalyzeBatchResponse>, Status> {
        const RPC: &str = "AnalyzeBatch";
        let deadline = deadline(&request);
        let span = rpc_span(RPC, &request);
        let result = self
            .core
            .analyze_batch(request.into_inner(), deadline)
            .instrument(span)
            .await;
        self.finish(RPC, result)
    }

    type AnalyzeStreamStream = ReceiverStream<Result<proto::AnalyzeResult, Status>>;

    async fn analyze_stream(
        &self,
        request: Request<Streaming<proto::AnalyzeStreamRequest>>,
    ) -> Result<Response<Self::AnalyzeStreamStream>, Status> {
        let core = self.core.clone();
        let engine = core
            .finish(Door::Grpc, "AnalyzeStream", core.engine())
            .map_err(status)?;
        let span = rpc_span("AnalyzeStream", &request);
        let deadline = deadline(&request);
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(core.limits().max_stream_in_flight * 2);
        tokio::spawn(stream_items(core, engine, inbound, deadline, tx).instrument(span));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn embed(
        &self,
        request: Request<proto::EmbedRequest>,
    ) -> Result<Response<proto::EmbedResponse>, Status> {
        const RPC: &str = "Embed";
        let deadline = deadline(&request);
        let span = rpc_span(RPC, &request);
        let result = self
            .core
            .embed(request.into_inner(), deadline)
            .instrument(span)
            .await;
        self.finish(RPC, result)
    }
}

/// The work of one AnalyzeStream: reads articles as slots free up (at most
/// `max_stream_in_flight` in work), runs each as a task of one set, and
/// sends each result as it is ready. If the client goes away (its side
/// errors or the response stream is dropped) or the stream's deadline
/// passes, the set is dropped and every article's work told to stop; when
/// the client half-closes, the articles in work finish first.
async fn stream_items(
    core: Arc<Core>,
    engine: Arc<khulasa_analysis::Analyzer>,
    mut inbound: Streaming<proto::AnalyzeStreamRequest>,
    deadline: Option<Instant>,
    tx: mpsc::Sender<Result<proto::AnalyzeResult, Status>>,
) {
    let in_flight = Arc::new(Semaphore::new(core.limits().max_stream_in_flight));
    let labels = Core::label_names(&engine);
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
                        let _ = tx.send(Err(status(ServiceError::DeadlineExceeded))).await;
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
            match convert::options(message.options, "options", core.limits(), &labels) {
                Ok(o) => options = o,
                Err(e) => {
                    let _ = tx.send(Ok(error_result(id, e))).await;
                    continue;
                }
            }
        }
        let input = match convert::article(message.article, "article", core.limits()) {
            Ok(i) => i,
            Err(e) => {
                let _ = tx.send(Ok(error_result(id, e))).await;
                continue;
            }
        };
        let admitted = match core.admit_article(&input, &options) {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Ok(error_result(id, e))).await;
                continue;
            }
        };
        let (core, engine, options, tx) =
            (core.clone(), engine.clone(), options.clone(), tx.clone());
        tasks.spawn(
            async move {
                let _slot = slot;
                let result = core
                    .run_one(engine, input, options, deadline, admitted)
                    .await;
                let _ = tx.send(Ok(outcome(id, result))).await;
            }
            .in_current_span(),
        );
    }
    // The deadline passed: the set is dropped below, stopping every article.
    let _ = tx.send(Err(status(ServiceError::DeadlineExceeded))).await;
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
        assert!(far.is_some_and(|d| d <= Instant::now() + api::MAX_TIMEOUT));
    }
}
