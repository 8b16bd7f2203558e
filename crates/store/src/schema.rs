//! The store's schema: every redb table, the counters kept in `meta`, the
//! JSON records the tables hold, and the opening that creates them.
//!
//! This module depends on nothing else of the crate: the features
//! (`accounts`, `devices`, `recordings`, `media`, `messages`, `notify`) and
//! the core (`store`) read and write these tables; none defines its own.

use crosstalk_model::api::{Contact, MessageState, OrderState};
use crosstalk_model::{AccountId, DeviceId, Entropy, RecordingId};
use crosstalk_service::digest::StateDigest;
use redb::{Database, ReadTransaction, TableDefinition};
use serde::{Deserialize, Serialize};

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// name -> key bytes (the list-cursor key): the services' shared table.
pub(crate) const SECRETS: TableDefinition<&str, &[u8]> = crosstalk_service::secrets::SECRETS;
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

/// (fingerprint, capture time, recording) -> owner.
pub(crate) const FINGERPRINTS: TableDefinition<(u64, u64, u64), u64> =
    TableDefinition::new("fingerprints");
/// (fingerprint, receive time, recording) -> owner: the same, by the store's
/// own clock, which device clock errors cannot scatter.
pub(crate) const FINGERPRINTS_RECEIVED: TableDefinition<(u64, u64, u64), u64> =
    TableDefinition::new("fingerprints_received");
/// order id -> JSON [`OrderRecord`].
pub(crate) const ORDERS: TableDefinition<u64, &str> = TableDefinition::new("orders");
/// (account, order id) -> (): an account's orders.
pub(crate) const ORDERS_BY_ACCOUNT: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("orders_by_account");
/// order id -> (): orders still held.
pub(crate) const HELD_ORDERS: TableDefinition<u64, ()> = TableDefinition::new("held_orders");

/// (account, lower-case contact name) -> contact email.
pub(crate) const CONTACTS: TableDefinition<(u64, &str), &str> = TableDefinition::new("contacts");
/// message id -> JSON [`MessageRecord`].
pub(crate) const MESSAGES: TableDefinition<u64, &str> = TableDefinition::new("messages");
/// (recipient, message id) -> (): delivered messages by recipient.
pub(crate) const INBOX: TableDefinition<(u64, u64), ()> = TableDefinition::new("inbox");
/// (sender, message id) -> (): every message an account sent or spoke.
pub(crate) const SENT: TableDefinition<(u64, u64), ()> = TableDefinition::new("sent_messages");
/// message id -> (): spoken messages still held.
pub(crate) const HELD_MESSAGES: TableDefinition<u64, ()> = TableDefinition::new("held_messages");

/// (account, seq) -> JSON `crosstalk_model::api::Notification`.
pub(crate) const NOTIFICATIONS: TableDefinition<(u64, u64), &str> =
    TableDefinition::new("notifications");

/// The counters in `META` (each the next id to hand out), and the
/// `SECRETS` entry of the cursor key.
pub(crate) const NEXT_ACCOUNT: &str = "next_account_id";
pub(crate) const NEXT_DEVICE: &str = "next_device_id";
pub(crate) const NEXT_RECORDING: &str = "next_recording_id";
pub(crate) const CURSOR_KEY: &str = "cursor_mac_key";
pub(crate) const NEXT_ORDER: &str = "next_order_id";
pub(crate) const NEXT_MESSAGE: &str = "next_message_id";
pub(crate) const NEXT_NOTIFICATION: &str = "next_notification_seq";

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

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UploadKeyRecord {
    pub(crate) recording: RecordingId,
    /// SHA-256 over the audio digest and the transcript of the first upload.
    pub(crate) content: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct OrderRecord {
    pub(crate) id: u64,
    pub(crate) account: AccountId,
    pub(crate) item: String,
    pub(crate) source: RecordingId,
    pub(crate) fingerprint: Option<u64>,
    pub(crate) captured_at_ms: u64,
    pub(crate) received_at_ms: u64,
    pub(crate) state: OrderState,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MessageRecord {
    pub(crate) id: u64,
    pub(crate) from: AccountId,
    pub(crate) to: AccountId,
    pub(crate) recording: RecordingId,
    pub(crate) contact: Contact,
    pub(crate) state: MessageState,
    pub(crate) created_at_ms: u64,
    /// Spoken messages: the capture's fingerprint and capture time, for the
    /// media-event check when the hold ends.
    #[serde(default)]
    pub(crate) fingerprint: Option<u64>,
    #[serde(default)]
    pub(crate) captured_at_ms: u64,
    #[serde(default)]
    pub(crate) spoken: bool,
}

/// Create every table (so that readers never meet a missing one) and the
/// list-cursor key on first open; return the cursor key. `PRINT_OF` is
/// left out: only the planted fingerprint-cache writes it.
pub(crate) fn create(db: &Database, entropy: &dyn Entropy) -> Result<Vec<u8>, String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    let key = crosstalk_service::secrets::load_or_create(&txn, CURSOR_KEY, entropy)?;
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
    txn.open_table(FINGERPRINTS).map_err(|e| e.to_string())?;
    txn.open_table(FINGERPRINTS_RECEIVED)
        .map_err(|e| e.to_string())?;
    txn.open_table(ORDERS).map_err(|e| e.to_string())?;
    txn.open_table(ORDERS_BY_ACCOUNT)
        .map_err(|e| e.to_string())?;
    txn.open_table(HELD_ORDERS).map_err(|e| e.to_string())?;
    txn.open_table(CONTACTS).map_err(|e| e.to_string())?;
    txn.open_table(MESSAGES).map_err(|e| e.to_string())?;
    txn.open_table(INBOX).map_err(|e| e.to_string())?;
    txn.open_table(SENT).map_err(|e| e.to_string())?;
    txn.open_table(HELD_MESSAGES).map_err(|e| e.to_string())?;
    txn.open_table(NOTIFICATIONS).map_err(|e| e.to_string())?;
    txn.commit().map_err(|e| e.to_string())?;
    Ok(key)
}

/// SHA-256 over every table, each in key order, in this fixed order (the
/// simulator's trace hashes depend on it; see `crosstalk_service::digest`).
pub(crate) fn digest(txn: &ReadTransaction) -> Result<String, redb::Error> {
    StateDigest::new(txn)
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
        .and_then(|d| d.table(CONTACTS))
        .and_then(|d| d.table(MESSAGES))
        .and_then(|d| d.table(INBOX))
        .and_then(|d| d.table(SENT))
        .and_then(|d| d.table(HELD_MESSAGES))
        .and_then(|d| d.table(FINGERPRINTS))
        .and_then(|d| d.table(FINGERPRINTS_RECEIVED))
        .and_then(|d| d.table(ORDERS))
        .and_then(|d| d.table(ORDERS_BY_ACCOUNT))
        .and_then(|d| d.table(HELD_ORDERS))
        .and_then(|d| d.table(NOTIFICATIONS))
        .and_then(|d| d.finish())
}
