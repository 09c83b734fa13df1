//! Reading the inputs of `khulasa analyze`: `.txt`/`.html`/`.htm` files,
//! directories of them (recursively), `.jsonl` files with one article per
//! line, and `-` for JSONL on stdin. A bad line or file becomes an error
//! item with its id; reading goes on.

use std::io::{BufRead, Read};
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

/// Longest JSONL line read (an article is at most a few MB; a file without
/// newlines must not be read into memory whole).
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// Reads JSONL lines into `out`; false when `out` asked to stop. A line
/// that is not UTF-8, not JSON, or longer than [`MAX_LINE_BYTES`] becomes
/// an error item and reading goes on; only an I/O error ends the file.
fn read_jsonl(
    mut reader: impl BufRead,
    origin: &str,
    out: &mut impl FnMut(InputItem) -> bool,
) -> bool {
    let mut line = Vec::new();
    for i in 0.. {
        let fallback_id = format!("{origin}:{}", i + 1);
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line);
        let item = match read {
            Ok(0) => return true,
            Err(e) => {
                out(Err((fallback_id, e.to_string())));
                return true;
            }
            Ok(_) if line.len() > MAX_LINE_BYTES && line.last() != Some(&b'\n') => {
                // Skip the rest of the over-long line.
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    match (&mut reader).take(1 << 20).read_until(b'\n', &mut rest) {
                        Ok(0) => break,
                        Ok(_) if rest.last() == Some(&b'\n') => break,
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                Some(Err((
                    fallback_id,
                    format!("line longer than {MAX_LINE_BYTES} bytes"),
                )))
            }
            Ok(_) => match std::str::from_utf8(&line) {
                Err(e) => Some(Err((fallback_id, format!("the line is not UTF-8: {e}")))),
                Ok(l) if l.trim().is_empty() => None,
                Ok(l) => Some(parse_line(l, fallback_id)),
            },
        };
        if let Some(item) = item
            && !out(item)
        {
            return false;
        }
    }
    true
}

fn parse_line(l: &str, fallback_id: String) -> InputItem {
    match serde_json::from_str::<ArticleInput>(l) {
        Ok(mut a) => {
            if a.id.is_empty() {
                a.id = fallback_id;
            }
            Ok(a)
        }
        Err(e) => {
            // Keep the id when the line has one, so the error is traceable.
            let id = serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string))
                .unwrap_or(fallback_id);
            Err((id, format!("bad JSON line: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(bytes: &[u8]) -> Vec<Result<String, String>> {
        let mut got = Vec::new();
        read_jsonl(std::io::Cursor::new(bytes), "f", &mut |item| {
            got.push(item.map(|a| a.id).map_err(|(id, _)| id));
            true
        });
        got
    }

    #[test]
    fn a_line_that_is_not_utf8_fails_alone() {
        // Regression: `lines()` stopped reading the whole file at the first
        // line that was not UTF-8, losing every input after it.
        let mut bytes = b"{\"id\":\"a\",\"text\":\"x\"}\n".to_vec();
        bytes.extend_from_slice(b"{\"id\":\"b\",\"text\":\"\xff\xfe\"}\n\n");
        bytes.extend_from_slice(b"not json\n{\"text\":\"y\"}");
        assert_eq!(
            ids(&bytes),
            [
                Ok("a".to_string()),
                Err("f:2".to_string()),
                Err("f:4".to_string()),
                Ok("f:5".to_string())
            ]
        );
    }
}
