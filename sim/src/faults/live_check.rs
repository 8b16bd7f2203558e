//! A power loss of the store as the export service's live check reaches it.
//!
//! Before serving an archive the export service makes two calls to the
//! store: it introspects the caller's session, then asks which of the
//! archive's recordings are still live. A crash scheduled at a planned
//! time almost never falls between the two (they are milliseconds apart),
//! and a crash or partition that covers both refuses the download at
//! authentication: the erasure check's own failure path is never taken.
//! Real outages do not wait for a convenient moment. This fault is armed
//! by a person who deleted a recording of a ready archive and is about to
//! click its link again (`workload/limits.rs`,
//! `Action::DownloadWhileStoreDown`): a layer in front of the store's
//! router watches the introspections; once the store answered the armed
//! session's (and so learned its account), the live check for that account
//! that follows finds the store's power gone as it arrives: the layer cuts
//! the power of the store's simulated disk before the check is handled and
//! answers 503 for the dead backend, as the proxy in front of a store does;
//! the world then crashes the host and restarts it after the planned
//! downtime. When the live check was cut off is the ground truth the
//! oracle counts the probe by (`Oracle::on_live_check_cut_off`), never the
//! services' answers.

use super::disk::SimDisk;
use crate::net::sim_now_ms;
use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crosstalk_model::api::{IntrospectRequest, IntrospectResponse};
use http::Method;
use std::sync::{Arc, Mutex};

/// The store's introspection route (the export service's first call).
const INTROSPECT_PATH: &str = "/v1/service/introspect";
/// The largest body the layer reads (a session token, an account id).
const MAX_BODY: usize = 4096;

/// A crash that struck: when, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Struck {
    pub at_ms: u64,
    pub downtime_ms: u64,
}

/// A download armed to meet the power loss.
#[derive(Clone, Debug)]
struct Armed {
    session: String,
    downtime_ms: u64,
    /// The session's account, once the store introspected it.
    account: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    armed: Option<Armed>,
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

    /// Cut the store's power as the live check of `session`'s account
    /// arrives, right after the store introspected `session`, and keep it
    /// down `downtime_ms`.
    pub fn arm(&self, session: &str, downtime_ms: u64) {
        self.lock().armed = Some(Armed {
            session: session.to_string(),
            downtime_ms,
            account: None,
        });
    }

    /// Forget an arming that never struck (the download never reached the
    /// store's live check).
    pub fn disarm(&self) {
        self.lock().armed = None;
    }

    /// The store introspected `session` as `account`.
    fn introspected(&self, session: &str, account: u64) {
        let mut state = self.lock();
        if let Some(armed) = state.armed.as_mut()
            && armed.session == session
            && armed.account.is_none()
        {
            armed.account = Some(account);
        }
    }

    /// A live check of `account` arrived: whether the power goes now.
    fn live_check_arrived(&self, account: u64, disk: &SimDisk) -> bool {
        let mut state = self.lock();
        let Some(armed) = state.armed.clone() else {
            return false;
        };
        if armed.account != Some(account) || state.struck.is_some() {
            return false;
        }
        state.armed = None;
        // Power first: from here on the dying process writes nothing.
        disk.crash();
        state.struck = Some(Struck {
            at_ms: sim_now_ms(),
            downtime_ms: armed.downtime_ms,
        });
        true
    }

    /// A crash that struck since the last call (the world applies it).
    pub fn take_struck(&self) -> Option<Struck> {
        self.lock().struck.take()
    }
}

/// The account of a live check (`POST /v1/service/accounts/{id}/recordings/live`).
fn live_check_account(method: &Method, path: &str) -> Option<u64> {
    if method != Method::POST {
        return None;
    }
    let rest = path.strip_prefix("/v1/service/accounts/")?;
    let account = rest.strip_suffix("/recordings/live")?;
    account.parse().ok()
}

/// Put the armed crash in front of the store's `router`.
pub fn layer(router: Router, crash: Arc<IntrospectCrash>, disk: SimDisk) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let crash = crash.clone();
            let disk = disk.clone();
            async move {
                if crash.lock().armed.is_none() {
                    return next.run(request).await;
                }
                if let Some(account) = live_check_account(request.method(), request.uri().path()) {
                    if crash.live_check_arrived(account, &disk) {
                        return crosstalk_service::ApiError::unavailable(
                            "the recording store is unavailable",
                        )
                        .into_response();
                    }
                    return next.run(request).await;
                }
                if request.method() != Method::POST || request.uri().path() != INTROSPECT_PATH {
                    return next.run(request).await;
                }
                let (parts, body) = request.into_parts();
                let bytes = axum::body::to_bytes(body, MAX_BODY)
                    .await
                    .unwrap_or_default();
                let session = serde_json::from_slice::<IntrospectRequest>(&bytes)
                    .map(|r| r.session_token)
                    .unwrap_or_default();
                let request = Request::from_parts(parts, axum::body::Body::from(bytes));
                let response = next.run(request).await;
                if !response.status().is_success() {
                    return response;
                }
                let (parts, body) = response.into_parts();
                let bytes = axum::body::to_bytes(body, MAX_BODY)
                    .await
                    .unwrap_or_default();
                if let Ok(answer) = serde_json::from_slice::<IntrospectResponse>(&bytes) {
                    crash.introspected(&session, answer.account_id.0);
                }
                Response::from_parts(parts, axum::body::Body::from(bytes))
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_armed_accounts_live_check_cuts_the_power_once() {
        let disk = SimDisk::new(1, 0, 1);
        let crash = IntrospectCrash::default();
        assert!(!crash.live_check_arrived(7, &disk));
        crash.arm("s", 50);
        crash.introspected("other", 8);
        assert!(!crash.live_check_arrived(8, &disk));
        assert!(!crash.live_check_arrived(7, &disk));
        crash.introspected("s", 7);
        assert_eq!(crash.take_struck(), None);
        assert!(crash.live_check_arrived(7, &disk));
        assert_eq!(crash.take_struck().map(|s| s.downtime_ms), Some(50));
        assert_eq!(disk.stats().crashes, 1);
        assert!(!crash.live_check_arrived(7, &disk));
        assert_eq!(disk.stats().crashes, 1);
    }

    #[test]
    fn live_checks_are_recognised_by_method_and_path() {
        let live = |m: Method, p: &str| live_check_account(&m, p);
        assert_eq!(
            live(Method::POST, "/v1/service/accounts/12/recordings/live"),
            Some(12)
        );
        assert_eq!(
            live(Method::GET, "/v1/service/accounts/12/recordings/live"),
            None
        );
        assert_eq!(
            live(Method::POST, "/v1/service/accounts/12/recordings"),
            None
        );
    }
}
