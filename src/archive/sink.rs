//! Where records go: the output file (JSONL or CSV, one record per line,
//! written whole and at once as results arrive), its repair and resume, and
//! the errors file.
//!
//! Crash safety rests on two rules. Every record is one line, written with a
//! single `write` of the whole line to a file opened for appending, so a
//! process killed at any moment leaves complete lines and at most one
//! partial last line. And resuming repairs the file before appending: the
//! partial tail is cut off, failed records are dropped so they run again,
//! and the ids of the remaining records are skipped. Together these give
//! every input exactly one line across any number of killed and resumed runs.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::proto::AnalyzeResult;
use crate::record;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The full JSON record per line (the `khulasa analyze` contract).
    Jsonl,
    /// Flat fields: id, language, primary topic, stance label,
    /// cooperation/conflict, summary text, error.
    Csv,
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 7] = [
    "id",
    "language",
    "primary_topic",
    "stance",
    "cooperation_conflict",
    "summary",
    "error",
];

impl Format {
    /// One record as one line, newline included. Newlines inside CSV fields
    /// become spaces so that a record is always exactly one line.
    pub fn line(self, record: &AnalyzeResult) -> anyhow::Result<String> {
        match self {
            Format::Jsonl => Ok(serde_json::to_string(record)? + "\n"),
            Format::Csv => {
                let response = record::response(record);
                let stance = response.and_then(|r| r.stance.as_ref());
                let fields = [
                    record.id.clone(),
                    response.map(|r| r.language.clone()).unwrap_or_default(),
                    response
                        .and_then(|r| r.topics.as_ref())
                        .map(|t| t.primary.clone())
                        .unwrap_or_default(),
                    stance
                        .map(|s| s.label().as_str_name().to_string())
                        .unwrap_or_default(),
                    stance
                        .map(|s| format!("{:.2}", s.cooperation_conflict))
                        .unwrap_or_default(),
                    response
                        .and_then(|r| r.summary.as_ref())
                        .map(|s| {
                            s.sentences
                                .iter()
                                .map(|x| x.text.as_str())
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default(),
                    record::error(record)
                        .map(|(code, message)| format!("{code}: {message}"))
                        .unwrap_or_default(),
                ];
                csv_line(&fields)
            }
        }
    }

    /// The format an existing output's first line shows: the CSV header,
    /// or a JSON object; `None` for anything else.
    fn detect(first_line: &[u8]) -> Option<Self> {
        let line = String::from_utf8_lossy(first_line);
        let line = line.trim_end();
        if line.starts_with('{') {
            Some(Format::Jsonl)
        } else if line == CSV_HEADER.join(",") {
            Some(Format::Csv)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }

    /// The id of a complete line and whether it records a failure; `None`
    /// for a line that is not a record (the CSV header, or damage).
    fn read(self, line: &str) -> Option<(String, bool)> {
        match self {
            Format::Jsonl => {
                #[derive(serde::Deserialize)]
                struct Head {
                    id: String,
                    #[serde(default)]
                    error: Option<serde_json::Value>,
                }
                let h: Head = serde_json::from_str(line).ok()?;
                Some((h.id, h.error.is_some()))
            }
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .from_reader(line.as_bytes());
                let record = reader.records().next()?.ok()?;
                if record.len() != CSV_HEADER.len() || record.iter().eq(CSV_HEADER) {
                    return None;
                }
                Some((record[0].to_string(), !record[6].is_empty()))
            }
        }
    }
}

fn csv_line<S: AsRef<str>>(fields: &[S]) -> anyhow::Result<String> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(fields.iter().map(|f| f.as_ref().replace(['\r', '\n'], " ")))?;
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// What resuming found in an existing output.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// Ids with a successful record: skipped this run.
    pub done: HashSet<String>,
    /// Failed records dropped so that their inputs run again.
    pub retried: usize,
    /// Whether a partial last line (a run killed mid-write) was cut off.
    pub repaired_tail: bool,
}

/// How often records are forced to the disk (`fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Never: a record is safe once written (it survives the process being
    /// killed, not the machine losing power).
    #[default]
    Written,
    /// After every `n` records (and at the end).
    SyncEvery(usize),
}

