//! What a person does, besides speaking: play back, export, delete, sell or
//! reset a device, message, read the inbox, close the account, come back —
//! and try what belongs to others.

use super::person::{Device, OwnRecording, POLL_MS, Person, SpokenMessage, parse, to_json};
use super::{CallError, PublishedLink, pick_where};
use crate::check::{DeletionScope, Invariant};
use crate::net::sim_now_ms;
use crate::plan::{Action, ITEMS, display_name};
use crosstalk_model::api::{
    ConfirmMessageRequest, DeleteRequest, DeleteResponse, DeviceCredentials, ExportState,
    ExportStatus, InboxItem, Intent, MessageState, MessageView, SendMessageRequest,
    TransferDeviceRequest,
};
use crosstalk_model::api::{
    Notification, TicketRequest, TicketState, TicketStatus, VerifyTicketRequest,
};
use crosstalk_store::media::HOLD_MS;
use http::{Method, StatusCode};
use std::time::Duration;

/// How long after a spoken command's hold the person looks at it (the
/// store's sweeper decides held commands every second or so).
pub(super) const SETTLE_AFTER_HOLD_MS: u64 = 5_000;

/// How long past its hold a spoken command may stay held on a store that
/// never restarted (its sweeper runs every second).
const HELD_SLACK_MS: u64 = 10_000;

impl Person {
    pub(super) async fn perform(&mut self, action: &Action) -> Result<(), CallError> {
        if self.closed {
            return match *action {
                Action::SignUpAgain => self.sign_up_again().await,
                Action::Probe { pick, nonce } => self.probe_as_closed(pick, nonce).await,
                _ => Ok(()),
            };
        }
        self.pick_up_devices();
        // A device that was offline uploads its backlog when it can.
        let captures = matches!(action, Action::Speak { .. } | Action::HearBroadcast { .. });
        if !captures && self.buffered_uploads() > 0 {
            self.flush_all_devices().await?;
        }
        if !captures {
            self.settle_spoken_messages().await?;
        }
        match *action {
            Action::Speak {
                device,
                nonce,
                content,
                phrase,
                purchase,
                message,
                speaker,
            } => {
                self.speak(device, nonce, content, phrase, purchase, message, speaker)
                    .await
            }
            Action::HearBroadcast {
                broadcast,
                device,
                nonce,
                content,
                item,
                message_to,
            } => {
                self.oracle()
                    .utterance_started(nonce, self.principal, device, sim_now_ms());
                self.oracle().mark_broadcast(nonce);
                let (words, intent) = match message_to {
                    Some(named) => {
                        let name = display_name(named as usize);
                        if !self.devices.is_empty() {
                            self.spoken_messages.push(SpokenMessage {
                                nonce,
                                intended: None,
                                spoken_at_ms: sim_now_ms(),
                            });
                        }
                        (
                            format!("alexa, send a message to {name} (broadcast {broadcast})"),
                            Intent::Message { contact_name: name },
                        )
                    }
                    None => {
                        let item = ITEMS[item as usize % ITEMS.len()];
                        (
                            format!("alexa, order me a {item} (broadcast {broadcast})"),
                            Intent::Purchase {
                                item: item.to_string(),
                            },
                        )
                    }
                };
                self.capture(device, nonce, content, &words, Some(intent))
                    .await
            }
            Action::ListHistory => self.read_history("history listing").await.map(|_| ()),
            Action::FetchOwnAudio { pick } => self.fetch_own_audio(pick).await,
            Action::RequestExport {
                delete_first,
                redownloads,
                repeats,
            } => {
                self.request_export(delete_first, redownloads, repeats)
                    .await
            }
            Action::TicketExport => self.ticket_export().await,
            Action::Impersonate { victim, guesses } => {
                self.impersonate(victim as usize, guesses).await
            }
            Action::ReadNotifications => self.read_notifications().await,
            Action::UseForeignLink { pick } => self.use_foreign_link(pick).await,
            Action::GuessAudio { pick } => self.guess_audio(pick).await,
            Action::DeleteOne { pick } => self.delete_one(pick).await,
            Action::DeleteRange { first, second } => self.delete_range(first, second).await,
            Action::TransferDevice { pick, to } => self.transfer_device(pick, to as usize).await,
            Action::ResetDevice { pick } => self.reset_device(pick).await,
            Action::DeviceOutage { device, for_ms } => {
                if !self.devices.is_empty() {
                    let device = device as usize % self.devices.len();
                    let until = (sim_now_ms() + for_ms).min(self.world.plan.active_ms);
                    self.devices[device].offline_until_ms = until;
                    self.trace(format!(
                        "dev-{} offline until {until} ms",
                        self.devices[device].id
                    ));
                }
                Ok(())
            }
            Action::SendMessage {
                pick,
                contact,
                misheard,
            } => self.send_message(pick, contact, misheard).await,
            Action::ReadInbox { pick } => self.read_inbox(pick).await,
            Action::Probe { pick, nonce } => self.probe(pick, nonce).await,
            Action::CloseAccount => self.close_account().await,
            Action::SignUpAgain => Ok(()),
        }
    }

