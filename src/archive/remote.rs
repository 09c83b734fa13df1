//! The remote engine: articles go to running khulasa servers over
//! AnalyzeStream.
//!
//! Balancing is pull-based: each server gets one long-lived stream, and
//! every stream takes its next article from one shared queue whenever it has
//! room (the server's `max_stream_in_flight`). A faster or less loaded
//! replica completes sooner and so pulls more; a slow one is never handed a
//! backlog. (Per-request balancers such as tower's p2c pick an endpoint when
//! a call starts, which for a stream that lasts the whole run means once.)
//!
//! Failures: an article answered `RESOURCE_EXHAUSTED` or `UNAVAILABLE`, or
//! in flight on a stream that broke, goes back to the queue after an
//! exponential backoff, up to `max_attempts`. A server that cannot be
//! reached is retried with backoff too; once every server has given up, the
//! articles left fail with the last error instead of hanging the run.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use khulasa_analysis::AnalysisRequest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::api::convert;
use crate::pipeline::{ArticleInput, ErrorCode};
use crate::proto;
use crate::proto::AnalyzeResult;
use crate::proto::analyzer_client::AnalyzerClient;
use crate::record;

/// How to reach the servers.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Server URLs, e.g. `http://10.0.0.5:50051` (`https://` with TLS).
    pub servers: Vec<String>,
    /// Sent as `authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// PEM CA certificate to trust for `https://` servers.
    pub ca_cert: Option<Vec<u8>>,
    /// Tries per article (and consecutive connection failures per server)
    /// before giving up.
    pub max_attempts: u32,
    /// Articles in flight per stream (`None`: the server's limit).
    pub in_flight: Option<usize>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            api_key: None,
            ca_cert: None,
            max_attempts: 6,
            in_flight: None,
        }
    }
}

/// Backoff before attempt `n` (1-based) of anything: 250 ms doubling to at
/// most 8 s, with up to 25% jitter so replicas are not hit in lockstep.
fn backoff(n: u32) -> Duration {
    let base = 250u64 << n.saturating_sub(1).min(5);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
        % (base / 4 + 1);
    Duration::from_millis(base.min(8_000) + jitter)
}

struct Task {
    input: ArticleInput,
    /// Failed tries (stream broken, UNAVAILABLE).
    attempts: u32,
    /// Times a server turned it away as overloaded; these back the stream
    /// off rather than use up attempts, up to a high bound.
    turned_away: u32,
}

/// Turn-aways an article may see before it fails.
const MAX_TURNED_AWAY: u32 = 100;

/// The queue every stream pulls from, and the count of articles taken from
/// it and not yet finished (in flight or waiting to be retried).
struct Shared {
    fresh: tokio::sync::Mutex<mpsc::Receiver<Task>>,
    retry: Mutex<VecDeque<Task>>,
    pending: AtomicUsize,
    out: mpsc::UnboundedSender<AnalyzeResult>,
    options: AnalysisRequest,
    max_attempts: u32,
    last_error: Mutex<String>,
}

impl Shared {
    /// The next article to send; `None` once the input is exhausted and
    /// nothing is pending anywhere.
    async fn next(&self) -> Option<Task> {
        loop {
            if let Some(t) = self.retry.lock().expect("not poisoned").pop_front() {
                return Some(t);
            }
            let received = {
                let mut fresh = self.fresh.lock().await;
                tokio::time::timeout(Duration::from_millis(100), fresh.recv()).await
            };
            match received {
                Ok(Some(t)) => {
                    self.pending.fetch_add(1, Ordering::SeqCst);
                    return Some(t);
                }
                Ok(None) if self.pending.load(Ordering::SeqCst) == 0 => return None,
                // Closed but others may still requeue: look again shortly.
                Ok(None) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(_) => {}
            }
        }
    }

    /// Puts back an article a server turned away (RESOURCE_EXHAUSTED): at
    /// the front, for whichever stream has room first.
    fn turned_away(&self, mut t: Task, reason: &str) {
        t.turned_away += 1;
        if t.turned_away >= MAX_TURNED_AWAY {
            let message = format!("turned away {} times: {reason}", t.turned_away);
            self.finish(record::failed(
                t.input.id,
                ErrorCode::ResourceExhausted,
                message,
            ));
            return;
        }
        self.retry.lock().expect("not poisoned").push_front(t);
    }

