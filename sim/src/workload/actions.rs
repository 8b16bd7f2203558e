//! What a person does, besides speaking: play back, delete, sell or reset
//! a device, message, read the inbox, close the account, come back — and
//! try what belongs to others. `perform` dispatches every planned action
//! (exports live in `exports.rs`, the curious user in `adversary.rs`).

use super::airing::Airing;
use super::person::{Device, OwnRecording, POLL_MS, Person, SpokenMessage, parse, to_json};
use super::{CallError, pick_where};
use crate::check::durable::AckedWhat;
use crate::check::feed::FeedReread;
use crate::check::replies::links_in;
use crate::check::{DeletionScope, Event, SpokenListing, SpokenNext};
use crate::faults::ack_crash::RareWrite;
use crate::net::sim_now_ms;
use crate::plan::{Action, display_name};
use crate::workload::Service;
use crosstalk_model::api::Notification;
use crosstalk_model::api::{
    ConfirmMessageRequest, DeleteRequest, DeleteResponse, DeviceCredentials, InboxItem,
    MessageState, MessageView, SendMessageRequest, TransferDeviceRequest,
};
use crosstalk_service::HttpResponse;
use http::{Method, StatusCode};
use std::time::Duration;

/// How long after a spoken command's hold the person looks at it (the
/// store's sweeper decides held commands every second or so).
pub(super) const SETTLE_AFTER_HOLD_MS: u64 = 5_000;

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
                also_heard,
                audio_bytes,
            } => {
                if let Some(echo) = also_heard
                    && self.devices.len() > 1
                {
                    let nonces = [nonce, echo];
                    return self
                        .speak_near_two_devices(device, nonces, content, phrase, audio_bytes)
                        .await;
                }
                self.speak(
                    device,
                    nonce,
                    content,
                    phrase,
                    purchase,
                    message,
                    speaker,
                    audio_bytes,
                )
                .await?;
                match self.spoken_messages.last().copied() {
                    Some(spoken) if spoken.nonce == nonce => {
                        let Some(intended) = spoken.intended else {
                            return Ok(());
                        };
                        self.confirm_during_hold(nonce, spoken.spoken_at_ms, intended)
                            .await
                    }
                    _ => Ok(()),
                }
            }
            // `Airing::of` reads every field of this very action.
            Action::HearBroadcast { .. } => match Airing::of(action) {
                Some(airing) => self.hear_broadcast(airing).await,
                None => Ok(()),
            },
            Action::ListHistory => self.read_history("history listing").await.map(|_| ()),
            Action::FetchOwnAudio { pick } => self.fetch_own_audio(pick).await,
            Action::RequestExport {
                delete_first,
                redownloads,
                repeats,
                by_ticket,
                store_down_ms,
            } => {
                self.store_down_ms = store_down_ms;
                let done = self
                    .request_export(delete_first, redownloads, repeats, by_ticket)
                    .await;
                self.store_down_ms = None;
                done?;
                self.ask_again_after_poison().await
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
            Action::DeleteAll => self.delete_all().await,
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
            Action::ProbeLinkLimits { past_expiry } => self.probe_link_limits(past_expiry).await,
            Action::RebuildOwnArchive => self.rebuild_own_archive().await,
            Action::BruteForceTicket {
                victim,
                by_victim,
                near_miss,
            } => {
                self.brute_force_ticket(victim as usize, by_victim, near_miss)
                    .await
            }
            Action::ConfirmAfterRecycle { contact, pick } => {
                self.confirm_after_recycle(contact as usize, pick).await
            }
            Action::TicketAcrossHandover { attacker, nonces } => {
                self.ticket_across_handover(attacker, nonces).await
            }
            Action::MoveOut {
                to,
                device,
                nonces,
                item,
                contact,
                buyer_first,
            } => {
                let move_out = super::handover::MoveOut {
                    to: to as usize,
                    device,
                    nonces,
                    item,
                    contact,
                    buyer_first,
                };
                self.move_out(move_out).await
            }
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
                Service::Store,
                Method::GET,
                &format!("/v1/recordings/{id}/audio"),
                Some(&session),
                None,
            )
            .await?;
        let now = sim_now_ms();
        self.oracle().on_own_audio(
            self.principal,
            id,
            nonce,
            response.status(),
            response.body(),
            requested_ms,
            now,
        );
        Ok(())
    }

    /// Ask for someone else's data by their email and guess the code.
    async fn impersonate(&mut self, victim: usize, guesses: u32) -> Result<(), CallError> {
        if victim == self.index || victim >= self.world.plan.accounts.len() {
            return Ok(());
        }
        let victims = &self.world.plan.accounts[victim].email;
        let claimed_email = self.typed(victims, &format!("impersonate/{victim}"));
        // Knowing an address must never be enough: whatever the victim
        // asked for before, a new ticket starts unverified.
        let Some(ticket_id) = self
            .open_foreign_ticket(&claimed_email, "I lost access, I know my address")
            .await?
        else {
            return Ok(());
        };
        for guess in 0..guesses {
            let code = format!("{:016x}", (ticket_id << 8) ^ u64::from(guess) ^ 0x5eed_c0de);
            let response = self.send_ticket_code(ticket_id, &code).await?;
            let now = sim_now_ms();
            let status = response.status();
            if !self
                .oracle()
                .on_impersonation_guess(self.principal, status, now)
            {
                return Err(CallError::Unexpected(format!(
                    "verification answered {status}"
                )));
            }
        }
        Ok(())
    }

    /// Read one's notifications and follow every download link in them:
    /// each must lead to one's own data.
    pub(super) async fn read_notifications(&mut self) -> Result<(), CallError> {
        let session = self.session.clone();
        let whole = self.whole_feed().await?;
        let after = self.notification_seq;
        let notifications = self.notifications().await?;
        let after_cursor: Vec<u64> = notifications.iter().map(|n| n.seq).collect();
        let reread = FeedReread {
            principal: self.principal,
            after,
            whole: &whole,
            after_cursor: &after_cursor,
        };
        self.oracle().judge_feed_reread(reread, sim_now_ms());
        for notification in notifications {
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
                .call(Service::Export, Method::GET, &path, Some(&session), None)
                .await?;
            let now = sim_now_ms();
            self.oracle().on_notified_link(
                self.principal,
                notification.seq,
                &notification.kind,
                response.status(),
                response.body(),
                requested_ms,
                now,
            );
        }
        Ok(())
    }

    /// The `seq`s of one's whole feed (`after=0`), the cursor untouched: a
    /// client that lost its cursor, or a second device, reads it so.
    async fn whole_feed(&mut self) -> Result<Vec<u64>, CallError> {
        let notes: Vec<Notification> = self
            .read_own(Service::Store, "/v1/notifications?after=0")
            .await?;
        Ok(notes.iter().map(|n| n.seq).collect())
    }

    /// New notifications since the last read.
    pub(super) async fn notifications(&mut self) -> Result<Vec<Notification>, CallError> {
        let path = format!("/v1/notifications?after={}", self.notification_seq);
        let notes: Vec<Notification> = self.read_own(Service::Store, &path).await?;
        if let Some(last) = notes.last() {
            self.notification_seq = last.seq;
        }
        // Every download link in one's feed must be one's own, whether or
        // not it is followed (a misdelivered link is a leak waiting for a
        // service that does not bind links to their subject).
        let now = sim_now_ms();
        let mut oracle = self.oracle();
        for note in &notes {
            for (_, subject) in links_in(note.text.as_bytes()) {
                let channel = format!("notification {}", note.seq);
                oracle.link_delivered(self.principal, subject.0, &channel, now);
            }
        }
        drop(oracle);
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
            .call(
                Service::Export,
                Method::GET,
                &link.path,
                Some(&session),
                None,
            )
            .await
        {
            Ok(response) => response,
            Err(CallError::Unavailable(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let now = sim_now_ms();
        self.oracle().on_foreign_link(
            self.principal,
            link.owner,
            link.export_id,
            response.status(),
            response.body(),
            requested_ms,
            now,
        );
        // Without any session: must be refused as unauthenticated.
        let response = match self
            .call(Service::Export, Method::GET, &link.path, None, None)
            .await
        {
            Ok(response) => response,
            Err(CallError::Unavailable(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.oracle().on_anonymous_link(
            self.principal,
            link.export_id,
            response.status(),
            sim_now_ms(),
        );
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
            .call(Service::Store, Method::GET, &guessed, Some(&session), None)
            .await
        {
            Ok(response) => response,
            Err(CallError::Unavailable(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let now = sim_now_ms();
        if response.status() == StatusCode::OK {
            self.oracle().on_guessed_audio_delivered(
                self.principal,
                id,
                response.body(),
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
                Service::Store,
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
        self.oracle().on_guessed_audio_refused(
            self.principal,
            id,
            (response.status(), response.body()),
            (nonexistent.status(), nonexistent.body()),
            now,
        );
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
                Service::Store,
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
                Service::Store,
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
        if let Some(device) = self.sell_device(chosen, to).await? {
            self.world.board.borrow_mut().handoffs.push((to, device));
        }
        Ok(())
    }

    /// Sell device `chosen` to person `to`; the device as the buyer gets it
    /// (its new credentials, the captures it still holds), or `None` when
    /// the buyer has no open account.
    pub(super) async fn sell_device(
        &mut self,
        chosen: usize,
        to: usize,
    ) -> Result<Option<Device>, CallError> {
        let device_id = self.devices[chosen].id;
        let to_email = self.typed(
            &self.world.plan.accounts[to].email,
            &format!("sale/{device_id}"),
        );
        let body = to_json(&TransferDeviceRequest {
            to_email: to_email.clone(),
        })?;
        let session = self.session.clone();
        let path = format!("/v1/devices/{device_id}/transfer");
        self.world
            .board
            .borrow_mut()
            .devices_changing_hands
            .insert(self.devices[chosen].id);
        let sent_ms = sim_now_ms();
        let response = self
            .call(
                Service::Store,
                Method::POST,
                &path,
                Some(&session),
                Some(body),
            )
            .await?;
        let registered = self.world.board.borrow().devices.get(&device_id) == Some(&self.principal);
        let sale = crate::check::addresses::SaleAnswer {
            seller: self.principal,
            device: device_id,
            registered_by_seller: registered,
            typed: &to_email,
            status: response.status().as_u16(),
            sent_ms,
            at_ms: sim_now_ms(),
        };
        self.oracle().on_sale_answered(sale);
        match response.status() {
            StatusCode::OK => {
                let credentials: DeviceCredentials = parse(&response)?;
                let mut device: Device = self.devices.remove(chosen);
                device.stamp_buffered_epochs()?;
                self.kept.retired_tokens.push(device.token.clone());
                let sold = AckedWhat::TokenReplaced(RareWrite::Transfer);
                self.state_acknowledged(sold, device.token.clone(), sent_ms);
                device.last_upload = None;
                device.token = credentials.device_token;
                device.epoch = credentials.ownership_epoch;
                self.oracle().on(Event::DeviceTransferred);
                self.trace(format!("sold dev-{} to p{to}", device.id));
                Ok(Some(device))
            }
            // The buyer has no open account: no sale.
            StatusCode::NOT_FOUND => Ok(None),
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
        let sent_ms = sim_now_ms();
        let response = self
            .call(Service::Store, Method::POST, &path, Some(&session), None)
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            // Not ours any more: a sale whose answer was lost went through
            // (the oracle checks that one was sent).
            let (device, now) = (self.devices[chosen].id, sim_now_ms());
            let registered =
                self.world.board.borrow().devices.get(&device) == Some(&self.principal);
            if registered {
                self.oracle()
                    .own_device_reset_not_found(self.principal, device, now);
            }
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
        let old_token = self.devices[chosen].token.clone();
        let reset = AckedWhat::TokenReplaced(RareWrite::Reset);
        self.state_acknowledged(reset, old_token, sent_ms);
        let device = &mut self.devices[chosen];
        self.kept.retired_tokens.push(device.token.clone());
        device.token = credentials.device_token;
        device.epoch = credentials.ownership_epoch;
        device.buffer.clear();
        self.oracle().on(Event::DeviceReset);
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
        self.message_nobody(id, pick).await?;
        // Misheard: the device takes the next contact's name for this one.
        let (_, heard) = if misheard {
            names[(chosen + 1) % names.len()].clone()
        } else {
            names[chosen].clone()
        };
        // The contact has no open account (closed), or the recording was
        // just deleted: nothing to send (the oracle judges which).
        let sent_ms = sim_now_ms();
        let pending = self.send_to_contact(id, display_name(heard)).await?;
        let contacts: Vec<String> = self
            .contacts
            .values()
            .map(|&other| self.typed_contact_address(other))
            .collect();
        let contact = self.typed_contact_address(heard);
        let addressed = crate::check::addresses::MessageAddressed {
            sender: self.principal,
            nonce,
            contact: &contact,
            contacts: &contacts,
            resolved: pending.as_ref().map(|p| p.resolved_contact.email.as_str()),
            sent_ms,
            at_ms: sim_now_ms(),
        };
        self.oracle().on_message_addressed(addressed);
        let Some(pending) = pending else {
            return Ok(());
        };
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
            self.confirm_contact_meant(&pending, &intended_email)
                .await?;
            self.oracle().on(Event::MessageRefusedBySender);
            return Ok(());
        }
        if self.confirm_message(&pending, nonce, true).await? {
            self.oracle().on(Event::MessageDelivered);
        }
        Ok(())
    }

    /// Confirm message `message_id` with one's own session, naming
    /// `contact_email`; the store's answer, unjudged.
    pub(super) async fn post_confirmation(
        &mut self,
        message_id: u64,
        contact_email: &str,
    ) -> Result<HttpResponse, CallError> {
        let body = to_json(&ConfirmMessageRequest {
            contact_email: contact_email.to_string(),
        })?;
        let path = format!("/v1/messages/{message_id}/confirm");
        let session = self.session.clone();
        self.call(
            Service::Store,
            Method::POST,
            &path,
            Some(&session),
            Some(body),
        )
        .await
    }

    /// Confirm a pending message naming the address it resolved to, as the
    /// sender keeps it in their contacts when it is a contact's (so in the
    /// letters they typed it in). True when the store delivered it. With
    /// `meant`, the message resolved to the person meant: the oracle judges
    /// a refusal.
    async fn confirm_message(
        &mut self,
        pending: &MessageView,
        nonce: u64,
        meant: bool,
    ) -> Result<bool, CallError> {
        let email = pending.resolved_contact.email.clone();
        let recipient = self.world.board.borrow().holder_of(&email);
        let named = self
            .contacts
            .values()
            .map(|&other| self.typed_contact_address(other))
            .find(|typed| {
                crate::addresses::normalized(typed) == crate::addresses::normalized(&email)
            })
            .unwrap_or_else(|| email.clone());
        // From the moment the confirmation is sent, the recipient may see it.
        if let Some(recipient) = recipient {
            self.oracle().sent(nonce, recipient);
        }
        let response = self.post_confirmation(pending.message_id, &named).await?;
        if meant {
            let answer = crate::check::addresses::ConfirmationAnswer {
                sender: self.principal,
                message_id: pending.message_id,
                named: &named,
                resolved: &email,
                status: response.status().as_u16(),
                at_ms: sim_now_ms(),
            };
            self.oracle().on_confirmation_answered(answer);
        }
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

    /// Ask the store to send recording `id` to the contact named
    /// `contact_name`: the raw answer, for callers that judge it.
    pub(super) async fn post_message(
        &mut self,
        id: u64,
        contact_name: String,
    ) -> Result<HttpResponse, CallError> {
        let body = to_json(&SendMessageRequest {
            recording_id: crosstalk_model::RecordingId(id),
            contact_name,
        })?;
        let session = self.session.clone();
        self.call(
            Service::Store,
            Method::POST,
            "/v1/messages",
            Some(&session),
            Some(body),
        )
        .await
    }

    /// Send recording `id` to the contact named `contact_name`; the pending
    /// message (kept on the board), or `None` when the store found nobody
    /// to send it to or no such recording.
    pub(super) async fn send_to_contact(
        &mut self,
        id: u64,
        contact_name: String,
    ) -> Result<Option<MessageView>, CallError> {
        let response = self.post_message(id, contact_name).await?;
        match response.status() {
            StatusCode::ACCEPTED => {}
            StatusCode::NOT_FOUND => return Ok(None),
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
        Ok(Some(pending))
    }

    /// Settle the message commands the person's devices captured once the
    /// store's hold on them has ended: a message spoken at home is confirmed
    /// if it resolved to the person meant; for broadcast audio the
    /// television goes on "...yes!", so the harness confirms whatever the
    /// store offers — the store must never have offered it.
    pub(super) async fn settle_spoken_messages(&mut self) -> Result<(), CallError> {
        let now = sim_now_ms();
        let hold_ms = self.world.plan.hold_ms;
        let due = |m: &SpokenMessage| m.spoken_at_ms + hold_ms + SETTLE_AFTER_HOLD_MS <= now;
        if !self.spoken_messages.iter().any(due) {
            return Ok(());
        }
        let outgoing = self.list_outgoing_messages().await?;
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
                // Deleted, or uploaded by a device sold since.
                self.confirm_cancelled(spoken.nonce, &outgoing).await?;
                continue;
            };
            // The message the command created (the same recording may also
            // have been sent from the app: that one is not spoken).
            let message = outgoing.iter().find(|m| m.recording_id.0 == id && m.spoken);
            self.report_spoken_resolution(&spoken, message);
            let Some(message) = message else {
                continue; // The contact has no open account: nothing to send.
            };
            let intended_email = spoken
                .intended
                .map(|intended| self.world.plan.accounts[intended].email.clone());
            let listing = SpokenListing {
                sender: self.principal,
                nonce: spoken.nonce,
                message_id: message.message_id,
                state: message.state,
                resolved_email: &message.resolved_contact.email,
                intended_email: intended_email.as_deref(),
                store_steady: self.store_steady(),
            };
            let next = self
                .oracle()
                .on_spoken_message_listed(listing, sim_now_ms());
            match next {
                SpokenNext::Hold => keep.push(spoken),
                SpokenNext::Drop => {}
                SpokenNext::ConfirmIntended => {
                    if self.confirm_message(message, spoken.nonce, true).await? {
                        self.oracle().on(Event::SpokenMessageDelivered);
                    }
                }
                SpokenNext::ConfirmBroadcast => {
                    let sent = self.confirm_message(message, spoken.nonce, false).await?;
                    self.oracle()
                        .on_broadcast_confirmed(&listing, sent, sim_now_ms());
                }
                SpokenNext::Suppressed => self.confirm_suppressed(message).await?,
            }
        }
        keep.extend(std::mem::take(&mut self.spoken_messages));
        self.spoken_messages = keep;
        Ok(())
    }

    /// What the store made of a spoken "send this to <contact>" (a message
    /// resolved to some address, or none), for the oracle to judge against
    /// the contacts the speaker gave it.
    fn report_spoken_resolution(&self, spoken: &SpokenMessage, message: Option<&MessageView>) {
        let Some(intended) = spoken.intended else {
            return; // Broadcast audio: the name need be nobody's contact.
        };
        let contacts: Vec<String> = self
            .contacts
            .values()
            .map(|&other| self.typed_contact_address(other))
            .collect();
        let contact = self.typed_contact_address(intended);
        let resolved = message.map(|m| m.resolved_contact.email.as_str());
        self.oracle().on_spoken_message_addressed(
            self.principal,
            spoken.nonce,
            &contact,
            &contacts,
            resolved,
        );
    }

    /// The store never restarted in this run (no crash, no disk error): its
    /// sweeper ran all along.
    fn store_steady(&self) -> bool {
        let plan = &self.world.plan;
        plan.store_io_errors_per_million == 0 && plan.crashes.iter().all(|c| c.host != "store")
    }

    /// Read the inbox: every message's transcript, and one message's audio.
    pub(super) async fn read_inbox(&mut self, pick: u64) -> Result<(), CallError> {
        let session = self.session.clone();
        let requested_ms = sim_now_ms();
        let items: Vec<InboxItem> = self.read_own(Service::Store, "/v1/inbox").await?;
        {
            let now = sim_now_ms();
            let mut oracle = self.oracle();
            let mut listed = std::collections::BTreeSet::new();
            for item in &items {
                let decoded = oracle.key().decode_transcript(&item.recording.transcript);
                oracle.on(Event::InboxItemChecked);
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
        self.look_again_at_withdrawn_message(&items).await?;
        if items.is_empty() {
            return Ok(());
        }
        let item = &items[(pick % items.len() as u64) as usize];
        let path = format!("/v1/inbox/{}/audio", item.message_id);
        let requested_ms = sim_now_ms();
        let response = self
            .call(Service::Store, Method::GET, &path, Some(&session), None)
            .await?;
        match response.status() {
            StatusCode::OK => {
                let now = sim_now_ms();
                let mut oracle = self.oracle();
                let listed = oracle.key().decode_transcript(&item.recording.transcript);
                let expected = listed.nonces.first().copied();
                let (principal, id, audio) = (self.principal, item.message_id, response.body());
                oracle.on_inbox_audio(principal, id, expected, audio, requested_ms, now);
                Ok(())
            }
            // Its sender deleted it in between.
            StatusCode::NOT_FOUND => Ok(()),
            other => Err(CallError::Unexpected(format!(
                "inbox audio answered {other}"
            ))),
        }
    }

    /// A message seen in an earlier listing that is no longer listed (its
    /// sender deleted it) is asked for again by id, as a client with a
    /// stale list would: its audio must not come back. Whatever does come
    /// back is judged by its watermark; a refusal reveals nothing.
    async fn look_again_at_withdrawn_message(
        &mut self,
        items: &[InboxItem],
    ) -> Result<(), CallError> {
        let principal = self.principal;
        let listed: std::collections::BTreeSet<u64> = items.iter().map(|i| i.message_id).collect();
        let withdrawn = self
            .inbox_seen
            .iter()
            .position(|&(seen_by, id)| seen_by == principal && !listed.contains(&id));
        let again = withdrawn.map(|at| self.inbox_seen.remove(at).1);
        self.inbox_seen
            .retain(|&(seen_by, id)| seen_by == principal && !listed.contains(&id));
        self.inbox_seen
            .extend(items.iter().map(|i| (principal, i.message_id)));
        const KEPT: usize = 16;
        if self.inbox_seen.len() > KEPT {
            self.inbox_seen.drain(..self.inbox_seen.len() - KEPT);
        }
        let Some(message_id) = again else {
            return Ok(());
        };
        let session = self.session.clone();
        let path = format!("/v1/inbox/{message_id}/audio");
        let requested_ms = sim_now_ms();
        let response = self
            .call(Service::Store, Method::GET, &path, Some(&session), None)
            .await?;
        let mut oracle = self.oracle();
        oracle.on(Event::WithdrawnMessageRechecked);
        match response.status() {
            StatusCode::OK => {
                oracle.receive_audio(
                    principal,
                    &format!("inbox audio {message_id} (no longer listed)"),
                    response.body(),
                    requested_ms,
                    sim_now_ms(),
                );
                Ok(())
            }
            StatusCode::NOT_FOUND => Ok(()),
            other => Err(CallError::Unexpected(format!(
                "inbox audio of a withdrawn message answered {other}"
            ))),
        }
    }

    /// "Delete my account": retried until the store acknowledges it.
    /// Whether the store refuses this person's own email and password
    /// (their account is closed).
    pub(super) async fn login_refused(&mut self) -> Result<bool, CallError> {
        let body = to_json(&crosstalk_model::api::LoginRequest {
            email: self.email(),
            password: self.password(),
        })?;
        let response = self
            .call(
                Service::Store,
                Method::POST,
                "/v1/sessions",
                None,
                Some(body),
            )
            .await?;
        Ok(response.status() == StatusCode::UNAUTHORIZED)
    }

    pub(super) async fn close_account(&mut self) -> Result<(), CallError> {
        let session = self.session.clone();
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        let mut attempted = false;
        let first_sent_ms = sim_now_ms();
        loop {
            let sent_ms = sim_now_ms();
            match self
                .call(
                    Service::Store,
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
        self.world.board.borrow_mut().release(&email);
        self.closed = true;
        self.always_on_account_closed();
        self.state_acknowledged(AckedWhat::Closed, session, first_sent_ms);
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
        self.oracle().on(Event::AccountRecycled);
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
