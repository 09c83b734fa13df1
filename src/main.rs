//! The `khulasa` command line. This file only parses and dispatches; each
//! command's arguments, their checks and its run are in `src/cli/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use khulasa::telemetry;

mod cli;

/// Candle allocates and frees large tensors at every layer; glibc's malloc
/// hands those to mmap and back, so each forward pass page-faults its
/// activations in afresh (a fifth of encoder time in a profile). mimalloc
/// reuses them: 16×256 tokens/s went from 1,422 to 2,214 (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "khulasa",
    version,
    about = "Main story, topic, stance and summaries of Arabic security news"
)]
struct Cli {
    /// Log format on stderr (`RUST_LOG` sets the level, default info).
    #[arg(long, value_enum, default_value_t = telemetry::LogFormat::Text, global = true)]
    log_format: telemetry::LogFormat,
    /// OTLP/gRPC collector to export trace spans to, e.g.
    /// http://127.0.0.1:4317 (builds with the `otlp` cargo feature only).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gRPC API (khulasa.v1.Analyzer, health, reflection) and
    /// Prometheus metrics.
    Serve(cli::serve::ServeArgs),
    /// Analyse articles: main story, topics, stance, summary; JSONL out,
    /// one line per input (an input that fails gets an `error` line).
    Analyze(cli::analyze::AnalyzeArgs),
    /// Ask a running server whether it serves (grpc.health.v1): exit 0 when
    /// SERVING, for container health checks.
    Health(cli::health::HealthArgs),
    /// Check that the outputs of a sharded `analyze` (`--shard K/N`) hold a
    /// record for every input exactly once; optionally merge them.
    Verify(cli::analyze::VerifyArgs),
    /// Evaluate on a dev set: topic and stance macro-F1, summary ROUGE.
    Eval(cli::eval::EvalArgs),
    /// Train a head for a single-label label set on labelled articles
    /// (JSONL: text, label, optional title), for sets with many examples
    /// per label; the set then names it with `head = "FILE"`.
    Train(cli::eval::TrainArgs),
    /// Print one embedding per text as a JSON array, in input order.
    Embed(cli::model::EmbedArgs),
    /// Isolate the main story of a page and split it into sentences; prints
    /// JSON (main_story, sentences with offsets, removed blocks, language).
    Clean(cli::model::CleanArgs),
    /// Describe a model folder as JSON.
    Info(cli::model::InfoArgs),
    /// Fetch or convert model folders.
    #[command(subcommand)]
    Model(cli::model::ModelCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _telemetry = match telemetry::init(cli.log_format, cli.otlp_endpoint.as_deref()) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: setting up logging: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.is::<cli::SomeFailed>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Analyze(args) => cli::analyze::run(args),
        Command::Verify(args) => cli::analyze::verify(args),
        Command::Health(args) => cli::health::run(args),
        Command::Eval(args) => cli::eval::run(args),
        Command::Train(args) => cli::eval::train(args),
        Command::Embed(args) => cli::model::embed(args),
        Command::Clean(args) => cli::model::clean(args),
        Command::Info(args) => cli::model::info(args),
        Command::Model(command) => cli::model::run(command),
    }
}
