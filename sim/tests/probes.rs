//! The probes a real attacker and real bad timing would try, each proved by
//! a small defect planted in a test-only layer in front of a service (as
//! the canary does): a ticket whose wrong codes are never counted (the
//! layer answers them itself, so the service never sees them and the
//! brute force finally hits), an email lookup that falls back to the
//! nearest address (a ticket for an address nobody holds challenges its
//! neighbour), and a message confirmation refused because its recipient
//! closed their account answered as delivered. Each must fail
//! the run with the right invariant and the right kind of probe; the
//! correct build passes with every kind made and refused.

mod support;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crosstalk_sim::check::Invariant;
use crosstalk_sim::check::lockout::{
    NEAR_MISS, RIGHT_CODE_BY_ATTACKER, RIGHT_CODE_BY_VICTIM, WRONG_CODE,
};
use crosstalk_sim::check::recycled::AFTER_RECYCLE;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::world::{Wrappers, run_plan};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use support::{Fut, assert_caught, export_layer, first_failure, layered, scenario, split};

/// Whether `code` has the form of the codes the service issues (16 hex
/// digits): anything else is surely wrong.
fn looks_issued(code: &str) -> bool {
    code.len() == 16 && code.bytes().all(|b| b.is_ascii_hexdigit())
}

// --- Defect: wrong ticket codes are never counted. -------------------------

/// Answer a verification whose code is surely wrong with the service's own
/// refusal, without letting the service count it.
fn wrong_codes_uncounted(State(()): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let path = request.uri().path().to_string();
        if request.method() != Method::POST
            || !path.starts_with("/v1/tickets/")
            || !path.ends_with("/verify")
        {
            return next.run(request).await;
        }
        let (parts, bytes) = split(request).await;
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let code = body["code"].as_str().unwrap_or_default().trim().to_string();
        if !looks_issued(&code) {
            let refusal =
                serde_json::json!({"error": "forbidden", "message": "verification failed"});
            return (StatusCode::FORBIDDEN, axum::Json(refusal)).into_response();
        }
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    })
}

fn uncounted(inner: axum::Router) -> axum::Router {
    layered(inner, (), wrong_codes_uncounted)
}

#[test]
fn a_brute_force_that_finally_hits_is_caught() {
    let outcome = first_failure(&scenario("gdpr-wrong-customer"), 6, export_layer(uncounted));
    assert!(
        outcome
            .violations
            .iter()
            .any(|v| v.invariant == Invariant::AgentContainment
                && (v.detail.contains(RIGHT_CODE_BY_ATTACKER)
                    || v.detail.contains(RIGHT_CODE_BY_VICTIM))),
        "seed {}: {:#?}",
        outcome.seed,
        outcome.violations
    );
}

// --- Defect: a confirmation to a closed recipient answered as delivered. ----

/// Turn the store's 410 to a message confirmation into a 200.
fn gone_confirmed(State(()): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let confirm = request.method() == Method::POST
            && request.uri().path().starts_with("/v1/messages/")
            && request.uri().path().ends_with("/confirm");
        let response: Response = next.run(request).await;
        if confirm && response.status() == StatusCode::GONE {
            return (StatusCode::OK, axum::Json(serde_json::json!({}))).into_response();
        }
        response
    })
}

#[test]
fn a_confirmation_delivered_after_the_address_was_recycled_is_caught() {
    let outcome = first_failure(&scenario("recycled-identity"), 6, |_| Wrappers {
        store: Some(Rc::new(|inner| layered(inner, (), gone_confirmed))),
        export: None,
    });
    assert_caught(&outcome, Invariant::Isolation, AFTER_RECYCLE);
}

// --- Defect: an email lookup that falls back to the nearest address. -------

type Emails = Arc<Mutex<BTreeSet<String>>>;

/// Learn every address signed up; a service lookup of an address nobody
/// holds asks again for the nearest address learnt at or after it.
fn nearest_lookup(State(emails): State<Emails>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let path = request.uri().path().to_string();
        if request.method() == Method::POST && path == "/v1/accounts" {
            let (parts, bytes) = split(request).await;
            let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if let Some(email) = body["email"].as_str() {
                let mut emails = emails.lock().unwrap_or_else(|p| p.into_inner());
                emails.insert(email.to_ascii_lowercase());
            }
            return next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
        }
        if request.method() != Method::GET || path != "/v1/service/lookup" {
            return next.run(request).await;
        }
        let query = request.uri().query().unwrap_or_default().to_string();
        let (parts, _) = request.into_parts();
        let asked = query
            .strip_prefix("email=")
            .unwrap_or_default()
            .replace("%40", "@");
        let nearest = {
            let emails = emails.lock().unwrap_or_else(|p| p.into_inner());
            emails.range(asked.clone()..).next().cloned()
        };
        let mut parts = parts;
        if let Some(nearest) = nearest.filter(|n| *n != asked) {
            let uri = format!("/v1/service/lookup?email={}", nearest.replace('@', "%40"));
            if let Ok(uri) = uri.parse() {
                parts.uri = uri;
            }
        }
        next.run(Request::from_parts(parts, Body::empty())).await
    })
}

#[test]
fn a_challenge_sent_to_the_nearest_address_is_caught() {
    let outcome = first_failure(&scenario("gdpr-wrong-customer"), 6, |_| Wrappers {
        store: Some(Rc::new(|inner| {
            layered(inner, Emails::default(), nearest_lookup)
        })),
        export: None,
    });
    assert_caught(&outcome, Invariant::AgentContainment, NEAR_MISS);
}

// --- The correct build. ------------------------------------------------------

#[test]
fn the_correct_build_passes_with_every_probe_made_and_refused() {
    let mut refused = std::collections::BTreeMap::new();
    for (name, seeds) in [("gdpr-wrong-customer", 0..2), ("recycled-identity", 0..2)] {
        let scenario = scenario(name);
        for seed in seeds {
            let outcome = run_plan(&Plan::generate(&scenario, seed));
            assert!(
                outcome.passed(),
                "{name} seed {seed}: {:#?}",
                outcome.violations
            );
            for (kind, a) in &outcome.controls.probes {
                assert_eq!(a.attempted, a.refused, "{name} seed {seed}: {kind}");
                *refused.entry(*kind).or_insert(0) += a.refused;
            }
        }
    }
    for kind in [
        WRONG_CODE,
        RIGHT_CODE_BY_ATTACKER,
        RIGHT_CODE_BY_VICTIM,
        NEAR_MISS,
        AFTER_RECYCLE,
    ] {
        assert!(
            refused.get(kind).copied().unwrap_or(0) > 0,
            "{kind}: {refused:?}"
        );
    }
}
