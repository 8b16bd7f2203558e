//! The store's HTTP API: the axum [`router`], its handlers (parse and
//! authenticate the request, call one `Store` operation, shape the reply),
//! and the `store.reply.stall` / `store.ingest.reply_lost` /
//! `store.service.unavailable` / `store.service.subject_unavailable` fault
//! points.
//! The route table is in the crate's documentation (`lib.rs`).

use crate::recordings::{DeleteSelection, ListScope, NewRecording, decode_audio};
use crate::store::Store;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use crosstalk_model::api::{
    AddContactRequest, ConfirmMessageRequest, Contact, DeleteRequest, DeleteResponse,
    DeviceCredentials, InboxItem, IngestRequest, IngestResponse, IntrospectRequest,
    IntrospectResponse, LiveCheckRequest, LiveCheckResponse, LoginRequest, LookupResponse,
    MessageView, Notification, NotifyRequest, OrderView, RecordingPage, RegisterDeviceRequest,
    RegisterDeviceResponse, SendMessageRequest, SignupRequest, SignupResponse,
    TransferDeviceRequest,
};
use crosstalk_model::{AccountId, DeviceId, MAX_TRANSCRIPT_BYTES, RecordingId};
use crosstalk_service::{ApiError, Bug, JsonBody, bearer_token, json_errors};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Largest request body, in bytes, on any route (an upload's base64 audio
/// plus transcript fits; anything larger is refused with 413).
pub const MAX_REQUEST_BYTES: usize = crosstalk_model::MAX_AUDIO_BYTES * 4 / 3 + 64 * 1024;

/// How long the `store.reply.stall` fault point holds a service request:
/// longer than the export's per-request timeout, so its client gives up.
pub const REPLY_STALL: std::time::Duration = std::time::Duration::from_secs(12);

/// The store's HTTP API.
pub fn router(store: Arc<Store>) -> Router {
    // The export service's routes, behind the `store.reply.stall` fault point.
    let service_routes = Router::new()
        .route("/v1/service/lookup", get(service_lookup))
        .route(
            "/v1/service/accounts/{account}/notifications",
            post(service_notify),
        )
        .route(
            "/v1/service/accounts/{account}/recordings/live",
            post(service_live),
        )
        .route("/v1/service/introspect", post(introspect))
        .route(
            "/v1/service/accounts/{account}/recordings",
            get(service_list),
        )
        .route(
            "/v1/service/accounts/{account}/recordings/{id}/audio",
            get(service_audio),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            store.clone(),
            reply_stall,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            store.clone(),
            collection_unavailable,
        ));
    Router::new()
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/v1/accounts", post(signup))
        .route("/v1/sessions", post(login))
        .route("/v1/accounts/me", axum::routing::delete(close_account))
        .route("/v1/devices", post(register_device))
        .route("/v1/devices/{id}/transfer", post(transfer_device))
        .route("/v1/devices/{id}/reset", post(reset_device))
        .route("/v1/contacts", post(add_contact).get(list_contacts))
        .route("/v1/messages", post(send_message).get(outgoing_messages))
        .route("/v1/messages/{id}/confirm", post(confirm_message))
        .route("/v1/inbox", get(inbox))
        .route("/v1/inbox/{id}/audio", get(inbox_audio))
        .route("/v1/orders", get(orders))
        .route("/v1/notifications", get(notifications))
        .route("/v1/recordings", post(ingest).get(list_own))
        .route("/v1/recordings/{id}", axum::routing::delete(delete_one))
        .route("/v1/recordings/delete", post(delete_many))
        .route("/v1/recordings/{id}/audio", get(own_audio))
        .merge(service_routes)
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::map_response(crosstalk_service::no_store))
        .with_state(store)
}

