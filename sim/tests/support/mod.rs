//! Scaffolding shared by the tests that plant a small defect in a test-only
//! layer in front of a service (`adversary.rs`, `limits.rs`): the shipped
//! scenario with swarm testing off, the first failing seed, the expected
//! violation, and the layer plumbing.
#![allow(dead_code)] // Each test file uses its own part.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::{RunOutcome, Wrappers, run_plan_with};
use std::path::Path;
use std::rc::Rc;

/// A shipped scenario with swarm testing off, so that every seed has every
/// actor the scenario enables.
pub fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    let mut scenario = Scenario::load(&path).expect("shipped scenario loads");
    scenario.swarm = false;
    scenario
}

/// Run seeds of `scenario` with the wrappers `make(seed)` builds until one
/// fails; the first failing outcome.
pub fn first_failure(
    scenario: &Scenario,
    seeds: u64,
    make: impl Fn(u64) -> Wrappers,
) -> RunOutcome {
    for seed in 0..seeds {
        let outcome = run_plan_with(&Plan::generate(scenario, seed), &make(seed));
        if !outcome.violations.is_empty() {
            return outcome;
        }
    }
    panic!("the planted defect went unnoticed for {seeds} seeds");
}

/// Wrappers with only an export-service layer, built by `make`.
pub fn export_layer(make: fn(Router) -> Router) -> impl Fn(u64) -> Wrappers {
    move |_| Wrappers {
        store: None,
        export: Some(Rc::new(make)),
    }
}

/// The failing run has a violation of `invariant` whose detail names `kind`.
pub fn assert_caught(outcome: &RunOutcome, invariant: Invariant, kind: &str) {
    assert!(
        outcome
            .violations
            .iter()
            .any(|v| v.invariant == invariant && v.detail.contains(kind)),
        "seed {}: expected {invariant:?} naming {kind:?}, got {:#?}",
        outcome.seed,
        outcome.violations
    );
}

pub type Fut = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

/// Put `layer` in front of `inner` so that it runs before routing (a
/// rewritten path reaches a different route).
pub fn layered<S>(inner: Router, state: S, layer: fn(State<S>, Request, Next) -> Fut) -> Router
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .fallback_service(inner)
        .layer(axum::middleware::from_fn_with_state(state, layer))
}

/// A request's parts and whole body (its length header dropped, so a
/// rewritten body gets its own).
pub async fn split(request: Request) -> (axum::http::request::Parts, Bytes) {
    let (mut parts, body) = request.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    (parts, bytes)
}

/// A response's parts and whole body (its length header dropped).
pub async fn response_bytes(response: Response) -> (axum::http::response::Parts, Bytes) {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    (parts, bytes)
}
