//! Guards on the wire, before a request reaches a handler.
//!
//! - [`DecodeBudgetLayer`]: the bytes of request messages being received
//!   at once, across every call, are bounded. Each gRPC message declares
//!   its length in its 5-byte prefix; that length is charged to a shared
//!   budget the moment the prefix arrives, before the body is buffered, and
//!   returned when the next message starts or the body ends. A message
//!   longer than the per-message limit, or one that would overrun the
//!   budget, is refused there with RESOURCE_EXHAUSTED, so a flood of large
//!   messages cannot make the server buffer them all.
//! - [`limited_incoming`]: at most so many connections; past that a new
//!   connection is closed at once (and counted), and accept errors (such
//!   as running out of file descriptors) back off instead of spinning.
//! - [`Arrived`]: when the request's headers came in, stamped before
//!   tonic's own `grpc-timeout` timer starts, so the handler's deadline is
//!   never later than tonic's. tonic answers its timer with CANCELLED; the
//!   handler, which is polled first, answers DEADLINE_EXCEEDED as gRPC
//!   specifies, and with this stamp it always gets there first.
//! - [`client_fault`]: tonic's own decoding failures (a truncated message,
//!   a bad compression flag) come back as INTERNAL; they are the client's,
//!   so they are turned into INVALID_ARGUMENT (on streams by the handler,
//!   on unary calls by the layer, which rewrites the trailers-only answer).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::api::DecodeBudget;
use crate::metrics::Metrics;

/// A tower layer that puts every request body under a [`DecodeBudget`].
#[derive(Debug, Clone)]
pub struct DecodeBudgetLayer(pub Arc<DecodeBudget>);

impl<S> tower_layer::Layer<S> for DecodeBudgetLayer {
    type Service = DecodeBudgetService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DecodeBudgetService {
            inner,
            budget: self.0.clone(),
        }
    }
}

/// When a request's headers arrived (a request extension set by
/// [`DecodeBudgetService`]); deadlines count from here.
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub Instant);

/// The service of [`DecodeBudgetLayer`].
#[derive(Debug, Clone)]
pub struct DecodeBudgetService<S> {
    inner: S,
    budget: Arc<DecodeBudget>,
}

impl<S, B> tower_service::Service<http::Request<Body>> for DecodeBudgetService<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let budget = self.budget.clone();
        request.extensions_mut().insert(Arrived(Instant::now()));
        let call = self.inner.call(request.map(|body| {
            Body::new(Budgeted {
                inner: body,
                budget,
                held: 0,
                prefix: [0; 5],
                prefix_len: 0,
                left_in_message: 0,
            })
        }));
        Box::pin(async move {
            let mut response = call.await?;
            client_fault_headers(response.headers_mut());
            Ok(response)
        })
    }
}

/// [`client_fault`] on a trailers-only response, which is how tonic answers
/// a unary request it could not decode (the handler never ran).
fn client_fault_headers(headers: &mut http::HeaderMap) {
    let internal = headers
        .get("grpc-status")
        .is_some_and(|s| s.as_bytes() == b"13");
    if !internal {
        return;
    }
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    let status = client_fault(status);
    if status.code() == tonic::Code::InvalidArgument {
        headers.remove("grpc-message");
        let _ = status.add_header(headers);
    }
}

/// A request body that charges each message's declared length.
struct Budgeted {
    inner: Body,
    budget: Arc<DecodeBudget>,
    /// Bytes charged for the message being received.
    held: usize,
    prefix: [u8; 5],
    prefix_len: usize,
    left_in_message: usize,
}

impl Budgeted {
    /// Walks the gRPC framing of `data`, charging each message as its
    /// prefix completes.
    fn scan(&mut self, data: &Bytes) -> Result<(), Status> {
        let mut rest: &[u8] = data.chunk();
        while !rest.is_empty() {
            if self.left_in_message > 0 {
                let n = self.left_in_message.min(rest.len());
                self.left_in_message -= n;
                rest = &rest[n..];
                continue;
            }
            let n = (5 - self.prefix_len).min(rest.len());
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&rest[..n]);
            self.prefix_len += n;
            rest = &rest[n..];
            if self.prefix_len == 5 {
                self.prefix_len = 0;
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]) as usize;
                // The previous message has been read whole: its bytes are
                // the decoder's (and then the handler's admission's) now.
                self.budget.release(std::mem::take(&mut self.held));
                self.budget.reserve(len).map_err(super::status)?;
                self.held = len;
                self.left_in_message = len;
            }
        }
        Ok(())
    }
}

