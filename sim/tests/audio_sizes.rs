//! Captures of real lengths (`plan/data.rs`, `check/audio.rs`): 5 to 15 s
//! of speech (160 to 480 KB), some exactly at the API's limit and some one
//! byte past it. Each test plants, in a test-only layer in front of the
//! store, a defect that real audio sizes bring out, and shows the run fails
//! by the right invariant; the correct build passes with every large
//! capture stored and delivered whole and every oversized one refused:
//!
//! - a response buffer sized for small audio on the service route the
//!   export's workers read (bodies cut at 64 KiB): the workers find the
//!   audio unlike the store's digest and the export fails (liveness);
//! - the same on one's own playback: request integrity;
//! - the same on the export's downloads: the archive is unreadable
//!   (request integrity);
//! - a byte changed in the middle of a long playback (the mark intact):
//!   request integrity, by the bytes;
//! - a body limit set too low on the upload route (413 past 256 KiB): the
//!   store refused audio within the limit (api contract);
//! - a refusal of audio past the limit without the contract's JSON error
//!   (api contract).

mod support;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::{Wrappers, run_plan};
use std::rc::Rc;
use support::{Fut, assert_caught, first_failure, layered, response_bytes, scenario, split};

/// Smoke (swarm off) with many captures of real lengths.
fn long_captures() -> Scenario {
    let mut s = scenario("smoke");
    s.data.long_capture_per_mille = 150;
    s.data.capture_at_limit_per_mille = 30;
    s.data.capture_over_limit_per_mille = 30;
    s
}

fn store_layer(layer: fn(State<()>, Request, Next) -> Fut) -> impl Fn(u64) -> Wrappers {
    move |_| Wrappers {
        store: Some(Rc::new(move |inner: Router| layered(inner, (), layer))),
        export: None,
    }
}

#[test]
fn the_correct_build_stores_and_delivers_long_captures_whole_and_refuses_oversized_ones() {
    let s = long_captures();
    let (mut stored, mut at_limit, mut refused, mut whole) = (0, 0, 0, 0);
    for seed in 0..2 {
        let outcome = run_plan(&Plan::generate(&s, seed));
        assert!(outcome.passed(), "seed {seed}: {:#?}", outcome.violations);
        let c = &outcome.controls;
        stored += c.large_captures_uploaded;
        at_limit += c.captures_at_limit_uploaded;
        refused += c.oversized_captures_refused;
        whole += c.large_captures_delivered_whole;
    }
    assert!(stored > 0 && at_limit > 0 && refused > 0 && whole > 0);
}

/// The answers a layer cuts or alters: the store's service audio route (the
/// export's workers), one's own playback, or the export's downloads.
#[derive(Clone, Copy)]
enum Route {
    ServiceAudio,
    Playback,
    Download,
}

impl Route {
    fn carries(self, request: &Request) -> bool {
        let path = request.uri().path();
        let audio = |prefix: &str| {
            request.method() == Method::GET && path.starts_with(prefix) && path.ends_with("/audio")
        };
        match self {
            Route::ServiceAudio => audio("/v1/service/accounts/"),
            Route::Playback => audio("/v1/recordings/"),
            Route::Download => path.starts_with("/v1/downloads/"),
        }
    }
}

/// Bodies of one route cut at 64 KiB, as a buffer sized for small captures
/// would.
async fn cut_at_64_kib(route: Route, request: Request, next: Next) -> axum::response::Response {
    let cut = route.carries(&request);
    let response = next.run(request).await;
    if !cut {
        return response;
    }
    let (parts, bytes) = response_bytes(response).await;
    let kept = bytes.slice(..bytes.len().min(64 * 1024));
    axum::response::Response::from_parts(parts, Body::from(kept))
}

fn service_audio_cut(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(cut_at_64_kib(Route::ServiceAudio, request, next))
}

fn playback_cut(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(cut_at_64_kib(Route::Playback, request, next))
}

fn download_cut(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(cut_at_64_kib(Route::Download, request, next))
}

#[test]
fn audio_cut_short_on_the_route_the_workers_read_is_caught() {
    let outcome = first_failure(&long_captures(), 3, store_layer(service_audio_cut));
    assert_caught(
        &outcome,
        Invariant::Liveness,
        "does not match the store's digest",
    );
}

#[test]
fn an_archive_cut_short_on_download_is_caught() {
    let outcome = first_failure(&long_captures(), 3, |_| Wrappers {
        store: None,
        export: Some(Rc::new(|inner: Router| layered(inner, (), download_cut))),
    });
    assert_caught(
        &outcome,
        Invariant::RequestIntegrity,
        "not a readable archive",
    );
}

#[test]
fn audio_cut_short_on_playback_is_caught() {
    let outcome = first_failure(&long_captures(), 3, store_layer(playback_cut));
    assert_caught(&outcome, Invariant::RequestIntegrity, "but received []");
}

/// One byte in the middle of a long playback changed; the mark at the end
/// is intact.
fn playback_altered(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let alter = Route::Playback.carries(&request);
        let response = next.run(request).await;
        let (parts, bytes) = response_bytes(response).await;
        let mut bytes = bytes.to_vec();
        if alter && bytes.len() > 128 * 1024 {
            bytes[100_000] ^= 0x40;
        }
        axum::response::Response::from_parts(parts, Body::from(bytes))
    })
}

#[test]
fn a_long_playback_altered_in_the_middle_is_caught() {
    let outcome = first_failure(&long_captures(), 3, store_layer(playback_altered));
    assert_caught(&outcome, Invariant::RequestIntegrity, "not as captured");
}

/// The upload route with a body limit set for small audio: 413 past 256 KiB.
fn upload_limit_too_low(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        if request.method() != Method::POST || request.uri().path() != "/v1/recordings" {
            return next.run(request).await;
        }
        let (parts, bytes) = split(request).await;
        if bytes.len() > 256 * 1024 {
            let error = serde_json::json!({"error": "too_large", "message": "body too large"});
            return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(error)).into_response();
        }
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    })
}

#[test]
fn an_upload_limit_below_the_apis_is_caught() {
    let outcome = first_failure(&long_captures(), 3, store_layer(upload_limit_too_low));
    assert_caught(&outcome, Invariant::ApiContract, "within the limit");
}

/// Audio past the limit refused with a bare 413 (no JSON error).
fn bare_413(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let response = next.run(request).await;
        if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
            return response;
        }
        (StatusCode::PAYLOAD_TOO_LARGE, "too large").into_response()
    })
}

#[test]
fn a_refusal_of_oversized_audio_without_its_json_error_is_caught() {
    let outcome = first_failure(&long_captures(), 3, store_layer(bare_413));
    assert_caught(&outcome, Invariant::ApiContract, "JSON error");
}
