//! The export jobs' contract, judged at the doors (`check/leases.rs`,
//! `check/tickets.rs`), and the power loss inside a publication
//! (`faults/publish_crash.rs`).
//!
//! Each check is shown to see, with a small defect planted in a test-only
//! layer in front of the export service: a reclaim that hands the lapsed
//! lease's fence out again (and lets its stalled holder act under the new
//! one) fails "fence granted twice"; a published export handed to a worker
//! again fails "ready export claimed again"; a ticket accepted without
//! asking the store who the address belongs to fails "ticket contract".
//! The correct build passes the same seeds with every control counted.

mod support;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::world::run_plan;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use support::{
    Fut, assert_caught, export_layer, first_failure, layered, response_bytes, scenario, split,
};

/// What the fence-keeping layer learned, per export: the first fence the
/// service granted, and the latest.
#[derive(Default)]
struct Fences {
    first: BTreeMap<u64, u64>,
    latest: BTreeMap<u64, u64>,
}

type SharedFences = Arc<Mutex<Fences>>;

/// The export a worker call names (`/v1/internal/jobs/{id}/…`), if any.
fn job_call(method: &Method, path: &str) -> Option<u64> {
    if *method != Method::POST {
        return None;
    }
    let rest = path.strip_prefix("/v1/internal/jobs/")?;
    rest.split_once('/')?.0.parse().ok()
}

/// A JSON body with its `fence` replaced.
fn with_fence(bytes: &Bytes, fence: u64) -> Bytes {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    value["fence"] = fence.into();
    Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
}

/// A reclaim that keeps the fence: every claim of an export is answered
/// with the first fence it was ever granted, and every worker call under
/// that fence acts under the latest one (the stalled holder renews and
/// publishes as if it held the new lease).
fn reclaim_keeps_fence(State(fences): State<SharedFences>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let (parts, bytes) = split(request).await;
        let claim = parts.uri.path() == "/v1/internal/jobs/claim";
        let export = job_call(&parts.method, parts.uri.path());
        let bytes = match export {
            Some(id) if !claim => {
                let fences = fences.lock().unwrap_or_else(|p| p.into_inner());
                let sent: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                match (fences.first.get(&id), fences.latest.get(&id)) {
                    (Some(first), Some(latest)) if sent["fence"].as_u64() == Some(*first) => {
                        with_fence(&bytes, *latest)
                    }
                    _ => bytes,
                }
            }
            _ => bytes,
        };
        let response = next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
        if !claim || response.status() != StatusCode::OK {
            return response;
        }
        let (parts, bytes) = response_bytes(response).await;
        let granted: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let (Some(id), Some(fence)) = (granted["export_id"].as_u64(), granted["fence"].as_u64())
        else {
            return Response::from_parts(parts, Body::from(bytes));
        };
        let first = {
            let mut fences = fences.lock().unwrap_or_else(|p| p.into_inner());
            fences.latest.insert(id, fence);
            *fences.first.entry(id).or_insert(fence)
        };
        Response::from_parts(parts, Body::from(with_fence(&bytes, first)))
    })
}

#[test]
fn a_reclaim_that_keeps_the_lapsed_fence_is_caught() {
    let outcome = first_failure(
        &scenario("chaos"),
        6,
        export_layer(|inner| layered(inner, SharedFences::default(), reclaim_keeps_fence)),
    );
    assert_caught(&outcome, Invariant::ApiContract, "fence granted twice");
}

/// What the re-claiming layer learned: exports published (with the claim
/// that led to them), and those already handed out again.
#[derive(Default)]
struct Published {
    claims: BTreeMap<u64, serde_json::Value>,
    ready: Vec<u64>,
}

type SharedPublished = Arc<Mutex<Published>>;

/// Finished exports are claimed again: when no job is pending (204), the
/// next claim is answered with an export published earlier, once each.
fn ready_reclaimed(State(seen): State<SharedPublished>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let claim = request.uri().path() == "/v1/internal/jobs/claim";
        let published = job_call(request.method(), request.uri().path())
            .filter(|_| request.uri().path().ends_with("/complete"));
        let response = next.run(request).await;
        if let Some(id) = published
            && response.status() == StatusCode::OK
        {
            seen.lock()
                .unwrap_or_else(|p| p.into_inner())
                .ready
                .push(id);
        }
        if claim && response.status() == StatusCode::OK {
            let (parts, bytes) = response_bytes(response).await;
            let granted: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if let Some(id) = granted["export_id"].as_u64() {
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                seen.claims.insert(id, granted);
            }
            return Response::from_parts(parts, Body::from(bytes));
        }
        if !(claim && response.status() == StatusCode::NO_CONTENT) {
            return response;
        }
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.ready.is_empty() {
            return response;
        }
        let id = seen.ready.remove(0);
        let Some(mut granted) = seen.claims.get(&id).cloned() else {
            return response;
        };
        granted["fence"] = (granted["fence"].as_u64().unwrap_or(0) + 1).into();
        let json = [(header::CONTENT_TYPE, "application/json")];
        (StatusCode::OK, json, granted.to_string()).into_response()
    })
}

