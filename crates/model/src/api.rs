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
    /// The legal deadline (one month after the request, GDPR Art. 12(3)),
    /// later if an agent extended it with a reason.
    pub due_at_ms: u64,
    pub overdue: bool,
    pub extension_reason: Option<String>,
    pub snapshot_at_ms: Option<u64>,
    /// Path of the download, present once ready: `/v1/downloads/{token}`.
    pub download_path: Option<String>,
    pub expires_at_ms: Option<u64>,
    pub downloads_left: Option<u32>,
    pub failure: Option<String>,
}

/// A support ticket asking for someone's data, as the requester sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketRequest {
    /// The email of the account whose data is asked for.
    pub claimed_email: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// A challenge went to the account's own feed (if such an account exists).
    AwaitingVerification,
    Verified,
    /// Too many wrong codes.
    Rejected,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TicketStatus {
    pub ticket_id: u64,
    pub state: TicketState,
    pub export_id: Option<ExportId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyTicketRequest {
    pub code: String,
}

/// A ticket as a support agent sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentTicketView {
    pub ticket_id: u64,
    pub state: TicketState,
    pub claimed_email: String,
    pub message: String,
    pub export_id: Option<ExportId>,
}

/// The optional body of an agent's resend (`POST
/// /v1/agent/tickets/{id}/resend-link`). An empty body or `{}` resends the
/// ticket's own export. The console takes no archive: naming one
/// (`{"export_id": 7}`, the "attach archive" field real consoles have) is
/// refused with a 400 and audited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendLinkRequest {
    #[serde(default)]
    pub export_id: Option<ExportId>,
}

/// What an agent offers as proof of identity (always refused: identity is
/// proven only by the challenge sent to the account).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualVerificationRequest {
    #[serde(default)]
    pub facts: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: u64,
    pub agent: String,
    pub action: String,
    pub ticket_id: Option<u64>,
    pub export_id: Option<ExportId>,
    pub outcome: String,
}

/// Workers: claim the oldest job that needs work.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub worker: String,
}

/// A job a worker holds a lease on. `fence` must accompany every later call;
/// a higher fence (another worker's claim) makes this one's calls fail.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClaimedJob {
    pub export_id: ExportId,
    pub subject: AccountId,
    pub fence: u64,
    pub lease_expires_at_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceRequest {
    pub fence: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteJobRequest {
    pub fence: u64,
    pub snapshot_at_ms: u64,
    pub recording_ids: Vec<RecordingId>,
    /// Standard base64 of the zip archive.
    pub archive_base64: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailJobRequest {
    pub fence: u64,
    pub reason: String,
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
    Purchase {
        item: String,
    },
    /// "Alexa, send this to Ann": the capture itself, as a voice message to
    /// the contact named exactly `contact_name` in the owner's contacts.
    /// Held like a purchase; then it waits for the owner's confirmation.
    Message {
        contact_name: String,
    },
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
    /// A spoken message command, held until it is clear the audio was not
    /// broadcast media heard in many homes; it cannot be confirmed yet.
    Held,
    /// Resolved, waiting for the sender's confirmation; nothing delivered.
    Pending,
    Delivered,
    /// A spoken message command that turned out to be broadcast audio
    /// heard by many households: never sent.
    SuppressedMediaEvent,
    /// Its recording was deleted while it was held.
    Cancelled,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MessageView {
    pub message_id: u64,
    pub state: MessageState,
    pub recording_id: RecordingId,
    pub resolved_contact: Contact,
    /// Spoken ("Alexa, send this to Ann"), as opposed to sent from the app.
    #[serde(default)]
    pub spoken: bool,
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

/// Something the service tells an account holder (delivered to the
/// account's own, authenticated feed: its verified contact channel).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub seq: u64,
    pub kind: String,
    pub text: String,
    pub at_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyRequest {
    pub kind: String,
    pub text: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LookupResponse {
    pub account_id: AccountId,
}

/// Which of these recordings does the subject still have?
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveCheckRequest {
    pub ids: Vec<RecordingId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveCheckResponse {
    pub live: Vec<RecordingId>,
}
