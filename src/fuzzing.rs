//! The request path without a transport, for the `request` fuzz target
//! (`fuzz/fuzz_targets/request.rs`): bytes as a client would send them →
//! protobuf → validation → cleaning → analysis → response, exactly as a
//! gRPC call runs them, minus the network and the batcher.

use khulasa_analysis::Analyzer;
use khulasa_embed::StopToken;
use prost::Message;

use crate::api::{Limits, ServiceError, convert};
use crate::pipeline::analyze_input;
use crate::proto;

/// Decodes `bytes` as an `AnalyzeRequest` and runs it on `analyzer` under
/// `limits`. `Ok(None)`: the bytes are not a request (the server answers
/// INVALID_ARGUMENT). Every other outcome is the call's answer.
pub fn analyze_bytes(
    analyzer: &Analyzer,
    limits: &Limits,
    bytes: &[u8],
) -> Result<Option<proto::AnalyzeResponse>, ServiceError> {
    let Ok(request) = proto::AnalyzeRequest::decode(bytes) else {
        return Ok(None);
    };
    let labels: Vec<String> = analyzer.data().label_sets.keys().cloned().collect();
    let input = convert::article(request.article, "article", limits)?;
    let options = convert::options(request.options, "options", limits, &labels)?;
    let analyzed = analyze_input(analyzer, &input, &options, &StopToken::never())?;
    let response = crate::record::analyzed(
        analyzed,
        &analyzer.encoder().info().id,
        proto::Timings::default(),
    );
    // The response must encode within the limit a server would apply.
    assert!(
        response.encoded_len() <= limits.max_response_bytes,
        "a response of {} bytes",
        response.encoded_len()
    );
    Ok(Some(response))
}
