//! The HTTP door's connection loop: HTTP/1.1 by hyper over the same
//! connection limit as gRPC ([`limited_incoming`]), optional TLS with the
//! same certificate, timeouts on handshakes and request heads, and a
//! graceful stop (connections finish the request in hand, then close).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_stream::StreamExt;
use tower_service::Service;

use crate::metrics::Metrics;
use crate::service::wire::limited_incoming;

/// Where and how the HTTP door listens.
pub struct HttpConfig {
    /// Its listener.
    pub listener: TcpListener,
    /// Which browser origins may call it.
    pub cors: super::Cors,
}

/// How long a client may take to finish a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS acceptor for a PEM certificate chain and key.
pub fn tls_acceptor(cert: &[u8], key: &[u8]) -> anyhow::Result<TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("reading the TLS certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| anyhow::anyhow!("reading the TLS key: {e}"))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("TLS configuration: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` on `listener` (at most `max_connections` at once, over
/// TLS when `tls` is given) until `stop` turns true; then stops accepting,
/// lets each connection finish the request it is on, and returns when all
/// have closed.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    max_connections: usize,
    tls: Option<TlsAcceptor>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let mut incoming = limited_incoming(listener, max_connections, metrics);
    let mut connections = JoinSet::new();
    tracing::info!(addr = ?addr, tls = tls.is_some(), "HTTP/JSON on /v1, health on /health");
    loop {
        while connections.try_join_next().is_some() {}
        let conn = tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
                continue;
            }
            conn = incoming.next() => match conn {
                Some(Ok(conn)) => conn,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "HTTP accept failed");
                    continue;
                }
                None => break,
            },
        };
        let router = router.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(conn)).await {
                        Ok(Ok(stream)) => connection(stream, router, stop).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
                None => connection(conn, router, stop).await,
            }
        });
    }
    drop(incoming);
    while connections.join_next().await.is_some() {}
}

/// One connection: requests until the client closes or the server stops.
async fn connection<S>(stream: S, router: axum::Router, mut stop: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let mut router = router.clone();
            async move { router.call(request.map(axum::body::Body::new)).await }
        });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        }
        () = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
