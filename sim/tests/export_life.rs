//! An export's whole life after it is first ready: a deletion revokes the
//! archive and the subject gets a rebuilt one under a new link. Proved by a
//! small defect planted in a test-only layer in front of the export service
//! (as the canary does): a status that keeps offering a link the service
//! already refused as revoked (a cached "ready" that never learns of the
//! revocation, as when the rebuild is never queued). The run must fail
//! with the liveness invariant; the correct build passes with archives
//! revoked, rebuilt and downloaded, and the revoked links judged.
//!
//! The lease contract likewise: a layer that answers a worker's refused
//! publication (409, fenced out) as accepted, as a service that ignores a
//! lapsed lease does, must fail the run ("lease contract"); the correct
//! build passes with stalled workers' publications refused.

mod support;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crosstalk_service::bearer_token;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::world::run_plan;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use support::{Fut, assert_caught, export_layer, first_failure, layered, response_bytes, scenario};

/// What the stale-status layer learned: per (caller, export id), the last
/// "ready" status body and its link; which link belongs to which; and the
/// exports whose link was refused 410 (their status frozen from then on).
#[derive(Default)]
struct StatusCache {
    ready: BTreeMap<(String, u64), Bytes>,
    link_of: BTreeMap<String, (String, u64)>,
    frozen: BTreeSet<(String, u64)>,
}

type Shared = Arc<Mutex<StatusCache>>;

fn status_export_id(method: &Method, path: &str) -> Option<u64> {
    let id = path.strip_prefix("/v1/exports/")?;
    (*method == Method::GET).then(|| id.parse().ok())?
}

/// Once a link of an export was refused 410, answer every later status of
/// that export with the last "ready" status (the dead link again).
fn stale_after_refusal(State(cache): State<Shared>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let caller = bearer_token(request.headers())
            .unwrap_or_default()
            .to_string();
        let path = request.uri().path().to_string();
        let export = status_export_id(request.method(), &path);
        if let Some(id) = export {
            let cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            let key = (caller.clone(), id);
            if cache.frozen.contains(&key)
                && let Some(body) = cache.ready.get(&key)
            {
                let json = [(header::CONTENT_TYPE, "application/json")];
                return (StatusCode::OK, json, body.clone()).into_response();
            }
        }
        let response = next.run(request).await;
        let (parts, bytes) = response_bytes(response).await;
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = export
            && parts.status == StatusCode::OK
        {
            let status: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if let (Some("ready"), Some(link)) =
                (status["state"].as_str(), status["download_path"].as_str())
            {
                cache.ready.insert((caller.clone(), id), bytes.clone());
                cache.link_of.insert(link.to_string(), (caller, id));
            }
        } else if parts.status == StatusCode::GONE
            && let Some(key) = cache.link_of.get(&path).cloned()
        {
            cache.frozen.insert(key);
        }
        Response::from_parts(parts, Body::from(bytes))
    })
}

#[test]
fn a_revoked_link_offered_again_is_caught() {
    let outcome = first_failure(
        &scenario("deletion-vs-export"),
        8,
        export_layer(|inner| layered(inner, Shared::default(), stale_after_refusal)),
    );
    assert_caught(
        &outcome,
        Invariant::Liveness,
        "a revoked link offered again",
    );
}

/// Answer every refused publication (409) as accepted.
fn lapsed_publication_accepted(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let publication =
            request.method() == Method::POST && request.uri().path().ends_with("/complete");
        let response = next.run(request).await;
        if publication && response.status() == StatusCode::CONFLICT {
            return (StatusCode::OK, "{}").into_response();
        }
        response
    })
}

#[test]
fn a_publication_accepted_after_its_lease_lapsed_is_caught() {
    let outcome = first_failure(
        &scenario("chaos"),
        10,
        export_layer(|inner| layered(inner, (), lapsed_publication_accepted)),
    );
    assert_caught(&outcome, Invariant::ApiContract, "lease contract");
}

#[test]
fn the_correct_build_refuses_publications_after_a_lapsed_lease() {
    let scenario = scenario("chaos");
    // The witness: the first chaos seed from 4 on where a worker stalls past
    // its lease (seed 4 no longer had one once the live-check probe's power
    // losses joined chaos's plans).
    let outcome = (4..24)
        .map(|seed| run_plan(&Plan::generate(&scenario, seed)))
        .find(|outcome| {
            assert!(outcome.passed(), "{:#?}", outcome.violations);
            outcome.controls.publications_after_lease_lapsed > 0
        })
        .expect("a worker stalled past its lease in one of chaos seeds 4..24");
    let c = &outcome.controls;
    assert!(c.publications_judged_against_lease > 0);
    assert_eq!(
        c.lapsed_publications_refused,
        c.publications_after_lease_lapsed
    );
}

#[test]
fn the_correct_build_rebuilds_revoked_archives() {
    let scenario = scenario("deletion-vs-export");
    let outcome = run_plan(&Plan::generate(&scenario, 1));
    assert!(outcome.passed(), "{:#?}", outcome.violations);
    let c = &outcome.controls;
    assert!(c.archives_revoked > 0, "no archive was revoked");
    assert!(c.revoked_links_judged > 0, "no revoked link was judged");
    assert!(
        c.rebuilt_archives_downloaded > 0,
        "no rebuilt archive was downloaded"
    );
}
