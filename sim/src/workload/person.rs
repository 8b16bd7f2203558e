//! A person: their HTTP calls, devices and uploads, history and audit.

use super::actions::SETTLE_AFTER_HOLD_MS;
use super::{CallError, World};
use crate::check::contract::ServerError;
use crate::check::{Event, Oracle};
use crate::net::{
    EXPORT_HOST, EXPORT_PORT, MAX_OVERLOAD_WAITS, STORE_HOST, STORE_PORT, SimConnector,
    overload_wait, sim_now_ms,
};
use crate::plan::{ITEMS, PHRASES, display_name};
use crate::workload::Service;
use base64::Engine;
use bytes::Bytes;
use crosstalk_model::api::{
    AddContactRequest, ExportStatus, IngestRequest, IngestResponse, Intent, LoginRequest,
    MessageView, OrderView, RecordingPage, SignupRequest, SignupResponse,
};
use crosstalk_service::{ClientError, HttpClient, HttpResponse, Spawner};
use http::{Method, StatusCode, header};
use http_body_util::Full;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
const TRANSPORT_ATTEMPTS: u32 = 5;
const RETRY_BACKOFF_MS: u64 = 250;
pub(super) const POLL_MS: u64 = 2_000;
const HISTORY_PAGE_ITEMS: usize = 5;
/// What a heavy user's app asks for per page: more than the store's clamp
/// (`crosstalk_store::MAX_PAGE_ITEMS`), so that the clamp decides the page.
const HEAVY_HISTORY_PAGE_ITEMS: usize = 250;
/// The final audit's walk of the history (judged whole by
/// `Oracle::audit_history`, not again by `Oracle::history_walked`).
const FINAL_AUDIT: &str = "final audit";

/// A capture waiting in a device's buffer until the store acknowledges it.
pub(crate) struct PendingUpload {
    pub(super) nonce: u64,
    /// The principal who owned the device when it captured this.
    pub(super) speaker: usize,
    pub(super) captured_at_ms: u64,
    /// The capture's audio length in bytes (possibly past the API's limit).
    pub(super) audio_bytes: usize,
    pub(super) body: Vec<u8>,
}

/// A device in someone's hands: its credentials, its ownership epoch, and
/// the captures it has not managed to upload yet.
pub(crate) struct Device {
    pub(super) id: u64,
    pub(super) token: String,
    pub(super) epoch: u32,
    pub(super) buffer: VecDeque<PendingUpload>,
    /// The device has no connection of its own until then (simulated ms).
    pub(super) offline_until_ms: u64,
    /// How wrong the device's clock is: captures carry this error.
    pub(super) clock_skew_ms: i64,
    /// The next upload key: a plain per-device counter ("1", "2", ...), the
    /// weakest key the store's contract (unique per device) allows, so that
    /// devices of different accounts send the same keys.
    pub(super) next_upload_key: u64,
    /// The last upload of the holder's own the store acknowledged (body,
    /// recording id): the curious user sends it again with the same key.
    pub(super) last_upload: Option<(Vec<u8>, u64)>,
    /// Older firmware, the weakest client the ingest contract allows: it
    /// sends no ownership epoch with a capture of its current epoch
    /// ("absent means the device's current epoch"), and stamps the epoch on
    /// the captures it still holds only when it changes hands.
    pub(super) legacy_firmware: bool,
}

impl Device {
    /// The epoch a capture made now carries in its upload: none from older
    /// firmware.
    pub(super) fn epoch_to_send(&self) -> Option<u32> {
        (!self.legacy_firmware).then_some(self.epoch)
    }

    /// Before the device changes hands: stamp every capture it still holds
    /// with the epoch it was made in, so that none is filed under the buyer.
    pub(super) fn stamp_buffered_epochs(&mut self) -> Result<(), CallError> {
        for pending in self.buffer.iter_mut() {
            let mut upload: IngestRequest = serde_json::from_slice(&pending.body)
                .map_err(|e| CallError::Unexpected(format!("a buffered upload: {e}")))?;
            if upload.ownership_epoch.is_none() {
                upload.ownership_epoch = Some(self.epoch);
                pending.body = to_json(&upload)?;
            }
        }
        Ok(())
    }
}

/// One of the person's own recordings as the store acknowledged it.
#[derive(Clone, Copy)]
pub(super) struct OwnRecording {
    pub(super) id: u64,
    pub(super) nonce: u64,
    pub(super) captured_at_ms: u64,
}