    pub(super) async fn fetch_own_audio(&mut self, pick: u64) -> Result<(), CallError> {
        if self.own_recordings.is_empty() {
            return Ok(());
        }
        let OwnRecording { id, nonce, .. } =
            self.own_recordings[(pick % self.own_recordings.len() as u64) as usize];
        let session = self.session.clone();
        let requested_ms = sim_now_ms();
        let response = self
            .call(
                false,
                Method::GET,
                &format!("/v1/recordings/{id}/audio"),
                Some(&session),
                None,
            )
            .await?;
        let now = sim_now_ms();
        if response.status() != StatusCode::OK {
            let detail = format!(
                "own recording rec-{id} could not be played back: {}",
                response.status()
            );
            self.oracle().violate(
                Invariant::RequestIntegrity,
                now,
                Some(nonce),
                Some(self.principal),
                detail,
            );
            return Ok(());
        }
        let mut oracle = self.oracle();
        let decoded = oracle.key().decode_audio(response.body());
        oracle.controls.own_audio_checked += 1;
        oracle.receive(
            self.principal,
            &format!("playback of rec-{id}"),
            &decoded,
            requested_ms,
            now,
        );
        if decoded.nonces != [nonce] {
            let detail = format!(
                "asked for rec-{id} (utterance {nonce:016x}) but received {:?}",
                decoded.nonces
            );
            oracle.violate(
                Invariant::RequestIntegrity,
                now,
                Some(nonce),
                Some(self.principal),
                detail,
            );
        }
        Ok(())
    }

