//! Fault points: places inside the services where a simulation (or a fuzz
//! run) may make something go wrong on purpose — a reply lost after a
//! commit, a worker stalling past its lease — in the spirit of FoundationDB's
//! BUGGIFY and madsim's `buggify`.
//!
//! Services take an `Arc<dyn FaultPoints>` like they take a clock; production
//! wiring passes [`NoFaults`]. And unless this crate is built with the
//! `fault-points` feature (the simulator and the fuzz targets turn it on),
//! [`fires`] is `false` whatever is injected, so in a production build a
//! fault point costs a constant branch.
//!
//! The same injected object also marks *interleave points*: places between
//! two steps of one request that another request on another thread may
//! race (a database read and the cache fill after it, the two transactions
//! of an account closing). [`interleave`] does nothing in production and in
//! the single-threaded simulator; the real-threads harness
//! (`sim/src/threads/`) implements [`FaultPoints::interleave`] to yield the
//! thread or sleep a few microseconds there, so that the operating system
//! interleaves racing requests at exactly the steps that matter.

use std::sync::Arc;

/// Decides, at each named point, whether the fault fires this time.
pub trait FaultPoints: Send + Sync + 'static {
    fn fire(&self, point: &'static str) -> bool;

    /// Whether the fault at `point` fires for `key` (an account, say): a
    /// fault that persists for one key, like a shard holding one subject's
    /// recordings being down. Never, unless overridden.
    fn fire_for(&self, _point: &'static str, _key: u64) -> bool {
        false
    }

    /// Called at the interleave point `point`; may yield or sleep the
    /// thread to widen a race window. Does nothing unless overridden.
    fn interleave(&self, _point: &'static str) {}
}

/// Never fires: the production choice.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFaults;

impl FaultPoints for NoFaults {
    fn fire(&self, _point: &'static str) -> bool {
        false
    }
}

/// No fault points (the default of every service).
pub fn none() -> Arc<dyn FaultPoints> {
    Arc::new(NoFaults)
}

/// Interleave point `point`: let the injected object yield or pause the
/// thread here. Compiled to nothing unless built with the `fault-points`
/// feature.
#[inline]
pub fn interleave(points: &dyn FaultPoints, point: &'static str) {
    #[cfg(feature = "fault-points")]
    points.interleave(point);
    #[cfg(not(feature = "fault-points"))]
    let _ = (points, point);
}

/// Whether the fault at `point` fires. Always `false` unless built with the
/// `fault-points` feature.
#[inline]
pub fn fires(points: &dyn FaultPoints, point: &'static str) -> bool {
    #[cfg(feature = "fault-points")]
    {
        points.fire(point)
    }
    #[cfg(not(feature = "fault-points"))]
    {
        let _ = (points, point);
        false
    }
}

/// Whether the fault at `point` fires for `key` (see
/// [`FaultPoints::fire_for`]). Always `false` unless built with the
/// `fault-points` feature.
#[inline]
pub fn fires_for(points: &dyn FaultPoints, point: &'static str, key: u64) -> bool {
    #[cfg(feature = "fault-points")]
    {
        points.fire_for(point, key)
    }
    #[cfg(not(feature = "fault-points"))]
    {
        let _ = (points, point, key);
        false
    }
}
