//! Fuzzes the whole request path with the hashing encoder: arbitrary bytes
//! as an `AnalyzeRequest` → validation → cleaning → analysis → response
//! (`khulasa::fuzzing::analyze_bytes`). A panic anywhere is a finding; so is
//! a response whose offsets do not point at its own texts.
#![no_main]

use std::sync::{Arc, OnceLock};

use khulasa::proto;
use khulasa::api::Limits;
use khulasa_analysis::{AnalysisData, Analyzer, AnalyzerOptions};
use khulasa_embed::testing::HashingEncoder;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn analyzer() -> &'static Analyzer {
    static A: OnceLock<Analyzer> = OnceLock::new();
    A.get_or_init(|| {
        let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let data = AnalysisData::load(&models, &[]).expect("the analysis data loads");
        Analyzer::new(
            Arc::new(HashingEncoder::new(64)),
            data,
            AnalyzerOptions::default(),
        )
        .expect("the analyzer builds")
    })
}

fn check(request: &proto::AnalyzeRequest, r: &proto::AnalyzeResponse) {
    let source = match request.article.as_ref().and_then(|a| a.content.as_ref()) {
        Some(proto::article::Content::Text(t)) => t.as_str(),
        Some(proto::article::Content::Html(_)) => r.extracted_text.as_str(),
        None => panic!("a response without content"),
    };
    let slice = |s: &Option<proto::Span>| {
        let s = s.expect("a span");
        &source[s.start as usize..s.end as usize]
    };
    for s in &r.sentences {
        assert_eq!(slice(&s.span), s.text);
    }
    if let Some(summary) = &r.summary {
        for s in &summary.sentences {
            assert_eq!(slice(&s.span), s.text);
        }
    }
    if let Some(stance) = &r.stance {
        for e in &stance.evidence {
            assert!((e.sentence as usize) < r.sentences.len());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(Some(response)) = khulasa::fuzzing::analyze_bytes(analyzer(), &limits, data) {
        let request = proto::AnalyzeRequest::decode(data).expect("it decoded once");
        check(&request, &response);
    }
});
