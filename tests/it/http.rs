//! The HTTP/JSON door end to end: real servers on 127.0.0.1:0, a real HTTP
//! client (reqwest), every route and every error status, and the same
//! answer as gRPC for the same article.

use std::sync::Arc;
use std::time::Duration;

use crate::common;
use common::server::TestServer;
use khulasa::api::Limits;
use khulasa::metrics::Metrics;
use khulasa::proto;
use khulasa::service::server;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A scraped page: the story (one paragraph opened by an emoji, two UTF-16
/// units), a "read also" insert and a related list.
const PAGE: &str = "الأمن العراقي يتسلم دفعة جديدة من المعدات الأمريكية

بغداد – أعلنت وزارة الدفاع العراقية، الثلاثاء، تسلم دفعة جديدة من العربات المدرعة ضمن برنامج الدعم الأمني الأمريكي، على أن يشرف مدربون من التحالف على تأهيل الطواقم.

📌 وقال المتحدث باسم الوزارة إن التعاون مع واشنطن يركز على التدريب وتبادل المعلومات لملاحقة بقايا تنظيم داعش في المناطق الصحراوية.

اقرأ أيضاً: منتخب الشباب يفوز في بطولة غرب آسيا

وأشار إلى أن الجانبين سيعقدان اجتماعاً فنياً الشهر المقبل لتقييم احتياجات القوات البرية.

الأكثر قراءة
أسعار النفط ترتفع مع تراجع المخزونات
افتتاح معرض بغداد الدولي للكتاب
";

fn analyze_body(id: &str) -> String {
    json!({"article": {"id": id, "text": PAGE}, "options": {"max_sentences": 2}}).to_string()
}

async fn post(url: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn json_of(r: reqwest::Response) -> Value {
    let bytes = r.bytes().await.unwrap();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// Asserts an error answer: its status, code, and (for 400) the field.
async fn assert_error(r: reqwest::Response, status: StatusCode, code: &str, field: Option<&str>) {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v = json_of(r).await;
    assert_eq!(v["code"], code, "{v}");
    assert!(!v["message"].as_str().unwrap().is_empty());
    let fields: Vec<&str> = v["field_violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    match field {
        Some(f) => assert_eq!(fields, [f], "{v}"),
        None => assert!(fields.is_empty(), "{v}"),
    }
}

#[tokio::test]
async fn every_route_answers_in_the_proto_json_mapping() {
    let s = TestServer::start(Limits::default(), &[]).await;
    let client = reqwest::Client::new();

    let live = client.get(s.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let ready = client.get(s.url("/health/ready")).send().await.unwrap();
    assert_eq!(json_of(ready).await["status"], "SERVING");

    // The editor's page and its assets, from the binary itself.
    for (path, kind, needle) in [
        ("/", "text/html", r#"<script src="/app.js">"#),
        ("/app.js", "text/javascript", "/v1/analyze"),
        ("/app.css", "text/css", ".story"),
    ] {
        let r = client.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert!(r.headers().contains_key("content-security-policy"));
        assert!(r.text().await.unwrap().contains(needle), "{path}");
    }

    // The OpenAPI document names every route this server answers.
    let doc = json_of(client.get(s.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(doc["openapi"], "3.1.0");
    for route in khulasa::http::openapi::ROUTES {
        assert!(
            doc["paths"][route.path][route.method].is_object(),
            "{}",
            route.path
        );
    }

    let info = client.get(s.url("/v1/info")).send().await.unwrap();
    assert_eq!(info.status(), StatusCode::OK);
    let info: proto::GetInfoResponse =
        serde_json::from_slice(&info.bytes().await.unwrap()).unwrap();
    assert_eq!(info.model.unwrap().dim, 384);
    assert!(info.label_sets.iter().any(|l| l.name == "security-news"));

    let r = post(&s.url("/v1/analyze"), analyze_body("page-1")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r: proto::AnalyzeResponse = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(r.id, "page-1");
    let story = r.main_story.unwrap().text;
    assert!(story.contains("العربات المدرعة"));
    assert!(!story.contains("منتخب الشباب"), "the insert is removed");
    assert!(!r.removed.is_empty());
    let summary = r.summary.unwrap();
    assert!(!summary.sentences.is_empty() && summary.sentences.len() <= 2);
    // Every offset, read as JavaScript would (UTF-16 units), finds the
    // same text in the page as sent.
    let units: Vec<u16> = PAGE.encode_utf16().collect();
    let js = |span: &Option<proto::Span>| {
        let s = span.as_ref().unwrap();
        String::from_utf16(&units[s.utf16_start as usize..s.utf16_end as usize]).unwrap()
    };
    assert!(r.sentences.iter().any(|s| s.text.starts_with('📌')));
    for s in &r.sentences {
        assert_eq!(js(&s.span), s.text);
        let b = s.span.as_ref().unwrap();
        assert_eq!(&PAGE[b.start as usize..b.end as usize], s.text);
    }
    for s in &summary.sentences {
        assert_eq!(js(&s.span), s.text);
    }
    for b in &r.removed {
        let s = b.span.as_ref().unwrap();
        assert_eq!(js(&b.span), PAGE[s.start as usize..s.end as usize]);
    }
    assert_eq!(
        r.topics.unwrap().primary,
        "security_cooperation",
        "an article on US equipment and training"
    );

    let batch = json!({"articles": [
        {"id": "ok", "text": PAGE},
        {"id": "empty"},
    ]});
    let r = post(&s.url("/v1/analyze:batch"), batch.to_string()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v = json_of(r).await;
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["response"]["id"], "ok");
    assert_eq!(results[1]["error"]["code"], "INVALID_ARGUMENT", "{v}");

    let r = post(
        &s.url("/v1/embed"),
        json!({"texts": ["تدريب القوات", "training the forces"], "kind": "INPUT_KIND_QUERY"})
            .to_string(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let e: proto::EmbedResponse = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(e.embeddings.len(), 2);
    assert_eq!(e.embeddings[0].values.len(), 384);

    // Counted under their door.
    let metrics = s.metrics.render();
    assert!(
        metrics.contains(r#"khulasa_requests_total{code="OK",door="http",rpc="Analyze"} 1"#),
        "{metrics}"
    );
    s.stop().await;
}

/// Removes the `timings` object (its figures differ from call to call).
fn without_timings(json: &str) -> String {
    let start = json.find(r#","timings":{"#).expect("timings present");
    let end = start + json[start..].find('}').unwrap() + 1;
    format!("{}{}", &json[..start], &json[end..])
}

#[tokio::test]
async fn http_and_grpc_give_the_same_json_for_the_same_article() {
    // Its own batcher, and one call at a time: each article runs alone in
    // its forward passes, so both doors compute exactly the same numbers.
    let engine = Arc::new(common::server::own_analyzer(Arc::new(Metrics::new())));
    let s = TestServer::launch(server::ServeConfig::default(), None, engine.into()).await;
    let http = post(&s.url("/v1/analyze"), analyze_body("same")).await;
    assert_eq!(http.status(), StatusCode::OK);
    let http = String::from_utf8(http.bytes().await.unwrap().to_vec()).unwrap();
    let request: proto::AnalyzeRequest = serde_json::from_str(&analyze_body("same")).unwrap();
    let grpc = s
        .client()
        .await
        .analyze(request)
        .await
        .unwrap()
        .into_inner();
    let grpc = serde_json::to_string(&grpc).unwrap();
    assert_eq!(without_timings(&http), without_timings(&grpc));
    s.stop().await;
}

#[tokio::test]
async fn each_failure_has_its_status_code_and_body() {
    let limits = Limits {
        max_message_bytes: 64 << 10,
        ..Limits::default()
    };
    let s = TestServer::start(limits, &["key-1"]).await;
    let client = reqwest::Client::new();
    let authed = |rb: reqwest::RequestBuilder| rb.header("authorization", "Bearer key-1");

    // 401: no key, or a wrong one; health stays open.
    let r = post(&s.url("/v1/analyze"), analyze_body("a")).await;
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", None).await;
    let r = client
        .get(s.url("/v1/info"))
        .header("authorization", "Bearer nope")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", None).await;
    let r = client.get(s.url("/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // 400: not JSON, unknown fields, a bad article, a bad timeout.
    let bad = |body: &'static str| authed(client.post(s.url("/v1/analyze"))).body(body).send();
    assert_error(
        bad("{not json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        Some("body"),
    )
    .await;
    assert_error(
        bad(r#"{"artcle": {}}"#).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        Some("body"),
    )
    .await;
    assert_error(
        bad(r#"{"article": {"id": "x"}}"#).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        Some("article.content"),
    )
    .await;
    let r = authed(client.post(s.url("/v1/analyze?timeout=soon")))
        .body(analyze_body("a"))
        .send()
        .await
        .unwrap();
    assert_error(
        r,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        Some("timeout"),
    )
    .await;

    // 413: a body over the message limit, refused on its length.
    let big = json!({"article": {"id": "big", "text": "كلمة ".repeat(20_000)}}).to_string();
    assert!(big.len() > 64 << 10);
    let r = authed(client.post(s.url("/v1/analyze")))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "RESOURCE_EXHAUSTED", None).await;

    // 504: a deadline too short for the work.
    let r = authed(client.post(s.url("/v1/analyze")))
        .header("x-request-timeout", "1ms")
        .body(analyze_body("late"))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED", None).await;

    // 404 and 405, in the same JSON shape.
    let r = authed(client.get(s.url("/v2/analyze")))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "NOT_FOUND", None).await;
    let r = authed(client.get(s.url("/v1/analyze")))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::METHOD_NOT_ALLOWED, "UNIMPLEMENTED", None).await;
    s.stop().await;
}

#[tokio::test]
async fn a_full_queue_is_429_with_retry_after_and_loading_is_503() {
    // One article admitted at a time: while a long one runs, the next is
    // refused at once.
    let limits = Limits {
        max_queued: 1,
        ..Limits::default()
    };
    let s = TestServer::start(limits, &[]).await;
    let long = json!({"article": {"id": "long", "text": PAGE.repeat(40)}}).to_string();
    let url = s.url("/v1/analyze");
    let running = tokio::spawn(async move { post(&url, long).await.status() });
    let mut refused = None;
    for _ in 0..200 {
        let r = post(&s.url("/v1/analyze"), analyze_body("next")).await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status(), StatusCode::OK, "only OK or 429");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = refused.expect("the second article was refused while the first ran");
    assert_eq!(r.headers()["retry-after"], "1");
    assert_error(r, StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", None).await;
    assert_eq!(running.await.unwrap(), StatusCode::OK);
    s.stop().await;

    // While the model loads, ready is 503 and calls are UNAVAILABLE.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let s = TestServer::spawn(server::ServeConfig::default(), None, move || {
        let _ = released.recv();
        Ok(common::server::analyzer().into())
    })
    .await;
    let client = reqwest::Client::new();
    let mut ready = None;
    for _ in 0..100 {
        if let Ok(r) = client.get(s.url("/health/ready")).send().await {
            ready = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready = ready.expect("the HTTP door listens while loading");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = post(&s.url("/v1/analyze"), analyze_body("early")).await;
    assert_eq!(r.headers()["retry-after"], "5");
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", None).await;
    release.send(()).unwrap();
    s.wait_serving().await;
    let ready = client.get(s.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn cors_lets_configured_origins_call_and_no_others() {
    let config = server::ServeConfig {
        http: Some(khulasa::http::HttpConfig {
            listener: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            cors: khulasa::http::Cors::from_origins(&["https://cms.example.org".into()]).unwrap(),
        }),
        api_keys: ["k".to_string()].into(),
        ..Default::default()
    };
    let s = TestServer::launch(config, None, common::server::analyzer().into()).await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, s.url("/v1/analyze"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    // A preflight needs no key, and names what the page may send.
    let r = preflight("https://cms.example.org").await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "https://cms.example.org");
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    let r = preflight("https://elsewhere.example.com").await.unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));

    // The answer itself carries the origin, and exposes Retry-After.
    let r = client
        .get(s.url("/v1/info"))
        .header("origin", "https://cms.example.org")
        .header("authorization", "Bearer k")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://cms.example.org"
    );
    assert!(
        r.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("retry-after")
    );
    s.stop().await;
}

#[tokio::test]
async fn a_ninjs_item_comes_back_with_iptc_subjects_and_a_summary() {
    let s = TestServer::start(Limits::default(), &[]).await;
    let html: String = PAGE
        .split("\n\n")
        .map(|p| format!("<p>{}</p>", p.replace('\n', "<br>")))
        .collect();
    let item = json!({
        "uri": "https://news.example.org/2026/12/01/armour",
        "type": "text",
        "language": "ar",
        "pubstatus": "usable",
        "headlines": [{"role": "main", "contenttype": "text/plain", "value": "الأمن العراقي يتسلم دفعة جديدة من المعدات الأمريكية"}],
        "bodies": [{"role": "main", "contenttype": "text/html", "value": html}],
        "subjects": [{"name": "from the desk", "uri": "urn:desk:iraq"}],
    });
    let r = post(
        &s.url("/v1/ninjs:analyze"),
        json!({"item": item, "options": {"max_sentences": 2}}).to_string(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v = json_of(r).await;
    let analysis: proto::AnalyzeResponse = serde_json::from_value(v["analysis"].clone()).unwrap();
    assert_eq!(analysis.id, "https://news.example.org/2026/12/01/armour");
    let topics = analysis.topics.unwrap();
    assert_eq!(topics.label_set, "iptc-media-topics");
    assert!(!topics.multi_label, "the main top-level subject");
    // Every IPTC label carries its QCode and concept URI.
    for l in &topics.labels {
        let number = l.code.strip_prefix("medtop:").expect("a medtop QCode");
        assert_eq!(
            l.uri,
            format!("http://cv.iptc.org/newscodes/mediatopic/{number}")
        );
    }
    // An article on armed forces and their training and equipment.
    assert_eq!(
        topics.primary, "conflict_war_and_peace",
        "{:?}",
        topics.labels
    );
    // The item keeps its own fields and subjects, and gains ours: the main
    // subject, on ninjs's 0-100 scale.
    let out = &v["item"];
    assert_eq!(out["pubstatus"], "usable");
    let subjects = out["subjects"].as_array().unwrap();
    assert_eq!(subjects.len(), 2);
    assert_eq!(subjects[0]["uri"], "urn:desk:iraq");
    let (ours, top) = (&subjects[1], &topics.labels[0]);
    assert_eq!(
        ours["uri"],
        "http://cv.iptc.org/newscodes/mediatopic/16000000"
    );
    assert_eq!(ours["literal"], top.label.as_str());
    assert_eq!(
        ours["confidence"].as_u64().unwrap(),
        (top.probability * 100.0).round() as u64
    );
    let summary = &out["descriptions"][0];
    assert_eq!(summary["role"], "summary");
    let first = &analysis.summary.unwrap().sentences[0].text;
    assert!(
        summary["value"]
            .as_str()
            .unwrap()
            .starts_with(first.as_str())
    );

    // An item without a body says which field to fix.
    let r = post(
        &s.url("/v1/ninjs:analyze"),
        json!({"item": {"uri": "urn:x", "headlines": [{"value": "h"}]}}).to_string(),
    )
    .await;
    assert_error(
        r,
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        Some("item.bodies"),
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn tls_serves_the_http_door_with_the_same_certificate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let tls = (read("ca.crt"), read("server.crt"), read("server.key"));
    let ca = reqwest::Certificate::from_pem(&tls.0).unwrap();
    let s = TestServer::start_with(Limits::default(), &[], Some(tls)).await;
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .resolve("localhost", s.http_addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/v1/analyze", s.http_addr.port());
    let r = client
        .post(&url)
        .body(analyze_body("tls"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["id"], "tls");
    // Plain HTTP gets no answer from a TLS port.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/health/live", s.http_addr))
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_failure_is_500_and_the_door_serves_on() {
    // An encoder that panics on one text: that call fails, the next works.
    let engine = crate::service::hostile::panicky_engine(None);
    let s = TestServer::launch(server::ServeConfig::default(), None, engine).await;
    let url = s.url("/v1/embed");
    let r = post(
        &url,
        json!({"texts": ["a text with PANIC in it"]}).to_string(),
    )
    .await;
    assert_error(r, StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", None).await;
    let r = post(
        &url,
        json!({"texts": ["a text like any other"]}).to_string(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
}
