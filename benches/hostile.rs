//! The adversarial suite, long part: the real `khulasa serve` (release
//! build, default model) under thousands of generated hostile requests, an
//! overload burst at 4× its queue, and cancellations mid-stream; then health
//! and a normal call. Reports the answers per kind of input and status, the
//! worst latency, the server's peak RSS, and the CPU it spends after its
//! clients have gone. Exits non-zero on any INTERNAL/UNKNOWN answer, a
//! refusal without a clear status, a crash, or RSS over 1 GiB.
//!
//! `cargo bench --bench hostile [-- REQUESTS]` (default 2,000). The fast
//! part, one test per bound, is `tests/it/service/hostile.rs` in `cargo test`.

#[path = "../tests/it/common/raw.rs"]
mod raw;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use khulasa::proto;
use khulasa::proto::analyzer_client::AnalyzerClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const WORDS: &[&str] = &[
    "الجيش",
    "العراقي",
    "التعاون",
    "الأمني",
    "تدريب",
    "القوات",
    "واشنطن",
    "بغداد",
    "الوزير",
    "الاتفاق",
    "المشترك",
    "الحدود",
    "داعش",
    "المستشارين",
    "defence",
    "training",
    "forces",
    "ministry",
    "agreement",
    "the",
    "said",
    "on",
    "في",
    "من",
    "إلى",
    "أن",
];

fn prose(rng: &mut Rng, bytes: usize) -> String {
    let mut text = String::from("تقرير عن التعاون الأمني بين البلدين\n\n");
    while text.len() < bytes {
        let n = 8 + rng.below(20);
        for i in 0..n {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(WORDS[rng.below(WORDS.len())]);
        }
        text.push_str(if rng.below(4) == 0 { ".\n\n" } else { ". " });
    }
    text
}

fn text_article(id: String, text: String) -> proto::Article {
    proto::Article {
        id,
        content: Some(proto::article::Content::Text(text)),
        ..Default::default()
    }
}

fn html_article(id: String, html: String) -> proto::Article {
    proto::Article {
        id,
        content: Some(proto::article::Content::Html(html)),
        ..Default::default()
    }
}

/// One generated request.
enum Call {
    Analyze(proto::AnalyzeRequest),
    Batch(proto::AnalyzeBatchRequest),
    Embed(proto::EmbedRequest),
    /// A raw call: declared length, bytes, end of stream.
    Raw(u32, Vec<u8>, bool),
    /// Random bytes on a fresh TCP connection instead of HTTP/2.
    Noise(Vec<u8>),
}

/// The kinds of hostile input, with how often each is drawn (per 1,000).
const KINDS: &[(&str, usize)] = &[
    ("normal", 120),
    ("empty", 40),
    ("whitespace", 40),
    ("mb_prose", 6),
    ("one_word_sentences_50k", 10),
    ("one_mb_word", 8),
    ("random_bytes", 80),
    ("rtl_marks", 60),
    ("combining_storm", 50),
    ("deep_html_10k", 30),
    ("formatting_bomb", 30),
    ("huge_attribute", 20),
    ("invalid_options", 120),
    ("duplicate_ids_batch", 40),
    ("oversized_batch", 20),
    ("oversized_article", 16),
    ("embed_too_many", 30),
    ("embed_odd_texts", 60),
    ("raw_garbage_protobuf", 80),
    ("raw_truncated", 40),
    ("raw_absurd_prefix", 40),
    ("http2_noise", 60),
];

fn draw(rng: &mut Rng) -> &'static str {
    let total: usize = KINDS.iter().map(|k| k.1).sum();
    let mut x = rng.below(total);
    for (name, w) in KINDS {
        if x < *w {
            return name;
        }
        x -= w;
    }
    KINDS[0].0
}

