//! The shared budget of request bytes being received, across every call
//! and door: gRPC charges each message's declared length from its prefix
//! ([`crate::service::wire`]), HTTP its body's `content-length` or, for a
//! body of unknown length, what has arrived so far.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::ServiceError;

/// The shared budget of request bytes being received.
#[derive(Debug)]
pub struct DecodeBudget {
    capacity: usize,
    max_message: usize,
    used: AtomicUsize,
}

impl DecodeBudget {
    /// A budget of `capacity` bytes for messages of at most `max_message`.
    pub fn new(capacity: usize, max_message: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(max_message),
            max_message,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(crate) fn reserve(&self, n: usize) -> Result<(), ServiceError> {
        self.check_size(n)?;
        self.take(n)
    }

    /// A message of `n` bytes is within the per-message limit.
    fn check_size(&self, n: usize) -> Result<(), ServiceError> {
        if n > self.max_message {
            return Err(ServiceError::TooLarge(format!(
                "the request message has {n} bytes; this server accepts at most {} \
                 (Limits.max_message_bytes)",
                self.max_message
            )));
        }
        Ok(())
    }

    /// Takes `n` bytes of the shared budget, if there is room.
    fn take(&self, n: usize) -> Result<(), ServiceError> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if used + n > self.capacity {
                return Err(ServiceError::Exhausted);
            }
            match self.used.compare_exchange_weak(
                used,
                used + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Charges `n` bytes now, returned when the charge is dropped.
    pub fn charge(self: &Arc<Self>, n: usize) -> Result<Charge, ServiceError> {
        self.reserve(n)?;
        Ok(Charge {
            budget: self.clone(),
            n,
        })
    }

    /// Bytes it holds in all.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The largest message it admits.
    pub fn max_message(&self) -> usize {
        self.max_message
    }
}

/// Bytes charged to a [`DecodeBudget`] while a body is read.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<DecodeBudget>,
    n: usize,
}

impl Charge {
    /// Charges `more` bytes on top (a body of unknown length growing),
    /// as long as the whole stays a message the budget admits.
    pub fn grow(&mut self, more: usize) -> Result<(), ServiceError> {
        self.budget.check_size(self.n + more)?;
        self.budget.take(more)?;
        self.n += more;
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(self.n);
    }
}