    /// Ask for one's data directly, then wait for it and download it.
    async fn request_export(
        &mut self,
        delete_first: bool,
        redownloads: u32,
        repeats: u32,
    ) -> Result<(), CallError> {
        let session = self.session.clone();
        let requested_at_ms = sim_now_ms();
        self.oracle().controls.exports_requested += 1;
        let response = match self
            .call(true, Method::POST, "/v1/exports", Some(&session), None)
            .await
        {
            Ok(response) => response,
            // Not accepted (or unknown): no obligation on the service yet.
            Err(CallError::Unavailable(_)) => {
                self.oracle().controls.exports_requested -= 1;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let (accepted, must_since_ms) = match response.status() {
            StatusCode::ACCEPTED => (parse::<ExportStatus>(&response)?, requested_at_ms),
            // A duplicate of an earlier request of ours whose answer was
            // lost: judge isolation fully, exactness only for what is sure.
            StatusCode::OK => {
                self.oracle().controls.duplicate_requests_joined += 1;
                (parse::<ExportStatus>(&response)?, 0)
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let mut oracle = self.oracle();
                oracle.controls.exports_requested -= 1;
                oracle.controls.exports_rate_limited += 1;
                return Ok(());
            }
            other => {
                return Err(CallError::Unexpected(format!(
                    "export request answered {other}"
                )));
            }
        };
        self.world
            .board
            .borrow_mut()
            .exports
            .push((self.principal, accepted.export_id.0));
        let mut later = Vec::new();
        for _ in 0..repeats {
            if let Some(another) = self.ask_again(accepted.export_id.0).await? {
                later.push(another);
            }
        }
        self.await_and_download(
            accepted.export_id.0,
            must_since_ms,
            delete_first,
            redownloads,
        )
        .await?;
        for (export_id, requested_at_ms) in later {
            self.await_and_download(export_id, requested_at_ms, false, 0)
                .await?;
        }
        Ok(())
    }

    /// An impatient repeat of an export request just accepted as `pending`:
    /// it must join that request. If the first was already answered in
    /// full, the repeat is a new request: its id and time come back, to be
    /// awaited too.
    async fn ask_again(&mut self, pending: u64) -> Result<Option<(u64, u64)>, CallError> {
        let session = self.session.clone();
        let requested_at_ms = sim_now_ms();
        let response = match self
            .call(true, Method::POST, "/v1/exports", Some(&session), None)
            .await
        {
            Ok(response) => response,
            Err(CallError::Unavailable(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        match response.status() {
            StatusCode::OK => {
                let joined = parse::<ExportStatus>(&response)?;
                if joined.export_id.0 != pending && joined.state == ExportState::Pending {
                    return Err(CallError::Unexpected(format!(
                        "a repeated export request joined exp-{} while exp-{pending} was pending",
                        joined.export_id.0
                    )));
                }
                self.oracle().controls.duplicate_requests_joined += 1;
                Ok(None)
            }
            StatusCode::ACCEPTED => {
                self.oracle().controls.exports_requested += 1;
                let accepted = parse::<ExportStatus>(&response)?;
                Ok(Some((accepted.export_id.0, requested_at_ms)))
            }
            StatusCode::TOO_MANY_REQUESTS => {
                self.oracle().controls.exports_rate_limited += 1;
                Ok(None)
            }
            other => Err(CallError::Unexpected(format!(
                "repeated export request answered {other}"
            ))),
        }
    }

    /// Wait until export `export_id` is ready, then download and check it;
    /// when its archive was revoked (a recording in it deleted), wait for
    /// the rebuild and download again.
    pub(super) async fn await_and_download(
        &mut self,
        export_id: u64,
        requested_at_ms: u64,
        mut delete_first: bool,
        redownloads: u32,
    ) -> Result<(), CallError> {
        let session = self.session.clone();
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        loop {
            let status = loop {
                let polled: Result<ExportStatus, CallError> = self
                    .expect_json(
                        true,
                        Method::GET,
                        &format!("/v1/exports/{export_id}"),
                        Some(&session),
                        None,
                        &[StatusCode::OK],
                    )
                    .await;
                match polled {
                    Ok(status) if status.state != ExportState::Pending => break status,
                    Ok(_) | Err(CallError::Unavailable(_)) => {}
                    Err(e) => return Err(e),
                }
                if sim_now_ms() + POLL_MS > deadline_ms {
                    let detail = format!(
                        "export exp-{export_id} requested at {requested_at_ms} ms still pending at the deadline"
                    );
                    self.oracle().violate(
                        Invariant::Liveness,
                        sim_now_ms(),
                        None,
                        Some(self.principal),
                        detail,
                    );
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
            };
            let ready_seen_ms = sim_now_ms();
            let path = match (status.state, status.download_path) {
                (ExportState::Ready, Some(path)) => path,
                (state, _) => {
                    let detail = format!(
                        "export exp-{export_id} ended {state:?}: {}",
                        status.failure.unwrap_or_default()
                    );
                    self.oracle().violate(
                        Invariant::Liveness,
                        ready_seen_ms,
                        None,
                        Some(self.principal),
                        detail,
                    );
                    return Ok(());
                }
            };
            let mut deleted_since_ready = false;
            if delete_first && !self.own_recordings.is_empty() {
                // "Oh, not that one": delete a recording before downloading.
                delete_first = false;
                deleted_since_ready = true;
                self.delete_one(0).await?;
            }
            let mut downloads = 0;
            loop {
                let download_requested_ms = sim_now_ms();
                let response = loop {
                    match self
                        .call(true, Method::GET, &path, Some(&session), None)
                        .await
                    {
                        Ok(response) => break response,
                        Err(CallError::Unavailable(_)) if sim_now_ms() + POLL_MS <= deadline_ms => {
                            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                        }
                        Err(e) => return Err(e),
                    }
                };
                let now = sim_now_ms();
                match response.status() {
                    StatusCode::OK => {}
                    StatusCode::GONE if downloads == 0 && deleted_since_ready => {
                        // Revoked (a recording in it was deleted): rebuilt soon.
                        self.oracle().controls.archives_revoked += 1;
                        break;
                    }
                    StatusCode::GONE if downloads == 0 => {
                        // Nobody deleted anything: the archive the service
                        // announced was replaced behind the subject's back
                        // (published twice?). Exactly once means once.
                        let detail = format!(
                            "exp-{export_id} was announced ready at {ready_seen_ms} ms, yet its link was dead at {now} ms with no deletion in between"
                        );
                        self.oracle().violate(
                            Invariant::RequestIntegrity,
                            now,
                            None,
                            Some(self.principal),
                            detail,
                        );
                        return Ok(());
                    }
                    StatusCode::GONE => {
                        self.oracle().controls.download_limit_refusals += 1;
                        return Ok(());
                    }
                    other => {
                        let detail = format!(
                            "the subject's own download of exp-{export_id} was refused: {other}"
                        );
                        self.oracle().violate(
                            Invariant::Liveness,
                            now,
                            None,
                            Some(self.principal),
                            detail,
                        );
                        return Ok(());
                    }
                }
                downloads += 1;
                {
                    let mut oracle = self.oracle();
                    match oracle.read_archive(response.body()) {
                        Ok(contents) => {
                            if downloads == 1 {
                                oracle.controls.exports_completed += 1;
                            }
                            let channel = format!("export exp-{export_id}");
                            oracle.check_archive(
                                self.principal,
                                &channel,
                                &contents,
                                requested_at_ms,
                                ready_seen_ms,
                                download_requested_ms,
                                now,
                            );
                        }
                        Err(e) => {
                            let detail =
                                format!("export exp-{export_id} is not a readable archive: {e}");
                            oracle.violate(
                                Invariant::RequestIntegrity,
                                now,
                                None,
                                Some(self.principal),
                                detail,
                            );
                        }
                    }
                }
                if downloads == 1 {
                    self.kept.links.push((path.clone(), download_requested_ms));
                    let link = PublishedLink {
                        owner: self.principal,
                        export_id,
                        path: path.clone(),
                    };
                    self.world.board.borrow_mut().links.push(link);
                }
                if downloads > redownloads {
                    return Ok(());
                }
            }
        }
    }

    /// Ask for one's data through a support ticket, proving identity with
    /// the code the service sends to one's own account.
    async fn ticket_export(&mut self) -> Result<(), CallError> {
        let opened_at_ms = sim_now_ms();
        let body = to_json(&TicketRequest {
            claimed_email: self.email(),
            message: "please send me my recordings".into(),
        })?;
        let response = self
            .call(true, Method::POST, "/v1/tickets", None, Some(body))
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(CallError::Unexpected(format!(
                "opening a ticket answered {}",
                response.status()
            )));
        }
        let ticket: TicketStatus = parse(&response)?;
        let marker = format!("(ticket {})", ticket.ticket_id);
        // Look for the code without marking the feed read: the links in it
        // are still to be followed by the next notification read.
        let seen = self.notification_seq;
        let notes = self.notifications().await;
        self.notification_seq = seen;
        let code = notes?
            .into_iter()
            .filter(|n| n.kind == "identity-challenge" && n.text.contains(&marker))
            .find_map(|n| {
                n.text
                    .split("your code is ")
                    .nth(1)
                    .map(|c| c.trim_end_matches('.').to_string())
            });
        let Some(code) = code else {
            // The challenge never arrived (the store was down): no ticket.
            return Ok(());
        };
        let body = to_json(&VerifyTicketRequest { code })?;
        let path = format!("/v1/tickets/{}/verify", ticket.ticket_id);
        let verified: TicketStatus = self
            .expect_json(
                true,
                Method::POST,
                &path,
                None,
                Some(body),
                &[StatusCode::OK],
            )
            .await?;
        let Some(export_id) = verified.export_id else {
            return Err(CallError::Unexpected(
                "a verified ticket without an export".into(),
            ));
        };
        {
            let mut oracle = self.oracle();
            oracle.controls.tickets_verified += 1;
            oracle.controls.exports_requested += 1;
        }
        // A ticket verified while one's own earlier export was still being
        // built (or rebuilt after a deletion) joins that export, whose
        // snapshot may precede the ticket: judge isolation fully, exactness
        // only for what is sure (as a joined direct request).
        let must_since_ms = {
            let mut board = self.world.board.borrow_mut();
            let joined = board.exports.contains(&(self.principal, export_id.0));
            board.tickets.push((self.principal, ticket.ticket_id));
            board.exports.push((self.principal, export_id.0));
            if joined { 0 } else { opened_at_ms }
        };
        self.await_and_download(export_id.0, must_since_ms, false, 0)
            .await
    }

    /// Ask for someone else's data by their email and guess the code.
    async fn impersonate(&mut self, victim: usize, guesses: u32) -> Result<(), CallError> {
        if victim == self.index || victim >= self.world.plan.accounts.len() {
            return Ok(());
        }
        let claimed_email = self.world.plan.accounts[victim].email.clone();
        let body = to_json(&TicketRequest {
            claimed_email,
            message: "I lost access, I know my address".into(),
        })?;
        let response = self
            .call(true, Method::POST, "/v1/tickets", None, Some(body))
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(CallError::Unexpected(format!(
                "opening a ticket answered {}",
                response.status()
            )));
        }
        let ticket: TicketStatus = parse(&response)?;
        if ticket.state != TicketState::AwaitingVerification || ticket.export_id.is_some() {
            // Knowing an address must never be enough: whatever the victim
            // asked for before, a new ticket starts unverified.
            let detail = format!(
                "{} opened a ticket for another person's email and it came back {:?} with export {:?}, before any proof",
                self.oracle().who(self.principal),
                ticket.state,
                ticket.export_id
            );
            self.oracle().violate(
                Invariant::AgentContainment,
                sim_now_ms(),
                None,
                Some(self.principal),
                detail,
            );
            return Ok(());
        }
        for guess in 0..guesses {
            let code = format!(
                "{:016x}",
                (ticket.ticket_id << 8) ^ u64::from(guess) ^ 0x5eed_c0de
            );
            let body = to_json(&VerifyTicketRequest { code })?;
            let path = format!("/v1/tickets/{}/verify", ticket.ticket_id);
            let response = self
                .call(true, Method::POST, &path, None, Some(body))
                .await?;
            let now = sim_now_ms();
            match response.status() {
                StatusCode::FORBIDDEN => self.oracle().controls.impersonation_codes_refused += 1,
                StatusCode::OK => {
                    let detail = format!(
                        "{} verified a ticket for another person's email with a guessed code",
                        self.oracle().who(self.principal)
                    );
                    self.oracle().violate(
                        Invariant::AgentContainment,
                        now,
                        None,
                        Some(self.principal),
                        detail,
                    );
                }
                other => {
                    return Err(CallError::Unexpected(format!(
                        "verification answered {other}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Read one's notifications and follow every download link in them:
    /// each must lead to one's own data.
    pub(super) async fn read_notifications(&mut self) -> Result<(), CallError> {
        let session = self.session.clone();
        for notification in self.notifications().await? {
            let Some(path) = notification
                .text
                .split("ready: ")
                .nth(1)
                .map(str::to_string)
            else {
                continue;
            };
            let requested_ms = sim_now_ms();
            let response = self
                .call(true, Method::GET, &path, Some(&session), None)
                .await?;
            let now = sim_now_ms();
            match response.status() {
                StatusCode::OK => {
                    let mut oracle = self.oracle();
                    oracle.controls.notified_links_followed += 1;
                    match oracle.read_archive(response.body()) {
                        Ok(contents) => {
                            let decoded = crate::watermark::Decoded {
                                nonces: contents.audio,
                                invalid_marks: contents.invalid_marks,
                            };
                            oracle.receive(
                                self.principal,
                                &format!("link from notification {}", notification.seq),
                                &decoded,
                                requested_ms,
                                now,
                            );
                        }
                        Err(e) => {
                            let detail = format!("a notified link gave an unreadable archive: {e}");
                            oracle.violate(
                                Invariant::RequestIntegrity,
                                now,
                                None,
                                Some(self.principal),
                                detail,
                            );
                        }
                    }
                }
                StatusCode::FORBIDDEN => {
                    let detail = format!(
                        "{} was sent a download link to someone else's export (notification {}: {})",
                        self.oracle().who(self.principal),
                        notification.seq,
                        notification.kind
                    );
                    self.oracle().violate(
                        Invariant::AgentContainment,
                        now,
                        None,
                        Some(self.principal),
                        detail,
                    );
                }
                // Expired, revoked, used up: nothing to see.
                StatusCode::GONE => {}
                other => {
                    let detail = format!(
                        "{}'s own notified link (notification {}: {}) answered {other}: {}",
                        self.oracle().who(self.principal),
                        notification.seq,
                        notification.kind,
                        String::from_utf8_lossy(response.body())
                    );
                    self.oracle().violate(
                        Invariant::RequestIntegrity,
                        now,
                        None,
                        Some(self.principal),
                        detail,
                    );
                }
            }
        }
        Ok(())
    }

    /// New notifications since the last read.
    async fn notifications(&mut self) -> Result<Vec<Notification>, CallError> {
        let session = self.session.clone();
        let path = format!("/v1/notifications?after={}", self.notification_seq);
        let notes: Vec<Notification> = self
            .expect_json(
                false,
                Method::GET,
                &path,
                Some(&session),
                None,
                &[StatusCode::OK],
            )
            .await?;
        if let Some(last) = notes.last() {
            self.notification_seq = last.seq;
        }
        Ok(notes)
    }

    async fn use_foreign_link(&mut self, pick: u64) -> Result<(), CallError> {
        let candidate = pick_where(&self.world.board.borrow().links, pick, |l| {
            l.owner != self.principal
        })
        .cloned();
        let Some(link) = candidate else {
            return Ok(());
        };
        let session = self.session.clone();
        // With one's own session: the link alone must not be enough.
        let requested_ms = sim_now_ms();
        let response = match self
            .call(true, Method::GET, &link.path, Some(&session), None)
            .await
        {
            Ok(response) => response,
            Err(CallError::Unavailable(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let now = sim_now_ms();
        self.oracle().controls.foreign_link_attempts += 1;
        self.oracle().controls.foreign_statuses_judged += 1;
        // Exactly "not yours" (403) or "no such download" (404): the
        // ownership check comes first, so nothing about the link's state
        // (expired, revoked, used up) may show to someone else.
        if matches!(
            response.status(),
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
        ) {
            self.oracle().controls.foreign_link_refused += 1;
        } else if response.status() != StatusCode::OK {
            let mut oracle = self.oracle();
            let detail = format!(
                "{} used the forwarded link of exp-{} (of {}) and it answered {} instead of 403 or 404: {}",
                oracle.who(self.principal),
                link.export_id,
                oracle.who(link.owner),
                response.status(),
                String::from_utf8_lossy(response.body())
            );
            oracle.violate(
                Invariant::LinkBinding,
                now,
                None,
                Some(self.principal),
                detail,
            );
        } else {
            let mut oracle = self.oracle();
            let owner = oracle.who(link.owner);
            let detail = format!(
                "exp-{} of {owner} downloaded by {} with the forwarded link",
                link.export_id,
                oracle.who(self.principal)
            );
            oracle.violate(
                Invariant::LinkBinding,
                now,
                None,
                Some(self.principal),
                detail,
            );
            if let Ok(contents) = oracle.read_archive(response.body()) {
                let decoded = crate::watermark::Decoded {
                    nonces: contents.audio,
                    invalid_marks: contents.invalid_marks,
                };
                let channel = format!("forwarded link to exp-{}", link.export_id);
                oracle.receive(self.principal, &channel, &decoded, requested_ms, now);
            }
        }
        // Without any session: must be refused as unauthenticated.
        let response = match self.call(true, Method::GET, &link.path, None, None).await {
            Ok(response) => response,
            Err(CallError::Unavailable(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.oracle().controls.foreign_statuses_judged += 1;
        if response.status() == StatusCode::UNAUTHORIZED {
            self.oracle().controls.anonymous_link_refused += 1;
        } else {
            let detail = format!(
                "anonymous use of exp-{}'s link answered {}",
                link.export_id,
                response.status()
            );
            self.oracle().violate(
                Invariant::LinkBinding,
                sim_now_ms(),
                None,
                Some(self.principal),
                detail,
            );
        }
        Ok(())
    }

    async fn guess_audio(&mut self, pick: u64) -> Result<(), CallError> {
        let candidate = pick_where(&self.world.board.borrow().recordings, pick, |(owner, _)| {
            *owner != self.principal
        })
        .copied();
        let Some((_, id)) = candidate else {
            return Ok(());
        };
        let session = self.session.clone();
        let requested_ms = sim_now_ms();
        let guessed = format!("/v1/recordings/{id}/audio");
        let response = match self
            .call(false, Method::GET, &guessed, Some(&session), None)
            .await
        {
            Ok(response) => response,
            Err(CallError::Unavailable(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let now = sim_now_ms();
        if response.status() == StatusCode::OK {
            let mut oracle = self.oracle();
            oracle.controls.guessed_audio_attempts += 1;
            let decoded = oracle.key().decode_audio(response.body());
            oracle.receive(
                self.principal,
                &format!("guessed recording id rec-{id}"),
                &decoded,
                requested_ms,
                now,
            );
            return Ok(());
        }
        // Someone else's recording must be indistinguishable from one that
        // never existed: the same status and the same body as the answer
        // for an id nobody will ever have.
        let nonexistent = match self
            .call(
                false,
                Method::GET,
                &format!("/v1/recordings/{}/audio", u64::MAX),
                Some(&session),
                None,
            )
            .await
        {
            Ok(response) => response,
            Err(CallError::Unavailable(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut oracle = self.oracle();
        oracle.controls.guessed_audio_attempts += 1;
        oracle.controls.foreign_statuses_judged += 1;
        if response.status() == StatusCode::NOT_FOUND
            && response.status() == nonexistent.status()
            && response.body() == nonexistent.body()
        {
            oracle.controls.guessed_audio_refused += 1;
        } else {
            let detail = format!(
                "{} guessed rec-{id} (someone else's) and it answered {} {}, distinguishable from a nonexistent id ({} {})",
                oracle.who(self.principal),
                response.status(),
                String::from_utf8_lossy(response.body()),
                nonexistent.status(),
                String::from_utf8_lossy(nonexistent.body())
            );
            oracle.violate(
                Invariant::Isolation,
                now,
                None,
                Some(self.principal),
                detail,
            );
        }
        Ok(())
    }

    pub(super) async fn delete_one(&mut self, pick: u64) -> Result<(), CallError> {
        if self.own_recordings.is_empty() {
            return Ok(());
        }
        let chosen = self.own_recordings[(pick % self.own_recordings.len() as u64) as usize];
        let session = self.session.clone();
        self.oracle().deletion_started(chosen.nonce, sim_now_ms());
        let response = self
            .call(
                false,
                Method::DELETE,
                &format!("/v1/recordings/{}", chosen.id),
                Some(&session),
                None,
            )
            .await;
        match response {
            // 404: already gone (an earlier attempt whose answer was lost).
            Ok(r) if r.status() == StatusCode::OK || r.status() == StatusCode::NOT_FOUND => {
                self.oracle().deletion_acked(chosen.nonce, sim_now_ms());
                self.kept
                    .deletion_acked(chosen.id, chosen.nonce, sim_now_ms());
                self.own_recordings.retain(|r| r.id != chosen.id);
                Ok(())
            }
            Ok(r) => Err(CallError::Unexpected(format!(
                "delete answered {}",
                r.status()
            ))),
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
        let body = serde_json::to_vec(&DeleteRequest {
            all: false,
            captured_from_ms: Some(from_ms),
            captured_to_ms: Some(to_ms),
        })
        .map_err(|e| CallError::Unexpected(e.to_string()))?;
        let session = self.session.clone();
        match self
            .call(
                false,
                Method::POST,
                "/v1/recordings/delete",
                Some(&session),
                Some(body),
            )
            .await
        {
            Ok(r) if r.status() == StatusCode::OK => {
                let response: DeleteResponse = parse(&r)?;
                // The answer's word is judged, not taken: only own
                // recordings in the range may be named, and every own
                // acknowledged one in it counts as deleted from now on.
                let named: Vec<u64> = response.deleted.iter().map(|id| id.0).collect();
                let scope = DeletionScope::Range { from_ms, to_ms };
                self.oracle()
                    .judge_deletion(self.principal, scope, &named, now, sim_now_ms());
                for r in &covered {
                    self.kept.deletion_acked(r.id, r.nonce, now);
                }
                self.own_recordings
                    .retain(|r| !(from_ms..=to_ms).contains(&r.captured_at_ms));
                Ok(())
            }
            Ok(r) => Err(CallError::Unexpected(format!(
                "range delete answered {}",
                r.status()
            ))),
            Err(CallError::Unavailable(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sell a device to person `to`: the store moves it to their account in
    /// a new ownership epoch; the device (and whatever it has not uploaded
    /// yet) is handed over.
    async fn transfer_device(&mut self, pick: u64, to: usize) -> Result<(), CallError> {
        if self.devices.is_empty() || to == self.index || to >= self.world.plan.accounts.len() {
            return Ok(());
        }
        let chosen = (pick % self.devices.len() as u64) as usize;
        let to_email = self.world.plan.accounts[to].email.clone();
        let body = to_json(&TransferDeviceRequest { to_email })?;
        let session = self.session.clone();
        let path = format!("/v1/devices/{}/transfer", self.devices[chosen].id);
        self.world
            .board
            .borrow_mut()
            .devices_changing_hands
            .insert(self.devices[chosen].id);
        let response = self
            .call(false, Method::POST, &path, Some(&session), Some(body))
            .await?;
        match response.status() {
            StatusCode::OK => {
                let credentials: DeviceCredentials = parse(&response)?;
                let mut device: Device = self.devices.remove(chosen);
                self.kept.retired_tokens.push(device.token.clone());
                device.last_upload = None;
                device.token = credentials.device_token;
                device.epoch = credentials.ownership_epoch;
                self.oracle().controls.devices_transferred += 1;
                self.trace(format!("sold dev-{} to p{to}", device.id));
                self.world.board.borrow_mut().handoffs.push((to, device));
                Ok(())
            }
            // The buyer has no open account: no sale.
            StatusCode::NOT_FOUND => Ok(()),
            other => Err(CallError::Unexpected(format!("transfer answered {other}"))),
        }
    }

    /// Factory reset: a new ownership epoch and token; unsent captures are gone.
    async fn reset_device(&mut self, pick: u64) -> Result<(), CallError> {
        if self.devices.is_empty() {
            return Ok(());
        }
        let chosen = (pick % self.devices.len() as u64) as usize;
        let session = self.session.clone();
        let path = format!("/v1/devices/{}/reset", self.devices[chosen].id);
        let response = self
            .call(false, Method::POST, &path, Some(&session), None)
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            // Not ours any more: a sale whose answer was lost went through.
            let lost = self.devices.remove(chosen);
            self.trace(format!("dev-{} turned out to be sold already", lost.id));
            return Ok(());
        }
        if response.status() != StatusCode::OK {
            return Err(CallError::Unexpected(format!(
                "reset answered {}",
                response.status()
            )));
        }
        let credentials: DeviceCredentials = parse(&response)?;
        let device = &mut self.devices[chosen];
        self.kept.retired_tokens.push(device.token.clone());
        device.token = credentials.device_token;
        device.epoch = credentials.ownership_epoch;
        device.buffer.clear();
        self.oracle().controls.device_resets += 1;
        Ok(())
    }

    /// Send one of one's recordings to a contact by name; confirm only if
    /// the store resolved the name to the person meant.
    async fn send_message(
        &mut self,
        pick: u64,
        contact: u64,
        misheard: bool,
    ) -> Result<(), CallError> {
        if self.own_recordings.is_empty() || self.contacts.is_empty() {
            return Ok(());
        }
        let OwnRecording { id, nonce, .. } =
            self.own_recordings[(pick % self.own_recordings.len() as u64) as usize];
        let names: Vec<(String, usize)> =
            self.contacts.iter().map(|(n, p)| (n.clone(), *p)).collect();
        let chosen = (contact % names.len() as u64) as usize;
        let (_, intended) = names[chosen].clone();
        let intended_email = self.world.plan.accounts[intended].email.clone();
        // Misheard: the device takes the next contact's name for this one.
        let (_, heard) = if misheard {
            names[(chosen + 1) % names.len()].clone()
        } else {
            names[chosen].clone()
        };
        let body = to_json(&SendMessageRequest {
            recording_id: crosstalk_model::RecordingId(id),
            contact_name: display_name(heard),
        })?;
        let session = self.session.clone();
        let response = self
            .call(
                false,
                Method::POST,
                "/v1/messages",
                Some(&session),
                Some(body),
            )
            .await?;
        match response.status() {
            StatusCode::ACCEPTED => {}
            // The contact has no open account (closed), or the recording was
            // just deleted: nothing to send.
            StatusCode::NOT_FOUND => return Ok(()),
            other => {
                return Err(CallError::Unexpected(format!(
                    "send message answered {other}"
                )));
            }
        }
        let pending: MessageView = parse(&response)?;
        self.world.board.borrow_mut().messages.push((
            self.principal,
            pending.message_id,
            pending.resolved_contact.email.clone(),
        ));
        if pending.state != MessageState::Pending {
            return Err(CallError::Unexpected(
                "a message was delivered before its confirmation".into(),
            ));
        }
        if !pending
            .resolved_contact
            .email
            .eq_ignore_ascii_case(&intended_email)
        {
            // "Send this to Anne?" — "No, to Ann." The sender refuses.
            self.oracle().controls.messages_refused_by_sender += 1;
            return Ok(());
        }
        if self.confirm_message(&pending, nonce).await? {
            self.oracle().controls.messages_delivered += 1;
        }
        Ok(())
    }

    /// Confirm a pending message naming the address it resolved to. True
    /// when the store delivered it.
    async fn confirm_message(
        &mut self,
        pending: &MessageView,
        nonce: u64,
    ) -> Result<bool, CallError> {
        let email = pending.resolved_contact.email.clone();
        let recipient = self
            .world
            .board
            .borrow()
            .principal_by_email
            .get(&email)
            .copied();
        let body = to_json(&ConfirmMessageRequest {
            contact_email: email,
        })?;
        let path = format!("/v1/messages/{}/confirm", pending.message_id);
        // From the moment the confirmation is sent, the recipient may see it.
        if let Some(recipient) = recipient {
            self.oracle().sent(nonce, recipient);
        }
        let session = self.session.clone();
        let response = self
            .call(false, Method::POST, &path, Some(&session), Some(body))
            .await?;
        match response.status() {
            StatusCode::OK => {
                if let Some(recipient) = recipient {
                    self.oracle()
                        .message_confirmed(nonce, recipient, sim_now_ms());
                }
                Ok(true)
            }
            // The recipient closed their account in between; or the message
            // was a broadcast the store will never send.
            StatusCode::GONE | StatusCode::CONFLICT => Ok(false),
            other => Err(CallError::Unexpected(format!("confirm answered {other}"))),
        }
    }

    /// Settle the message commands the person's devices captured once the
    /// store's hold on them has ended: a message spoken at home is confirmed
    /// if it resolved to the person meant; for broadcast audio the
    /// television goes on "...yes!", so the harness confirms whatever the
    /// store offers — the store must never have offered it.
    pub(super) async fn settle_spoken_messages(&mut self) -> Result<(), CallError> {
        let now = sim_now_ms();
        let due = |m: &SpokenMessage| m.spoken_at_ms + HOLD_MS + SETTLE_AFTER_HOLD_MS <= now;
        if !self.spoken_messages.iter().any(due) {
            return Ok(());
        }
        let session = self.session.clone();
        let outgoing: Vec<MessageView> = self
            .expect_json(
                false,
                Method::GET,
                "/v1/messages",
                Some(&session),
                None,
                &[StatusCode::OK],
            )
            .await?;
        let mut keep = Vec::new();
        for spoken in std::mem::take(&mut self.spoken_messages) {
            let buffered = self
                .devices
                .iter()
                .any(|d| d.buffer.iter().any(|u| u.nonce == spoken.nonce));
            if !due(&spoken) || buffered {
                keep.push(spoken);
                continue;
            }
            let Some(id) = self
                .own_recordings
                .iter()
                .find(|r| r.nonce == spoken.nonce)
                .map(|r| r.id)
            else {
                continue; // Deleted, or uploaded by a device sold since.
            };
            // The message the command created (the same recording may also
            // have been sent from the app: that one is not spoken).
            let Some(message) = outgoing.iter().find(|m| m.recording_id.0 == id && m.spoken) else {
                continue; // The name is not exactly one of the contacts: nothing to send.
            };
            if message.state != MessageState::Held {
                self.oracle()
                    .claim_kept("held command decided within its hold");
            } else if self.held_past_its_hold(&spoken, message.message_id) {
                continue; // Reported once; not looked at again.
            }
            match (message.state, spoken.intended) {
                (MessageState::Held, _) => keep.push(spoken),
                (MessageState::Pending, Some(intended)) => {
                    let intended_email = self.world.plan.accounts[intended].email.clone();
                    if !message
                        .resolved_contact
                        .email
                        .eq_ignore_ascii_case(&intended_email)
                    {
                        self.oracle().controls.messages_refused_by_sender += 1;
                    } else if self.confirm_message(message, spoken.nonce).await? {
                        self.oracle().controls.spoken_messages_delivered += 1;
                    }
                }
                (MessageState::Pending, None) => {
                    let sent = self.confirm_message(message, spoken.nonce).await?;
                    if sent {
                        self.broadcast_message_sent(message, spoken.nonce);
                    }
                }
                (MessageState::Delivered, None) => {
                    self.broadcast_message_sent(message, spoken.nonce)
                }
                (MessageState::SuppressedMediaEvent, None) => {
                    self.oracle().controls.broadcast_messages_suppressed += 1
                }
                (MessageState::Delivered, Some(_)) => {
                    // The store's word that it delivered is checked against
                    // what the sender did: this command was never confirmed.
                    let now = sim_now_ms();
                    let mut oracle = self.oracle();
                    let detail = format!(
                        "message {} spoken by {} was delivered to {} without its sender's confirmation",
                        message.message_id,
                        oracle.who(self.principal),
                        message.resolved_contact.email
                    );
                    oracle.violate(
                        Invariant::RequestIntegrity,
                        now,
                        Some(spoken.nonce),
                        Some(self.principal),
                        detail,
                    );
                }
                _ => {}
            }
        }
        keep.extend(std::mem::take(&mut self.spoken_messages));
        self.spoken_messages = keep;
        Ok(())
    }

    /// A spoken command still held well after its hold ended, on a store
    /// that never restarted (no crash, no disk error: its sweeper ran all
    /// along) is a liveness violation. True when reported.
    fn held_past_its_hold(&self, spoken: &SpokenMessage, message_id: u64) -> bool {
        let plan = &self.world.plan;
        let steady =
            plan.store_io_errors_per_million == 0 && plan.crashes.iter().all(|c| c.host != "store");
        let acked = self.world.oracle.borrow().acked_at(spoken.nonce);
        let now = sim_now_ms();
        let Some(acked) = acked.filter(|at| steady && now > at + HOLD_MS + HELD_SLACK_MS) else {
            return false;
        };
        let detail = format!(
            "message {message_id} (a spoken command acknowledged at {acked} ms) is still held at {now} ms, past its {HOLD_MS} ms hold"
        );
        self.oracle().violate(
            Invariant::Liveness,
            now,
            Some(spoken.nonce),
            Some(self.principal),
            detail,
        );
        true
    }

    fn broadcast_message_sent(&self, message: &MessageView, nonce: u64) {
        let now = sim_now_ms();
        let mut oracle = self.oracle();
        let detail = format!(
            "message {} to {} was sent from broadcast audio heard by {}",
            message.message_id,
            message.resolved_contact.email,
            oracle.who(self.principal)
        );
        oracle.violate(
            Invariant::BroadcastActed,
            now,
            Some(nonce),
            Some(self.principal),
            detail,
        );
    }

    /// Read the inbox: every message's transcript, and one message's audio.
    pub(super) async fn read_inbox(&mut self, pick: u64) -> Result<(), CallError> {
        let session = self.session.clone();
        let requested_ms = sim_now_ms();
        let items: Vec<InboxItem> = self
            .expect_json(
                false,
                Method::GET,
                "/v1/inbox",
                Some(&session),
                None,
                &[StatusCode::OK],
            )
            .await?;
        {
            let now = sim_now_ms();
            let mut oracle = self.oracle();
            let mut listed = std::collections::BTreeSet::new();
            for item in &items {
                let decoded = oracle.key().decode_transcript(&item.recording.transcript);
                oracle.controls.inbox_items_checked += 1;
                listed.extend(decoded.nonces.iter().copied());
                oracle.receive(
                    self.principal,
                    &format!("inbox message {}", item.message_id),
                    &decoded,
                    requested_ms,
                    now,
                );
            }
            oracle.inbox_listed(self.principal, &listed, requested_ms, now);
        }
        if items.is_empty() {
            return Ok(());
        }
        let item = &items[(pick % items.len() as u64) as usize];
        let path = format!("/v1/inbox/{}/audio", item.message_id);
        let requested_ms = sim_now_ms();
        let response = self
            .call(false, Method::GET, &path, Some(&session), None)
            .await?;
        match response.status() {
            StatusCode::OK => {
                let now = sim_now_ms();
                let mut oracle = self.oracle();
                let decoded = oracle.key().decode_audio(response.body());
                oracle.receive(
                    self.principal,
                    &format!("inbox audio {}", item.message_id),
                    &decoded,
                    requested_ms,
                    now,
                );
                Ok(())
            }
            // Its sender deleted it in between.
            StatusCode::NOT_FOUND => Ok(()),
            other => Err(CallError::Unexpected(format!(
                "inbox audio answered {other}"
            ))),
        }
    }

    /// "Delete my account": retried until the store acknowledges it.
    /// Whether the store refuses this person's own email and password
    /// (their account is closed).
    async fn login_refused(&mut self) -> Result<bool, CallError> {
        let body = to_json(&crosstalk_model::api::LoginRequest {
            email: self.email(),
            password: self.password(),
        })?;
        let response = self
            .call(false, Method::POST, "/v1/sessions", None, Some(body))
            .await?;
        Ok(response.status() == StatusCode::UNAUTHORIZED)
    }

    async fn close_account(&mut self) -> Result<(), CallError> {
        let session = self.session.clone();
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        let mut attempted = false;
        loop {
            let sent_ms = sim_now_ms();
            match self
                .call(
                    false,
                    Method::DELETE,
                    "/v1/accounts/me",
                    Some(&session),
                    None,
                )
                .await
            {
                Ok(r) if r.status() == StatusCode::OK => {
                    // The answer names what it deleted: only own recordings.
                    let response: DeleteResponse = parse(&r)?;
                    let named: Vec<u64> = response.deleted.iter().map(|id| id.0).collect();
                    let (principal, now) = (self.principal, sim_now_ms());
                    self.oracle().judge_deletion(
                        principal,
                        DeletionScope::All,
                        &named,
                        sent_ms,
                        now,
                    );
                    break;
                }
                // An earlier attempt went through but its answer was lost.
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED && attempted => break,
                // The call's own retry after a lost answer: the account is
                // closed if even the right password no longer logs in.
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED && self.login_refused().await? => {
                    break;
                }
                Ok(r) => {
                    return Err(CallError::Unexpected(format!(
                        "close account answered {}",
                        r.status()
                    )));
                }
                Err(CallError::Unavailable(_)) if sim_now_ms() + POLL_MS <= deadline_ms => {
                    attempted = true;
                    tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let now = sim_now_ms();
        self.oracle().account_closed(self.principal, now);
        let email = self.email();
        self.world
            .board
            .borrow_mut()
            .principal_by_email
            .remove(&email);
        self.closed = true;
        self.kept.old_session = Some(std::mem::take(&mut self.session));
        let tokens: Vec<String> = self.devices.iter().map(|d| d.token.clone()).collect();
        self.kept.retired_tokens.extend(tokens);
        self.devices.clear();
        self.own_recordings.clear();
        Ok(())
    }

    /// Sign up again with the same email: a new identity that must see
    /// nothing of the old one.
    async fn sign_up_again(&mut self) -> Result<(), CallError> {
        let email = self.email();
        let principal = self.oracle().add_principal(email);
        self.principal = principal;
        // The old identity's links and deletions are not the new one's.
        self.kept.links.clear();
        self.kept.deleted.clear();
        self.oracle().controls.accounts_recycled += 1;
        match self.sign_up().await {
            Ok(()) => Ok(()),
            Err(CallError::Unavailable(e)) => {
                // Stays closed; the person gives up for this run.
                self.closed = true;
                Err(CallError::Unavailable(e))
            }
            Err(e) => Err(e),
        }
    }
}
