//! Failures of the harness itself, as one line instead of a backtrace.
//!
//! A seed's run may fail in the simulator rather than in the services: a
//! panic inside turmoil (a socket buffer overflowing), a world too big for
//! the machine. Such a failure says nothing about the services, so the CLI
//! reports it as one line naming the scenario, the seed and the cause, and
//! exits 2. [`run_guarded`] runs a seed under `catch_unwind` with a panic
//! hook that stays quiet for that thread while the seed runs and remembers
//! the panic's message and location; panics anywhere else (another thread,
//! outside a guarded run) still go to the hook that was installed before,
//! so a per-run hook installed inside the run (which sees the panic first)
//! composes with this one.

use crate::plan::Plan;
use crate::world::{RunOutcome, run_plan};
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside a guarded run.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    /// The last panic of the current guarded run: message and location.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

static INSTALL: Once = Once::new();

/// A seed the harness could not run: which, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarnessFailure {
    pub scenario: String,
    pub seed: u64,
    pub cause: String,
}

impl std::fmt::Display for HarnessFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "harness failure: scenario {} seed {}: {}",
            self.scenario, self.seed, self.cause
        )
    }
}

/// The panic's message and where it happened, on one line.
fn describe(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    let message = message.replace('\n', " ");
    match info.location() {
        Some(at) => format!(
            "panicked at {}:{}: {message}",
            short_path(at.file()),
            at.line()
        ),
        None => format!("panicked: {message}"),
    }
}

/// A dependency's source path without the registry's prefix
/// (`turmoil-0.7.2/src/host.rs`); the workspace's own paths as they are.
fn short_path(file: &str) -> &str {
    file.rsplit_once("/registry/src/")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map_or(file, |(_, path)| path)
}

/// Install (once per process) the hook that keeps guarded runs quiet.
fn install_hook() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let line = describe(info);
                // The last panic is the one that unwound out of the run
                // (earlier ones were caught inside it, e.g. a service's
                // task, which the oracle reports).
                CAUGHT.with(|c| {
                    c.borrow_mut().replace(line);
                });
            } else {
                previous(info);
            }
        }));
    });
}

/// Run `plan`; a panic escaping the run becomes a [`HarnessFailure`].
pub fn run_guarded(plan: &Plan) -> Result<RunOutcome, HarnessFailure> {
    guarded(plan, || run_plan(plan))
}

/// Run `body` for `plan` under the guard.
pub fn guarded<T>(plan: &Plan, body: impl FnOnce() -> T) -> Result<T, HarnessFailure> {
    install_hook();
    CAUGHT.with(|c| c.borrow_mut().take());
    let was = GUARDED.with(|g| g.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(body));
    GUARDED.with(|g| g.set(was));
    result.map_err(|_| HarnessFailure {
        scenario: plan.scenario.clone(),
        seed: plan.seed,
        cause: CAUGHT
            .with(|c| c.borrow_mut().take())
            .unwrap_or_else(|| "panicked".to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_guarded_run_becomes_one_line() {
        let scenario = crate::scenario::Scenario::parse(include_str!("../../scenarios/smoke.toml"));
        let Ok(scenario) = scenario else {
            panic!("smoke parses");
        };
        let plan = Plan::generate(&scenario, 7);
        let failure = guarded(&plan, || -> u32 { panic!("socket\nbuffer full") })
            .expect_err("the panic is caught");
        assert_eq!(failure.scenario, "smoke");
        assert_eq!(failure.seed, 7);
        assert!(failure.cause.contains("socket buffer full"), "{failure}");
        assert!(failure.cause.contains("guard.rs"), "{failure}");
        assert!(!failure.to_string().contains('\n'));
        assert_eq!(guarded(&plan, || 5), Ok(5));
    }
}
