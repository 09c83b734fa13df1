//! Dynamic batching across concurrent requests.
//!
//! [`BatchingEncoder`] is a [`TextEncoder`] whose `embed` and
//! `token_states` send their texts to one inference thread and wait. The
//! thread takes the first waiting job, keeps collecting jobs for a short
//! window (or until a budget of texts is reached), and runs jobs of the same
//! kind together as calls of the real encoder (which packs them into
//! length-sorted batches). Analysis code is unchanged: eight concurrent
//! articles simply share forward passes.
//!
//! Work is cut into chunks of at most [`BatchingOptions::chunk_tokens`]
//! tokens. Between chunks every job's [`StopToken`] is checked: a job whose
//! caller has gone (cancelled or past its deadline) is answered at once and
//! the rest of its texts never run, and a job is answered as soon as its
//! last chunk is done, not when the whole gathered batch is. Inside a chunk
//! the encoder checks the combined token of the chunk's callers before each
//! forward pass.
//!
//! A panic inside the encoder fails only the jobs of that chunk; the thread
//! goes on with the next. If the thread itself ever ends, [`BatchingEncoder::is_alive`]
//! turns false so the server can report NOT_SERVING.
//!
//! The time each caller's texts queued and ran is added to its
//! [`StopToken`] ([`StopToken::encoder_time`]). What happens overall is
//! told to a [`BatchObserver`] (the server's metrics; `()`
//! for none), so the crate needs no metrics library.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use khulasa_embed::{EncodeError, InputKind, ModelInfo, StopToken, TextEncoder, TokenStates};

/// Told what the inference thread does; every method defaults to nothing.
pub trait BatchObserver: Send + Sync {
    /// A chunk of `texts` texts, about `tokens` tokens, is about to run.
    fn chunk(&self, texts: usize, tokens: usize) {
        let _ = (texts, tokens);
    }
    /// A chunk ran for `seconds`.
    fn ran(&self, seconds: f64) {
        let _ = seconds;
    }
    /// A job was answered without running (the rest of it), its caller
    /// having gone or its deadline passed.
    fn dropped(&self) {}
    /// The encoder panicked on a chunk.
    fn panicked(&self) {}
}

/// No observer.
impl BatchObserver for () {}

/// Whether an inference thread is still running, as a handle to keep.
pub type Liveness = Arc<dyn Fn() -> bool + Send + Sync>;

/// How the batcher collects and cuts work.
#[derive(Debug, Clone, Copy)]
pub struct BatchingOptions {
    /// How long to wait for more jobs after the first one.
    pub window: Duration,
    /// Stop collecting once this many texts are waiting.
    pub max_texts: usize,
    /// Jobs that may wait for the thread before `embed` blocks.
    pub queue: usize,
    /// Most tokens (as the encoder counts them, or bytes / 4 when it cannot)
    /// in one call of the real encoder; callers are checked between calls.
    pub chunk_tokens: usize,
}

impl Default for BatchingOptions {
    fn default() -> Self {
        Self {
            window: Duration::from_millis(4),
            max_texts: 256,
            queue: 1024,
            // About four forward passes of the default token budget (2,048):
            // a fraction of a second on 2 cores, so a cancelled job stops
            // costing within that.
            chunk_tokens: 8192,
        }
    }
}

/// What a job asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Vectors(InputKind),
    States(InputKind),
}

/// One text's result.
enum Output {
    Vector(Vec<f32>),
    States(TokenStates),
}

/// A job's answer: one output per text, and how long it queued and ran.
type Answer = Result<(Vec<Output>, Duration, Duration), EncodeError>;

struct Job {
    texts: Vec<String>,
    want: Want,
    stop: StopToken,
    queued: Instant,
    reply: mpsc::Sender<Answer>,
}

/// A job being worked on: its results so far.
struct Running {
    job: Job,
    outputs: Vec<Option<Output>>,
    left: usize,
    started: Option<Instant>,
    inference: Duration,
    answered: bool,
}

