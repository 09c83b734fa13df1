//! Scoring whole archives: `khulasa analyze` over files, directories, JSONL
//! and stdin, in process or against running servers, resumable and
//! crash-safe.
//!
//! A run is three parts joined by bounded channels: a reader thread that
//! walks the inputs lazily (skipping ids already done and reporting
//! duplicates), an [`Engine`] that turns inputs into records (worker threads
//! over the batching encoder, or AnalyzeStream calls to servers), and the
//! caller's thread, which writes each record to the [`sink::Sink`] the
//! moment it arrives and drives the progress bar.

pub mod remote;
pub mod shard;
pub mod sink;

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use khulasa_analysis::{AnalysisRequest, Analyzer};

use crate::inputs;
use crate::pipeline::{self, ArticleInput};
use crate::proto::AnalyzeResult;
use crate::record;
use sink::{Durability, ErrorLog, Format, Sink};

/// Where the analysis runs.
pub enum Engine {
    /// In this process: `workers` threads share one analyzer, whose encoder
    /// should be a [`khulasa_batch::BatchingEncoder`] so their
    /// sentence passes are merged.
    Local {
        /// The analyzer.
        analyzer: Arc<Analyzer>,
        /// Articles analysed at once.
        workers: usize,
    },
    /// On running khulasa servers, over AnalyzeStream.
    Remote(remote::RemoteOptions),
}

/// What to read and where to write.
pub struct ArchiveOptions {
    /// Files, directories, `.jsonl` files, or `-` for JSONL on stdin.
    pub inputs: Vec<PathBuf>,
    /// The output file (`None`: stdout, which cannot be resumed).
    pub output: Option<PathBuf>,
    /// Output format.
    pub format: Format,
    /// Where failed inputs are listed (id, code, reason), if anywhere.
    pub errors: Option<PathBuf>,
    /// Continue an earlier run into the same output.
    pub resume: bool,
    /// Replace an existing output instead of refusing to.
    pub force: bool,
    /// Show a progress bar (only drawn on a terminal).
    pub progress: bool,
    /// How often records are forced to the disk.
    pub durability: Durability,
    /// Options for every article.
    pub run: AnalysisRequest,
    /// Only the inputs of this shard (see [`shard`]); `None`: all.
    pub shard: Option<shard::Shard>,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// Inputs read (including skipped and failed ones).
    pub inputs: usize,
    /// Records written with results.
    pub succeeded: usize,
    /// Records written with an error (unreadable inputs included).
    pub failed: usize,
    /// Inputs skipped because an earlier run had done them.
    pub skipped: usize,
    /// Inputs whose id an earlier input of this run already had: not
    /// analysed, not written to the output, listed in the errors file.
    pub duplicates: usize,
    /// Inputs left to other shards (`--shard`).
    pub other_shards: usize,
    /// Wall time.
    pub wall: Duration,
}

impl Summary {
    /// Articles analysed per second of wall time.
    pub fn throughput(&self) -> f64 {
        (self.succeeded + self.failed) as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The closing line of a run.
    pub fn line(&self) -> String {
        format!(
            "{} articles: {} ok, {} failed{}{}{} in {:.1} s ({:.2} articles/s)",
            self.succeeded + self.failed,
            self.succeeded,
            self.failed,
            if self.skipped > 0 {
                format!(", {} already done", self.skipped)
            } else {
                String::new()
            },
            if self.duplicates > 0 {
                format!(", {} duplicate ids", self.duplicates)
            } else {
                String::new()
            },
            if self.other_shards > 0 {
                format!(", {} left to other shards", self.other_shards)
            } else {
                String::new()
            },
            self.wall.as_secs_f64(),
            self.throughput(),
        )
    }
}

/// Whether progress can be drawn here (stderr is a terminal).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Runs the archive job to the end. Per-input failures are records (and
/// lines in the errors file), not errors; an error here means the run
/// itself could not go on (unwritable output, no server ever reachable…).
pub fn run(options: ArchiveOptions, engine: Engine) -> anyhow::Result<Summary> {
    run_with(options, || Ok(engine))
}

/// [`run`] with the engine built only once the output is open, so that a
/// refused `--resume` or an existing output is reported at once, before a
/// model is loaded.
pub fn run_with(
    options: ArchiveOptions,
    engine: impl FnOnce() -> anyhow::Result<Engine>,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let (mut sink, resumed) = match &options.output {
        Some(path) => {
            let (sink, resumed) = Sink::open(path, options.format, options.resume, options.force)?;
            (sink.with_durability(options.durability), resumed)
        }
        None => {
            anyhow::ensure!(
                !options.resume,
                "--resume needs --output: there is nothing to resume on stdout"
            );
            (Sink::stdout(options.format)?, Default::default())
        }
    };
    if resumed.repaired_tail {
        tracing::warn!("cut off a partial last record left by an interrupted run");
    }
    if !resumed.done.is_empty() || resumed.retried > 0 {
        tracing::info!(
            done = resumed.done.len(),
            retrying = resumed.retried,
            "resuming"
        );
    }
    let mut errors = match &options.errors {
        Some(p) => Some(ErrorLog::open(p, options.durability)?),
        None => None,
    };

    // Counting reads every JSONL input once more: only worth it for a bar.
    let total = if options.progress {
        inputs::count(&options.inputs)
    } else {
        None
    };
    let bar = progress_bar(options.progress, total);

    // Reader → engine: inputs to analyse; reader and engine → writer: records.
    let (work_tx, work_rx) = sync_channel::<ArticleInput>(64);
    let (record_tx, record_rx) = sync_channel::<Record>(64);
    let reader = {
        let paths = options.inputs.clone();
        let done = resumed.done;
        let record_tx = record_tx.clone();
        let shard = options.shard;
        std::thread::Builder::new()
            .name("inputs".into())
            .spawn(move || read_inputs(&paths, &done, shard, work_tx, record_tx))?
    };
    let engine = start_engine(engine()?, options.run.clone(), work_rx, record_tx)?;

    let mut summary = Summary::default();
    for record in record_rx {
        match record {
            Record::Skipped => summary.skipped += 1,
            Record::Duplicate(out) => {
                summary.duplicates += 1;
                if let Some(log) = &mut errors {
                    log.write(&out)?;
                }
            }
            Record::Done(out) => {
                if let Some((code, message)) = record::error(&out) {
                    summary.failed += 1;
                    tracing::debug!(id = %out.id, %code, "{message}");
                    if let Some(log) = &mut errors {
                        log.write(&out)?;
                    }
                } else {
                    summary.succeeded += 1;
                }
                sink.write(&out)?;
            }
        }
        summary.inputs += 1;
        bar.set_position(summary.inputs as u64);
        if summary.failed + summary.duplicates > 0 {
            bar.set_message(format!("{} failed", summary.failed + summary.duplicates));
        }
    }
    bar.finish_and_clear();
    sink.finish()?;
    if let Some(log) = &mut errors {
        log.finish()?;
    }
    summary.other_shards = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the input reader panicked"))?;
    engine
        .join()
        .map_err(|_| anyhow::anyhow!("the engine panicked"))??;
    summary.wall = started.elapsed();
    Ok(summary)
}

/// What reaches the writer.
enum Record {
    /// A record to write.
    Done(AnalyzeResult),
    /// An input whose id was taken by an earlier input (reported only).
    Duplicate(AnalyzeResult),
    /// An input done by an earlier run.
    Skipped,
}

fn progress_bar(enabled: bool, total: Option<usize>) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::with_draw_target(Some(n as u64), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} {per_sec:.dim} ETA {eta} {msg:.red}",
                )
                .expect("valid template"),
            ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {pos} {per_sec:.dim} {msg:.red}")
                .expect("valid template"),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// Reads every input, sends this shard's on, and returns how many were
