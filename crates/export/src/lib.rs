//! The crosstalk DSAR export service.
//!
//! A data subject asks for their data (GDPR Art. 15), either directly with
//! their store session or through a support ticket verified by a challenge
//! sent to their account ([`tickets`]). Every accepted request is a durable
//! job ([`jobs`]) with a due date. Stateless workers ([`worker`]) claim jobs
//! over HTTP with leases and fencing tokens, collect the subject's
//! recordings from the store's service API with snapshot semantics, build
//! the archive ([`archive`]) and publish it; a worker that lost its lease
//! can never publish. The subject downloads with a link ([`link`]) that is
//! bound to the export and the subject, expires, is limited in downloads,
//! and needs the subject's own session. At every download the service asks
//! the store whether each archived recording still exists: if one was
//! deleted, the archive is revoked and rebuilt. Support agents work tickets
//! through a console ([`agent`]) that cannot send anything to anyone but the
//! ticket's verified subject, and that audits every action.
//!
//! | method | path | who |
//! |---|---|---|
//! | POST | `/v1/exports` | session: request an export of one's own data |
//! | GET | `/v1/exports/{id}` | session of the export's subject |
//! | GET | `/v1/downloads/{token}` | session of the export's subject, valid link |
//! | POST | `/v1/tickets` | anyone: ask for an account's data by email |
//! | POST | `/v1/tickets/{id}/verify` | anyone holding the code sent to the account |
//! | GET | `/v1/agent/tickets` | agent token |
//! | POST | `/v1/agent/tickets/{id}/resend-link` | agent token; no body or `{}` (an `export_id` is refused: 400) |
//! | POST | `/v1/agent/tickets/{id}/manual-verification` | agent token (always refused) |
//! | POST | `/v1/agent/exports/{id}/extend` | agent token |
//! | GET | `/v1/agent/overdue`, `/v1/agent/audit?after=` | agent token |
//! | POST | `/v1/internal/jobs/claim` | worker token |
//! | POST | `/v1/internal/jobs/{id}/renew`, `/complete`, `/fail` | worker token, with the job's fence |

pub mod agent;
pub mod archive;
pub mod fuzzing;
pub mod jobs;
pub mod link;
pub mod store_client;
pub mod tickets;
pub mod worker;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use crosstalk_model::api::{
    AgentTicketView, AuditEntry, ClaimRequest, CompleteJobRequest, ExportState, ExportStatus,
    ExtendRequest, FailJobRequest, FenceRequest, ManualVerificationRequest, ResendLinkRequest,
    TicketRequest, TicketStatus, VerifyTicketRequest,
};
use crosstalk_model::{AccountId, Clock, Entropy, ExportId, sha256_hex};
use crosstalk_service::{ApiError, Bug, JsonBody, bearer_token, json_errors};
use jobs::{ARCHIVES, Job, Origin};
use redb::{Database, ReadableTable, StorageBackend, TableDefinition};
use serde::Deserialize;
use std::fmt::Display;
use std::sync::Arc;
pub use store_client::StoreClient;

const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
const LINK_KEY: &str = "link_mac_key";

/// Settings a deployment chooses. Times are in milliseconds so that a
/// simulation can scale them.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// Bearer token workers present on `/v1/internal/*`.
    pub worker_token: String,
    /// (agent name, bearer token) of every support agent.
    pub agent_tokens: Vec<(String, String)>,
    /// How long a download link stays valid after the archive is ready.
    pub link_ttl_ms: u64,
    /// Downloads allowed per published archive.
    pub max_downloads: u32,
    /// Wrong codes a support ticket takes before it is rejected for good
    /// (after that even the right code is refused).
    pub max_verify_attempts: u32,
    /// How long a worker's claim on a job lasts without renewal.
    pub lease_ms: u64,
    /// Attempts before a job is marked failed; failed attempts back off
    /// exponentially from `retry_backoff_ms` up to `max_backoff_ms`.
    pub max_attempts: u32,
    pub retry_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// The legal deadline after a request, and the one extension allowed.
    pub deadline_ms: u64,
    pub max_extension_ms: u64,
    /// Direct requests per subject within the window.
    pub rate_limit_max: u32,
    pub rate_limit_window_ms: u64,
    /// Requests handled at once before the service answers 503 `overloaded`.
    pub limits: crosstalk_service::ServeLimits,
}

