//! The workload: people and their devices, each a task on a client host.
//!
//! A person signs up, registers devices, then performs the planned actions
//! at their planned simulated times: speaking (a device uploads a watermarked
//! capture), listing history, playing back audio, requesting and downloading
//! a DSAR export, and — as the adversary every person might be — trying links
//! and recording ids that belong to someone else. Every action knows what it
//! expects; everything received goes to the oracle.

use crate::check::{Invariant, Oracle};
use crate::net::{EXPORT_HOST, EXPORT_PORT, STORE_HOST, STORE_PORT, SimConnector, sim_now_ms};
use crate::plan::{Action, PHRASES, Plan};
use crate::trace::Trace;
use base64::Engine;
use bytes::Bytes;
use crosstalk_model::api::{
    DeleteRequest, DeleteResponse, ExportState, ExportStatus, IngestRequest, IngestResponse, RecordingPage, RegisterDeviceRequest,
    RegisterDeviceResponse, SignupRequest, SignupResponse,
};
use crosstalk_service::{HttpClient, HttpResponse, Spawner};
use http::{Method, StatusCode, header};
use http_body_util::Full;
use serde::de::DeserializeOwned;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// A download link someone obtained, as it would travel by email.
#[derive(Clone, Debug)]
pub struct PublishedLink {
    pub owner: usize,
    pub export_id: u64,
    pub path: String,
}

/// What people can learn about each other: links that got forwarded, and
/// recording ids (they are sequential, so anyone can guess them).
#[derive(Default)]
pub struct Board {
    pub links: Vec<PublishedLink>,
    pub recordings: Vec<(usize, u64)>,
}

/// Everything the actors of one run share. The simulation is single
/// threaded, so plain `RefCell`s suffice and their use is deterministic.
pub struct World {
    pub plan: Plan,
    pub oracle: RefCell<Oracle>,
    pub trace: RefCell<Trace>,
    pub board: RefCell<Board>,
    pub client_requests: Cell<u64>,
    /// Infrastructure problems that stop a person from going on.
    pub errors: RefCell<Vec<String>>,
}

const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
const TRANSPORT_ATTEMPTS: u32 = 5;
const RETRY_BACKOFF_MS: u64 = 250;
const EXPORT_POLL_MS: u64 = 2_000;
const HISTORY_PAGE_ITEMS: usize = 20;

/// Why a call did not give the answer its caller expected.
#[derive(Debug)]
enum CallError {
    /// No answer, or a 5xx: the service is down or degraded; the outcome of
    /// the request is unknown. Expected while faults are active.
    Unavailable(String),
    /// An answer no correct service gives here.
    Unexpected(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unavailable(e) => write!(f, "unavailable: {e}"),
            CallError::Unexpected(e) => write!(f, "{e}"),
        }
    }
}

/// A capture waiting in a device's buffer until the store acknowledges it.
struct PendingUpload {
    nonce: u64,
    captured_at_ms: u64,
    body: Vec<u8>,
}

/// One of the person's own recordings as the store acknowledged it.
#[derive(Clone, Copy)]
struct OwnRecording {
    id: u64,
    nonce: u64,
    captured_at_ms: u64,
}

struct Person {
    world: Rc<World>,
    index: usize,
    store: HttpClient,
    export: HttpClient,
    session: String,
    device_tokens: Vec<String>,
    /// Captures each device still has to upload, oldest first.
    device_buffers: Vec<std::collections::VecDeque<PendingUpload>>,
    /// Every upload the store acknowledged and that was not deleted since.
    own_recordings: Vec<OwnRecording>,
}

async fn sleep_until(at_ms: u64) {
    let now = sim_now_ms();
    if at_ms > now {
        tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
    }
}

fn parse<T: DeserializeOwned>(response: &HttpResponse) -> Result<T, String> {
    serde_json::from_slice(response.body()).map_err(|e| format!("malformed response body: {e}"))
}

impl Person {
    fn trace(&self, event: String) {
        self.world.trace.borrow_mut().record(sim_now_ms(), &format!("p{} {event}", self.index));
    }

