//! The crosstalk DSAR export service.
//!
//! A data subject asks for their data (GDPR Art. 15). The request becomes a
//! job in a redb queue; a worker collects the subject's recordings from the
//! recording store's service API, packages them into a zip archive with a
//! manifest ([`archive`]), keeps the archive, and issues a download link
//! ([`link`]) that works only for the subject's own authenticated session,
//! only before it expires.
//!
//! The subject is identified by the store: every user-facing request carries
//! the user's store session, which this service introspects through the
//! store's service API. The export service never holds passwords or a copy of
//! the account table.
//!
//! | method | path | who |
//! |---|---|---|
//! | POST | `/v1/exports` | session: request an export of one's own data |
//! | GET | `/v1/exports/{id}` | session of the export's subject |
//! | GET | `/v1/downloads/{token}` | session of the export's subject, valid link |

pub mod archive;
pub mod fuzzing;
pub mod link;

use archive::ArchiveItem;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use crosstalk_model::api::{
    ErrorBody, ExportState, ExportStatus, IntrospectRequest, IntrospectResponse, RecordingPage,
};
use crosstalk_model::{AccountId, Clock, Entropy, ExportId, sha256_hex};
use crosstalk_service::{ApiError, HttpClient, bearer_token, json_errors};
use http_body_util::Full;
use redb::{Database, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition};
use serde::{Deserialize, Serialize};
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
const JOBS: TableDefinition<u64, &str> = TableDefinition::new("jobs");
/// Export ids waiting for a worker, in request order.
const PENDING: TableDefinition<u64, ()> = TableDefinition::new("pending");
const ARCHIVES: TableDefinition<u64, &[u8]> = TableDefinition::new("archives");

const NEXT_EXPORT: &str = "next_export_id";
const LINK_KEY: &str = "link_mac_key";

/// Settings a deployment chooses.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// Bearer token this service presents to the store's service API.
    pub store_service_token: String,
    /// How long a download link stays valid after the archive is ready.
    pub link_ttl_ms: u64,
    /// How long an idle worker waits before looking for work again.
    pub worker_poll_ms: u64,
    /// Collection attempts before a job is marked failed. Failed attempts
    /// back off exponentially from `worker_poll_ms` up to `max_backoff_ms`.
    pub max_attempts: u32,
    pub max_backoff_ms: u64,
    /// Recordings requested per page from the store.
    pub page_items: usize,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            store_service_token: String::new(),
            link_ttl_ms: 7 * 24 * 3600 * 1000,
            worker_poll_ms: 500,
            max_attempts: 30,
            max_backoff_ms: 10_000,
            page_items: 50,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Job {
    id: ExportId,
    subject: AccountId,
    state: ExportState,
    requested_at_ms: u64,
    attempts: u32,
    snapshot_at_ms: Option<u64>,
    expires_at_ms: Option<u64>,
    link_nonce: Option<[u8; 16]>,
    archive_sha256: Option<String>,
    failure: Option<String>,
}

fn internal(e: impl Display) -> ApiError {
    ApiError::internal(format!("storage error: {e}"))
}

pub struct ExportService {
    db: Database,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    link_key: Vec<u8>,
    store: HttpClient,
    config: ExportConfig,
}

