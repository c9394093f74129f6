//! A circuit breaker per printer: after repeated failures the dispatcher stops
//! sending to a printer for a cool-down, then lets a single probe through; the
//! probe's result closes the circuit or opens it again for longer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::IntGaugeVec;

/// Consecutive failures that open the circuit.
const THRESHOLD: u32 = 5;
const FIRST_COOL_DOWN: Duration = Duration::from_secs(1);
const MAX_COOL_DOWN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// One probe is allowed through.
    HalfOpen,
    Open,
}

impl BreakerState {
    /// The value of the `pixpress_print_printer_breaker_state` gauge.
    fn gauge_value(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

struct Breaker {
    failures: u32,
    state: BreakerState,
    open_until: Instant,
    cool_down: Duration,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            failures: 0,
            state: BreakerState::Closed,
            open_until: Instant::now(),
            cool_down: FIRST_COOL_DOWN,
        }
    }
}

pub struct Breakers {
    printers: Mutex<HashMap<i64, Breaker>>,
    gauge: IntGaugeVec,
}

impl Breakers {
    pub fn new(gauge: IntGaugeVec) -> Self {
        Self {
            printers: Mutex::new(HashMap::new()),
            gauge,
        }
    }

    fn with<T>(&self, printer: i64, f: impl FnOnce(&mut Breaker) -> T) -> T {
        // A poisoned lock holds counters only; they are still usable.
        let mut printers = self.printers.lock().unwrap_or_else(|e| e.into_inner());
        let breaker = printers.entry(printer).or_default();
        let result = f(breaker);
        self.gauge
            .with_label_values(&[&printer.to_string()])
            .set(breaker.state.gauge_value());
        result
    }

    /// May we send to `printer` now? `Err(wait)` says when to try again.
    pub fn allow(&self, printer: i64) -> Result<(), Duration> {
        self.with(printer, |b| {
            let now = Instant::now();
            match b.state {
                BreakerState::Closed => Ok(()),
                BreakerState::Open if now >= b.open_until => {
                    b.state = BreakerState::HalfOpen;
                    Ok(())
                }
                BreakerState::Open => Err(b.open_until - now),
                // The probe is out: everyone else waits for its verdict.
                BreakerState::HalfOpen => Err(Duration::from_millis(200)),
            }
        })
    }

    pub fn record_success(&self, printer: i64) {
        self.with(printer, |b| *b = Breaker::default());
    }

    pub fn record_failure(&self, printer: i64) {
        self.with(printer, |b| {
            b.failures += 1;
            let reopen = b.state == BreakerState::HalfOpen;
            if reopen || b.failures >= THRESHOLD {
                if reopen {
                    b.cool_down = (b.cool_down * 2).min(MAX_COOL_DOWN);
                }
                b.state = BreakerState::Open;
                b.open_until = Instant::now() + b.cool_down;
            }
        })
    }

    #[cfg(test)]
    pub fn state(&self, printer: i64) -> BreakerState {
        self.with(printer, |b| b.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    fn breakers() -> Breakers {
        Breakers::new(IntGaugeVec::new(Opts::new("b", "b"), &["printer_id"]).unwrap())
    }

    #[test]
    fn opens_after_repeated_failures_and_closes_after_a_good_probe() {
        let b = breakers();
        for _ in 0..THRESHOLD - 1 {
            b.record_failure(1);
            assert!(b.allow(1).is_ok());
        }
        b.record_failure(1);
        assert_eq!(b.state(1), BreakerState::Open);
        assert!(b.allow(1).is_err());
        // Other printers are unaffected.
        assert!(b.allow(2).is_ok());

        std::thread::sleep(FIRST_COOL_DOWN);
        assert!(b.allow(1).is_ok(), "one probe after the cool-down");
        assert_eq!(b.state(1), BreakerState::HalfOpen);
        assert!(b.allow(1).is_err(), "only one probe at a time");
        b.record_success(1);
        assert_eq!(b.state(1), BreakerState::Closed);
        assert!(b.allow(1).is_ok());
    }

    #[test]
    fn a_failed_probe_reopens_for_longer() {
        let b = breakers();
        for _ in 0..THRESHOLD {
            b.record_failure(1);
        }
        std::thread::sleep(FIRST_COOL_DOWN);
        assert!(b.allow(1).is_ok());
        b.record_failure(1);
        assert_eq!(b.state(1), BreakerState::Open);
        let wait = b.allow(1).unwrap_err();
        assert!(wait > FIRST_COOL_DOWN, "{wait:?}");
    }
}
