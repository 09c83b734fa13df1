//! Every integration test on the real default model, in one binary: one
//! link instead of six, and one copy of the model (`common::encoder`) for
//! the tests that can share it. `cargo test --test it MODULE::` runs one
//! part, e.g. `cargo test --test it service::hostile::`.
//!
//! The OTLP exporter's test is apart (`tests/otlp.rs`): it needs the
//! `otlp` feature and installs a global tracing subscriber.

mod common;

mod analysis;
mod archive;
mod cli;
mod encoder;
mod http;
mod service;
mod tokenizer;
