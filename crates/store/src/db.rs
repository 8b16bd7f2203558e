//! The store's data, kept in redb.
//!
//! Every operation is one redb transaction and is synchronous: nothing here
//! holds a transaction across an `.await`, so a single-threaded runtime (the
//! simulator's) can never deadlock on redb's writer lock. A write returns only
//! after its transaction committed with redb's default (immediate, fsynced)
//! durability, so an acknowledgement means the write is on disk.

use crate::StoreConfig;
use crate::cache::{AudioCache, PlaybackKey};
use base64::Engine;
use crosstalk_model::api::{RecordingPage, RecordingView};
use crosstalk_model::{AccountId, Clock, DeviceId, Entropy, Recording, RecordingId, sha256_hex};
use crosstalk_service::{ApiError, Bug};
use hmac::{Hmac, Mac};
use redb::{
    Database, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt::Display;
use std::sync::Arc;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
pub(crate) const ACCOUNTS: TableDefinition<u64, &str> = TableDefinition::new("accounts");
pub(crate) const EMAILS: TableDefinition<&str, u64> = TableDefinition::new("emails");
pub(crate) const SESSIONS: TableDefinition<&str, u64> = TableDefinition::new("sessions");
pub(crate) const DEVICES: TableDefinition<u64, &str> = TableDefinition::new("devices");
pub(crate) const DEVICE_TOKENS: TableDefinition<&str, u64> = TableDefinition::new("device_tokens");
pub(crate) const RECORDINGS: TableDefinition<u64, &str> = TableDefinition::new("recordings");
pub(crate) const AUDIO: TableDefinition<u64, &[u8]> = TableDefinition::new("audio");
/// (owner, recording) -> (): the index every listing and export reads.
pub(crate) const BY_OWNER: TableDefinition<(u64, u64), ()> = TableDefinition::new("by_owner");
/// (device, upload key) -> JSON [`UploadKeyRecord`]: makes device retries
/// idempotent, and keeps answering after the recording was deleted (a retry
/// of a deleted recording's upload must not bring it back).
pub(crate) const UPLOAD_KEYS: TableDefinition<(u64, &str), &str> =
    TableDefinition::new("upload_keys");
/// recording -> acoustic fingerprint. Written only with the fingerprint-cache
/// bug planted (the correct build never needs it, so it may not exist).
pub(crate) const PRINT_OF: TableDefinition<u64, u64> = TableDefinition::new("print_of");

const NEXT_ACCOUNT: &str = "next_account_id";
const NEXT_DEVICE: &str = "next_device_id";
const NEXT_RECORDING: &str = "next_recording_id";
const CURSOR_KEY: &str = "cursor_mac_key";

/// Largest page a listing returns, whatever the caller asks for.
pub const MAX_PAGE_ITEMS: usize = 100;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AccountRecord {
    pub(crate) id: AccountId,
    pub(crate) email: String,
    pub(crate) created_at_ms: u64,
    /// Set when the account was closed: its sessions and devices stop
    /// working, its recordings are gone, its email is free again.
    pub(crate) closed_at_ms: Option<u64>,
    /// Hex salt and hex PBKDF2-HMAC-SHA256 of the password.
    pub(crate) password_salt: String,
    pub(crate) password_hash: String,
    pub(crate) password_iterations: u32,
}

fn password_hash(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations.max(1), &mut out);
    out
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct UploadKeyRecord {
    recording: RecordingId,
    /// SHA-256 over the audio digest and the transcript of the first upload.
    content: String,
}

fn content_digest(audio_sha256: &str, transcript: &str) -> String {
    sha256_hex(format!("{audio_sha256}\n{transcript}").as_bytes())
}

/// Which of an account's recordings to delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteSelection {
    One(RecordingId),
    /// Captured (device time) within `[from_ms, to_ms]`.
    CapturedBetween {
        from_ms: u64,
        to_ms: u64,
    },
    All,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub id: DeviceId,
    /// The owner now: the owner of the current ownership epoch.
    pub owner: AccountId,
    pub name: String,
    pub registered_at_ms: u64,
    /// The current ownership epoch. A transfer or a factory reset starts a
    /// new one; captures carry the epoch the device was in when it heard
    /// them, so a capture made before a resale stays with the seller.
    pub epoch: u32,
    /// `owners[e]` owned the device during epoch `e`.
    pub owners: Vec<AccountId>,
    /// Digest of the device's current bearer token.
    pub token_digest: String,
}

/// Who a listing is for: the owner reading their own history, or the export
/// service reading on a subject's behalf. Cursors are bound to the scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListScope {
    Owner,
    Service,
}