/// Fault point `store.reply.stall`: the store sits on a service request for
/// [`REPLY_STALL`] before handling it (a stuck disk, a long GC pause), so
/// the export's pooled connection times out with the request in flight.
/// Inert unless built with `fault-points` and injected.
async fn reply_stall(
    State(store): State<Arc<Store>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if store.injected.fires("store.reply.stall") {
        tokio::time::sleep(REPLY_STALL).await;
    }
    next.run(request).await
}

/// The account a request's bearer session names. A handler that takes it
/// runs only for a valid session: a missing or unknown one is answered 401
/// before the request's path or body is read.
struct Session(AccountId);

impl FromRequestParts<Arc<Store>> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, store: &Arc<Store>) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("missing bearer session"))?;
        store.authenticate_session(token).map(Session)
    }
}

/// Fault points `store.service.unavailable` (now and then) and
/// `store.service.subject_unavailable` (persistently for one account, as
/// when the shard holding its recordings is down): a collection read of the
/// export's worker — a listing page or an audio file — is refused 503 with
/// a JSON error body ("try again"), before it is handled or stalled. The
/// worker must retry later, never take the refusal for "deleted". Inert
/// unless built with `fault-points` and injected.
async fn collection_unavailable(
    State(store): State<Arc<Store>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Only the service principal's reads reach the backend: anyone else is
    // refused by authentication first and learns nothing of its state.
    if let Some(account) = collection_read_account(request.method(), request.uri().path())
        && bears_service_token(request.headers(), &store)
    {
        let injected = &store.injected;
        if injected.fires_for("store.service.subject_unavailable", account)
            || injected.fires("store.service.unavailable")
        {
            let refusal =
                ApiError::unavailable("the recording store is briefly unavailable; try again");
            return refusal.into_response();
        }
    }
    next.run(request).await
}

/// Whether `headers` carry the service token (compared by digest, as
/// [`ServicePrincipal`] does).
fn bears_service_token(headers: &axum::http::HeaderMap, store: &Store) -> bool {
    let Some(token) = bearer_token(headers) else {
        return false;
    };
    let presented = Sha256::digest(token.as_bytes());
    let expected = Sha256::digest(store.config.service_token.as_bytes());
    presented
        .iter()
        .zip(expected.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// The account of a collection read (`GET .../accounts/{account}/recordings`
/// or `GET .../accounts/{account}/recordings/{id}/audio`), if `path` is one.
fn collection_read_account(method: &axum::http::Method, path: &str) -> Option<u64> {
    if method != axum::http::Method::GET {
        return None;
    }
    let rest = path.strip_prefix("/v1/service/accounts/")?;
    let (account, rest) = rest.split_once('/')?;
    let account = account.parse().ok()?;
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["recordings"] | ["recordings", _, "audio"] => Some(account),
        _ => None,
    }
}

/// Proof that a request carries the service token (the export service's
/// calls): anyone else is answered 401 or 403 before the handler runs.
struct ServicePrincipal;

impl FromRequestParts<Arc<Store>> for ServicePrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, store: &Arc<Store>) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("missing service token"))?;
        // Compare digests so the comparison time does not depend on the token.
        let presented = Sha256::digest(token.as_bytes());
        let expected = Sha256::digest(store.config.service_token.as_bytes());
        let differ = presented
            .iter()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differ == 0 {
            Ok(ServicePrincipal)
        } else {
            crosstalk_service::probe!("store.service.token_refused");
            Err(ApiError::forbidden("not a service principal"))
        }
    }
}

/// The sign-up rule for an address, as the store reads it (trimmed, lower
/// case): a local part, one `@`, a dotted domain, at most 254 bytes, no
/// whitespace or control characters.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

async fn signup(
    State(store): State<Arc<Store>>,
    JsonBody(body): JsonBody<SignupRequest>,
) -> Result<Response, ApiError> {
    let email = body.email.trim().to_ascii_lowercase();
    if !valid_email(&email) {
        return Err(ApiError::bad_request("email is not a valid address"));
    }
    if body.password.len() < 8 || body.password.len() > 128 {
        return Err(ApiError::bad_request("password must be 8 to 128 bytes"));
    }
    let (account_id, session_token) = store.signup(&email, &body.password)?;
    Ok((
        StatusCode::CREATED,
        Json(SignupResponse {
            account_id,
            session_token,
        }),
    )
        .into_response())
}