const DAY_MS: u64 = 24 * 3600 * 1000;

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            worker_token: String::new(),
            agent_tokens: Vec::new(),
            link_ttl_ms: 7 * DAY_MS,
            max_downloads: 5,
            max_verify_attempts: tickets::MAX_VERIFY_ATTEMPTS,
            lease_ms: 60_000,
            max_attempts: 30,
            retry_backoff_ms: 500,
            max_backoff_ms: 60_000,
            deadline_ms: 30 * DAY_MS,
            max_extension_ms: 60 * DAY_MS,
            rate_limit_max: 5,
            rate_limit_window_ms: DAY_MS,
            limits: crosstalk_service::ServeLimits::DEFAULT,
        }
    }
}

pub(crate) fn internal(e: impl Display) -> ApiError {
    ApiError::internal(format!("storage error: {e}"))
}

pub struct ExportService {
    pub(crate) db: Database,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) entropy: Arc<dyn Entropy>,
    link_key: Vec<u8>,
    pub(crate) store: StoreClient,
    pub(crate) config: ExportConfig,
    faults: Arc<dyn crosstalk_service::fault_points::FaultPoints>,
    pub(crate) planted: crosstalk_service::Planted,
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (sha256_hex(a.as_bytes()), sha256_hex(b.as_bytes()));
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl ExportService {
    /// SHA-256 over every table of the export database, each in key order
    /// (see [`crosstalk_service::digest`]): equal for equal state, with no
    /// clock read. The simulator folds it into its trace hash.
    pub fn state_digest(&self) -> Result<String, ApiError> {
        let txn = redb::ReadableDatabase::begin_read(&self.db).map_err(internal)?;
        crosstalk_service::digest::StateDigest::new(&txn)
            .table(jobs::META)
            .and_then(|d| d.table(jobs::JOBS))
            .and_then(|d| d.table(jobs::PENDING))
            .and_then(|d| d.table(jobs::ARCHIVES))
            .and_then(|d| d.table(jobs::REQUESTS))
            .and_then(|d| d.table(agent::AUDIT))
            .and_then(|d| d.table(SECRETS))
            .and_then(|d| d.table(tickets::TICKETS))
            .and_then(|d| d.finish())
            .map_err(internal)
    }

    /// Open (or create) the service's database on `backend`; `store` reaches
    /// the recording store's service API.
    pub fn open(
        backend: impl StorageBackend,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        store: StoreClient,
        config: ExportConfig,
    ) -> Result<Self, String> {
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| format!("opening the export database: {e}"))?;
        let link_key = {
            let txn = db.begin_write().map_err(|e| e.to_string())?;
            let key = {
                let mut secrets = txn.open_table(SECRETS).map_err(|e| e.to_string())?;
                let existing = secrets
                    .get(LINK_KEY)
                    .map_err(|e| e.to_string())?
                    .map(|v| v.value().to_vec());
                match existing {
                    Some(key) => key,
                    None => {
                        let mut key = vec![0u8; 32];
                        entropy.fill(&mut key);
                        secrets
                            .insert(LINK_KEY, key.as_slice())
                            .map_err(|e| e.to_string())?;
                        key
                    }
                }
            };
            txn.open_table(jobs::META).map_err(|e| e.to_string())?;
            txn.open_table(jobs::JOBS).map_err(|e| e.to_string())?;
            txn.open_table(jobs::PENDING).map_err(|e| e.to_string())?;
            txn.open_table(jobs::ARCHIVES).map_err(|e| e.to_string())?;
            txn.open_table(jobs::REQUESTS).map_err(|e| e.to_string())?;
            txn.open_table(tickets::TICKETS)
                .map_err(|e| e.to_string())?;
            txn.open_table(agent::AUDIT).map_err(|e| e.to_string())?;
            txn.commit().map_err(|e| e.to_string())?;
            key
        };
        Ok(Self {
            db,
            clock,
            entropy,
            link_key,
            store,
            config,
            faults: crosstalk_service::fault_points::none(),
            planted: crosstalk_service::Planted::none(),
        })
    }

    /// Inject fault points (simulation and fuzzing builds).
    pub fn with_fault_points(
        mut self,
        faults: Arc<dyn crosstalk_service::fault_points::FaultPoints>,
    ) -> Self {
        self.store = self.store.with_fault_points(faults.clone());
        self.faults = faults;
        self
    }

    /// Plant bugs from the catalogue (inert unless built with the
    /// `planted-bugs` feature; see `crosstalk_service::planted`).
    pub fn with_planted(mut self, planted: crosstalk_service::Planted) -> Self {
        self.planted = planted;
        self
    }

    fn fires(&self, point: &'static str) -> bool {
        crosstalk_service::fault_points::fires(&*self.faults, point)
    }

    pub(crate) fn download_path(&self, job: &Job) -> Option<String> {
        match (job.state, job.expires_at_ms, job.link_nonce) {
            (ExportState::Ready, Some(expires_at_ms), Some(nonce)) => {
                let claims = link::LinkClaims {
                    export_id: job.id,
                    subject: job.subject,
                    expires_at_ms,
                    nonce,
                };
                Some(format!(
                    "/v1/downloads/{}",
                    link::mint(&self.link_key, &claims)
                ))
            }
            _ => None,
        }
    }

    pub(crate) fn status(&self, job: &Job) -> ExportStatus {
        let now = self.clock.now_ms();
        ExportStatus {
            export_id: job.id,
            state: job.state,
            requested_at_ms: job.requested_at_ms,
            due_at_ms: job.due_at_ms,
            overdue: job.state != ExportState::Ready && now > job.due_at_ms,
            extension_reason: job.extension_reason.clone(),
            snapshot_at_ms: job.snapshot_at_ms,
            download_path: self.download_path(job),
            expires_at_ms: job.expires_at_ms,
            downloads_left: (job.state == ExportState::Ready)
                .then(|| self.config.max_downloads.saturating_sub(job.downloads)),
            failure: job.failure.clone(),
        }
    }

    /// Accept a direct request from the authenticated `subject` (or return
    /// the open request it duplicates).
    pub fn request_export(&self, subject: AccountId) -> Result<(ExportStatus, bool), ApiError> {
        let (job, duplicate) = self.accept_request(subject, Origin::Direct, true)?;
        Ok((self.status(&job), duplicate))
    }

    /// The status of export `id`, if `subject` is its subject. Someone
    /// else's export is reported exactly like one that does not exist.
    pub fn export_status(
        &self,
        subject: AccountId,
        id: ExportId,
    ) -> Result<ExportStatus, ApiError> {
        match self.load_job(id)? {
            Some(job) if job.subject == subject => Ok(self.status(&job)),
            _ => {
                crosstalk_service::probe!("export.status.not_own");
                Err(ApiError::not_found("no such export"))
            }
        }
    }

    /// The archive behind `token`, for the authenticated `caller`.
    pub async fn download(&self, caller: AccountId, token: &str) -> Result<Vec<u8>, ApiError> {
        let claims = link::verify(&self.link_key, token).map_err(|_| {
            crosstalk_service::probe!("export.download.bad_link");
            ApiError::not_found("no such download")
        })?;
        let job = self
            .load_job(claims.export_id)?
            .ok_or_else(|| ApiError::not_found("no such download"))?;
        if job.subject != claims.subject {
            crosstalk_service::probe!("export.download.subject_mismatch");
            return Err(ApiError::not_found("no such download"));
        }
        // A link is not a credential: the caller must be the subject.
        // Planted unbound-link (Alexa DSAR 2018): whoever holds the link downloads.
        if caller != job.subject && !self.planted.on(Bug::UnboundLink) {
            crosstalk_service::probe!("export.download.foreign_caller_refused");
            return Err(ApiError::forbidden(
                "this download belongs to another account",
            ));
        }
        // A link of an earlier build (before a revocation) no longer works.
        if job.state != ExportState::Ready || job.link_nonce != Some(claims.nonce) {
            crosstalk_service::probe!("export.download.revoked_link");
            return Err(ApiError::gone(
                "this link was revoked; the export is being rebuilt or was replaced",
            ));
        }
        if self.clock.now_ms() >= claims.expires_at_ms {
            crosstalk_service::probe!("export.download.expired");
            return Err(ApiError::gone("this download link has expired"));
        }
        if job.downloads >= self.config.max_downloads {
            crosstalk_service::probe!("export.download.used_up");
            return Err(ApiError::gone("this download link has been used up"));
        }
        // Erasure: every recording in the archive must still exist now. If
        // the store cannot say, refuse rather than risk it.
        let live = if self.planted.on(Bug::DeleteExportRace) {
            // Planted delete-export-race (Twitter 2019, Instagram 2020): the export's own index, which deletion never updates.
            job.recording_ids.clone()
        } else {
            match self.store.live(job.subject, &job.recording_ids).await {
                Ok(live) => live,
                Err(e) => {
                    crosstalk_service::probe!("export.download.live_check_failed");
                    return Err(e);
                }
            }
        };
        if live.len() != job.recording_ids.len() {
            crosstalk_service::probe!("export.download.recordings_deleted");
            self.revoke_and_rebuild(job.id)?;
            return Err(ApiError::gone(
                "recordings in this archive were deleted; it is being rebuilt",
            ));
        }
        let txn = self.db.begin_write().map_err(internal)?;
        let bytes = {
            let mut current = {
                let jobs = txn.open_table(jobs::JOBS).map_err(internal)?;
                let json = jobs
                    .get(job.id.0)
                    .map_err(internal)?
                    .ok_or_else(|| ApiError::internal("job vanished"))?;
                serde_json::from_str::<Job>(json.value()).map_err(internal)?
            };
            // Re-check inside the transaction: a revocation may have won.
            if current.state != ExportState::Ready || current.link_nonce != Some(claims.nonce) {
                crosstalk_service::probe!("export.download.revoked_in_commit");
                return Err(ApiError::gone("this link was revoked"));
            }
            if current.downloads >= self.config.max_downloads {
                crosstalk_service::probe!("export.download.used_up_in_commit");
                return Err(ApiError::gone("this download link has been used up"));
            }
            let bytes = txn
                .open_table(ARCHIVES)
                .map_err(internal)?
                .get(job.id.0)
                .map_err(internal)?
                .ok_or_else(|| ApiError::internal("ready export without archive"))?
                .value()
                .to_vec();
            if current.archive_sha256.as_deref() != Some(sha256_hex(&bytes).as_str()) {
                return Err(ApiError::internal(
                    "stored archive does not match its digest",
                ));
            }
            current.downloads += 1;
            Self::write_job(&txn, &current)?;
            bytes
        };
        txn.commit().map_err(internal)?;
        Ok(bytes)
    }

    async fn authenticate(&self, headers: &HeaderMap) -> Result<AccountId, ApiError> {
        let token = bearer_token(headers)
            .ok_or_else(|| ApiError::unauthorized("missing bearer session"))?;
        self.store.introspect(token).await
    }

    fn agent(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let token =
            bearer_token(headers).ok_or_else(|| ApiError::unauthorized("missing agent token"))?;
        self.config
            .agent_tokens
            .iter()
            .find(|(_, t)| constant_time_eq(t, token))
            .map(|(name, _)| name.clone())
            .ok_or_else(|| {
                crosstalk_service::probe!("export.agent.token_refused");
                ApiError::forbidden("not a support agent")
            })
    }

    fn worker(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let token =
            bearer_token(headers).ok_or_else(|| ApiError::unauthorized("missing worker token"))?;
        if !self.config.worker_token.is_empty()
            && constant_time_eq(&self.config.worker_token, token)
        {
            Ok(())
        } else {
            crosstalk_service::probe!("export.worker.token_refused");
            Err(ApiError::forbidden("not a worker"))
        }
    }

    /// Tell the subject their export is ready, on their own feed (best
    /// effort: the status endpoint shows the link too).
    async fn announce(&self, job: &Job) {
        if self.fires("export.announce.dropped") {
            return; // The subject still sees the link in the export's status.
        }
        if let Some(path) = self.download_path(job) {
            let _ = self
                .store
                .notify(
                    job.subject,
                    "export-ready",
                    &format!("Your data is ready: {path}"),
                )
                .await;
        }
    }
}

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

