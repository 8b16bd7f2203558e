//! The agent's books and the customer who calls back, each proved by a
//! small defect planted in a test-only layer in front of the export service
//! (as the canary does): an audit log that drops the refused actions, an
//! overdue queue that lists only pending requests (not failed ones), and a
//! console that reports a closed subject's link as sent (as one that
//! re-sends to whoever holds the ticket's address now would). Each must
//! make the run fail with the right invariant; the correct build passes
//! with every check's positive control above zero.

mod support;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::{RunOutcome, Wrappers, run_plan};
use std::path::Path;
use std::rc::Rc;
use support::{Fut, assert_caught, first_failure, layered, response_bytes, scenario};

/// Wrappers with `layer` in front of the export service.
fn export_defect(layer: fn(State<()>, Request, Next) -> Fut) -> impl Fn(u64) -> Wrappers {
    move |_| Wrappers {
        store: None,
        export: Some(Rc::new(move |inner| layered(inner, (), layer))),
    }
}

/// Rewrite the JSON array answered to GET `path`, keeping only the items
/// `keep` accepts.
async fn filter_listing(
    request: Request,
    next: Next,
    path: &str,
    keep: fn(&serde_json::Value) -> bool,
) -> Response {
    let listing = request.method() == Method::GET && request.uri().path() == path;
    let response = next.run(request).await;
    if !listing || response.status() != StatusCode::OK {
        return response;
    }
    let (parts, bytes) = response_bytes(response).await;
    let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let kept: Vec<serde_json::Value> = items.into_iter().filter(keep).collect();
    let body = serde_json::to_vec(&kept).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}

// --- Defect: an audit log that drops refusals. ----------------------------

fn audit_without_refusals(_: State<()>, request: Request, next: Next) -> Fut {
    Box::pin(filter_listing(request, next, "/v1/agent/audit", |entry| {
        !entry["outcome"]
            .as_str()
            .unwrap_or_default()
            .starts_with("refused")
    }))
}

#[test]
fn an_audit_log_that_drops_refusals_is_caught() {
    let outcome = first_failure(
        &scenario("gdpr-wrong-customer"),
        4,
        export_defect(audit_without_refusals),
    );
    assert_caught(
        &outcome,
        Invariant::AgentContainment,
        "missing from the audit log",
    );
}

// --- Defect: an overdue queue that lists only pending requests. -----------

fn overdue_only_pending(_: State<()>, request: Request, next: Next) -> Fut {
    Box::pin(filter_listing(
        request,
        next,
        "/v1/agent/overdue",
        |status| status["state"] == "pending",
    ))
}

/// Smoke as shipped, swarm testing on: its first seeds have a poisoned
/// subject whose failed request the agent did not extend, past its due
/// date before the run ends (`faults/poison.rs`).
fn smoke_as_shipped() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.toml");
    Scenario::load(&path).expect("shipped scenario loads")
}

#[test]
fn an_overdue_queue_that_omits_failed_requests_is_caught() {
    let outcome = first_failure(&smoke_as_shipped(), 4, export_defect(overdue_only_pending));
    assert_caught(&outcome, Invariant::Liveness, "omits exp-");
}

// --- Defect: a closed subject's link reported sent. -----------------------

fn resend_to_someone(_: State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let resend = request.uri().path().ends_with("/resend-link");
        let response = next.run(request).await;
        if !resend || response.status() != StatusCode::NOT_FOUND {
            return response;
        }
        let (parts, bytes) = response_bytes(response).await;
        if !String::from_utf8_lossy(&bytes).contains("no longer exists") {
            return Response::from_parts(parts, Body::from(bytes));
        }
        let mut sent = Response::new(Body::from(r#"{"sent_to":"the ticket's verified subject"}"#));
        *sent.headers_mut() = parts.headers;
        sent
    })
}

#[test]
fn a_closed_subjects_link_resent_to_someone_is_caught() {
    let outcome = first_failure(
        &scenario("recycled-identity"),
        4,
        export_defect(resend_to_someone),
    );
    assert_caught(
        &outcome,
        Invariant::AgentContainment,
        "the link went to someone else",
    );
}

// --- The correct build passes, every control above zero. ------------------

/// Run seeds of `name` on the correct build until `control` is above zero;
/// every run must pass.
fn passes_with(scenario: &Scenario, seeds: u64, control: fn(&RunOutcome) -> u64) -> RunOutcome {
    let name = &scenario.name;
    for seed in 0..seeds {
        let outcome = run_plan(&Plan::generate(scenario, seed));
        assert!(
            outcome.passed(),
            "{name} seed {seed}: {:#?}",
            outcome.violations
        );
        if control(&outcome) > 0 {
            return outcome;
        }
    }
    panic!("{name}: the control stayed at zero for {seeds} seeds");
}

#[test]
fn the_correct_console_keeps_its_books() {
    let gdpr = passes_with(&scenario("gdpr-wrong-customer"), 4, |o| {
        o.controls.audit_refusals_judged
    });
    assert!(gdpr.controls.audit_entries_judged > gdpr.controls.audit_refusals_judged);
    assert!(gdpr.controls.overdue_listings_judged > 0);
    passes_with(&smoke_as_shipped(), 4, |o| {
        o.controls.overdue_exports_required
    });
    let recycled = passes_with(&scenario("recycled-identity"), 4, |o| {
        o.controls.callbacks_after_recycling_refused
    });
    assert!(recycled.controls.callbacks_after_recycling > 0);
}
