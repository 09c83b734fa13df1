//! Splitting an archive between N processes with no coordinator: shard K
//! of N takes exactly the inputs whose id hashes to K (FNV-1a, 64-bit: the
//! same on every machine and version), so N pods of a Kubernetes Indexed
//! Job, each given its index, split an archive between them, and each
//! writes (and resumes) its own output, `out.K-of-N.jsonl`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Shard `index` of `count` (0-based, as `JOB_COMPLETION_INDEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

/// The environment variables a shard is read from when `--shard` is not
/// given: Kubernetes sets the first in an Indexed Job's pods; the manifest
/// sets the second to the Job's `completions`.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// See [`INDEX_ENV`].
pub const COUNT_ENV: &str = "KHULASA_SHARDS";

impl FromStr for Shard {
    type Err = String;

    /// `K/N`, `0 <= K < N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: give K/N, e.g. 0/4"))?;
        let index: usize = k
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: K is not a number"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: N is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("`{s}`: K must be in 0..N and N at least 1"));
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The shard from [`INDEX_ENV`] and [`COUNT_ENV`], when both are set.
    pub fn from_env() -> Result<Option<Self>, String> {
        match (std::env::var(INDEX_ENV), std::env::var(COUNT_ENV)) {
            (Ok(k), Ok(n)) => format!("{k}/{n}")
                .parse()
                .map(Some)
                .map_err(|e| format!("{INDEX_ENV}/{COUNT_ENV}: {e}")),
            (Ok(_), Err(_)) => Err(format!(
                "{INDEX_ENV} is set but {COUNT_ENV} is not: set it to the Job's completions \
                 (or pass --shard K/N)"
            )),
            _ => Ok(None),
        }
    }

    /// Which shard an id belongs to.
    pub fn of(id: &str, count: usize) -> usize {
        (fnv1a(id.as_bytes()) % count as u64) as usize
    }

    /// Whether this shard takes the input with `id`.
    pub fn takes(&self, id: &str) -> bool {
        Self::of(id, self.count) == self.index
    }

    /// This shard's own file for `path`: `out.jsonl` → `out.K-of-N.jsonl`
    /// (`out` → `out.K-of-N`).
    pub fn path(&self, path: &Path) -> PathBuf {
        let tag = format!("{}-of-{}", self.index, self.count);
        let name = match (path.file_stem(), path.extension()) {
            (Some(stem), Some(ext)) => {
                format!("{}.{tag}.{}", stem.to_string_lossy(), ext.to_string_lossy())
            }
            _ => format!(
                "{}.{tag}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
        };
        path.with_file_name(name)
    }
}

/// FNV-1a, 64-bit.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_name_their_files() {
        let s: Shard = "2/4".parse().unwrap();
        assert_eq!(s, Shard { index: 2, count: 4 });
        for bad in ["4/4", "1/0", "a/2", "2", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(
            s.path(Path::new("/data/out.jsonl")),
            Path::new("/data/out.2-of-4.jsonl")
        );
        assert_eq!(s.path(Path::new("out")), Path::new("out.2-of-4"));
    }

    #[test]
    fn every_id_is_in_exactly_one_shard_and_the_split_is_even() {
        // Stable across machines: pinned values of the hash.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let n = 4;
        let mut sizes = vec![0usize; n];
        for i in 0..10_000 {
            let id = format!("article-{i}");
            let owners: Vec<usize> = (0..n)
                .filter(|&k| Shard { index: k, count: n }.takes(&id))
                .collect();
            assert_eq!(owners.len(), 1, "{id}");
            sizes[owners[0]] += 1;
        }
        for s in sizes {
            assert!(
                (2_300..2_700).contains(&s),
                "{s} of 10,000 in one of 4 shards"
            );
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Distinct input ids.
    pub inputs: usize,
    /// Records read from the outputs.
    pub records: usize,
    /// Input ids with no record (first 20, sorted), and how many.
    pub missing: (Vec<String>, usize),
    /// Ids with more than one record (first 20, sorted), and how many.
    pub duplicated: (Vec<String>, usize),
    /// Record ids that are no input's (first 20, sorted), and how many.
    pub extra: (Vec<String>, usize),
}

impl Verification {
    /// Whether the outputs hold every input exactly once, and nothing else.
    pub fn complete(&self) -> bool {
        self.missing.1 == 0 && self.duplicated.1 == 0 && self.extra.1 == 0
    }

    /// A report for a person.
    pub fn report(&self) -> String {
        let list = |(ids, n): &(Vec<String>, usize)| {
            if *n == 0 {
                "0".to_string()
            } else {
                format!(
                    "{n} ({}{})",
                    ids.join(", "),
                    if *n > ids.len() { ", …" } else { "" }
                )
            }
        };
        format!(
            "{} inputs, {} records: missing {}, duplicated {}, not an input {}",
            self.inputs,
            self.records,
            list(&self.missing),
            list(&self.duplicated),
            list(&self.extra)
        )
    }
}

const SHOWN: usize = 20;

fn sample(mut ids: Vec<String>) -> (Vec<String>, usize) {
    let n = ids.len();
    ids.sort();
    ids.truncate(SHOWN);
    (ids, n)
}

/// The id of every record of an output: JSONL (`{"id": …}` per line), or
/// CSV (`.csv`, an `id` column).
fn record_ids(path: &Path, mut f: impl FnMut(String, &str)) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::BufRead;
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "csv") {
        let mut reader = csv::Reader::from_reader(file);
        let column = reader
            .headers()?
            .iter()
            .position(|h| h == "id")
            .with_context(|| format!("{}: no id column", path.display()))?;
        for row in reader.records() {
            let row = row.with_context(|| format!("reading {}", path.display()))?;
            f(row.get(column).unwrap_or_default().to_string(), "");
        }
        return Ok(());
    }
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let Id { id } = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: not a record", path.display(), n + 1))?;
        f(id, &line);
    }
    Ok(())
}

/// Checks that the `outputs` of a sharded run (any number of files, in any
/// order) hold a record for every input id exactly once; with `merged`,
/// also writes their union there (JSONL outputs: the first record of each
/// id, in the order read).
pub fn verify(
    inputs: &[PathBuf],
    outputs: &[PathBuf],
    merged: Option<&Path>,
) -> anyhow::Result<Verification> {
    use std::collections::{HashMap, HashSet};
    use std::io::Write;
    let mut wanted = HashSet::new();
    crate::inputs::for_each(inputs, |item| {
        let id = match item {
            Ok(input) => input.id,
            Err((id, _)) => id,
        };
        wanted.insert(id);
        true
    });
    let mut out = match merged {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut records = 0;
    let mut write_error = None;
    for path in outputs {
        record_ids(path, |id, line| {
            records += 1;
            let n = seen.entry(id).or_insert(0);
            *n += 1;
            if *n == 1
                && let Some(w) = out.as_mut()
                && !line.is_empty()
                && let Err(e) = writeln!(w, "{line}")
            {
                write_error.get_or_insert(e);
            }
        })?;
    }
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if let Some(mut w) = out {
        w.flush()?;
    }
    Ok(Verification {
        inputs: wanted.len(),
        records,
        missing: sample(
            wanted
                .iter()
                .filter(|id| !seen.contains_key(*id))
                .cloned()
                .collect(),
        ),
        duplicated: sample(
            seen.iter()
                .filter(|(_, n)| **n > 1)
                .map(|(id, _)| id.clone())
                .collect(),
        ),
        extra: sample(
            seen.keys()
                .filter(|id| !wanted.contains(*id))
                .cloned()
                .collect(),
        ),
    })
}
