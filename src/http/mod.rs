//! The HTTP/JSON door: the same operations as gRPC over the same [`Core`],
//! for systems that speak HTTP and JSON (CMS plugins, notebooks, browser
//! tools).
//!
//! Bodies are the proto messages in their canonical JSON mapping (the
//! serde impls `build.rs` generates), so one contract serves both doors
//! and `khulasa analyze` writes the same records. This module only reads
//! HTTP — the API key from `authorization`, the deadline from
//! `x-request-timeout` or `?timeout=`, the body under the shared
//! [`DecodeBudget`], `traceparent` — and maps a [`ServiceError`] to an
//! HTTP status in one function, [`error_response`]. Validation, limits,
//! admission and metrics are the core's.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/analyze` | `AnalyzeRequest` | `AnalyzeResponse` |
//! | `POST /v1/analyze:batch` | `AnalyzeBatchRequest` | `AnalyzeBatchResponse` |
//! | `POST /v1/embed` | `EmbedRequest` | `EmbedResponse` |
//! | `GET /v1/info` | – | `GetInfoResponse` |
//! | `POST /v1/ninjs:analyze` | `{"item": ninjs, "options"?: AnalyzeOptions}` | `{"item": ninjs with subjects, "analysis": AnalyzeResponse}` |
//! | `GET /health/live` | – | `{"status": "SERVING"}` while the process serves |
//! | `GET /health/ready` | – | the gRPC health state: 200 SERVING, else 503 |
//! | `GET /openapi.json` | – | the OpenAPI 3.1 document ([`openapi`]) |
//! | `GET /` | – | the editor's page (`page/`, compiled in: no CDN, works offline) |

pub mod openapi;
pub mod serve;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::api::{self, ApiKeys, Core, DecodeBudget, Door, ServiceError};
use crate::proto;

pub use serve::{HttpConfig, serve, tls_acceptor};

/// The header a client sets its deadline with (also `?timeout=`): digits
/// and a unit, `ms`, `s`, `m` or `h` (`30s`, `1500ms`).
pub const TIMEOUT_HEADER: &str = "x-request-timeout";

/// What the handlers share.
pub struct HttpState {
    core: Arc<Core>,
    keys: Arc<ApiKeys>,
    budget: Arc<DecodeBudget>,
    ready: Arc<AtomicBool>,
    request_timeout: Duration,
}

impl HttpState {
    /// Handlers over `core`: `keys` as gRPC takes them, request bodies
    /// charged to `budget` (shared with gRPC), `ready` the health state,
    /// and no call longer than `request_timeout`.
    pub fn new(
        core: Arc<Core>,
        keys: Arc<ApiKeys>,
        budget: Arc<DecodeBudget>,
        ready: Arc<AtomicBool>,
        request_timeout: Duration,
    ) -> Self {
        Self {
            core,
            keys,
            budget,
            ready,
            request_timeout,
        }
    }

    /// One call of a JSON operation: key, deadline, body, the core, the
    /// answer; counted in the metrics under `rpc`.
    async fn call<Req, Resp, F, Fut>(&self, rpc: &'static str, request: Request, op: F) -> Response
    where
        Req: DeserializeOwned,
        Resp: Serialize,
        F: FnOnce(Arc<Core>, Req, Option<Instant>) -> Fut,
        Fut: Future<Output = Result<Resp, ServiceError>>,
    {
        let arrived = Instant::now();
        let (parts, body) = request.into_parts();
        let span = call_span(rpc, &parts.headers);
        let result = async {
            self.keys.check(authorization(&parts.headers))?;
            let deadline = self.deadline(&parts.headers, parts.uri.query(), arrived)?;
            let bytes = match tokio::time::timeout_at(
                deadline.into(),
                read_body(&self.budget, &parts.headers, body),
            )
            .await
            {
                Ok(read) => read?,
                Err(_) => return Err(ServiceError::DeadlineExceeded),
            };
            let request: Req = parse(&bytes)?;
            drop(bytes);
            let response = op(self.core.clone(), request, Some(deadline)).await?;
            let body = serde_json::to_vec(&response)
                .map_err(|e| ServiceError::Internal(format!("writing the response: {e}")))?;
            let max = self.core.limits().max_response_bytes;
            if body.len() > max {
                return Err(ServiceError::Internal(format!(
                    "the response has {} bytes, more than this server sends \
                     (Limits.max_response_bytes = {max}); ask for less",
                    body.len()
                )));
            }
            Ok(body)
        }
        .instrument(span)
        .await;
        match self.core.finish(Door::Http, rpc, result) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(e) => error_response(e),
        }
    }

