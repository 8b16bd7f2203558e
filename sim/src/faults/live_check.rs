//! A power loss of the store between the two calls a download makes to it.
//!
//! Before serving an archive the export service makes two calls to the
//! store: it introspects the caller's session, then asks which of the
//! archive's recordings are still live. A crash scheduled at a planned
//! time almost never falls between the two (they are a few milliseconds
//! apart), and a crash or partition that covers both refuses the download
//! at authentication: the erasure check's own failure path is never taken.
//! Real outages do not wait for a convenient moment. This fault is armed
//! by a person who deleted a recording of a ready archive and is about to
//! click its link again (`workload/limits.rs`,
//! `Action::DownloadWhileStoreDown`): a layer in front of the store's
//! router watches the introspections, and right after the store answered
//! the one of the armed session it cuts the power of the store's simulated
//! disk; the answer still leaves (as in `ack_crash.rs`), the world then
//! crashes the host and restarts it after the planned downtime. The export
//! service's live check that follows finds the store down. When the power
//! went and when the store came back is the ground truth the oracle counts
//! the probe by (`Oracle::on_host_down`), never the services' answers.

use super::disk::SimDisk;
use crate::net::sim_now_ms;
use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use http::Method;
use std::sync::{Arc, Mutex};

/// The store's introspection route (the export service's first call).
const INTROSPECT_PATH: &str = "/v1/service/introspect";
/// The largest introspection body the layer reads (a session token).
const MAX_BODY: usize = 4096;

/// A crash that struck: when, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Struck {
    pub at_ms: u64,
    pub downtime_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    /// The session whose next introspection the power goes after.
    armed: Option<(String, u64)>,
    struck: Option<Struck>,
}

/// Shared between the person who arms it, the layer inside the store host
/// and the world that crashes the host.
#[derive(Debug, Default)]
pub struct IntrospectCrash {
    state: Mutex<State>,
}

impl IntrospectCrash {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cut the store's power right after it answers the next introspection
    /// of `session`, and keep it down `downtime_ms`.
    pub fn arm(&self, session: &str, downtime_ms: u64) {
        self.lock().armed = Some((session.to_string(), downtime_ms));
    }

    /// Forget an arming that never struck (the download never reached the
    /// store, or the session was refused).
    pub fn disarm(&self) {
        self.lock().armed = None;
    }

    /// The store answered 2xx to an introspection of `session`: whether the
    /// power goes now.
    fn answered(&self, session: &str, disk: &SimDisk) -> bool {
        let mut state = self.lock();
        let Some((armed, downtime_ms)) = state.armed.clone() else {
            return false;
        };
        if armed != session || state.struck.is_some() {
            return false;
        }
        state.armed = None;
        // Power first: from here on the dying process writes nothing.
        disk.crash();
        state.struck = Some(Struck {
            at_ms: sim_now_ms(),
            downtime_ms,
        });
        true
    }

    /// A crash that struck since the last call (the world applies it).
    pub fn take_struck(&self) -> Option<Struck> {
        self.lock().struck.take()
    }
}

/// Put the armed crash in front of the store's `router`.
pub fn layer(router: Router, crash: Arc<IntrospectCrash>, disk: SimDisk) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let crash = crash.clone();
            let disk = disk.clone();
            async move {
                if request.method() != Method::POST
                    || request.uri().path() != INTROSPECT_PATH
                    || crash.lock().armed.is_none()
                {
                    return next.run(request).await;
                }
                let (parts, body) = request.into_parts();
                let bytes = axum::body::to_bytes(body, MAX_BODY)
                    .await
                    .unwrap_or_default();
                let session = serde_json::from_slice::<crosstalk_model::api::IntrospectRequest>(
                    &bytes,
                )
                .map(|r| r.session_token)
                .unwrap_or_default();
                let request = Request::from_parts(parts, axum::body::Body::from(bytes));
                let response = next.run(request).await;
                if response.status().is_success() {
                    crash.answered(&session, &disk);
                }
                response
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_armed_session_cuts_the_power_once() {
        let disk = SimDisk::new(1, 0, 1);
        let crash = IntrospectCrash::default();
        assert!(!crash.answered("s", &disk));
        crash.arm("s", 50);
        assert!(!crash.answered("other", &disk));
        assert_eq!(crash.take_struck(), None);
        assert!(crash.answered("s", &disk));
        assert_eq!(crash.take_struck().map(|s| s.downtime_ms), Some(50));
        assert_eq!(disk.stats().crashes, 1);
        assert!(!crash.answered("s", &disk));
        assert_eq!(disk.stats().crashes, 1);
    }
}
