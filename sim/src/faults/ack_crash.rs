//! A power loss right after the store acknowledges a rare write.
//!
//! Scheduled crashes strike at planned times, and the store is always busy
//! with uploads, so a state change other than an upload (an account closed,
//! a device sold or reset, a recording deleted, a message confirmed) is followed by other
//! commits long before any crash: a write the store acknowledged before it
//! was durable is made durable by the next commit, and nobody ever sees it
//! lost. Real outages do not wait: the power goes a millisecond after the
//! "OK". This fault names a kind of request and which of its 2xx answers
//! to strike after (`AckCrashPlan`); a layer in front of the store's router
//! (`layer`) counts the answers and, at the chosen one, cuts the power of
//! the store's simulated disk before the answer leaves the handler — no
//! other request can write after it, since the dying incarnation's disk
//! handles fail every operation — and the world then crashes the host and
//! restarts it after the downtime (`crashes.rs`). It needs no knowledge of
//! which writes a build makes durable: whatever the store had not synced
//! is lost or torn like any unsynced write.
//!
//! The answer itself still reaches its client (it left as the power went),
//! so the acknowledged state must survive the restart: the workload probes
//! it afterwards (`workload/durable.rs`) and the oracle judges it
//! (`check/durable.rs`). Now and then (`reply_lost`) the answer dies with
//! the process instead: the client never learns the outcome, which stays
//! unknown, and nothing is judged of it.

use super::disk::SimDisk;
use crate::net::sim_now_ms;
use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use http::Method;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A kind of state change, other than an upload, that a person asks the
/// store for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RareWrite {
    /// `DELETE /v1/accounts/me`.
    Close,
    /// `POST /v1/devices/{id}/transfer`.
    Transfer,
    /// `POST /v1/devices/{id}/reset`.
    Reset,
    /// `DELETE /v1/recordings/{id}` or `POST /v1/recordings/delete`.
    Delete,
    /// `POST /v1/messages/{id}/confirm`.
    Confirm,
}

impl RareWrite {
    /// The kind of a store request, if it is one of these.
    pub fn of(method: &Method, path: &str) -> Option<RareWrite> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        match (method.as_str(), parts.as_slice()) {
            ("DELETE", ["", "v1", "accounts", "me"]) => Some(RareWrite::Close),
            ("POST", ["", "v1", "devices", _, "transfer"]) => Some(RareWrite::Transfer),
            ("POST", ["", "v1", "devices", _, "reset"]) => Some(RareWrite::Reset),
            ("POST", ["", "v1", "recordings", "delete"]) => Some(RareWrite::Delete),
            ("POST", ["", "v1", "messages", _, "confirm"]) => Some(RareWrite::Confirm),
            ("DELETE", ["", "v1", "recordings", id]) if id.parse::<u64>().is_ok() => {
                Some(RareWrite::Delete)
            }
            _ => None,
        }
    }

    /// How the trace and the summary name it.
    pub fn name(self) -> &'static str {
        match self {
            RareWrite::Close => "account close",
            RareWrite::Transfer => "device transfer",
            RareWrite::Reset => "device reset",
            RareWrite::Delete => "deletion",
            RareWrite::Confirm => "message confirmation",
        }
    }
}

/// The kinds of rare write `accounts` plan, with how many actions ask for
/// each.
pub fn planned_kinds(accounts: &[crate::plan::AccountPlan]) -> BTreeMap<RareWrite, u32> {
    use crate::plan::Action;
    let mut kinds = BTreeMap::new();
    for timed in accounts.iter().flat_map(|a| &a.actions) {
        let kind = match timed.action {
            Action::CloseAccount => RareWrite::Close,
            Action::TransferDevice { .. } => RareWrite::Transfer,
            Action::ResetDevice { .. } => RareWrite::Reset,
            Action::DeleteOne { .. } | Action::DeleteRange { .. } => RareWrite::Delete,
            Action::SendMessage { .. } => RareWrite::Confirm,
            _ => continue,
        };
        *kinds.entry(kind).or_default() += 1;
    }
    kinds
}

/// Crash the store right after its `nth` 2xx answer (counted from 1) to a
/// request of kind `write`, and keep it down for `downtime_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckCrashPlan {
    pub write: RareWrite,
    pub nth: u32,
    pub downtime_ms: u64,
    /// The answer dies with the process instead of leaving: the client
    /// never learns the outcome (unknown, never judged as acknowledged).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reply_lost: bool,
}

/// Draw `count` (a range) such crashes from the seed (a stream of its
/// own, so that the rest of the plan is the same with or without them),
/// each on a kind of request the plan's people will make (`kinds`: each
/// kind with how many planned actions ask for it), after one of its first
/// few answers.
pub fn draw(
    seed: u64,
    count: (u64, u64),
    downtime_ms: (u64, u64),
    kinds: &BTreeMap<RareWrite, u32>,
) -> Vec<AckCrashPlan> {
    let mut rng = ChaCha8Rng::from_seed(crate::streams::derive(seed, "ack-crashes"));
    let count = rng.random_range(count.0..=count.1.max(count.0));
    let kinds: Vec<(RareWrite, u32)> = kinds
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (*k, *n))
        .collect();
    if kinds.is_empty() {
        return Vec::new();
    }
    let mut crashes: Vec<AckCrashPlan> = Vec::new();
    for _ in 0..count {
        let (write, planned) = kinds[rng.random_range(0..kinds.len())];
        let nth = rng.random_range(1..=planned.clamp(1, 3));
        let downtime_ms = rng.random_range(downtime_ms.0..=downtime_ms.1.max(downtime_ms.0));
        let reply_lost = rng.random_bool(0.25);
        if !crashes.iter().any(|c| c.write == write && c.nth == nth) {
            crashes.push(AckCrashPlan {
                write,
                nth,
                downtime_ms,
                reply_lost,
            });
        }
    }
    crashes
}

