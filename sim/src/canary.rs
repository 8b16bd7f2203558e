//! The canary: a deliberately leaky wrapper in front of the export service.
//!
//! Used only by the harness's own tests (a scenario with
//! `[canary] leak_into_archives = true`) to prove that the oracle sees a
//! leak. The wrapper remembers one audio file from each archive it serves
//! and slips the remembered file from a *different* caller's archive into
//! the next download, the way a shared staging path or a mixed-up cache
//! would. The SUT itself is untouched; the oracle must catch the leak from
//! the watermark alone.
//!
//! [`break_store`] breaks the store for the harness's tests in one of seven
//! ways, with no fault injected anywhere: the first history listing panics
//! inside its handler (on the wire, a connection reset), or is answered 500
//! with a JSON error body, or every range deletion's answer names a
//! recording that is not the requester's, or someone else's recording is
//! refused 403 instead of looking nonexistent, or a spoken message awaiting
//! its sender's confirmation is listed as delivered, or a sign-up or message
//! confirmation the store refused (409) is answered as accepted, an upload
//! whose key was reused for other content (409) is answered as a
//! duplicate, a collection audio read the store refused (503) is answered
//! 404 as if deleted, or a message's audio plays for its addressee before
//! its sender confirmed it (an inbox pre-staged at send time).
//! (`NoRetryBackoff` breaks the export service's retry settings instead;
//! `canary/paging.rs` breaks it at its page clamp: "delete all" deletes one
//! page, or a full history page loses its cursor.)
//! The oracle must fail each run.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crosstalk_service::bearer_token;
use std::io::{Cursor, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

mod feed;
mod paging;
mod storage;

#[derive(Default)]
struct Stash {
    /// (caller's bearer token, audio entry) from the last archive served.
    remembered: Option<(String, Vec<u8>)>,
}

pub fn wrap(router: Router) -> Router {
    let stash = Arc::new(Mutex::new(Stash::default()));
    router.layer(axum::middleware::from_fn_with_state(stash, leak))
}

async fn leak(State(stash): State<Arc<Mutex<Stash>>>, request: Request, next: Next) -> Response {
    let is_download = request.uri().path().starts_with("/v1/downloads/");
    let caller = bearer_token(request.headers()).map(str::to_string);
    let response = next.run(request).await;
    let (Some(caller), true, true) = (caller, is_download, response.status().is_success()) else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let mut stash = stash.lock().unwrap_or_else(|p| p.into_inner());
    let foreign = match &stash.remembered {
        Some((other, audio)) if *other != caller => Some(audio.clone()),
        _ => None,
    };
    let (rewritten, first_audio) =
        rewrite(&bytes, foreign.as_deref()).unwrap_or((bytes.to_vec(), None));
    if let Some(audio) = first_audio {
        stash.remembered = Some((caller, audio));
    }
    Response::from_parts(parts, Body::from(rewritten))
}

/// Copy the archive, adding `extra` as one more audio entry; also return the
/// archive's first audio entry.
fn rewrite(
    bytes: &[u8],
    extra: Option<&[u8]>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), zip::result::ZipError> {
    let mut input = zip::ZipArchive::new(Cursor::new(bytes))?;
    let mut output = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    let mut first_audio = None;
    for index in 0..input.len() {
        let mut file = input.by_index(index)?;
        let name = file.name()?.to_string();
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        if first_audio.is_none() && name.starts_with("audio/") {
            first_audio = Some(data.clone());
        }
        output.start_file(name, options)?;
        output.write_all(&data)?;
    }
    if let Some(extra) = extra {
        output.start_file("audio/0.wav", options)?;
        output.write_all(extra)?;
    }
    Ok((output.finish()?.into_inner(), first_audio))
}

/// How a test-only wrapper in front of the store breaks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryBreak {
    /// The first history listing's handler panics.
    PanicInHandler,
    /// The first history listing is answered 500 with a JSON error body.
    ServerError,
    /// Every range deletion's answer also names the recording the store
    /// acknowledged last (most often someone else's).
    ForeignDeletion,
    /// Someone else's recording is refused 403 ("not yours") instead of
    /// 404: its existence shows.
    ExistenceLeak,
    /// The sender's list of outgoing messages shows every spoken message
    /// still awaiting its sender's confirmation as delivered.
    DeliveredUnconfirmed,
    /// A sign-up or a message confirmation the store refused with 409 is
    /// answered 200, as if accepted (the clients' quirks must notice).
    RefusalsAccepted,
    /// An upload refused 409 (its key reused for other content) is answered
    /// 200 as a duplicate of the last recording that device token was
    /// given: the new capture silently dropped.
    UploadConflictsAsDuplicates,
    /// Every playback answer is kept (per caller and path) and served again,
    /// deletions or not: a response cache that never evicts. Caught by
    /// the real-threads harness's quiescent probes.
    StaleAudio,
    /// A collection audio read the store refused as unavailable (503) is
    /// answered 404, "deleted since it was listed": the worker leaves the
    /// recording out of the archive (the audio-error-as-deleted defect, on
    /// the wire). Caught only when the store does refuse such reads
    /// (`store.service.unavailable`).
    UnavailableAsDeleted,
    /// Not the store: the export service is configured to retry a failed
    /// job at once and without end (no backoff, no attempt limit), while the
    /// oracle judges by the real retry contract (`check/poison.rs`).
    NoRetryBackoff,
    /// Inbox playback checks only that a message was addressed to the
    /// caller: a message its sender never confirmed plays by its id (an
    /// inbox pre-staged when the message was sent).
    PrestagedInbox,
    /// An upload that names no ownership epoch is filed in the device's
    /// first epoch instead of its current one ("absent" read as "the
    /// first"): after a sale, the buyer's captures from older firmware land
    /// in the seller's history.
    EpochlessAsFirst,
    /// A device's retry of an upload whose recording its owner deleted is
    /// answered as a new recording (the capture stored again under a new
    /// id) instead of the old one as a duplicate.
    RetryAfterDeletionStoredAgain,
    /// "Delete all my history" deletes only the first page of the history
    /// (`MAX_PAGE_ITEMS` recordings) and answers with those.
    DeleteAllFirstPage,
    /// A history page full at the store's clamp comes back without its
    /// cursor: a walk ends after one page.
    ListingFirstPageOnly,
    /// The store's disk acknowledges the syncs of every request of one kind
    /// without performing them: such a write is acknowledged before it is
    /// durable (the close-no-fsync defect, on the disk). Seen only when the
    /// store crashes before its next real sync
    /// (`faults/ack_crash.rs`).
    NotDurable {
        write: crate::faults::ack_crash::RareWrite,
    },
    /// The store's disk answers a failed sync as a success (the
    /// fsync-error-swallowed defect, on the disk): what the store
    /// acknowledges then is lost in the power loss that follows
    /// (`Crash::sync_error`).
    SyncErrorsSwallowed,
    /// The store's service routes take any bearer token (the
    /// service-audio-unauthenticated defect, on the wire): a user's own
    /// session reads someone else's recordings through them.
    ServiceRoutesOpen,
    /// The audio of the first recording the store acknowledged is gone
    /// while it stays listed (a crash between an index commit and its
    /// audio's): every playback of it answers 500.
    AudioMissing,
    /// A playback answered while a deletion of the same recording was in
    /// flight is kept and served again to every later playback of it (a
    /// cache the deletion evicted before it committed, refilled from the
    /// old snapshot). Caught by the real-threads harness's deletion storms.
    RefilledDuringDeletion,
    /// A read of the notification feed after a cursor takes the cursor's
    /// `seq` for a count of notifications already seen and skips that many
    /// of the whole feed (`canary/feed.rs`).
    FeedCursorAsCount,
}

