//! The export contract's limits and every archive entry judged whole, each
//! proved by a small defect planted in a test-only layer in front of the
//! export service (as the canary does): a download that ignores the limit,
//! a link that never expires, an archive entry whose transcript is another
//! of the subject's utterances, a 410 for a link just published. Each must
//! fail the run with the right invariant; the correct build passes with
//! every kind of refusal seen and every entry judged.

mod support;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::world::{Wrappers, run_plan, run_plan_with};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read, Write};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use support::{Fut, assert_caught, export_layer, first_failure, layered, response_bytes, scenario};

type Served = Arc<Mutex<BTreeMap<String, Bytes>>>;

fn download_path(request: &Request) -> Option<String> {
    let path = request.uri().path();
    (request.method() == Method::GET && path.starts_with("/v1/downloads/"))
        .then(|| path.to_string())
}

/// Serve the archive a link last served instead of the service's 410 whose
/// message contains `refusal` (the service's own wording of one cause).
async fn serve_again(served: Served, request: Request, next: Next, refusal: &str) -> Response {
    let Some(path) = download_path(&request) else {
        return next.run(request).await;
    };
    let response = next.run(request).await;
    let (parts, bytes) = response_bytes(response).await;
    let mut served = served.lock().unwrap_or_else(|p| p.into_inner());
    if parts.status == StatusCode::OK {
        served.insert(path, bytes.clone());
    } else if parts.status == StatusCode::GONE
        && String::from_utf8_lossy(&bytes).contains(refusal)
        && let Some(archive) = served.get(&path)
    {
        return ([(header::CONTENT_TYPE, "application/zip")], archive.clone()).into_response();
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn limit_ignored(State(served): State<Served>, request: Request, next: Next) -> Fut {
    Box::pin(serve_again(served, request, next, "used up"))
}

fn never_expires(State(served): State<Served>, request: Request, next: Next) -> Fut {
    Box::pin(serve_again(served, request, next, "expired"))
}

#[test]
fn a_download_past_the_limit_is_caught() {
    let outcome = first_failure(
        &scenario("smoke"),
        5,
        export_layer(|inner| layered(inner, Served::default(), limit_ignored)),
    );
    assert_caught(&outcome, Invariant::LinkBinding, "download limit");
}

#[test]
fn a_link_that_never_expires_is_caught() {
    let outcome = first_failure(
        &scenario("smoke"),
        5,
        export_layer(|inner| layered(inner, Served::default(), never_expires)),
    );
    assert_caught(&outcome, Invariant::LinkBinding, "expired link");
}

// --- Defect: a 410 for a link just published. -----------------------------

fn fresh_link_gone(
    State(seen): State<Arc<Mutex<BTreeSet<String>>>>,
    request: Request,
    next: Next,
) -> Fut {
    Box::pin(async move {
        let Some(path) = download_path(&request) else {
            return next.run(request).await;
        };
        if seen.lock().unwrap_or_else(|p| p.into_inner()).insert(path) {
            let body = r#"{"error":"gone","message":"this download link has expired"}"#;
            return (
                StatusCode::GONE,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
        }
        next.run(request).await
    })
}

#[test]
fn a_fresh_link_answered_gone_is_caught() {
    let outcome = first_failure(
        &scenario("smoke"),
        5,
        export_layer(|inner| layered(inner, Arc::default(), fresh_link_gone)),
    );
    assert_caught(&outcome, Invariant::LinkBinding, "a live link refused");
}

// --- Defect: an entry's transcript is another of the subject's utterances. --

/// The archive with the transcripts of its first two manifest entries
/// swapped (each entry's audio, id and digest left as they were).
fn swap_transcripts(archive: &[u8]) -> Option<Vec<u8>> {
    let mut zip = zip::ZipArchive::new(Cursor::new(archive)).ok()?;
    let mut entries = Vec::new();
    for index in 0..zip.len() {
        let mut file = zip.by_index(index).ok()?;
        let name = file.name().ok()?.to_string();
        let mut data = Vec::new();
        file.read_to_end(&mut data).ok()?;
        entries.push((name, data));
    }
    let (_, manifest) = entries.iter_mut().find(|(n, _)| n == "manifest.json")?;
    let mut value: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    let recordings = value["recordings"].as_array_mut()?;
    if recordings.len() < 2 {
        return None;
    }
    let first = recordings[0]["transcript"].clone();
    recordings[0]["transcript"] = recordings[1]["transcript"].clone();
    recordings[1]["transcript"] = first;
    *manifest = serde_json::to_vec_pretty(&value).ok()?;
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        writer.start_file(name, options).ok()?;
        writer.write_all(&data).ok()?;
    }
    Some(writer.finish().ok()?.into_inner())
}

fn mixed_entries(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        if download_path(&request).is_none() {
            return next.run(request).await;
        }
        let (parts, bytes) = response_bytes(next.run(request).await).await;
        match swap_transcripts(&bytes) {
            Some(mixed) if parts.status == StatusCode::OK => {
                Response::from_parts(parts, Body::from(mixed))
            }
            _ => Response::from_parts(parts, Body::from(bytes)),
        }
    })
}

#[test]
fn an_entry_with_another_utterances_transcript_is_caught() {
    let outcome = first_failure(
        &scenario("smoke"),
        5,
        export_layer(|inner| layered(inner, (), mixed_entries)),
    );
    assert_caught(
        &outcome,
        Invariant::Exactness,
        "but its transcript is utterance",
    );
}

// --- The correct build. -----------------------------------------------------

#[test]
fn the_correct_build_passes_with_every_refusal_seen() {
    let mut past_limit = 0;
    let mut past_expiry = 0;
    for seed in 0..3 {
        let outcome = run_plan(&Plan::generate(&scenario("smoke"), seed));
        assert!(
            outcome.passed(),
            "seed {seed}: {:#?} {:?}",
            outcome.violations,
            outcome.infra_errors
        );
        let c = &outcome.controls;
        assert!(c.downloads_judged_against_limits > 0 && c.gone_answers_judged > 0);
        assert!(c.archive_entries_judged_whole > 0);
        past_limit += c.downloads_refused_past_limit;
        past_expiry += c.downloads_refused_after_expiry;
    }
    assert!(
        past_limit > 0 && past_expiry > 0,
        "{past_limit} {past_expiry}"
    );
}

// --- Defect: a reset of one's own device answered "no such device". -------

fn reset_not_found(State(_): State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let path = request.uri().path();
        if request.method() == Method::POST
            && path.starts_with("/v1/devices/")
            && path.ends_with("/reset")
        {
            let body = r#"{"error":"not_found","message":"no such device"}"#;
            return (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
        }
        next.run(request).await
    })
}

#[test]
fn a_reset_of_ones_own_device_answered_not_found_is_caught() {
    let scenario = scenario("device-resale");
    for seed in 0..5 {
        let wrappers = Wrappers {
            store: Some(Rc::new(|inner| layered(inner, (), reset_not_found))),
            export: None,
        };
        let outcome = run_plan_with(&Plan::generate(&scenario, seed), &wrappers);
        if !outcome.violations.is_empty() {
            assert_caught(
                &outcome,
                Invariant::RequestIntegrity,
                "never offered for sale",
            );
            return;
        }
    }
    panic!("a reset answered 404 went unnoticed for 5 seeds");
}