fn generate(kind: &str, i: usize, rng: &mut Rng) -> Call {
    let id = format!("{kind}-{i}");
    let analyze = |a: proto::Article| {
        Call::Analyze(proto::AnalyzeRequest {
            article: Some(a),
            options: None,
        })
    };
    match kind {
        "normal" => {
            let n = 800 + rng.below(6000);
            analyze(text_article(id, prose(rng, n)))
        }
        "empty" => analyze(text_article(id, String::new())),
        "whitespace" => analyze(text_article(
            id,
            " \n\t\u{a0}\u{200b}\r\n  ".repeat(1 + rng.below(500)),
        )),
        "mb_prose" => analyze(text_article(id, prose(rng, 1_500_000))),
        "one_word_sentences_50k" => analyze(text_article(
            id,
            (0..50_000).map(|i| format!("كلمة{i}! ")).collect(),
        )),
        "one_mb_word" => analyze(text_article(id, "ب".repeat(500_000))),
        "random_bytes" => {
            let n = 1 + rng.below(64 << 10);
            analyze(text_article(
                id,
                String::from_utf8_lossy(&rng.bytes(n)).into_owned(),
            ))
        }
        "rtl_marks" => {
            let marks = [
                '\u{200f}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{061c}', '\u{200e}',
            ];
            let mut t = String::new();
            for _ in 0..(50 + rng.below(2000)) {
                t.push(marks[rng.below(marks.len())]);
                t.push_str(WORDS[rng.below(WORDS.len())]);
                if rng.below(8) == 0 {
                    t.push('.');
                }
                t.push(' ');
            }
            analyze(text_article(id, t))
        }
        "combining_storm" => {
            let mut t = String::new();
            for _ in 0..(1 + rng.below(200)) {
                t.push('ا');
                for _ in 0..(1 + rng.below(2000)) {
                    t.push(char::from_u32(0x064b + rng.below(8) as u32).unwrap());
                }
                t.push(' ');
            }
            analyze(text_article(id, t))
        }
        "deep_html_10k" => analyze(html_article(
            id,
            format!(
                "<html><body>{}<p>{}</p></body></html>",
                "<div>".repeat(10_000),
                prose(rng, 500)
            ),
        )),
        "formatting_bomb" => analyze(html_article(
            id,
            (0..3000)
                .map(|i| format!("<b class=\"c{i}\"><a href=\"#{i}\"><font size=\"{i}\">"))
                .collect::<String>()
                + &"<p>سطر قصير</p>".repeat(500),
        )),
        "huge_attribute" => analyze(html_article(
            id,
            format!(
                "<html><body><div data-x=\"{}\"><p>{}</p></div></body></html>",
                "A".repeat(1 << 20),
                prose(rng, 400)
            ),
        )),
        "invalid_options" => {
            let mut o = proto::AnalyzeOptions::default();
            match rng.below(7) {
                0 => o.max_sentences = u32::MAX,
                1 => o.ratio = f32::NAN,
                2 => o.ratio = -1.0,
                3 => o.tasks = vec![99],
                4 => o.labels = Some(proto::analyze_options::Labels::LabelSetName("nope".into())),
                5 => {
                    o.generic_summary = true;
                    o.focus = "التعاون".into();
                }
                _ => o.target = "ه".repeat(5000),
            }
            Call::Analyze(proto::AnalyzeRequest {
                article: Some(text_article(id, prose(rng, 600))),
                options: Some(o),
            })
        }
        "duplicate_ids_batch" => Call::Batch(proto::AnalyzeBatchRequest {
            articles: (0..5)
                .map(|_| text_article(id.clone(), prose(rng, 700)))
                .collect(),
            options: None,
        }),
        "oversized_batch" => Call::Batch(proto::AnalyzeBatchRequest {
            articles: (0..65)
                .map(|j| text_article(format!("{id}-{j}"), "نص.".into()))
                .collect(),
            options: None,
        }),
        "oversized_article" => analyze(text_article(id, "و".repeat((2 << 20) / 2 + 10))),
        "embed_too_many" => Call::Embed(proto::EmbedRequest {
            texts: vec!["نص".into(); 257],
            kind: 0,
        }),
        "embed_odd_texts" => Call::Embed(proto::EmbedRequest {
            texts: (0..(1 + rng.below(16)))
                .map(|_| match rng.below(4) {
                    0 => String::new(),
                    1 => {
                        let n = 1 + rng.below(4096);
                        String::from_utf8_lossy(&rng.bytes(n)).into_owned()
                    }
                    2 => "ّ".repeat(1 + rng.below(3000)),
                    _ => prose(rng, 300),
                })
                .collect(),
            kind: rng.below(4) as i32,
        }),
        "raw_garbage_protobuf" => {
            let n = 1 + rng.below(4096);
            let body = rng.bytes(n);
            Call::Raw(n as u32, body, true)
        }
        "raw_truncated" => {
            let n = 1 + rng.below(256);
            Call::Raw(n as u32 + 1 + rng.below(1 << 20) as u32, rng.bytes(n), true)
        }
        "raw_absurd_prefix" => Call::Raw(u32::MAX - rng.below(1 << 20) as u32, Vec::new(), false),
        "http2_noise" => {
            let n = 1 + rng.below(8192);
            // Half start like HTTP/2 (the preface), then noise.
            let mut b = if rng.below(2) == 0 {
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()
            } else {
                Vec::new()
            };
            b.extend(rng.bytes(n));
            Call::Noise(b)
        }
        other => unreachable!("{other}"),
    }
}