/// A crash that struck: after which answer, when, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Struck {
    pub write: RareWrite,
    pub at_ms: u64,
    pub downtime_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    /// 2xx answers so far, by kind.
    answered: BTreeMap<RareWrite, u32>,
    /// Which planned crashes struck already (by index).
    fired: Vec<bool>,
    /// A crash that struck and that the world has not yet applied.
    struck: Option<Struck>,
}

/// The store's planned crashes after acknowledgements, shared between the
/// layer inside the store host and the world that crashes the host.
#[derive(Debug)]
pub struct AckCrash {
    planned: Vec<AckCrashPlan>,
    /// Faults heal when the active period ends: nothing strikes after it.
    active_ms: u64,
    disk: SimDisk,
    state: Mutex<State>,
}

impl AckCrash {
    pub fn new(planned: Vec<AckCrashPlan>, active_ms: u64, disk: SimDisk) -> Arc<AckCrash> {
        let fired = vec![false; planned.len()];
        Arc::new(AckCrash {
            planned,
            active_ms,
            disk,
            state: Mutex::new(State {
                fired,
                ..State::default()
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store answered 2xx to a request of kind `write`: count it, and
    /// cut the power if this is the planned answer. `Some(reply_lost)`
    /// when the power went.
    fn answered(&self, write: RareWrite) -> Option<bool> {
        let now_ms = sim_now_ms();
        let mut state = self.lock();
        let n = {
            let n = state.answered.entry(write).or_default();
            *n += 1;
            *n
        };
        if state.struck.is_some() || now_ms >= self.active_ms {
            return None;
        }
        let index = (0..self.planned.len()).find(|&i| {
            !state.fired[i] && self.planned[i].write == write && self.planned[i].nth == n
        })?;
        state.fired[index] = true;
        // Power first: from here on the dying process writes nothing.
        self.disk.crash();
        state.struck = Some(Struck {
            write,
            at_ms: now_ms,
            downtime_ms: self.planned[index].downtime_ms,
        });
        Some(self.planned[index].reply_lost)
    }

    /// A crash that struck since the last call (the world applies it).
    pub fn take_struck(&self) -> Option<Struck> {
        self.lock().struck.take()
    }
}

/// Put the planned crashes in front of the store's `router`.
pub fn layer(router: Router, crash: Arc<AckCrash>) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let crash = crash.clone();
            async move {
                let write = RareWrite::of(request.method(), request.uri().path());
                let response = next.run(request).await;
                if let Some(write) = write
                    && response.status().is_success()
                    && crash.answered(write) == Some(true)
                {
                    // The answer dies with the process (the world crashes
                    // the host before the next step).
                    std::future::pending::<()>().await;
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
    fn requests_are_classified_by_method_and_path() {
        let of = |m: Method, p: &str| RareWrite::of(&m, p);
        assert_eq!(
            of(Method::DELETE, "/v1/accounts/me"),
            Some(RareWrite::Close)
        );
        assert_eq!(
            of(Method::POST, "/v1/devices/7/transfer"),
            Some(RareWrite::Transfer)
        );
        assert_eq!(
            of(Method::POST, "/v1/devices/7/reset"),
            Some(RareWrite::Reset)
        );
        assert_eq!(
            of(Method::DELETE, "/v1/recordings/12"),
            Some(RareWrite::Delete)
        );
        assert_eq!(
            of(Method::POST, "/v1/recordings/delete"),
            Some(RareWrite::Delete)
        );
        assert_eq!(
            of(Method::POST, "/v1/messages/3/confirm"),
            Some(RareWrite::Confirm)
        );
        assert_eq!(of(Method::POST, "/v1/recordings"), None);
        assert_eq!(of(Method::GET, "/v1/accounts/me"), None);
        assert_eq!(of(Method::DELETE, "/v1/recordings/x"), None);
    }

    #[test]
    fn drawing_is_seeded_and_only_of_planned_kinds() {
        let kinds: BTreeMap<RareWrite, u32> = [(RareWrite::Close, 2), (RareWrite::Reset, 0)]
            .into_iter()
            .collect();
        let a = draw(5, (3, 3), (100, 200), &kinds);
        assert_eq!(a, draw(5, (3, 3), (100, 200), &kinds));
        assert!(!a.is_empty());
        assert!(
            a.iter()
                .all(|c| c.write == RareWrite::Close && (1..=2).contains(&c.nth))
        );
        assert!(a.iter().all(|c| (100..=200).contains(&c.downtime_ms)));
        assert!(draw(5, (3, 3), (100, 200), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn the_planned_answer_cuts_the_power_once() {
        let disk = SimDisk::new(1, 0, 1);
        let plan = vec![AckCrashPlan {
            write: RareWrite::Close,
            nth: 2,
            downtime_ms: 50,
            reply_lost: false,
        }];
        let crash = AckCrash::new(plan, u64::MAX, disk.clone());
        assert_eq!(crash.answered(RareWrite::Close), None);
        assert_eq!(crash.answered(RareWrite::Delete), None);
        assert_eq!(crash.take_struck(), None);
        assert_eq!(crash.answered(RareWrite::Close), Some(false));
        let struck = crash.take_struck().map(|s| (s.write, s.downtime_ms));
        assert_eq!(struck, Some((RareWrite::Close, 50)));
        assert_eq!(disk.stats().crashes, 1);
        assert_eq!(crash.answered(RareWrite::Close), None);
        assert_eq!(crash.take_struck(), None);
        assert_eq!(disk.stats().crashes, 1);
    }
}
