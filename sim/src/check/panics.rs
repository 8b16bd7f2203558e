//! Panics inside the services, collected as evidence instead of lost.
//!
//! The services spawn one task per connection and drop its handle, so a
//! handler that panics is, on the wire, just a connection reset, which the
//! workload would retry. To turn it into a reported violation, a panic hook
//! is installed once per process (hooks are process-global, and runs execute
//! on threads in parallel, so installing and restoring one per run would
//! race). It forwards every panic to the hook that was there before; one
//! that happens on a thread whose run is collecting and whose location is
//! not the harness's own source is also recorded (message, location,
//! simulated time) for the oracle of that run. A run starts collecting with
//! [`collect`] and takes the list with [`Collecting::finish`]; dropping the
//! guard restores whatever the thread collected before. The harness's own
//! panics (anything located under `sim/`, except the test-only canary
//! wrapper, which stands for a service) always reach the previous hook.

use std::cell::RefCell;
use std::sync::Once;

/// One panic inside a service during a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePanic {
    pub message: String,
    pub location: String,
    pub at_ms: u64,
}

thread_local! {
    static COLLECTOR: RefCell<Option<Vec<ServicePanic>>> = const { RefCell::new(None) };
}

static INSTALL: Once = Once::new();

/// Whether a panic at `file` is the harness's own (it must surface).
fn is_harness_source(file: &str) -> bool {
    let file = file.replace('\\', "/");
    (file.starts_with("sim/") || file.contains("/sim/src/") || file.contains("/sim/tests/"))
        && !file.ends_with("canary.rs")
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Record the panic for this thread's run; false when nobody collects it.
fn record(info: &std::panic::PanicHookInfo<'_>) -> bool {
    let location = info.location();
    if location.is_some_and(|l| is_harness_source(l.file())) {
        return false;
    }
    let panic = ServicePanic {
        message: payload_message(info.payload()),
        location: location
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_else(|| "(unknown location)".to_string()),
        at_ms: crate::net::sim_now_ms(),
    };
    COLLECTOR
        .try_with(|collector| match collector.try_borrow_mut() {
            Ok(mut collector) => match collector.as_mut() {
                Some(list) => {
                    list.push(panic);
                    true
                }
                None => false,
            },
            Err(_) => false,
        })
        .unwrap_or(false)
}

fn install() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Recorded for the run's oracle, and still handed on: a hook
            // installed before (the CLI's guard, which turns a panic that
            // unwinds out of the run into one line) must see every panic.
            record(info);
            previous(info);
        }));
    });
}

/// This thread's run collects service panics until the guard is finished
/// or dropped.
pub struct Collecting {
    previous: Option<Vec<ServicePanic>>,
    finished: bool,
}

/// Start collecting the service panics of the run on this thread.
pub fn collect() -> Collecting {
    install();
    let previous = COLLECTOR.with(|c| c.borrow_mut().replace(Vec::new()));
    Collecting {
        previous,
        finished: false,
    }
}

impl Collecting {
    /// The panics collected, in the order they happened.
    pub fn finish(mut self) -> Vec<ServicePanic> {
        self.finished = true;
        let previous = self.previous.take();
        COLLECTOR.with(|c| std::mem::replace(&mut *c.borrow_mut(), previous).unwrap_or_default())
    }
}

impl Drop for Collecting {
    fn drop(&mut self) {
        if !self.finished {
            let previous = self.previous.take();
            COLLECTOR.with(|c| *c.borrow_mut() = previous);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_outside_the_harness_is_collected_and_the_harness_own_is_not() {
        let collecting = collect();
        // A panic located outside the harness (here: the canary, which
        // stands for a service) is collected.
        let caught = std::panic::catch_unwind(|| {
            crate::canary::panic_as_a_service("index and row disagree")
        });
        assert!(caught.is_err());
        // The harness's own panic surfaces (is forwarded, not collected).
        let own = std::panic::catch_unwind(|| panic!("harness bug"));
        assert!(own.is_err());
        let panics = collecting.finish();
        assert_eq!(panics.len(), 1, "{panics:?}");
        assert_eq!(panics[0].message, "index and row disagree");
        // Nothing is collected once the run finished.
        assert!(COLLECTOR.with(|c| c.borrow().is_none()));
    }

    #[test]
    fn harness_sources_are_recognised() {
        assert!(is_harness_source("sim/src/world/mod.rs"));
        assert!(!is_harness_source("sim/src/canary.rs"));
        assert!(!is_harness_source("crates/store/src/lib.rs"));
    }
}