/// The output: a file (appended to, one `write` per record) or stdout.
pub struct Sink {
    out: Box<dyn Write + Send>,
    file: Option<File>,
    format: Format,
    durability: Durability,
    unsynced: usize,
}

impl Sink {
    /// Opens `path` for a run. A new or empty file is started (CSV gets its
    /// header). An existing non-empty file is resumed when `resume` is set,
    /// replaced when `force` is set, and refused otherwise, so that a long
    /// run is never lost to a forgotten flag.
    pub fn open(
        path: &Path,
        format: Format,
        resume: bool,
        force: bool,
    ) -> anyhow::Result<(Self, Resumed)> {
        let existing = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let resumed = if existing > 0 && resume {
            check_format(path, format)?;
            repair(path, format)?
        } else if existing > 0 && !force {
            anyhow::bail!(
                "{} already has records: pass --resume to continue that run, or --force to \
                 start over",
                path.display()
            );
        } else {
            File::create(path).with_context(|| format!("creating {}", path.display()))?;
            Resumed::default()
        };
        let mut file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        if format == Format::Csv && file.metadata()?.len() == 0 {
            file.write_all(csv_line(&CSV_HEADER)?.as_bytes())?;
        }
        Ok((
            Self {
                out: Box::new(file.try_clone()?),
                file: Some(file),
                format,
                durability: Durability::Written,
                unsynced: 0,
            },
            resumed,
        ))
    }

    /// Standard output (no resume).
    pub fn stdout(format: Format) -> anyhow::Result<Self> {
        let mut out = std::io::stdout();
        if format == Format::Csv {
            out.write_all(csv_line(&CSV_HEADER)?.as_bytes())?;
        }
        Ok(Self {
            out: Box::new(out),
            file: None,
            format,
            durability: Durability::Written,
            unsynced: 0,
        })
    }

    /// Forces records to the disk as `durability` says (files only).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Writes one record as one line, at once, and flushes it.
    pub fn write(&mut self, record: &AnalyzeResult) -> anyhow::Result<()> {
        let line = self.format.line(record)?;
        self.out.write_all(line.as_bytes())?;
        self.out.flush()?;
        if let (Durability::SyncEvery(n), Some(file)) = (self.durability, &self.file) {
            self.unsynced += 1;
            if self.unsynced >= n.max(1) {
                file.sync_data()?;
                self.unsynced = 0;
            }
        }
        Ok(())
    }

    /// Forces what is left to the disk (with `--fsync`) at the end of a run.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        if let (Durability::SyncEvery(_), Some(file)) = (self.durability, &self.file)
            && self.unsynced > 0
        {
            file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(())
    }
}

/// Refuses to resume an output written in another format: reading it as
/// this one would find no records, drop them all as damage, and lose the
/// earlier run.
fn check_format(path: &Path, format: Format) -> anyhow::Result<()> {
    let mut first = Vec::new();
    BufReader::new(File::open(path).with_context(|| format!("reading {}", path.display()))?)
        .take(64 << 10)
        .read_until(b'\n', &mut first)?;
    match Format::detect(&first) {
        Some(found) if found != format => anyhow::bail!(
            "{} holds {} records but this run writes {}: pass --format {} to resume it, or \
             --force to start over",
            path.display(),
            found.name(),
            format.name(),
            found.name()
        ),
        Some(_) => Ok(()),
        None => anyhow::bail!(
            "{} does not look like a khulasa {} output (its first line is neither a record \
             nor the CSV header); refusing to resume into it",
            path.display(),
            format.name()
        ),
    }
}