/// The store's `disk` answers a failed sync as a success (see
/// [`CanaryBreak::SyncErrorsSwallowed`]).
pub fn swallow_sync_errors(router: Router, disk: &crate::faults::disk::SimDisk) -> Router {
    disk.set_sync_errors_swallowed(true);
    router
}

/// Requests to the store's service routes carry `service_token` whatever
/// their caller sent (see [`CanaryBreak::ServiceRoutesOpen`]).
pub fn open_service_routes(router: Router, service_token: String) -> Router {
    router.layer(axum::middleware::from_fn(
        move |mut request: Request, next: Next| {
            let token = service_token.clone();
            async move {
                let path = request.uri().path();
                if path.starts_with("/v1/service/accounts/")
                    && let Ok(value) = http::HeaderValue::from_str(&format!("Bearer {token}"))
                {
                    request
                        .headers_mut()
                        .insert(http::header::AUTHORIZATION, value);
                }
                next.run(request).await
            }
        },
    ))
}

/// The store's `disk` drops the syncs of every request of kind `write`
/// (see [`CanaryBreak::NotDurable`]).
pub fn unsynced(
    router: Router,
    write: crate::faults::ack_crash::RareWrite,
    disk: crate::faults::disk::SimDisk,
) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let disk = disk.clone();
            async move {
                let kind =
                    crate::faults::ack_crash::RareWrite::of(request.method(), request.uri().path());
                if kind != Some(write) {
                    return next.run(request).await;
                }
                disk.set_syncs_dropped(true);
                let response = next.run(request).await;
                disk.set_syncs_dropped(false);
                response
            }
        },
    ))
}

