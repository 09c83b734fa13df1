//! What users come for: per article, calibrated multi-label topics, stance
//! toward a target with evidence and a cooperation/conflict score, and an
//! extractive summary of its security-cooperation content (or a generic
//! one).
//!
//! Everything works zero-shot from descriptions and improves few-shot from
//! examples; all of it is data ([`data`]). [`Analyzer`] embeds that data once
//! with any [`TextEncoder`] and then analyses cleaned articles
//! ([`khulasa_text::CleanedArticle`]).
//!
//! **Invariant:** never names a Candle type; tests run it on
//! [`khulasa_embed::testing::HashingEncoder`].
#![deny(missing_docs)]

pub mod data;
mod math;
pub mod stance;
pub mod summary;
pub mod topic;
mod vectors;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use khulasa_embed::{EncodeError, InputKind, StopToken, TextEncoder};
use khulasa_text::CleanedArticle;

pub use crate::data::{AnalysisData, BundledData, DataDir, DataFiles, Label, LabelSet};
pub use crate::math::{Linear, fit_logistic};
pub use crate::stance::{Evidence, StanceLabel, StanceProbabilities, StanceResult, TargetKind};
pub use crate::summary::{SummaryBudget, SummaryResult, SummarySentence, SummaryStatus};
pub use crate::topic::{LabelScore, TopicHead, TopicMethod, TopicResult};
pub use crate::vectors::SentenceVectors;

use crate::math::{dot, mean_unit};
use crate::stance::{ClaimLexicon, PreparedClaim, PreparedTarget, StanceModel};
use crate::summary::{Candidate, PreparedFocus};
use crate::topic::TopicModel;

/// Errors of the analysis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalysisError {
    /// A data file is missing or malformed.
    #[error("{origin}: {message}")]
    Data {
        /// File or request part.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A request names a label set that is not loaded.
    #[error("unknown label set {0:?}")]
    UnknownLabelSet(String),
    /// A request is malformed (e.g. an empty target).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The encoder failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Which label set a request uses.
#[derive(Debug, Clone, Default)]
pub enum LabelSetChoice {
    /// The default set (`security-news`).
    #[default]
    Default,
    /// A loaded set by name.
    Named(String),
    /// A set sent with the request.
    Inline(LabelSet),
}

/// What a summary is about.
#[derive(Debug, Clone, Default)]
pub enum FocusChoice {
    /// The default focus: security cooperation.
    #[default]
    Default,
    /// Another focus, as free text.
    Text(String),
    /// No focus: a generic summary.
    Generic,
}

/// Which analyses to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tasks {
    /// Topic classification.
    pub topics: bool,
    /// Stance and cooperation/conflict.
    pub stance: bool,
    /// Extractive summary.
    pub summary: bool,
}

impl Default for Tasks {
    fn default() -> Self {
        Self {
            topics: true,
            stance: true,
            summary: true,
        }
    }
}

/// What one analysis request asks for.
#[derive(Debug, Clone, Default)]
pub struct AnalysisRequest {
    /// Which analyses.
    pub tasks: Tasks,
    /// The label set.
    pub label_set: LabelSetChoice,
    /// The stance target as free text; `None` for the default target.
    pub target: Option<String>,
    /// Whether the target is a topic or a claim (claims need `target`).
    pub target_kind: TargetKind,
    /// The summary focus.
    pub focus: FocusChoice,
    /// The summary budget.
    pub budget: SummaryBudget,
}

/// Longest free-text target or focus, in characters.
pub const MAX_TARGET_CHARS: usize = 1000;

/// The analyses of one article.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Topics, when asked for.
    pub topics: Option<TopicResult>,
    /// Stance, when asked for.
    pub stance: Option<StanceResult>,
    /// Summary, when asked for.
    pub summary: Option<SummaryResult>,
}

/// How the analyzer works.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnalyzerOptions {
    /// How sentence vectors are made.
    pub sentence_vectors: SentenceVectors,
}