/// Cuts a partial last line, drops failed and damaged records (rewriting the
/// file through a temporary and a rename, so a crash here loses nothing),
/// and returns the ids already done.
fn repair(path: &Path, format: Format) -> anyhow::Result<Resumed> {
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut resumed = Resumed::default();
    let mut complete_end = 0u64;
    let mut dropped_any = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            resumed.repaired_tail = true;
            break;
        }
        complete_end += n as u64;
        let text = String::from_utf8_lossy(&line);
        match format.read(text.trim_end()) {
            Some((id, false)) => {
                resumed.done.insert(id);
            }
            Some((_, true)) => {
                resumed.retried += 1;
                dropped_any = true;
            }
            // The CSV header stays; anything else unreadable goes.
            None if format == Format::Csv && complete_end == n as u64 => {}
            None => dropped_any = true,
        }
    }
    drop(reader);
    if dropped_any {
        rewrite_keeping_done(path, format, complete_end)?;
    } else if resumed.repaired_tail {
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(complete_end)?;
    }
    Ok(resumed)
}

fn rewrite_keeping_done(path: &Path, format: Format, complete_end: u64) -> anyhow::Result<()> {
    let tmp = temporary_beside(path);
    {
        let reader = BufReader::new(File::open(path)?);
        let mut out = std::io::BufWriter::new(File::create(&tmp)?);
        let mut seen = 0u64;
        let mut first = true;
        for line in reader.split(b'\n') {
            let line = line?;
            seen += line.len() as u64 + 1;
            if seen > complete_end {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            let keep = match format.read(&text) {
                Some((_, failed)) => !failed,
                None => format == Format::Csv && first,
            };
            first = false;
            if keep {
                out.write_all(&line)?;
                out.write_all(b"\n")?;
            }
        }
        out.into_inner()?.sync_all()?;
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("replacing {} with its repair", path.display()))?;
    Ok(())
}

fn temporary_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".repair");
    path.with_file_name(name)
}

/// One failed input in the errors file.
#[derive(Serialize)]
struct ErrorLine<'a> {
    id: &'a str,
    code: &'a str,
    reason: &'a str,
}

/// The `--errors` file: one JSON line per failed input (id, code, reason),
/// written whole in one `write` like the output.
///
/// On `--resume` it is started afresh too: the resumed run retries every
/// failed input of the earlier one (their records were dropped from the
/// output) and reports duplicates again, so each earlier line would be
/// stale or repeated, and a line torn by a kill would glue onto the next.
/// What it holds is always the failures of the output as it stands.
pub struct ErrorLog {
    file: File,
    durability: Durability,
    unsynced: usize,
}

