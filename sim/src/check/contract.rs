//! The API contract: a service answers 5xx only near an injected fault.
//!
//! The workload reports every server error it received (which service,
//! the request, the status, the JSON error body, when it was sent and when
//! it came back); the world reports every fault it injected as a window of
//! simulated time on the hosts it touched (a crash until the restart, a
//! process exit until the supervisor restarted it, a network fault until it
//! healed, the period of injected disk I/O errors, each fault point that
//! fired inside a service). At the end of the run the oracle excuses a
//! server error only when a fault window on the service it came from — or
//! on the store, for the export service, which calls the store on behalf of
//! its callers — overlaps the request's lifetime, widened by a grace period
//! for the services' own retries and timeouts. Everything else is a
//! violation of [`super::Invariant::ApiContract`]. A 503 whose error code is
//! `overloaded` is load shedding and allowed at any time.

use crate::net::{EXPORT_HOST, STORE_HOST};
use std::sync::{Arc, Mutex};

/// How long after a fault healed its consequences may still surface as a
/// server error: the export's store client times out after 10 s and the
/// services retry, so 30 s covers a request caught in the tail of a fault.
pub const FAULT_GRACE_MS: u64 = 30_000;
/// A fault is applied between two simulation steps; a reply that raced the
/// step it was applied in may be stamped a little earlier.
pub const FAULT_LEAD_MS: u64 = 1_000;

/// One injected fault: the hosts it touched, from when, until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultWindow {
    pub what: String,
    pub hosts: Vec<String>,
    pub from_ms: u64,
    /// `u64::MAX`: never healed within the run.
    pub to_ms: u64,
}

/// Fault points that fired inside a service, shared with the services'
/// fault-point objects (which must be `Send + Sync`).
pub type FiredPoints = Arc<Mutex<Vec<(String, u64)>>>;

/// Every fault the world injected in one run.
#[derive(Clone, Debug, Default)]
pub struct FaultLog {
    pub windows: Vec<FaultWindow>,
}

impl FaultLog {
    pub fn push(&mut self, what: String, hosts: &[&str], from_ms: u64, to_ms: u64) {
        self.windows.push(FaultWindow {
            what,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            from_ms,
            to_ms,
        });
    }

    /// Add each fault point that fired, on the host it fired in (the
    /// fault-point name is `host/incarnation`).
    pub fn add_fired_points(&mut self, fired: &FiredPoints) {
        let fired = fired.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (name, at_ms) in fired {
            let host = name.split('/').next().unwrap_or_default().to_string();
            self.windows.push(FaultWindow {
                what: format!("fault point fired in {name}"),
                hosts: vec![host],
                from_ms: at_ms,
                to_ms: at_ms,
            });
        }
    }

    /// The first fault near a request to `service` that was sent at
    /// `sent_ms` and answered at `at_ms`.
    pub fn near(&self, service: &str, sent_ms: u64, at_ms: u64) -> Option<&FaultWindow> {
        let relevant: &[&str] = if service == EXPORT_HOST {
            &[EXPORT_HOST, STORE_HOST]
        } else {
            &[STORE_HOST]
        };
        self.windows.iter().find(|w| {
            w.hosts.iter().any(|h| relevant.contains(&h.as_str()))
                && w.from_ms.saturating_sub(FAULT_LEAD_MS) <= at_ms
                && w.to_ms.saturating_add(FAULT_GRACE_MS) >= sent_ms
        })
    }
}

/// A server error (or a request that got no answer at all) the workload
/// received, waiting for the end-of-run judgement.
#[derive(Clone, Debug)]
pub struct ServerError {
    /// `store` or `export`.
    pub service: &'static str,
    pub request: String,
    /// The status, or `None` when no answer came back (a reset, a timeout).
    pub status: Option<u16>,
    /// The JSON error body (or the transport error).
    pub body: String,
    pub principal: Option<usize>,
    pub sent_ms: u64,
    pub at_ms: u64,
}

impl ServerError {
    /// Load shedding: a 503 whose JSON error code is `overloaded`.
    pub fn is_load_shedding(&self) -> bool {
        self.status == Some(503)
            && serde_json::from_str::<serde_json::Value>(&self.body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .is_some_and(|code| code == "overloaded")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(service: &'static str, sent_ms: u64, at_ms: u64) -> ServerError {
        ServerError {
            service,
            request: "GET /v1/recordings".into(),
            status: Some(500),
            body: r#"{"error":"internal","message":"x"}"#.into(),
            principal: None,
            sent_ms,
            at_ms,
        }
    }

    #[test]
    fn a_fault_excuses_errors_on_its_service_and_the_export_that_calls_it() {
        let mut log = FaultLog::default();
        log.push("store crashed".into(), &["store"], 10_000, 15_000);
        assert!(log.near("store", 12_000, 12_500).is_some());
        assert!(log.near("export", 14_000, 16_000).is_some());
        // Within the grace period after the restart, and not after it.
        assert!(log.near("store", 40_000, 41_000).is_some());
        assert!(log.near("store", 50_000, 51_000).is_none());
        // Before the fault began.
        assert!(log.near("store", 1_000, 2_000).is_none());
        // An export fault does not excuse the store.
        let mut log = FaultLog::default();
        log.push("export crashed".into(), &["export"], 10_000, 15_000);
        assert!(log.near("store", 12_000, 12_500).is_none());
        assert!(log.near("export", 12_000, 12_500).is_some());
        let _ = error("store", 0, 0);
    }

    #[test]
    fn only_an_overloaded_503_is_load_shedding() {
        let mut e = error("store", 0, 0);
        assert!(!e.is_load_shedding());
        e.status = Some(503);
        assert!(!e.is_load_shedding());
        e.body = r#"{"error":"overloaded","message":"busy"}"#.into();
        assert!(e.is_load_shedding());
    }

    #[test]
    fn fired_points_are_windows_on_their_host() {
        let fired: FiredPoints = Arc::default();
        fired.lock().unwrap().push(("store/2".into(), 7_000));
        let mut log = FaultLog::default();
        log.add_fired_points(&fired);
        assert_eq!(log.windows[0].hosts, ["store"]);
        assert!(log.near("store", 7_000, 7_100).is_some());
    }
}
