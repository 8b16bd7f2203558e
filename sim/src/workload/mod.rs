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
    ExportState, ExportStatus, IngestRequest, IngestResponse, RecordingPage, RegisterDeviceRequest,
    RegisterDeviceResponse, SignupRequest, SignupResponse,
};
use crosstalk_service::{HttpClient, HttpResponse};
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

const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
const TRANSPORT_ATTEMPTS: u32 = 5;
const RETRY_BACKOFF_MS: u64 = 250;
const EXPORT_POLL_MS: u64 = 2_000;
const HISTORY_PAGE_ITEMS: usize = 20;

struct Person {
    world: Rc<World>,
    index: usize,
    store: HttpClient,
    export: HttpClient,
    session: String,
    device_tokens: Vec<String>,
    /// (recording id, nonce) of every upload the store acknowledged.
    own_recordings: Vec<(u64, u64)>,
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

    /// One HTTP exchange, retried on transport errors (every request here
    /// is safe to repeat). The trace records what came back.
    async fn call(
        &self,
        to_export: bool,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, String> {
        let client = if to_export { &self.export } else { &self.store };
        let mut last_error = String::new();
        for attempt in 0..TRANSPORT_ATTEMPTS {
            let mut request = http::Request::builder().method(method.clone()).uri(path);
            if let Some(token) = bearer {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            if body.is_some() {
                request = request.header(header::CONTENT_TYPE, "application/json");
            }
            let request = request
                .body(Full::new(body.clone().map(Bytes::from).unwrap_or_default()))
                .map_err(|e| e.to_string())?;
            self.world.client_requests.set(self.world.client_requests.get() + 1);
            match client.send(request).await {
                Ok(response) => {
                    let digest = crosstalk_model::sha256_hex(response.body());
                    self.trace(format!("{method} {path} -> {} {}", response.status().as_u16(), &digest[..16]));
                    return Ok(response);
                }
                Err(e) => {
                    self.trace(format!("{method} {path} -> transport error (attempt {attempt}): {e}"));
                    last_error = e.to_string();
                    tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS << attempt)).await;
                }
            }
        }
        Err(format!("{method} {path}: {last_error}"))
    }

    async fn expect_json<T: DeserializeOwned>(
        &self,
        to_export: bool,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
        expected: &[StatusCode],
    ) -> Result<T, String> {
        let response = self.call(to_export, method.clone(), path, bearer, body).await?;
        if !expected.contains(&response.status()) {
            return Err(format!(
                "{method} {path} answered {}: {}",
                response.status(),
                String::from_utf8_lossy(response.body())
            ));
        }
        parse(&response)
    }

    async fn sign_up(&mut self) -> Result<(), String> {
        let email = self.world.plan.accounts[self.index].email.clone();
        let body = serde_json::to_vec(&SignupRequest { email }).map_err(|e| e.to_string())?;
        let signup: SignupResponse = self
            .expect_json(false, Method::POST, "/v1/accounts", None, Some(body), &[StatusCode::CREATED])
            .await?;
        self.oracle().people[self.index].account_id = Some(signup.account_id.0);
        self.session = signup.session_token;
        for device in 0..self.world.plan.accounts[self.index].devices {
            let body = serde_json::to_vec(&RegisterDeviceRequest { name: format!("speaker {device}") })
                .map_err(|e| e.to_string())?;
            let session = self.session.clone();
            let registered: RegisterDeviceResponse = self
                .expect_json(false, Method::POST, "/v1/devices", Some(&session), Some(body), &[StatusCode::CREATED])
                .await?;
            self.device_tokens.push(registered.device_token);
        }
        Ok(())
    }

    async fn speak(&mut self, device: u32, nonce: u64, content: u64, phrase: u32) -> Result<(), String> {
        let now = sim_now_ms();
        let (audio, transcript) = {
            let oracle = self.world.oracle.borrow();
            let words = PHRASES[phrase as usize % PHRASES.len()];
            (oracle.key().audio(nonce, content), oracle.key().transcript(nonce, words))
        };
        self.oracle().utterance_started(nonce, self.index, device, now);
        let upload = IngestRequest {
            upload_key: format!("u-{nonce:016x}"),
            captured_at_ms: crate::net::EPOCH_MS + now,
            transcript,
            audio_base64: base64::engine::general_purpose::STANDARD.encode(audio),
        };
        let body = serde_json::to_vec(&upload).map_err(|e| e.to_string())?;
        let token = self.device_tokens[device as usize % self.device_tokens.len()].clone();
        let response = self.call(false, Method::POST, "/v1/recordings", Some(&token), Some(body)).await?;
        if response.status() == StatusCode::CREATED || response.status() == StatusCode::OK {
            let ingested: IngestResponse = parse(&response)?;
            self.oracle().utterance_acked(nonce, ingested.recording_id.0, sim_now_ms());
            self.own_recordings.push((ingested.recording_id.0, nonce));
            self.world.board.borrow_mut().recordings.push((self.index, ingested.recording_id.0));
        }
        Ok(())
    }

