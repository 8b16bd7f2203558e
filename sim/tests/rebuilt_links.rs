//! Download links over an export's whole life: a link revoked by a rebuild
//! stays dead, and the rebuilt archive's link gets its own allowance and
//! lifetime. Proved by small defects planted in a test-only layer in front
//! of the export service (as the canary does), each of which must fail the
//! run with the link-binding invariant:
//!
//! - an old link of an export that has a newer one is served the newer
//!   archive (the service checks the export's state, not the link's nonce);
//! - every download of a rebuilt link is refused 410 (its count inherited
//!   and used up, or its lifetime counted from the request).
//!
//! The correct build passes, with old links tried again after the rebuild
//! and rebuilt links used to their limit.

mod support;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crosstalk_service::bearer_token;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::world::run_plan;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use support::{Fut, assert_caught, export_layer, first_failure, layered, response_bytes, scenario};

/// The links each (caller, export) was shown in "ready" statuses, oldest
/// first.
#[derive(Default)]
struct Links {
    shown: BTreeMap<(String, u64), Vec<String>>,
}

impl Links {
    /// The (caller, export) whose status showed `link`, and its position.
    fn find(&self, link: &str) -> Option<(&(String, u64), usize)> {
        self.shown
            .iter()
            .find_map(|(key, links)| links.iter().position(|l| l == link).map(|i| (key, i)))
    }
}

type Shared = Arc<Mutex<Links>>;

/// Learn the links a "ready" status shows.
async fn learn(cache: &Shared, caller: String, path: &str, response: Response) -> Response {
    let id = path
        .strip_prefix("/v1/exports/")
        .and_then(|id| id.parse::<u64>().ok());
    let Some(id) = id.filter(|_| response.status() == StatusCode::OK) else {
        return response;
    };
    let (parts, bytes) = response_bytes(response).await;
    let status: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let (Some("ready"), Some(link)) =
        (status["state"].as_str(), status["download_path"].as_str())
    {
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        let links = cache.shown.entry((caller, id)).or_default();
        if !links.iter().any(|l| l == link) {
            links.push(link.to_string());
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A download of an export's older link is served as its newest link.
fn old_link_serves_new_archive(
    State(cache): State<Shared>,
    mut request: Request,
    next: Next,
) -> Fut {
    Box::pin(async move {
        let caller = bearer_token(request.headers())
            .unwrap_or_default()
            .to_string();
        let path = request.uri().path().to_string();
        if request.method() == Method::GET && path.starts_with("/v1/downloads/") {
            let newest = {
                let cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                cache
                    .find(&path)
                    .and_then(|(key, _)| cache.shown.get(key)?.last().cloned())
            };
            if let Some(newest) = newest.filter(|n| *n != path)
                && let Ok(uri) = newest.parse::<Uri>()
            {
                *request.uri_mut() = uri;
            }
            return next.run(request).await;
        }
        let response = next.run(request).await;
        learn(&cache, caller, &path, response).await
    })
}

/// Every download of a rebuilt link (not the first its export showed) is
/// refused as if expired or used up.
fn rebuilt_link_refused(State(cache): State<Shared>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let caller = bearer_token(request.headers())
            .unwrap_or_default()
            .to_string();
        let path = request.uri().path().to_string();
        if request.method() == Method::GET && path.starts_with("/v1/downloads/") {
            let rebuilt = {
                let cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                cache.find(&path).is_some_and(|(_, index)| index > 0)
            };
            if rebuilt {
                let body = r#"{"error":"gone","message":"this download link has expired"}"#;
                return (StatusCode::GONE, body).into_response();
            }
            return next.run(request).await;
        }
        let response = next.run(request).await;
        learn(&cache, caller, &path, response).await
    })
}

#[test]
fn an_old_link_serving_the_rebuilt_archive_is_caught() {
    let outcome = first_failure(
        &scenario("smoke"),
        12,
        export_layer(|inner| layered(inner, Shared::default(), old_link_serves_new_archive)),
    );
    assert_caught(&outcome, Invariant::LinkBinding, "a revoked link served");
}

#[test]
fn a_rebuilt_link_refused_before_its_limit_and_lifetime_is_caught() {
    let outcome = first_failure(
        &scenario("smoke"),
        12,
        export_layer(|inner| layered(inner, Shared::default(), rebuilt_link_refused)),
    );
    assert_caught(&outcome, Invariant::LinkBinding, "a live link refused");
}

#[test]
fn the_correct_build_keeps_old_links_dead_and_rebuilt_links_whole() {
    let scenario = scenario("smoke");
    let (mut dead, mut to_limit) = (0, 0);
    for seed in 0..4 {
        let outcome = run_plan(&Plan::generate(&scenario, seed));
        assert!(outcome.passed(), "seed {seed}: {:#?}", outcome.violations);
        let c = &outcome.controls;
        dead += c.dead_links_tried_again;
        to_limit += c.rebuilt_links_used_to_limit;
    }
    assert!(dead > 0, "no dead link was tried again");
    assert!(to_limit > 0, "no rebuilt link was used to its limit");
}