/// What one call got back.
#[derive(Debug, Clone)]
struct Outcome {
    /// `OK`, a gRPC code name, or `dropped` (noise: connection closed).
    status: String,
    /// An INVALID_ARGUMENT that names no field.
    unclear: bool,
    latency: Duration,
}

fn code_name(code: i32) -> String {
    format!("{:?}", Code::from_i32(code))
}

fn timed<T>(mut request: tonic::Request<T>) -> tonic::Request<T> {
    request
        .metadata_mut()
        .insert("grpc-timeout", "120S".parse().unwrap());
    request
}

fn status_outcome(s: &tonic::Status, latency: Duration) -> Outcome {
    let unclear = s.code() == Code::InvalidArgument
        && s.get_error_details()
            .bad_request()
            .is_none_or(|b| b.field_violations.is_empty());
    Outcome {
        status: code_name(s.code() as i32),
        unclear,
        latency,
    }
}

async fn run_call(
    client: &mut AnalyzerClient<Channel>,
    addr: std::net::SocketAddr,
    call: Call,
) -> Outcome {
    let started = Instant::now();
    let ok = |started: Instant| Outcome {
        status: "OK".into(),
        unclear: false,
        latency: started.elapsed(),
    };
    match call {
        Call::Analyze(r) => match client.analyze(timed(tonic::Request::new(r))).await {
            Ok(_) => ok(started),
            Err(s) => status_outcome(&s, started.elapsed()),
        },
        Call::Batch(r) => match client.analyze_batch(timed(tonic::Request::new(r))).await {
            Ok(b) => {
                let mut o = ok(started);
                for r in b.into_inner().results {
                    if let Some(proto::analyze_result::Outcome::Error(e)) = r.outcome
                        && (e.code == "INTERNAL" || e.code == "UNKNOWN")
                    {
                        o.status = format!("item {}", e.code);
                    }
                }
                o
            }
            Err(s) => status_outcome(&s, started.elapsed()),
        },
        Call::Embed(r) => match client.embed(timed(tonic::Request::new(r))).await {
            Ok(_) => ok(started),
            Err(s) => status_outcome(&s, started.elapsed()),
        },
        Call::Raw(len, body, end) => {
            let (code, _) =
                raw::raw_call(addr, "/khulasa.v1.Analyzer/Analyze", &[], len, &body, end).await;
            Outcome {
                status: if code == 0 {
                    "OK".into()
                } else {
                    code_name(code)
                },
                unclear: false,
                latency: started.elapsed(),
            }
        }
        Call::Noise(bytes) => {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let _ = tcp.write_all(&bytes).await;
            let mut sink = Vec::new();
            let closed =
                tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut sink)).await;
            Outcome {
                status: if closed.is_ok() {
                    "dropped".into()
                } else {
                    "held open".into()
                },
                unclear: false,
                latency: started.elapsed(),
            }
        }
    }
}

/// The server's resident set and CPU time, from /proc.
struct Proc(u32);

impl Proc {
    fn field(&self, name: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0)).ok()?;
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
    fn rss_kib(&self) -> u64 {
        self.field("VmRSS:").unwrap_or(0)
    }
    fn peak_kib(&self) -> u64 {
        self.field("VmHWM:").unwrap_or(0)
    }
    /// User + system CPU seconds so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0)).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
        ticks / 100.0
    }
}

