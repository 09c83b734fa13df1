//! Dynamic batching across concurrent requests.
//!
//! [`BatchingEncoder`] is a [`TextEncoder`] whose `embed` sends its texts to
//! one inference thread and waits. The thread takes the first waiting job,
//! keeps collecting jobs for a short window (or until a token-ish budget of
//! texts is reached), runs them as one call of the real encoder (which packs
//! them into length-sorted batches) and hands each job its vectors. Analysis
//! code is unchanged: eight concurrent articles simply share forward passes.
//! A job whose caller has gone (cancelled or past its deadline) is dropped
//! before it runs.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use khulasa_embed::{EncodeError, InputKind, ModelInfo, TextEncoder, TokenStates};

use super::metrics::Metrics;

/// How the batcher collects work.
#[derive(Debug, Clone, Copy)]
pub struct BatchingOptions {
    /// How long to wait for more jobs after the first one.
    pub window: Duration,
    /// Stop collecting once this many texts are waiting.
    pub max_texts: usize,
    /// Jobs that may wait for the thread before `embed` blocks.
    pub queue: usize,
}

impl Default for BatchingOptions {
    fn default() -> Self {
        Self {
            window: Duration::from_millis(4),
            max_texts: 256,
            queue: 1024,
        }
    }
}

thread_local! {
    static CANCEL: std::cell::RefCell<Option<Arc<AtomicBool>>> = const { std::cell::RefCell::new(None) };
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static QUEUE_MS: Cell<f64> = const { Cell::new(0.0) };
    static INFERENCE_MS: Cell<f64> = const { Cell::new(0.0) };
}

/// Per-request context for the work a blocking thread does on behalf of one
/// request: its cancellation flag and deadline, and the time its jobs spent
/// queued and in inference.
pub struct RequestScope;

impl RequestScope {
    /// Enters a request on this thread.
    pub fn enter(cancel: Arc<AtomicBool>, deadline: Option<Instant>) -> Self {
        CANCEL.with(|c| *c.borrow_mut() = Some(cancel));
        DEADLINE.with(|d| d.set(deadline));
        QUEUE_MS.with(|q| q.set(0.0));
        INFERENCE_MS.with(|q| q.set(0.0));
        Self
    }

    /// Milliseconds this request's jobs waited and ran.
    pub fn timings(&self) -> (f64, f64) {
        (QUEUE_MS.with(Cell::get), INFERENCE_MS.with(Cell::get))
    }
}

impl Drop for RequestScope {
    fn drop(&mut self) {
        CANCEL.with(|c| *c.borrow_mut() = None);
        DEADLINE.with(|d| d.set(None));
    }
}

/// A job's answer: its vectors, and the milliseconds it queued and ran.
type Answer = Result<(Vec<Vec<f32>>, f64, f64), EncodeError>;

struct Job {
    texts: Vec<String>,
    kind: InputKind,
    cancel: Option<Arc<AtomicBool>>,
    deadline: Option<Instant>,
    queued: Instant,
    reply: mpsc::Sender<Answer>,
}