    fn finish(&self, out: AnalyzeResult) {
        let _ = self.out.send(out);
        self.pending.fetch_sub(1, Ordering::SeqCst);
    }

    /// Puts `t` back after a backoff, or fails it when out of attempts.
    fn retry(self: &Arc<Self>, mut t: Task, reason: &str) {
        t.attempts += 1;
        if t.attempts >= self.max_attempts {
            let message = format!("gave up after {} attempts: {reason}", t.attempts);
            self.finish(record::failed(t.input.id, ErrorCode::Unavailable, message));
            return;
        }
        let shared = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(backoff(t.attempts)).await;
            shared.retry.lock().expect("not poisoned").push_back(t);
        });
    }
}

/// Sends every input from `work` to the servers and hands each record to
/// `emit` as it arrives (stopping early if `emit` returns false).
pub fn run(
    remote: RemoteOptions,
    options: AnalysisRequest,
    work: Receiver<ArticleInput>,
    mut emit: impl FnMut(AnalyzeResult) -> bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(!remote.servers.is_empty(), "no --server given");
    let endpoints = remote
        .servers
        .iter()
        .map(|url| endpoint(url, remote.ca_cert.as_deref()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (fresh_tx, fresh_rx) = mpsc::channel::<Task>(256);
        let (out_tx, mut out_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            fresh: tokio::sync::Mutex::new(fresh_rx),
            retry: Mutex::new(VecDeque::new()),
            pending: AtomicUsize::new(0),
            out: out_tx,
            options,
            max_attempts: remote.max_attempts.max(1),
            last_error: Mutex::new(String::new()),
        });
        // Inputs arrive on a blocking channel from the reader thread.
        tokio::task::spawn_blocking(move || {
            for input in work {
                if fresh_tx
                    .blocking_send(Task {
                        input,
                        attempts: 0,
                        turned_away: 0,
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
        let servers: Vec<_> = endpoints
            .into_iter()
            .map(|e| tokio::spawn(serve_from(e, shared.clone(), remote.clone())))
            .collect();
        let drain = {
            let shared = shared.clone();
            tokio::spawn(async move {
                for s in servers {
                    let _ = s.await;
                }
                // Every server gave up: fail what is left rather than hang.
                let reason = shared.last_error.lock().expect("not poisoned").clone();
                let reason = format!("no server could take the article: {reason}");
                while let Some(t) = shared.next().await {
                    shared.finish(record::failed(
                        t.input.id,
                        ErrorCode::Unavailable,
                        reason.clone(),
                    ));
                }
            })
        };
        drop(shared);
        while let Some(out) = out_rx.recv().await {
            if !emit(out) {
                // The writer is gone (it failed): stop, do not drain.
                return;
            }
        }
        let _ = drain.await;
    });
    runtime.shutdown_background();
    Ok(())
}

fn endpoint(url: &str, ca: Option<&[u8]>) -> anyhow::Result<Endpoint> {
    let mut e = Endpoint::from_shared(url.to_string())
        .map_err(|e| anyhow::anyhow!("bad server URL {url:?}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = ca {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        e = e.tls_config(tls)?;
    }
    Ok(e)
}

/// Keeps one stream open to one server until the work is done or the
/// server has failed `max_attempts` times in a row.
async fn serve_from(endpoint: Endpoint, shared: Arc<Shared>, remote: RemoteOptions) {
    let url = endpoint.uri().to_string();
    let mut failures = 0u32;
    loop {
        match session(&endpoint, &shared, &remote).await {
            Ok(()) => return,
            Err(e) => {
                let fatal = matches!(
                    e.code(),
                    tonic::Code::Unauthenticated
                        | tonic::Code::PermissionDenied
                        | tonic::Code::Unimplemented
                );
                failures += 1;
                tracing::warn!(server = %url, attempt = failures, "{}", e.message());
                *shared.last_error.lock().expect("not poisoned") =
                    format!("{url}: {}", e.message());
                if fatal || failures >= shared.max_attempts {
                    tracing::error!(server = %url, "giving up on this server");
                    return;
                }
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

/// One AnalyzeStream: fills it up to the in-flight limit from the shared
/// queue and settles each result. Returns `Ok` when all work is done.
async fn session(
    endpoint: &Endpoint,
    shared: &Arc<Shared>,
    remote: &RemoteOptions,
) -> Result<(), tonic::Status> {
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("cannot connect: {e}")))?;
    let bearer: Option<tonic::metadata::MetadataValue<_>> = match &remote.api_key {
        Some(k) => Some(
            format!("Bearer {k}")
                .parse()
                .map_err(|_| tonic::Status::invalid_argument("the API key is not ASCII"))?,
        ),
        None => None,
    };
    let mut client = AnalyzerClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
        if let Some(b) = &bearer {
            r.metadata_mut().insert("authorization", b.clone());
        }
        Ok(r)
    })
    .max_decoding_message_size(256 << 20)
    .max_encoding_message_size(256 << 20);
    let info = client
        .get_info(proto::GetInfoRequest {})
        .await?
        .into_inner();
    let limit = remote
        .in_flight
        .or_else(|| {
            info.limits
                .map(|l| l.max_stream_in_flight as usize)
                .filter(|&n| n > 0)
        })
        .unwrap_or(8)
        .max(1);

    let (requests, outgoing) = mpsc::channel(limit);
    let mut results = client
        .analyze_stream(ReceiverStream::new(outgoing))
        .await?
        .into_inner();
    let mut in_flight: HashMap<String, Task> = HashMap::new();
    let mut exhausted = false;
    // Adaptive window: an overloaded answer shrinks it to what the server
    // is coping with and pauses this stream; each success widens it by one.
    let mut window = limit;
    let mut overloads = 0u32;
    let mut paused_until = tokio::time::Instant::now();
    let outcome = loop {
        if exhausted && in_flight.is_empty() {
            break Ok(());
        }
        let paused = tokio::time::Instant::now() < paused_until;
        tokio::select! {
            message = results.message() => match message {
                Ok(Some(r)) => {
                    let Some(t) = in_flight.remove(&r.id) else {
                        tracing::warn!(id = %r.id, "a result for an article not sent on this stream");
                        continue;
                    };
                    match &r.outcome {
                        Some(proto::analyze_result::Outcome::Error(e))
                            if ErrorCode::from_grpc_name(&e.code)
                                == ErrorCode::ResourceExhausted =>
                        {
                            overloads += 1;
                            window = in_flight.len().max(1);
                            paused_until = tokio::time::Instant::now() + backoff(overloads);
                            shared.turned_away(t, &format!("{}: {}", e.code, e.message));
                        }
                        Some(proto::analyze_result::Outcome::Error(e))
                            if ErrorCode::from_grpc_name(&e.code) == ErrorCode::Unavailable =>
                        {
                            shared.retry(t, &format!("{}: {}", e.code, e.message));
                        }
                        _ => {
                            overloads = 0;
                            window = (window + 1).min(limit);
                            shared.finish(match r.outcome {
                                Some(_) => r,
                                None => record::failed(
                                    r.id,
                                    ErrorCode::Internal,
                                    "the server sent an empty result".into(),
                                ),
                            });
                        }
                    }
                }
                Ok(None) => break Err(tonic::Status::unavailable("the server closed the stream")),
                Err(status) => break Err(status),
            },
            _ = tokio::time::sleep_until(paused_until), if paused => {}
            next = shared.next(), if !paused && !exhausted && in_flight.len() < window => match next {
                Some(t) => {
                    let request = proto::AnalyzeStreamRequest {
                        article: Some(convert::article_to_proto(&t.input)),
                        options: Some(convert::proto_options(&t.input.request(&shared.options))),
                    };
                    if requests.send(request).await.is_err() {
                        shared.retry(t, "the stream closed");
                        break Err(tonic::Status::unavailable("the stream closed"));
                    }
                    in_flight.insert(t.input.id.clone(), t);
                }
                None => exhausted = true,
            },
        }
    };
    if let Err(status) = &outcome {
        for (_, t) in in_flight.drain() {
            shared.retry(t, status.message());
        }
    }
    outcome
}
