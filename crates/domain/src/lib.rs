//! The pixpress domain: the types every service agrees on and the rules that
//! hold whatever the transport. Nothing here does I/O.
//!
//! Each wire message is defined exactly once, here, and used by both its sender and
//! its receiver: that is the compile-time half of the contract tests.

pub mod download;
pub mod integral;
pub mod ipp;
pub mod job;
pub mod management;
pub mod printer;
pub mod problem;

pub use job::{CreatePrintJob, JobState, PrintJob, PrintJobList};
pub use problem::{FieldError, Problem};
