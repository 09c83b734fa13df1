//! `khulasa eval` (the dev set, or labelled real-data sets beside their
//! baselines) and `khulasa train` (a head for a label set).

use std::path::PathBuf;

use anyhow::Context;
use khulasa::eval;

use super::AnalysisArgs;

/// What `eval` is given.
#[derive(clap::Args)]
pub struct EvalArgs {
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
    /// Gold labels of a set read through a map: STEM=FILE.toml with a
    /// `[map]` table (gold label = label id); items whose gold label is
    /// not in it are left out (repeatable).
    #[arg(long = "map-gold", value_name = "STEM=FILE")]
    map_gold: Vec<String>,
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
}

/// What `train` is given.
#[derive(clap::Args)]
pub struct TrainArgs {
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
}

/// Scores the dev set, or the sets of `--suite`, and prints the figures.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    match args {
        EvalArgs {
            analysis,
            json,
            suite: Some(suite),
            set_labels,
            map_gold,
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
            let mut sets = eval::suite::read_sets(&suite, limit)?;
            for spec in &map_gold {
                let (stem, file) = spec
                    .split_once('=')
                    .with_context(|| format!("--map-gold {spec}: expected STEM=FILE.toml"))?;
                #[derive(serde::Deserialize)]
                struct GoldMap {
                    map: std::collections::BTreeMap<String, String>,
                }
                let text =
                    std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
                let GoldMap { map } =
                    toml::from_str(&text).with_context(|| format!("reading {file}"))?;
                let set = sets
                    .iter_mut()
                    .find(|s| s.name == stem)
                    .with_context(|| format!("--map-gold {spec}: no set {stem}"))?;
                set.items.retain_mut(|item| match map.get(&item.label) {
                    Some(to) => {
                        item.label = to.clone();
                        true
                    }
                    None => false,
                });
            }
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
        EvalArgs {
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
    }
}

/// Trains a head and writes it beside the set (or to `--out`).
pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let TrainArgs {
        analysis,
        labels,
        examples,
        out,
    } = args;
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