/// Most inline label sets whose prepared models are kept.
const TOPIC_CACHE: usize = 32;
/// Most free-text targets and claims whose prepared vectors are kept (an
/// archive usually asks about one).
const TARGET_CACHE: usize = 64;

/// Most model tokens of an article's sentences that are analysed: about 6 s
/// of encoder time on 2 cores. Real stories stay far below (a long report of
/// 400 sentences is ~16,000); text where a byte or two is a token (random
/// symbols, storms of combining marks) reaches it in a few dozen sentences,
/// so one request cannot cost minutes. Past it the article is analysed as
/// if it ended there, and says so (`truncated`).
pub const MAX_ARTICLE_TOKENS: usize = 32_768;

/// The analysis data, embedded once, ready to analyse articles.
pub struct Analyzer {
    encoder: Arc<dyn TextEncoder>,
    data: AnalysisData,
    options: AnalyzerOptions,
    background: Vec<Vec<f32>>,
    /// The background in the summary's geometry when it differs (pooled
    /// sentence vectors: read in context and centred).
    summary_background: Option<Vec<Vec<f32>>>,
    topic_models: Mutex<HashMap<u64, Arc<TopicModel>>>,
    /// The centre of zero-shot single-label topic scoring.
    topic_centre: Vec<f32>,
    default_target: PreparedTarget,
    targets: Mutex<HashMap<String, Arc<PreparedTarget>>>,
    claims: Mutex<HashMap<String, Arc<PreparedClaim>>>,
    claim_lexicon: ClaimLexicon,
    stance: StanceModel,
    focus: PreparedFocus,
}

impl Analyzer {
    /// Embeds the data with `encoder`: label sets, targets, prototypes,
    /// event types, focus, and the calibration background (every example
    /// sentence in the data: varied news across topics and attitudes).
    pub fn new(
        encoder: Arc<dyn TextEncoder>,
        data: AnalysisData,
        options: AnalyzerOptions,
    ) -> Result<Self, AnalysisError> {
        let e = encoder.as_ref();
        let passages = |t: &[String]| -> Result<Vec<Vec<f32>>, EncodeError> {
            let refs: Vec<&str> = t.iter().map(String::as_str).collect();
            e.embed(&refs, InputKind::Passage)
        };
        let mut pool: Vec<String> = data
            .label_sets
            .values()
            .flat_map(|s| s.labels.iter().flat_map(|l| l.examples.iter().cloned()))
            .chain(data.polarity.supportive.statements.iter().cloned())
            .chain(data.polarity.critical.statements.iter().cloned())
            .chain(data.polarity.neutral.statements.iter().cloned())
            .chain(
                data.events
                    .iter()
                    .flat_map(|ev| ev.examples.iter().cloned()),
            )
            .collect();
        // Deduplicated in the data's order: the pooled method reads these
        // sentences in context, and a label's examples make a coherent
        // paragraph.
        let mut seen = std::collections::HashSet::new();
        pool.retain(|t| seen.insert(t.clone()));
        let background = passages(&pool)?;
        let summary_background = match options.sentence_vectors {
            SentenceVectors::Separate => None,
            SentenceVectors::Pooled => {
                let refs: Vec<&str> = pool.iter().map(String::as_str).collect();
                Some(vectors::in_context(e, &refs)?)
            }
        };
        let dim = e.info().dim;

        let stance = StanceModel::new(
            [
                passages(&data.polarity.supportive.statements)?,
                passages(&data.polarity.critical.statements)?,
                passages(&data.polarity.neutral.statements)?,
            ],
            &data.cues,
            data.events
                .iter()
                .map(|ev| Ok((ev.goldstein.clamp(-10.0, 10.0), passages(&ev.examples)?)))
                .collect::<Result<_, EncodeError>>()?,
            &background,
        );
        let target = data.default_target();
        let target_vec = mean_unit(&queries(e, &target.description, &StopToken::never())?, dim);
        // Templates name the target in words: its first description up to
        // the colon that starts the details.
        let words = target.description.first().map_or(target.id.as_str(), |d| {
            d.split([':', '：']).next().unwrap_or(d).trim()
        });
        let default_target = PreparedTarget::new(
            target.id.clone(),
            target_vec,
            Some(templates(e, &data.templates, words, &StopToken::never())?),
            &background,
        );
        let focus_vec = mean_unit(
            &queries(e, &data.focus.description, &StopToken::never())?,
            dim,
        );
        let focus = prepare_focus(
            focus_vec,
            summary_background.as_ref().unwrap_or(&background),
        );

        let fitted = data.fitted.get(&e.info().id);
        let news_mean = fitted
            .and_then(|f| f.news_mean.as_ref())
            .filter(|m| m.len() == dim);
        let topic_centre = topic_centre(&background, news_mean.map(Vec::as_slice), dim);
        let claim_lexicon = ClaimLexicon::new(&data.claims);
        let analyzer = Self {
            encoder,
            data,
            options,
            background,
            summary_background,
            topic_models: Mutex::new(HashMap::new()),
            topic_centre,
            default_target,
            targets: Mutex::new(HashMap::new()),
            claims: Mutex::new(HashMap::new()),
            claim_lexicon,
            stance,
            focus,
        };
        for set in analyzer.data.label_sets.values() {
            analyzer.topic_model(set, &StopToken::never())?;
        }
        tracing::info!(
            label_sets = analyzer.data.label_sets.len(),
            background = analyzer.background.len(),
            "analysis data embedded"
        );
        Ok(analyzer)
    }