    fn oracle(&self) -> std::cell::RefMut<'_, Oracle> {
        self.world.oracle.borrow_mut()
    }

    /// One HTTP exchange, retried on transport errors and 5xx answers
    /// (every request here is safe to repeat). The trace records what came
    /// back. `Err` means the service stayed unavailable.
    async fn call(
        &self,
        to_export: bool,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, CallError> {
        self.call_with_attempts(TRANSPORT_ATTEMPTS, to_export, method, path, bearer, body).await
    }

    async fn call_with_attempts(
        &self,
        attempts: u32,
        to_export: bool,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, CallError> {
        let client = if to_export { &self.export } else { &self.store };
        let mut last_error = String::new();
        for attempt in 0..attempts {
            let mut request = http::Request::builder().method(method.clone()).uri(path);
            if let Some(token) = bearer {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            if body.is_some() {
                request = request.header(header::CONTENT_TYPE, "application/json");
            }
            let request = request
                .body(Full::new(body.clone().map(Bytes::from).unwrap_or_default()))
                .map_err(|e| CallError::Unexpected(e.to_string()))?;
            self.world.client_requests.set(self.world.client_requests.get() + 1);
            match client.send(request).await {
                Ok(response) => {
                    let digest = crosstalk_model::sha256_hex(response.body());
                    self.trace(format!("{method} {path} -> {} {}", response.status().as_u16(), &digest[..16]));
                    if !response.status().is_server_error() {
                        return Ok(response);
                    }
                    last_error = format!("answered {}", response.status());
                    tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS << attempt)).await;
                }
                Err(e) => {
                    self.trace(format!("{method} {path} -> transport error (attempt {attempt}): {e}"));
                    last_error = e.to_string();
                    tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS << attempt)).await;
                }
            }
        }
        Err(CallError::Unavailable(format!("{method} {path}: {last_error}")))
    }

    async fn expect_json<T: DeserializeOwned>(
        &self,
        to_export: bool,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
        expected: &[StatusCode],
    ) -> Result<T, CallError> {
        let response = self.call(to_export, method.clone(), path, bearer, body).await?;
        if !expected.contains(&response.status()) {
            return Err(CallError::Unexpected(format!(
                "{method} {path} answered {}: {}",
                response.status(),
                String::from_utf8_lossy(response.body())
            )));
        }
        parse(&response).map_err(CallError::Unexpected)
    }

    async fn sign_up(&mut self) -> Result<(), CallError> {
        let email = self.world.plan.accounts[self.index].email.clone();
        let body = serde_json::to_vec(&SignupRequest { email }).map_err(|e| CallError::Unexpected(e.to_string()))?;
        let signup: SignupResponse = self
            .expect_json(false, Method::POST, "/v1/accounts", None, Some(body), &[StatusCode::CREATED])
            .await?;
        self.oracle().people[self.index].account_id = Some(signup.account_id.0);
        self.session = signup.session_token;
        for device in 0..self.world.plan.accounts[self.index].devices {
            let body = serde_json::to_vec(&RegisterDeviceRequest { name: format!("speaker {device}") })
                .map_err(|e| CallError::Unexpected(e.to_string()))?;
            let session = self.session.clone();
            let registered: RegisterDeviceResponse = self
                .expect_json(false, Method::POST, "/v1/devices", Some(&session), Some(body), &[StatusCode::CREATED])
                .await?;
            self.device_tokens.push(registered.device_token);
            self.device_buffers.push(Default::default());
        }
        Ok(())
    }

    /// A device captures an utterance and puts it in its upload buffer,
    /// then tries to upload what the buffer holds.
    async fn speak(&mut self, device: u32, nonce: u64, content: u64, phrase: u32) -> Result<(), CallError> {
        let now = sim_now_ms();
        let (audio, transcript) = {
            let oracle = self.world.oracle.borrow();
            let words = PHRASES[phrase as usize % PHRASES.len()];
            (oracle.key().audio(nonce, content), oracle.key().transcript(nonce, words))
        };
        self.oracle().utterance_started(nonce, self.index, device, now);
        let captured_at_ms = crate::net::EPOCH_MS + now;
        let upload = IngestRequest {
            upload_key: format!("u-{nonce:016x}"),
            captured_at_ms,
            transcript,
            audio_base64: base64::engine::general_purpose::STANDARD.encode(audio),
        };
        let body = serde_json::to_vec(&upload).map_err(|e| CallError::Unexpected(e.to_string()))?;
        let device = device as usize % self.device_buffers.len();
        self.device_buffers[device].push_back(PendingUpload { nonce, captured_at_ms, body });
        self.flush_device(device).await
    }

    /// Upload a device's buffered captures, oldest first, until the buffer
    /// is empty or the store is unreachable (the device is then "offline"
    /// and keeps the rest for later). Upload keys make retries idempotent.
    async fn flush_device(&mut self, device: usize) -> Result<(), CallError> {
        let token = self.device_tokens[device].clone();
        while let Some(pending) = self.device_buffers[device].front() {
            let (nonce, captured_at_ms, body) = (pending.nonce, pending.captured_at_ms, pending.body.clone());
            // A device tries once; on failure it keeps the capture and goes
            // "offline" until its next chance (the next action, the final flush).
            let sent = self.call_with_attempts(1, false, Method::POST, "/v1/recordings", Some(&token), Some(body));
            match sent.await {
                Ok(response) if response.status() == StatusCode::CREATED || response.status() == StatusCode::OK => {
                    let ingested: IngestResponse = parse(&response).map_err(CallError::Unexpected)?;
                    self.device_buffers[device].pop_front();
                    let id = ingested.recording_id.0;
                    self.oracle().utterance_acked(nonce, id, sim_now_ms());
                    if !self.own_recordings.iter().any(|r| r.id == id) {
                        self.own_recordings.push(OwnRecording { id, nonce, captured_at_ms });
                        self.world.board.borrow_mut().recordings.push((self.index, id));
                    }
                }
                Ok(response) => {
                    return Err(CallError::Unexpected(format!(
                        "upload answered {}: {}",
                        response.status(),
                        String::from_utf8_lossy(response.body())
                    )));
                }
                Err(CallError::Unavailable(_)) => {
                    self.oracle().controls.uploads_buffered += 1;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn flush_all_devices(&mut self) -> Result<(), CallError> {
        for device in 0..self.device_buffers.len() {
            self.flush_device(device).await?;
        }
        Ok(())
    }

    fn buffered_uploads(&self) -> usize {
        self.device_buffers.iter().map(|b| b.len()).sum()
    }

    async fn delete_one(&mut self, pick: u64) -> Result<(), CallError> {
        if self.own_recordings.is_empty() {
            return Ok(());
        }
        let chosen = self.own_recordings[(pick % self.own_recordings.len() as u64) as usize];
        let session = self.session.clone();
        self.oracle().deletion_started(chosen.nonce, sim_now_ms());
        let response =
            self.call(false, Method::DELETE, &format!("/v1/recordings/{}", chosen.id), Some(&session), None).await;
        match response {
            // 404: already gone (an earlier attempt whose answer was lost).
            Ok(r) if r.status() == StatusCode::OK || r.status() == StatusCode::NOT_FOUND => {
                self.oracle().deletion_acked(chosen.nonce, sim_now_ms());
                self.own_recordings.retain(|r| r.id != chosen.id);
                Ok(())
            }
            Ok(r) => Err(CallError::Unexpected(format!("delete answered {}", r.status()))),
            Err(CallError::Unavailable(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_range(&mut self, first: u64, second: u64) -> Result<(), CallError> {
        if self.own_recordings.is_empty() {
            return Ok(());
        }
        let count = self.own_recordings.len() as u64;
        let a = self.own_recordings[(first % count) as usize].captured_at_ms;
        let b = self.own_recordings[(second % count) as usize].captured_at_ms;
        let (from_ms, to_ms) = (a.min(b), a.max(b));
        // Everything captured in the range, including uploads still buffered
        // or unacknowledged, is covered by the deletion once it is sent.
        let now = sim_now_ms();
        let covered: Vec<OwnRecording> = self
            .own_recordings
            .iter()
            .filter(|r| (from_ms..=to_ms).contains(&r.captured_at_ms))
            .copied()
            .collect();
        for r in &covered {
            self.oracle().deletion_started(r.nonce, now);
        }
        let body = serde_json::to_vec(&DeleteRequest { all: false, captured_from_ms: Some(from_ms), captured_to_ms: Some(to_ms) })
            .map_err(|e| CallError::Unexpected(e.to_string()))?;
        let session = self.session.clone();
        match self.call(false, Method::POST, "/v1/recordings/delete", Some(&session), Some(body)).await {
            Ok(r) if r.status() == StatusCode::OK => {
                let response: DeleteResponse = parse(&r).map_err(CallError::Unexpected)?;
                let now = sim_now_ms();
                for r in &covered {
                    if !response.deleted.iter().any(|id| id.0 == r.id) {
                        // The store says it deleted less than the range holds;
                        // the final audit will show whether it is still there.
                        continue;
                    }
                    self.oracle().deletion_acked(r.nonce, now);
                }
                self.own_recordings.retain(|r| !(from_ms..=to_ms).contains(&r.captured_at_ms));
                Ok(())
            }
            Ok(r) => Err(CallError::Unexpected(format!("range delete answered {}", r.status()))),
            Err(CallError::Unavailable(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// After the faults healed: upload everything still buffered, then read
    /// the whole history once and let the oracle audit it.
    async fn final_audit(&mut self) -> Result<(), CallError> {
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        while self.buffered_uploads() > 0 {
            self.flush_all_devices().await?;
            if self.buffered_uploads() == 0 {
                break;
            }
            if sim_now_ms() + EXPORT_POLL_MS > deadline_ms {
                let detail = format!("{} captures still buffered at the deadline", self.buffered_uploads());
                self.oracle().violate(Invariant::Liveness, sim_now_ms(), None, Some(self.index), detail);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(EXPORT_POLL_MS)).await;
        }
        let listed = loop {
            match self.read_history("final audit").await {
                Ok(listed) => break listed,
                Err(CallError::Unavailable(_)) if sim_now_ms() + EXPORT_POLL_MS <= deadline_ms => {
                    tokio::time::sleep(Duration::from_millis(EXPORT_POLL_MS)).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.oracle().audit_history(self.index, &listed, sim_now_ms());
        Ok(())
    }

    /// Read the whole history page by page; every item goes to the oracle.
    /// Returns the nonces listed.
    async fn read_history(&mut self, channel: &str) -> Result<std::collections::BTreeSet<u64>, CallError> {
        let mut cursor: Option<String> = None;
        let session = self.session.clone();
        let started_ms = sim_now_ms();
        let mut listed = std::collections::BTreeSet::new();
        loop {
            let mut path = format!("/v1/recordings?limit={HISTORY_PAGE_ITEMS}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page: RecordingPage =
                self.expect_json(false, Method::GET, &path, Some(&session), None, &[StatusCode::OK]).await?;
            let now = sim_now_ms();
            let mut oracle = self.oracle();
            for item in &page.items {
                let decoded = oracle.key().decode_transcript(&item.transcript);
                oracle.controls.history_items_checked += 1;
                listed.extend(oracle.receive(self.index, channel, &decoded, started_ms, now));
            }
            drop(oracle);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(listed),
            }
        }
    }

    async fn list_history(&mut self) -> Result<(), CallError> {
        self.read_history("history listing").await.map(|_| ())
    }

    async fn fetch_own_audio(&mut self, pick: u64) -> Result<(), CallError> {
        if self.own_recordings.is_empty() {
            return Ok(());
        }
        let OwnRecording { id, nonce, .. } = self.own_recordings[(pick % self.own_recordings.len() as u64) as usize];
        let session = self.session.clone();
        let requested_ms = sim_now_ms();
        let response = self
            .call(false, Method::GET, &format!("/v1/recordings/{id}/audio"), Some(&session), None)
            .await?;
        let now = sim_now_ms();
        if response.status() != StatusCode::OK {
            let detail = format!("own recording rec-{id} could not be played back: {}", response.status());
            self.oracle().violate(Invariant::RequestIntegrity, now, Some(nonce), Some(self.index), detail);
            return Ok(());
        }
        let mut oracle = self.oracle();
        let decoded = oracle.key().decode_audio(response.body());
        oracle.controls.own_audio_checked += 1;
        oracle.receive(self.index, &format!("playback of rec-{id}"), &decoded, requested_ms, now);
        if decoded.nonces != [nonce] {
            let detail = format!("asked for rec-{id} (utterance {nonce:016x}) but received {:?}", decoded.nonces);
            oracle.violate(Invariant::RequestIntegrity, now, Some(nonce), Some(self.index), detail);
        }
        Ok(())
    }

    async fn request_export(&mut self) -> Result<(), CallError> {
        let session = self.session.clone();
        let requested_at_ms = sim_now_ms();
        self.oracle().controls.exports_requested += 1;
        let accepted: ExportStatus = match self
            .expect_json(true, Method::POST, "/v1/exports", Some(&session), None, &[StatusCode::ACCEPTED])
            .await
        {
            Ok(accepted) => accepted,
            // Not accepted (or unknown): no obligation on the service yet.
            Err(CallError::Unavailable(_)) => {
                self.oracle().controls.exports_requested -= 1;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let export_id = accepted.export_id.0;
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        let status = loop {
            let polled: Result<ExportStatus, CallError> = self
                .expect_json(true, Method::GET, &format!("/v1/exports/{export_id}"), Some(&session), None, &[
                    StatusCode::OK,
                ])
                .await;
            match polled {
                Ok(status) if status.state != ExportState::Pending => break status,
                Ok(_) | Err(CallError::Unavailable(_)) => {}
                Err(e) => return Err(e),
            }
            if sim_now_ms() + EXPORT_POLL_MS > deadline_ms {
                let detail = format!("export exp-{export_id} requested at {requested_at_ms} ms still pending at the deadline");
                self.oracle().violate(Invariant::Liveness, sim_now_ms(), None, Some(self.index), detail);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(EXPORT_POLL_MS)).await;
        };
        let ready_seen_ms = sim_now_ms();
        let path = match (status.state, status.download_path) {
            (ExportState::Ready, Some(path)) => path,
            (state, _) => {
                let detail = format!("export exp-{export_id} ended {state:?}: {}", status.failure.unwrap_or_default());
                self.oracle().violate(Invariant::Liveness, ready_seen_ms, None, Some(self.index), detail);
                return Ok(());
            }
        };
        let response = loop {
            match self.call(true, Method::GET, &path, Some(&session), None).await {
                Ok(response) => break response,
                Err(CallError::Unavailable(_)) if sim_now_ms() + EXPORT_POLL_MS <= deadline_ms => {
                    tokio::time::sleep(Duration::from_millis(EXPORT_POLL_MS)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let now = sim_now_ms();
        if response.status() != StatusCode::OK {
            let detail = format!("the subject's own download of exp-{export_id} was refused: {}", response.status());
            self.oracle().violate(Invariant::Liveness, now, None, Some(self.index), detail);
            return Ok(());
        }
        let mut oracle = self.oracle();
        match oracle.read_archive(response.body()) {
            Ok(contents) => {
                oracle.controls.exports_completed += 1;
                let channel = format!("export exp-{export_id}");
                oracle.check_archive(self.index, &channel, &contents, requested_at_ms, ready_seen_ms, now);
            }
            Err(e) => {
                let detail = format!("export exp-{export_id} is not a readable archive: {e}");
                oracle.violate(Invariant::RequestIntegrity, now, None, Some(self.index), detail);
            }
        }
        drop(oracle);
        self.world.board.borrow_mut().links.push(PublishedLink { owner: self.index, export_id, path });
        Ok(())
    }

    async fn use_foreign_link(&mut self, pick: u64) -> Result<(), CallError> {
        let candidates: Vec<PublishedLink> =
            self.world.board.borrow().links.iter().filter(|l| l.owner != self.index).cloned().collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let link = candidates[(pick % candidates.len() as u64) as usize].clone();
        let session = self.session.clone();
        // With one's own session: the link alone must not be enough.
        let requested_ms = sim_now_ms();
        let response = match self.call(true, Method::GET, &link.path, Some(&session), None).await {
            Ok(response) => response,
            Err(CallError::Unavailable(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let now = sim_now_ms();
        self.oracle().controls.foreign_link_attempts += 1;
        if response.status().is_client_error() {
            self.oracle().controls.foreign_link_refused += 1;
        } else if response.status() == StatusCode::OK {
            let mut oracle = self.oracle();
            let owner = oracle.who(link.owner);
            let detail = format!("exp-{} of {owner} downloaded by {} with the forwarded link", link.export_id, oracle.who(self.index));
            oracle.violate(Invariant::LinkBinding, now, None, Some(self.index), detail);
            if let Ok(contents) = oracle.read_archive(response.body()) {
                let decoded = crate::watermark::Decoded { nonces: contents.audio, invalid_marks: contents.invalid_marks };
                let channel = format!("forwarded link to exp-{}", link.export_id);
                oracle.receive(self.index, &channel, &decoded, requested_ms, now);
            }
        }
        // Without any session: must be refused as unauthenticated.
        let response = match self.call(true, Method::GET, &link.path, None, None).await {
            Ok(response) => response,
            Err(CallError::Unavailable(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if response.status() == StatusCode::UNAUTHORIZED {
            self.oracle().controls.anonymous_link_refused += 1;
        } else {
            let detail = format!("anonymous use of exp-{}'s link answered {}", link.export_id, response.status());
            self.oracle().violate(Invariant::LinkBinding, sim_now_ms(), None, Some(self.index), detail);
        }
        Ok(())
    }

    async fn guess_audio(&mut self, pick: u64) -> Result<(), CallError> {
        let candidates: Vec<(usize, u64)> =
            self.world.board.borrow().recordings.iter().filter(|(owner, _)| *owner != self.index).copied().collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let (_, id) = candidates[(pick % candidates.len() as u64) as usize];
        let session = self.session.clone();
        let requested_ms = sim_now_ms();
        let response = match self
            .call(false, Method::GET, &format!("/v1/recordings/{id}/audio"), Some(&session), None)
            .await
        {
            Ok(response) => response,
            Err(CallError::Unavailable(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let now = sim_now_ms();
        let mut oracle = self.oracle();
        oracle.controls.guessed_audio_attempts += 1;
        if response.status() == StatusCode::NOT_FOUND {
            oracle.controls.guessed_audio_refused += 1;
        } else if response.status() == StatusCode::OK {
            let decoded = oracle.key().decode_audio(response.body());
            oracle.receive(self.index, &format!("guessed recording id rec-{id}"), &decoded, requested_ms, now);
        }
        Ok(())
    }

    async fn perform(&mut self, action: &Action) -> Result<(), CallError> {
        // A device that was offline uploads its backlog when it can.
        if !matches!(action, Action::Speak { .. }) && self.buffered_uploads() > 0 {
            self.flush_all_devices().await?;
        }
        match *action {
            Action::Speak { device, nonce, content, phrase } => self.speak(device, nonce, content, phrase).await,
            Action::ListHistory => self.list_history().await,
            Action::FetchOwnAudio { pick } => self.fetch_own_audio(pick).await,
            Action::RequestExport => self.request_export().await,
            Action::UseForeignLink { pick } => self.use_foreign_link(pick).await,
            Action::GuessAudio { pick } => self.guess_audio(pick).await,
            Action::DeleteOne { pick } => self.delete_one(pick).await,
            Action::DeleteRange { first, second } => self.delete_range(first, second).await,
        }
    }
}

/// Run person `index` of the plan to the end of their actions.
pub async fn person(world: Rc<World>, index: usize) {
    let store = HttpClient::new(Arc::new(SimConnector { host: STORE_HOST, port: STORE_PORT }), CLIENT_TIMEOUT, 2)
        .with_spawner(Spawner::Local);
    let export = HttpClient::new(Arc::new(SimConnector { host: EXPORT_HOST, port: EXPORT_PORT }), CLIENT_TIMEOUT, 2)
        .with_spawner(Spawner::Local);
    let mut person = Person {
        world: world.clone(),
        index,
        store,
        export,
        session: String::new(),
        device_tokens: Vec::new(),
        device_buffers: Vec::new(),
        own_recordings: Vec::new(),
    };
    if let Err(e) = person.sign_up().await {
        world.errors.borrow_mut().push(format!("person {index} could not sign up: {e}"));
        return;
    }
    let actions = world.plan.accounts[index].actions.clone();
    for timed in &actions {
        sleep_until(timed.at_ms).await;
        match person.perform(&timed.action).await {
            // The service was down: the action's outcome is unknown; go on.
            Ok(()) | Err(CallError::Unavailable(_)) => {}
            Err(e) => {
                world.errors.borrow_mut().push(format!("person {index} {}: {e}", timed.action.name()));
                return;
            }
        }
    }
    // Faults heal when the active period ends; then every person audits.
    sleep_until(world.plan.active_ms).await;
    if let Err(e) = person.final_audit().await {
        world.errors.borrow_mut().push(format!("person {index} final audit: {e}"));
    }
}
