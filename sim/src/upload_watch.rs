//! When the store answered each upload, as the simulator saw it at the
//! store's door: a layer right in front of the store's router notes, for
//! every upload answered 200 or 201, the recording id of the answer and the
//! simulated ms the answer left the store (the first such answer per
//! recording). The store received and committed the recording by then, so
//! a snapshot stamped at or after that instant includes it
//! (`check/snapshot.rs`). The simulator's own observation of the wire; the
//! device hears the answer only a network trip later, so the client's ack
//! time alone can never show the very tick the store took the upload in.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Recording id -> when the store first answered its upload (simulated ms).
pub type UploadDoor = Arc<Mutex<BTreeMap<u64, u64>>>;

/// Put the upload watch in front of `router`, noting into `door`.
pub fn watch(router: Router, door: UploadDoor) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let door = door.clone();
            async move { observe(&door, request, next).await }
        },
    ))
}

async fn observe(door: &UploadDoor, request: Request, next: Next) -> Response {
    let upload = request.method() == Method::POST && request.uri().path() == "/v1/recordings";
    let response = next.run(request).await;
    if !upload || !matches!(response.status().as_u16(), 200 | 201) {
        return response;
    }
    let answered_ms = crate::net::sim_now_ms();
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let Some(id) = answer["recording_id"].as_u64() {
        let mut door = door.lock().unwrap_or_else(|p| p.into_inner());
        door.entry(id).or_insert(answered_ms);
    }
    Response::from_parts(parts, Body::from(bytes))
}