    /// The data the analyzer runs on.
    pub fn data(&self) -> &AnalysisData {
        &self.data
    }

    /// The encoder.
    pub fn encoder(&self) -> &dyn TextEncoder {
        self.encoder.as_ref()
    }

    /// Cuts `article`'s sentences at [`MAX_ARTICLE_TOKENS`] (counted as the
    /// encoder will see them), marking it `truncated` if any went. Run it
    /// before [`Analyzer::analyze`]; the cleaner's own cap is on sentences.
    pub fn fit_token_budget(&self, article: &mut CleanedArticle) {
        let mut tokens = 0usize;
        let keep = article
            .sentences
            .iter()
            .position(|s| {
                let text = vectors::prefix(&s.text, vectors::MAX_SENTENCE_BYTES);
                tokens += self
                    .encoder
                    .count_tokens(text, InputKind::Passage)
                    .unwrap_or(text.len() / 4 + 2);
                tokens > MAX_ARTICLE_TOKENS
            })
            .unwrap_or(article.sentences.len());
        if keep < article.sentences.len() {
            article.sentences.truncate(keep.max(1));
            article.truncated = true;
        }
    }

    /// Analyses a cleaned article; `source` is the text its offsets refer to
    /// (the client's text, or the extracted text for HTML).
    pub fn analyze(
        &self,
        article: &CleanedArticle,
        source: &str,
        request: &AnalysisRequest,
    ) -> Result<Analysis, AnalysisError> {
        self.analyze_until(article, source, request, &StopToken::never())
    }

