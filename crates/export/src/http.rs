//! The export service's HTTP API: the axum [`router`] and its handlers
//! (authenticate, call one `ExportService` operation, shape the reply).
//! The route table is in the crate's documentation (`lib.rs`).

use crate::service::ExportService;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use crosstalk_model::ExportId;
use crosstalk_model::api::{
    AgentTicketView, AuditEntry, ClaimRequest, CompleteJobRequest, ExportStatus, ExtendRequest,
    FailJobRequest, FenceRequest, ManualVerificationRequest, ResendLinkRequest, TicketRequest,
    TicketStatus, VerifyTicketRequest,
};
use crosstalk_service::{ApiError, JsonBody, json_errors};
use serde::Deserialize;
use std::sync::Arc;

/// Largest archive a worker may publish, in bytes of base64 body.
pub const MAX_PUBLISH_BYTES: usize = 96 * 1024 * 1024;

/// The export service's HTTP API.
pub fn router(service: Arc<ExportService>) -> Router {
    let internal_routes = Router::new()
        .route("/v1/internal/jobs/claim", post(claim))
        .route("/v1/internal/jobs/{id}/renew", post(renew))
        .route("/v1/internal/jobs/{id}/complete", post(complete))
        .route("/v1/internal/jobs/{id}/fail", post(fail))
        .layer(DefaultBodyLimit::max(MAX_PUBLISH_BYTES));
    Router::new()
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/v1/exports", post(request_export))
        .route("/v1/exports/{id}", get(export_status))
        .route("/v1/downloads/{token}", get(download))
        .route("/v1/tickets", post(open_ticket))
        .route("/v1/tickets/{id}/verify", post(verify_ticket))
        .route("/v1/agent/tickets", get(agent_tickets))
        .route("/v1/agent/tickets/{id}/resend-link", post(agent_resend))
        .route(
            "/v1/agent/tickets/{id}/manual-verification",
            post(agent_manual),
        )
        .route("/v1/agent/exports/{id}/extend", post(agent_extend))
        .route("/v1/agent/overdue", get(agent_overdue))
        .route("/v1/agent/audit", get(agent_audit))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .merge(internal_routes)
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::map_response(crosstalk_service::no_store))
        .with_state(service)
}

type Svc = State<Arc<ExportService>>;

async fn request_export(State(service): Svc, headers: HeaderMap) -> Result<Response, ApiError> {
    let subject = service.authenticate(&headers).await?;
    let (status, duplicate) = service.request_export(subject)?;
    let code = if duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((code, Json(status)).into_response())
}

async fn export_status(
    State(service): Svc,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Json<ExportStatus>, ApiError> {
    let subject = service.authenticate(&headers).await?;
    service.export_status(subject, ExportId(id)).map(Json)
}

async fn download(
    State(service): Svc,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let caller = service.authenticate(&headers).await?;
    let bytes = service.download(caller, &token).await?;
    Ok(([(header::CONTENT_TYPE, "application/zip")], bytes).into_response())
}

async fn open_ticket(
    State(service): Svc,
    JsonBody(body): JsonBody<TicketRequest>,
) -> Result<Response, ApiError> {
    let status = service
        .open_ticket(&body.claimed_email, &body.message)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}

async fn verify_ticket(
    State(service): Svc,
    Path(id): Path<u64>,
    JsonBody(body): JsonBody<VerifyTicketRequest>,
) -> Result<Json<TicketStatus>, ApiError> {
    service.verify_ticket(id, &body.code).await.map(Json)
}

async fn agent_tickets(
    State(service): Svc,
    headers: HeaderMap,
) -> Result<Json<Vec<AgentTicketView>>, ApiError> {
    service.agent(&headers)?;
    Ok(Json(
        service.tickets()?.iter().map(|t| t.agent_view()).collect(),
    ))
}

/// The resend's optional body: nothing (as clients sent before the body
/// existed) means the default; anything else must be a JSON
/// [`ResendLinkRequest`].
fn resend_body(headers: &HeaderMap, body: &[u8]) -> Result<ResendLinkRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ResendLinkRequest::default());
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

