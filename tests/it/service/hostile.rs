//! Hostile and pathological requests against a real server: each test pins
//! one bound, so that no single request can exhaust memory, pin the cores
//! after its client has gone, or reach a panic. The long version (thousands
//! of generated inputs, an overload burst, peak RSS) is
//! `cargo bench --bench hostile`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use khulasa::api::{Limits, Liveness};
use khulasa::metrics::Metrics;
use khulasa::proto;
use khulasa::service::server::{Loaded, ServeConfig, TransportLimits};
use khulasa_analysis::{AnalysisData, Analyzer, AnalyzerOptions};
use khulasa_batch::{BatchingEncoder, BatchingOptions};
use khulasa_embed::testing::HashingEncoder;
use khulasa_embed::{EncodeError, InputKind, ModelInfo, StopToken, TextEncoder, TokenStates};
use prost::Message;
use tonic::Code;

use super::common::raw::raw_call;
use super::common::server::TestServer;
use super::{article, field_violations};

/// A long story of distinct sentences: a few seconds of model work.
fn long_story(sentences: usize) -> String {
    let mut text = String::from("عنوان تقرير طويل عن التعاون الأمني\n\n");
    for i in 0..sentences {
        text.push_str(&format!(
            "وقال المسؤول رقم {i} إن اللجنة المشتركة ناقشت ملف التدريب رقم {} وتبادل المعلومات في المنطقة {}. ",
            i * 7,
            i % 13
        ));
        if i % 5 == 4 {
            text.push_str("\n\n");
        }
    }
    text
}

