//! What a simulation injects into a service besides its clock and entropy:
//! fault points and planted bugs, kept together in one [`Injected`].
//!
//! Every type that takes them (the store, the export service, the export
//! worker) holds an [`Injected`] and implements [`Inject`], whose provided
//! builder methods are the only `with_fault_points` / `with_planted` in
//! the services. Production wiring never calls them: the default is no
//! fault points and no planted bugs.

use crate::fault_points::{self, FaultPoints};
use crate::planted::{Bug, Planted};
use std::sync::Arc;

/// The fault points and planted bugs one value was given.
#[derive(Clone)]
pub struct Injected {
    faults: Arc<dyn FaultPoints>,
    planted: Planted,
}

impl Default for Injected {
    fn default() -> Self {
        Self {
            faults: fault_points::none(),
            planted: Planted::none(),
        }
    }
}

impl Injected {
    /// Whether the fault at `point` fires (see [`fault_points::fires`]).
    pub fn fires(&self, point: &'static str) -> bool {
        fault_points::fires(&*self.faults, point)
    }

    /// Whether the fault at `point` fires for `key` (see
    /// [`fault_points::fires_for`]).
    pub fn fires_for(&self, point: &'static str, key: u64) -> bool {
        fault_points::fires_for(&*self.faults, point, key)
    }

    /// Interleave point `point`: the injected object may yield or pause the
    /// thread here (see [`fault_points::interleave`]).
    pub fn interleave(&self, point: &'static str) {
        fault_points::interleave(&*self.faults, point)
    }

    /// Whether `bug` is planted (see [`Planted::on`]).
    pub fn on(&self, bug: Bug) -> bool {
        self.planted.on(bug)
    }

    /// Replace the fault points (a value hands its own on to a part it owns
    /// with this; see [`Inject::pass_on_fault_points`]).
    pub fn set_fault_points(&mut self, faults: Arc<dyn FaultPoints>) {
        self.faults = faults;
    }
}

/// A value that takes fault points and planted bugs.
pub trait Inject: Sized {
    /// Where the value keeps what was injected.
    fn injected_mut(&mut self) -> &mut Injected;

    /// Hand new fault points on to the parts the value owns (its store
    /// client, say). Nothing by default.
    fn pass_on_fault_points(&mut self, faults: &Arc<dyn FaultPoints>) {
        let _ = faults;
    }

    /// Inject fault points (simulation and fuzzing builds; inert unless
    /// built with the `fault-points` feature).
    fn with_fault_points(mut self, faults: Arc<dyn FaultPoints>) -> Self {
        self.pass_on_fault_points(&faults);
        self.injected_mut().set_fault_points(faults);
        self
    }

    /// Plant bugs from the catalogue (inert unless built with the
    /// `planted-bugs` feature; see [`crate::planted`]).
    fn with_planted(mut self, planted: Planted) -> Self {
        self.injected_mut().planted = planted;
        self
    }
}