async fn login(
    State(store): State<Arc<Store>>,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let email = body.email.trim().to_ascii_lowercase();
    let (account_id, session_token) = store.login(&email, &body.password)?;
    Ok((
        StatusCode::CREATED,
        Json(SignupResponse {
            account_id,
            session_token,
        }),
    )
        .into_response())
}

async fn register_device(
    State(store): State<Arc<Store>>,
    Session(owner): Session,
    JsonBody(body): JsonBody<RegisterDeviceRequest>,
) -> Result<Response, ApiError> {
    if body.name.is_empty() || body.name.len() > 128 {
        return Err(ApiError::bad_request("device name must be 1 to 128 bytes"));
    }
    let (device_id, device_token) = store.register_device(owner, &body.name)?;
    let response = RegisterDeviceResponse {
        device_id,
        device_token,
        ownership_epoch: 0,
    };
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

async fn transfer_device(
    State(store): State<Arc<Store>>,
    Session(owner): Session,
    Path(id): Path<u64>,
    JsonBody(body): JsonBody<TransferDeviceRequest>,
) -> Result<Json<DeviceCredentials>, ApiError> {
    store
        .transfer_device(owner, DeviceId(id), &body.to_email)
        .map(Json)
}

async fn reset_device(
    State(store): State<Arc<Store>>,
    Session(owner): Session,
    Path(id): Path<u64>,
) -> Result<Json<DeviceCredentials>, ApiError> {
    store.reset_device(owner, DeviceId(id)).map(Json)
}

async fn add_contact(
    State(store): State<Arc<Store>>,
    Session(account): Session,
    JsonBody(body): JsonBody<AddContactRequest>,
) -> Result<Response, ApiError> {
    let contact = store.add_contact(account, &body.name, &body.email)?;
    Ok((StatusCode::CREATED, Json(contact)).into_response())
}

async fn list_contacts(
    State(store): State<Arc<Store>>,
    Session(account): Session,
) -> Result<Json<Vec<Contact>>, ApiError> {
    store.contacts(account).map(Json)
}

async fn send_message(
    State(store): State<Arc<Store>>,
    Session(account): Session,
    JsonBody(body): JsonBody<SendMessageRequest>,
) -> Result<Response, ApiError> {
    let message = store.send_message(account, body.recording_id, &body.contact_name)?;
    Ok((StatusCode::ACCEPTED, Json(message)).into_response())
}

async fn outgoing_messages(
    State(store): State<Arc<Store>>,
    Session(account): Session,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    store.outgoing_messages(account).map(Json)
}

async fn confirm_message(
    State(store): State<Arc<Store>>,
    Session(account): Session,
    Path(id): Path<u64>,
    JsonBody(body): JsonBody<ConfirmMessageRequest>,
) -> Result<Json<MessageView>, ApiError> {
    store
        .confirm_message(account, id, &body.contact_email)
        .map(Json)
}

async fn inbox(
    State(store): State<Arc<Store>>,
    Session(account): Session,
) -> Result<Json<Vec<InboxItem>>, ApiError> {
    store.inbox(account).map(Json)
}

async fn inbox_audio(
    State(store): State<Arc<Store>>,
    Session(account): Session,
    Path(id): Path<u64>,
) -> Result<Response, ApiError> {
    store.inbox_audio(account, id).map(wav_response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AfterParams {
    after: Option<u64>,
}

async fn notifications(
    State(store): State<Arc<Store>>,
    Session(account): Session,
    Query(params): Query<AfterParams>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    store
        .notifications(account, params.after.unwrap_or(0))
        .map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupParams {
    email: String,
}

async fn service_lookup(
    State(store): State<Arc<Store>>,
    _: ServicePrincipal,
    Query(params): Query<LookupParams>,
) -> Result<Json<LookupResponse>, ApiError> {
    store
        .lookup_email(&params.email)
        .map(|account_id| Json(LookupResponse { account_id }))
}

async fn service_notify(
    State(store): State<Arc<Store>>,
    _: ServicePrincipal,
    Path(account): Path<u64>,
    JsonBody(body): JsonBody<NotifyRequest>,
) -> Result<Response, ApiError> {
    let notification = store.notify(AccountId(account), &body.kind, &body.text)?;
    Ok((StatusCode::CREATED, Json(notification)).into_response())
}

async fn service_live(
    State(store): State<Arc<Store>>,
    _: ServicePrincipal,
    Path(account): Path<u64>,
    JsonBody(body): JsonBody<LiveCheckRequest>,
) -> Result<Json<LiveCheckResponse>, ApiError> {
    if body.ids.len() > 100_000 {
        return Err(ApiError::too_large("at most 100000 ids per check"));
    }
    store
        .live_recordings(AccountId(account), &body.ids)
        .map(|live| Json(LiveCheckResponse { live }))
}

async fn orders(
    State(store): State<Arc<Store>>,
    Session(account): Session,
) -> Result<Json<Vec<OrderView>>, ApiError> {
    store.orders(account).map(Json)
}

async fn ingest(
    State(store): State<Arc<Store>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<IngestRequest>,
) -> Result<Response, ApiError> {
    let token =
        bearer_token(&headers).ok_or_else(|| ApiError::unauthorized("missing device token"))?;
    let device = store.authenticate_device(token)?;
    if body.upload_key.is_empty() || body.upload_key.len() > 128 {
        return Err(ApiError::bad_request("upload_key must be 1 to 128 bytes"));
    }
    if body.transcript.len() > MAX_TRANSCRIPT_BYTES {
        return Err(ApiError::too_large(format!(
            "transcript exceeds {MAX_TRANSCRIPT_BYTES} bytes"
        )));
    }
    let audio = decode_audio(&body.audio_base64)?;
    if let Some(crosstalk_model::api::Intent::Purchase { item }) = &body.intent
        && (item.is_empty() || item.len() > 200)
    {
        return Err(ApiError::bad_request(
            "a purchase names an item of 1 to 200 bytes",
        ));
    }
    if let Some(crosstalk_model::api::Intent::Message { contact_name }) = &body.intent
        && (contact_name.trim().is_empty() || contact_name.len() > 100)
    {
        return Err(ApiError::bad_request(
            "a spoken message names a contact of 1 to 100 bytes",
        ));
    }
    let upload = NewRecording {
        upload_key: body.upload_key,
        captured_at_ms: body.captured_at_ms,
        transcript: body.transcript,
        audio,
        ownership_epoch: body.ownership_epoch,
        intent: body.intent,
    };
    let (recording_id, duplicate) = store.ingest(&device, upload)?;
    if store.injected.fires("store.ingest.reply_lost") {
        // Committed, but the device never hears so: it must retry with the
        // same upload key and get the same recording back.
        return Err(ApiError::unavailable(
            "injected: the reply to a committed upload was lost",
        ));
    }
    let status = if duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(IngestResponse {
            recording_id,
            duplicate,
        }),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    cursor: Option<String>,
    limit: Option<usize>,
}

const DEFAULT_PAGE_ITEMS: usize = 50;

async fn list_own(
    State(store): State<Arc<Store>>,
    Session(account): Session,
    Query(params): Query<ListParams>,
) -> Result<Json<RecordingPage>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE_ITEMS);
    store
        .list(ListScope::Owner, account, params.cursor.as_deref(), limit)
        .map(Json)
}

fn wav_response(audio: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "audio/wav")], audio).into_response()
}

