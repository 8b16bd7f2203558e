//! Deadline extensions (GDPR Art. 12(3): one, by two further months, with
//! a reason) and the overdue queue, each proved by a small defect planted
//! in a test-only layer in front of the export service:
//! - an overdue queue that ignores extensions (it lists an extended
//!   request, still undelivered, once its first due date passed);
//! - an extension applied from the wrong base (two months from the day it
//!   was granted, not from the first due date), everywhere the request's
//!   status is shown;
//! - an extension applied to every request of the subject (the layer
//!   extends the subject's other requests in the same breath, and the
//!   audit log shows one entry, as one transaction would).
//!
//! Each must make the run fail with the liveness invariant, for the right
//! reason; the correct build passes with the extensions' controls counted.

mod support;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use crosstalk_model::api::{AuditEntry, ExportState, ExportStatus};
use crosstalk_service::bearer_token;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::net::{EPOCH_MS, sim_now_ms};
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::{Range, Scenario};
use crosstalk_sim::world::{RunOutcome, Wrappers, run_plan};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use support::{Fut, assert_caught, first_failure, layered, response_bytes, scenario, split};
use tower::ServiceExt;

/// The simulator's scaled deadline and extension (`world::export_config`).
const DEADLINE_MS: u64 = 600_000;
const EXTENSION_MS: u64 = 1_200_000;

/// Smoke (swarm testing off: every seed has the agent, and a poisoned
/// subject half the time) with the agent extending `per_mille` of the
/// requests it learns of.
fn smoke_extending(per_mille: u64) -> Scenario {
    let mut s = scenario("smoke");
    s.agent.extend_per_mille = Range(per_mille, per_mille);
    s
}

/// The services' clock now (the layer runs on the export host).
fn service_now_ms() -> u64 {
    EPOCH_MS + sim_now_ms()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether the answer to `method path` shows one request's status.
fn shows_a_status(method: &Method, path: &str) -> bool {
    (method == Method::GET && path.starts_with("/v1/exports/"))
        || (method == Method::POST && path.ends_with("/extend"))
}

fn json_response(parts: axum::http::response::Parts, body: Vec<u8>) -> Response {
    Response::from_parts(parts, Body::from(body))
}

// --- Defect: an overdue queue that ignores extensions. --------------------

/// Each request's latest status the layer saw pass.
type Seen = Arc<Mutex<BTreeMap<u64, ExportStatus>>>;

fn overdue_ignores_extensions(State(seen): State<Seen>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        let response = next.run(request).await;
        let overdue = method == Method::GET && path == "/v1/agent/overdue";
        if response.status() != StatusCode::OK || !(overdue || shows_a_status(&method, &path)) {
            return response;
        }
        let (parts, bytes) = response_bytes(response).await;
        if !overdue {
            if let Ok(status) = serde_json::from_slice::<ExportStatus>(&bytes) {
                lock(&seen).insert(status.export_id.0, status);
            }
            return json_response(parts, bytes.to_vec());
        }
        let Ok(mut listed) = serde_json::from_slice::<Vec<ExportStatus>>(&bytes) else {
            return json_response(parts, bytes.to_vec());
        };
        // Past the first due date, extended or not.
        for status in lock(&seen).values() {
            let first_due_ms = status.requested_at_ms + DEADLINE_MS;
            let unfinished = status.state != ExportState::Ready;
            let absent = listed.iter().all(|l| l.export_id != status.export_id);
            if unfinished && absent && first_due_ms < service_now_ms() {
                listed.push(ExportStatus {
                    overdue: true,
                    ..status.clone()
                });
            }
        }
        json_response(parts, serde_json::to_vec(&listed).unwrap_or_default())
    })
}

#[test]
fn an_overdue_queue_that_ignores_extensions_fails_the_run() {
    let outcome = first_failure(&smoke_extending(1000), 8, |_| {
        let seen = Seen::default();
        Wrappers {
            store: None,
            export: Some(Rc::new(move |inner: Router| {
                layered(inner, seen.clone(), overdue_ignores_extensions)
            })),
        }
    });
    assert_caught(&outcome, Invariant::Liveness, "must honour the extension");
}

// --- Defect: an extension applied from the wrong base. --------------------

/// Each extended request's due date as the defect computes it.
type WrongDue = Arc<Mutex<BTreeMap<u64, u64>>>;

/// Show `status` with the wrong due date, if its request was extended.
fn with_wrong_due(wrong: &BTreeMap<u64, u64>, mut status: ExportStatus) -> ExportStatus {
    if let Some(&due) = wrong.get(&status.export_id.0) {
        status.due_at_ms = due;
        status.overdue = status.state != ExportState::Ready && service_now_ms() > due;
    }
    status
}

fn extension_from_grant_day(State(wrong): State<WrongDue>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        let response = next.run(request).await;
        let overdue = method == Method::GET && path == "/v1/agent/overdue";
        if response.status() != StatusCode::OK || !(overdue || shows_a_status(&method, &path)) {
            return response;
        }
        let (parts, bytes) = response_bytes(response).await;
        let mut wrong = lock(&wrong);
        let body = if overdue {
            serde_json::from_slice::<Vec<ExportStatus>>(&bytes).map(|listed| {
                let shown: Vec<ExportStatus> = listed
                    .into_iter()
                    .map(|s| with_wrong_due(&wrong, s))
                    .collect();
                serde_json::to_vec(&shown).unwrap_or_default()
            })
        } else {
            serde_json::from_slice::<ExportStatus>(&bytes).map(|status| {
                if path.ends_with("/extend") {
                    // Two months from today, not from the first due date.
                    let due = service_now_ms() + EXTENSION_MS;
                    wrong.entry(status.export_id.0).or_insert(due);
                }
                serde_json::to_vec(&with_wrong_due(&wrong, status)).unwrap_or_default()
            })
        };
        json_response(parts, body.unwrap_or_else(|_| bytes.to_vec()))
    })
}

