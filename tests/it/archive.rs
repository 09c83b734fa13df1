//! Scoring archives with `khulasa analyze`, on the real model: a run killed
//! with SIGKILL and resumed writes every record exactly once; duplicates,
//! unreadable lines, CSV and the errors file; and the remote engine over
//! two servers, one of them flooded, plus one that is not there.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::TestServer;
use khulasa::api::Limits;
use khulasa::archive::{self, ArchiveOptions, Engine, remote::RemoteOptions, sink::Format};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `n` articles from the dev set (our own fixtures) under fresh ids.
fn articles(n: usize) -> Vec<serde_json::Value> {
    let devset =
        std::fs::read_to_string(root().join("tests/fixtures/devset/devset.jsonl")).unwrap();
    let texts: Vec<String> = devset
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    (0..n)
        .map(|i| serde_json::json!({"id": format!("art-{i:03}"), "text": texts[i % texts.len()]}))
        .collect()
}

fn write_jsonl(path: &Path, lines: &[serde_json::Value]) {
    let mut f = std::fs::File::create(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn analyze(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_khulasa"));
    c.arg("analyze")
        .args(args)
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    c
}

/// Kills `analyze` with SIGKILL once `out` has at least `lines` lines.
fn kill_after(mut child: std::process::Child, out: &Path, lines: usize) {
    let started = Instant::now();
    loop {
        let n = std::fs::read_to_string(out).map_or(0, |t| t.matches('\n').count());
        if n >= lines {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("analyze ended ({status}) before it could be killed");
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no progress to kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn a_killed_run_resumes_to_exactly_one_record_per_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("archive.jsonl");
    let out = dir.path().join("out.jsonl");
    let n = 16;
    write_jsonl(&input, &articles(n));
    let args = [
        "--quiet",
        "--max-sentences",
        "2",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];

    let first = analyze(&args).spawn().unwrap();
    kill_after(first, &out, 3);
    let after_kill = records(&out).len();
    assert!(after_kill >= 3 && after_kill < n, "{after_kill} records");

    // Whether or not the kill landed inside a write, leave a torn record
    // behind, as one would: the start of a line with no end.
    let mut f = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
    f.write_all(br#"{"id":"art-015","language":"ar","main_sto"#)
        .unwrap();
    drop(f);

    // Without --resume an existing output is left alone.
    let refused = analyze(&args).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--resume"));

    let mut resume_args = args.to_vec();
    resume_args.push("--resume");
    let second = analyze(&resume_args).spawn().unwrap();
    kill_after(second, &out, after_kill + 2);

    let done = analyze(&resume_args).output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let recs = records(&out);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &recs {
        assert!(r["error"].is_null(), "failed record {r}");
        let summary = &r["response"]["summary"];
        assert!(summary["sentences"].as_array().unwrap().len() <= 2);
        *counts
            .entry(r["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(counts.len(), n, "every input has a record");
    assert!(counts.values().all(|&c| c == 1), "{counts:?}");
}

#[test]
fn duplicates_and_bad_lines_are_reported_and_csv_is_flat() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("archive.jsonl");
    let out = dir.path().join("out.csv");
    let errors = dir.path().join("errors.jsonl");
    let mut lines = articles(3);
    lines.push(lines[1].clone()); // a duplicate id
    lines.push(serde_json::json!({"id": "no-text"}));
    lines.push(serde_json::json!({"id": "bad-field", "text": 7}));
    // Regression: an unreadable line skipped the duplicate-id check.
    lines.push(serde_json::json!({"id": "bad-field", "html": []}));
    write_jsonl(&input, &lines);
    let args = [
        "--quiet",
        "--format",
        "csv",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--errors",
        errors.to_str().unwrap(),
    ];
    let run = analyze(&args).output().unwrap();
    assert_eq!(run.status.code(), Some(2), "failures give exit code 2");

    let mut csv = csv::Reader::from_path(&out).unwrap();
    assert_eq!(
        csv.headers().unwrap().iter().collect::<Vec<_>>(),
        sink_header()
    );
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    let ids: Vec<&str> = rows.iter().map(|r| &r[0]).collect();
    // One row per distinct id: the duplicate is not a second row.
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 5);
    for r in &rows {
        if r[0].starts_with("art-") {
            assert!(r[6].is_empty(), "{r:?}");
            assert!(
                !r[2].is_empty() && !r[3].is_empty(),
                "topic and stance: {r:?}"
            );
            r[4].parse::<f32>()
                .expect("cooperation/conflict is a number");
        } else {
            assert!(r[6].starts_with("INVALID_ARGUMENT"), "{r:?}");
        }
    }

    let error_ids = |path: &Path| {
        let mut ids: Vec<String> = records(path)
            .iter()
            .map(|e| {
                assert!(!e["reason"].as_str().unwrap().is_empty());
                e["id"].as_str().unwrap().to_string()
            })
            .collect();
        ids.sort();
        ids
    };
    // The duplicate of art-001, the two bad lines and the bad line's duplicate.
    let expected = ["art-001", "bad-field", "bad-field", "no-text"];
    assert_eq!(error_ids(&errors), expected);

    // Resuming with the other format is refused, and the output untouched.
    let before = std::fs::read(&out).unwrap();
    let mut wrong = args.to_vec();
    wrong[2] = "jsonl";
    wrong.push("--resume");
    let refused = analyze(&wrong).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--format csv"));
    assert_eq!(std::fs::read(&out).unwrap(), before);

    // Resuming retries the failures and reports the duplicates again: the
    // errors file ends with the same entries, not twice as many.
    let mut resume = args.to_vec();
    resume.push("--resume");
    let again = analyze(&resume).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(error_ids(&errors), expected);
    let rows = csv::Reader::from_path(&out).unwrap().records().count();
    assert_eq!(rows, 5);
}

fn sink_header() -> Vec<&'static str> {
    khulasa::archive::sink::CSV_HEADER.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_engine_balances_over_servers_and_retries() {
    // One server with room, one that turns most work away at once
    // (RESOURCE_EXHAUSTED), and one address where nothing listens.
    let roomy = TestServer::start(Limits::default(), &[]).await;
    let tight = TestServer::start(
        Limits {
            max_queued: 1,
            ..Limits::default()
        },
        &[],
    )
    .await;
    let nothing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = nothing.local_addr().unwrap();
    drop(nothing);

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("archive.jsonl");
    let out = dir.path().join("out.jsonl");
    let n = 12;
    write_jsonl(&input, &articles(n));
    let options = ArchiveOptions {
        durability: Default::default(),
        inputs: vec![input.clone()],
        output: Some(out.clone()),
        format: Format::Jsonl,
        errors: None,
        resume: false,
        force: false,
        progress: false,
        run: Default::default(),
        shard: None,
    };
    let engine = Engine::Remote(RemoteOptions {
        servers: vec![
            format!("http://{}", roomy.addr),
            format!("http://{}", tight.addr),
            format!("http://{dead}"),
        ],
        in_flight: Some(4),
        max_attempts: 8,
        ..Default::default()
    });
    let summary = tokio::task::spawn_blocking(move || archive::run(options, engine))
        .await
        .unwrap()
        .unwrap();
    let recs = records(&out);
    let failures: Vec<&serde_json::Value> = recs.iter().filter(|r| !r["error"].is_null()).collect();
    assert_eq!(
        (summary.succeeded, summary.failed),
        (n, 0),
        "{summary:?}: {failures:?}"
    );
    let ids: HashSet<&str> = recs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!((recs.len(), ids.len()), (n, n));
    let analysed = |s: &TestServer| {
        s.metrics
            .stage_seconds
            .with_label_values(&["total"])
            .get_sample_count()
    };
    let (a, b) = (analysed(&roomy), analysed(&tight));
    assert!(a > 0 && b > 0, "both servers took work: {a} and {b}");
    assert_eq!(a + b, n as u64, "no article was analysed twice");

    // The same article in process gives the same analysis.
    let analyzer = common::server::analyzer();
    let first = articles(1).remove(0);
    let input: khulasa::pipeline::ArticleInput = serde_json::from_value(first).unwrap();
    let local = khulasa::pipeline::run(&analyzer, &input, &Default::default());
    let remote = &recs.iter().find(|r| r["id"] == "art-000").unwrap()["response"];
    let local: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&local).unwrap()).unwrap();
    let local = local["response"].clone();
    for field in ["language", "main_story", "sentences", "removed", "model_id"] {
        assert_eq!(remote[field], local[field], "{field}");
    }
    assert_eq!(remote["topics"]["primary"], local["topics"]["primary"]);
    assert_eq!(remote["stance"]["label"], local["stance"]["label"]);
    let indices = |v: &serde_json::Value| -> Vec<u64> {
        v["summary"]["sentences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["index"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(indices(remote), indices(&local));

    roomy.stop().await;
    tight.stop().await;
}

#[test]
fn shards_split_an_archive_and_their_union_is_every_input_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("archive.jsonl");
    let out = dir.path().join("out.jsonl");
    let n = 36;
    write_jsonl(&input, &articles(n));
    let shard_out = |k: usize| dir.path().join(format!("out.{k}-of-3.jsonl"));
    let base = |extra: &[&str]| {
        let mut a = vec![
            "--quiet",
            "--max-sentences",
            "1",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |args: &[String], env: &[(&str, &str)]| {
        let mut c = analyze(&args.iter().map(String::as_str).collect::<Vec<_>>());
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    // Shard 0 by flag; shard 2 as a Kubernetes Indexed Job's pod sees it.
    run(&base(&["--shard", "0/3"]), &[]);
    run(
        &base(&[]),
        &[("JOB_COMPLETION_INDEX", "2"), ("KHULASA_SHARDS", "3")],
    );
    // Shard 1 is killed mid-way and resumed, as a restarted pod would be.
    let killed = analyze(
        &base(&["--shard", "1/3", "--workers", "1"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .spawn()
    .unwrap();
    kill_after(killed, &shard_out(1), 2);
    run(&base(&["--shard", "1/3", "--resume"]), &[]);
    assert!(!out.exists(), "each shard writes its own file");

    let sizes: Vec<usize> = (0..3).map(|k| records(&shard_out(k)).len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), n, "{sizes:?}");
    assert!(sizes.iter().all(|&s| s > 0), "{sizes:?}");
    // Every record is in the shard its id hashes to.
    for k in 0..3 {
        for r in records(&shard_out(k)) {
            let id = r["id"].as_str().unwrap();
            assert_eq!(archive::shard::Shard::of(id, 3), k, "{id}");
        }
    }

    let verify = |outputs: &[PathBuf]| {
        let merged = dir.path().join("merged.jsonl");
        let mut c = Command::new(env!("CARGO_BIN_EXE_khulasa"));
        c.arg("verify").arg(&input).arg("--merged").arg(&merged);
        c.arg("--outputs").args(outputs).env("RUST_LOG", "warn");
        let o = c.output().unwrap();
        (
            o.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            merged,
        )
    };
    let all: Vec<PathBuf> = (0..3).map(shard_out).collect();
    let (code, report, merged) = verify(&all);
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.starts_with("36 inputs, 36 records: missing 0, duplicated 0"),
        "{report}"
    );
    let ids: HashSet<String> = records(&merged)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), n);
    // A shard that never ran shows as its ids missing; one given twice, as
    // duplicates.
    let (code, report, _) = verify(&all[..2]);
    assert_eq!(code, Some(1));
    assert!(
        report.contains(&format!("missing {}", sizes[2])),
        "{report}"
    );
    let twice = [all.clone(), vec![all[0].clone()]].concat();
    let (code, report, _) = verify(&twice);
    assert_eq!(code, Some(1));
    assert!(
        report.contains(&format!("duplicated {}", sizes[0])),
        "{report}"
    );
}