    /// When the call must be done: the client's timeout (header, else
    /// query) from its arrival, never later than the server's own limit.
    fn deadline(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        arrived: Instant,
    ) -> Result<Instant, ServiceError> {
        let server = arrived + self.request_timeout;
        let given = match headers.get(TIMEOUT_HEADER) {
            Some(v) => Some((TIMEOUT_HEADER, v.to_str().unwrap_or("\u{fffd}").to_string())),
            None => query_param(query, "timeout").map(|v| ("timeout", v)),
        };
        let Some((field, value)) = given else {
            return Ok(server);
        };
        let timeout = parse_timeout(&value).ok_or_else(|| ServiceError::Invalid {
            field: field.to_string(),
            message: format!(
                "`{value}` is not a timeout: give digits and a unit, ms, s, m or h (e.g. 30s)"
            ),
        })?;
        Ok(api::deadline_after(arrived, timeout).min(server))
    }
}

/// The `authorization` header, if it is text.
fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// A span for one call, joined to the caller's trace as gRPC calls are.
fn call_span(rpc: &'static str, headers: &HeaderMap) -> tracing::Span {
    let trace_id = crate::telemetry::trace_id(headers).unwrap_or("");
    let span = tracing::info_span!("rpc", door = "http", rpc, trace_id);
    crate::telemetry::adopt_remote_parent(&span, headers);
    span
}

/// A timeout in the door's own form: 1 to 8 digits and a unit.
fn parse_timeout(value: &str) -> Option<Duration> {
    let split = value.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = value.split_at(split);
    if n.is_empty() || n.len() > 8 {
        return None;
    }
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return None,
    })
}

/// The value of `name` in a query string (no percent-decoding: the values
/// this door reads are plain).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Reads a request body, charging it to the shared budget: its declared
/// length up front (refused at once if over the message limit), or, with
/// no `content-length`, what has arrived so far.
async fn read_body(
    budget: &Arc<DecodeBudget>,
    headers: &HeaderMap,
    mut body: Body,
) -> Result<Bytes, ServiceError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut charge = budget.charge(declared.unwrap_or(0))?;
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ServiceError::Invalid {
            field: "body".into(),
            message: format!("reading the body: {e}"),
        })?;
        if let Ok(data) = frame.into_data() {
            if declared.is_none() {
                charge.grow(data.len())?;
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// A request message from its JSON (an empty body is `{}`).
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ServiceError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| ServiceError::Invalid {
        field: "body".into(),
        message: format!("not the request message in JSON: {e}"),
    })
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// An error's JSON body.
#[derive(Serialize)]
struct ErrorBody<'a> {
    /// The gRPC code's name, as gRPC clients and JSONL records see it.
    code: &'a str,
    message: String,
    field_violations: Vec<FieldViolation>,
}

#[derive(Serialize)]
struct FieldViolation {
    field: String,
    description: String,
}

/// Seconds a client should wait before retrying a 429.
const RETRY_EXHAUSTED_S: u64 = 1;
/// Seconds a client should wait before retrying a 503.
const RETRY_UNAVAILABLE_S: u64 = 5;

/// The one mapping from the core's errors to HTTP: status, `Retry-After`
/// where a retry can succeed, and `{code, message, field_violations}`.
pub fn error_response(e: ServiceError) -> Response {
    let (status, retry_after) = match &e {
        ServiceError::Invalid { .. } => (StatusCode::BAD_REQUEST, None),
        ServiceError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, None),
        ServiceError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, None),
        ServiceError::Exhausted => (StatusCode::TOO_MANY_REQUESTS, Some(RETRY_EXHAUSTED_S)),
        ServiceError::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, Some(RETRY_UNAVAILABLE_S))
        }
        ServiceError::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, None),
        // Nobody reads it (the client went away); 499 as nginx logs it.
        ServiceError::Cancelled => (StatusCode::from_u16(499).expect("a valid status"), None),
        ServiceError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
    };
    let field_violations = match &e {
        ServiceError::Invalid { field, message } => vec![FieldViolation {
            field: field.clone(),
            description: message.clone(),
        }],
        _ => Vec::new(),
    };
    let body = ErrorBody {
        code: e.code().grpc_name(),
        message: e.message(),
        field_violations,
    };
    let mut response = json_response(
        status,
        serde_json::to_vec(&body).expect("an error body serialises"),
    );
    let headers = response.headers_mut();
    if let Some(s) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// A routing error of this door (no such route, wrong method).
