//! Wire types of the store and export HTTP APIs (JSON bodies).
//!
//! Both services and every client (the simulator's actors, the fuzz targets,
//! a real integration) share these definitions, so a field renamed on one
//! side is a compile error on the other.

use crate::{AccountId, DeviceId, ExportId, Recording, RecordingId};
use serde::{Deserialize, Serialize};

/// The body of every 4xx/5xx response: a stable machine code and a sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub email: String,
    /// 8 to 128 bytes; stored only as a salted PBKDF2 hash.
    pub password: String,
}

/// `POST /v1/sessions`: a new session for an existing account.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignupResponse {
    pub account_id: AccountId,
    pub session_token: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterDeviceRequest {
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegisterDeviceResponse {
    pub device_id: DeviceId,
    pub device_token: String,
    pub ownership_epoch: u32,
}

/// A device uploads one capture. `upload_key` makes retries idempotent: the
/// same device sending the same key twice gets the same recording back.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    pub upload_key: String,
    pub captured_at_ms: u64,
    pub transcript: String,
    /// Standard base64 of the audio file (a WAV).
    pub audio_base64: String,
    /// The ownership epoch the device was in when it captured this (see
    /// device transfer); absent means the device's current epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership_epoch: Option<u32>,
    /// A command the device understood in the utterance, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Intent>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IngestResponse {
    pub recording_id: RecordingId,
    /// True when this upload key had already been stored.
    pub duplicate: bool,
}

/// A recording as listed to its owner (or to the export service).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingView {
    pub id: RecordingId,
    pub device: DeviceId,
    pub captured_at_ms: u64,
    pub received_at_ms: u64,
    pub transcript: String,
    pub audio_sha256: String,
    pub audio_len: u64,
}

impl From<&Recording> for RecordingView {
    fn from(r: &Recording) -> Self {
        Self {
            id: r.id,
            device: r.device,
            captured_at_ms: r.captured_at_ms,
            received_at_ms: r.received_at_ms,
            transcript: r.transcript.clone(),
            audio_sha256: r.audio_sha256.clone(),
            audio_len: r.audio_len,
        }
    }
}

/// One page of a listing. `next_cursor` is opaque and bound to the account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordingPage {
    pub account_id: AccountId,
    pub items: Vec<RecordingView>,
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    pub session_token: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IntrospectResponse {
    pub account_id: AccountId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportState {
    Pending,
    Ready,
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportStatus {
    pub export_id: ExportId,
    pub state: ExportState,
    pub requested_at_ms: u64,
    pub snapshot_at_ms: Option<u64>,
    /// Path of the download, present once ready: `/v1/downloads/{token}`.
    pub download_path: Option<String>,
    pub expires_at_ms: Option<u64>,
    pub failure: Option<String>,
}

/// `manifest.json` inside every export archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub subject: AccountId,
    pub export_id: ExportId,
    pub snapshot_at_ms: u64,
    pub recordings: Vec<ManifestEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub id: RecordingId,
    pub device: DeviceId,
    pub captured_at_ms: u64,
    pub transcript: String,
    pub audio_path: String,
    pub sha256: String,
}

/// The format tag written into every manifest.
pub const MANIFEST_FORMAT: &str = "crosstalk-dsar-export/1";

/// `POST /v1/recordings/delete`: either `all`, or a capture-time range
/// (device clock, inclusive). Exactly one of the two forms.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    #[serde(default)]
    pub all: bool,
    pub captured_from_ms: Option<u64>,
    pub captured_to_ms: Option<u64>,
}

/// What a deletion removed. Returned only once the deletion is durable.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeleteResponse {
    pub deleted: Vec<RecordingId>,
}

/// A command the device understood in an utterance (on-device language
/// understanding). The store acts on it only after a hold period, and never
/// when the capture turns out to be broadcast media heard by many homes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Intent {
    Purchase { item: String },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferDeviceRequest {
    /// The email of the account that receives the device.
    pub to_email: String,
}

/// A device's new credentials after a transfer or a factory reset.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceCredentials {
    pub device_id: DeviceId,
    pub device_token: String,
    pub ownership_epoch: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddContactRequest {
    pub name: String,
    pub email: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub email: String,
}

/// Ask to send one of one's recordings to a contact, by the contact's name.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    pub recording_id: RecordingId,
    pub contact_name: String,
}

/// Confirm a pending message by naming the contact it resolved to.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmMessageRequest {
    pub contact_email: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Resolved, waiting for the sender's confirmation; nothing delivered.
    Pending,
    Delivered,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MessageView {
    pub message_id: u64,
    pub state: MessageState,
    pub recording_id: RecordingId,
    pub resolved_contact: Contact,
}

/// A delivered message as its recipient sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InboxItem {
    pub message_id: u64,
    pub from: AccountId,
    pub recording: RecordingView,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Held: the store waits to see whether the capture was broadcast media.
    Held,
    Placed,
    /// Never placed: the capture was broadcast media heard by many homes.
    SuppressedMediaEvent,
    /// Never placed: the recording was deleted while the order was held.
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_id: u64,
    pub item: String,
    pub source_recording: RecordingId,
    pub state: OrderState,
}