async fn info(server: &TestServer) -> proto::Limits {
    server
        .client()
        .await
        .get_info(proto::GetInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .limits
        .unwrap()
}

/// Waits until the server's queue is empty again; panics after `within`.
async fn queue_drains(server: &TestServer, within: Duration) {
    let until = Instant::now() + within;
    loop {
        let (depth, bytes) = (
            server.metrics.queue_depth.get(),
            server.metrics.queued_bytes.get(),
        );
        if depth == 0 && bytes == 0 {
            return;
        }
        assert!(
            Instant::now() < until,
            "the queue still holds {depth} articles and {bytes} bytes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_one_word_sentences_are_analysed_up_to_the_cap() {
    // Regression: nothing capped sentences per article, and the summary's
    // n × n similarity matrix for 50,000 sentences asked for ~20 GB.
    let server = TestServer::start(Limits::default(), &[]).await;
    let cap = info(&server).await.max_sentences_per_article as usize;
    let text: String = (0..50_000).map(|i| format!("ب{}! ", i % 100)).collect();
    assert!(text.len() < 400_000);
    let r = server
        .client()
        .await
        .analyze(proto::AnalyzeRequest {
            article: Some(article("many", &text)),
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.truncated);
    assert_eq!(r.sentences.len(), cap);
    assert!(r.summary.unwrap().sentences.len() <= 3);
    assert!(r.topics.is_some() && r.stance.is_some());
    queue_drains(&server, Duration::from_secs(2)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_past_the_nesting_limit_is_flattened_and_answered() {
    // Regression: nested <div>s were quadratic in depth (20,000: 65 s of a
    // core), and a small formatting-element bomb reached 895 MB.
    let server = TestServer::start(Limits::default(), &[]).await;
    let mut client = server.client().await;
    let story = "<p>وأكد وزير الدفاع أن برامج التدريب المشترك مستمرة مع الشركاء الدوليين لتعزيز قدرات الجيش.</p>";
    let deep = format!(
        "<html><body>{}{story}</body></html>",
        "<div>".repeat(20_000)
    );
    let bomb: String = (0..5000)
        .map(|i| format!("<b class=\"c{i}\"><i id=\"x{i}\"><font size=\"{i}\">"))
        .collect::<String>()
        + &"<p>سطر</p>".repeat(200)
        + story;
    for (name, html) in [("deep", deep), ("bomb", bomb)] {
        let started = Instant::now();
        let r = client
            .analyze(proto::AnalyzeRequest {
                article: Some(proto::Article {
                    id: name.into(),
                    content: Some(proto::article::Content::Html(html)),
                    ..Default::default()
                }),
                options: None,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.html_extraction, "flattened", "{name}");
        assert!(
            r.main_story.unwrap().text.contains("برامج التدريب المشترك"),
            "{name}: the story was lost"
        );
        // A hang guard, not a benchmark: quadratic code took minutes.
        assert!(started.elapsed() < Duration::from_secs(30), "{name}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_options_and_fields_are_field_violations() {
    let server = TestServer::start(Limits::default(), &[]).await;
    let mut client = server.client().await;
    let limits = info(&server).await;
    let call = |article: proto::Article, options: proto::AnalyzeOptions| proto::AnalyzeRequest {
        article: Some(article),
        options: Some(options),
    };
    let fine = article("a", "جملة قصيرة عن التعاون الأمني بين البلدين.");
    let cases = [
        (
            call(
                fine.clone(),
                proto::AnalyzeOptions {
                    max_sentences: u32::MAX,
                    ..Default::default()
                },
            ),
            "options.max_sentences",
        ),
        (
            call(
                proto::Article {
                    title: "ع".repeat(limits.max_title_chars as usize + 1),
                    ..fine.clone()
                },
                Default::default(),
            ),
            "article.title",
        ),
        (
            call(
                fine.clone(),
                proto::AnalyzeOptions {
                    labels: Some(proto::analyze_options::Labels::InlineLabelSet(
                        proto::LabelSet {
                            name: "huge".into(),
                            multi_label: true,
                            labels: (0..64)
                                .map(|i| proto::Label {
                                    id: format!("l{i}"),
                                    description: vec!["وصف ".repeat(199); 10],
                                    ..Default::default()
                                })
                                .collect(),
                        },
                    )),
                    ..Default::default()
                },
            ),
            "options.inline_label_set.labels",
        ),
        (
            call(
                fine.clone(),
                proto::AnalyzeOptions {
                    ratio: f32::NAN,
                    ..Default::default()
                },
            ),
            "options.ratio",
        ),
    ];
    for (request, field) in cases {
        let err = client.analyze(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err}");
        assert_eq!(field_violations(&err), [field]);
    }
    server.stop().await;
}

const ANALYZE: &str = "/khulasa.v1.Analyzer/Analyze";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_messages_are_the_clients_fault() {
    let server = TestServer::start(Limits::default(), &[]).await;
    let addr = server.addr;
    // Bytes that are not an AnalyzeRequest: INVALID_ARGUMENT, not INTERNAL.
    let garbage = [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3];
    let (code, message) = raw_call(addr, ANALYZE, &[], garbage.len() as u32, &garbage, true).await;
    assert_eq!(code, Code::InvalidArgument as i32, "{message}");
    // A message cut short of its declared length.
    let (code, message) = raw_call(addr, ANALYZE, &[], 100, &[0x0a, 3], true).await;
    assert_eq!(code, Code::InvalidArgument as i32, "{message}");
    // A prefix declaring 1 GB is refused on the prefix: the body is never
    // sent, and the server does not wait for it.
    let (code, message) = raw_call(addr, ANALYZE, &[], 1 << 30, &[], false).await;
    assert_eq!(code, Code::ResourceExhausted as i32, "{message}");
    assert!(message.contains("at most"), "{message}");
    // A deadline of 20 digits (regression: it overflowed `Instant + Duration`)
    // is ignored as malformed, and the call is answered.
    let request = proto::AnalyzeRequest {
        article: Some(article("t", "جملة عن التدريب المشترك للقوات.")),
        options: None,
    }
    .encode_to_vec();
    let (code, message) = raw_call(
        addr,
        ANALYZE,
        &[("grpc-timeout", "18446744073709551615S")],
        request.len() as u32,
        &request,
        true,
    )
    .await;
    assert_eq!(code, 0, "{message}");
    // Random bytes instead of HTTP/2: the connection is dropped, the
    // server serves on.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = tcp.write_all(&noise).await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut sink)).await;
    assert!(
        server
            .client()
            .await
            .get_info(proto::GetInfoRequest {})
            .await
            .is_ok()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_and_expired_calls_stop_their_work_and_free_the_queue() {
    // An engine of its own, so its batcher's counters see only this test.
    let batcher = Arc::new(Metrics::new());
    let engine = Arc::new(super::common::server::own_analyzer(batcher.clone()));
    let server = TestServer::launch(ServeConfig::default(), None, engine.into()).await;
    let batches = || batcher.batch_texts.get_sample_count();
    let story = long_story(600);
    let analyze = |id: &str| proto::AnalyzeRequest {
        article: Some(article(id, &story)),
        options: None,
    };

    // A client that goes away mid-call.
    let mut client = server.client().await;
    let call = tokio::spawn({
        let request = analyze("cancelled");
        async move { client.analyze(request).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.metrics.queue_depth.get(), 1);
    call.abort();
    queue_drains(&server, Duration::from_secs(1)).await;
    // Its encoder work stops too: no encoder call starts after the cancel.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = batches();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(batches(), before, "the cancelled work kept running");

    // A deadline that passes mid-call. tonic's client enforces a timeout
    // itself, so the call goes over raw HTTP/2 to see the server's answer.
    let request = analyze("expired").encode_to_vec();
    let (code, message) = raw_call(
        server.addr,
        ANALYZE,
        &[("grpc-timeout", "400m")],
        request.len() as u32,
        &request,
        true,
    )
    .await;
    assert_eq!(code, Code::DeadlineExceeded as i32, "{message}");
    queue_drains(&server, Duration::from_secs(1)).await;

    // A stream dropped mid-way.
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut client = server.client().await;
    let mut results = client
        .analyze_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for i in 0..4 {
        tx.send(proto::AnalyzeStreamRequest {
            article: Some(article(&format!("s{i}"), &story)),
            options: None,
        })
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.metrics.queue_depth.get() >= 1);
    drop(tx);
    let _ = results.message().await; // may or may not get one in time
    drop(results);
    drop(client);
    queue_drains(&server, Duration::from_secs(2)).await;

    // A stream with a deadline ends with DEADLINE_EXCEEDED.
    let items: Vec<proto::AnalyzeStreamRequest> = (0..3)
        .map(|i| proto::AnalyzeStreamRequest {
            article: Some(article(&format!("d{i}"), &story)),
            options: None,
        })
        .collect();
    let mut request = tonic::Request::new(tokio_stream::iter(items));
    request
        .metadata_mut()
        .insert("grpc-timeout", "500m".parse().unwrap());
    let mut results = server
        .client()
        .await
        .analyze_stream(request)
        .await
        .unwrap()
        .into_inner();
    let ended = loop {
        match results.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without its deadline"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::DeadlineExceeded, "{ended}");
    queue_drains(&server, Duration::from_secs(2)).await;

    // And the server serves on.
    assert!(
        server
            .client()
            .await
            .analyze(analyze("after"))
            .await
            .is_ok()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_counts_bytes_not_requests() {
    let limits = Limits {
        max_queued_bytes: 64 << 10,
        ..Limits::default()
    };
    let server = TestServer::start(limits, &[]).await;
    let mut client = server.client().await;
    let big = long_story(200); // ~40 KB of Arabic
    assert!(
        big.len() > 33 << 10 && big.len() < 60 << 10,
        "{}",
        big.len()
    );
    // More than the whole queue in one batch: split it (not "retry").
    let err = client
        .analyze_batch(proto::AnalyzeBatchRequest {
            articles: vec![article("b1", &big), article("b2", &big)],
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&err), ["articles"]);
    // One big article fits; a second one at the same time does not.
    let first = tokio::spawn({
        let mut client = server.client().await;
        let request = proto::AnalyzeRequest {
            article: Some(article("one", &big)),
            options: None,
        };
        async move { client.analyze(request).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = client
        .analyze(proto::AnalyzeRequest {
            article: Some(article("two", &big)),
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(first.await.unwrap().is_ok());
    // Embed costs its bytes too.
    let err = client
        .embed(proto::EmbedRequest {
            texts: vec![big.clone(), big.clone()],
            kind: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(field_violations(&err), ["texts"]);
    queue_drains(&server, Duration::from_secs(1)).await;
    server.stop().await;
}

/// A hashing encoder that panics on any text containing `PANIC`.
struct Panicky(HashingEncoder);

impl TextEncoder for Panicky {
    fn info(&self) -> &ModelInfo {
        self.0.info()
    }
    fn embed_until(
        &self,
        texts: &[&str],
        kind: InputKind,
        stop: &StopToken,
    ) -> Result<Vec<Vec<f32>>, EncodeError> {
        assert!(
            !texts.iter().any(|t| t.contains("PANIC")),
            "a bug in the encoder"
        );
        self.0.embed_until(texts, kind, stop)
    }
    fn token_states_until(
        &self,
        texts: &[&str],
        kind: InputKind,
        stop: &StopToken,
    ) -> Result<Vec<TokenStates>, EncodeError> {
        self.0.token_states_until(texts, kind, stop)
    }
}

pub(crate) fn panicky_engine(alive: Option<Liveness>) -> Loaded {
    let data = AnalysisData::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
        &[],
    )
    .unwrap();
    let batching = BatchingEncoder::start(
        Arc::new(Panicky(HashingEncoder::new(64))),
        BatchingOptions::default(),
        Arc::new(Metrics::new()),
    );
    let alive = alive.unwrap_or_else(|| batching.liveness());
    Loaded {
        analyzer: Arc::new(
            Analyzer::new(Arc::new(batching), data, AnalyzerOptions::default()).unwrap(),
        ),
        alive: Some(alive),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_encoder_fails_one_call_and_the_server_serves_on() {
    let server = TestServer::launch(ServeConfig::default(), None, panicky_engine(None)).await;
    let mut client = server.client().await;
    let err = client
        .analyze(proto::AnalyzeRequest {
            article: Some(article("p", "هذه جملة فيها PANIC عمداً للاختبار.")),
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err}");
    let ok = client
        .analyze(proto::AnalyzeRequest {
            article: Some(article("ok", "جملة عادية عن التدريب المشترك.")),
            options: None,
        })
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    assert_eq!(
        server.health("khulasa.v1.Analyzer").await,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_not_serving_when_the_engine_is_gone() {
    let dead = Arc::new(AtomicBool::new(false));
    let alive: Liveness = {
        let dead = dead.clone();
        Arc::new(move || !dead.load(Ordering::Relaxed))
    };
    let server =
        TestServer::launch(ServeConfig::default(), None, panicky_engine(Some(alive))).await;
    dead.store(true, Ordering::Relaxed);
    let until = Instant::now() + Duration::from_secs(5);
    while server.health("khulasa.v1.Analyzer").await
        != tonic_health::pb::health_check_response::ServingStatus::NotServing as i32
    {
        assert!(Instant::now() < until, "health still says SERVING");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let err = server
        .client()
        .await
        .analyze(proto::AnalyzeRequest {
            article: Some(article("x", "جملة.")),
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_closed_and_slots_come_back() {
    let config = ServeConfig {
        transport: TransportLimits {
            max_connections: 2,
            ..TransportLimits::default()
        },
        ..ServeConfig::default()
    };
    // TestServer::launch polls health over connections of its own, which
    // it closes; the two held here then take both slots.
    let server = TestServer::launch(config, None, panicky_engine(None)).await;
    let held = [server.channel().await, server.channel().await];
    for c in &held {
        assert!(
            proto::analyzer_client::AnalyzerClient::new(c.clone())
                .get_info(proto::GetInfoRequest {})
                .await
                .is_ok()
        );
    }
    let third = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await;
    let refused = match third {
        Err(_) => true,
        Ok(c) => proto::analyzer_client::AnalyzerClient::new(c)
            .get_info(proto::GetInfoRequest {})
            .await
            .is_err(),
    };
    assert!(refused, "a third connection was served");
    assert!(server.metrics.connections_refused.get() >= 1);
    drop(held);
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let c = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await;
        if let Ok(c) = c
            && proto::analyzer_client::AnalyzerClient::new(c)
                .get_info(proto::GetInfoRequest {})
                .await
                .is_ok()
        {
            break;
        }
        assert!(Instant::now() < until, "the slots never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_port_sheds_idle_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Arc::new(Metrics::new());
    tokio::spawn(khulasa::metrics::serve(listener, metrics));
    // Regression: idle connections were kept forever. 40 idle clients (more
    // than the 32 slots) send nothing...
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // ...and are closed once the header timeout passes (read gives EOF).
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(15), idle[0].read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Then a scrape is served.
    let mut scrape = tokio::net::TcpStream::connect(addr).await.unwrap();
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    scrape.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("khulasa_queue_depth"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_have_their_own_size_limit() {
    // Regression: responses shared the request limit, so a batch could do
    // all its work and then fail OUT_OF_RANGE. A response carries the story
    // and every sentence again, about twice the request.
    let limits = Limits {
        max_message_bytes: 96 << 10,
        ..Limits::default()
    };
    let server = TestServer::start(limits, &[]).await;
    let story = long_story(120);
    let articles: Vec<proto::Article> = (0..3).map(|i| article(&format!("r{i}"), &story)).collect();
    let request = proto::AnalyzeBatchRequest {
        articles,
        options: None,
    };
    assert!(request.encoded_len() < 96 << 10);
    let response = server
        .client()
        .await
        .max_decoding_message_size(usize::MAX)
        .analyze_batch(request)
        .await
        .unwrap()
        .into_inner();
    assert!(
        response.encoded_len() > 96 << 10,
        "{}",
        response.encoded_len()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_where_every_byte_is_a_token_is_cut_at_the_token_budget() {
    // Regression: 200 "words" of 2,000 combining marks (800 KB) cost 3.5
    // CPU-minutes, every sentence embedded at up to 1,000 tokens.
    let server = TestServer::start(Limits::default(), &[]).await;
    let storm: String = (0..200)
        .map(|i| {
            let marks: String = (0..2000)
                .map(|j| char::from_u32(0x064b + ((i + j) % 8) as u32).unwrap())
                .collect();
            format!("ا{marks} ")
        })
        .collect();
    let started = Instant::now();
    let r = server
        .client()
        .await
        .analyze(proto::AnalyzeRequest {
            article: Some(article("storm", &storm)),
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.truncated);
    assert!(r.sentences.len() < 200, "{} sentences", r.sentences.len());
    eprintln!(
        "storm: {} sentences in {:?}",
        r.sentences.len(),
        started.elapsed()
    );
    // Embed counts tokens too: 600 KB of marks is ~300,000 of them.
    let marks: String = (0..300_000)
        .map(|j| char::from_u32(0x064b + (j % 8) as u32).unwrap())
        .collect();
    let err = server
        .client()
        .await
        .embed(proto::EmbedRequest {
            texts: vec![marks],
            kind: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(field_violations(&err), ["texts"], "{err}");
    assert!(err.message().contains("tokens"), "{err}");
    server.stop().await;
}
