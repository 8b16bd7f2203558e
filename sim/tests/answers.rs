//! Every answer the simulator's clients receive is judged by the one
//! oracle (`check/replies.rs`), not only the fuzz target's: an error with
//! a body that is not the JSON error format, an answer to an
//! authenticated request that a shared cache may store, a refusal as
//! overloaded while the service was not, and one whose `Retry-After` is
//! not the configured seconds, each fail a run; the correct
//! build passes with each check's positive control counted.
//!
//! Each defect is planted by a test-only layer in front of a service, as
//! the canary does.

mod support;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::check::replies::shared_cache_may_store_authorized;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::world::{Wrappers, run_plan};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use support::{Fut, assert_caught, first_failure, layered, scenario};

fn store_layer(make: fn(Router) -> Router) -> impl Fn(u64) -> Wrappers {
    move |_| Wrappers {
        store: Some(Rc::new(make)),
        export: None,
    }
}

// --- Defect: a not-found answered in plain text. --------------------------

fn plain_not_found(_: State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let response = next.run(request).await;
        if response.status() != StatusCode::NOT_FOUND {
            return response;
        }
        (StatusCode::NOT_FOUND, "no such recording").into_response()
    })
}

#[test]
fn an_error_answered_in_plain_text_fails_a_simulated_run() {
    let outcome = first_failure(
        &scenario("smoke"),
        5,
        store_layer(|inner| layered(inner, (), plain_not_found)),
    );
    assert_caught(
        &outcome,
        Invariant::ApiContract,
        "content type \"text/plain",
    );
}

// --- Defect: audio a shared cache may keep. -----------------------------

fn public_audio(_: State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let audio = request.uri().path().ends_with("/audio");
        let mut response = next.run(request).await;
        if audio && response.status() == StatusCode::OK {
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            );
        }
        response
    })
}

#[test]
fn audio_a_shared_cache_may_keep_fails_a_simulated_run() {
    let outcome = first_failure(
        &scenario("smoke"),
        5,
        store_layer(|inner| layered(inner, (), public_audio)),
    );
    assert_caught(
        &outcome,
        Invariant::RequestIntegrity,
        "shared cache may store",
    );
}

#[test]
fn what_a_shared_cache_may_store_follows_rfc_9111() {
    for storable in [
        "public",
        "public, max-age=60",
        "max-age=60, s-maxage=600",
        "must-revalidate, max-age=5",
        "private=\"set-cookie\", public",
    ] {
        assert!(shared_cache_may_store_authorized(storable), "{storable}");
    }
    for kept_out in [
        "",
        "no-store",
        "private",
        "max-age=60",
        "public, no-store",
        "Private, public",
        "no-cache, public",
    ] {
        assert!(!shared_cache_may_store_authorized(kept_out), "{kept_out}");
    }
}

// --- Defect: an in-flight count that leaks. -------------------------------

/// Refuses one request in 40 as overloaded, whatever the load: what a
/// service whose count of requests in flight leaked does once the leak
/// reached its bound (here sooner, and only now and then, so that the
/// clients' retries still get through).
fn leaky_count(State(seen): State<Arc<AtomicU64>>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        if seen.fetch_add(1, Ordering::Relaxed) % 40 == 39 {
            return crosstalk_service::overloaded(crosstalk_service::ServeLimits {
                max_in_flight: 256,
                retry_after_s: 1,
            });
        }
        next.run(request).await
    })
}

#[test]
fn a_refusal_as_overloaded_below_the_bound_fails_a_simulated_run() {
    let outcome = first_failure(&scenario("smoke"), 5, |_| Wrappers {
        store: None,
        export: Some(Rc::new(|inner| {
            layered(inner, Arc::new(AtomicU64::new(0)), leaky_count)
        })),
    });
    assert_caught(&outcome, Invariant::ApiContract, "refused as overloaded");
}

/// Refuses the third request for a person's export as overloaded, once,
/// asking the client to wait in milliseconds where the contract says
/// seconds.
fn retry_after_in_ms(State(seen): State<Arc<AtomicU64>>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let exports = request.uri().path().starts_with("/v1/exports");
        if exports && seen.fetch_add(1, Ordering::Relaxed) == 2 {
            return crosstalk_service::overloaded(crosstalk_service::ServeLimits {
                max_in_flight: 256,
                retry_after_s: 1000,
            });
        }
        next.run(request).await
    })
}

#[test]
fn a_retry_after_in_the_wrong_unit_fails_a_simulated_run() {
    let outcome = first_failure(&scenario("smoke"), 3, |_| Wrappers {
        store: None,
        export: Some(Rc::new(|inner| {
            layered(inner, Arc::new(AtomicU64::new(0)), retry_after_in_ms)
        })),
    });
    assert_caught(&outcome, Invariant::ApiContract, "Retry-After: \"1000\"");
}

// --- The correct build. -------------------------------------------------

#[test]
fn the_correct_build_passes_with_every_answer_judged() {
    let outcome = run_plan(&Plan::generate(&scenario("smoke"), 1));
    assert!(outcome.passed(), "{:#?}", outcome.violations);
    let c = &outcome.controls;
    assert!(c.error_bodies_judged > 0, "{c:?}");
    assert!(c.cache_headers_judged > 0, "{c:?}");
    assert_eq!(c.error_bodies_malformed, 0);
}