#[test]
fn a_ready_export_claimed_again_is_caught() {
    let outcome = first_failure(
        &scenario("smoke"),
        4,
        export_layer(|inner| layered(inner, SharedPublished::default(), ready_reclaimed)),
    );
    assert_caught(
        &outcome,
        Invariant::ApiContract,
        "ready export claimed again",
    );
}

/// Accept every third ticket without asking the store anything, as a
/// service that takes a failed lookup for an unknown address does.
fn ticket_without_lookup(
    State(count): State<Arc<Mutex<u64>>>,
    request: Request,
    next: Next,
) -> Fut {
    Box::pin(async move {
        if request.method() == Method::POST && request.uri().path() == "/v1/tickets" {
            let mut count = count.lock().unwrap_or_else(|p| p.into_inner());
            *count += 1;
            if *count % 3 == 1 {
                let json = [(header::CONTENT_TYPE, "application/json")];
                let body = format!(
                    "{{\"ticket_id\":{},\"state\":\"awaiting_verification\",\"export_id\":null}}",
                    1_000_000 + *count
                );
                return (StatusCode::ACCEPTED, json, body).into_response();
            }
        }
        next.run(request).await
    })
}

#[test]
fn a_ticket_accepted_without_its_lookup_is_caught() {
    let outcome = first_failure(
        &scenario("gdpr-wrong-customer"),
        4,
        export_layer(|inner| layered(inner, Arc::new(Mutex::new(0)), ticket_without_lookup)),
    );
    assert_caught(&outcome, Invariant::ApiContract, "ticket contract");
}

/// Each job's lease end as the layer last granted it, and the lease's
/// length (learned from each claim: its end minus now).
type SharedExpiries = Arc<Mutex<BTreeMap<u64, (u64, u64)>>>;

/// A renewal counted from the lease's old end instead of from now: every
/// renewal's answer says the lease ends one lease after the end the last
/// claim or renewal granted.
fn renew_from_expiry(State(ends): State<SharedExpiries>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let path = request.uri().path().to_string();
        let job = job_call(request.method(), &path);
        let response = next.run(request).await;
        let renewal = path.ends_with("/renew");
        if response.status() != StatusCode::OK || !(renewal || path.ends_with("/claim")) {
            return response;
        }
        let (parts, bytes) = response_bytes(response).await;
        let mut body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let granted = body["lease_expires_at_ms"].as_u64().unwrap_or(0);
        let now = crosstalk_sim::net::EPOCH_MS + crosstalk_sim::net::sim_now_ms();
        let export = job.or_else(|| body["export_id"].as_u64()).unwrap_or(0);
        let mut ends = ends.lock().unwrap_or_else(|p| p.into_inner());
        let (end, lease) = match (renewal, ends.get(&export)) {
            (true, Some(&(old_end, lease))) => (old_end + lease, lease),
            _ => (granted, granted.saturating_sub(now)),
        };
        ends.insert(export, (end, lease));
        body["lease_expires_at_ms"] = serde_json::json!(end);
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        Response::from_parts(parts, Body::from(bytes))
    })
}

#[test]
fn a_renewal_counted_from_the_old_expiry_is_caught() {
    let outcome = first_failure(
        &scenario("chaos"),
        4,
        export_layer(|inner| layered(inner, SharedExpiries::default(), renew_from_expiry)),
    );
    assert_caught(&outcome, Invariant::ApiContract, "granted a lease until");
}

#[test]
fn the_correct_build_passes_with_the_jobs_controls_counted() {
    let outcome = run_plan(&Plan::generate(&scenario("chaos"), 0));
    assert!(outcome.passed(), "{:#?}", outcome.violations);
    let c = &outcome.controls;
    assert!(c.claims_judged_for_a_fresh_fence > 0);
    assert!(c.exports_claimed_again > 0, "no export was claimed again");
    assert!(c.claims_judged_against_publication > 0);
    assert!(c.tickets_judged_against_lookups > 0);
    assert!(c.lease_grants_judged > 0);
}

#[test]
fn a_power_loss_inside_a_publication_leaves_exports_downloadable() {
    let outcome = run_plan(&Plan::generate(&scenario("store-crash"), 0));
    assert!(outcome.passed(), "{:#?}", outcome.violations);
    let c = &outcome.controls;
    assert!(c.publication_power_losses_armed > 0, "no power loss armed");
    assert!(c.exports_completed > 0);
}
