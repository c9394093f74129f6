//! Exponential backoff with jitter, for every "try again later" in pixpress.

use std::time::Duration;

/// Delays that double from `first` up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max }
    }

    /// The delay before attempt `attempt + 1`, after `attempt` failures (1-based):
    /// `first`, 2×`first`, 4×`first`… capped at `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        self.first.saturating_mul(1 << exp).min(self.max)
    }

    /// [`Backoff::delay`] spread over [½d, d], so work that failed together does
    /// not come back together.
    pub fn jittered(&self, attempt: u32) -> Duration {
        jitter(self.delay(attempt))
    }
}

/// `delay` scaled by a random factor in [0.5, 1].
pub fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling_and_jitter_stays_within_half() {
        let b = Backoff::new(Duration::from_millis(200), Duration::from_secs(60));
        assert_eq!(b.delay(1), Duration::from_millis(200));
        assert_eq!(b.delay(2), Duration::from_millis(400));
        assert_eq!(b.delay(4), Duration::from_millis(1600));
        assert_eq!(b.delay(40), Duration::from_secs(60));
        for attempt in 1..10 {
            let d = b.jittered(attempt);
            assert!(d >= b.delay(attempt) / 2 && d <= b.delay(attempt));
        }
    }
}