/// Break the store as `how` says; `done` is shared by the store's
/// incarnations so that a once-per-run break stays once per run.
pub fn break_store(router: Router, how: CanaryBreak, done: Arc<AtomicBool>) -> Router {
    let state = BreakState {
        done,
        last_ingested: Arc::default(),
        kept_audio: Arc::new(Mutex::new(KeptAudio::new())),
        last_by_token: Arc::new(Mutex::new(LastByToken::new())),
        prestaged: Arc::default(),
        deleted: Arc::default(),
        remembered: Arc::default(),
        unwrapped: router.clone(),
    };
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| state.clone().apply(how, request, next),
    ))
}

/// What the breaks of one store remember across its requests.
#[derive(Clone)]
struct BreakState {
    /// Whether the once-per-run break happened.
    done: Arc<AtomicBool>,
    last_ingested: Arc<Mutex<Option<u64>>>,
    kept_audio: Arc<Mutex<KeptAudio>>,
    last_by_token: Arc<Mutex<LastByToken>>,
    prestaged: Arc<Mutex<Prestaged>>,
    deleted: Arc<Mutex<std::collections::BTreeSet<u64>>>,
    remembered: Arc<Mutex<storage::Remembered>>,
    /// The store's router without the break (for the paging breaks).
    unwrapped: Router,
}

impl BreakState {
    /// One request through the break: the breaks that answer instead of
    /// the store, or the store's answer through [`Self::after`].
    async fn apply(self, how: CanaryBreak, request: Request, next: Next) -> Response {
        if matches!(
            how,
            CanaryBreak::AudioMissing | CanaryBreak::RefilledDuringDeletion
        ) {
            return storage::break_storage(how, &self.remembered, request, next).await;
        }
        if matches!(
            how,
            CanaryBreak::DeleteAllFirstPage | CanaryBreak::ListingFirstPageOnly
        ) {
            return paging::break_paging(how, self.unwrapped, request, next).await;
        }
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        if how == CanaryBreak::FeedCursorAsCount {
            if method == http::Method::GET && path == "/v1/notifications" {
                return feed::cursor_as_count(request, next).await;
            }
            return next.run(request).await;
        }
        let token = bearer_token(request.headers()).unwrap_or("").to_string();
        if how == CanaryBreak::StaleAudio && path.ends_with("/audio") {
            return serve_kept_audio(request, next, &self.kept_audio).await;
        }
        if how == CanaryBreak::PrestagedInbox {
            return prestage_inbox(request, next, &self.prestaged).await;
        }
        if how == CanaryBreak::RetryAfterDeletionStoredAgain {
            let response = next.run(request).await;
            return answer_deleted_retries_anew(&method, &path, response, &self.deleted).await;
        }
        if how == CanaryBreak::EpochlessAsFirst
            && method == http::Method::POST
            && path == "/v1/recordings"
        {
            return next.run(file_in_first_epoch(request).await).await;
        }
        let listing = method == http::Method::GET && path == "/v1/recordings";
        if listing
            && how != CanaryBreak::ForeignDeletion
            && how != CanaryBreak::StaleAudio
            && how != CanaryBreak::UnavailableAsDeleted
            && how != CanaryBreak::NoRetryBackoff
            && !self.done.swap(true, Ordering::Relaxed)
        {
            if how == CanaryBreak::PanicInHandler {
                panic_as_a_service("index and row disagree");
            }
            return crosstalk_service::ApiError::internal("index and row disagree").into_response();
        }
        let response = next.run(request).await;
        self.after(how, &method, &path, token, response).await
    }