impl Job {
    fn abandoned(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// A [`TextEncoder`] that batches concurrent callers onto one thread.
pub struct BatchingEncoder {
    inner: Arc<dyn TextEncoder>,
    jobs: SyncSender<Job>,
}

impl BatchingEncoder {
    /// Starts the inference thread.
    pub fn start(
        inner: Arc<dyn TextEncoder>,
        options: BatchingOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (jobs, rx) = mpsc::sync_channel(options.queue);
        let worker = inner.clone();
        std::thread::Builder::new()
            .name("khulasa-inference".into())
            .spawn(move || run(worker, rx, options, metrics))
            .expect("the inference thread starts");
        Self { inner, jobs }
    }
}

fn run(
    encoder: Arc<dyn TextEncoder>,
    rx: Receiver<Job>,
    options: BatchingOptions,
    metrics: Arc<Metrics>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let until = Instant::now() + options.window;
        let mut texts: usize = batch[0].texts.len();
        while texts < options.max_texts {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(job) => {
                    texts += job.texts.len();
                    batch.push(job);
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        for kind in [InputKind::Passage, InputKind::Query] {
            let (jobs, rest): (Vec<Job>, Vec<Job>) =
                batch.into_iter().partition(|j| j.kind == kind);
            batch = rest;
            let (live, dead): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| !j.abandoned());
            for j in dead {
                metrics.dropped_jobs.inc();
                let _ = j.reply.send(Err(EncodeError::Inference(
                    "the request was cancelled or timed out".into(),
                )));
            }
            if live.is_empty() {
                continue;
            }
            let all: Vec<&str> = live
                .iter()
                .flat_map(|j| j.texts.iter().map(String::as_str))
                .collect();
            metrics.batch_texts.observe(all.len() as f64);
            let tokens: Option<usize> = all.iter().map(|t| encoder.count_tokens(t, kind)).sum();
            if let Some(tokens) = tokens {
                metrics.batch_tokens.observe(tokens as f64);
            }
            let started = Instant::now();
            let result = encoder.embed(&all, kind);
            let inference_ms = started.elapsed().as_secs_f64() * 1e3;
            metrics
                .stage_seconds
                .with_label_values(&["inference"])
                .observe(inference_ms / 1e3);
            match result {
                Ok(mut vectors) => {
                    for j in live.into_iter().rev() {
                        let mine = vectors.split_off(vectors.len() - j.texts.len());
                        let queue_ms = (started - j.queued).as_secs_f64() * 1e3;
                        let _ = j.reply.send(Ok((mine, queue_ms, inference_ms)));
                    }
                }
                Err(e) => {
                    for j in live {
                        let _ = j.reply.send(Err(EncodeError::Inference(e.to_string())));
                    }
                }
            }
        }
    }
}

impl TextEncoder for BatchingEncoder {
    fn info(&self) -> &ModelInfo {
        self.inner.info()
    }

    fn embed(&self, texts: &[&str], kind: InputKind) -> Result<Vec<Vec<f32>>, EncodeError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = mpsc::channel();
        let job = Job {
            texts: texts.iter().map(|t| t.to_string()).collect(),
            kind,
            cancel: CANCEL.with(|c| c.borrow().clone()),
            deadline: DEADLINE.with(Cell::get),
            queued: Instant::now(),
            reply,
        };
        self.jobs
            .send(job)
            .map_err(|_| EncodeError::Inference("the inference thread has stopped".into()))?;
        let (vectors, queue_ms, inference_ms) = answer
            .recv()
            .map_err(|_| EncodeError::Inference("the inference thread has stopped".into()))??;
        QUEUE_MS.with(|q| q.set(q.get() + queue_ms));
        INFERENCE_MS.with(|q| q.set(q.get() + inference_ms));
        Ok(vectors)
    }

    fn token_states(
        &self,
        texts: &[&str],
        kind: InputKind,
    ) -> Result<Vec<TokenStates>, EncodeError> {
        // Whole-article passes are large already; they run on the caller's thread.
        self.inner.token_states(texts, kind)
    }

    fn count_tokens(&self, text: &str, kind: InputKind) -> Option<usize> {
        self.inner.count_tokens(text, kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use khulasa_embed::testing::HashingEncoder;

    #[test]
    fn concurrent_callers_get_their_own_vectors_from_shared_batches() {
        let inner: Arc<dyn TextEncoder> = Arc::new(HashingEncoder::new(64));
        let metrics = Arc::new(Metrics::new());
        let b = Arc::new(BatchingEncoder::start(
            inner.clone(),
            BatchingOptions::default(),
            metrics.clone(),
        ));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let b = b.clone();
                std::thread::spawn(move || {
                    let texts = [format!("text {i} one"), format!("text {i} two")];
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    (texts.clone(), b.embed(&refs, InputKind::Passage).unwrap())
                })
            })
            .collect();
        for h in handles {
            let (texts, got) = h.join().unwrap();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            assert_eq!(got, inner.embed(&refs, InputKind::Passage).unwrap());
        }
        assert!(metrics.batch_texts.get_sample_count() <= 8);
        // 16 texts of 3 words, each 5 tokens with the two markers.
        assert_eq!(metrics.batch_tokens.get_sample_sum(), 80.0);
        assert_eq!(
            metrics.batch_tokens.get_sample_count(),
            metrics.batch_texts.get_sample_count()
        );
    }

    #[test]
    fn a_cancelled_request_is_dropped_before_it_runs() {
        let inner: Arc<dyn TextEncoder> = Arc::new(HashingEncoder::new(8));
        let metrics = Arc::new(Metrics::new());
        let b = BatchingEncoder::start(inner, BatchingOptions::default(), metrics.clone());
        let cancel = Arc::new(AtomicBool::new(true));
        let _scope = RequestScope::enter(cancel, None);
        let err = b.embed(&["x"], InputKind::Passage).unwrap_err();
        assert!(err.to_string().contains("cancelled"), "{err}");
        assert_eq!(metrics.dropped_jobs.get(), 1);
    }
}