#[test]
fn an_extension_from_the_wrong_base_fails_the_run() {
    let outcome = first_failure(&smoke_extending(500), 4, |_| {
        let wrong = WrongDue::default();
        Wrappers {
            store: None,
            export: Some(Rc::new(move |inner: Router| {
                layered(inner, wrong.clone(), extension_from_grant_day)
            })),
        }
    });
    assert_caught(&outcome, Invariant::Liveness, "wrong base");
}

// --- Defect: an extension applied to every request of the subject. --------

/// What the layer learned, and the service behind it.
#[derive(Clone)]
struct Spreading {
    inner: Router,
    /// Export id -> the session of the subject who asked about it.
    subjects: Arc<Mutex<BTreeMap<u64, String>>>,
    /// Extensions the layer tried: (export id, from, to service ms), kept
    /// out of the audit log (one transaction, one entry).
    added: Arc<Mutex<Vec<(u64, u64, u64)>>>,
}

fn extension_for_every_request(State(s): State<Spreading>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        let session = bearer_token(request.headers()).map(str::to_string);
        let (parts, bytes) = split(request).await;
        let again = (parts.clone(), bytes.clone());
        let response = next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
        if !response.status().is_success() {
            return response;
        }
        let (out, body) = response_bytes(response).await;
        if method == Method::GET && path == "/v1/agent/audit" {
            return json_response(out, audit_without_added(&s, &body));
        }
        let shown = serde_json::from_slice::<ExportStatus>(&body).ok();
        if let Some(status) = shown {
            let id = status.export_id.0;
            if path.ends_with("/extend") {
                spread(&s, id, again).await;
            } else if let Some(session) = session.filter(|_| path.starts_with("/v1/exports")) {
                lock(&s.subjects).insert(id, session);
            }
        }
        json_response(out, body.to_vec())
    })
}

/// Extend the other requests of exp-`id`'s subject as the agent's
/// `request` extended it.
async fn spread(s: &Spreading, id: u64, request: (axum::http::request::Parts, axum::body::Bytes)) {
    let others: Vec<u64> = {
        let subjects = lock(&s.subjects);
        let Some(subject) = subjects.get(&id) else {
            return;
        };
        subjects
            .iter()
            .filter(|(other, session)| **other != id && *session == subject)
            .map(|(other, _)| *other)
            .collect()
    };
    for other in others {
        let (mut parts, body) = (request.0.clone(), request.1.clone());
        parts.uri = format!("/v1/agent/exports/{other}/extend")
            .parse()
            .expect("a path");
        let from_ms = service_now_ms();
        let _ = s
            .inner
            .clone()
            .oneshot(Request::from_parts(parts, Body::from(body)))
            .await;
        lock(&s.added).push((other, from_ms, service_now_ms()));
    }
}

/// The audit page in `body` without the entries of the layer's own
/// extensions.
fn audit_without_added(s: &Spreading, body: &[u8]) -> Vec<u8> {
    let Ok(page) = serde_json::from_slice::<Vec<AuditEntry>>(body) else {
        return body.to_vec();
    };
    let added = lock(&s.added);
    let kept: Vec<AuditEntry> = page
        .into_iter()
        .filter(|e| {
            !added.iter().any(|(id, from, to)| {
                e.export_id.map(|x| x.0) == Some(*id) && (*from..=*to).contains(&e.at_ms)
            })
        })
        .collect();
    serde_json::to_vec(&kept).unwrap_or_default()
}

#[test]
fn an_extension_of_every_request_of_the_subject_fails_the_run() {
    let outcome = first_failure(&smoke_extending(500), 6, |_| {
        let subjects = Arc::default();
        let added = Arc::default();
        Wrappers {
            store: None,
            export: Some(Rc::new(move |inner: Router| {
                let state = Spreading {
                    inner: inner.clone(),
                    subjects: Arc::clone(&subjects),
                    added: Arc::clone(&added),
                };
                layered(inner, state, extension_for_every_request)
            })),
        }
    });
    assert_caught(
        &outcome,
        Invariant::Liveness,
        "another request's extension landed on it",
    );
}

// --- The correct build passes, every control above zero. ------------------

/// Run seeds of `scenario` on the correct build until `control` is above
/// zero; every run must pass.
fn passes_with(scenario: &Scenario, seeds: u64, control: fn(&RunOutcome) -> u64) -> RunOutcome {
    for seed in 0..seeds {
        let outcome = run_plan(&Plan::generate(scenario, seed));
        assert!(
            outcome.passed(),
            "{} seed {seed}: {:#?}",
            scenario.name,
            outcome.violations
        );
        if control(&outcome) > 0 {
            return outcome;
        }
    }
    panic!(
        "{}: the control stayed at zero for {seeds} seeds",
        scenario.name
    );
}

#[test]
fn the_correct_console_extends_once_and_keeps_every_deadline() {
    let smoke = passes_with(&smoke_extending(1000), 8, |o| {
        o.controls.overdue_listings_judged_with_extended
    });
    let c = &smoke.controls;
    assert!(c.extensions_granted > 0 && c.extended_requests_judged_on_liveness > 0);
    let gdpr = passes_with(&scenario("gdpr-wrong-customer"), 4, |o| {
        let c = &o.controls;
        c.extensions_refused_twice
            .min(c.extensions_refused_unknown_export)
            .min(c.extensions_refused_bad_reason)
    });
    assert!(gdpr.controls.extensions_granted > 0);
}