    /// The breaks that change the store's answer.
    async fn after(
        &self,
        how: CanaryBreak,
        method: &http::Method,
        path: &str,
        token: String,
        response: Response,
    ) -> Response {
        let post = method == http::Method::POST;
        if how == CanaryBreak::UnavailableAsDeleted
            && path.starts_with("/v1/service/")
            && path.ends_with("/audio")
            && response.status() == http::StatusCode::SERVICE_UNAVAILABLE
        {
            return crosstalk_service::ApiError::not_found("no such recording").into_response();
        }
        if how == CanaryBreak::ExistenceLeak {
            return reveal_existence(path, response);
        }
        if how == CanaryBreak::RefusalsAccepted && post {
            return accept_conflicts(path, response);
        }
        if how == CanaryBreak::UploadConflictsAsDuplicates && post && path == "/v1/recordings" {
            return conflict_as_duplicate(token, response, &self.last_by_token).await;
        }
        if how == CanaryBreak::DeliveredUnconfirmed
            && method == http::Method::GET
            && path == "/v1/messages"
        {
            return claim_delivered(response).await;
        }
        if how != CanaryBreak::ForeignDeletion || !post || !response.status().is_success() {
            return response;
        }
        match path {
            "/v1/recordings" => remember_ingested(response, &self.last_ingested).await,
            "/v1/recordings/delete" => name_foreign(response, &self.last_ingested).await,
            _ => response,
        }
    }
}

