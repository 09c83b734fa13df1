//! The gRPC service end to end on the real model: servers bound to
//! 127.0.0.1:0, real tonic clients, assertions on what a client sees
//! (codes, BadRequest field violations, health, reflection, auth).

use crate::common;
pub(crate) mod hostile;

use std::path::Path;

use common::server::TestServer;
use khulasa::api::Limits;
use khulasa::proto;
use khulasa::proto::analyzer_client::AnalyzerClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const PAGE: &str = "بغداد وواشنطن تبحثان توسيع برامج تدريب الجيش العراقي

بغداد – بحث وزير الدفاع العراقي مع قائد القيادة المركزية الأمريكية، اليوم الأحد، توسيع برامج تدريب وحدات الجيش وتبادل المعلومات الاستخبارية لملاحقة خلايا داعش.

وأكد الجانبان التزامهما بتعزيز الشراكة الأمنية، فيما رحب الوزير بالدعم الأمريكي المستمر للقوات العراقية.

إقرأ أيضاً: ارتفاع أسعار الذهب في الأسواق المحلية

وأضاف البيان أن فرقاً فنية ستبدأ الشهر المقبل تقييم احتياجات القوة الجوية من قطع الغيار والتدريب.
";

fn article(id: &str, text: &str) -> proto::Article {
    proto::Article {
        id: id.into(),
        content: Some(proto::article::Content::Text(text.into())),
        ..Default::default()
    }
}