impl ExportService {
    /// Open (or create) the service's database on `backend`. `store` is a
    /// client connected to the recording store.
    pub fn open(
        backend: impl StorageBackend,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        store: HttpClient,
        config: ExportConfig,
    ) -> Result<Self, String> {
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| format!("opening the export database: {e}"))?;
        let link_key = {
            let txn = db.begin_write().map_err(|e| e.to_string())?;
            let key = {
                let mut secrets = txn.open_table(SECRETS).map_err(|e| e.to_string())?;
                let existing =
                    secrets.get(LINK_KEY).map_err(|e| e.to_string())?.map(|v| v.value().to_vec());
                match existing {
                    Some(key) => key,
                    None => {
                        let mut key = vec![0u8; 32];
                        entropy.fill(&mut key);
                        secrets.insert(LINK_KEY, key.as_slice()).map_err(|e| e.to_string())?;
                        key
                    }
                }
            };
            txn.open_table(META).map_err(|e| e.to_string())?;
            txn.open_table(JOBS).map_err(|e| e.to_string())?;
            txn.open_table(PENDING).map_err(|e| e.to_string())?;
            txn.open_table(ARCHIVES).map_err(|e| e.to_string())?;
            txn.commit().map_err(|e| e.to_string())?;
            key
        };
        Ok(Self { db, clock, entropy, link_key, store, config })
    }

    fn load_job(&self, id: ExportId) -> Result<Option<Job>, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let jobs = txn.open_table(JOBS).map_err(internal)?;
        match jobs.get(id.0).map_err(internal)? {
            Some(json) => serde_json::from_str(json.value()).map(Some).map_err(internal),
            None => Ok(None),
        }
    }

    fn save_job(&self, job: &Job, archive: Option<&[u8]>, pending: bool) -> Result<(), ApiError> {
        let txn = self.db.begin_write().map_err(internal)?;
        {
            let json = serde_json::to_string(job).map_err(internal)?;
            txn.open_table(JOBS).map_err(internal)?.insert(job.id.0, json.as_str()).map_err(internal)?;
            let mut queue = txn.open_table(PENDING).map_err(internal)?;
            if pending {
                queue.insert(job.id.0, ()).map_err(internal)?;
            } else {
                queue.remove(job.id.0).map_err(internal)?;
            }
            if let Some(bytes) = archive {
                txn.open_table(ARCHIVES).map_err(internal)?.insert(job.id.0, bytes).map_err(internal)?;
            }
        }
        txn.commit().map_err(internal)
    }

    /// Accept a request from `subject`; the job is durable before this returns.
    pub fn request_export(&self, subject: AccountId) -> Result<ExportStatus, ApiError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin_write().map_err(internal)?;
        let id = {
            let mut meta = txn.open_table(META).map_err(internal)?;
            let id = meta.get(NEXT_EXPORT).map_err(internal)?.map(|v| v.value()).unwrap_or(1);
            meta.insert(NEXT_EXPORT, id + 1).map_err(internal)?;
            id
        };
        let job = Job {
            id: ExportId(id),
            subject,
            state: ExportState::Pending,
            requested_at_ms: now,
            attempts: 0,
            snapshot_at_ms: None,
            expires_at_ms: None,
            link_nonce: None,
            archive_sha256: None,
            failure: None,
        };
        {
            let json = serde_json::to_string(&job).map_err(internal)?;
            txn.open_table(JOBS).map_err(internal)?.insert(id, json.as_str()).map_err(internal)?;
            txn.open_table(PENDING).map_err(internal)?.insert(id, ()).map_err(internal)?;
        }
        txn.commit().map_err(internal)?;
        Ok(self.status(&job))
    }

    fn status(&self, job: &Job) -> ExportStatus {
        let download_path = match (job.state, job.expires_at_ms, job.link_nonce) {
            (ExportState::Ready, Some(expires_at_ms), Some(nonce)) => {
                let claims = link::LinkClaims { export_id: job.id, subject: job.subject, expires_at_ms, nonce };
                Some(format!("/v1/downloads/{}", link::mint(&self.link_key, &claims)))
            }
            _ => None,
        };
        ExportStatus {
            export_id: job.id,
            state: job.state,
            requested_at_ms: job.requested_at_ms,
            snapshot_at_ms: job.snapshot_at_ms,
            download_path,
            expires_at_ms: job.expires_at_ms,
            failure: job.failure.clone(),
        }
    }

    /// The status of export `id`, if `subject` is its subject. Someone
    /// else's export is reported exactly like one that does not exist.
    pub fn export_status(&self, subject: AccountId, id: ExportId) -> Result<ExportStatus, ApiError> {
        match self.load_job(id)? {
            Some(job) if job.subject == subject => Ok(self.status(&job)),
            _ => Err(ApiError::not_found("no such export")),
        }
    }

    /// The archive behind `token`, for the authenticated `caller`.
    pub fn download(&self, caller: AccountId, token: &str) -> Result<Vec<u8>, ApiError> {
        let claims = link::verify(&self.link_key, token)
            .map_err(|_| ApiError::not_found("no such download"))?;
        let job = self.load_job(claims.export_id)?.ok_or_else(|| ApiError::not_found("no such download"))?;
        // The token must be the one minted for this job (a token of a job
        // rebuilt under a new nonce stops working) ...
        if job.subject != claims.subject || job.link_nonce != Some(claims.nonce) {
            return Err(ApiError::not_found("no such download"));
        }
        // ... and the caller must be the subject. A link is not a credential.
        if caller != job.subject {
            return Err(ApiError::forbidden("this download belongs to another account"));
        }
        if job.state != ExportState::Ready {
            return Err(ApiError::not_found("no such download"));
        }
        if self.clock.now_ms() >= claims.expires_at_ms {
            return Err(ApiError::gone("this download link has expired"));
        }
        let txn = self.db.begin_read().map_err(internal)?;
        let archives = txn.open_table(ARCHIVES).map_err(internal)?;
        let bytes = archives
            .get(job.id.0)
            .map_err(internal)?
            .ok_or_else(|| ApiError::internal("ready export without archive"))?
            .value()
            .to_vec();
        if job.archive_sha256.as_deref() != Some(sha256_hex(&bytes).as_str()) {
            return Err(ApiError::internal("stored archive does not match its digest"));
        }
        Ok(bytes)
    }

    fn next_pending(&self) -> Result<Option<Job>, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let queue = txn.open_table(PENDING).map_err(internal)?;
        let first = queue.first().map_err(internal)?.map(|(k, _)| k.value());
        drop(queue);
        drop(txn);
        match first {
            Some(id) => self.load_job(ExportId(id)),
            None => Ok(None),
        }
    }

    async fn store_get(&self, path: &str) -> Result<Bytes, String> {
        let request = http::Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.config.store_service_token))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = self.store.send(request).await.map_err(|e| e.to_string())?;
        if response.status() != StatusCode::OK {
            return Err(format!("store answered {} for {path}", response.status()));
        }
        Ok(response.into_body())
    }

    /// Collect every recording `job.subject` had at `snapshot_at_ms`.
    async fn collect(&self, job: &Job, snapshot_at_ms: u64) -> Result<Vec<ArchiveItem>, String> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!(
                "/v1/service/accounts/{}/recordings?limit={}",
                job.subject.0, self.config.page_items
            );
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page: RecordingPage = serde_json::from_slice(&self.store_get(&path).await?)
                .map_err(|e| format!("malformed page from store: {e}"))?;
            // Defence in depth: a page for anyone else fails the job loudly.
            if page.account_id != job.subject {
                return Err(format!(
                    "store returned a page for {} while collecting {}",
                    page.account_id, job.subject
                ));
            }
            for view in page.items {
                if view.received_at_ms > snapshot_at_ms {
                    continue;
                }
                let audio_path = format!("/v1/service/accounts/{}/recordings/{}/audio", job.subject.0, view.id.0);
                let audio = self.store_get(&audio_path).await?.to_vec();
                if sha256_hex(&audio) != view.audio_sha256 {
                    return Err(format!("audio of {} does not match the store's digest", view.id));
                }
                items.push(ArchiveItem { recording: view, audio });
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(items)
    }

    /// Run one job to completion (or record the failed attempt).
    async fn process(&self, mut job: Job) -> Result<(), ApiError> {
        let snapshot_at_ms = self.clock.now_ms();
        job.attempts += 1;
        match self.collect(&job, snapshot_at_ms).await {
            Ok(items) => {
                let bytes = archive::build_archive(job.subject, job.id, snapshot_at_ms, &items)
                    .map_err(ApiError::internal)?;
                let mut nonce = [0u8; 16];
                self.entropy.fill(&mut nonce);
                job.state = ExportState::Ready;
                job.snapshot_at_ms = Some(snapshot_at_ms);
                job.expires_at_ms = Some(self.clock.now_ms().saturating_add(self.config.link_ttl_ms));
                job.link_nonce = Some(nonce);
                job.archive_sha256 = Some(sha256_hex(&bytes));
                self.save_job(&job, Some(&bytes), false)
            }
            Err(reason) if job.attempts >= self.config.max_attempts => {
                job.state = ExportState::Failed;
                job.failure = Some(reason);
                self.save_job(&job, None, false)
            }
            Err(_) => self.save_job(&job, None, true),
        }
    }

    /// The worker loop: take the oldest pending job, run it, repeat; sleep
    /// when there is nothing to do. Runs until its task is dropped.
    pub async fn run_worker(self: Arc<Self>) {
        let idle = Duration::from_millis(self.config.worker_poll_ms.max(1));
        loop {
            let job = self.next_pending().ok().flatten();
            match job {
                Some(job) => {
                    let id = job.id;
                    let failed = self.process(job).await.is_err();
                    let attempts = self.load_job(id).ok().flatten().filter(|j| j.state == ExportState::Pending);
                    if let Some(job) = attempts.filter(|j| j.attempts > 0) {
                        // Back off before retrying a job that keeps failing.
                        let exponent = job.attempts.saturating_sub(1).min(16);
                        let backoff = (self.config.worker_poll_ms << exponent).min(self.config.max_backoff_ms);
                        tokio::time::sleep(Duration::from_millis(backoff.max(1))).await;
                    } else if failed {
                        tokio::time::sleep(idle).await;
                    }
                }
                None => tokio::time::sleep(idle).await,
            }
        }
    }

    async fn authenticate(&self, headers: &HeaderMap) -> Result<AccountId, ApiError> {
        let token = bearer_token(headers).ok_or_else(|| ApiError::unauthorized("missing bearer session"))?;
        let body = serde_json::to_vec(&IntrospectRequest { session_token: token.to_string() })
            .map_err(internal)?;
        let request = http::Request::post("/v1/service/introspect")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.config.store_service_token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(internal)?;
        let response = self
            .store
            .send(request)
            .await
            .map_err(|e| ApiError::unavailable(format!("identity service unreachable: {e}")))?;
        match response.status() {
            StatusCode::OK => {
                let body: IntrospectResponse = serde_json::from_slice(response.body())
                    .map_err(|e| ApiError::internal(format!("malformed introspection: {e}")))?;
                Ok(body.account_id)
            }
            StatusCode::UNAUTHORIZED => Err(ApiError::unauthorized("unknown or expired session")),
            other => {
                let detail = serde_json::from_slice::<ErrorBody>(response.body())
                    .map(|e| e.message)
                    .unwrap_or_default();
                Err(ApiError::unavailable(format!("identity service answered {other}: {detail}")))
            }
        }
    }
}

/// The export service's HTTP API.
pub fn router(service: Arc<ExportService>) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route("/v1/exports", post(request_export))
        .route("/v1/exports/{id}", get(export_status))
        .route("/v1/downloads/{token}", get(download))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(service)
}

async fn request_export(
    State(service): State<Arc<ExportService>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let subject = service.authenticate(&headers).await?;
    let status = service.request_export(subject)?;
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}

async fn export_status(
    State(service): State<Arc<ExportService>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Result<Json<ExportStatus>, ApiError> {
    let subject = service.authenticate(&headers).await?;
    service.export_status(subject, ExportId(id)).map(Json)
}

async fn download(
    State(service): State<Arc<ExportService>>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let caller = service.authenticate(&headers).await?;
    let bytes = service.download(caller, &token)?;
    Ok(([(header::CONTENT_TYPE, "application/zip")], bytes).into_response())
}
