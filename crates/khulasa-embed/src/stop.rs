//! When a caller's work should stop: a cancellation flag and a deadline,
//! passed down as a value and checked between units of work, so a request
//! whose client has gone or whose deadline has passed stops using the cores
//! within one unit (a forward pass, a pipeline stage). The same handle
//! carries back what the caller's work cost in the encoder
//! ([`EncoderTime`]), so nothing about a request travels out of band.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Time a caller's texts spent waiting for the encoder and in it, as a
/// shared encoder (the batching one) reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EncoderTime {
    /// Milliseconds queued before the first of its texts ran.
    pub queue_ms: f64,
    /// Milliseconds of forward passes its texts were in.
    pub inference_ms: f64,
}

/// [`EncoderTime`] as it accumulates, in microseconds.
#[derive(Debug, Default)]
struct Spent {
    queue_us: AtomicU64,
    inference_us: AtomicU64,
}

/// Why work stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// The caller went away or cancelled.
    Cancelled,
    /// The caller's deadline passed.
    DeadlineExceeded,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cancelled => "the request was cancelled",
            Self::DeadlineExceeded => "the deadline passed before the work finished",
        })
    }
}

impl std::error::Error for StopReason {}

/// One caller's flag and deadline.
#[derive(Debug, Clone, Default)]
struct Part {
    flag: Option<Arc<AtomicBool>>,
    deadline: Option<Instant>,
}

impl Part {
    fn reason(&self, now: Instant) -> Option<StopReason> {
        if self
            .flag
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            Some(StopReason::Cancelled)
        } else if self.deadline.is_some_and(|d| now >= d) {
            Some(StopReason::DeadlineExceeded)
        } else {
            None
        }
    }
}

/// A cheap, clonable handle saying whether work should stop.
///
/// Usually one caller's: [`StopToken::new`] with the flag its request drops
/// into when it goes away and its deadline. Work shared by several callers
/// (one forward pass for several requests) uses [`StopToken::all`], which
/// stops only when every one of them has.
#[derive(Debug, Clone, Default)]
pub struct StopToken {
    /// Empty: never stops.
    parts: Arc<[Part]>,
    /// Shared by clones: what the work cost in the encoder.
    spent: Arc<Spent>,
}

impl StopToken {
    /// A token that never fires.
    pub fn never() -> Self {
        Self::default()
    }

    /// A fresh token with its own flag (see [`StopToken::cancel`]) and an
    /// optional deadline.
    pub fn new(deadline: Option<Instant>) -> Self {
        Self::from_flag(Arc::new(AtomicBool::new(false)), deadline)
    }

    /// A token over an existing flag: it fires once the flag is set or the
    /// deadline passes.
    pub fn from_flag(flag: Arc<AtomicBool>, deadline: Option<Instant>) -> Self {
        Self {
            parts: Arc::new([Part {
                flag: Some(flag),
                deadline,
            }]),
            spent: Arc::default(),
        }
    }

    /// A token that fires only when every one of `tokens` has (and never if
    /// any of them never fires).
    pub fn all<'a>(tokens: impl IntoIterator<Item = &'a StopToken>) -> Self {
        let mut parts = Vec::new();
        for t in tokens {
            if t.parts.is_empty() {
                return Self::never();
            }
            parts.extend(t.parts.iter().cloned());
        }
        Self {
            parts: parts.into(),
            spent: Arc::default(),
        }
    }

    /// Sets the flag: every holder of this token (or a clone) sees it fire.
    pub fn cancel(&self) {
        for p in self.parts.iter() {
            if let Some(f) = &p.flag {
                f.store(true, Ordering::Relaxed);
            }
        }
    }

    /// When the work must be done by: the latest deadline of its callers,
    /// if every one of them has a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        if self.parts.is_empty() {
            return None;
        }
        self.parts
            .iter()
            .map(|p| p.deadline)
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .max()
    }

    /// Why work should stop now, if it should.
    pub fn reason(&self) -> Option<StopReason> {
        if self.parts.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut reason = None;
        for p in self.parts.iter() {
            // Every part must have stopped; report the first reason seen.
            let r = p.reason(now)?;
            reason.get_or_insert(r);
        }
        reason
    }

    /// `Err` with the reason once the token has fired.
    pub fn check(&self) -> Result<(), StopReason> {
        match self.reason() {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }

    /// Adds encoder time spent on this caller's behalf (seen by every
    /// clone of this token; a token made by [`StopToken::all`] has its own).
    pub fn add_encoder_time(&self, queued: Duration, inference: Duration) {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.spent.queue_us.fetch_add(us(queued), Ordering::Relaxed);
        self.spent
            .inference_us
            .fetch_add(us(inference), Ordering::Relaxed);
    }

    /// The encoder time added so far.
    pub fn encoder_time(&self) -> EncoderTime {
        let ms = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e3;
        EncoderTime {
            queue_ms: ms(&self.spent.queue_us),
            inference_ms: ms(&self.spent.inference_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn never_never_fires() {
        assert_eq!(StopToken::never().check(), Ok(()));
        StopToken::never().cancel();
        assert_eq!(StopToken::never().reason(), None);
    }

    #[test]
    fn a_token_fires_on_cancel_or_deadline() {
        let t = StopToken::new(None);
        assert_eq!(t.check(), Ok(()));
        t.clone().cancel();
        assert_eq!(t.check(), Err(StopReason::Cancelled));
        let past = Instant::now() - Duration::from_millis(1);
        assert_eq!(
            StopToken::new(Some(past)).reason(),
            Some(StopReason::DeadlineExceeded)
        );
        let later = Instant::now() + Duration::from_secs(60);
        assert_eq!(StopToken::new(Some(later)).reason(), None);
    }

    #[test]
    fn shared_work_stops_only_when_every_caller_has() {
        let (a, b) = (StopToken::new(None), StopToken::new(None));
        let both = StopToken::all([&a, &b]);
        a.cancel();
        assert_eq!(both.reason(), None);
        b.cancel();
        assert_eq!(both.reason(), Some(StopReason::Cancelled));
        assert_eq!(StopToken::all([&a, &StopToken::never()]).reason(), None);
    }

    #[test]
    fn encoder_time_is_shared_by_clones_of_one_token() {
        let t = StopToken::new(None);
        t.clone()
            .add_encoder_time(Duration::from_millis(2), Duration::from_millis(5));
        t.add_encoder_time(Duration::ZERO, Duration::from_micros(1500));
        assert_eq!(
            t.encoder_time(),
            EncoderTime {
                queue_ms: 2.0,
                inference_ms: 6.5
            }
        );
        assert_eq!(StopToken::new(None).encoder_time(), EncoderTime::default());
    }

    #[test]
    fn the_shared_deadline_is_the_latest() {
        let now = Instant::now();
        let (a, b) = (
            StopToken::new(Some(now + Duration::from_secs(1))),
            StopToken::new(Some(now + Duration::from_secs(2))),
        );
        assert_eq!(
            StopToken::all([&a, &b]).deadline(),
            Some(now + Duration::from_secs(2))
        );
        assert_eq!(StopToken::all([&a, &StopToken::new(None)]).deadline(), None);
    }
}
