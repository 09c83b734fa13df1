//! A real khulasa server on 127.0.0.1:0 for integration tests.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use khulasa::api::Limits;
use khulasa::metrics::Metrics;
use khulasa::proto::analyzer_client::AnalyzerClient;
use khulasa::service::server;
use khulasa_analysis::{AnalysisData, Analyzer, AnalyzerOptions};
use khulasa_batch::{BatchingEncoder, BatchingOptions};
use tonic::transport::Channel;

/// One analyzer (behind the batcher) shared by every server of a test binary.
pub fn analyzer() -> Arc<Analyzer> {
    static A: OnceLock<Arc<Analyzer>> = OnceLock::new();
    A.get_or_init(|| Arc::new(own_analyzer(Arc::new(Metrics::new()))))
        .clone()
}

/// A fresh analyzer with its own batcher (over the shared model's weights),
/// for tests that watch the batcher's `metrics` undisturbed by other tests.
pub fn own_analyzer(metrics: Arc<Metrics>) -> Analyzer {
    let data =
        AnalysisData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models"), &[]).unwrap();
    let encoder = super::shared_encoder();
    let batching = BatchingEncoder::start(encoder, BatchingOptions::default(), metrics);
    Analyzer::new(Arc::new(batching), data, AnalyzerOptions::default()).unwrap()
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// The HTTP/JSON door's address.
    pub http_addr: SocketAddr,
    /// This server's metrics.
    pub metrics: Arc<Metrics>,
    /// The CA certificate clients trust, when serving TLS.
    tls_ca: Option<Vec<u8>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    pub async fn start(limits: Limits, keys: &[&str]) -> Self {
        Self::start_with(limits, keys, None).await
    }

    /// `tls` is (CA certificate the client trusts, server certificate, key).
    pub async fn start_with(
        limits: Limits,
        keys: &[&str],
        tls: Option<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    ) -> Self {
        let (tls_ca, tls) = match tls {
            Some((ca, cert, key)) => (Some(ca), Some((cert, key))),
            None => (None, None),
        };
        let config = server::ServeConfig {
            limits,
            api_keys: keys.iter().map(|k| k.to_string()).collect::<HashSet<_>>(),
            grace: std::time::Duration::from_secs(5),
            tls,
            ..Default::default()
        };
        Self::launch(config, tls_ca, analyzer().into()).await
    }

    /// A server with `config` over `engine`, once it is SERVING.
    pub async fn launch(
        config: server::ServeConfig,
        tls_ca: Option<Vec<u8>>,
        engine: server::Loaded,
    ) -> Self {
        let s = Self::spawn(config, tls_ca, move || Ok(engine)).await;
        s.wait_serving().await;
        s
    }

    /// A server with `config` whose engine comes from `load`, at once
    /// (while it loads it is NOT_SERVING). Both doors are served; HTTP on
    /// a port of its own unless `config` names one.
    pub async fn spawn(
        mut config: server::ServeConfig,
        tls_ca: Option<Vec<u8>>,
        load: impl FnOnce() -> anyhow::Result<server::Loaded> + Send + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let http = match config.http.take() {
            Some(h) => h,
            None => khulasa::http::HttpConfig {
                listener: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                cors: Default::default(),
            },
        };
        let http_addr = http.listener.local_addr().unwrap();
        config.http = Some(http);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics = Arc::new(Metrics::new());
        let done = tokio::spawn(server::serve(
            listener,
            config,
            metrics.clone(),
            load,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            http_addr,
            metrics,
            tls_ca,
            stop: Some(stop),
            done,
        }
    }

    /// The HTTP door's URL for `path` (plain HTTP).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    pub async fn channel(&self) -> Channel {
        match &self.tls_ca {
            None => Channel::from_shared(format!("http://{}", self.addr))
                .unwrap()
                .connect()
                .await
                .unwrap(),
            Some(ca) => Channel::from_shared(format!("https://localhost:{}", self.addr.port()))
                .unwrap()
                .tls_config(
                    tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                        .domain_name("localhost"),
                )
                .unwrap()
                .connect()
                .await
                .unwrap(),
        }
    }

    pub async fn client(&self) -> AnalyzerClient<Channel> {
        AnalyzerClient::new(self.channel().await)
    }

    pub async fn health(&self, service: &str) -> i32 {
        let mut h = tonic_health::pb::health_client::HealthClient::new(self.channel().await);
        h.check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
    }

    pub async fn wait_serving(&self) {
        for _ in 0..600 {
            if self.health("khulasa.v1.Analyzer").await
                == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the server never became SERVING");
    }

    pub async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.done.await.unwrap().unwrap();
    }
}
