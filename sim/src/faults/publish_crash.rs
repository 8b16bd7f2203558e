//! A power loss of the export service's host inside a publication.
//!
//! Scheduled export crashes strike at planned times, and a publication (a
//! worker's archive stored and its job turned ready) is a short burst of
//! writes among many: a crash almost never lands between two of them. Real
//! outages do not wait. This fault names one publication by its rank at
//! the export service's door (the `nth` worker call to publish, counted
//! from 1) and one of the disk writes from its arrival on (`write`); a
//! layer in front of the export router (`layer`) counts the publications
//! and, at the chosen one, arms a power loss of the export host's
//! simulated disk at that write. Whatever the service had not synced then
//! is lost or torn; the world crashes the host and restarts it after the
//! downtime (`crashes.rs`), as for an armed mid-write power loss. It needs no
//! knowledge of how a build orders its writes: over the seeds, every write
//! of a publication (and of whatever follows it) is struck.
//!
//! The outcome of the publication is then unknown, never wrong: either the
//! export stayed pending (its lease lapses, another attempt publishes it)
//! or it is ready with its archive. A service that turned the job ready in
//! one commit and stored its archive in another can be left ready with no
//! archive: its subject's downloads then fail long after the fault healed
//! (the API contract: a 5xx with no fault near it), and every later
//! attempt is refused.

use super::disk::SimDisk;
use crate::net::sim_now_ms;
use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::Method;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// Lose the export host's power at the `write`-th disk write (or sync)
/// from the arrival of the `nth` publication (counted from 1), and keep
/// it down for `downtime_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishCrashPlan {
    pub nth: u32,
    pub write: u32,
    pub downtime_ms: u64,
}

/// The most disk writes counted from a publication's arrival: enough for
/// two commits of a publication and the first of whatever follows.
const MAX_WRITE: u32 = 12;

/// Draw `count` (a range) such crashes from the seed (a stream of its
/// own, so that the rest of the plan is the same with or without them),
/// each at one of the first few publications.
pub fn draw(seed: u64, count: (u64, u64), downtime_ms: (u64, u64)) -> Vec<PublishCrashPlan> {
    let mut rng = ChaCha8Rng::from_seed(crate::streams::derive(seed, "publish-crashes"));
    let count = rng.random_range(count.0..=count.1.max(count.0));
    let mut crashes: Vec<PublishCrashPlan> = Vec::new();
    for _ in 0..count {
        let nth = rng.random_range(1..=4);
        let write = rng.random_range(1..=MAX_WRITE);
        let downtime_ms = rng.random_range(downtime_ms.0..=downtime_ms.1.max(downtime_ms.0));
        if !crashes.iter().any(|c| c.nth == nth) {
            crashes.push(PublishCrashPlan {
                nth,
                write,
                downtime_ms,
            });
        }
    }
    crashes.sort_by_key(|c| c.nth);
    crashes
}

#[derive(Debug, Default)]
struct State {
    /// Publications that reached the door so far.
    seen: u32,
    /// A power loss armed on the disk whose downtime the world has not yet
    /// taken over.
    armed: Option<(u32, u64)>,
}

/// The export host's planned crashes inside publications, shared between
/// the layer inside the export host and the world that crashes the host.
#[derive(Debug)]
pub struct PublishCrash {
    planned: Vec<PublishCrashPlan>,
    /// Faults heal when the active period ends: nothing is armed after it.
    active_ms: u64,
    disk: SimDisk,
    state: Mutex<State>,
}

impl PublishCrash {
    pub fn new(planned: Vec<PublishCrashPlan>, active_ms: u64, disk: SimDisk) -> Arc<Self> {
        Arc::new(PublishCrash {
            planned,
            active_ms,
            disk,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A publication reached the door: arm the disk if it is a chosen one.
    fn on_publication(&self) {
        let mut state = self.lock();
        state.seen += 1;
        let seen = state.seen;
        let Some(plan) = self.planned.iter().find(|c| c.nth == seen) else {
            return;
        };
        if sim_now_ms() >= self.active_ms || self.disk.is_armed() {
            return;
        }
        self.disk.arm_power_loss(plan.write);
        state.armed = Some((plan.write, plan.downtime_ms));
    }

    /// A power loss this fault armed since the last call: the write it
    /// strikes at and the downtime (the world applies it when it strikes).
    pub fn take_armed(&self) -> Option<(u32, u64)> {
        self.lock().armed.take()
    }
}

/// Whether `request` is a worker's publication.
fn is_publication(method: &Method, path: &str) -> bool {
    *method == Method::POST
        && path
            .strip_prefix("/v1/internal/jobs/")
            .is_some_and(|rest| rest.ends_with("/complete"))
}

/// Put the crash counter in front of the export service's `router`.
pub fn layer(router: Router, crash: Arc<PublishCrash>) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let crash = crash.clone();
            async move {
                if is_publication(request.method(), request.uri().path()) {
                    crash.on_publication();
                }
                let response: Response = next.run(request).await;
                response
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crashes_are_drawn_from_the_seed_at_distinct_publications() {
        let a = draw(7, (1, 3), (500, 9_000));
        assert_eq!(a, draw(7, (1, 3), (500, 9_000)));
        assert!(!a.is_empty() && a.len() <= 3);
        for c in &a {
            assert!((1..=4).contains(&c.nth) && (1..=MAX_WRITE).contains(&c.write));
            assert!((500..=9_000).contains(&c.downtime_ms));
        }
        assert!(a.windows(2).all(|w| w[0].nth < w[1].nth));
        assert!(draw(7, (0, 0), (500, 9_000)).is_empty());
    }

    #[test]
    fn only_publications_are_counted() {
        let post = Method::POST;
        assert!(is_publication(&post, "/v1/internal/jobs/4/complete"));
        assert!(!is_publication(&post, "/v1/internal/jobs/4/renew"));
        assert!(!is_publication(
            &Method::GET,
            "/v1/internal/jobs/4/complete"
        ));
    }
}
