//! Helpers shared by the integration tests.

pub mod hostile;
pub mod invariants;
pub mod pages;