/// Remember each recording a single deletion removed; answer a duplicate
/// upload of one of them as a new recording.
async fn answer_deleted_retries_anew(
    method: &http::Method,
    path: &str,
    response: Response,
    deleted: &Mutex<std::collections::BTreeSet<u64>>,
) -> Response {
    use crosstalk_model::api::IngestResponse;
    if !response.status().is_success() {
        return response;
    }
    if *method == http::Method::DELETE
        && let Some(id) = path
            .strip_prefix("/v1/recordings/")
            .and_then(|id| id.parse().ok())
    {
        deleted.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
        return response;
    }
    if *method != http::Method::POST || path != "/v1/recordings" {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    if let Ok(answer) = serde_json::from_slice::<IngestResponse>(&bytes)
        && answer.duplicate
        && deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&answer.recording_id.0)
    {
        let anew = IngestResponse {
            recording_id: crosstalk_model::RecordingId(answer.recording_id.0 + (1 << 40)),
            duplicate: false,
        };
        return (http::StatusCode::OK, axum::Json(anew)).into_response();
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// An upload naming no ownership epoch, rewritten to name the device's
/// first (epoch 0); any other request as it was.
async fn file_in_first_epoch(request: Request) -> Request {
    use crosstalk_model::api::IngestRequest;
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let rewritten = match serde_json::from_slice::<IngestRequest>(&bytes) {
        Ok(mut upload) if upload.ownership_epoch.is_none() => {
            upload.ownership_epoch = Some(0);
            serde_json::to_vec(&upload).unwrap_or_else(|_| bytes.to_vec())
        }
        _ => bytes.to_vec(),
    };
    let mut parts = parts;
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Request::from_parts(parts, Body::from(rewritten))
}

/// The last recording id each device token was given by an upload answer.
type LastByToken = std::collections::BTreeMap<String, u64>;

/// Remember the id a successful upload answer gives; answer a 409 with a
/// duplicate of the token's last recording instead (upload-conflict-as-
/// duplicate: idempotency by key alone).
async fn conflict_as_duplicate(
    token: String,
    response: Response,
    last_by_token: &Mutex<LastByToken>,
) -> Response {
    use crosstalk_model::api::IngestResponse;
    let status = response.status();
    if status == http::StatusCode::CONFLICT {
        let last = last_by_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&token)
            .copied();
        let Some(id) = last else {
            return response;
        };
        let answer = IngestResponse {
            recording_id: crosstalk_model::RecordingId(id),
            duplicate: true,
        };
        return (http::StatusCode::OK, axum::Json(answer)).into_response();
    }
    if !status.is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    if let Ok(answer) = serde_json::from_slice::<IngestResponse>(&bytes) {
        last_by_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, answer.recording_id.0);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Audio answers kept by the caller's credential and the path.
type KeptAudio = std::collections::BTreeMap<String, bytes::Bytes>;

/// Serve a kept answer if there is one; else ask the store and keep a 200.
async fn serve_kept_audio(request: Request, next: Next, kept: &Mutex<KeptAudio>) -> Response {
    let credential = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let key = format!("{credential}|{}", request.uri().path());
    if let Some(bytes) = kept.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return ([(http::header::CONTENT_TYPE, "audio/wav")], bytes.clone()).into_response();
    }
    let response = next.run(request).await;
    if response.status() != http::StatusCode::OK {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    kept.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, bytes.clone());
    Response::from_parts(parts, Body::from(bytes))
}

/// What the pre-staged inbox remembers: each upload's audio by recording
/// id, each message's recording and addressee, the messages confirmed
/// since, and whose address each session is.
#[derive(Default)]
struct Prestaged {
    audio: std::collections::BTreeMap<u64, bytes::Bytes>,
    message: std::collections::BTreeMap<u64, (u64, String)>,
    confirmed: std::collections::BTreeSet<u64>,
    session_email: std::collections::BTreeMap<String, String>,
}

/// Remember uploads, sessions and messages; answer an inbox playback the
/// store refused, asked for by a message's addressee, with its audio if
/// its sender never confirmed it.
async fn prestage_inbox(request: Request, next: Next, seen: &Mutex<Prestaged>) -> Response {
    use crosstalk_model::api::{IngestRequest, IngestResponse, MessageView};
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let caller = bearer_token(request.headers()).map(str::to_string);
    let (parts, body) = request.into_parts();
    let sent = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let response = next
        .run(Request::from_parts(parts, Body::from(sent.clone())))
        .await;
    let (parts, body) = response.into_parts();
    let answer = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let ok = parts.status.is_success();
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let inbox_audio = path
        .strip_prefix("/v1/inbox/")
        .and_then(|rest| rest.strip_suffix("/audio"))
        .and_then(|id| id.parse::<u64>().ok());
    match (method, path.as_str(), inbox_audio) {
        (http::Method::POST, "/v1/recordings", _) if ok => {
            let upload = serde_json::from_slice::<IngestRequest>(&sent).ok();
            let stored = serde_json::from_slice::<IngestResponse>(&answer).ok();
            if let (Some(upload), Some(stored)) = (upload, stored)
                && let Ok(audio) = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    &upload.audio_base64,
                )
            {
                seen.audio.insert(stored.recording_id.0, audio.into());
            }
        }
        (http::Method::POST, "/v1/accounts" | "/v1/sessions", _) if ok => {
            let asked = serde_json::from_slice::<crosstalk_model::api::LoginRequest>(&sent);
            let given = serde_json::from_slice::<crosstalk_model::api::SignupResponse>(&answer);
            if let (Ok(asked), Ok(given)) = (asked, given) {
                let email = asked.email.trim().to_ascii_lowercase();
                seen.session_email.insert(given.session_token, email);
            }
        }
        (http::Method::POST, "/v1/messages", _) if ok => {
            if let Ok(m) = serde_json::from_slice::<MessageView>(&answer) {
                let to = m.resolved_contact.email.to_ascii_lowercase();
                seen.message.insert(m.message_id, (m.recording_id.0, to));
            }
        }
        (http::Method::POST, confirm, _) if ok && confirm.ends_with("/confirm") => {
            if let Ok(m) = serde_json::from_slice::<MessageView>(&answer) {
                seen.confirmed.insert(m.message_id);
            }
        }
        (http::Method::GET, _, Some(id))
            if parts.status == http::StatusCode::NOT_FOUND && !seen.confirmed.contains(&id) =>
        {
            let addressee = caller.and_then(|c| seen.session_email.get(&c).cloned());
            let audio = seen
                .message
                .get(&id)
                .filter(|(_, to)| Some(to) == addressee.as_ref())
                .and_then(|(recording, _)| seen.audio.get(recording));
            if let Some(audio) = audio {
                return ([(http::header::CONTENT_TYPE, "audio/wav")], audio.clone())
                    .into_response();
            }
        }
        _ => {}
    }
    Response::from_parts(parts, Body::from(answer))
}