impl Drop for Budgeted {
    fn drop(&mut self) {
        self.budget.release(std::mem::take(&mut self.held));
    }
}

impl HttpBody for Budgeted {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Err(status) = this.scan(data)
                {
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.budget.release(std::mem::take(&mut this.held));
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection that holds one of the server's connection slots.
pub struct LimitedConn {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl Connected for LimitedConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl tokio::io::AsyncRead for LimitedConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for LimitedConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// How long accepting pauses after an accept error (e.g. out of file
/// descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The connections of `listener`, at most `max` open at once; one past
/// that is closed as soon as it is accepted.
pub fn limited_incoming(
    listener: TcpListener,
    max: usize,
    metrics: Arc<Metrics>,
) -> ReceiverStream<std::io::Result<LimitedConn>> {
    let (tx, rx) = mpsc::channel(16);
    let slots = Arc::new(Semaphore::new(max.max(1)));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = tx.closed() => return,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let _ = stream.set_nodelay(true);
                        if tx
                            .send(Ok(LimitedConn {
                                stream,
                                _slot: slot,
                            }))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(_) => {
                        metrics.connections_refused.inc();
                        tracing::debug!(%peer, max, "connection limit reached; closing");
                        drop(stream);
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; backing off");
                    sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

fn sleep(d: Duration) -> impl Future<Output = ()> {
    tokio::time::sleep(d)
}

/// tonic's decoding failures, which it reports as INTERNAL, are the
/// client's: a message cut short or with an unknown compression flag.
/// Everything else passes through.
pub fn client_fault(status: Status) -> Status {
    const CLIENT_FAULTS: [&str; 2] = [
        "Unexpected EOF decoding stream",
        "protocol error: received message with invalid compression flag",
    ];
    if status.code() == tonic::Code::Internal
        && CLIENT_FAULTS
            .iter()
            .any(|m| status.message().starts_with(m))
    {
        Status::invalid_argument(format!("malformed request: {}", status.message()))
    } else {
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn framed(lens: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        for &n in lens {
            out.push(0);
            out.extend_from_slice(&(n as u32).to_be_bytes());
            out.extend(std::iter::repeat_n(7u8, n));
        }
        out
    }

    /// Feeds `bytes` in `chunk`-sized frames through a budgeted body.
    async fn feed(budget: &Arc<DecodeBudget>, bytes: Vec<u8>, chunk: usize) -> Result<(), Status> {
        let frames: Vec<Result<Frame<Bytes>, Status>> = bytes
            .chunks(chunk)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let inner = Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)));
        let mut body = Budgeted {
            inner,
            budget: budget.clone(),
            held: 0,
            prefix: [0; 5],
            prefix_len: 0,
            left_in_message: 0,
        };
        let mut max_used = 0;
        while let Some(frame) = body.frame().await {
            frame?;
            max_used = max_used.max(budget.used());
        }
        assert!(max_used <= budget.capacity());
        Ok(())
    }

    #[tokio::test]
    async fn messages_are_charged_one_at_a_time_and_returned() {
        let budget = DecodeBudget::new(1000, 600);
        for chunk in [1, 3, 7, 64, 4096] {
            feed(&budget, framed(&[500, 0, 600, 10]), chunk)
                .await
                .unwrap();
            assert_eq!(budget.used(), 0, "chunk {chunk}");
        }
    }

    #[tokio::test]
    async fn an_oversized_message_is_refused_on_its_prefix() {
        let budget = DecodeBudget::new(1000, 600);
        // Only the prefix is sent: refused before any of the body arrives.
        let err = feed(&budget, framed(&[601])[..5].to_vec(), 5)
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("at most 600"), "{}", err.message());
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn concurrent_bodies_share_the_budget() {
        let budget = DecodeBudget::new(1000, 600);
        budget.reserve(600).unwrap();
        let err = feed(&budget, framed(&[500]), 64).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        budget.release(600);
        feed(&budget, framed(&[500]), 64).await.unwrap();
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn tonic_decode_failures_become_invalid_argument() {
        let s = client_fault(Status::internal("Unexpected EOF decoding stream."));
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        let s = client_fault(Status::internal("the model stopped"));
        assert_eq!(s.code(), tonic::Code::Internal);
    }
}
