//! Every transcript a person gets back is, character for character, the
//! one their device sent (`Oracle::judge_transcript` for listings, the
//! archive entries' judgement for manifests). People say things with
//! quotes, ampersands, angle brackets, accents, emoji and right-to-left
//! scripts (`plan::PHRASES`); a service that escapes, truncates, re-encodes
//! or normalises a transcript on its way back fails a run. Each defect is
//! planted by a test-only layer in front of the store, as the canary does.

mod support;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::world::{Wrappers, run_plan};
use std::rc::Rc;
use support::{Fut, assert_caught, first_failure, layered, response_bytes, scenario};

/// Rewrite every transcript of a history page with `mangle`.
async fn listing_rewritten(request: Request, next: Next, mangle: fn(&str) -> String) -> Response {
    let listing = request.method() == Method::GET && request.uri().path() == "/v1/recordings";
    let response = next.run(request).await;
    if !listing || response.status() != StatusCode::OK {
        return response;
    }
    let (parts, bytes) = response_bytes(response).await;
    let mut page: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let Some(items) = page["items"].as_array_mut() {
        for item in items {
            let text = item["transcript"].as_str().unwrap_or_default().to_string();
            item["transcript"] = serde_json::json!(mangle(&text));
        }
    }
    let bytes = serde_json::to_vec(&page).unwrap_or_default();
    Response::from_parts(parts, Body::from(bytes))
}

/// A listing that HTML-escapes transcripts (a template's habit).
fn html_escaped(_: State<()>, request: Request, next: Next) -> Fut {
    Box::pin(listing_rewritten(request, next, |text| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }))
}

/// A listing that keeps only ASCII (a lossy encoding on the way out).
fn ascii_only(_: State<()>, request: Request, next: Next) -> Fut {
    Box::pin(listing_rewritten(request, next, |text| {
        text.chars()
            .map(|c| if c.is_ascii() { c } else { '?' })
            .collect()
    }))
}

fn store_layer(layer: fn(State<()>, Request, Next) -> Fut) -> impl Fn(u64) -> Wrappers {
    move |_| Wrappers {
        store: Some(Rc::new(move |inner| layered(inner, (), layer))),
        export: None,
    }
}

#[test]
fn a_listing_that_escapes_transcripts_fails_a_run() {
    let outcome = first_failure(&scenario("smoke"), 5, store_layer(html_escaped));
    assert_caught(
        &outcome,
        Invariant::RequestIntegrity,
        "is not the one its device sent",
    );
}

#[test]
fn a_listing_that_loses_non_ascii_characters_fails_a_run() {
    let outcome = first_failure(&scenario("smoke"), 5, store_layer(ascii_only));
    assert_caught(
        &outcome,
        Invariant::RequestIntegrity,
        "is not the one its device sent",
    );
}

#[test]
fn the_correct_build_passes_with_every_transcript_judged() {
    let outcome = run_plan(&Plan::generate(&scenario("smoke"), 1));
    assert!(outcome.passed(), "{:#?}", outcome.violations);
    assert!(outcome.controls.transcripts_judged_exact > 0);
    assert!(outcome.controls.archive_entries_judged_whole > 0);
}
