//! A circuit breaker per destination (a printer, a backend): after repeated
//! failures callers stop calling it for a cool-down, then a single probe is let
//! through; the probe's result closes the circuit or opens it again for longer.
//!
//! Generic over the key that names a destination (print-service's printer ids, the
//! IPP gateway's printer names). It keeps no clock of its own beyond `Instant`s and
//! does no I/O: callers ask [`Breakers::allow`] before a call and report its outcome.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::IntGaugeVec;

/// When a circuit opens and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the circuit.
    pub threshold: u32,
    pub first_cool_down: Duration,
    pub max_cool_down: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            first_cool_down: Duration::from_secs(1),
            max_cool_down: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// One probe is allowed through.
    HalfOpen,
    Open,
}

impl BreakerState {
    /// The value of a breaker-state gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> i64 {
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

impl Breaker {
    fn new(policy: &BreakerPolicy) -> Self {
        Self {
            failures: 0,
            state: BreakerState::Closed,
            open_until: Instant::now(),
            cool_down: policy.first_cool_down,
        }
    }
}

/// One breaker per key; each state change is mirrored in `gauge`, labelled by the
/// key's `Display`.
pub struct Breakers<K> {
    destinations: Mutex<HashMap<K, Breaker>>,
    gauge: IntGaugeVec,
    policy: BreakerPolicy,
}

impl<K: Hash + Eq + Clone + Display> Breakers<K> {
    /// Breakers with the default policy (5 failures, 1 s doubling up to 30 s).
    pub fn new(gauge: IntGaugeVec) -> Self {
        Self::with_policy(gauge, BreakerPolicy::default())
    }

    pub fn with_policy(gauge: IntGaugeVec, policy: BreakerPolicy) -> Self {
        Self {
            destinations: Mutex::new(HashMap::new()),
            gauge,
            policy,
        }
    }

    fn with<T>(&self, key: &K, f: impl FnOnce(&mut Breaker, &BreakerPolicy) -> T) -> T {
        // A poisoned lock holds counters only; they are still usable.
        let mut destinations = self.destinations.lock().unwrap_or_else(|e| e.into_inner());
        let breaker = destinations
            .entry(key.clone())
            .or_insert_with(|| Breaker::new(&self.policy));
        let result = f(breaker, &self.policy);
        self.gauge
            .with_label_values(&[&key.to_string()])
            .set(breaker.state.gauge_value());
        result
    }

    /// May we call `key` now? `Err(wait)` says when to try again. An `Ok` must be
    /// followed by [`Breakers::record_success`] or [`Breakers::record_failure`]: in
    /// the half-open state it lets the one probe through.
    pub fn allow(&self, key: &K) -> Result<(), Duration> {
        self.with(key, |b, _| {
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

    pub fn record_success(&self, key: &K) {
        self.with(key, |b, policy| *b = Breaker::new(policy));
    }

    pub fn record_failure(&self, key: &K) {
        self.with(key, |b, policy| {
            b.failures += 1;
            let reopen = b.state == BreakerState::HalfOpen;
            if reopen || b.failures >= policy.threshold {
                if reopen {
                    b.cool_down = (b.cool_down * 2).min(policy.max_cool_down);
                }
                b.state = BreakerState::Open;
                b.open_until = Instant::now() + b.cool_down;
            }
        })
    }

    pub fn state(&self, key: &K) -> BreakerState {
        self.with(key, |b, _| b.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    const POLICY: BreakerPolicy = BreakerPolicy {
        threshold: 5,
        first_cool_down: Duration::from_secs(1),
        max_cool_down: Duration::from_secs(30),
    };

    fn breakers() -> Breakers<i64> {
        Breakers::new(IntGaugeVec::new(Opts::new("b", "b"), &["printer_id"]).unwrap())
    }

    #[test]
    fn opens_after_repeated_failures_and_closes_after_a_good_probe() {
        let b = breakers();
        for _ in 0..POLICY.threshold - 1 {
            b.record_failure(&1);
            assert!(b.allow(&1).is_ok());
        }
        b.record_failure(&1);
        assert_eq!(b.state(&1), BreakerState::Open);
        assert!(b.allow(&1).is_err());
        // Other destinations are unaffected.
        assert!(b.allow(&2).is_ok());

        std::thread::sleep(POLICY.first_cool_down);
        assert!(b.allow(&1).is_ok(), "one probe after the cool-down");
        assert_eq!(b.state(&1), BreakerState::HalfOpen);
        assert!(b.allow(&1).is_err(), "only one probe at a time");
        b.record_success(&1);
        assert_eq!(b.state(&1), BreakerState::Closed);
        assert!(b.allow(&1).is_ok());
    }

    #[test]
    fn a_failed_probe_reopens_for_longer() {
        let b = breakers();
        for _ in 0..POLICY.threshold {
            b.record_failure(&1);
        }
        std::thread::sleep(POLICY.first_cool_down);
        assert!(b.allow(&1).is_ok());
        b.record_failure(&1);
        assert_eq!(b.state(&1), BreakerState::Open);
        let wait = b.allow(&1).unwrap_err();
        assert!(wait > POLICY.first_cool_down, "{wait:?}");
    }

    #[test]
    fn keys_may_be_names() {
        let b: Breakers<String> = Breakers::with_policy(
            IntGaugeVec::new(Opts::new("b", "b"), &["printer"]).unwrap(),
            BreakerPolicy {
                threshold: 1,
                ..POLICY
            },
        );
        b.record_failure(&"office".to_owned());
        assert_eq!(b.state(&"office".to_owned()), BreakerState::Open);
        assert_eq!(b.state(&"lab".to_owned()), BreakerState::Closed);
    }
}
