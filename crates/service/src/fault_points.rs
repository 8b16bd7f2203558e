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

use std::sync::Arc;

/// Decides, at each named point, whether the fault fires this time.
pub trait FaultPoints: Send + Sync + 'static {
    fn fire(&self, point: &'static str) -> bool;
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
