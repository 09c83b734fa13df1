//! The `khulasa` command line as a user runs it.

use crate::common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use khulasa_embed::{InputKind, TextEncoder, cosine};

fn khulasa(args: &[&str], stdin: Option<&str>) -> Output {
    khulasa_in(env!("CARGO_MANIFEST_DIR").as_ref(), &[], args, stdin)
}

/// `khulasa` run in `dir` with `env` set.
fn khulasa_in(
    dir: &std::path::Path,
    env: &[(&str, &std::ffi::OsStr)],
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_khulasa"))
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn vectors(out: &Output) -> Vec<Vec<f32>> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON array")
}

#[test]
fn embed_prints_one_vector_per_text_in_input_order() {
    let texts = [
        "Hello world",
        "أكد الوزير استمرار التعاون الأمني.",
        "Bonjour",
    ];
    let model = common::model_dir();
    let model = model.to_str().unwrap();
    let from_args = vectors(&khulasa(
        &["embed", "--model", model, texts[0], texts[1], texts[2]],
        None,
    ));
    let from_stdin = vectors(&khulasa(
        &["embed", "--model", model, "-"],
        Some(&texts.join("\n")),
    ));
    let library = common::encoder().embed(&texts, InputKind::Passage).unwrap();
    assert_eq!(from_args.len(), 3);
    assert_eq!(from_stdin.len(), 3);
    for i in 0..3 {
        assert_eq!(from_args[i].len(), 384);
        assert!(cosine(&from_args[i], &library[i]) > 0.99999, "text {i}");
        assert!(cosine(&from_stdin[i], &library[i]) > 0.99999, "text {i}");
    }
}

#[test]
fn embed_query_uses_the_query_prompt() {
    let text = "foreign troops in Iraq";
    let out = vectors(&khulasa(&["embed", "--query", text], None));
    let library = common::encoder().embed(&[text], InputKind::Query).unwrap();
    assert!(cosine(&out[0], &library[0]) > 0.99999);
}

#[test]
fn a_missing_model_folder_is_a_clear_error() {
    let out = khulasa(&["embed", "--model", "/nonexistent/model", "x"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/model") && err.contains("does not exist"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn importing_a_file_that_is_not_e5s1_fails_without_leaving_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("weights.bin");
    std::fs::write(&bad, b"GGUF not e5s1").unwrap();
    let tok = dir.path().join("tokenizer.json");
    std::fs::write(&tok, b"{}").unwrap();
    let target = dir.path().join("m");
    let out = khulasa(
        &[
            "model",
            "import",
            "--weights",
            bad.to_str().unwrap(),
            "--tokenizer",
            tok.to_str().unwrap(),
            "--out",
            target.to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad magic"));
    assert!(!target.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// Short news items of our own for two sections, varied by `i`.
fn section_item(section: &str, i: usize) -> String {
    let teams = [
        "الترجي",
        "النجم",
        "الإفريقي",
        "الصفاقسي",
        "المنتخب",
        "الملعب",
    ];
    let goods = ["الزيت", "القمح", "الفوسفات", "التمور", "السيارات", "الأدوية"];
    match section {
        "sport" => format!(
            "فاز فريق {} في المباراة رقم {i} بهدفين مقابل هدف. وسجل المهاجم هدف الفوز في الدقيقة {} من اللقاء. ويتصدر الفريق ترتيب البطولة.",
            teams[i % teams.len()],
            60 + i
        ),
        _ => format!(
            "ارتفعت صادرات {} بنسبة {i} بالمئة خلال الربع الأول. وقال البنك المركزي إن الميزان التجاري تحسن. وتوقع خبراء تراجع التضخم.",
            goods[i % goods.len()]
        ),
    }
}

#[test]
fn train_writes_a_head_that_analyze_then_uses() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("sections.toml");
    let toml = "name = \"sections\"\nmulti_label = false\n[[label]]\nid = \"sport\"\ndescription = \"أخبار رياضية: مباريات كرة القدم والأندية\"\n[[label]]\nid = \"economy\"\ndescription = \"أخبار اقتصادية: الأسعار والتجارة والبنوك\"\n";
    std::fs::write(&set, toml).unwrap();
    let examples = dir.path().join("labelled.jsonl");
    let mut lines = String::new();
    for i in 0..8 {
        for section in ["sport", "economy"] {
            let line = serde_json::json!({"text": section_item(section, i), "label": section});
            lines.push_str(&format!("{line}\n"));
        }
    }
    std::fs::write(&examples, lines).unwrap();
    let out = khulasa(
        &[
            "train",
            "--labels",
            set.to_str().unwrap(),
            "--examples",
            examples.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head_file = dir.path().join("sections.head.json");
    let head: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&head_file).unwrap()).unwrap();
    assert_eq!(head["examples"], 16);
    assert!(String::from_utf8_lossy(&out.stderr).contains("head = \"sections.head.json\""));
    // The set names its head, and analyze uses it.
    std::fs::write(&set, format!("head = \"sections.head.json\"\n{toml}")).unwrap();
    let input: String = ["sport", "economy"]
        .iter()
        .map(|s| {
            format!(
                "{}\n",
                serde_json::json!({"id": s, "text": section_item(s, 40)})
            )
        })
        .collect();
    let out = khulasa(
        &["analyze", "--quiet", "--labels", set.to_str().unwrap(), "-"],
        Some(&input),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["response"]["topics"]["primary"], r["id"], "{line}");
    }
}

#[test]
fn the_binary_runs_from_any_folder_with_its_data_built_in() {
    // As an installed binary: another working directory, no models/ there,
    // the model named by KHULASA_MODEL and an empty home.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let model = common::model_dir();
    let env = [
        ("KHULASA_MODEL", model.as_os_str()),
        ("HOME", home.as_os_str()),
        ("XDG_DATA_HOME", home.as_os_str()),
    ];
    let article = serde_json::json!({
        "id": "a1",
        "text": "بغداد - أعلنت وزارة الدفاع العراقية أن المستشارين الأمريكيين سيواصلون تدريب القوات العراقية على مكافحة الإرهاب. وقال المتحدث إن التعاون الأمني مع واشنطن ضروري لمنع عودة داعش."
    });
    let out = khulasa_in(
        dir.path(),
        &env,
        &["analyze", "--quiet", "-"],
        Some(&format!("{article}\n")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["id"], "a1");
    // The built-in default label set, target and focus.
    let r = &r["response"];
    assert_eq!(r["topics"]["primary"], "security_cooperation", "{r}");
    assert_eq!(r["stance"]["target"], "us_iraq_security_cooperation", "{r}");
    assert_eq!(r["summary"]["mode"], "focus", "{r}");
    let written: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(written.len(), 1, "nothing written but home: {written:?}");

    // --data-dir reads a folder instead, and says which file is missing.
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("labels")).unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/labels/security-news.toml"),
        data.join("labels/security-news.toml"),
    )
    .unwrap();
    let out = khulasa_in(
        dir.path(),
        &env,
        &["analyze", "--quiet", "--data-dir", "data", "-"],
        Some(&format!("{article}\n")),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("targets.toml"), "{err}");
}