/// Own playback, with a response cache in front (stored audio never
/// changes): keyed by the account and the path, so an entry is only ever
/// one the account itself was served; deletion and closing evict it.
async fn own_audio(
    State(store): State<Arc<Store>>,
    Session(account): Session,
    uri: Uri,
    Path(id): Path<u64>,
) -> Result<Response, ApiError> {
    let key = if store.injected.on(Bug::CacheMissingTenant) {
        // cache-missing-tenant (Steam 2015): keyed by path alone, checked before ownership.
        uri.path().to_string()
    } else {
        format!("{}|{}", account.0, uri.path())
    };
    if let Some(audio) = store.response_cache.get(&key) {
        crosstalk_service::probe!("store.response_cache.hit");
        return Ok(wav_response(audio));
    }
    let generation = store.response_cache.generation();
    let audio = store.audio(account, RecordingId(id))?;
    store.injected.interleave("store.response.before_fill");
    let generation = if store.injected.on(Bug::StaleCacheFill) {
        // stale-cache-fill (Steam 2015, Wyze 2024): "read the generation when the entry goes in".
        store.response_cache.generation()
    } else {
        generation
    };
    store
        .response_cache
        .insert(generation, key, account, RecordingId(id), &audio);
    Ok(wav_response(audio))
}

async fn delete_one(
    State(store): State<Arc<Store>>,
    Session(account): Session,
    Path(id): Path<u64>,
) -> Result<Json<DeleteResponse>, ApiError> {
    let deleted = store.delete(account, DeleteSelection::One(RecordingId(id)))?;
    Ok(Json(DeleteResponse { deleted }))
}