    /// [`Analyzer::analyze`] for a caller that may go away: `stop` is
    /// checked between stages and by the encoder between forward passes;
    /// once it fires the analysis ends with [`EncodeError::Stopped`].
    pub fn analyze_until(
        &self,
        article: &CleanedArticle,
        source: &str,
        request: &AnalysisRequest,
        stop: &StopToken,
    ) -> Result<Analysis, AnalysisError> {
        stop.check().map_err(EncodeError::from)?;
        let vectors = vectors::article_vectors(
            self.encoder.as_ref(),
            article,
            source,
            self.options.sentence_vectors,
            stop,
        )?;
        let all: Vec<&[f32]> = vectors.sentences.iter().map(Vec::as_slice).collect();
        let body: Vec<usize> = (0..article.sentences.len())
            .filter(|&i| !article.sentences[i].is_title)
            .collect();

        let topics = if request.tasks.topics && !article.sentences.is_empty() {
            stop.check().map_err(EncodeError::from)?;
            let model = match &request.label_set {
                LabelSetChoice::Default => {
                    self.topic_model(&self.data.label_sets[&self.data.default_label_set], stop)?
                }
                LabelSetChoice::Named(name) => {
                    let set = self
                        .data
                        .label_sets
                        .get(name)
                        .ok_or_else(|| AnalysisError::UnknownLabelSet(name.clone()))?;
                    self.topic_model(set, stop)?
                }
                LabelSetChoice::Inline(set) => {
                    set.validate().map_err(AnalysisError::InvalidRequest)?;
                    self.topic_model(set, stop)?
                }
            };
            Some(model.classify(&vectors.article, &all))
        } else {
            None
        };

        let stance = if request.tasks.stance && !article.sentences.is_empty() {
            stop.check().map_err(EncodeError::from)?;
            let sentences: Vec<(usize, &str, &[f32])> = article
                .sentences
                .iter()
                .enumerate()
                .map(|(i, s)| (i, s.text.as_str(), all[i]))
                .collect();
            match (request.target_kind, &request.target) {
                (TargetKind::Claim, None) => {
                    return Err(AnalysisError::InvalidRequest(
                        "a claim target needs the claim's text".into(),
                    ));
                }
                (TargetKind::Claim, Some(claim)) => {
                    let claim = self.prepare_claim(claim, stop)?;
                    Some(self.stance.claim_stance(
                        &claim,
                        &sentences,
                        &self.data.claims,
                        &self.claim_lexicon,
                        self.pair_head(),
                    ))
                }
                (TargetKind::Topic, target) => {
                    let prepared = match target {
                        None => None,
                        Some(t) => Some(self.prepare_target(t, stop)?),
                    };
                    let target = prepared.as_deref().unwrap_or(&self.default_target);
                    Some(self.stance.stance(target, &vectors.article, &sentences))
                }
            }
        } else {
            None
        };

        let summary = if request.tasks.summary {
            stop.check().map_err(EncodeError::from)?;
            let custom;
            let focus = match &request.focus {
                FocusChoice::Default => Some(&self.focus),
                FocusChoice::Generic => None,
                FocusChoice::Text(t) => {
                    check_free_text("focus", t)?;
                    let v = mean_unit(
                        &queries(self.encoder.as_ref(), std::slice::from_ref(t), stop)?,
                        self.dim(),
                    );
                    custom = prepare_focus(
                        v,
                        self.summary_background.as_ref().unwrap_or(&self.background),
                    );
                    Some(&custom)
                }
            };
            let for_summary = vectors.for_summary.as_ref().unwrap_or(&vectors.sentences);
            let candidates: Vec<Candidate<'_>> = body
                .iter()
                .map(|&i| Candidate {
                    index: i,
                    sentence: &article.sentences[i],
                    vector: &for_summary[i],
                })
                .collect();
            let title = title_vector(article, for_summary, self.dim());
            Some(summary::summarise(
                &candidates,
                title.as_deref(),
                focus,
                &request.budget,
            ))
        } else {
            None
        };
        Ok(Analysis {
            topics,
            stance,
            summary,
        })
    }

    fn dim(&self) -> usize {
        self.encoder.info().dim
    }

    /// The view of an article that single-label topic sets score (its story
    /// vector plus its sentences' mean), for training and evaluating heads.
    pub fn topic_view(
        &self,
        article: &CleanedArticle,
        source: &str,
        stop: &StopToken,
    ) -> Result<Vec<f32>, AnalysisError> {
        let v = vectors::article_vectors(
            self.encoder.as_ref(),
            article,
            source,
            self.options.sentence_vectors,
            stop,
        )?;
        let all: Vec<&[f32]> = v.sentences.iter().map(Vec::as_slice).collect();
        Ok(TopicModel::view(&v.article, &all, self.dim()))
    }

