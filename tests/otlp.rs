//! With the `otlp` feature: spans reach an OTLP collector, and a call's
//! `rpc` span is a child of the caller's `traceparent`. The collector is a
//! fake one in this test; the analyzer runs on the hashing encoder, since
//! only the trace plumbing is under test.
//!
//! `cargo test --features otlp --test otlp`
#![cfg(feature = "otlp")]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use khulasa::metrics::Metrics;
use khulasa::proto;
use khulasa::proto::analyzer_client::AnalyzerClient;
use khulasa::service::server;
use khulasa::telemetry::{self, LogFormat};
use khulasa_analysis::{AnalysisData, Analyzer, AnalyzerOptions};
use khulasa_embed::testing::HashingEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio_stream::wrappers::TcpListenerStream;

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";
const HTTP_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn rpc_spans_are_exported_as_children_of_the_callers_trace() {
    // The collector runs on a runtime of its own, so flushing the exporter
    // (a blocking call) cannot starve it.
    let collector_rt = tokio::runtime::Runtime::new().unwrap();
    let collector = Collector::default();
    let endpoint = collector_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        format!("http://{addr}")
    });

    let guard = telemetry::init(LogFormat::Text, Some(&endpoint)).unwrap();

    let data =
        AnalysisData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models"), &[]).unwrap();
    let analyzer = Arc::new(
        Analyzer::new(
            Arc::new(HashingEncoder::new(384)),
            data,
            AnalyzerOptions::default(),
        )
        .unwrap(),
    );
    let server_rt = tokio::runtime::Runtime::new().unwrap();
    server_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = http_listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(server::serve(
            listener,
            server::ServeConfig {
                grace: Duration::from_secs(5),
                http: Some(khulasa::http::HttpConfig {
                    listener: http_listener,
                    cors: Default::default(),
                }),
                ..Default::default()
            },
            Arc::new(Metrics::new()),
            move || Ok(analyzer),
            async {
                let _ = stopped.await;
            },
        ));
        let mut client = loop {
            match AnalyzerClient::connect(format!("http://{addr}")).await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        // The analyzer may still be loading (UNAVAILABLE until SERVING).
        let mut answered = false;
        for _ in 0..200 {
            let mut request = tonic::Request::new(proto::AnalyzeRequest {
                article: Some(proto::Article {
                    id: "traced".into(),
                    content: Some(proto::article::Content::Text(
                        "Iraqi and US officers met in Baghdad to plan joint training.".into(),
                    )),
                    ..Default::default()
                }),
                options: None,
            });
            request.metadata_mut().insert(
                "traceparent",
                format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01")
                    .parse()
                    .unwrap(),
            );
            match client.analyze(request).await {
                Ok(_) => {
                    answered = true;
                    break;
                }
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(s) => panic!("Analyze failed: {s:?}"),
            }
        }
        assert!(answered, "Analyze never succeeded");
        // The HTTP door joins its caller's trace the same way.
        let r = reqwest::Client::new()
            .post(format!("http://{http_addr}/v1/analyze"))
            .header("traceparent", format!("00-{HTTP_TRACE_ID}-{PARENT_SPAN_ID}-01"))
            .body(r#"{"article": {"id": "traced-http", "text": "Iraqi and US officers met in Baghdad."}}"#)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        stop.send(()).unwrap();
        done.await.unwrap().unwrap();
    });

    // Flushes every span still in the batch processor.
    drop(guard);

    let spans = collector.0.lock().unwrap();
    let rpc: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "rpc" && hex(&s.trace_id) == TRACE_ID)
        .collect();
    assert!(
        !rpc.is_empty(),
        "no rpc span in the caller's trace among {} exported spans: {:?}",
        spans.len(),
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    // More than one when an early try met the analyzer still loading.
    for span in &rpc {
        assert_eq!(hex(&span.parent_span_id), PARENT_SPAN_ID);
        assert!(
            span.attributes.iter().any(|kv| kv.key == "rpc"),
            "the span keeps its fields as attributes"
        );
    }
    let http: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "rpc" && hex(&s.trace_id) == HTTP_TRACE_ID)
        .collect();
    assert_eq!(http.len(), 1, "one HTTP call's span in its caller's trace");
    assert_eq!(hex(&http[0].parent_span_id), PARENT_SPAN_ID);
    assert!(
        http[0]
            .attributes
            .iter()
            .any(|kv| kv.key == "door" && format!("{:?}", kv.value).contains("http"))
    );
    // The per-article span below the call that succeeded is in the same trace.
    let article = spans
        .iter()
        .find(|s| s.name == "article" && hex(&s.trace_id) == TRACE_ID)
        .expect("an article span");
    assert_eq!(hex(&article.trace_id), TRACE_ID);
    assert!(rpc.iter().any(|r| r.span_id == article.parent_span_id));
}