impl Running {
    fn answer(&mut self, answer: Answer) {
        if !self.answered {
            self.answered = true;
            let _ = self.job.reply.send(answer);
        }
    }
}

/// A [`TextEncoder`] that batches concurrent callers onto one thread.
pub struct BatchingEncoder {
    inner: Arc<dyn TextEncoder>,
    jobs: SyncSender<Job>,
    alive: Arc<AtomicBool>,
}

impl BatchingEncoder {
    /// Starts the inference thread.
    pub fn start(
        inner: Arc<dyn TextEncoder>,
        options: BatchingOptions,
        observer: Arc<dyn BatchObserver>,
    ) -> Self {
        let (jobs, rx) = mpsc::sync_channel(options.queue);
        let worker = inner.clone();
        let alive = Arc::new(AtomicBool::new(true));
        let flag = AliveWhileRunning(alive.clone());
        std::thread::Builder::new()
            .name("khulasa-inference".into())
            .spawn(move || {
                let _flag = flag;
                run(worker, rx, options, observer)
            })
            .expect("the inference thread starts");
        Self { inner, jobs, alive }
    }

    /// Whether the inference thread is still running (it only ends when the
    /// encoder is dropped, or through a bug outside the encoder call).
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    /// [`BatchingEncoder::is_alive`] as a handle the server keeps.
    pub fn liveness(&self) -> Liveness {
        let alive = self.alive.clone();
        Arc::new(move || alive.load(Ordering::Relaxed))
    }

    fn submit(
        &self,
        texts: &[&str],
        want: Want,
        stop: &StopToken,
    ) -> Result<Vec<Output>, EncodeError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        stop.check()?;
        let (reply, answer) = mpsc::channel();
        let job = Job {
            texts: texts.iter().map(|t| t.to_string()).collect(),
            want,
            stop: stop.clone(),
            queued: Instant::now(),
            reply,
        };
        let gone = || EncodeError::Inference("the inference thread has stopped".into());
        self.jobs.send(job).map_err(|_| gone())?;
        let (outputs, queued, inference) = answer.recv().map_err(|_| gone())??;
        stop.add_encoder_time(queued, inference);
        Ok(outputs)
    }
}

/// Turns the alive flag off when the inference thread ends, however it ends.
struct AliveWhileRunning(Arc<AtomicBool>);

impl Drop for AliveWhileRunning {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

fn run(
    encoder: Arc<dyn TextEncoder>,
    rx: Receiver<Job>,
    options: BatchingOptions,
    observer: Arc<dyn BatchObserver>,
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
        for want in [
            Want::Vectors(InputKind::Passage),
            Want::Vectors(InputKind::Query),
            Want::States(InputKind::Passage),
            Want::States(InputKind::Query),
        ] {
            let (jobs, rest): (Vec<Job>, Vec<Job>) =
                batch.into_iter().partition(|j| j.want == want);
            batch = rest;
            if !jobs.is_empty() {
                run_jobs(encoder.as_ref(), want, jobs, &options, observer.as_ref());
            }
        }
    }
}