    /// Fits a head for the single-label `set` on labelled views ([`Analyzer::topic_view`]
    /// of articles, with their label ids): what `khulasa train` writes.
    pub fn train_head(
        &self,
        set: &LabelSet,
        examples: &[(String, Vec<f32>)],
    ) -> Result<TopicHead, AnalysisError> {
        if set.multi_label {
            return Err(AnalysisError::InvalidRequest(format!(
                "{}: heads are trained for single-label sets (multi_label = false)",
                set.name
            )));
        }
        let mut untrained = set.clone();
        untrained.trained = None;
        let model = self.topic_model(&untrained, &StopToken::never())?;
        let directions = model.directions().expect("single-label").to_vec();
        let index = |id: &str| {
            set.labels.iter().position(|l| l.id == id).ok_or_else(|| {
                AnalysisError::InvalidRequest(format!(
                    "an example's label {id:?} is not in {}",
                    set.name
                ))
            })
        };
        let shots = examples
            .iter()
            .map(|(id, v)| Ok((index(id)?, v.clone())))
            .collect::<Result<Vec<_>, AnalysisError>>()?;
        let (centre, linear) = topic::fit_head(&directions, &shots, self.dim());
        Ok(TopicHead {
            model: self.encoder.info().id.clone(),
            dim: self.dim(),
            labels: set.labels.iter().map(|l| l.id.clone()).collect(),
            centre,
            directions,
            linear,
            examples: shots.len(),
        })
    }

    /// Topics of the single-label `set` for an article's view.
    pub fn classify_view(
        &self,
        set: &LabelSet,
        view: &[f32],
    ) -> Result<TopicResult, AnalysisError> {
        let model = self.topic_model(set, &StopToken::never())?;
        model.classify_view(view).ok_or_else(|| {
            AnalysisError::InvalidRequest(format!("{} is not a single-label set", set.name))
        })
    }

    /// A free-text target, embedded with its templates once and cached.
    fn prepare_target(
        &self,
        text: &str,
        stop: &StopToken,
    ) -> Result<Arc<PreparedTarget>, AnalysisError> {
        check_free_text("target", text)?;
        if let Some(t) = self.targets.lock().expect("not poisoned").get(text) {
            return Ok(t.clone());
        }
        let e = self.encoder.as_ref();
        let v = mean_unit(&queries(e, &[text.to_string()], stop)?, self.dim());
        let t = Arc::new(PreparedTarget::new(
            text.to_string(),
            v,
            Some(templates(e, &self.data.templates, text, stop)?),
            &self.background,
        ));
        cache_put(&self.targets, text, t.clone());
        Ok(t)
    }

    /// A claim, embedded once and cached.
    fn prepare_claim(
        &self,
        text: &str,
        stop: &StopToken,
    ) -> Result<Arc<PreparedClaim>, AnalysisError> {
        check_free_text("target", text)?;
        if let Some(c) = self.claims.lock().expect("not poisoned").get(text) {
            return Ok(c.clone());
        }
        let v = mean_unit(
            &queries(self.encoder.as_ref(), &[text.to_string()], stop)?,
            self.dim(),
        );
        let c = Arc::new(PreparedClaim::new(
            text.to_string(),
            v,
            &self.background,
            &self.claim_lexicon,
            &self.data.frequencies,
        ));
        cache_put(&self.claims, text, c.clone());
        Ok(c)
    }

    /// The sentence-pair classifier fitted for this model, if any.
    fn pair_head(&self) -> Option<&data::PairHead> {
        self.data
            .fitted
            .get(&self.encoder.info().id)
            .and_then(|f| f.pair_head.as_ref())
            .filter(|h| h.weights.first().is_some_and(|w| w.len() == 4 * self.dim()))
    }