fn field_violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_end_to_end() {
    let server = TestServer::start(Limits::default(), &[]).await;
    let mut client = server.client().await;

    // GetInfo describes the model, data and limits.
    let info = client
        .get_info(proto::GetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.model.as_ref().unwrap().dim, 384);
    assert_eq!(info.default_label_set, "security-news");
    assert!(
        info.label_sets
            .iter()
            .any(|s| s.name == "iptc-media-topics")
    );
    assert_eq!(info.limits.as_ref().unwrap().max_batch_articles, 64);

    // Analyze: main story, topics, stance, summary, timings.
    let r = client
        .analyze(proto::AnalyzeRequest {
            article: Some(article("a1", PAGE)),
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.id, "a1");
    assert_eq!(r.language, "ar");
    assert!(
        !r.main_story.as_ref().unwrap().text.contains("الذهب"),
        "the read-also insert leaked"
    );
    assert!(r.removed.iter().any(|b| b.reason == "read_also"));
    assert_eq!(r.topics.as_ref().unwrap().primary, "security_cooperation");
    assert_eq!(
        r.stance.as_ref().unwrap().label,
        proto::StanceLabel::Supportive as i32
    );
    let summary = r.summary.as_ref().unwrap();
    assert_eq!(summary.status, proto::SummaryStatus::Ok as i32);
    for s in &summary.sentences {
        let span = s.span.unwrap();
        assert_eq!(&PAGE[span.start as usize..span.end as usize], s.text);
    }
    let t = r.timings.unwrap();
    assert!(t.total_ms > 0.0 && t.inference_ms > 0.0, "{t:?}");
    assert_eq!(r.model_id, "multilingual-e5-small");

    // Bad input: INVALID_ARGUMENT with the field named.
    let err = client
        .analyze(proto::AnalyzeRequest {
            article: Some(article("empty", "   ")),
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&err), ["article.text"]);
    let err = client
        .analyze(proto::AnalyzeRequest {
            article: Some(proto::Article {
                id: "none".into(),
                ..Default::default()
            }),
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(field_violations(&err), ["article.content"]);
    let err = client
        .analyze(proto::AnalyzeRequest {
            article: Some(article("x", PAGE)),
            options: Some(proto::AnalyzeOptions {
                labels: Some(proto::analyze_options::Labels::LabelSetName("nope".into())),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&err), ["options.label_set_name"]);

    // An inline label set, a custom target and a generic summary.
    let r = client
        .analyze(proto::AnalyzeRequest {
            article: Some(article("a2", PAGE)),
            options: Some(proto::AnalyzeOptions {
                tasks: vec![proto::Task::Topics as i32, proto::Task::Summary as i32],
                labels: Some(proto::analyze_options::Labels::InlineLabelSet(
                    proto::LabelSet {
                        name: "mine".into(),
                        multi_label: false,
                        labels: vec![
                            proto::Label {
                                id: "military".into(),
                                description: vec!["التعاون العسكري وتدريب الجيوش".into()],
                                examples: vec![],
                                code: "desk:defence".into(),
                                uri: "https://vocab.example.org/desk/defence".into(),
                            },
                            proto::Label {
                                id: "markets".into(),
                                description: vec!["أسعار الذهب والأسواق المالية".into()],
                                ..Default::default()
                            },
                        ],
                    },
                )),
                generic_summary: true,
                max_sentences: 1,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let topics = r.topics.unwrap();
    assert_eq!(
        (topics.label_set.as_str(), topics.primary.as_str()),
        ("mine", "military")
    );
    // A label's vocabulary code comes back with its score.
    let codes: Vec<(&str, &str, &str)> = topics
        .labels
        .iter()
        .map(|l| (l.label.as_str(), l.code.as_str(), l.uri.as_str()))
        .collect();
    assert_eq!(
        codes,
        [
            (
                "military",
                "desk:defence",
                "https://vocab.example.org/desk/defence"
            ),
            ("markets", "", "")
        ]
    );
    assert!(r.stance.is_none(), "only the asked tasks run");
    let summary = r.summary.unwrap();
    assert_eq!(
        (summary.mode.as_str(), summary.sentences.len()),
        ("generic", 1)
    );

    // AnalyzeBatch: a bad article fails alone.
    let batch = client
        .analyze_batch(proto::AnalyzeBatchRequest {
            articles: vec![article("b1", PAGE), article("b2", " "), article("b3", PAGE)],
            options: None,
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = batch.results.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["b1", "b2", "b3"]);
    assert!(matches!(
        batch.results[0].outcome,
        Some(proto::analyze_result::Outcome::Response(_))
    ));
    match &batch.results[1].outcome {
        Some(proto::analyze_result::Outcome::Error(e)) => assert_eq!(e.code, "INVALID_ARGUMENT"),
        other => panic!("{other:?}"),
    }
    let too_many = vec![article("x", PAGE); 65];
    let err = client
        .analyze_batch(proto::AnalyzeBatchRequest {
            articles: too_many,
            options: None,
        })
        .await
        .unwrap_err();
    assert_eq!(field_violations(&err), ["articles"]);

    // AnalyzeStream: results carry ids; a failed article does not end the stream.
    let outbound =
        tokio_stream::iter(
            ["s1", "s2", "bad", "s3"].map(|id| proto::AnalyzeStreamRequest {
                article: Some(article(id, if id == "bad" { "" } else { PAGE })),
                options: None,
            }),
        );
    let mut stream = client.analyze_stream(outbound).await.unwrap().into_inner();
    let mut seen = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        let ok = matches!(r.outcome, Some(proto::analyze_result::Outcome::Response(_)));
        seen.push((r.id, ok));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("bad".into(), false),
            ("s1".into(), true),
            ("s2".into(), true),
            ("s3".into(), true)
        ]
    );

    // Embed.
    let e = client
        .embed(proto::EmbedRequest {
            texts: vec!["التعاون الأمني".into(), "security cooperation".into()],
            kind: proto::InputKind::Query as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.embeddings.len(), 2);
    assert_eq!(e.embeddings[0].values.len(), 384);
    let err = client
        .embed(proto::EmbedRequest {
            texts: vec![],
            kind: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(field_violations(&err), ["texts"]);

    // Reflection lists the API for grpcurl and Postman.
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(
            server.channel().await,
        );
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let listed = format!("{:?}", reply.message_response);
    assert!(
        listed.contains("khulasa.v1.Analyzer") && listed.contains("grpc.health.v1.Health"),
        "{listed}"
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_the_analyzer_but_not_health() {
    let server = TestServer::start(Limits::default(), &["s3cret"]).await;
    let mut client = server.client().await;
    let err = client.get_info(proto::GetInfoRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut request = tonic::Request::new(proto::GetInfoRequest {});
    request
        .metadata_mut()
        .insert("authorization", "Bearer wrong".parse().unwrap());
    assert_eq!(
        client.get_info(request).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut request = tonic::Request::new(proto::GetInfoRequest {});
    request
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    assert!(client.get_info(request).await.is_ok());
    // Health stays open (wait_serving already used it without a key).
    assert_eq!(
        server.health("").await,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_resource_exhausted_at_once() {
    let server = TestServer::start(
        Limits {
            max_queued: 1,
            ..Limits::default()
        },
        &[],
    )
    .await;
    // Four at once on a queue of one: the first runs, the others are
    // refused without waiting for it.
    let mut calls = Vec::new();
    for i in 0..4 {
        let channel = server.channel().await;
        calls.push(tokio::spawn(async move {
            let mut client = AnalyzerClient::new(channel);
            let started = std::time::Instant::now();
            let r = client
                .analyze(proto::AnalyzeRequest {
                    article: Some(article(&format!("q{i}"), PAGE)),
                    options: None,
                })
                .await;
            (r.map(|_| ()), started.elapsed())
        }));
    }
    let mut exhausted = 0;
    for call in calls {
        let (result, took) = call.await.unwrap();
        if let Err(e) = result {
            assert_eq!(e.code(), Code::ResourceExhausted, "{e}");
            assert!(took < std::time::Duration::from_secs(5));
            exhausted += 1;
        }
    }
    assert!(exhausted >= 1, "a queue of one took four articles");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_encrypted_clients_only() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let tls = (read("ca.crt"), read("server.crt"), read("server.key"));
    let server = TestServer::start_with(Limits::default(), &[], Some(tls)).await;
    let mut client = server.client().await;
    let info = client
        .get_info(proto::GetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.model.unwrap().dim, 384);
    // A plaintext client cannot talk to it.
    let plain = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let err = AnalyzerClient::new(channel)
            .get_info(proto::GetInfoRequest {})
            .await
            .unwrap_err();
        assert_ne!(err.code(), Code::Ok);
    }
    server.stop().await;
}
