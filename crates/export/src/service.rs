//! The export service's core: [`ExportService`] (its database, the
//! injected clock, entropy, fault points and planted bugs, its client of
//! the store), its configuration and opening, and who a request comes from
//! (a subject's session, an agent, a worker). The features add their
//! operations to `impl ExportService` in their own files (`exports`,
//! `jobs`, `tickets`, `agent`), each depending on this core and the schema.

use crate::schema;
use crate::store_client::StoreClient;
use axum::http::HeaderMap;
use crosstalk_model::{AccountId, Clock, Entropy, sha256_hex};
use crosstalk_service::fault_points::FaultPoints;
use crosstalk_service::{ApiError, Inject, Injected, bearer_token};
use redb::{Database, StorageBackend};
use std::fmt::Display;
use std::sync::Arc;

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
            max_verify_attempts: crate::tickets::MAX_VERIFY_ATTEMPTS,
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
    pub(crate) link_key: Vec<u8>,
    pub(crate) store: StoreClient,
    pub(crate) config: ExportConfig,
    /// Fault points and planted bugs (see [`Inject`]).
    pub(crate) injected: Injected,
}

pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (sha256_hex(a.as_bytes()), sha256_hex(b.as_bytes()));
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl Inject for ExportService {
    fn injected_mut(&mut self) -> &mut Injected {
        &mut self.injected
    }

    /// The store client's `export.store_call.fails` fault point fires from
    /// the same fault points.
    fn pass_on_fault_points(&mut self, faults: &Arc<dyn FaultPoints>) {
        self.store.injected_mut().set_fault_points(faults.clone());
    }
}

impl ExportService {
    /// SHA-256 over every table of the export database, each in key order
    /// (see [`crosstalk_service::digest`]): equal for equal state, with no
    /// clock read. The simulator folds it into its trace hash.
    pub fn state_digest(&self) -> Result<String, ApiError> {
        let txn = redb::ReadableDatabase::begin_read(&self.db).map_err(internal)?;
        schema::digest(&txn).map_err(internal)
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
        let link_key = schema::create(&db, &*entropy)?;
        Ok(Self {
            db,
            clock,
            entropy,
            link_key,
            store,
            config,
            injected: Injected::default(),
        })
    }

    pub(crate) fn fires(&self, point: &'static str) -> bool {
        self.injected.fires(point)
    }

    pub(crate) async fn authenticate(&self, headers: &HeaderMap) -> Result<AccountId, ApiError> {
        let token = bearer_token(headers)
            .ok_or_else(|| ApiError::unauthorized("missing bearer session"))?;
        self.store.introspect(token).await
    }

    pub(crate) fn agent(&self, headers: &HeaderMap) -> Result<String, ApiError> {
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

    pub(crate) fn worker(&self, headers: &HeaderMap) -> Result<(), ApiError> {
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
}
