//! `khulasa analyze`: articles in, one record per article out, in process
//! or on servers.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use khulasa::request::{self, RequestLimits};
use khulasa::{archive, pipeline};
use khulasa_analysis::TargetKind;
use khulasa_batch::BatchingOptions;

use super::{AnalysisArgs, SomeFailed};

/// What `analyze` is given.
#[derive(clap::Args)]
pub struct AnalyzeArgs {
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
    #[arg(long, default_value_t = request::DEFAULT_SUMMARY_SENTENCES)]
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
}

/// How `analyze` reads, runs and writes an archive.
#[derive(clap::Args)]
pub struct ArchiveArgs {
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
    /// Take only shard K of N of the inputs (0-based): those whose id
    /// hashes to K, so N processes split an archive with no coordinator;
    /// --output and --errors become FILE.K-of-N.EXT. Default: from
    /// JOB_COMPLETION_INDEX and KHULASA_SHARDS when both are set (a
    /// Kubernetes Indexed Job). `khulasa verify` checks the union.
    #[arg(long, value_name = "K/N")]
    shard: Option<archive::shard::Shard>,
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

/// Runs the archive; `SomeFailed` if some inputs failed.
pub fn run(args: AnalyzeArgs) -> anyhow::Result<()> {
    let AnalyzeArgs {
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
    } = args;
    let spec = request::OptionsSpec {
        label_set: match &labels {
            Some(l) => pipeline::label_set_choice(l)?,
            None => Default::default(),
        },
        tasks: Default::default(),
        target,
        target_kind,
        focus,
        generic_summary: generic,
        max_sentences: Some(max_sentences),
        max_chars,
        ratio,
    };
    let options = request::options(spec, &RequestLimits::default()).map_err(|e| {
        // Name the flag the field came from.
        let flag = if e.field.starts_with("inline_label_set") {
            "labels".to_string()
        } else {
            e.field.replace('_', "-")
        };
        anyhow::anyhow!("--{flag}: {}", e.message)
    })?;
    let engine = || -> anyhow::Result<archive::Engine> {
        Ok(if a.servers.is_empty() {
            let (analyzer, _) =
                analysis.batched_analyzer(BatchingOptions::default().window, Arc::new(()))?;
            archive::Engine::Local {
                analyzer: Arc::new(analyzer),
                workers: a.workers.max(1),
            }
        } else {
            archive::Engine::Remote(archive::remote::RemoteOptions {
                servers: a.servers.clone(),
                api_key: a.api_key.clone(),
                ca_cert: match &a.server_ca {
                    Some(p) => {
                        Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)
                    }
                    None => None,
                },
                ..Default::default()
            })
        })
    };
    let shard = match a.shard {
        Some(s) => Some(s),
        None => archive::shard::Shard::from_env().map_err(anyhow::Error::msg)?,
    };
    let (output, errors) = match shard {
        Some(s) => (
            a.output.as_deref().map(|p| s.path(p)),
            a.errors.as_deref().map(|p| s.path(p)),
        ),
        None => (a.output, a.errors),
    };
    if let Some(s) = shard {
        tracing::info!(shard = %s, output = ?output, "taking one shard of the inputs");
    }
    let summary = archive::run_with(
        archive::ArchiveOptions {
            inputs: paths,
            output,
            format: a.format,
            errors,
            resume: a.resume,
            force: a.force,
            progress: !a.quiet && archive::stderr_is_terminal(),
            durability: match a.fsync {
                0 => archive::sink::Durability::Written,
                n => archive::sink::Durability::SyncEvery(n),
            },
            run: options,
            shard,
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

/// What `verify` is given.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The outputs of the shards (any order), e.g. out.*-of-4.jsonl.
    #[arg(long = "outputs", required = true, num_args = 1..)]
    outputs: Vec<PathBuf>,
    /// Also write the union of the outputs here (JSONL).
    #[arg(long)]
    merged: Option<PathBuf>,
    /// The inputs the run was given (as for `analyze`).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

/// Checks a sharded run's outputs; an error (exit 1) if any input is
/// missing or doubled, or a record is no input's.
pub fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let v = archive::shard::verify(&args.inputs, &args.outputs, args.merged.as_deref())?;
    println!("{}", v.report());
    anyhow::ensure!(
        v.complete(),
        "the outputs do not hold every input exactly once"
    );
    Ok(())
}
