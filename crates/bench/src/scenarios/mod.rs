//! The scenarios. Each starts what it needs, measures its figure and the reference
//! it is judged against in the same run, stops everything, and adds rows to the
//! table.

pub mod dispatch;
pub mod download;
pub mod footprint;
pub mod get_job;
pub mod health;
pub mod image_latency;
pub mod intake;
pub mod layers;
pub mod lifecycle;
pub mod overload;
pub mod thumbnail;

use std::time::Duration;

use crate::report::Row;

/// What a scenario gets: the mode and the table to add to.
pub struct Ctx {
    /// A few seconds per scenario, for CI; figures are printed, never asserted.
    pub quick: bool,
    /// `--rate`: `lifecycle` runs one window at this rate instead of searching.
    pub rate: Option<f64>,
    pub rows: Vec<Row>,
}

impl Ctx {
    /// `full` seconds normally, `quick` with `--quick`.
    pub fn secs(&self, full: u64, quick: u64) -> Duration {
        Duration::from_secs(if self.quick { quick } else { full })
    }

    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }

    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }
}

/// Prints a progress line (stderr: the table alone goes to stdout).
pub fn note(text: impl AsRef<str>) {
    eprintln!("   {}", text.as_ref());
}