fn route_error(status: StatusCode, code: &str, message: String) -> Response {
    let body = ErrorBody {
        code,
        message,
        field_violations: Vec::new(),
    };
    json_response(
        status,
        serde_json::to_vec(&body).expect("an error body serialises"),
    )
}

async fn analyze(State(s): State<Arc<HttpState>>, request: Request) -> Response {
    s.call(
        "Analyze",
        request,
        |core, r: proto::AnalyzeRequest, d| async move { core.analyze(r, d).await },
    )
    .await
}

async fn analyze_batch(State(s): State<Arc<HttpState>>, request: Request) -> Response {
    s.call(
        "AnalyzeBatch",
        request,
        |core, r: proto::AnalyzeBatchRequest, d| async move { core.analyze_batch(r, d).await },
    )
    .await
}

async fn embed(State(s): State<Arc<HttpState>>, request: Request) -> Response {
    s.call(
        "Embed",
        request,
        |core, r: proto::EmbedRequest, d| async move { core.embed(r, d).await },
    )
    .await
}

async fn info(State(s): State<Arc<HttpState>>, request: Request) -> Response {
    s.call(
        "GetInfo",
        request,
        |core, _: proto::GetInfoRequest, _| async move { core.info() },
    )
    .await
}

/// A ninjs item to analyse, with options (default label set:
/// `iptc-media-topics`, the newsroom vocabulary).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NinjsRequest {
    item: serde_json::Value,
    #[serde(default)]
    options: Option<proto::AnalyzeOptions>,
}

#[derive(Serialize)]
struct NinjsResponse {
    item: serde_json::Value,
    analysis: proto::AnalyzeResponse,
}

/// The label set a ninjs item is tagged with unless the caller names one.
pub const NINJS_LABEL_SET: &str = "iptc-media-topics";

async fn ninjs_analyze(State(s): State<Arc<HttpState>>, request: Request) -> Response {
    s.call(
        "AnalyzeNinjs",
        request,
        |core, r: NinjsRequest, d| async move {
            let article = crate::ninjs::article(&r.item)?;
            let mut options = r.options.unwrap_or_default();
            if options.labels.is_none() {
                options.labels = Some(proto::analyze_options::Labels::LabelSetName(
                    NINJS_LABEL_SET.into(),
                ));
            }
            let analysis = core
                .analyze(
                    proto::AnalyzeRequest {
                        article: Some(article),
                        options: Some(options),
                    },
                    d,
                )
                .await?;
            Ok(NinjsResponse {
                item: crate::ninjs::annotate(&r.item, &analysis),
                analysis,
            })
        },
    )
    .await
}

async fn live() -> Response {
    json_response(StatusCode::OK, br#"{"status":"SERVING"}"#.to_vec())
}

async fn ready(State(s): State<Arc<HttpState>>) -> Response {
    if s.ready.load(Ordering::Acquire) {
        json_response(StatusCode::OK, br#"{"status":"SERVING"}"#.to_vec())
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"status":"NOT_SERVING"}"#.to_vec(),
        )
    }
}

/// The editor's page and its assets, compiled into the binary.
const PAGE_HTML: &str = include_str!("page/index.html");
const PAGE_JS: &str = include_str!("page/app.js");
const PAGE_CSS: &str = include_str!("page/app.css");

/// A static asset: its own scripts and styles only (CSP), never sniffed.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                     script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
                ),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn openapi_json() -> Response {
    json_response(
        StatusCode::OK,
        serde_json::to_vec(openapi::document()).expect("the document serialises"),
    )
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE_HTML)
}

async fn page_js() -> Response {
    asset("text/javascript; charset=utf-8", PAGE_JS)
}

async fn page_css() -> Response {
    asset("text/css; charset=utf-8", PAGE_CSS)
}

