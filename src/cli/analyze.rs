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