pub(super) struct Person {
    pub(super) world: Rc<World>,
    /// Index into the plan's people.
    pub(super) index: usize,
    /// The oracle's identity for the account the person holds now (a new
    /// one after closing the account and signing up again).
    pub(super) principal: usize,
    pub(super) store: HttpClient,
    pub(super) export: HttpClient,
    pub(super) session: String,
    /// The account is closed (and not signed up again).
    pub(super) closed: bool,
    pub(super) devices: Vec<Device>,
    /// Every upload of this principal's the store acknowledged and that was
    /// not deleted since.
    pub(super) own_recordings: Vec<OwnRecording>,
    /// The export request being worked meets a store that loses power as
    /// its first download's live check arrives, down this long (ms).
    pub(super) store_down_ms: Option<u64>,
    /// People in the contact list, by lower-case display name.
    pub(super) contacts: BTreeMap<String, usize>,
    /// The last notification read.
    pub(super) notification_seq: u64,
    /// Message commands captured by this person's devices ("send this to
    /// Ann"), waiting for the store's hold to end.
    pub(super) spoken_messages: Vec<SpokenMessage>,
    /// Broadcasts of the plan a device of the person's heard already
    /// (`airing.rs`: some are heard during a long wait).
    pub(super) broadcasts_heard: BTreeSet<u64>,
    /// Broadcasts of the plan airing from this time on are heard during a
    /// long wait: the start of the planned action under way (`u64::MAX` for
    /// a person who is not the plan's: a newcomer, a speaker's task).
    pub(super) airings_from_ms: u64,
    /// What the curious user keeps to try again later (`adversary.rs`).
    pub(super) kept: super::adversary::Kept,
    /// Messages seen in the inbox, with the principal that saw them: one
    /// that later leaves the listing is looked at again (`read_inbox`).
    pub(super) inbox_seen: Vec<(usize, u64)>,
    /// The account's always-on speaker, uploading on its own
    /// (`devices.rs`); `None` when the plan gives the account none.
    pub(super) always_on: Option<super::devices::AlwaysOnLink>,
    /// The export requests one was told were taken on: (principal, export
    /// id), looked at once more in the final audit.
    pub(super) requests: Vec<(usize, u64)>,
}

/// A "send a message" command one of the person's devices captured.
#[derive(Clone, Copy)]
pub(super) struct SpokenMessage {
    pub(super) nonce: u64,
    /// Whom the speaker meant (`None`: broadcast audio; nobody at home spoke).
    pub(super) intended: Option<usize>,
    pub(super) spoken_at_ms: u64,
}

/// One capture to make: its utterance, the sound's content, the words of
/// its transcript, and its length (`None`: the short default).
#[derive(Clone, Copy)]
struct Spoken<'a> {
    nonce: u64,
    content: u64,
    words: &'a str,
    audio_bytes: Option<u32>,
}

/// The password principal `principal` signs up with in the run of `seed`.
pub(super) fn password_of(seed: u64, principal: usize) -> String {
    hex::encode(&crate::streams::derive(seed, &format!("password/{principal}"))[..12])
}

pub(super) async fn sleep_until(at_ms: u64) {
    let now = sim_now_ms();
    if at_ms > now {
        tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
    }
}

pub(super) fn parse<T: DeserializeOwned>(response: &HttpResponse) -> Result<T, CallError> {
    serde_json::from_slice(response.body())
        .map_err(|e| CallError::Unexpected(format!("malformed response body: {e}")))
}

pub(super) fn to_json(value: &impl serde::Serialize) -> Result<Vec<u8>, CallError> {
    serde_json::to_vec(value).map_err(|e| CallError::Unexpected(e.to_string()))
}

impl Person {
    pub(super) fn trace(&self, event: String) {
        self.world
            .trace
            .borrow_mut()
            .record(sim_now_ms(), &format!("p{} {event}", self.index));
    }