async fn not_found(request: Request) -> Response {
    route_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!(
            "no route {} {}; see /v1/analyze, /v1/analyze:batch, /v1/embed, /v1/info, \
             /v1/ninjs:analyze, /health/live, /health/ready, /openapi.json",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn wrong_method(request: Request) -> Response {
    route_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNIMPLEMENTED",
        format!(
            "{} does not take {}",
            request.uri().path(),
            request.method()
        ),
    )
}

/// Which browser origins may call the API (CORS); none: only the same
/// origin (the page this server serves).
#[derive(Debug, Clone, Default)]
pub enum Cors {
    /// No cross-origin calls.
    #[default]
    SameOrigin,
    /// Any origin (`*`).
    Any,
    /// These origins, e.g. `https://cms.example.org`.
    Origins(Vec<HeaderValue>),
}

impl Cors {
    /// From `--cors-origin` values: `*` alone for any, else the origins.
    pub fn from_origins(origins: &[String]) -> anyhow::Result<Self> {
        if origins.is_empty() {
            return Ok(Self::SameOrigin);
        }
        if origins.iter().any(|o| o == "*") {
            anyhow::ensure!(
                origins.len() == 1,
                "--cors-origin '*' allows every origin; give it alone"
            );
            return Ok(Self::Any);
        }
        origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim_end_matches('/'))
                    .map_err(|_| anyhow::anyhow!("--cors-origin {o:?} is not a valid origin"))
            })
            .collect::<anyhow::Result<_>>()
            .map(Self::Origins)
    }

    fn layer(&self) -> Option<tower_http::cors::CorsLayer> {
        use tower_http::cors::{AllowOrigin, CorsLayer};
        let allow = match self {
            Self::SameOrigin => return None,
            Self::Any => AllowOrigin::any(),
            Self::Origins(o) => AllowOrigin::list(o.clone()),
        };
        Some(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([http::Method::GET, http::Method::POST])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    http::HeaderName::from_static(TIMEOUT_HEADER),
                    http::HeaderName::from_static("traceparent"),
                    http::HeaderName::from_static("tracestate"),
                ])
                .expose_headers([header::RETRY_AFTER])
                .max_age(Duration::from_secs(600)),
        )
    }
}

/// The door's routes over `state`.
pub fn router(state: Arc<HttpState>, cors: &Cors) -> Router {
    let router = Router::new()
        .route("/v1/analyze", post(analyze))
        .route("/v1/analyze:batch", post(analyze_batch))
        .route("/v1/embed", post(embed))
        .route("/v1/info", get(info))
        .route("/v1/ninjs:analyze", post(ninjs_analyze))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/openapi.json", get(openapi_json))
        .route("/", get(page))
        .route("/app.js", get(page_js))
        .route("/app.css", get(page_css))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state);
    match cors.layer() {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_take_digits_and_a_unit() {
        let check = |v: &str, want: Option<Duration>| assert_eq!(parse_timeout(v), want, "{v}");
        check("30s", Some(Duration::from_secs(30)));
        check("1500ms", Some(Duration::from_millis(1500)));
        check("2m", Some(Duration::from_secs(120)));
        check("99999999h", Some(Duration::from_secs(99_999_999 * 3600)));
        check("123456789s", None);
        check("30", None);
        check("s", None);
        check("-5s", None);
        check("5 s", None);
        check("5S", None);
        check("", None);
    }

    #[test]
    fn every_error_has_its_status_and_the_grpc_code_name() {
        let cases = [
            (
                ServiceError::Invalid {
                    field: "article.text".into(),
                    message: "empty".into(),
                },
                400,
                "INVALID_ARGUMENT",
            ),
            (
                ServiceError::Unauthenticated("no key".into()),
                401,
                "UNAUTHENTICATED",
            ),
            (
                ServiceError::TooLarge("big".into()),
                413,
                "RESOURCE_EXHAUSTED",
            ),
            (ServiceError::Exhausted, 429, "RESOURCE_EXHAUSTED"),
            (
                ServiceError::Unavailable("loading".into()),
                503,
                "UNAVAILABLE",
            ),
            (ServiceError::DeadlineExceeded, 504, "DEADLINE_EXCEEDED"),
            (ServiceError::Internal("bug".into()), 500, "INTERNAL"),
        ];
        for (e, status, code) in cases {
            let r = error_response(e);
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(
                r.headers().contains_key(header::RETRY_AFTER),
                status == 429 || status == 503,
                "{status}"
            );
            let body = futures_body(r);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["code"], code);
            assert_eq!(
                v["field_violations"].as_array().unwrap().len(),
                usize::from(status == 400)
            );
        }
    }

    fn futures_body(r: Response) -> Bytes {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(r.into_body().collect())
            .unwrap()
            .to_bytes()
    }
}
