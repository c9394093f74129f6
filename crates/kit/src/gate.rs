//! The backpressure gate: a fixed number of permits for calls to a slow backend.
//! When none is free the caller is told "429, retry later" at once, without waiting
//! and without touching the backend, so overload never piles up work.
//!
//! The permits are shared fairly: one user holds at most `per_user` of them at a
//! time, so a user flooding the service gets 429s while other users' requests still
//! find permits. Both refusals are immediate; neither waits on anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::{IntCounter, Registry};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::MetricsRegistrar;
use crate::problem::{ApiError, ServiceError};

#[derive(Clone)]
pub struct BackendGate {
    semaphore: Arc<Semaphore>,
    per_user: usize,
    /// Permits held right now, by user (users holding none are absent).
    held: Arc<Mutex<HashMap<i64, usize>>>,
    rejections: IntCounter,
    share_rejections: IntCounter,
}

/// Held for exactly the duration of one backend call; the permit (and the user's
/// share of it) goes back on drop, on every path (panics included).
pub struct GatePermit {
    _permit: OwnedSemaphorePermit,
    share: UserShare,
}

struct UserShare {
    user: i64,
    held: Arc<Mutex<HashMap<i64, usize>>>,
}

impl Drop for UserShare {
    fn drop(&mut self) {
        let mut held = lock(&self.held);
        if let Some(count) = held.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.user);
            }
        }
    }
}

impl GatePermit {
    /// The user this permit was taken for.
    pub fn user(&self) -> i64 {
        self.share.user
    }
}

/// The map is only ever held for a counter update, which cannot panic; a poisoned
/// lock still holds correct counts.
fn lock(held: &Mutex<HashMap<i64, usize>>) -> std::sync::MutexGuard<'_, HashMap<i64, usize>> {
    held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// No permit for this request: answer 429.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GateSaturated {
    /// Every permit is taken.
    #[error("the service is at capacity; retry after a second")]
    Full,
    /// This user already holds their share of the permits.
    #[error("too many of your requests are in flight; retry after a second")]
    UserShare,
}

impl ServiceError for GateSaturated {
    /// 429 with `Retry-After`, answered before any backend is touched.
    fn api_error(&self) -> ApiError {
        let code = match self {
            GateSaturated::Full => "saturated",
            GateSaturated::UserShare => "user-share-exceeded",
        };
        ApiError::new(
            code,
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            self.to_string(),
        )
        .retry_after(1)
    }
}

impl BackendGate {
    /// A gate of `permits` permits, at most `per_user` of them held by one user,
    /// whose metrics are `pixpress_<service>_backend_permits_available`,
    /// `…_backend_permits_capacity`, `…_backpressure_rejections_total` (no permit free)
    /// and `…_fair_share_rejections_total` (the user's share taken).
    pub fn new(permits: usize, per_user: usize, registry: &Registry, service: &str) -> Self {
        let semaphore = Arc::new(Semaphore::new(permits));
        let metrics = MetricsRegistrar::new(registry, service);
        let total = metrics.int_gauge("backend_permits_capacity", "Backend call permits in all");
        total.set(permits as i64);
        let rejections = metrics.int_counter(
            "backpressure_rejections_total",
            "Requests answered 429 because no backend permit was free",
        );
        let share_rejections = metrics.int_counter(
            "fair_share_rejections_total",
            "Requests answered 429 because their user already held their share of the permits",
        );
        let read = Arc::clone(&semaphore);
        metrics.gauge_fn(
            "backend_permits_available",
            "Backend call permits free right now",
            move || read.available_permits() as i64,
        );
        Self {
            semaphore,
            per_user: per_user.max(1),
            held: Arc::default(),
            rejections,
            share_rejections,
        }
    }

    /// The default share of one user: a quarter of the permits, at least one.
    pub fn default_share(permits: usize) -> usize {
        (permits / 4).max(1)
    }

    /// Takes a permit for `user` without waiting: `Full` when none is free, else
    /// `UserShare` when this user already holds their share.
    pub fn try_enter(&self, user: i64) -> Result<GatePermit, GateSaturated> {
        let permit = Arc::clone(&self.semaphore)
            .try_acquire_owned()
            .map_err(|_| {
                self.rejections.inc();
                GateSaturated::Full
            })?;
        let mut held = lock(&self.held);
        let count = held.entry(user).or_insert(0);
        if *count >= self.per_user {
            self.share_rejections.inc();
            // `permit` drops on return: the gate gets it back at once.
            return Err(GateSaturated::UserShare);
        }
        *count += 1;
        Ok(GatePermit {
            _permit: permit,
            share: UserShare {
                user,
                held: Arc::clone(&self.held),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(registry: &Registry, name: &str) -> f64 {
        registry
            .gather()
            .iter()
            .find(|f| f.name() == name)
            .map(|f| f.get_metric()[0].get_gauge().get_value())
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn saturated_gate_rejects_and_recovers_when_permits_drop() {
        let registry = Registry::new();
        let gate = BackendGate::new(2, 2, &registry, "test");
        let a = gate.try_enter(1).unwrap();
        let b = gate.try_enter(2).unwrap();
        assert_eq!(gate.try_enter(3).err(), Some(GateSaturated::Full));
        assert_eq!(
            gauge(&registry, "pixpress_test_backend_permits_available"),
            0.0
        );
        assert_eq!(gate.rejections.get(), 1);
        drop(a);
        drop(b);
        assert_eq!(
            gauge(&registry, "pixpress_test_backend_permits_available"),
            2.0
        );
        assert!(gate.try_enter(3).is_ok());
    }

    #[test]
    fn one_user_holds_at_most_their_share_while_others_still_get_permits() {
        let registry = Registry::new();
        let gate = BackendGate::new(4, 2, &registry, "test");
        let first = gate.try_enter(1).unwrap();
        let _second = gate.try_enter(1).unwrap();
        assert_eq!(gate.try_enter(1).err(), Some(GateSaturated::UserShare));
        assert_eq!(gate.share_rejections.get(), 1);
        let other = gate.try_enter(2);
        assert_eq!(other.as_ref().map(GatePermit::user).ok(), Some(2));
        drop(first);
        assert!(
            gate.try_enter(1).is_ok(),
            "a returned permit frees the share"
        );
    }

    #[test]
    fn a_share_refusal_gives_the_permit_back() {
        let registry = Registry::new();
        let gate = BackendGate::new(2, 1, &registry, "test");
        let _held = gate.try_enter(1).unwrap();
        assert_eq!(gate.try_enter(1).err(), Some(GateSaturated::UserShare));
        assert_eq!(
            gauge(&registry, "pixpress_test_backend_permits_available"),
            1.0
        );
        assert!(gate.try_enter(2).is_ok());
    }
}
