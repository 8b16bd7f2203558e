//! Always-on speakers upload while their owner's export is being built
//! (`workload/devices.rs`), and the oracle judges each archive by the
//! snapshot it claims. Proved by a small defect planted in a test-only layer
//! in front of the export service: it restamps every archive a worker
//! publishes with the time of publication instead of the time collection
//! began (the shape of a worker that stamps its snapshot when collection
//! ends), so an upload acknowledged during collection is missing from an
//! archive that claims to cover it. The run must fail with an exactness
//! violation; without uploads racing the build it could not. The correct
//! build passes with uploads that raced the build counted.

mod support;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use base64::Engine;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::net::{EPOCH_MS, sim_now_ms};
use crosstalk_sim::plan::Plan;
use crosstalk_sim::world::{Wrappers, run_plan};
use std::io::{Cursor, Read, Write};
use std::rc::Rc;
use support::{Fut, assert_caught, first_failure, layered, scenario, split};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The archive `zipped` with its manifest's snapshot set to `snapshot_at_ms`.
fn restamped(zipped: &[u8], snapshot_at_ms: u64) -> Option<Vec<u8>> {
    let mut input = zip::ZipArchive::new(Cursor::new(zipped)).ok()?;
    let mut output = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    for index in 0..input.len() {
        let mut file = input.by_index(index).ok()?;
        let name = file.name().ok()?.to_string();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        if name == "manifest.json" {
            let mut manifest: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            manifest["snapshot_at_ms"] = serde_json::json!(snapshot_at_ms);
            bytes = serde_json::to_vec_pretty(&manifest).ok()?;
        }
        output.start_file(name, options).ok()?;
        output.write_all(&bytes).ok()?;
    }
    Some(output.finish().ok()?.into_inner())
}

/// A worker's publication, restamped with the service's time now.
fn stamped_at_publication(_: State<()>, request: Request, next: Next) -> Fut {
    Box::pin(async move {
        let path = request.uri().path().to_string();
        if request.method() != Method::POST
            || !(path.starts_with("/v1/internal/jobs/") && path.ends_with("/complete"))
        {
            return next.run(request).await;
        }
        let (parts, bytes) = split(request).await;
        let mut body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let now = EPOCH_MS + sim_now_ms();
        let archive = body["archive_base64"]
            .as_str()
            .and_then(|a| B64.decode(a).ok())
            .and_then(|zipped| restamped(&zipped, now));
        if let Some(archive) = archive {
            body["snapshot_at_ms"] = serde_json::json!(now);
            body["archive_base64"] = serde_json::json!(B64.encode(archive));
        }
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    })
}

#[test]
fn a_snapshot_stamped_when_collection_ends_is_caught() {
    let outcome = first_failure(&scenario("smoke"), 6, |_| Wrappers {
        store: None,
        export: Some(Rc::new(|inner| layered(inner, (), stamped_at_publication))),
    });
    assert_caught(
        &outcome,
        Invariant::Exactness,
        "missing, though its upload was acknowledged by then",
    );
    assert!(outcome.controls.uploads_raced_export_build > 0);
}

#[test]
fn the_correct_build_passes_with_uploads_racing_exports() {
    let mut raced = 0;
    for seed in 0..2 {
        let outcome = run_plan(&Plan::generate(&scenario("smoke"), seed));
        assert!(
            outcome.violations.is_empty(),
            "seed {seed}: {:#?}",
            outcome.violations
        );
        assert!(outcome.controls.ambient_captures > 0, "seed {seed}");
        raced += outcome.controls.uploads_raced_export_build;
    }
    assert!(raced > 0, "no upload raced its owner's export build");
}