async fn agent_resend(
    State(service): Svc,
    headers: HeaderMap,
    Path(id): Path<u64>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let agent = service.agent(&headers)?;
    let body = resend_body(&headers, &body)?;
    service
        .agent_resend_link_with(&agent, id, body.export_id)
        .await?;
    Ok(Json(serde_json::json!({"sent_to": "the ticket's verified subject"})).into_response())
}

async fn agent_manual(
    State(service): Svc,
    headers: HeaderMap,
    Path(id): Path<u64>,
    JsonBody(body): JsonBody<ManualVerificationRequest>,
) -> Result<Response, ApiError> {
    let agent = service.agent(&headers)?;
    match service.agent_manual_verification(&agent, id, &body.facts)? {
        // Only a planted weak-identity build ever gets here.
        Some(status) => Ok(Json(status).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

async fn agent_extend(
    State(service): Svc,
    headers: HeaderMap,
    Path(id): Path<u64>,
    JsonBody(body): JsonBody<ExtendRequest>,
) -> Result<Json<ExportStatus>, ApiError> {
    let agent = service.agent(&headers)?;
    service.agent_extend(&agent, ExportId(id), &body.reason)?;
    let job = service
        .load_job(ExportId(id))?
        .ok_or_else(|| ApiError::not_found("no such export"))?;
    Ok(Json(service.status(&job)))
}

async fn agent_overdue(
    State(service): Svc,
    headers: HeaderMap,
) -> Result<Json<Vec<ExportStatus>>, ApiError> {
    service.agent(&headers)?;
    service.agent_overdue().map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AfterParams {
    after: Option<u64>,
}

async fn agent_audit(
    State(service): Svc,
    headers: HeaderMap,
    Query(params): Query<AfterParams>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    service.agent(&headers)?;
    service.audit_log(params.after.unwrap_or(0)).map(Json)
}

async fn claim(
    State(service): Svc,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ClaimRequest>,
) -> Result<Response, ApiError> {
    service.worker(&headers)?;
    if body.worker.is_empty() || body.worker.len() > 64 {
        return Err(ApiError::bad_request("worker name must be 1 to 64 bytes"));
    }
    match service.claim(&body.worker)? {
        Some(job) => Ok(Json(job).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

async fn renew(
    State(service): Svc,
    headers: HeaderMap,
    Path(id): Path<u64>,
    JsonBody(body): JsonBody<FenceRequest>,
) -> Result<Response, ApiError> {
    service.worker(&headers)?;
    let expires = service.renew(ExportId(id), body.fence)?;
    Ok(Json(serde_json::json!({"lease_expires_at_ms": expires})).into_response())
}

async fn complete(
    State(service): Svc,
    headers: HeaderMap,
    Path(id): Path<u64>,
    JsonBody(body): JsonBody<CompleteJobRequest>,
) -> Result<Json<ExportStatus>, ApiError> {
    service.worker(&headers)?;
    let archive = base64::engine::general_purpose::STANDARD
        .decode(&body.archive_base64)
        .map_err(|e| ApiError::bad_request(format!("archive_base64 is not base64: {e}")))?;
    let job = service.publish(
        ExportId(id),
        body.fence,
        body.snapshot_at_ms,
        body.recording_ids,
        &archive,
    )?;
    service.announce(&job).await;
    Ok(Json(service.status(&job)))
}

async fn fail(
    State(service): Svc,
    headers: HeaderMap,
    Path(id): Path<u64>,
    JsonBody(body): JsonBody<FailJobRequest>,
) -> Result<Response, ApiError> {
    service.worker(&headers)?;
    service.fail_attempt(ExportId(id), body.fence, &body.reason)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