fn start_server() -> (Child, std::net::SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = std::fs::File::create(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/hostile-server.log"),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_khulasa"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "serve",
            "--listen",
            &addr.to_string(),
            "--metrics-listen",
            "off",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("khulasa serve starts");
    (child, addr)
}

async fn wait_serving(addr: std::net::SocketAddr) -> Channel {
    for _ in 0..1200 {
        if let Ok(channel) = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
        {
            let mut h = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            if let Ok(r) = h
                .check(tonic_health::pb::HealthCheckRequest {
                    service: "khulasa.v1.Analyzer".into(),
                })
                .await
                && r.into_inner().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            {
                return channel;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server never became SERVING");
}

type Tally = BTreeMap<(String, String), (usize, Duration, usize)>;

fn add(tally: &Mutex<Tally>, kind: &str, o: &Outcome) {
    let mut t = tally.lock().unwrap();
    let e = t
        .entry((kind.to_string(), o.status.clone()))
        .or_insert((0, Duration::ZERO, 0));
    e.0 += 1;
    e.1 = e.1.max(o.latency);
    e.2 += usize::from(o.unclear);
}

fn main() {
    let requests: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut child, addr) = start_server();
    let proc_ = Proc(child.id());
    let result = runtime.block_on(suite(addr, requests, &proc_));
    let peak = proc_.peak_kib();
    let alive = child.try_wait().unwrap().is_none();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exit = child.wait().unwrap();
    let failures = result.failures + usize::from(!alive) + usize::from(peak > 1 << 20);
    println!(
        "\nserver: peak RSS {:.0} MiB (VmHWM; sampled max {:.0} MiB), alive to the end: {alive}, exit on SIGTERM: {exit}",
        peak as f64 / 1024.0,
        result.max_rss_kib as f64 / 1024.0
    );
    println!("failures: {failures}");
    let _ = std::io::stdout().flush();
    std::process::exit(i32::from(failures > 0));
}

struct SuiteResult {
    failures: usize,
    max_rss_kib: u64,
}

async fn suite(addr: std::net::SocketAddr, requests: usize, proc_: &Proc) -> SuiteResult {
    let channel = wait_serving(addr).await;
    println!(
        "server {addr} SERVING, RSS {:.0} MiB",
        proc_.rss_kib() as f64 / 1024.0
    );
    let max_rss = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let (max_rss, pid) = (max_rss.clone(), proc_.0);
        tokio::spawn(async move {
            let p = Proc(pid);
            loop {
                max_rss.fetch_max(p.rss_kib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut failures = 0;

    // 1. Generated hostile inputs, 8 clients at a time.
    let started = Instant::now();
    let tally = Arc::new(Mutex::new(Tally::new()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..8u64 {
        let (tally, next, channel) = (tally.clone(), next.clone(), channel.clone());
        workers.push(tokio::spawn(async move {
            let mut client = AnalyzerClient::new(channel).max_decoding_message_size(usize::MAX);
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w + 1));
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    return;
                }
                let kind = draw(&mut rng);
                let call = generate(kind, i, &mut rng);
                let o = run_call(&mut client, addr, call).await;
                add(&tally, kind, &o);
                if (i + 1) % 100 == 0 {
                    eprintln!("  {} requests", i + 1);
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    println!(
        "\n1. {requests} generated requests in {:.0} s\n\n| input | answer | count | worst latency (s) |\n|---|---|---|---|",
        started.elapsed().as_secs_f64()
    );
    for ((kind, status), (n, worst, unclear)) in tally.lock().unwrap().iter() {
        let bad = status.contains("Internal")
            || status.contains("Unknown")
            || status.contains("INTERNAL")
            || status == "held open";
        if bad || *unclear > 0 {
            failures += n;
        }
        println!(
            "| {kind} | {status}{} | {n} | {:.2} |",
            if *unclear > 0 {
                format!(" ({unclear} without a field violation)")
            } else {
                String::new()
            },
            worst.as_secs_f64()
        );
    }

    // 2. An overload burst: 4× the queue (64) at once, from 8 connections
    // (one HTTP/2 connection carries at most 64 streams at a time, so a
    // burst over one would queue in the client, never reaching admission).
    let mut connections = Vec::new();
    for _ in 0..8 {
        connections.push(
            Channel::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .expect("the server takes a connection"),
        );
    }
    let started = Instant::now();
    let burst = Arc::new(Mutex::new(Tally::new()));
    let mut calls = Vec::new();
    for i in 0..256 {
        let (burst, channel) = (burst.clone(), connections[i as usize % 8].clone());
        calls.push(tokio::spawn(async move {
            let mut client = AnalyzerClient::new(channel);
            let mut rng = Rng(1000 + i);
            let text = prose(&mut rng, 3000);
            let t0 = Instant::now();
            let o = match client
                .analyze(timed(tonic::Request::new(proto::AnalyzeRequest {
                    article: Some(text_article(format!("burst-{i}"), text)),
                    options: None,
                })))
                .await
            {
                Ok(_) => Outcome {
                    status: "OK".into(),
                    unclear: false,
                    latency: t0.elapsed(),
                },
                Err(s) => status_outcome(&s, t0.elapsed()),
            };
            add(&burst, "burst", &o);
        }));
    }
    for c in calls {
        c.await.unwrap();
    }
    println!(
        "\n2. overload: 256 concurrent Analyze on a queue of 64, done in {:.1} s\n\n| answer | count | worst latency (s) |\n|---|---|---|",
        started.elapsed().as_secs_f64()
    );
    for ((_, status), (n, worst, _)) in burst.lock().unwrap().iter() {
        if status != "OK" && status != "ResourceExhausted" {
            failures += n;
        }
        println!("| {status} | {n} | {:.2} |", worst.as_secs_f64());
    }

    // 3. Cancellations: 16 streams of long articles dropped mid-way, then
    // 16 calls whose deadline passes mid-way. CPU is read from the second
    // after to five seconds after.
    for phase in ["streams dropped", "deadlines passed"] {
        let mut held = Vec::new();
        for s in 0..16 {
            let mut client = AnalyzerClient::new(channel.clone());
            let mut rng = Rng(5000 + s);
            if phase == "streams dropped" {
                let items: Vec<proto::AnalyzeStreamRequest> = (0..8)
                    .map(|j| proto::AnalyzeStreamRequest {
                        article: Some(text_article(format!("c{s}-{j}"), prose(&mut rng, 60_000))),
                        options: None,
                    })
                    .collect();
                held.push(tokio::spawn(async move {
                    // Held open until the task is aborted, which drops it.
                    let _open = client.analyze_stream(tokio_stream::iter(items)).await;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }));
            } else {
                let text = prose(&mut rng, 60_000);
                held.push(tokio::spawn(async move {
                    let mut r = tonic::Request::new(proto::AnalyzeRequest {
                        article: Some(text_article(format!("d{s}"), text)),
                        options: None,
                    });
                    r.metadata_mut()
                        .insert("grpc-timeout", "700m".parse().unwrap());
                    let _ = client.analyze(r).await;
                }));
            }
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        for h in &held {
            h.abort();
        }
        let gone = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cpu0 = proc_.cpu_seconds();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let cpu = proc_.cpu_seconds() - cpu0;
        println!(
            "\n3. {phase}: server CPU from {:.1} s to {:.1} s after: {cpu:.2} core-seconds",
            1.0,
            gone.elapsed().as_secs_f64()
        );
        if cpu > 0.5 {
            failures += 1;
        }
    }

    // 4. Health, and a normal call.
    let mut h = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let health = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: "khulasa.v1.Analyzer".into(),
        })
        .await
        .map(|r| r.into_inner().status);
    let normal = AnalyzerClient::new(channel)
        .analyze(proto::AnalyzeRequest {
            article: Some(text_article("after".into(), prose(&mut Rng(7), 2000))),
            options: None,
        })
        .await;
    println!(
        "\n4. afterwards: health {:?}, a normal call {}",
        health,
        if normal.is_ok() { "OK" } else { "FAILED" }
    );
    if normal.is_err()
        || health.ok()
            != Some(tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
    {
        failures += 1;
    }
    sampler.abort();
    SuiteResult {
        failures,
        max_rss_kib: max_rss.load(std::sync::atomic::Ordering::Relaxed),
    }
}