/// Every code probe (`crosstalk_service::probe!`) in this crate, by name: the
/// decisions a simulation must reach (see `crosstalk_service::probes`). The
/// test `tests/probes.rs` fails if this list and the source disagree.
pub const PROBES: &[&str] = &[
    "export.agent.archive_attachment_refused",
    "export.agent.export_not_ready",
    "export.agent.manual_verification_refused",
    "export.agent.no_such_ticket",
    "export.agent.token_refused",
    "export.agent.unverified_ticket_refused",
    "export.download.bad_link",
    "export.download.expired",
    "export.download.foreign_caller_refused",
    "export.download.live_check_failed",
    "export.download.recordings_deleted",
    "export.download.revoked_in_commit",
    "export.download.revoked_link",
    "export.download.subject_mismatch",
    "export.download.used_up",
    "export.download.used_up_in_commit",
    "export.job.attempt_backed_off",
    "export.job.attempts_exhausted",
    "export.job.fenced_out",
    "export.job.lapsed_lease_reclaimed",
    "export.job.poison_failed",
    "export.job.revoked_for_rebuild",
    "export.publish.archive_mismatch_refused",
    "export.request.duplicate_joined",
    "export.request.rate_limited",
    "export.status.not_own",
    "export.ticket.closed_refused",
    "export.ticket.joined_open_export",
    "export.ticket.rejected_after_attempts",
    "export.ticket.right_code_repeated",
    "export.ticket.verified",
    "export.ticket.wrong_code_refused",
    "export.worker.token_refused",
];