/// left to other shards.
fn read_inputs(
    paths: &[PathBuf],
    done: &HashSet<String>,
    shard: Option<shard::Shard>,
    work: SyncSender<ArticleInput>,
    records: SyncSender<Record>,
) -> usize {
    let mut seen = HashSet::new();
    let mut others = 0;
    inputs::for_each(paths, |item| {
        // Every input's id is checked, unreadable ones too (they still get a
        // record), and before `done`, so a resumed run reports them again.
        let id = match &item {
            Ok(input) => &input.id,
            Err((id, _)) => id,
        };
        // An id's duplicates hash to the same shard, so each shard checks
        // its own.
        if shard.is_some_and(|s| !s.takes(id)) {
            others += 1;
            return true;
        }
        if !seen.insert(id.clone()) {
            tracing::warn!(%id, "duplicate id: only the first input with it is analysed");
            let record = Record::Duplicate(record::failed(
                id.clone(),
                pipeline::ErrorCode::InvalidArgument,
                "duplicate id: an earlier input has the same id; only that one is analysed".into(),
            ));
            return records.send(record).is_ok();
        }
        let record = match item {
            Err((id, message)) => Record::Done(record::failed(
                id,
                pipeline::ErrorCode::InvalidArgument,
                message,
            )),
            Ok(input) if done.contains(&input.id) => Record::Skipped,
            Ok(input) => {
                return work.send(input).is_ok();
            }
        };
        records.send(record).is_ok()
    });
    others
}

/// One input through the pipeline; a panic becomes that input's failure
/// instead of a lost record.
fn analyze_guarded(
    analyzer: &Analyzer,
    input: &ArticleInput,
    options: &AnalysisRequest,
) -> AnalyzeResult {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pipeline::run(analyzer, input, options)
    }))
    .unwrap_or_else(|_| {
        record::failed(
            input.id.clone(),
            pipeline::ErrorCode::Internal,
            "the analysis panicked on this input".into(),
        )
    })
}

fn start_engine(
    engine: Engine,
    options: AnalysisRequest,
    work: Receiver<ArticleInput>,
    records: SyncSender<Record>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    match engine {
        Engine::Local { analyzer, workers } => {
            let work = Arc::new(std::sync::Mutex::new(work));
            let options = Arc::new(options);
            let handles = (0..workers.max(1))
                .map(|i| {
                    let (work, records, analyzer, options) = (
                        work.clone(),
                        records.clone(),
                        analyzer.clone(),
                        options.clone(),
                    );
                    std::thread::Builder::new()
                        .name(format!("analyze-{i}"))
                        .spawn(move || {
                            loop {
                                let next = work.lock().expect("not poisoned").recv();
                                let Ok(input) = next else { break };
                                let out = analyze_guarded(&analyzer, &input, &options);
                                if records.send(Record::Done(out)).is_err() {
                                    break;
                                }
                            }
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(std::thread::spawn(move || {
                for h in handles {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("an analysis worker panicked"))?;
                }
                Ok(())
            }))
        }
        Engine::Remote(remote) => {
            Ok(std::thread::Builder::new()
                .name("remote".into())
                .spawn(move || {
                    remote::run(remote, options, work, |out| {
                        records.send(Record::Done(out)).is_ok()
                    })
                })?)
        }
    }
}