impl ErrorLog {
    /// Opens the errors file, empty.
    pub fn open(path: &Path, durability: Durability) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.set_len(0)?;
        Ok(Self {
            file,
            durability,
            unsynced: 0,
        })
    }

    /// Records a failed input, if `record` is one.
    pub fn write(&mut self, record: &AnalyzeResult) -> anyhow::Result<()> {
        if let Some((code, reason)) = record::error(record) {
            let line = serde_json::to_string(&ErrorLine {
                id: &record.id,
                code: code.grpc_name(),
                reason,
            })? + "\n";
            self.file.write_all(line.as_bytes())?;
            if let Durability::SyncEvery(n) = self.durability {
                self.unsynced += 1;
                if self.unsynced >= n.max(1) {
                    self.file.sync_data()?;
                    self.unsynced = 0;
                }
            }
        }
        Ok(())
    }

    /// Forces what is left to the disk (with `--fsync`).
    pub fn finish(&mut self) -> anyhow::Result<()> {
        if self.unsynced > 0 {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::pipeline::ErrorCode;
    use crate::proto;

    fn ok(id: &str) -> AnalyzeResult {
        record::ok(proto::AnalyzeResponse {
            id: id.into(),
            language: "ar".into(),
            ..Default::default()
        })
    }

    fn failed(id: &str) -> AnalyzeResult {
        record::failed(id.into(), ErrorCode::Internal, "the model stopped".into())
    }

    fn ids(path: &Path, format: Format) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter_map(|l| format.read(l).map(|(id, _)| id))
            .collect()
    }

    #[test]
    fn resume_cuts_a_partial_line_and_reruns_failures() {
        for format in [Format::Jsonl, Format::Csv] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out");
            let (mut sink, resumed) = Sink::open(&path, format, false, false).unwrap();
            assert_eq!(resumed, Resumed::default());
            for r in [ok("a"), failed("b"), ok("c")] {
                sink.write(&r).unwrap();
            }
            drop(sink);
            // A run killed in the middle of writing "d".
            let whole = format.line(&ok("d")).unwrap();
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(&whole.as_bytes()[..whole.len() / 2]).unwrap();
            drop(f);

            let (mut sink, resumed) = Sink::open(&path, format, true, false).unwrap();
            assert!(resumed.repaired_tail, "{format:?}");
            assert_eq!(resumed.retried, 1);
            assert_eq!(
                resumed.done,
                ["a", "c"].into_iter().map(String::from).collect()
            );
            sink.write(&ok("b")).unwrap();
            sink.write(&ok("d")).unwrap();
            assert_eq!(ids(&path, format), ["a", "c", "b", "d"], "{format:?}");
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.ends_with('\n'));
            if format == Format::Csv {
                assert!(text.starts_with("id,language,"));
                assert_eq!(text.matches("id,language,").count(), 1);
            }
        }
    }

    #[test]
    fn an_existing_output_is_not_overwritten_without_a_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(
            &path,
            format!("{}\n", serde_json::to_string(&ok("a")).unwrap()),
        )
        .unwrap();
        let err = Sink::open(&path, Format::Jsonl, false, false)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--resume"), "{err}");
        let (_, resumed) = Sink::open(&path, Format::Jsonl, false, true).unwrap();
        assert!(resumed.done.is_empty());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn resume_refuses_an_output_of_the_other_format() {
        // Regression: resuming a JSONL output with --format csv dropped every
        // record as damage and started over, silently.
        for (written, asked) in [(Format::Jsonl, Format::Csv), (Format::Csv, Format::Jsonl)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out");
            let (mut sink, _) = Sink::open(&path, written, false, false).unwrap();
            sink.write(&ok("a")).unwrap();
            drop(sink);
            let before = std::fs::read(&path).unwrap();
            let err = Sink::open(&path, asked, true, false)
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains(&format!("--format {}", written.name())),
                "{err}"
            );
            assert_eq!(
                std::fs::read(&path).unwrap(),
                before,
                "the output was touched"
            );
            assert!(Sink::open(&path, written, true, false).is_ok());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "my notes\n").unwrap();
        assert!(Sink::open(&path, Format::Jsonl, true, false).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "my notes\n");
    }

    #[test]
    fn fsync_every_n_records_still_writes_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let (sink, _) = Sink::open(&path, Format::Jsonl, false, false).unwrap();
        let mut sink = sink.with_durability(Durability::SyncEvery(3));
        for id in ["a", "b", "c", "d"] {
            sink.write(&ok(id)).unwrap();
        }
        assert_eq!(sink.unsynced, 1);
        sink.finish().unwrap();
        assert_eq!(sink.unsynced, 0);
        assert_eq!(ids(&path, Format::Jsonl), ["a", "b", "c", "d"]);
    }

    #[test]
    fn the_errors_file_starts_afresh_even_when_resuming() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("errors.jsonl");
        // A killed run left a stale line and a torn one.
        std::fs::write(
            &path,
            "{\"id\":\"old\",\"code\":\"internal\",\"reason\":\"x\"}\n{\"id\":\"to",
        )
        .unwrap();
        let mut log = ErrorLog::open(&path, Durability::Written).unwrap();
        log.write(&failed("b")).unwrap();
        log.write(&ok("c")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["id"], "b");
    }

    #[test]
    fn csv_fields_are_quoted_and_kept_on_one_line() {
        let r = record::failed(
            "x,1".into(),
            ErrorCode::InvalidArgument,
            "line one\nline \"two\"".into(),
        );
        let line = Format::Csv.line(&r).unwrap();
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(
            Format::Csv.read(line.trim_end()),
            Some(("x,1".into(), true))
        );
    }
}