/// A 404 for a recording id below the highest one anybody was given turns
/// into a 403 (the service "knows" it exists, just not for you).
fn reveal_existence(path: &str, response: Response) -> Response {
    let audio_of_id = path
        .strip_prefix("/v1/recordings/")
        .and_then(|rest| rest.strip_suffix("/audio"))
        .and_then(|id| id.parse::<u64>().ok());
    match audio_of_id {
        Some(id) if id != u64::MAX && response.status() == http::StatusCode::NOT_FOUND => {
            crosstalk_service::ApiError::forbidden("this recording belongs to another account")
                .into_response()
        }
        _ => response,
    }
}

/// A 409 to a sign-up or to a message confirmation turns into a 200.
fn accept_conflicts(path: &str, response: Response) -> Response {
    let refusable = path == "/v1/accounts" || path.ends_with("/confirm");
    if !refusable || response.status() != http::StatusCode::CONFLICT {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    parts.status = http::StatusCode::OK;
    Response::from_parts(parts, body)
}

async fn claim_delivered(response: Response) -> Response {
    use crosstalk_model::api::{MessageState, MessageView};
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let rewritten = serde_json::from_slice::<Vec<MessageView>>(&bytes)
        .ok()
        .and_then(|mut messages| {
            for m in messages.iter_mut().filter(|m| m.spoken) {
                if m.state == MessageState::Pending {
                    m.state = MessageState::Delivered;
                }
            }
            serde_json::to_vec(&messages).ok()
        });
    Response::from_parts(
        parts,
        Body::from(rewritten.unwrap_or_else(|| bytes.to_vec())),
    )
}

async fn remember_ingested(response: Response, last: &Mutex<Option<u64>>) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    if let Ok(ingested) = serde_json::from_slice::<crosstalk_model::api::IngestResponse>(&bytes) {
        *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(ingested.recording_id.0);
    }
    Response::from_parts(parts, Body::from(bytes))
}

async fn name_foreign(response: Response, last: &Mutex<Option<u64>>) -> Response {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let extra = *last.lock().unwrap_or_else(|p| p.into_inner());
    let rewritten = serde_json::from_slice::<crosstalk_model::api::DeleteResponse>(&bytes)
        .ok()
        .and_then(|mut answer| {
            let id = crosstalk_model::RecordingId(extra?);
            if !answer.deleted.contains(&id) {
                answer.deleted.push(id);
            }
            serde_json::to_vec(&answer).ok()
        });
    Response::from_parts(
        parts,
        Body::from(rewritten.unwrap_or_else(|| bytes.to_vec())),
    )
}

/// Panic the way a service would (located here, which the panic collector
/// counts as a service, not as the harness).
pub fn panic_as_a_service(message: &str) -> ! {
    panic!("{message}")
}