    pub(super) fn oracle(&self) -> std::cell::RefMut<'_, Oracle> {
        self.world.oracle.borrow_mut()
    }

    pub(super) fn email(&self) -> String {
        self.world.plan.accounts[self.index].email.clone()
    }

    /// One HTTP exchange, retried on transport errors and 5xx answers
    /// (every request here is safe to repeat). The trace records what came
    /// back. `Err` means the service stayed unavailable.
    pub(super) async fn call(
        &self,
        service: Service,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, CallError> {
        self.call_with_attempts(TRANSPORT_ATTEMPTS, service, method, path, bearer, body)
            .await
    }

    pub(super) async fn call_with_attempts(
        &self,
        attempts: u32,
        service: Service,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, CallError> {
        let client = match service {
            Service::Export => &self.export,
            Service::Store => &self.store,
        };
        let mut last_error = String::new();
        for attempt in 0..attempts {
            let sent_ms = sim_now_ms();
            if service == Service::Store {
                self.oracle()
                    .store_request_sent(self.principal, &method, path, sent_ms);
            }
            let host = match service {
                Service::Export => EXPORT_HOST,
                Service::Store => STORE_HOST,
            };
            let sent = self
                .send_patiently(client, host, &method, path, bearer, &body)
                .await?;
            if service == Service::Store {
                let status = sent.as_ref().ok().map(|r| r.status().as_u16());
                self.oracle().store_reply_arrived(
                    self.principal,
                    &method,
                    path,
                    sent_ms,
                    status,
                    sim_now_ms(),
                );
            }
            if service == Service::Export {
                let (status, reply) = match &sent {
                    Ok(r) => (Some(r.status().as_u16()), r.body().as_ref()),
                    Err(_) => (None, &[][..]),
                };
                self.oracle().export_reply(
                    self.principal,
                    &method,
                    path,
                    sent_ms,
                    status,
                    reply,
                    sim_now_ms(),
                );
            }
            match sent {
                Ok(response) => {
                    let digest = crosstalk_model::sha256_hex(response.body());
                    self.trace(format!(
                        "{method} {path} -> {} {}",
                        response.status().as_u16(),
                        &digest[..16]
                    ));
                    let request = format!("{method} {path}");
                    self.oracle().answer_received(&super::answer_of(
                        host,
                        request,
                        &method,
                        &response,
                        Some(self.principal),
                        bearer.is_some(),
                        sent_ms,
                    ));
                    if !response.status().is_server_error() {
                        return Ok(response);
                    }
                    last_error = format!("answered {}", response.status());
                    tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS << attempt)).await;
                }
                Err(e) => {
                    self.trace(format!(
                        "{method} {path} -> transport error (attempt {attempt}): {e}"
                    ));
                    last_error = e.to_string();
                    tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS << attempt)).await;
                }
            }
        }
        Err(CallError::Unavailable(format!(
            "{method} {path}: {last_error}"
        )))
    }

    /// Send one request, waiting out the service's overload (503
    /// `overloaded`, as a real device fleet honours `Retry-After`) up to
    /// [`MAX_OVERLOAD_WAITS`] times; the last answer is returned whatever it is.
    async fn send_patiently(
        &self,
        client: &HttpClient,
        service: &'static str,
        method: &Method,
        path: &str,
        bearer: Option<&str>,
        body: &Option<Vec<u8>>,
    ) -> Result<Result<HttpResponse, ClientError>, CallError> {
        let mut waits = 0u64;
        loop {
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
            self.world
                .client_requests
                .set(self.world.client_requests.get() + 1);
            let sent_ms = sim_now_ms();
            let sent = client.send(request).await;
            let jitter_ms = (self.index as u64 * 97 + waits * 31) % 1000;
            let wait = match &sent {
                Ok(response) if waits < u64::from(MAX_OVERLOAD_WAITS) => {
                    overload_wait(response, jitter_ms)
                }
                _ => None,
            };
            let Some(wait) = wait else {
                return Ok(sent);
            };
            waits += 1;
            if let Ok(response) = &sent {
                self.oracle().overloaded_answer(
                    ServerError {
                        service,
                        request: format!("{method} {path}"),
                        status: Some(response.status().as_u16()),
                        body: String::from_utf8_lossy(response.body()).into_owned(),
                        principal: Some(self.principal),
                        sent_ms,
                        at_ms: sim_now_ms(),
                    },
                    super::retry_after(response),
                );
            }
            self.oracle().on(Event::OverloadedRetry);
            self.trace(format!(
                "{method} {path} -> 503 overloaded, retrying in {} ms",
                wait.as_millis()
            ));
            tokio::time::sleep(wait).await;
        }
    }

    pub(super) async fn expect_json<T: DeserializeOwned>(
        &self,
        service: Service,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
        expected: &[StatusCode],
    ) -> Result<T, CallError> {
        let response = self
            .call(service, method.clone(), path, bearer, body)
            .await?;
        if !expected.contains(&response.status()) {
            return Err(CallError::Unexpected(format!(
                "{method} {path} answered {}: {}",
                response.status(),
                String::from_utf8_lossy(response.body())
            )));
        }
        parse(&response)
    }

    /// GET `path` with one's own session; anything but 200 with a JSON
    /// body of `T` is unexpected.
    pub(super) async fn read_own<T: DeserializeOwned>(
        &self,
        service: Service,
        path: &str,
    ) -> Result<T, CallError> {
        let session = self.session.clone();
        self.expect_json(
            service,
            Method::GET,
            path,
            Some(&session),
            None,
            &[StatusCode::OK],
        )
        .await
    }

    /// This principal's password (a new identity picks a new one).
    pub(super) fn password(&self) -> String {
        password_of(self.world.plan.seed, self.principal)
    }

    /// The devices (by slot) online at `now` whose last acknowledged upload
    /// can be sent again.
    pub(super) fn devices_with_last_upload(&self, now: u64) -> Vec<usize> {
        (0..self.devices.len())
            .filter(|d| {
                self.devices[*d].last_upload.is_some() && self.devices[*d].offline_until_ms <= now
            })
            .collect()
    }

    /// Ask the store for an account with one's own address and password;
    /// the answer as it came.
    pub(super) async fn send_sign_up(&mut self) -> Result<HttpResponse, CallError> {
        let body = to_json(&SignupRequest {
            email: self.email(),
            password: self.password(),
        })?;
        self.call(
            Service::Store,
            Method::POST,
            "/v1/accounts",
            None,
            Some(body),
        )
        .await
    }

    /// Sign up (again), register the planned devices, fill the contacts.
    /// A sign-up whose answer was lost is recovered by logging in.
    pub(super) async fn sign_up(&mut self) -> Result<(), CallError> {
        let email = self.email();
        let password = self.password();
        let response = self.send_sign_up().await?;
        let signup: SignupResponse = match response.status() {
            StatusCode::CREATED => parse(&response)?,
            StatusCode::CONFLICT => {
                // An earlier attempt created the account but its answer was lost.
                let body = to_json(&LoginRequest {
                    email: email.clone(),
                    password,
                })?;
                self.expect_json(
                    Service::Store,
                    Method::POST,
                    "/v1/sessions",
                    None,
                    Some(body),
                    &[StatusCode::CREATED],
                )
                .await?
            }
            other => return Err(CallError::Unexpected(format!("sign-up answered {other}"))),
        };
        let (principal, now) = (self.principal, sim_now_ms());
        self.oracle()
            .on_signed_up(principal, signup.account_id.0, now);
        (self.world.collection_faults).learn_account(self.principal, signup.account_id.0);
        self.world
            .board
            .borrow_mut()
            .set_holder(&email, self.principal);
        self.session = signup.session_token;
        self.closed = false;
        self.notification_seq = 0;
        for device in 0..self.world.plan.accounts[self.index].devices {
            let registered = self.register_device(&format!("speaker {device}")).await?;
            self.devices.push(Device {
                id: registered.device_id.0,
                token: registered.device_token,
                epoch: registered.ownership_epoch,
                buffer: VecDeque::new(),
                offline_until_ms: 0,
                clock_skew_ms: self.world.plan.accounts[self.index]
                    .device_clock_skew_ms
                    .get(device as usize)
                    .copied()
                    .unwrap_or(0),
                next_upload_key: 1,
                last_upload: None,
                // Half the devices (alternating by person and slot) run older firmware.
                legacy_firmware: (self.index as u32 + device) % 2 == 1,
            });
        }
        self.register_always_on().await?;
        self.sign_in_on_another_device().await?;
        self.contacts.clear();
        let contact_people = self.world.plan.accounts[self.index].contacts.clone();
        for other in contact_people {
            let other = other as usize;
            let name = display_name(other);
            let email = self.typed_contact_address(other);
            let body = to_json(&AddContactRequest {
                name: name.clone(),
                email,
            })?;
            let session = self.session.clone();
            let _: crosstalk_model::api::Contact = self
                .expect_json(
                    Service::Store,
                    Method::POST,
                    "/v1/contacts",
                    Some(&session),
                    Some(body),
                    &[StatusCode::CREATED],
                )
                .await?;
            // The store keeps one contact per name; so does the person.
            self.contacts.insert(name.to_lowercase(), other);
        }
        Ok(())
    }

    /// How this person types `email` on occasion `what` (`addresses.rs`):
    /// the same occasion is always typed the same way.
    pub(super) fn typed(&self, email: &str, what: &str) -> String {
        let occasion = format!("p{}/{what}", self.index);
        let how = crate::addresses::way_of_typing(self.world.plan.seed, &occasion);
        crate::addresses::as_typed(email, how)
    }

    /// Person `other`'s address as this person keeps it in their contacts.
    pub(super) fn typed_contact_address(&self, other: usize) -> String {
        let email = &self.world.plan.accounts[other].email;
        self.typed(email, &format!("contact/{other}"))
    }

    /// Someone with an awkward address signs in on their phone too, right
    /// after signing up, typing it as the phone's keyboard has it: the
    /// right password must open their own account. (No answer: the phone
    /// tries another day; the sign-up stands.)
    async fn sign_in_on_another_device(&mut self) -> Result<(), CallError> {
        let email = self.email();
        if !crate::addresses::is_awkward(&email) {
            return Ok(());
        }
        let typed = self.typed(&email, &format!("phone/{}", self.principal));
        match self.sign_in_as_typed(&typed).await {
            Ok(_) | Err(CallError::Unavailable(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sign in with one's own address as `typed` and one's own password;
    /// the oracle judges the answer, which is returned.
    pub(super) async fn sign_in_as_typed(
        &mut self,
        typed: &str,
    ) -> Result<HttpResponse, CallError> {
        self.sign_in_as(self.principal, typed).await
    }

    /// Sign in with `typed` and the password of `principal` (oneself, or
    /// whoever holds an address when acting as them); the oracle judges
    /// the answer by who held the address, and it is returned.
    pub(super) async fn sign_in_as(
        &mut self,
        principal: usize,
        typed: &str,
    ) -> Result<HttpResponse, CallError> {
        let body = to_json(&LoginRequest {
            email: typed.to_string(),
            password: password_of(self.world.plan.seed, principal),
        })?;
        let sent_ms = sim_now_ms();
        let response = self
            .call(
                Service::Store,
                Method::POST,
                "/v1/sessions",
                None,
                Some(body),
            )
            .await?;
        let signed_in = parse::<SignupResponse>(&response).ok();
        let sign_in = crate::check::addresses::SignIn {
            principal,
            typed,
            status: response.status().as_u16(),
            account_id: signed_in.map(|s| s.account_id.0),
            sent_ms,
            at_ms: sim_now_ms(),
        };
        self.oracle().on_sign_in(sign_in);
        Ok(response)
    }

    /// Take delivery of devices bought from other people.
    pub(super) fn pick_up_devices(&mut self) {
        let mut board = self.world.board.borrow_mut();
        let mut kept = Vec::new();
        for (buyer, device) in board.handoffs.drain(..) {
            if buyer == self.index {
                self.devices.push(device);
            } else {
                kept.push((buyer, device));
            }
        }
        board.handoffs = kept;
    }

    /// A device captures an utterance (spoken at home, or broadcast audio)
    /// into its buffer, then tries to upload what the buffer holds.
    pub(super) async fn capture(
        &mut self,
        device: u32,
        nonce: u64,
        content: u64,
        words: &str,
        intent: Option<Intent>,
    ) -> Result<(), CallError> {
        self.capture_of_length(device, nonce, content, words, intent, None)
            .await
    }

    /// [`Person::capture`] of a capture `audio_bytes` long (`None`: short).
    pub(super) async fn capture_of_length(
        &mut self,
        device: u32,
        nonce: u64,
        content: u64,
        words: &str,
        intent: Option<Intent>,
        audio_bytes: Option<u32>,
    ) -> Result<(), CallError> {
        let spoken = Spoken {
            nonce,
            content,
            words,
            audio_bytes,
        };
        match self.stage_capture(device, spoken, intent)? {
            Some(device) => self.flush_device(device).await,
            None => Ok(()),
        }
    }

    /// Two speakers in one room: the person's device `device` and the next
    /// one capture the same plain words at the same instant, each as its own
    /// recording (`nonces`), stamped by its own clock; then both upload.
    pub(super) async fn speak_near_two_devices(
        &mut self,
        device: u32,
        nonces: [u64; 2],
        content: u64,
        phrase: u32,
        audio_bytes: Option<u32>,
    ) -> Result<(), CallError> {
        let words = PHRASES[phrase as usize % PHRASES.len()];
        let spoken = |nonce| Spoken {
            nonce,
            content,
            words,
            audio_bytes,
        };
        let first = self.stage_capture(device, spoken(nonces[0]), None)?;
        let second = self.stage_capture(device + 1, spoken(nonces[1]), None)?;
        self.oracle().on(Event::CaptureByTwoSpeakers);
        for device in [first, second].into_iter().flatten() {
            self.flush_device(device).await?;
        }
        Ok(())
    }

    /// A device captures an utterance into its buffer (nothing is sent);
    /// the index of the device, `None` when the person has none.
    fn stage_capture(
        &mut self,
        device: u32,
        spoken: Spoken<'_>,
        intent: Option<Intent>,
    ) -> Result<Option<usize>, CallError> {
        let Spoken {
            nonce,
            content,
            words,
            audio_bytes,
        } = spoken;
        if self.devices.is_empty() {
            self.trace(format!("no device to capture {nonce:016x}"));
            return Ok(None);
        }
        let device = device as usize % self.devices.len();
        let now = sim_now_ms();
        let (audio, transcript) = {
            let oracle = self.world.oracle.borrow();
            (
                oracle.key().audio_of_length(nonce, content, audio_bytes),
                oracle.key().transcript(nonce, words),
            )
        };
        self.oracle()
            .utterance_started(nonce, self.principal, self.devices[device].id as u32, now);
        self.oracle().utterance_audio(nonce, &audio);
        // The device's own (possibly wrong) clock stamps the capture.
        let captured_at_ms =
            (crate::net::EPOCH_MS + now).saturating_add_signed(self.devices[device].clock_skew_ms);
        self.oracle().utterance_captured_at(nonce, captured_at_ms);
        let upload_key = self.devices[device].next_upload_key.to_string();
        self.devices[device].next_upload_key += 1;
        self.oracle().transcript_sent(&transcript);
        let upload = IngestRequest {
            upload_key,
            captured_at_ms,
            transcript,
            audio_base64: base64::engine::general_purpose::STANDARD.encode(&audio),
            ownership_epoch: self.devices[device].epoch_to_send(),
            intent,
        };
        let body = to_json(&upload)?;
        let speaker = self.principal;
        self.devices[device].buffer.push_back(PendingUpload {
            nonce,
            speaker,
            captured_at_ms,
            audio_bytes: audio.len(),
            body,
        });
        Ok(Some(device))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn speak(
        &mut self,
        device: u32,
        nonce: u64,
        content: u64,
        phrase: u32,
        purchase: Option<u32>,
        message: Option<u64>,
        speaker: Option<u32>,
        audio_bytes: Option<u32>,
    ) -> Result<(), CallError> {
        if let Some(housemate) = speaker {
            // A housemate talks near this person's device: the capture is
            // this account's, whoever's voice it holds.
            if !self.devices.is_empty() {
                self.oracle().on(Event::HousemateCapture);
            }
            let words = format!(
                "{} (said by {})",
                PHRASES[phrase as usize % PHRASES.len()],
                display_name(housemate as usize)
            );
            return self
                .capture_of_length(device, nonce, content, &words, None, audio_bytes)
                .await;
        }
        match (purchase, message) {
            (Some(item), _) => {
                let item = ITEMS[item as usize % ITEMS.len()];
                let words = format!("alexa, order {item}");
                let intent = Intent::Purchase {
                    item: item.to_string(),
                };
                self.capture_of_length(device, nonce, content, &words, Some(intent), audio_bytes)
                    .await
            }
            (None, Some(pick)) if !self.contacts.is_empty() && !self.devices.is_empty() => {
                let names: Vec<usize> = self.contacts.values().copied().collect();
                let intended = names[(pick % names.len() as u64) as usize];
                let name = display_name(intended);
                let words = format!("alexa, send this to {name}");
                self.spoken_messages.push(SpokenMessage {
                    nonce,
                    intended: Some(intended),
                    spoken_at_ms: sim_now_ms(),
                });
                let intent = Intent::Message { contact_name: name };
                self.capture_of_length(device, nonce, content, &words, Some(intent), audio_bytes)
                    .await
            }
            _ => {
                let words = PHRASES[phrase as usize % PHRASES.len()];
                self.capture_of_length(device, nonce, content, words, None, audio_bytes)
                    .await
            }
        }
    }

    /// Upload a device's buffered captures, oldest first, until the buffer
    /// is empty or the store is unreachable (the device is then "offline"
    /// and keeps the rest for later). Upload keys make retries idempotent;
    /// each capture carries the ownership epoch it was made in.
    pub(super) async fn flush_device(&mut self, device: usize) -> Result<(), CallError> {
        if self.devices[device].offline_until_ms > sim_now_ms() {
            return Ok(());
        }
        let token = self.devices[device].token.clone();
        while let Some(pending) = self.devices[device].buffer.front() {
            let (nonce, speaker, captured_at_ms, audio_bytes, body) = (
                pending.nonce,
                pending.speaker,
                pending.captured_at_ms,
                pending.audio_bytes,
                pending.body.clone(),
            );
            let sent_ms = sim_now_ms();
            // A device tries once; on failure it keeps the capture and goes
            // "offline" until its next chance (the next action, the final flush).
            let sent = self.call_with_attempts(
                1,
                Service::Store,
                Method::POST,
                "/v1/recordings",
                Some(&token),
                Some(body),
            );
            match sent.await {
                Ok(response)
                    if response.status() == StatusCode::CREATED
                        || response.status() == StatusCode::OK =>
                {
                    let upload = Stored {
                        nonce,
                        speaker,
                        captured_at_ms,
                        sent_ms,
                    };
                    self.upload_stored(device, upload, &response)?;
                }
                Ok(response) if response.status() == StatusCode::GONE => {
                    // The account that owned the device then is closed; the
                    // capture has no one to belong to.
                    self.devices[device].buffer.pop_front();
                    self.oracle().on_upload_refused_owner_closed(nonce);
                }
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED => {
                    // The device's credentials were replaced (a sale or a
                    // reset whose answer was lost): it can upload nothing more.
                    let lost = self.devices.remove(device);
                    self.trace(format!(
                        "dev-{} lost its credentials with {} captures aboard",
                        lost.id,
                        lost.buffer.len()
                    ));
                    return Ok(());
                }
                Ok(response)
                    if response.status() == StatusCode::PAYLOAD_TOO_LARGE
                        || (response.status().is_client_error()
                            && audio_bytes > crosstalk_model::MAX_AUDIO_BYTES) =>
                {
                    self.upload_too_long(device, nonce, audio_bytes, &response)?;
                }
                Ok(response) => {
                    return Err(CallError::Unexpected(format!(
                        "upload answered {}: {}",
                        response.status(),
                        String::from_utf8_lossy(response.body())
                    )));
                }
                Err(CallError::Unavailable(_)) => {
                    self.oracle().on(Event::UploadBuffered);
                    // The store may have kept it all the same.
                    self.oracle().upload_unanswered(nonce);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The store stored the capture at the front of `device`'s buffer:
    /// take it off, tell the oracle, and keep the recording as one's own
    /// (or, captured before the device changed hands, as its speaker's).
    fn upload_stored(
        &mut self,
        device: usize,
        upload: Stored,
        response: &HttpResponse,
    ) -> Result<(), CallError> {
        let Stored {
            nonce,
            speaker,
            captured_at_ms,
            sent_ms,
        } = upload;
        let ingested: IngestResponse = parse(response)?;
        if let Some(sent) = self.devices[device].buffer.pop_front()
            && speaker == self.principal
        {
            self.devices[device].last_upload = Some((sent.body, ingested.recording_id.0));
        }
        let id = ingested.recording_id.0;
        self.oracle().utterance_acked(nonce, id, sim_now_ms());
        self.oracle().on_capture_stored(nonce, sim_now_ms());
        self.oracle()
            .on_upload_accepted(nonce, sent_ms, sim_now_ms());
        let deleted = self.oracle().recording_deleted(id);
        if speaker == self.principal {
            self.world
                .board
                .borrow_mut()
                .captured
                .insert(id, captured_at_ms);
            if !deleted && !self.own_recordings.iter().any(|r| r.id == id) {
                self.own_recordings.push(OwnRecording {
                    id,
                    nonce,
                    captured_at_ms,
                });
                self.world.board.borrow_mut().recordings.push((speaker, id));
            }
        } else {
            // Captured before the device changed hands: the store must
            // file it under the previous owner.
            self.oracle().on(Event::PreTransferUpload);
            self.world.board.borrow_mut().recordings.push((speaker, id));
        }
        Ok(())
    }

    /// Too long for the API: the app drops the capture and tells its user
    /// (the oracle judges the refusal).
    fn upload_too_long(
        &mut self,
        device: usize,
        nonce: u64,
        audio_bytes: usize,
        response: &HttpResponse,
    ) -> Result<(), CallError> {
        let status = response.status().as_u16();
        let now = sim_now_ms();
        let dropped = self
            .oracle()
            .on_capture_refused(nonce, status, response.body(), now);
        if !dropped {
            return Err(CallError::Unexpected(format!(
                "an upload of {audio_bytes} bytes of audio answered {status}"
            )));
        }
        self.devices[device].buffer.pop_front();
        self.trace(format!("capture {nonce:016x} too long: dropped"));
        Ok(())
    }

    pub(super) async fn flush_all_devices(&mut self) -> Result<(), CallError> {
        let mut device = 0;
        while device < self.devices.len() {
            let before = self.devices.len();
            self.flush_device(device).await?;
            // A device that lost its credentials was removed: same index again.
            if self.devices.len() == before {
                device += 1;
            }
        }
        Ok(())
    }

    pub(super) fn buffered_uploads(&self) -> usize {
        self.devices.iter().map(|d| d.buffer.len()).sum()
    }

    /// Read the whole history page by page; every item goes to the oracle.
    /// Returns the nonces listed.
    pub(super) async fn read_history(
        &mut self,
        channel: &str,
    ) -> Result<std::collections::BTreeSet<u64>, CallError> {
        let mut cursor: Option<String> = None;
        let started_ms = sim_now_ms();
        let mut listed = std::collections::BTreeSet::new();
        let mut walk = crate::check::history::HistoryWalk::new();
        let page_items = if self.world.plan.accounts[self.index].is_heavy() {
            HEAVY_HISTORY_PAGE_ITEMS
        } else {
            HISTORY_PAGE_ITEMS
        };
        loop {
            let mut path = format!("/v1/recordings?limit={page_items}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page: RecordingPage = self.read_own(Service::Store, &path).await?;
            let now = sim_now_ms();
            let mut oracle = self.oracle();
            for item in &page.items {
                let decoded = oracle.key().decode_transcript(&item.transcript);
                oracle.on(Event::HistoryItemChecked);
                oracle.judge_transcript(self.principal, channel, &item.transcript, now);
                let own = oracle.receive(self.principal, channel, &decoded, started_ms, now);
                if let [nonce] = own[..] {
                    oracle.own_listing_named(self.principal, item.id.0, nonce);
                }
                listed.extend(own);
            }
            let ids: Vec<u64> = page.items.iter().map(|item| item.id.0).collect();
            let next = page.next_cursor.as_deref();
            if !oracle.history_page(&mut walk, self.principal, &ids, next, now) {
                return Ok(listed);
            }
            drop(oracle);
            match page.next_cursor {
                Some(next) => {
                    self.world
                        .board
                        .borrow_mut()
                        .keep_cursor(self.principal, &next);
                    cursor = Some(next)
                }
                None => {
                    self.oracle().history_walk_counted(&walk);
                    if channel != FINAL_AUDIT {
                        let (principal, now) = (self.principal, sim_now_ms());
                        self.oracle()
                            .history_walked(&walk, principal, &listed, started_ms, now);
                    }
                    self.oracle().owner_listed(
                        "after deletion: history",
                        self.principal,
                        &listed,
                        started_ms,
                    );
                    return Ok(listed);
                }
            }
        }
    }

    /// After the faults healed: upload everything still buffered, then read
    /// the whole history and the orders once and let the oracle audit them.
    pub(super) async fn final_audit(&mut self) -> Result<(), CallError> {
        // The always-on speaker uploads what it still holds first.
        self.await_always_on().await;
        if self.closed {
            return Ok(());
        }
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        self.pick_up_devices();
        // Devices' own outages end with the active period, like every fault.
        for device in &mut self.devices {
            device.offline_until_ms = device.offline_until_ms.min(self.world.plan.active_ms);
        }
        while self.buffered_uploads() > 0 {
            self.flush_all_devices().await?;
            if self.buffered_uploads() == 0 {
                break;
            }
            if sim_now_ms() + POLL_MS > deadline_ms {
                let buffered = self.buffered_uploads();
                self.oracle()
                    .on_uploads_stuck_at_deadline(self.principal, buffered, sim_now_ms());
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        let started_ms = sim_now_ms();
        let listed = loop {
            match self.read_history(FINAL_AUDIT).await {
                Ok(listed) => break listed,
                Err(CallError::Unavailable(_)) if sim_now_ms() + POLL_MS <= deadline_ms => {
                    tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.oracle()
            .audit_history(self.principal, &listed, started_ms, sim_now_ms());
        if self.world.plan.store_loses_power() {
            self.play_back_listed(&listed).await?;
        }
        // Message commands still held: wait for their holds (within the
        // drain), then settle them like any other.
        let hold_ms = self.world.plan.hold_ms;
        while let Some(due) = self
            .spoken_messages
            .iter()
            .map(|m| m.spoken_at_ms + hold_ms + SETTLE_AFTER_HOLD_MS)
            .min()
        {
            if due + POLL_MS > deadline_ms {
                break;
            }
            sleep_until(due).await;
            let before = self.spoken_messages.len();
            self.settle_spoken_messages().await?;
            if self.spoken_messages.len() == before {
                // Still held by the store past its hold: look again shortly.
                tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                if sim_now_ms() + POLL_MS > deadline_ms {
                    break;
                }
            }
        }
        self.audit_orders().await?;
        self.look_at_own_requests().await?;
        // Whatever reached the account's feed and inbox by the end is
        // judged too.
        self.read_notifications().await?;
        self.read_inbox(0).await?;
        // Last, so that it shifts nothing before it: the contact list.
        self.audit_contacts().await
    }

    /// Every order must come from this principal's own capture, and none
    /// from broadcast audio may have been placed.
    pub(super) async fn audit_orders(&mut self) -> Result<(), CallError> {
        let orders: Vec<OrderView> = self.read_own(Service::Store, "/v1/orders").await?;
        self.oracle()
            .on_orders_listed(self.principal, &orders, sim_now_ms());
        Ok(())
    }

    /// Look at each of one's export requests once more, as someone told of
    /// an extension would: the oracle judges the deadline and the reason
    /// each status shows (`check/deadlines.rs`).
    async fn look_at_own_requests(&mut self) -> Result<(), CallError> {
        let principal = self.principal;
        let mine: BTreeSet<u64> = self
            .requests
            .iter()
            .filter(|(p, _)| *p == principal)
            .map(|(_, id)| *id)
            .collect();
        for export_id in mine {
            let path = format!("/v1/exports/{export_id}");
            let looked: Result<ExportStatus, CallError> =
                self.read_own(Service::Export, &path).await;
            match looked {
                Ok(_) | Err(CallError::Unavailable(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// List one's outgoing messages; each must carry one's own capture.
    pub(super) async fn list_outgoing_messages(&mut self) -> Result<Vec<MessageView>, CallError> {
        let outgoing: Vec<MessageView> = self.read_own(Service::Store, "/v1/messages").await?;
        self.oracle()
            .on_messages_listed(self.principal, &outgoing, sim_now_ms());
        Ok(outgoing)
    }
}

impl Person {
    /// Person `index` of the plan as principal `index`, signed out, with
    /// connections of their own to both services.
    pub(super) fn new(world: Rc<World>, index: usize) -> Person {
        let client = |host, port| {
            HttpClient::new(Arc::new(SimConnector { host, port }), CLIENT_TIMEOUT, 2)
                .with_spawner(Spawner::Local)
        };
        Person {
            world,
            index,
            principal: index,
            store: client(STORE_HOST, STORE_PORT),
            export: client(EXPORT_HOST, EXPORT_PORT),
            session: String::new(),
            closed: false,
            devices: Vec::new(),
            own_recordings: Vec::new(),
            store_down_ms: None,
            contacts: BTreeMap::new(),
            notification_seq: 0,
            spoken_messages: Vec::new(),
            broadcasts_heard: BTreeSet::new(),
            airings_from_ms: u64::MAX,
            kept: Default::default(),
            inbox_seen: Vec::new(),
            always_on: None,
            requests: Vec::new(),
        }
    }
}

/// Run person `index` of the plan to the end of their actions.
pub async fn person(world: Rc<World>, index: usize) {
    let mut person = Person::new(world.clone(), index);
    let signup_sent_ms = sim_now_ms();
    if let Err(e) = person.sign_up().await {
        // The person stops; the oracle judges how the sign-up failed.
        let email = person.email();
        person.oracle().on_sign_up_failed(
            person.principal,
            &email,
            e.observed(),
            signup_sent_ms,
            sim_now_ms(),
        );
        return;
    }
    if let Err(e) = person.confused_app().await {
        // The store was unavailable: the quirk's outcome is unknown.
        person.trace(format!("confused app: {e}"));
    }
    let actions = world.plan.accounts[index].actions.clone();
    for timed in &actions {
        sleep_until(timed.at_ms).await;
        person.airings_from_ms = timed.at_ms;
        person.probe_acked_state().await;
        let outcome = person
            .perform(&timed.action)
            .await
            .map_err(CallError::observed);
        let principal = person.principal;
        let go_on =
            person
                .oracle()
                .on_action_ended(principal, timed.action.name(), outcome, sim_now_ms());
        if !go_on {
            return;
        }
    }
    // Faults heal when the active period ends; then every person audits.
    sleep_until(world.plan.active_ms).await;
    person.probe_acked_state_at_the_end().await;
    if let Err(e) = person.final_audit().await {
        let principal = person.principal;
        person
            .oracle()
            .on_final_audit_failed(principal, e.observed(), sim_now_ms());
    }
}

/// A capture the store stored: whose, when captured, when sent.
struct Stored {
    nonce: u64,
    speaker: usize,
    captured_at_ms: u64,
    sent_ms: u64,
}
