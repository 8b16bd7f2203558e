//! What the simulator itself measures of a service's load: a layer right
//! inside the service's own bound on requests in flight (`serve_limited`)
//! counts the requests the service's router is handling, and keeps the
//! peak of that count per simulated second. A service that refuses a
//! request as overloaded (503 `overloaded`) claims that its bound was
//! reached; the oracle holds that claim against this measurement
//! ([`crate::check::Oracle::judge_load_shedding`]): a refusal while fewer
//! requests than the bound were in flight anywhere in the request's
//! lifetime means the service's own count is wrong (a counter that leaks on
//! some path, and the service slowly stops serving everyone).
//!
//! The count includes every incarnation of the service (a crash drops its
//! requests' futures, and their guards leave the count), so it never
//! overstates what one incarnation's bound saw.

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The requests in flight inside one service, and their peak per
/// simulated second.
#[derive(Clone, Debug, Default)]
pub struct LoadGauge(Arc<Mutex<Level>>);

#[derive(Debug, Default)]
struct Level {
    now: usize,
    peak_by_second: BTreeMap<u64, usize>,
}

impl LoadGauge {
    fn level(&self) -> std::sync::MutexGuard<'_, Level> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enter(&self, at_ms: u64) -> Inside {
        let mut level = self.level();
        level.now += 1;
        let now = level.now;
        let peak = level.peak_by_second.entry(at_ms / 1000).or_default();
        *peak = (*peak).max(now);
        Inside(self.clone())
    }

    /// An upper bound on the requests in flight at once at any time in
    /// the simulated seconds `from_ms ..= to_ms` touch: the peak of every
    /// second in the window, and the last peak before it (the level a
    /// window begins with only fell since then).
    pub fn peak(&self, from_ms: u64, to_ms: u64) -> usize {
        let level = self.level();
        let (first, last) = (from_ms / 1000, to_ms / 1000);
        let carried = level
            .peak_by_second
            .range(..first)
            .next_back()
            .map_or(0, |(_, peak)| *peak);
        level
            .peak_by_second
            .range(first..=last)
            .map(|(_, peak)| *peak)
            .fold(carried, usize::max)
    }
}

/// One request inside the service; leaves the count when dropped (also
/// when its connection or its host goes away mid-request).
struct Inside(LoadGauge);

impl Drop for Inside {
    fn drop(&mut self) {
        let mut level = self.0.level();
        level.now = level.now.saturating_sub(1);
    }
}

/// Count the requests `router` handles in `gauge`.
pub fn watch(router: Router, gauge: LoadGauge) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let inside = gauge.enter(crate::net::sim_now_ms());
            async move {
                let response = next.run(request).await;
                drop(inside);
                response
            }
        },
    ))
}