async fn delete_many(
    State(store): State<Arc<Store>>,
    Session(account): Session,
    JsonBody(body): JsonBody<DeleteRequest>,
) -> Result<Json<DeleteResponse>, ApiError> {
    let selection = match (body.all, body.captured_from_ms, body.captured_to_ms) {
        (true, None, None) => DeleteSelection::All,
        (false, Some(from_ms), Some(to_ms)) if from_ms <= to_ms => {
            DeleteSelection::CapturedBetween { from_ms, to_ms }
        }
        _ => {
            return Err(ApiError::bad_request(
                "give either \"all\": true, or captured_from_ms <= captured_to_ms",
            ));
        }
    };
    let deleted = store.delete(account, selection)?;
    Ok(Json(DeleteResponse { deleted }))
}

async fn close_account(
    State(store): State<Arc<Store>>,
    Session(account): Session,
) -> Result<Json<DeleteResponse>, ApiError> {
    let deleted = store.close_account(account)?;
    Ok(Json(DeleteResponse { deleted }))
}

async fn introspect(
    State(store): State<Arc<Store>>,
    _: ServicePrincipal,
    JsonBody(body): JsonBody<IntrospectRequest>,
) -> Result<Json<IntrospectResponse>, ApiError> {
    let account_id = store.authenticate_session(&body.session_token)?;
    Ok(Json(IntrospectResponse { account_id }))
}

async fn service_list(
    State(store): State<Arc<Store>>,
    _: ServicePrincipal,
    Path(account): Path<u64>,
    Query(params): Query<ListParams>,
) -> Result<Json<RecordingPage>, ApiError> {
    let account = AccountId(account);
    if !store.account_exists(account)? {
        crosstalk_service::probe!("store.service_list.no_account");
        return Err(ApiError::not_found("no such account"));
    }
    let limit = params.limit.unwrap_or(DEFAULT_PAGE_ITEMS);
    store
        .list(ListScope::Service, account, params.cursor.as_deref(), limit)
        .map(Json)
}

async fn service_audio(
    State(store): State<Arc<Store>>,
    _: ServicePrincipal,
    Path((account, id)): Path<(u64, u64)>,
) -> Result<Response, ApiError> {
    store
        .audio(AccountId(account), RecordingId(id))
        .map(wav_response)
}
