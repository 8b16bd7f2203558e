//! A test-only break of the store's notification feed, on the wire.
//!
//! [`CanaryBreak::FeedCursorAsCount`](super::CanaryBreak::FeedCursorAsCount):
//! a read of the feed after a cursor (`?after=SEQ`) is answered as if `SEQ`
//! were how many notifications the client had already seen: the store's
//! whole feed with its first `SEQ` items skipped. Sequence numbers count
//! every account's notifications, so after the first read a person sees
//! little or nothing new. The oracle must fail the run from the two reads
//! of one feed alone (`check/feed.rs`).

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crosstalk_model::api::Notification;

/// Serve `request`, a read of the feed, with its cursor taken for a count.
pub(super) async fn cursor_as_count(request: Request, next: Next) -> Response {
    let after = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("after=")))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if after == 0 {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(whole) = "/v1/notifications?after=0".parse() else {
        return crosstalk_service::ApiError::internal("canary: no feed uri").into_response();
    };
    parts.uri = whole;
    let response = next.run(Request::from_parts(parts, body)).await;
    if !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let Ok(notes) = serde_json::from_slice::<Vec<Notification>>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let skipped: Vec<Notification> = notes.into_iter().skip(after).collect();
    let json = serde_json::to_vec(&skipped).unwrap_or_default();
    let mut response = Response::from_parts(parts, Body::from(json));
    response.headers_mut().remove(http::header::CONTENT_LENGTH);
    response
}