    async fn list_history(&mut self) -> Result<(), String> {
        let mut cursor: Option<String> = None;
        let session = self.session.clone();
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
                oracle.receive(self.index, "history listing", &decoded, now);
            }
            drop(oracle);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }

    async fn fetch_own_audio(&mut self, pick: u64) -> Result<(), String> {
        if self.own_recordings.is_empty() {
            return Ok(());
        }
        let (id, nonce) = self.own_recordings[(pick % self.own_recordings.len() as u64) as usize];
        let session = self.session.clone();
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
        oracle.receive(self.index, &format!("playback of rec-{id}"), &decoded, now);
        if decoded.nonces != [nonce] {
            let detail = format!("asked for rec-{id} (utterance {nonce:016x}) but received {:?}", decoded.nonces);
            oracle.violate(Invariant::RequestIntegrity, now, Some(nonce), Some(self.index), detail);
        }
        Ok(())
    }

    async fn request_export(&mut self) -> Result<(), String> {
        let session = self.session.clone();
        let requested_at_ms = sim_now_ms();
        self.oracle().controls.exports_requested += 1;
        let accepted: ExportStatus = self
            .expect_json(true, Method::POST, "/v1/exports", Some(&session), None, &[StatusCode::ACCEPTED])
            .await?;
        let export_id = accepted.export_id.0;
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        let status = loop {
            let status: ExportStatus = self
                .expect_json(true, Method::GET, &format!("/v1/exports/{export_id}"), Some(&session), None, &[
                    StatusCode::OK,
                ])
                .await?;
            if status.state != ExportState::Pending {
                break status;
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
        let response = self.call(true, Method::GET, &path, Some(&session), None).await?;
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

    async fn use_foreign_link(&mut self, pick: u64) -> Result<(), String> {
        let candidates: Vec<PublishedLink> =
            self.world.board.borrow().links.iter().filter(|l| l.owner != self.index).cloned().collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let link = candidates[(pick % candidates.len() as u64) as usize].clone();
        let session = self.session.clone();
        // With one's own session: the link alone must not be enough.
        let response = self.call(true, Method::GET, &link.path, Some(&session), None).await?;
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
                oracle.receive(self.index, &format!("forwarded link to exp-{}", link.export_id), &decoded, now);
            }
        }
        // Without any session: must be refused as unauthenticated.
        let response = self.call(true, Method::GET, &link.path, None, None).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            self.oracle().controls.anonymous_link_refused += 1;
        } else {
            let detail = format!("anonymous use of exp-{}'s link answered {}", link.export_id, response.status());
            self.oracle().violate(Invariant::LinkBinding, sim_now_ms(), None, Some(self.index), detail);
        }
        Ok(())
    }

    async fn guess_audio(&mut self, pick: u64) -> Result<(), String> {
        let candidates: Vec<(usize, u64)> =
            self.world.board.borrow().recordings.iter().filter(|(owner, _)| *owner != self.index).copied().collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let (_, id) = candidates[(pick % candidates.len() as u64) as usize];
        let session = self.session.clone();
        let response = self
            .call(false, Method::GET, &format!("/v1/recordings/{id}/audio"), Some(&session), None)
            .await?;
        let now = sim_now_ms();
        let mut oracle = self.oracle();
        oracle.controls.guessed_audio_attempts += 1;
        if response.status() == StatusCode::NOT_FOUND {
            oracle.controls.guessed_audio_refused += 1;
        } else if response.status() == StatusCode::OK {
            let decoded = oracle.key().decode_audio(response.body());
            oracle.receive(self.index, &format!("guessed recording id rec-{id}"), &decoded, now);
        }
        Ok(())
    }

    async fn perform(&mut self, action: &Action) -> Result<(), String> {
        match *action {
            Action::Speak { device, nonce, content, phrase } => self.speak(device, nonce, content, phrase).await,
            Action::ListHistory => self.list_history().await,
            Action::FetchOwnAudio { pick } => self.fetch_own_audio(pick).await,
            Action::RequestExport => self.request_export().await,
            Action::UseForeignLink { pick } => self.use_foreign_link(pick).await,
            Action::GuessAudio { pick } => self.guess_audio(pick).await,
        }
    }
}

/// Run person `index` of the plan to the end of their actions.
pub async fn person(world: Rc<World>, index: usize) {
    let store = HttpClient::new(Arc::new(SimConnector { host: STORE_HOST, port: STORE_PORT }), CLIENT_TIMEOUT, 2);
    let export = HttpClient::new(Arc::new(SimConnector { host: EXPORT_HOST, port: EXPORT_PORT }), CLIENT_TIMEOUT, 2);
    let mut person = Person {
        world: world.clone(),
        index,
        store,
        export,
        session: String::new(),
        device_tokens: Vec::new(),
        own_recordings: Vec::new(),
    };
    if let Err(e) = person.sign_up().await {
        world.errors.borrow_mut().push(format!("person {index} could not sign up: {e}"));
        return;
    }
    let actions = world.plan.accounts[index].actions.clone();
    for timed in &actions {
        sleep_until(timed.at_ms).await;
        if let Err(e) = person.perform(&timed.action).await {
            world.errors.borrow_mut().push(format!("person {index} {}: {e}", timed.action.name()));
            return;
        }
    }
}