    /// The prepared model of `set`, built once per distinct content.
    fn topic_model(
        &self,
        set: &LabelSet,
        stop: &StopToken,
    ) -> Result<Arc<TopicModel>, AnalysisError> {
        let key = set.fingerprint();
        if let Some(m) = self.topic_models.lock().expect("not poisoned").get(&key) {
            return Ok(m.clone());
        }
        let e = self.encoder.as_ref();
        let descriptions = set
            .labels
            .iter()
            .map(|l| queries(e, &l.description, stop))
            .collect::<Result<Vec<_>, _>>()?;
        let examples = set
            .labels
            .iter()
            .map(|l| {
                let refs: Vec<&str> = l.examples.iter().map(String::as_str).collect();
                if refs.is_empty() {
                    Ok(Vec::new())
                } else {
                    e.embed_until(&refs, InputKind::Passage, stop)
                }
            })
            .collect::<Result<Vec<_>, EncodeError>>()?;
        let model = Arc::new(TopicModel::build(
            set,
            descriptions,
            examples,
            &self.background,
            self.dim(),
            &self.topic_centre,
        ));
        let mut cache = self.topic_models.lock().expect("not poisoned");
        if cache.len() >= TOPIC_CACHE + self.data.label_sets.len() {
            // Forget inline sets; the loaded ones are rebuilt on demand.
            cache.clear();
        }
        cache.insert(key, model.clone());
        Ok(model)
    }
}

/// Keeps `value` under `key`, forgetting everything once the cache is full.
fn cache_put<T>(cache: &Mutex<HashMap<String, Arc<T>>>, key: &str, value: Arc<T>) {
    let mut c = cache.lock().expect("not poisoned");
    if c.len() >= TARGET_CACHE {
        c.clear();
    }
    c.insert(key.to_string(), value);
}

/// The templates of `data` for `target`, embedded as passages.
fn templates(
    e: &dyn TextEncoder,
    data: &data::StanceTemplates,
    target: &str,
    stop: &StopToken,
) -> Result<stance::TemplateVectors, EncodeError> {
    let (favor, against) = data.fill(target);
    let mut all: Vec<&str> = favor.iter().map(String::as_str).collect();
    all.extend(against.iter().map(String::as_str));
    let mut vectors = e.embed_until(&all, InputKind::Passage, stop)?;
    let against = vectors.split_off(favor.len());
    Ok((vectors, against))
}

/// Half the background's mean and half the mean news article (when one was
/// fitted for this model), else the background's mean: what every text has
/// in common, taken out before single-label topics are compared.
fn topic_centre(background: &[Vec<f32>], news_mean: Option<&[f32]>, dim: usize) -> Vec<f32> {
    let mut m = vec![0f32; dim];
    for b in background {
        m.iter_mut()
            .zip(b)
            .for_each(|(a, x)| *a += x / background.len().max(1) as f32);
    }
    if let Some(news) = news_mean {
        m.iter_mut()
            .zip(news)
            .for_each(|(a, x)| *a = 0.5 * *a + 0.5 * x);
    }
    m
}

fn queries(
    e: &dyn TextEncoder,
    texts: &[String],
    stop: &StopToken,
) -> Result<Vec<Vec<f32>>, EncodeError> {
    let refs: Vec<&str> = texts
        .iter()
        .map(String::as_str)
        .filter(|t| !t.trim().is_empty())
        .collect();
    e.embed_until(&refs, InputKind::Query, stop)
}

fn prepare_focus(vector: Vec<f32>, background: &[Vec<f32>]) -> PreparedFocus {
    let calibration = math::Calibration::fit(background.iter().map(|b| dot(b, &vector)));
    PreparedFocus {
        vector,
        calibration,
    }
}

fn check_free_text(what: &str, text: &str) -> Result<(), AnalysisError> {
    if text.trim().is_empty() {
        return Err(AnalysisError::InvalidRequest(format!(
            "the {what} is empty"
        )));
    }
    let n = text.chars().count();
    if n > MAX_TARGET_CHARS {
        return Err(AnalysisError::InvalidRequest(format!(
            "the {what} has {n} characters; at most {MAX_TARGET_CHARS}"
        )));
    }
    Ok(())
}

/// The title's vector: the mean of its sentences' vectors.
fn title_vector(article: &CleanedArticle, sentences: &[Vec<f32>], dim: usize) -> Option<Vec<f32>> {
    let title: Vec<Vec<f32>> = article
        .sentences
        .iter()
        .zip(sentences)
        .filter(|(s, _)| s.is_title)
        .map(|(_, v)| v.clone())
        .collect();
    (!title.is_empty()).then(|| mean_unit(&title, dim))
}