impl ListScope {
    fn tag(self) -> &'static str {
        match self {
            ListScope::Owner => "owner",
            ListScope::Service => "service",
        }
    }
}

/// A validated upload, ready to store.
pub struct NewRecording {
    pub upload_key: String,
    pub captured_at_ms: u64,
    pub transcript: String,
    pub audio: Vec<u8>,
    /// The device's ownership epoch at capture; `None` means the current one.
    pub ownership_epoch: Option<u32>,
    pub intent: Option<crosstalk_model::api::Intent>,
}

pub struct Store {
    pub(crate) db: Database,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) entropy: Arc<dyn Entropy>,
    cursor_key: Vec<u8>,
    pub(crate) config: StoreConfig,
    health: Arc<crate::health::Health>,
    pub(crate) faults: Arc<dyn crosstalk_service::fault_points::FaultPoints>,
    pub(crate) planted: crosstalk_service::Planted,
    /// Recently played audio, behind the ownership check (see `cache.rs`).
    pub(crate) playback_cache: AudioCache<PlaybackKey>,
    /// Recent `GET /v1/recordings/{id}/audio` responses (see `cache.rs`).
    pub(crate) response_cache: AudioCache<String>,
}

pub(crate) fn internal(e: impl Display) -> ApiError {
    ApiError::internal(format!("storage error: {e}"))
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

/// The fingerprint the planted fingerprint-cache files a recording under;
/// `None` when there is none (or the table was never written).
fn print_of(txn: &redb::ReadTransaction, id: RecordingId) -> Result<Option<u64>, ApiError> {
    match txn.open_table(PRINT_OF) {
        Ok(prints) => Ok(prints.get(id.0).map_err(internal)?.map(|p| p.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(internal(e)),
    }
}

/// The lowest id of a closed account (for the planted recycled-account-id).
fn lowest_closed_account(txn: &WriteTransaction) -> Result<Option<u64>, ApiError> {
    let accounts = txn.open_table(ACCOUNTS).map_err(internal)?;
    for entry in accounts.iter().map_err(internal)? {
        let (id, json) = entry.map_err(internal)?;
        let record: AccountRecord = serde_json::from_str(json.value()).map_err(internal)?;
        if record.closed_at_ms.is_some() {
            return Ok(Some(id.value()));
        }
    }
    Ok(None)
}

impl Store {
    /// SHA-256 over every table of the store's database, each in key
    /// order (see [`crosstalk_service::digest`]): equal for equal state,
    /// with no clock read. The simulator folds it into its trace hash.
    pub fn state_digest(&self) -> Result<String, ApiError> {
        use crate::{media, messages, notify};
        let txn = self.db.begin_read().map_err(internal)?;
        crosstalk_service::digest::StateDigest::new(&txn)
            .table(META)
            .and_then(|d| d.table(SECRETS))
            .and_then(|d| d.table(ACCOUNTS))
            .and_then(|d| d.table(EMAILS))
            .and_then(|d| d.table(SESSIONS))
            .and_then(|d| d.table(DEVICES))
            .and_then(|d| d.table(DEVICE_TOKENS))
            .and_then(|d| d.table(RECORDINGS))
            .and_then(|d| d.table(AUDIO))
            .and_then(|d| d.table(BY_OWNER))
            .and_then(|d| d.table(UPLOAD_KEYS))
            .and_then(|d| d.table(PRINT_OF))
            .and_then(|d| d.table(messages::CONTACTS))
            .and_then(|d| d.table(messages::MESSAGES))
            .and_then(|d| d.table(messages::INBOX))
            .and_then(|d| d.table(messages::SENT))
            .and_then(|d| d.table(messages::HELD_MESSAGES))
            .and_then(|d| d.table(media::FINGERPRINTS))
            .and_then(|d| d.table(media::FINGERPRINTS_RECEIVED))
            .and_then(|d| d.table(media::ORDERS))
            .and_then(|d| d.table(media::ORDERS_BY_ACCOUNT))
            .and_then(|d| d.table(media::HELD_ORDERS))
            .and_then(|d| d.table(notify::NOTIFICATIONS))
            .and_then(|d| d.finish())
            .map_err(internal)
    }

    /// Open (or create) the store on `backend`. Recovers whatever the backend
    /// holds; creates the tables and the cursor key on first open.
    pub fn open(
        backend: impl StorageBackend,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        config: StoreConfig,
    ) -> Result<Self, String> {
        let health = Arc::new(crate::health::Health::default());
        let backend = crate::health::WatchedBackend {
            inner: backend,
            health: health.clone(),
        };
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| format!("opening the store database: {e}"))?;
        let cursor_key = {
            let txn = db.begin_write().map_err(|e| e.to_string())?;
            let key = {
                let mut secrets = txn.open_table(SECRETS).map_err(|e| e.to_string())?;
                let existing = secrets
                    .get(CURSOR_KEY)
                    .map_err(|e| e.to_string())?
                    .map(|v| v.value().to_vec());
                match existing {
                    Some(key) => key,
                    None => {
                        let mut key = vec![0u8; 32];
                        entropy.fill(&mut key);
                        secrets
                            .insert(CURSOR_KEY, key.as_slice())
                            .map_err(|e| e.to_string())?;
                        key
                    }
                }
            };
            // Create every table so that readers never meet a missing one.
            txn.open_table(META).map_err(|e| e.to_string())?;
            txn.open_table(ACCOUNTS).map_err(|e| e.to_string())?;
            txn.open_table(EMAILS).map_err(|e| e.to_string())?;
            txn.open_table(SESSIONS).map_err(|e| e.to_string())?;
            txn.open_table(DEVICES).map_err(|e| e.to_string())?;
            txn.open_table(DEVICE_TOKENS).map_err(|e| e.to_string())?;
            txn.open_table(RECORDINGS).map_err(|e| e.to_string())?;
            txn.open_table(AUDIO).map_err(|e| e.to_string())?;
            txn.open_table(BY_OWNER).map_err(|e| e.to_string())?;
            txn.open_table(UPLOAD_KEYS).map_err(|e| e.to_string())?;
            txn.open_table(crate::media::FINGERPRINTS)
                .map_err(|e| e.to_string())?;
            txn.open_table(crate::media::FINGERPRINTS_RECEIVED)
                .map_err(|e| e.to_string())?;
            txn.open_table(crate::media::ORDERS)
                .map_err(|e| e.to_string())?;
            txn.open_table(crate::media::ORDERS_BY_ACCOUNT)
                .map_err(|e| e.to_string())?;
            txn.open_table(crate::media::HELD_ORDERS)
                .map_err(|e| e.to_string())?;
            txn.open_table(crate::messages::CONTACTS)
                .map_err(|e| e.to_string())?;
            txn.open_table(crate::messages::MESSAGES)
                .map_err(|e| e.to_string())?;
            txn.open_table(crate::messages::INBOX)
                .map_err(|e| e.to_string())?;
            txn.open_table(crate::messages::SENT)
                .map_err(|e| e.to_string())?;
            txn.open_table(crate::messages::HELD_MESSAGES)
                .map_err(|e| e.to_string())?;
            txn.open_table(crate::notify::NOTIFICATIONS)
                .map_err(|e| e.to_string())?;
            txn.commit().map_err(|e| e.to_string())?;
            key
        };
        Ok(Self {
            db,
            clock,
            entropy,
            cursor_key,
            config,
            health,
            faults: crosstalk_service::fault_points::none(),
            planted: crosstalk_service::Planted::none(),
            playback_cache: AudioCache::new(),
            response_cache: AudioCache::new(),
        })
    }

    /// Inject fault points (simulation and fuzzing builds; see
    /// `crosstalk_service::fault_points`).
    pub fn with_fault_points(
        mut self,
        faults: Arc<dyn crosstalk_service::fault_points::FaultPoints>,
    ) -> Self {
        self.faults = faults;
        self
    }

    /// Plant bugs from the catalogue (inert unless built with the
    /// `planted-bugs` feature; see `crosstalk_service::planted`).
    pub fn with_planted(mut self, planted: crosstalk_service::Planted) -> Self {
        self.planted = planted;
        self
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

    /// Create an account for `email` and a first session for it.
    pub fn signup(&self, email: &str, password: &str) -> Result<(AccountId, String), ApiError> {
        let now = self.clock.now_ms();
        let session = self.entropy.token_hex();
        let mut salt = [0u8; 16];
        self.entropy.fill(&mut salt);
        let iterations = self.config.password_iterations;
        let hash = password_hash(password, &salt, iterations);
        let txn = self.db.begin_write().map_err(internal)?;
        let id = {
            let mut emails = txn.open_table(EMAILS).map_err(internal)?;
            if emails.get(email).map_err(internal)?.is_some() {
                crosstalk_service::probe!("store.signup.email_taken");
                return Err(ApiError::conflict(
                    "an account with this email already exists",
                ));
            }
            let recycled = if self.planted.on(Bug::RecycledAccountId) {
                // recycled-account-id (Yahoo 2013): "reuse dormant ids".
                lowest_closed_account(&txn)?
            } else {
                None
            };
            let id = match recycled {
                Some(id) => id,
                None => next_id(&txn, NEXT_ACCOUNT)?,
            };
            emails.insert(email, id).map_err(internal)?;
            let record = AccountRecord {
                id: AccountId(id),
                email: email.to_string(),
                created_at_ms: now,
                closed_at_ms: None,
                password_salt: hex::encode(salt),
                password_hash: hex::encode(hash),
                password_iterations: iterations,
            };
            let json = serde_json::to_string(&record).map_err(internal)?;
            txn.open_table(ACCOUNTS)
                .map_err(internal)?
                .insert(id, json.as_str())
                .map_err(internal)?;
            txn.open_table(SESSIONS)
                .map_err(internal)?
                .insert(token_digest(&session).as_str(), id)
                .map_err(internal)?;
            id
        };
        txn.commit().map_err(internal)?;
        Ok((AccountId(id), session))
    }

    /// A new session for the open account registered under `email`, if the
    /// password is right. Unknown email and wrong password look the same.
    pub fn login(&self, email: &str, password: &str) -> Result<(AccountId, String), ApiError> {
        let refused = || ApiError::unauthorized("wrong email or password");
        let account = {
            let txn = self.db.begin_read().map_err(internal)?;
            let id = txn
                .open_table(EMAILS)
                .map_err(internal)?
                .get(email)
                .map_err(internal)?
                .map(|v| v.value());
            match id {
                Some(id) => self.account_in(&txn, AccountId(id))?,
                None => None,
            }
        };
        let Some(account) = account.filter(|a| a.closed_at_ms.is_none()) else {
            return Err(refused());
        };
        let salt = hex::decode(&account.password_salt).map_err(internal)?;
        let expected = hex::decode(&account.password_hash).map_err(internal)?;
        let presented = password_hash(password, &salt, account.password_iterations);
        let differ = presented
            .iter()
            .zip(expected.iter())
            .fold(expected.len() ^ 32, |acc, (a, b)| acc | (a ^ b) as usize);
        if differ != 0 {
            return Err(refused());
        }
        let session = self.entropy.token_hex();
        let txn = self.db.begin_write().map_err(internal)?;
        txn.open_table(SESSIONS)
            .map_err(internal)?
            .insert(token_digest(&session).as_str(), account.id.0)
            .map_err(internal)?;
        txn.commit().map_err(internal)?;
        Ok((account.id, session))
    }

    /// The account a session token belongs to.
    pub fn authenticate_session(&self, token: &str) -> Result<AccountId, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let sessions = txn.open_table(SESSIONS).map_err(internal)?;
        let id = match sessions
            .get(token_digest(token).as_str())
            .map_err(internal)?
        {
            Some(id) => AccountId(id.value()),
            None => {
                crosstalk_service::probe!("store.session.unknown");
                return Err(ApiError::unauthorized("unknown or expired session"));
            }
        };
        match self.account_in(&txn, id)? {
            Some(account) if account.closed_at_ms.is_none() => Ok(id),
            _ => {
                crosstalk_service::probe!("store.session.account_closed");
                Err(ApiError::unauthorized("unknown or expired session"))
            }
        }
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

    /// Register a new device owned by `owner`; returns its id and bearer token.
    pub fn register_device(
        &self,
        owner: AccountId,
        name: &str,
    ) -> Result<(DeviceId, String), ApiError> {
        let now = self.clock.now_ms();
        let token = self.entropy.token_hex();
        let txn = self.db.begin_write().map_err(internal)?;
        let id = next_id(&txn, NEXT_DEVICE)?;
        let record = DeviceRecord {
            id: DeviceId(id),
            owner,
            name: name.to_string(),
            registered_at_ms: now,
            epoch: 0,
            owners: vec![owner],
            token_digest: token_digest(&token),
        };
        let json = serde_json::to_string(&record).map_err(internal)?;
        txn.open_table(DEVICES)
            .map_err(internal)?
            .insert(id, json.as_str())
            .map_err(internal)?;
        txn.open_table(DEVICE_TOKENS)
            .map_err(internal)?
            .insert(token_digest(&token).as_str(), id)
            .map_err(internal)?;
        txn.commit().map_err(internal)?;
        Ok((DeviceId(id), token))
    }

    /// The device a device token belongs to, with its current owner.
    pub fn authenticate_device(&self, token: &str) -> Result<DeviceRecord, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let tokens = txn.open_table(DEVICE_TOKENS).map_err(internal)?;
        let id = match tokens.get(token_digest(token).as_str()).map_err(internal)? {
            Some(id) => id.value(),
            None => {
                crosstalk_service::probe!("store.device.unknown_token");
                return Err(ApiError::unauthorized("unknown device token"));
            }
        };
        let devices = txn.open_table(DEVICES).map_err(internal)?;
        let json = devices
            .get(id)
            .map_err(internal)?
            .ok_or_else(|| ApiError::internal("device token without device"))?;
        let device: DeviceRecord = serde_json::from_str(json.value()).map_err(internal)?;
        match self.account_in(&txn, device.owner)? {
            Some(owner) if owner.closed_at_ms.is_none() => Ok(device),
            _ => {
                crosstalk_service::probe!("store.device.account_closed");
                Err(ApiError::unauthorized("this device's account is closed"))
            }
        }
    }

    /// Store one capture from `device` for the account that owned the device
    /// when it captured it (its ownership epoch). Idempotent per (device,
    /// upload key): a retry returns the first recording's id.
    pub fn ingest(
        &self,
        device: &DeviceRecord,
        upload: NewRecording,
    ) -> Result<(RecordingId, bool), ApiError> {
        let now = self.clock.now_ms();
        let digest = sha256_hex(&upload.audio);
        let epoch = upload.ownership_epoch.unwrap_or(device.epoch);
        if epoch > device.epoch {
            return Err(ApiError::bad_request(
                "ownership_epoch is ahead of the device's",
            ));
        }
        let owner = if self.planted.on(Bug::ResaleHistory) {
            // resale-history (Nest/Wink 2019): history follows the device, not the epoch.
            device.owner
        } else {
            *device
                .owners
                .get(epoch as usize)
                .ok_or_else(|| ApiError::internal("device without owner for an epoch"))?
        };
        let print = crate::media::fingerprint(&upload.audio);
        // The owner's account may close on another thread here.
        crosstalk_service::fault_points::interleave(&*self.faults, "store.ingest.before_write");
        let txn = self.db.begin_write().map_err(internal)?;
        {
            // The owner must still be open *inside* this transaction: a
            // capture from before a transfer belongs to an earlier owner who
            // may have closed their account since, and on a multi-threaded
            // server an account may close between authentication and here.
            let accounts = txn.open_table(ACCOUNTS).map_err(internal)?;
            let record: Option<AccountRecord> = match accounts.get(owner.0).map_err(internal)? {
                Some(json) => Some(serde_json::from_str(json.value()).map_err(internal)?),
                None => None,
            };
            if record.is_none_or(|a| a.closed_at_ms.is_some()) {
                crosstalk_service::probe!("store.ingest.owner_closed");
                return Err(ApiError::gone(
                    "the account that owned this device then is closed",
                ));
            }
        }
        let id = {
            let mut keys = txn.open_table(UPLOAD_KEYS).map_err(internal)?;
            let content = content_digest(&digest, &upload.transcript);
            if let Some(existing) = keys
                .get((device.id.0, upload.upload_key.as_str()))
                .map_err(internal)?
            {
                let existing: UploadKeyRecord =
                    serde_json::from_str(existing.value()).map_err(internal)?;
                if existing.content != content {
                    crosstalk_service::probe!("store.ingest.upload_key_conflict");
                    return Err(ApiError::conflict(
                        "upload key reused for different content",
                    ));
                }
                crosstalk_service::probe!("store.ingest.duplicate_upload");
                // Stored before (and possibly deleted since): never stored twice.
                return Ok((existing.recording, true));
            }
            let id = if self.planted.on(Bug::ClockIdCollision) {
                // clock-id-collision (broadcast burst): "ids from device time".
                upload.captured_at_ms
            } else {
                next_id(&txn, NEXT_RECORDING)?
            };
            let key_record = serde_json::to_string(&UploadKeyRecord {
                recording: RecordingId(id),
                content,
            })
            .map_err(internal)?;
            keys.insert(
                (device.id.0, upload.upload_key.as_str()),
                key_record.as_str(),
            )
            .map_err(internal)?;
            let record = Recording {
                id: RecordingId(id),
                owner,
                device: device.id,
                captured_at_ms: upload.captured_at_ms,
                received_at_ms: now,
                transcript: upload.transcript,
                audio_sha256: digest,
                audio_len: upload.audio.len() as u64,
            };
            let json = serde_json::to_string(&record).map_err(internal)?;
            txn.open_table(RECORDINGS)
                .map_err(internal)?
                .insert(id, json.as_str())
                .map_err(internal)?;
            txn.open_table(AUDIO)
                .map_err(internal)?
                .insert(id, upload.audio.as_slice())
                .map_err(internal)?;
            txn.open_table(BY_OWNER)
                .map_err(internal)?
                .insert((owner.0, id), ())
                .map_err(internal)?;
            self.note_capture(&txn, &record, print, upload.intent.as_ref())?;
            id
        };
        txn.commit().map_err(internal)?;
        Ok((RecordingId(id), false))
    }

    fn cursor_mac(&self, scope: ListScope, account: AccountId, after: u64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.cursor_key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(format!("cursor/v1|{}|{}|{}", scope.tag(), account.0, after).as_bytes());
        mac
    }

    fn encode_cursor(&self, scope: ListScope, account: AccountId, after: u64) -> String {
        let tag = self
            .cursor_mac(scope, account, after)
            .finalize()
            .into_bytes();
        format!("{after}.{}", hex::encode(&tag[..16]))
    }

    /// The recording id a cursor continues after, if the cursor was minted
    /// by this store for this account and scope.
    fn decode_cursor(
        &self,
        scope: ListScope,
        account: AccountId,
        cursor: &str,
    ) -> Result<u64, ApiError> {
        let invalid = || ApiError::bad_request("invalid cursor");
        let (after, tag) = cursor.split_once('.').ok_or_else(invalid)?;
        let after: u64 = after.parse().map_err(|_| invalid())?;
        let tag = hex::decode(tag).map_err(|_| invalid())?;
        self.cursor_mac(scope, account, after)
            .verify_truncated_left(&tag)
            .map_err(|_| invalid())?;
        if tag.len() != 16 {
            return Err(invalid());
        }
        Ok(after)
    }

    /// One page of `account`'s recordings in id order.
    pub fn list(
        &self,
        scope: ListScope,
        account: AccountId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<RecordingPage, ApiError> {
        if self.planted.on(Bug::UnscopedCursor)
            && let Some(cursor) = cursor
        {
            // unscoped-cursor (paging bugs): the cursor is a global offset, not bound to the account.
            return self.list_from_offset(account, cursor, limit);
        }
        let after = match cursor {
            Some(c) => self.decode_cursor(scope, account, c)?,
            None => 0,
        };
        let limit = limit.clamp(1, MAX_PAGE_ITEMS);
        let txn = self.db.begin_read().map_err(internal)?;
        let index = txn.open_table(BY_OWNER).map_err(internal)?;
        let recordings = txn.open_table(RECORDINGS).map_err(internal)?;
        let start = after
            .checked_add(1)
            .ok_or_else(|| ApiError::bad_request("invalid cursor"))?;
        let mut items = Vec::new();
        let mut more = false;
        for entry in index
            .range((account.0, start)..=(account.0, u64::MAX))
            .map_err(internal)?
        {
            let (key, _) = entry.map_err(internal)?;
            if items.len() == limit {
                more = true;
                break;
            }
            let (_, id) = key.value();
            let json = recordings
                .get(id)
                .map_err(internal)?
                .ok_or_else(|| ApiError::internal("index entry without recording"))?;
            let record: Recording = serde_json::from_str(json.value()).map_err(internal)?;
            if record.owner != account {
                return Err(ApiError::internal("owner index and recording disagree"));
            }
            items.push(RecordingView::from(&record));
        }
        let next_cursor = match (more, items.last()) {
            (true, Some(last)) if self.planted.on(Bug::UnscopedCursor) => {
                // unscoped-cursor (paging bugs): how far into the whole index this page ended.
                let offset = index
                    .range(..=(account.0, last.id.0))
                    .map_err(internal)?
                    .count();
                Some(offset.to_string())
            }
            (true, Some(last)) => Some(self.encode_cursor(scope, account, last.id.0)),
            _ => None,
        };
        Ok(RecordingPage {
            account_id: account,
            items,
            next_cursor,
        })
    }

    /// The planted unscoped-cursor's continuation page: `limit` entries of
    /// the whole owner index from a plain offset, whoever owns them.
    fn list_from_offset(
        &self,
        account: AccountId,
        cursor: &str,
        limit: usize,
    ) -> Result<RecordingPage, ApiError> {
        let offset: usize = cursor
            .parse()
            .map_err(|_| ApiError::bad_request("invalid cursor"))?;
        let limit = limit.clamp(1, MAX_PAGE_ITEMS);
        let txn = self.db.begin_read().map_err(internal)?;
        let index = txn.open_table(BY_OWNER).map_err(internal)?;
        let recordings = txn.open_table(RECORDINGS).map_err(internal)?;
        let mut entries = index.iter().map_err(internal)?.skip(offset);
        let mut items = Vec::new();
        for entry in entries.by_ref().take(limit) {
            let (key, _) = entry.map_err(internal)?;
            let json = recordings
                .get(key.value().1)
                .map_err(internal)?
                .ok_or_else(|| ApiError::internal("index entry without recording"))?;
            let record: Recording = serde_json::from_str(json.value()).map_err(internal)?;
            items.push(RecordingView::from(&record));
        }
        let more = match entries.next() {
            Some(entry) => entry.map_err(internal)?.0.value().0 == account.0,
            None => false,
        };
        let next_cursor = more.then(|| offset.saturating_add(items.len()).to_string());
        Ok(RecordingPage {
            account_id: account,
            items,
            next_cursor,
        })
    }

    /// The audio of recording `id` if `account` owns it. A recording that
    /// exists but belongs to someone else is reported exactly like one that
    /// does not exist.
    ///
    /// Served from the playback cache when it holds the recording; the
    /// ownership check always comes first.
    pub fn audio(&self, account: AccountId, id: RecordingId) -> Result<Vec<u8>, ApiError> {
        let generation = self.playback_cache.generation();
        let txn = self.db.begin_read().map_err(internal)?;
        let index = txn.open_table(BY_OWNER).map_err(internal)?;
        if index.get((account.0, id.0)).map_err(internal)?.is_none() {
            crosstalk_service::probe!("store.audio.not_owned_refused");
            return Err(ApiError::not_found("no such recording"));
        }
        let mut key = PlaybackKey::Recording {
            account: account.0,
            recording: id.0,
        };
        if self.planted.on(Bug::FingerprintCache) {
            // fingerprint-cache (San Diego broadcast, Wyze 2024): "perceptual dedupe", one entry per sound.
            if let Some(print) = print_of(&txn, id)? {
                key = PlaybackKey::Fingerprint(print);
            }
        }
        if let Some(bytes) = self.playback_cache.get(&key) {
            crosstalk_service::probe!("store.playback_cache.hit");
            return Ok(bytes);
        }
        let audio = txn.open_table(AUDIO).map_err(internal)?;
        let bytes = audio
            .get(id.0)
            .map_err(internal)?
            .ok_or_else(|| ApiError::internal("recording without audio"))?
            .value()
            .to_vec();
        // A deletion on another thread may commit here (the race the
        // generation check exists for).
        crosstalk_service::fault_points::interleave(&*self.faults, "store.audio.before_fill");
        let generation = if self.planted.on(Bug::StaleCacheFill) {
            // stale-cache-fill (Steam 2015, Wyze 2024): "read the generation when the entry goes in".
            self.playback_cache.generation()
        } else {
            generation
        };
        self.playback_cache
            .insert(generation, key, account, id, &bytes);
        Ok(bytes)
    }

    /// Drop `recordings` (and, when given, everything cached for `account`)
    /// from both audio caches. Called after a deletion committed and before
    /// it is acknowledged.
    fn evict_cached(&self, recordings: &[RecordingId], account: Option<AccountId>) {
        self.playback_cache.evict(recordings, account);
        self.response_cache.evict(recordings, account);
    }

    /// Delete `selection` of `account`'s recordings from every table and
    /// index (the listing, the audio, the index the export reads) in one
    /// transaction. Returns the ids deleted; returns only once durable.
    pub fn delete(
        &self,
        account: AccountId,
        selection: DeleteSelection,
    ) -> Result<Vec<RecordingId>, ApiError> {
        let txn = self.db.begin_write().map_err(internal)?;
        let deleted = {
            let mut index = txn.open_table(BY_OWNER).map_err(internal)?;
            let mut recordings = txn.open_table(RECORDINGS).map_err(internal)?;
            let mut audio = txn.open_table(AUDIO).map_err(internal)?;
            let candidates: Vec<u64> = match selection {
                DeleteSelection::One(id) => {
                    if index.get((account.0, id.0)).map_err(internal)?.is_none() {
                        crosstalk_service::probe!("store.delete.not_owned_refused");
                        return Err(ApiError::not_found("no such recording"));
                    }
                    vec![id.0]
                }
                _ => {
                    let mut ids = Vec::new();
                    for entry in index
                        .range((account.0, 0)..=(account.0, u64::MAX))
                        .map_err(internal)?
                    {
                        ids.push(entry.map_err(internal)?.0.value().1);
                    }
                    ids
                }
            };
            let mut deleted = Vec::new();
            for id in candidates {
                let record: Recording = {
                    let json = recordings
                        .get(id)
                        .map_err(internal)?
                        .ok_or_else(|| ApiError::internal("index entry without recording"))?;
                    serde_json::from_str(json.value()).map_err(internal)?
                };
                let selected = match selection {
                    DeleteSelection::One(_) | DeleteSelection::All => true,
                    DeleteSelection::CapturedBetween { from_ms, to_ms } => {
                        (from_ms..=to_ms).contains(&record.captured_at_ms)
                    }
                };
                if !selected {
                    continue;
                }
                index.remove((account.0, id)).map_err(internal)?;
                recordings.remove(id).map_err(internal)?;
                audio.remove(id).map_err(internal)?;
                deleted.push(RecordingId(id));
            }
            deleted
        };
        txn.commit().map_err(internal)?;
        self.evict_cached(&deleted, None);
        Ok(deleted)
    }

    /// Close `account`: delete all its recordings, end its sessions and its
    /// devices' uploads, and release its email for a new account (which
    /// will get a new id: ids are never reused).
    pub fn close_account(&self, account: AccountId) -> Result<Vec<RecordingId>, ApiError> {
        let deleted = self.delete(account, DeleteSelection::All)?;
        // An upload on another thread may land between the two transactions.
        crosstalk_service::fault_points::interleave(
            &*self.faults,
            "store.close.between_transactions",
        );
        let now = self.clock.now_ms();
        let txn = self.db.begin_write().map_err(internal)?;
        {
            let mut accounts = txn.open_table(ACCOUNTS).map_err(internal)?;
            let mut record: AccountRecord = {
                let json = accounts
                    .get(account.0)
                    .map_err(internal)?
                    .ok_or_else(|| ApiError::not_found("no such account"))?;
                serde_json::from_str(json.value()).map_err(internal)?
            };
            if record.closed_at_ms.is_none() {
                record.closed_at_ms = Some(now);
                let json = serde_json::to_string(&record).map_err(internal)?;
                accounts
                    .insert(account.0, json.as_str())
                    .map_err(internal)?;
                let mut emails = txn.open_table(EMAILS).map_err(internal)?;
                let holder = emails
                    .get(record.email.as_str())
                    .map_err(internal)?
                    .map(|v| v.value());
                if holder == Some(account.0) {
                    emails.remove(record.email.as_str()).map_err(internal)?;
                }
            }
            // Recordings that raced the first transaction go too.
            let mut index = txn.open_table(BY_OWNER).map_err(internal)?;
            let mut recordings = txn.open_table(RECORDINGS).map_err(internal)?;
            let mut audio = txn.open_table(AUDIO).map_err(internal)?;
            let mut late = Vec::new();
            for entry in index
                .range((account.0, 0)..=(account.0, u64::MAX))
                .map_err(internal)?
            {
                late.push(entry.map_err(internal)?.0.value().1);
            }
            if self.planted.on(Bug::CloseMissesLateUpload) {
                // close-misses-late-upload (Twitter 2019, Instagram 2020): "the first delete got them all".
                late.clear();
            }
            for id in late {
                index.remove((account.0, id)).map_err(internal)?;
                recordings.remove(id).map_err(internal)?;
                audio.remove(id).map_err(internal)?;
            }
        }
        txn.commit().map_err(internal)?;
        // Late recordings went too: drop everything cached for the account.
        self.evict_cached(&deleted, Some(account));
        Ok(deleted)
    }

    /// Whether `account` exists.
    pub fn account_exists(&self, account: AccountId) -> Result<bool, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let accounts = txn.open_table(ACCOUNTS).map_err(internal)?;
        Ok(accounts.get(account.0).map_err(internal)?.is_some())
    }
}

/// Decode and validate an upload's base64 audio.
pub fn decode_audio(audio_base64: &str) -> Result<Vec<u8>, ApiError> {
    // Base64 inflates by 4/3; refuse before decoding anything too large.
    if audio_base64.len() / 4 * 3 > crosstalk_model::MAX_AUDIO_BYTES + 3 {
        return Err(ApiError::too_large(format!(
            "audio exceeds {} bytes",
            crosstalk_model::MAX_AUDIO_BYTES
        )));
    }
    let audio = base64::engine::general_purpose::STANDARD
        .decode(audio_base64)
        .map_err(|e| ApiError::bad_request(format!("audio_base64 is not valid base64: {e}")))?;
    if audio.len() > crosstalk_model::MAX_AUDIO_BYTES {
        return Err(ApiError::too_large(format!(
            "audio exceeds {} bytes",
            crosstalk_model::MAX_AUDIO_BYTES
        )));
    }
    if audio.is_empty() {
        return Err(ApiError::bad_request("audio is empty"));
    }
    Ok(audio)
}
