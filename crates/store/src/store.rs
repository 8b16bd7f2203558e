//! The store's core: [`Store`] (the database, the injected clock, entropy,
//! fault points and planted bugs, the audio caches, the disk's health), its
//! opening, its configuration, and the few helpers every feature shares
//! (`internal`, `next_id`, `token_digest`, `account_in`).
//!
//! Every operation is one redb transaction and is synchronous: nothing here
//! holds a transaction across an `.await`, so a single-threaded runtime (the
//! simulator's) can never deadlock on redb's writer lock. A write returns only
//! after its transaction committed with redb's default (immediate, fsynced)
//! durability, so an acknowledgement means the write is on disk.
//!
//! The features add their operations to `impl Store` in their own files
//! (`accounts`, `devices`, `recordings`, `media`, `messages`, `notify`); each
//! depends on this core and the schema (and, one way only, an upload on the
//! media fingerprint, closing an account on the recordings' deletion).

use crate::cache::{AudioCache, PlaybackKey};
use crate::health::{Health, WatchedBackend};
use crate::schema::{self, ACCOUNTS, AccountRecord, META};
use crosstalk_model::{AccountId, Clock, Entropy, sha256_hex};
use crosstalk_service::{ApiError, Inject, Injected};
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition,
    WriteTransaction,
};
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::sync::Arc;

/// Settings a deployment chooses.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Bearer token the export service presents on `/v1/service/*`.
    pub service_token: String,
    /// PBKDF2-HMAC-SHA256 iterations for password hashes. Production uses
    /// [`PRODUCTION_PASSWORD_ITERATIONS`]; a simulation may use 1 (the
    /// mechanism is the same, only the work factor differs).
    pub password_iterations: u32,
    /// Requests handled at once before the store answers 503 `overloaded`.
    pub limits: crosstalk_service::ServeLimits,
    /// How long a spoken command is held before the store acts on it
    /// ([`crate::media::DEFAULT_HOLD_MS`] in production).
    pub hold_ms: u64,
}

/// OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256.
pub const PRODUCTION_PASSWORD_ITERATIONS: u32 = 600_000;

impl StoreConfig {
    /// Production settings with the given service token.
    pub fn new(service_token: impl Into<String>) -> Self {
        Self {
            service_token: service_token.into(),
            password_iterations: PRODUCTION_PASSWORD_ITERATIONS,
            limits: crosstalk_service::ServeLimits::DEFAULT,
            hold_ms: crate::media::DEFAULT_HOLD_MS,
        }
    }
}

/// The recording store: one redb database, its caches, and what it was given.
pub struct Store {
    pub(crate) db: Database,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) entropy: Arc<dyn Entropy>,
    /// The key list cursors are MAC'd with (see `recordings.rs`).
    pub(crate) cursor_key: Vec<u8>,
    pub(crate) config: StoreConfig,
    health: Arc<Health>,
    /// Fault points and planted bugs (see [`Inject`]).
    pub(crate) injected: Injected,
    /// Recently played audio, behind the ownership check (see `cache.rs`).
    pub(crate) playback_cache: AudioCache<PlaybackKey>,
    /// Recent `GET /v1/recordings/{id}/audio` responses (see `cache.rs`).
    pub(crate) response_cache: AudioCache<String>,
}

pub(crate) fn internal(e: impl Display) -> ApiError {
    ApiError::internal(format!("storage error: {e}"))
}

/// The JSON rows of `rows` that `index` (keys `(account, id)`) lists for
/// `account`, in index order; an index entry without its row is an
/// internal error named `missing`. Whose the rows are is the caller's to
/// check.
pub(crate) fn rows_of_account<T: DeserializeOwned>(
    txn: &ReadTransaction,
    index: TableDefinition<(u64, u64), ()>,
    rows: TableDefinition<u64, &str>,
    account: AccountId,
    missing: &str,
) -> Result<Vec<T>, ApiError> {
    let index = txn.open_table(index).map_err(internal)?;
    let rows = txn.open_table(rows).map_err(internal)?;
    let mut out = Vec::new();
    for entry in index
        .range((account.0, 0)..=(account.0, u64::MAX))
        .map_err(internal)?
    {
        let id = entry.map_err(internal)?.0.value().1;
        let json = rows
            .get(id)
            .map_err(internal)?
            .ok_or_else(|| ApiError::internal(missing))?;
        out.push(serde_json::from_str(json.value()).map_err(internal)?);
    }
    Ok(out)
}

pub(crate) fn token_digest(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

pub(crate) fn next_id(txn: &WriteTransaction, counter: &str) -> Result<u64, ApiError> {
    let mut meta = txn.open_table(META).map_err(internal)?;
    let current = meta
        .get(counter)
        .map_err(internal)?
        .map(|v| v.value())
        .unwrap_or(1);
    let next = current
        .checked_add(1)
        .ok_or_else(|| ApiError::internal("id space exhausted"))?;
    meta.insert(counter, next).map_err(internal)?;
    Ok(current)
}

impl Inject for Store {
    fn injected_mut(&mut self) -> &mut Injected {
        &mut self.injected
    }
}

impl Store {
    /// SHA-256 over every table of the store's database, each in key
    /// order (see [`crosstalk_service::digest`]): equal for equal state,
    /// with no clock read. The simulator folds it into its trace hash.
    pub fn state_digest(&self) -> Result<String, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        schema::digest(&txn).map_err(internal)
    }

    /// Open (or create) the store on `backend`. Recovers whatever the backend
    /// holds; creates the tables and the cursor key on first open.
    pub fn open(
        backend: impl StorageBackend,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        config: StoreConfig,
    ) -> Result<Self, String> {
        let health = Arc::new(Health::default());
        let backend = WatchedBackend {
            inner: backend,
            health: health.clone(),
        };
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| format!("opening the store database: {e}"))?;
        let cursor_key = schema::create(&db, &*entropy)?;
        Ok(Self {
            db,
            clock,
            entropy,
            cursor_key,
            config,
            health,
            injected: Injected::default(),
            playback_cache: AudioCache::new(),
            response_cache: AudioCache::new(),
        })
    }

    /// Whether the disk failed under this process (see `health.rs`).
    pub fn storage_failed(&self) -> bool {
        self.health.failed()
    }

    /// Resolves once the disk has failed under this process: the caller
    /// should stop serving and exit, so that a new process reopens the
    /// database.
    pub async fn until_storage_fails(&self) {
        self.health.until_failed().await
    }

    pub(crate) fn account_in(
        &self,
        txn: &redb::ReadTransaction,
        id: AccountId,
    ) -> Result<Option<AccountRecord>, ApiError> {
        let accounts = txn.open_table(ACCOUNTS).map_err(internal)?;
        match accounts.get(id.0).map_err(internal)? {
            Some(json) => serde_json::from_str(json.value())
                .map(Some)
                .map_err(internal),
            None => Ok(None),
        }
    }
}
