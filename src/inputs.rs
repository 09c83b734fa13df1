//! Reading the inputs of `khulasa analyze`: `.txt`/`.html`/`.htm` files,
//! directories of them (recursively), `.jsonl` files with one article per
//! line, and `-` for JSONL on stdin. A bad line or file becomes an error
//! item with its id; reading goes on.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::pipeline::ArticleInput;

/// One input, or why it could not be read (with the id it would have had).
pub type InputItem = Result<ArticleInput, (String, String)>;

/// Every input named by `args`, in order.
pub fn collect(args: &[PathBuf]) -> Vec<InputItem> {
    let mut items = Vec::new();
    for_each(args, |item| {
        items.push(item);
        true
    });
    items
}

/// Calls `f` with every input named by `args`, in order, reading one at a
/// time (an archive never has to fit in memory); stops early when `f`
/// returns false.
pub fn for_each(args: &[PathBuf], mut f: impl FnMut(InputItem) -> bool) {
    for arg in args {
        let go_on = if arg.as_os_str() == "-" {
            read_jsonl(std::io::stdin().lock(), "stdin", &mut f)
        } else if arg.is_dir() {
            let mut files = Vec::new();
            walk(arg, &mut files);
            files.sort();
            files.iter().all(|file| {
                let id = file
                    .strip_prefix(arg)
                    .unwrap_or(file)
                    .to_string_lossy()
                    .into_owned();
                f(read_page(file, id))
            })
        } else if has_ext(arg, &["jsonl"]) {
            match std::fs::File::open(arg) {
                Ok(file) => read_jsonl(
                    std::io::BufReader::new(file),
                    &arg.display().to_string(),
                    &mut f,
                ),
                Err(e) => f(Err((arg.display().to_string(), e.to_string()))),
            }
        } else {
            let id = arg.file_name().map_or_else(
                || arg.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            f(read_page(arg, id))
        };
        if !go_on {
            return;
        }
    }
}

/// How many inputs `args` name, counted cheaply (files, and non-blank
/// JSONL lines); `None` when stdin is among them.
pub fn count(args: &[PathBuf]) -> Option<usize> {
    let mut n = 0;
    for arg in args {
        if arg.as_os_str() == "-" {
            return None;
        } else if arg.is_dir() {
            let mut files = Vec::new();
            walk(arg, &mut files);
            n += files.len();
        } else if has_ext(arg, &["jsonl"]) {
            n += std::fs::File::open(arg).map_or(1, |f| {
                std::io::BufReader::new(f)
                    .split(b'\n')
                    .filter(|l| l.as_ref().map_or(true, |l| !l.trim_ascii().is_empty()))
                    .count()
            });
        } else {
            n += 1;
        }
    }
    Some(n)
}

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if has_ext(&p, &["txt", "html", "htm"]) {
            out.push(p);
        }
    }
}

fn read_page(path: &Path, id: String) -> InputItem {
    let content = std::fs::read_to_string(path)
        .map_err(|e| (id.clone(), format!("{}: {e}", path.display())))?;
    let html = has_ext(path, &["html", "htm"]);
    Ok(ArticleInput {
        id,
        text: (!html).then(|| content.clone()),
        html: html.then_some(content),
        ..ArticleInput::default()
    })
}

/// Reads JSONL lines into `out`; false when `out` asked to stop.
fn read_jsonl(reader: impl BufRead, origin: &str, out: &mut impl FnMut(InputItem) -> bool) -> bool {
    for (i, line) in reader.lines().enumerate() {
        let fallback_id = format!("{origin}:{}", i + 1);
        let go_on = match line {
            Err(e) => {
                out(Err((fallback_id, e.to_string())));
                break;
            }
            Ok(l) if l.trim().is_empty() => true,
            Ok(l) => out(match serde_json::from_str::<ArticleInput>(&l) {
                Ok(mut a) => {
                    if a.id.is_empty() {
                        a.id = fallback_id;
                    }
                    Ok(a)
                }
                Err(e) => {
                    // Keep the id when the line has one, so the error is traceable.
                    let id = serde_json::from_str::<serde_json::Value>(&l)
                        .ok()
                        .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string))
                        .unwrap_or(fallback_id);
                    Err((id, format!("bad JSON line: {e}")))
                }
            }),
        };
        if !go_on {
            return false;
        }
    }
    true
}