/// Runs jobs that want the same thing, chunk by chunk.
fn run_jobs(
    encoder: &dyn TextEncoder,
    want: Want,
    jobs: Vec<Job>,
    options: &BatchingOptions,
    observer: &dyn BatchObserver,
) {
    let kind = match want {
        Want::Vectors(k) | Want::States(k) => k,
    };
    let mut running: Vec<Running> = jobs
        .into_iter()
        .map(|job| Running {
            outputs: (0..job.texts.len()).map(|_| None).collect(),
            left: job.texts.len(),
            job,
            started: None,
            inference: Duration::ZERO,
            answered: false,
        })
        .collect();
    // Every (job, text) in order, with its token estimate.
    let work: Vec<(usize, usize, usize)> = running
        .iter()
        .enumerate()
        .flat_map(|(j, r)| {
            r.job.texts.iter().enumerate().map(move |(t, text)| {
                let tokens = encoder
                    .count_tokens(text, kind)
                    .unwrap_or(text.len() / 4 + 2);
                (j, t, tokens)
            })
        })
        .collect();
    let mut next = 0;
    while next < work.len() {
        // Answer callers that have gone; their texts are skipped below.
        for r in running.iter_mut().filter(|r| !r.answered) {
            if let Some(reason) = r.job.stop.reason() {
                observer.dropped();
                r.answer(Err(EncodeError::Stopped(reason)));
            }
        }
        let mut chunk: Vec<(usize, usize)> = Vec::new();
        let mut tokens = 0;
        while next < work.len() {
            let (j, t, n) = work[next];
            if running[j].answered {
                next += 1;
                continue;
            }
            if !chunk.is_empty() && tokens + n > options.chunk_tokens {
                break;
            }
            chunk.push((j, t));
            tokens += n;
            next += 1;
        }
        if chunk.is_empty() {
            break;
        }
        let mut callers: Vec<usize> = chunk.iter().map(|&(j, _)| j).collect();
        callers.dedup();
        let started = Instant::now();
        for &j in &callers {
            running[j].started.get_or_insert(started);
        }
        let stop = StopToken::all(callers.iter().map(|&j| &running[j].job.stop));
        let texts: Vec<&str> = chunk
            .iter()
            .map(|&(j, t)| running[j].job.texts[t].as_str())
            .collect();
        observer.chunk(texts.len(), tokens);
        // A panic in the encoder (a bug, or an input it cannot take) fails
        // this chunk's callers and nobody else.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| match want {
            Want::Vectors(kind) => encoder
                .embed_until(&texts, kind, &stop)
                .map(|v| v.into_iter().map(Output::Vector).collect::<Vec<_>>()),
            Want::States(kind) => encoder
                .token_states_until(&texts, kind, &stop)
                .map(|v| v.into_iter().map(Output::States).collect::<Vec<_>>()),
        }))
        .unwrap_or_else(|panic| {
            observer.panicked();
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            tracing::error!(panic = %what, texts = texts.len(), "the encoder panicked; failing its callers");
            Err(EncodeError::Inference(format!("the encoder panicked: {what}")))
        });
        let elapsed = started.elapsed();
        observer.ran(elapsed.as_secs_f64());
        for &j in &callers {
            running[j].inference += elapsed;
        }
        match result {
            Ok(outputs) => {
                for ((j, t), out) in chunk.into_iter().zip(outputs) {
                    let r = &mut running[j];
                    r.outputs[t] = Some(out);
                    r.left -= 1;
                    if r.left == 0 {
                        finish(r);
                    }
                }
            }
            Err(e) => {
                for j in callers {
                    let r = &mut running[j];
                    let own = match (&e, r.job.stop.reason()) {
                        (_, Some(reason)) => EncodeError::Stopped(reason),
                        (EncodeError::Stopped(reason), None) => EncodeError::Stopped(*reason),
                        (other, None) => EncodeError::Inference(other.to_string()),
                    };
                    if matches!(own, EncodeError::Stopped(_)) {
                        observer.dropped();
                    }
                    r.answer(Err(own));
                }
            }
        }
    }
}

fn finish(r: &mut Running) {
    let outputs: Vec<Output> = r
        .outputs
        .iter_mut()
        .map(|o| o.take().expect("every text has run"))
        .collect();
    let queued = r.started.unwrap_or(r.job.queued) - r.job.queued;
    let inference = r.inference;
    r.answer(Ok((outputs, queued, inference)));
}

impl TextEncoder for BatchingEncoder {
    fn info(&self) -> &ModelInfo {
        self.inner.info()
    }

    fn embed_until(
        &self,
        texts: &[&str],
        kind: InputKind,
        stop: &StopToken,
    ) -> Result<Vec<Vec<f32>>, EncodeError> {
        Ok(self
            .submit(texts, Want::Vectors(kind), stop)?
            .into_iter()
            .map(|o| match o {
                Output::Vector(v) => v,
                Output::States(_) => unreachable!("a vectors job gets vectors"),
            })
            .collect())
    }

