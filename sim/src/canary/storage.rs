//! Storage canaries for the harness's own tests: a recording whose audio
//! is gone while it stays listed ([`CanaryBreak::AudioMissing`]), and a
//! playback answered during a deletion of its recording kept and served
//! again ([`CanaryBreak::RefilledDuringDeletion`]).

use super::CanaryBreak;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// What the storage canaries remember of one store incarnation.
#[derive(Default)]
pub(super) struct Remembered {
    /// The first recording this incarnation acknowledged.
    first_acked: Option<u64>,
    /// Recordings whose single deletion is in flight.
    deleting: BTreeSet<u64>,
    /// Playback answers kept: (caller's token, path) -> audio.
    kept: BTreeMap<(String, String), bytes::Bytes>,
}

fn lock(m: &Mutex<Remembered>) -> std::sync::MutexGuard<'_, Remembered> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The recording id in an audio path (own playback or the service route).
fn audio_id(path: &str) -> Option<u64> {
    let rest = path.strip_suffix("/audio")?;
    rest.rsplit('/').next()?.parse().ok()
}

/// Break the store's storage as `how` says.
pub(super) async fn break_storage(
    how: CanaryBreak,
    remembered: &Mutex<Remembered>,
    request: Request,
    next: Next,
) -> Response {
    match how {
        CanaryBreak::AudioMissing => audio_missing(remembered, request, next).await,
        _ => refilled_during_deletion(remembered, request, next).await,
    }
}

async fn audio_missing(remembered: &Mutex<Remembered>, request: Request, next: Next) -> Response {
    use crosstalk_model::api::IngestResponse;
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    if method == http::Method::GET
        && let Some(id) = audio_id(&path)
        && lock(remembered).first_acked == Some(id)
    {
        return crosstalk_service::ApiError::internal("recording without audio").into_response();
    }
    let response = next.run(request).await;
    if method != http::Method::POST || path != "/v1/recordings" || !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    if let Ok(answer) = serde_json::from_slice::<IngestResponse>(&bytes) {
        lock(remembered)
            .first_acked
            .get_or_insert(answer.recording_id.0);
    }
    Response::from_parts(parts, Body::from(bytes))
}

async fn refilled_during_deletion(
    remembered: &Mutex<Remembered>,
    request: Request,
    next: Next,
) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let token = crosstalk_service::bearer_token(request.headers())
        .unwrap_or("")
        .to_string();
    if method == http::Method::DELETE
        && let Some(id) = path
            .strip_prefix("/v1/recordings/")
            .and_then(|id| id.parse::<u64>().ok())
    {
        lock(remembered).deleting.insert(id);
        let response = next.run(request).await;
        lock(remembered).deleting.remove(&id);
        return response;
    }
    let Some(id) = audio_id(&path).filter(|_| method == http::Method::GET) else {
        return next.run(request).await;
    };
    let key = (token, path);
    if let Some(audio) = lock(remembered).kept.get(&key).cloned() {
        return ([(http::header::CONTENT_TYPE, "audio/wav")], audio).into_response();
    }
    let response = next.run(request).await;
    if !response.status().is_success() || !lock(remembered).deleting.contains(&id) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    lock(remembered).kept.insert(key, bytes.clone());
    Response::from_parts(parts, Body::from(bytes))
}
