//! Two test-only breaks of the store at its page clamp, on the wire.
//!
//! [`CanaryBreak::DeleteAllFirstPage`](super::CanaryBreak::DeleteAllFirstPage):
//! "delete all my history" deletes only the first page of the history
//! (the first `MAX_PAGE_ITEMS` recordings in id order, one by one through
//! the store itself) and answers with those, as a deletion loop that forgot
//! to follow its cursor would. [`CanaryBreak::ListingFirstPageOnly`](super::CanaryBreak::ListingFirstPageOnly):
//! a history page that is full at the clamp comes back without its cursor,
//! so a walk ends after one page. The oracle must fail the run from the
//! watermark and its own ground truth alone.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use crosstalk_model::api::{DeleteResponse, RecordingPage};
use crosstalk_store::MAX_PAGE_ITEMS;
use tower::ServiceExt;

/// Serve `request` through a store broken as `how` says (one of this
/// module's two breaks); `store` is the store's own router, unwrapped.
pub(super) async fn break_paging(
    how: super::CanaryBreak,
    store: Router,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    if how == super::CanaryBreak::ListingFirstPageOnly {
        let listing = method == http::Method::GET && path == "/v1/recordings";
        let response = next.run(request).await;
        if listing && response.status().is_success() {
            return drop_cursor_of_full_page(response).await;
        }
        return response;
    }
    if method != http::Method::POST || path != "/v1/recordings/delete" {
        return next.run(request).await;
    }
    let credential = request.headers().get(http::header::AUTHORIZATION).cloned();
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    if !is_delete_all(&method, &path, &bytes) {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    delete_first_page(store, credential).await
}

/// Whether `request` is "delete all my history".
fn is_delete_all(method: &http::Method, path: &str, body: &[u8]) -> bool {
    *method == http::Method::POST
        && path == "/v1/recordings/delete"
        && serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|v| v.get("all") == Some(&serde_json::Value::Bool(true)))
}

/// Delete the caller's first page of recordings one by one through
/// `store`, and answer as if that were everything.
async fn delete_first_page(store: Router, credential: Option<http::HeaderValue>) -> Response {
    let call = |method: http::Method, uri: String| {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(credential) = &credential {
            request = request.header(http::header::AUTHORIZATION, credential.clone());
        }
        request.body(Body::empty())
    };
    let Ok(list) = call(
        http::Method::GET,
        format!("/v1/recordings?limit={MAX_PAGE_ITEMS}"),
    ) else {
        return crosstalk_service::ApiError::internal("canary: no listing").into_response();
    };
    let listed = store.clone().oneshot(list).await.into_ok_response();
    if !listed.status().is_success() {
        return listed;
    }
    let bytes = axum::body::to_bytes(listed.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let Ok(page) = serde_json::from_slice::<RecordingPage>(&bytes) else {
        return crosstalk_service::ApiError::internal("canary: unreadable page").into_response();
    };
    let mut deleted = Vec::new();
    for item in page.items {
        let Ok(delete) = call(
            http::Method::DELETE,
            format!("/v1/recordings/{}", item.id.0),
        ) else {
            continue;
        };
        let answer = store.clone().oneshot(delete).await.into_ok_response();
        if answer.status().is_success() {
            deleted.push(item.id);
        } else {
            return answer;
        }
    }
    (http::StatusCode::OK, axum::Json(DeleteResponse { deleted })).into_response()
}

/// A history page full at the clamp, without its cursor.
async fn drop_cursor_of_full_page(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let rewritten = serde_json::from_slice::<RecordingPage>(&bytes)
        .ok()
        .filter(|page| page.items.len() >= MAX_PAGE_ITEMS)
        .and_then(|mut page| {
            page.next_cursor = None;
            serde_json::to_vec(&page).ok()
        });
    Response::from_parts(
        parts,
        Body::from(rewritten.unwrap_or_else(|| bytes.to_vec())),
    )
}

/// A router's answer (its error type is `Infallible`).
trait IntoOkResponse {
    fn into_ok_response(self) -> Response;
}

impl IntoOkResponse for Result<Response, std::convert::Infallible> {
    fn into_ok_response(self) -> Response {
        match self {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}