    fn token_states_until(
        &self,
        texts: &[&str],
        kind: InputKind,
        stop: &StopToken,
    ) -> Result<Vec<TokenStates>, EncodeError> {
        Ok(self
            .submit(texts, Want::States(kind), stop)?
            .into_iter()
            .map(|o| match o {
                Output::States(s) => s,
                Output::Vector(_) => unreachable!("a states job gets states"),
            })
            .collect())
    }

    fn count_tokens(&self, text: &str, kind: InputKind) -> Option<usize> {
        self.inner.count_tokens(text, kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use khulasa_embed::StopReason;
    use khulasa_embed::testing::HashingEncoder;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    /// Records what the thread reports.
    #[derive(Default)]
    struct Seen {
        chunks: Mutex<Vec<(usize, usize)>>,
        panics: AtomicUsize,
    }

    impl BatchObserver for Seen {
        fn chunk(&self, texts: usize, tokens: usize) {
            self.chunks.lock().unwrap().push((texts, tokens));
        }
        fn panicked(&self) {
            self.panics.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Seen {
        fn chunks(&self) -> Vec<(usize, usize)> {
            self.chunks.lock().unwrap().clone()
        }
    }

    #[test]
    fn concurrent_callers_get_their_own_vectors_from_shared_batches() {
        let inner: Arc<dyn TextEncoder> = Arc::new(HashingEncoder::new(64));
        let seen = Arc::new(Seen::default());
        let b = Arc::new(BatchingEncoder::start(
            inner.clone(),
            BatchingOptions::default(),
            seen.clone(),
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
        let chunks = seen.chunks();
        assert!(chunks.len() <= 8, "{chunks:?}");
        assert_eq!(chunks.iter().map(|c| c.0).sum::<usize>(), 16);
        // 16 texts of 3 words, each 5 tokens with the two markers.
        assert_eq!(chunks.iter().map(|c| c.1).sum::<usize>(), 80);
    }

    #[test]
    fn token_states_go_through_the_thread_too() {
        let inner: Arc<dyn TextEncoder> = Arc::new(HashingEncoder::new(16));
        let seen = Arc::new(Seen::default());
        let b = BatchingEncoder::start(inner.clone(), BatchingOptions::default(), seen.clone());
        let texts = ["one two three", "four five"];
        assert_eq!(
            b.token_states(&texts, InputKind::Passage).unwrap(),
            inner.token_states(&texts, InputKind::Passage).unwrap()
        );
        assert_eq!(seen.chunks().iter().map(|c| c.0).sum::<usize>(), 2);
    }

    #[test]
    fn a_cancelled_request_is_dropped_before_it_runs() {
        let inner: Arc<dyn TextEncoder> = Arc::new(HashingEncoder::new(8));
        let b = BatchingEncoder::start(inner, BatchingOptions::default(), Arc::new(()));
        let stop = StopToken::new(None);
        stop.cancel();
        let err = b
            .embed_until(&["x"], InputKind::Passage, &stop)
            .unwrap_err();
        assert!(
            matches!(err, EncodeError::Stopped(StopReason::Cancelled)),
            "{err}"
        );
    }

    /// An encoder that takes `delay` per call and panics on a text that says so.
    struct Slow {
        inner: HashingEncoder,
        delay: Duration,
        calls: AtomicUsize,
    }

    impl TextEncoder for Slow {
        fn info(&self) -> &ModelInfo {
            self.inner.info()
        }
        fn embed_until(
            &self,
            texts: &[&str],
            kind: InputKind,
            stop: &StopToken,
        ) -> Result<Vec<Vec<f32>>, EncodeError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            assert!(!texts.contains(&"panic"), "asked to panic");
            std::thread::sleep(self.delay);
            self.inner.embed_until(texts, kind, stop)
        }
        fn token_states_until(
            &self,
            texts: &[&str],
            kind: InputKind,
            stop: &StopToken,
        ) -> Result<Vec<TokenStates>, EncodeError> {
            self.inner.token_states_until(texts, kind, stop)
        }
        fn count_tokens(&self, text: &str, kind: InputKind) -> Option<usize> {
            self.inner.count_tokens(text, kind)
        }
    }

    fn slow(delay: Duration) -> Arc<Slow> {
        Arc::new(Slow {
            inner: HashingEncoder::new(8),
            delay,
            calls: Default::default(),
        })
    }

    #[test]
    fn a_panicking_batch_fails_its_callers_and_the_next_batch_runs() {
        let inner = slow(Duration::ZERO);
        let seen = Arc::new(Seen::default());
        let b = BatchingEncoder::start(inner, BatchingOptions::default(), seen.clone());
        let err = b.embed(&["panic"], InputKind::Passage).unwrap_err();
        assert!(err.to_string().contains("asked to panic"), "{err}");
        assert_eq!(seen.panics.load(Ordering::Relaxed), 1);
        assert!(b.is_alive());
        assert_eq!(b.embed(&["fine"], InputKind::Passage).unwrap().len(), 1);
    }

    #[test]
    fn a_job_cancelled_mid_way_stops_between_chunks() {
        // One token estimate per text is 3 (one word + 2 markers): a chunk of
        // 3 tokens takes one text, so 50 texts are 50 calls of 20 ms.
        let inner = slow(Duration::from_millis(20));
        let options = BatchingOptions {
            chunk_tokens: 3,
            ..Default::default()
        };
        let b = BatchingEncoder::start(inner.clone(), options, Arc::new(()));
        let stop = StopToken::new(None);
        let canceller = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                stop.cancel();
            })
        };
        let texts: Vec<String> = (0..50).map(|i| format!("w{i}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let started = Instant::now();
        let err = b.embed_until(&refs, InputKind::Passage, &stop).unwrap_err();
        canceller.join().unwrap();
        assert!(
            matches!(err, EncodeError::Stopped(StopReason::Cancelled)),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_millis(900));
        let calls = inner.calls.load(Ordering::Relaxed);
        assert!(calls < 20, "{calls} calls ran after the cancel");
    }

    #[test]
    fn each_caller_gets_back_the_encoder_time_spent_on_it() {
        let inner = slow(Duration::from_millis(20));
        let options = BatchingOptions {
            chunk_tokens: 3,
            ..Default::default()
        };
        let b = BatchingEncoder::start(inner, options, Arc::new(()));
        let stop = StopToken::new(None);
        b.embed_until(&["a", "b", "c"], InputKind::Passage, &stop)
            .unwrap();
        // Three chunks of one text, 20 ms each.
        let spent = stop.encoder_time();
        assert!(spent.inference_ms >= 60.0, "{spent:?}");
        assert!(spent.queue_ms < spent.inference_ms, "{spent:?}");
        // Another caller's token is untouched.
        assert_eq!(StopToken::new(None).encoder_time().inference_ms, 0.0);
    }

    #[test]
    fn a_job_is_answered_when_its_own_texts_are_done_not_the_whole_batch() {
        let inner = slow(Duration::from_millis(20));
        let options = BatchingOptions {
            chunk_tokens: 3,
            window: Duration::from_millis(100),
            ..Default::default()
        };
        let b = Arc::new(BatchingEncoder::start(inner, options, Arc::new(())));
        // The short job opens the gathering window; the long one joins it.
        let short = {
            let b = b.clone();
            std::thread::spawn(move || {
                b.embed(&["quick"], InputKind::Passage).unwrap();
                Instant::now()
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        let texts: Vec<String> = (0..20).map(|i| format!("w{i}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        b.embed(&refs, InputKind::Passage).unwrap();
        let long_done = Instant::now();
        let short_done = short.join().unwrap();
        // 20 chunks of 20 ms after the short job's one.
        assert!(
            long_done.duration_since(short_done) > Duration::from_millis(200),
            "the short job waited for the long one"
        );
    }
}
