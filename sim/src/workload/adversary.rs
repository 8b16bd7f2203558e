//! The curious user: every person may be one, a round at a time.
//!
//! With their own valid session, a curious user takes every id, cursor,
//! token and link they have seen (on the [`Board`](super::Board): other
//! people's recordings, devices, messages, exports, tickets, cursors, and
//! guessed neighbours of those ids) and tries them in the path, the query
//! string and the body of every endpoint of both services; adds query
//! parameters the API does not document; tampers with their own download
//! link in every field; signs in with a neighbour's email and wrong
//! passwords; knocks on the service, worker and agent doors with wrong
//! tokens; uses a closed account's old session and a sold or reset device's
//! old token; sends an acknowledged upload again with the same key and
//! reuses an old cursor (the weakest client the contract allows); and looks
//! again at what they were told is gone (playback of deleted recordings, an
//! old archive link) or kept (playback of the latest upload).
//!
//! The workload only reports what it asked and what came back: every answer
//! goes to [`Oracle::attempt`](crate::check::Oracle::attempt) (the refusal
//! the contract demands, exactly), and every byte delivered goes through
//! the watermark (`Oracle::receive`). Nothing a service says is believed: a
//! foreign deletion that "succeeded" is never reported to the oracle as a
//! deletion, so the victim's own audit notices the loss too.

mod key_reuse;
mod service_routes;

use super::person::{Person, parse, to_json};
use super::{CallError, pick_in_map, pick_where};
use crate::check::{Event, Invariant};
use crate::net::sim_now_ms;
use crate::workload::Service;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use crosstalk_model::api::{
    ConfirmMessageRequest, DeleteRequest, DeleteResponse, IngestRequest, IngestResponse,
    LoginRequest, MessageView, RecordingPage, SendMessageRequest, SignupRequest, SignupResponse,
    TransferDeviceRequest, VerifyTicketRequest,
};
use crosstalk_service::HttpResponse;
use http::{Method, StatusCode};
use std::collections::BTreeSet;

/// A door: the kind of attempt, the service it is at, the method,
/// the path, the body, and the real token.
type Door<'a> = (
    &'static str,
    Service,
    Method,
    String,
    Option<Vec<u8>>,
    &'a String,
);

/// What a person keeps to try again later.
#[derive(Default)]
pub(crate) struct Kept {
    /// Recordings whose deletion the store acknowledged: (id, nonce).
    pub(super) deleted: Vec<(u64, u64)>,
    /// When the last of those deletions was acknowledged (simulated ms).
    pub(super) last_deletion_ms: u64,
    /// Own download links: (path, when first downloaded).
    pub(super) links: Vec<(String, u64)>,
    /// The same links with their export: (path, export id, when asked,
    /// the principal whose export it is).
    pub(super) link_exports: Vec<(String, u64, u64, usize)>,
    /// Device tokens replaced by a sale, a reset or the account's closing.
    pub(super) retired_tokens: Vec<String>,
    /// The session of the account this person closed.
    pub(super) old_session: Option<String>,
    /// Acknowledged changes to probe again after a power loss
    /// (`durable.rs`).
    pub(super) acked: super::durable::AckedLedger,
}

impl Kept {
    pub(super) fn deletion_acked(&mut self, id: u64, nonce: u64, at_ms: u64) {
        self.deleted.push((id, nonce));
        self.last_deletion_ms = at_ms;
    }
}

/// Query parameters no endpoint documents; a curious user adds them anyway.
const UNDOCUMENTED: &[&str] = &["account", "owner", "subject", "user", "as", "device"];

/// How many attempts a probe makes when the service does not answer (its
/// outcome is then unknown and nothing is judged).
const PROBE_ATTEMPTS: u32 = 2;

const NOT_FOUND: &[u16] = &[404];
const UNAUTHORIZED: &[u16] = &[401];
const FORBIDDEN: &[u16] = &[403];

impl Person {
    /// One round of the curious user with an open account.
    pub(super) async fn probe(&mut self, pick: u64, nonce: u64) -> Result<(), CallError> {
        self.foreign_recording_ids(pick).await?;
        self.foreign_range_deletion(pick).await?;
        self.foreign_devices(pick).await?;
        self.foreign_messages(pick).await?;
        self.addressed_message_by_id(pick).await?;
        self.foreign_exports_and_tickets(pick).await?;
        self.foreign_and_stale_cursors(pick).await?;
        self.tamper_own_link(pick).await?;
        self.sign_in_as_neighbour(pick).await?;
        self.sign_up_again_written_otherwise(pick).await?;
        self.knock_with_wrong_tokens(pick).await?;
        self.service_routes_as_user(pick).await?;
        self.old_session_and_devices(nonce).await?;
        self.replay_own_upload(pick).await?;
        self.reuse_upload_key(pick).await?;
        self.probe_claims(pick).await
    }

    /// A round after the account was closed: only the old credentials.
    pub(super) async fn probe_as_closed(
        &mut self,
        _pick: u64,
        nonce: u64,
    ) -> Result<(), CallError> {
        self.old_session_and_devices(nonce).await?;
        let (Some(session), Some((path, _))) = (
            self.kept.old_session.clone(),
            self.kept.links.last().cloned(),
        ) else {
            return Ok(());
        };
        if let Some(r) = self
            .probe_call(Service::Export, Method::GET, &path, Some(&session), None)
            .await?
        {
            let what = "downloaded their own archive after closing the account";
            self.judge(
                "own link after closing",
                &r,
                UNAUTHORIZED,
                Invariant::LinkBinding,
                what,
            );
        }
        Ok(())
    }

    /// One exchange of a probe; `None` when the service did not answer.
    async fn probe_call(
        &self,
        service: Service,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Option<HttpResponse>, CallError> {
        let sent = self.call_with_attempts(PROBE_ATTEMPTS, service, method, path, bearer, body);
        match sent.await {
            Ok(response) => Ok(Some(response)),
            Err(CallError::Unavailable(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn judge(
        &self,
        kind: &'static str,
        response: &HttpResponse,
        refusals: &[u16],
        invariant: Invariant,
        what: &str,
    ) -> bool {
        let status = response.status().as_u16();
        self.oracle().attempt(
            kind,
            self.principal,
            status,
            refusals,
            invariant,
            sim_now_ms(),
            what,
        )
    }

    /// Whatever audio a failed refusal delivered, judged by its watermark.
    fn judge_audio(&self, response: &HttpResponse, channel: &str, requested_ms: u64) {
        if response.status() != StatusCode::OK {
            return;
        }
        let (principal, body, now) = (self.principal, response.body(), sim_now_ms());
        self.oracle()
            .receive_audio(principal, channel, body, requested_ms, now);
    }

    /// Whatever listing a failed refusal delivered, judged item by item.
    fn judge_page(&self, response: &HttpResponse, channel: &str, requested_ms: u64) {
        let Ok(page) = serde_json::from_slice::<RecordingPage>(response.body()) else {
            return;
        };
        let mut oracle = self.oracle();
        for item in &page.items {
            let decoded = oracle.key().decode_transcript(&item.transcript);
            oracle.receive(
                self.principal,
                channel,
                &decoded,
                requested_ms,
                sim_now_ms(),
            );
        }
    }

    /// Whatever archive a failed refusal delivered, judged entry by entry.
    /// Returns the nonces it held.
    fn judge_archive(&self, response: &HttpResponse, channel: &str, requested_ms: u64) -> Vec<u64> {
        if response.status() != StatusCode::OK {
            return Vec::new();
        }
        let mut oracle = self.oracle();
        let Ok(contents) = oracle.read_archive(response.body()) else {
            return Vec::new();
        };
        let now = sim_now_ms();
        oracle.judge_archive_delivery(self.principal, channel, &contents, requested_ms, now);
        contents.audio
    }

    /// The account id the store gave principal `who`, if known.
    fn account_of(&self, who: usize) -> u64 {
        let oracle = self.world.oracle.borrow();
        oracle
            .people
            .get(who)
            .and_then(|p| p.account_id)
            .unwrap_or(0)
    }

    /// Whether the oracle knows recording `id` as this principal's own.
    fn is_mine(&self, id: u64) -> bool {
        let oracle = self.world.oracle.borrow();
        oracle
            .nonce_of_recording(id)
            .and_then(|n| oracle.owner_of(n))
            .is_some_and(|owner| owner == self.principal)
    }

    /// Someone else signed up now (email, principal), chosen by `pick`: the
    /// first from the email of the `pick`-th planned account on.
    fn neighbour(&self, pick: u64) -> Option<(String, usize)> {
        let accounts = &self.world.plan.accounts;
        let start = crate::addresses::normalized(
            &accounts
                .get((pick % accounts.len().max(1) as u64) as usize)?
                .email,
        );
        pick_in_map(
            &self.world.board.borrow().principal_by_email,
            &start,
            |_, p| *p != self.principal,
        )
        .map(|(email, p)| (email.clone(), *p))
    }

    /// Someone else's recording (owner, id): one seen on the board, or its
    /// guessed neighbour when the oracle knows that one is someone else's.
    fn foreign_recording(&self, pick: u64) -> Option<(usize, u64)> {
        let (owner, id) = pick_where(
            &self.world.board.borrow().recordings,
            pick,
            |(owner, id)| *owner != self.principal && !self.is_mine(*id),
        )
        .copied()?;
        let neighbour = if pick & 2 == 0 {
            id + 1
        } else {
            id.saturating_sub(1)
        };
        let oracle = self.world.oracle.borrow();
        let neighbour_owner = oracle
            .nonce_of_recording(neighbour)
            .and_then(|n| oracle.owner_of(n));
        match neighbour_owner {
            Some(other) if pick & 4 == 0 && other != self.principal => Some((other, neighbour)),
            _ => Some((owner, id)),
        }
    }

    /// Someone else's recording id in every place that takes one.
    async fn foreign_recording_ids(&mut self, pick: u64) -> Result<(), CallError> {
        let Some((owner, id)) = self.foreign_recording(pick) else {
            return Ok(());
        };
        let session = self.session.clone();
        let audio = format!("/v1/recordings/{id}/audio");
        let requested = sim_now_ms();
        if let Some(r) = self
            .probe_call(Service::Store, Method::GET, &audio, Some(&session), None)
            .await?
        {
            let what = format!("played back rec-{id} of another account");
            self.judge(
                "foreign recording: playback",
                &r,
                NOT_FOUND,
                Invariant::AccessControl,
                &what,
            );
            self.judge_audio(&r, &format!("foreign playback of rec-{id}"), requested);
        }
        let param = UNDOCUMENTED[(pick % UNDOCUMENTED.len() as u64) as usize];
        let path = format!("{audio}?{param}={}", self.account_of(owner));
        if let Some(r) = self
            .probe_call(Service::Store, Method::GET, &path, Some(&session), None)
            .await?
        {
            let what = format!("played back rec-{id} naming its owner in ?{param}=");
            self.judge(
                "undocumented parameter",
                &r,
                &[404, 400],
                Invariant::AccessControl,
                &what,
            );
            self.judge_audio(
                &r,
                &format!("playback of rec-{id} with ?{param}="),
                requested,
            );
        }
        let path = format!("/v1/recordings/{id}");
        if let Some(r) = self
            .probe_call(Service::Store, Method::DELETE, &path, Some(&session), None)
            .await?
        {
            // Never reported to the oracle as a deletion: if it went
            // through, the owner's own audit finds the recording gone.
            let what = format!("deleted rec-{id} of another account");
            self.judge(
                "foreign recording: delete",
                &r,
                NOT_FOUND,
                Invariant::AccessControl,
                &what,
            );
        }
        self.send_foreign_recording(id).await
    }

    /// Send someone else's recording as one's own voice message; should
    /// the store accept it, confirm it, so that the recipient's inbox shows
    /// the oracle what it delivered.
    async fn send_foreign_recording(&mut self, id: u64) -> Result<(), CallError> {
        let contact = self.contacts.values().next().copied().unwrap_or(0);
        let body = to_json(&SendMessageRequest {
            recording_id: crosstalk_model::RecordingId(id),
            contact_name: crate::plan::display_name(contact),
        })?;
        let session = self.session.clone();
        let Some(r) = self
            .probe_call(
                Service::Store,
                Method::POST,
                "/v1/messages",
                Some(&session),
                Some(body),
            )
            .await?
        else {
            return Ok(());
        };
        let what = format!("sent rec-{id} of another account as a message");
        if self.judge(
            "foreign recording: message",
            &r,
            NOT_FOUND,
            Invariant::AccessControl,
            &what,
        ) || r.status() != StatusCode::ACCEPTED
        {
            return Ok(());
        }
        let Ok(pending) = parse::<MessageView>(&r) else {
            return Ok(());
        };
        let body = to_json(&ConfirmMessageRequest {
            contact_email: pending.resolved_contact.email.clone(),
        })?;
        let path = format!("/v1/messages/{}/confirm", pending.message_id);
        self.probe_call(
            Service::Store,
            Method::POST,
            &path,
            Some(&session),
            Some(body),
        )
        .await?;
        Ok(())
    }

    /// Delete "everything captured at" the capture time of someone else's
    /// recording, plainly and with the owner's account named in an extra
    /// body field: nothing of anyone else may go.
    async fn foreign_range_deletion(&mut self, pick: u64) -> Result<(), CallError> {
        let Some((owner, id)) = self.foreign_recording(pick.rotate_left(7)) else {
            return Ok(());
        };
        let Some(at) = self.world.board.borrow().captured.get(&id).copied() else {
            return Ok(());
        };
        let own_capture_then = self.own_recordings.iter().any(|r| r.captured_at_ms == at)
            || self
                .devices
                .iter()
                .any(|d| d.buffer.iter().any(|u| u.captured_at_ms == at));
        if own_capture_then {
            return Ok(());
        }
        let request = DeleteRequest {
            all: false,
            captured_from_ms: Some(at),
            captured_to_ms: Some(at),
        };
        let plain = to_json(&request)?;
        let mut extra =
            serde_json::to_value(&request).map_err(|e| CallError::Unexpected(e.to_string()))?;
        extra["account_id"] = serde_json::json!(self.account_of(owner));
        let extra = to_json(&extra)?;
        for (body, extra_field) in [(plain, false), (extra, true)] {
            let session = self.session.clone();
            let sent_ms = sim_now_ms();
            let sent = self.probe_call(
                Service::Store,
                Method::POST,
                "/v1/recordings/delete",
                Some(&session),
                Some(body),
            );
            if let Some(r) = sent.await? {
                self.judge_range_deletion(&r, id, at, sent_ms, extra_field);
            }
        }
        Ok(())
    }

    /// A range deletion around someone else's capture may delete nothing
    /// of theirs; with an undocumented body field it may also be refused.
    fn judge_range_deletion(
        &mut self,
        response: &HttpResponse,
        id: u64,
        at: u64,
        sent_ms: u64,
        extra_field: bool,
    ) {
        let (kind, refusals): (&'static str, &[u16]) = if extra_field {
            (
                "foreign range deletion with an extra field",
                &[200, 400, 415, 422],
            )
        } else {
            ("foreign range deletion", &[200])
        };
        let deleted: Vec<u64> = parse::<DeleteResponse>(response)
            .map(|d| d.deleted.iter().map(|r| r.0).collect())
            .unwrap_or_default();
        let (own, foreign): (Vec<u64>, Vec<u64>) =
            deleted.into_iter().partition(|d| self.is_mine(*d));
        if response.status().is_success() {
            // The answer is judged, not taken (foreign ids named in it are
            // isolation violations, and their owners' audits expect them).
            let named: Vec<u64> = own.iter().chain(&foreign).copied().collect();
            let scope = crate::check::DeletionScope::Range {
                from_ms: at,
                to_ms: at,
            };
            self.oracle()
                .judge_deletion(self.principal, scope, &named, sent_ms, sim_now_ms());
            self.own_recordings.retain(|r| !own.contains(&r.id));
        }
        let what = format!(
            "deleted a capture-time range around rec-{id} of another account, and the store deleted {foreign:?}"
        );
        let refusals = if foreign.is_empty() { refusals } else { &[] };
        self.judge(kind, response, refusals, Invariant::AccessControl, &what);
    }

    /// Someone else's device: reset it, or "transfer" it to oneself.
    async fn foreign_devices(&mut self, pick: u64) -> Result<(), CallError> {
        let candidate = {
            let board = self.world.board.borrow();
            let start = match (
                board.devices.keys().next(),
                board.devices.keys().next_back(),
            ) {
                (Some(first), Some(last)) => first + pick % (last - first).saturating_add(1),
                _ => 0,
            };
            pick_in_map(&board.devices, &start, |id, holder| {
                *holder != self.principal
                    && !board.devices_changing_hands.contains(id)
                    && !self.devices.iter().any(|d| d.id == *id)
            })
            .map(|(id, _)| *id)
        };
        let Some(device) = candidate else {
            return Ok(());
        };
        let session = self.session.clone();
        let path = format!("/v1/devices/{device}/reset");
        if let Some(r) = self
            .probe_call(Service::Store, Method::POST, &path, Some(&session), None)
            .await?
        {
            let what = format!("factory-reset dev-{device} of another account");
            self.judge(
                "foreign device: reset",
                &r,
                NOT_FOUND,
                Invariant::AccessControl,
                &what,
            );
        }
        // To a third person (to oneself, the store refuses any device with 400).
        let holder = self.world.board.borrow().devices.get(&device).copied();
        let accomplice = self
            .world
            .board
            .borrow()
            .principal_by_email
            .iter()
            .find(|(_, p)| **p != self.principal && Some(**p) != holder)
            .map(|(email, _)| email.clone());
        let Some(to_email) = accomplice else {
            return Ok(());
        };
        let body = to_json(&TransferDeviceRequest { to_email })?;
        let path = format!("/v1/devices/{device}/transfer");
        if let Some(r) = self
            .probe_call(
                Service::Store,
                Method::POST,
                &path,
                Some(&session),
                Some(body),
            )
            .await?
        {
            let what = format!("transferred dev-{device} of another account to a third");
            self.judge(
                "foreign device: transfer",
                &r,
                NOT_FOUND,
                Invariant::AccessControl,
                &what,
            );
        }
        Ok(())
    }

    /// Someone else's message: confirm it, play it from one's inbox.
    async fn foreign_messages(&mut self, pick: u64) -> Result<(), CallError> {
        let email = self.email();
        let candidate = pick_where(
            &self.world.board.borrow().messages,
            pick,
            |(sender, _, to)| *sender != self.principal && !to.eq_ignore_ascii_case(&email),
        )
        .map(|(_, id, to)| (*id, to.clone()));
        let Some((id, to)) = candidate else {
            return Ok(());
        };
        let session = self.session.clone();
        let body = to_json(&ConfirmMessageRequest { contact_email: to })?;
        let path = format!("/v1/messages/{id}/confirm");
        if let Some(r) = self
            .probe_call(
                Service::Store,
                Method::POST,
                &path,
                Some(&session),
                Some(body),
            )
            .await?
        {
            let what = format!("confirmed message {id} of another sender");
            self.judge(
                "foreign message: confirm",
                &r,
                NOT_FOUND,
                Invariant::AccessControl,
                &what,
            );
        }
        let path = format!("/v1/inbox/{id}/audio");
        let requested = sim_now_ms();
        if let Some(r) = self
            .probe_call(Service::Store, Method::GET, &path, Some(&session), None)
            .await?
        {
            let what = format!("played message {id} addressed to someone else");
            self.judge(
                "foreign message: inbox audio",
                &r,
                NOT_FOUND,
                Invariant::AccessControl,
                &what,
            );
            self.judge_audio(&r, &format!("inbox audio of message {id}"), requested);
        }
        Ok(())
    }

    /// A message addressed to oneself, asked for by id whether or not its
    /// sender confirmed it (message ids are sequential and a recipient
    /// learns the address a misheard name resolved to): its audio may come
    /// back only once its sender confirmed it to this person, which
    /// `Oracle::receive` judges from the watermark alone. The store's
    /// answer is not judged by its status: a confirmed message rightly
    /// plays.
    async fn addressed_message_by_id(&mut self, pick: u64) -> Result<(), CallError> {
        let email = self.email();
        let candidate = pick_where(
            &self.world.board.borrow().messages,
            pick.rotate_left(17),
            |(sender, _, to)| *sender != self.principal && to.eq_ignore_ascii_case(&email),
        )
        .map(|(_, id, _)| *id);
        let Some(id) = candidate else {
            return Ok(());
        };
        let session = self.session.clone();
        let path = format!("/v1/inbox/{id}/audio");
        let requested = sim_now_ms();
        if let Some(r) = self
            .probe_call(Service::Store, Method::GET, &path, Some(&session), None)
            .await?
        {
            self.oracle().on(if r.status() == StatusCode::OK {
                Event::AddressedMessagePlayedById
            } else {
                Event::AddressedMessageRefusedById
            });
            self.judge_audio(
                &r,
                &format!("inbox audio of message {id} addressed to them, asked for by id"),
                requested,
            );
        }
        Ok(())
    }

    /// Someone else's export status, and a wrong code on someone else's
    /// verified ticket (which no longer counts attempts).
    async fn foreign_exports_and_tickets(&mut self, pick: u64) -> Result<(), CallError> {
        let (export, ticket) = {
            let board = self.world.board.borrow();
            let foreign = |(p, _): &(usize, u64)| *p != self.principal;
            (
                pick_where(&board.exports, pick, foreign).copied(),
                pick_where(&board.tickets, pick, foreign).map(|(_, t)| *t),
            )
        };
        let session = self.session.clone();
        if let Some((subject, id)) = export {
            let param = UNDOCUMENTED[((pick >> 8) % UNDOCUMENTED.len() as u64) as usize];
            for path in [
                format!("/v1/exports/{id}"),
                format!("/v1/exports/{id}?{param}={}", self.account_of(subject)),
            ] {
                if let Some(r) = self
                    .probe_call(Service::Export, Method::GET, &path, Some(&session), None)
                    .await?
                {
                    let what = format!("read the status of exp-{id} of another account ({path})");
                    self.judge(
                        "foreign export: status",
                        &r,
                        NOT_FOUND,
                        Invariant::AccessControl,
                        &what,
                    );
                }
            }
        }
        if let Some(id) = ticket {
            let body = to_json(&VerifyTicketRequest {
                code: format!("{:06}", pick % 1_000_000),
            })?;
            let path = format!("/v1/tickets/{id}/verify");
            if let Some(r) = self
                .probe_call(Service::Export, Method::POST, &path, None, Some(body))
                .await?
            {
                let what = format!("verified someone else's ticket {id} with a guessed code");
                self.judge(
                    "foreign ticket: wrong code",
                    &r,
                    FORBIDDEN,
                    Invariant::AgentContainment,
                    &what,
                );
            }
        }
        Ok(())
    }

    /// Someone else's cursor (bound to their account: refused), one's own
    /// old cursor after the listing changed (the weakest client: still
    /// served, and judged), and an undocumented owner parameter.
    async fn foreign_and_stale_cursors(&mut self, pick: u64) -> Result<(), CallError> {
        let (foreign, own): (Vec<String>, Vec<String>) = {
            let board = self.world.board.borrow();
            let (foreign, own): (Vec<_>, Vec<_>) = board
                .cursors
                .iter()
                .partition(|(p, _)| *p != self.principal);
            (
                foreign.into_iter().map(|(_, c)| c.clone()).collect(),
                own.into_iter().map(|(_, c)| c.clone()).collect(),
            )
        };
        let session = self.session.clone();
        let requested = sim_now_ms();
        if !foreign.is_empty() {
            let cursor = &foreign[(pick % foreign.len() as u64) as usize];
            let path = format!("/v1/recordings?limit=5&cursor={cursor}");
            if let Some(r) = self
                .probe_call(Service::Store, Method::GET, &path, Some(&session), None)
                .await?
            {
                let what = "listed history with another account's cursor";
                self.judge("foreign cursor", &r, &[400], Invariant::AccessControl, what);
                self.judge_page(&r, "history with a foreign cursor", requested);
            }
        }
        if let Some(cursor) = own.first() {
            let path = format!("/v1/recordings?limit=5&cursor={cursor}");
            if let Some(r) = self
                .probe_call(Service::Store, Method::GET, &path, Some(&session), None)
                .await?
            {
                let what = "listed history with their own earlier cursor";
                self.judge(
                    "own cursor reused later",
                    &r,
                    &[200],
                    Invariant::RequestIntegrity,
                    what,
                );
                self.judge_page(&r, "history with an old cursor", requested);
            }
        }
        let Some((_, victim)) = self.neighbour(pick) else {
            return Ok(());
        };
        let param = UNDOCUMENTED[((pick >> 16) % UNDOCUMENTED.len() as u64) as usize];
        let path = format!("/v1/recordings?limit=5&{param}={}", self.account_of(victim));
        if let Some(r) = self
            .probe_call(Service::Store, Method::GET, &path, Some(&session), None)
            .await?
        {
            let what = format!("listed history with ?{param}= naming another account");
            self.judge(
                "undocumented parameter",
                &r,
                &[400],
                Invariant::AccessControl,
                &what,
            );
            self.judge_page(&r, &format!("history with ?{param}="), requested);
        }
        Ok(())
    }
}

/// Variants of a download token, each altered in one way (never the
/// token itself): one field of its body flipped, two fields swapped, cut,
/// lengthened, re-encoded, its case changed.
pub(crate) fn tampered_tokens(token: &str) -> Vec<(&'static str, String)> {
    let mut variants: Vec<(&'static str, String)> = Vec::new();
    if let Ok(bytes) = URL_SAFE_NO_PAD.decode(token) {
        let flip = |at: usize, name: &'static str| {
            let mut b = bytes.clone();
            (at < b.len()).then(|| {
                b[at] ^= 0x01;
                (name, URL_SAFE_NO_PAD.encode(&b))
            })
        };
        variants.extend(flip(7, "export id changed"));
        variants.extend(flip(15, "subject changed"));
        variants.extend(flip(21, "expiry moved"));
        variants.extend(flip(30, "nonce changed"));
        variants.extend(flip(bytes.len().saturating_sub(1), "tag changed"));
        if bytes.len() >= 16 {
            let mut b = bytes.clone();
            b[..16].rotate_left(8);
            variants.push(("export id and subject swapped", URL_SAFE_NO_PAD.encode(&b)));
        }
        variants.push(("standard base64 with padding", STANDARD.encode(&bytes)));
    }
    let half = token.len() / 2;
    variants.push((
        "truncated by one character",
        token[..token.len().saturating_sub(1)].to_string(),
    ));
    variants.push(("truncated to half", token[..half].to_string()));
    variants.push(("extended", format!("{token}AA")));
    variants.push(("upper case", token.to_ascii_uppercase()));
    variants.push(("lower case", token.to_ascii_lowercase()));
    variants.retain(|(_, v)| v != token && !v.is_empty() && !v.contains('/'));
    variants
}

impl Person {
    /// One's own link with its token altered: each must be refused as a
    /// link that does not exist; a download is a link-binding violation and
    /// its archive is judged.
    async fn tamper_own_link(&mut self, pick: u64) -> Result<(), CallError> {
        let Some((path, _)) = self.kept.links.last().cloned() else {
            return Ok(());
        };
        let Some(token) = path.strip_prefix("/v1/downloads/") else {
            return Ok(());
        };
        let variants = tampered_tokens(token);
        let session = self.session.clone();
        for i in 0..4u64 {
            let (how, forged) =
                &variants[((pick >> (i * 4)).wrapping_add(i * 5) % variants.len() as u64) as usize];
            let forged_path = format!("/v1/downloads/{forged}");
            let requested = sim_now_ms();
            let Some(r) = self
                .probe_call(
                    Service::Export,
                    Method::GET,
                    &forged_path,
                    Some(&session),
                    None,
                )
                .await?
            else {
                continue;
            };
            let what = format!("downloaded with their own link token {how}");
            self.judge(
                "tampered link token",
                &r,
                NOT_FOUND,
                Invariant::LinkBinding,
                &what,
            );
            self.judge_archive(&r, &format!("link token {how}"), requested);
        }
        Ok(())
    }

    /// Sign in with a neighbour's email and a wrong, empty, one's own, a
    /// cut or a lengthened password; a session that comes back is used.
    async fn sign_in_as_neighbour(&mut self, pick: u64) -> Result<(), CallError> {
        let Some((email, victim)) = self.neighbour(pick) else {
            return Ok(());
        };
        let real = hex::encode(
            &crate::streams::derive(self.world.plan.seed, &format!("password/{victim}"))[..12],
        );
        let mut wrong = real.clone();
        let last = if wrong.ends_with('0') { "1" } else { "0" };
        wrong.replace_range(wrong.len() - 1.., last);
        let passwords = [
            ("a wrong password", wrong),
            ("an empty password", String::new()),
            ("their own password", self.password()),
            (
                "the password's first half",
                real[..real.len() / 2].to_string(),
            ),
            ("the password lengthened", format!("{real}x")),
        ];
        for i in 0..2u64 {
            let (how, password) = &passwords
                [((pick >> (20 + i * 3)).wrapping_add(i) % passwords.len() as u64) as usize];
            let body = to_json(&LoginRequest {
                email: email.clone(),
                password: password.clone(),
            })?;
            let Some(r) = self
                .probe_call(
                    Service::Store,
                    Method::POST,
                    "/v1/sessions",
                    None,
                    Some(body),
                )
                .await?
            else {
                continue;
            };
            let what = format!("signed in as {email} with {how}");
            if self.judge(
                "sign-in as a neighbour",
                &r,
                UNAUTHORIZED,
                Invariant::AccessControl,
                &what,
            ) {
                continue;
            }
            if let Ok(stolen) = parse::<SignupResponse>(&r) {
                let requested = sim_now_ms();
                let path = "/v1/recordings?limit=50";
                if let Some(page) = self
                    .probe_call(
                        Service::Store,
                        Method::GET,
                        path,
                        Some(&stolen.session_token),
                        None,
                    )
                    .await?
                {
                    self.judge_page(&page, &format!("history as {email}"), requested);
                }
            }
        }
        Ok(())
    }

    /// Sign up with one's own address written another way (capitals,
    /// spaces around it): addresses are case-insensitive, so it is taken
    /// (409). A second account for one address would answer to the first
    /// one's lookups, tickets and messages. (One's own address, not a
    /// neighbour's: only one's own is sure to stay taken meanwhile.)
    async fn sign_up_again_written_otherwise(&mut self, pick: u64) -> Result<(), CallError> {
        let email = self.email();
        let (how, written) = match (pick >> 40) % 3 {
            0 => ("in capitals", email.to_ascii_uppercase()),
            1 => ("with a capital first letter", capitalised(&email)),
            _ => ("with spaces around it", format!("  {email} ")),
        };
        let body = to_json(&SignupRequest {
            email: written,
            password: self.password(),
        })?;
        let Some(r) = self
            .probe_call(
                Service::Store,
                Method::POST,
                "/v1/accounts",
                None,
                Some(body),
            )
            .await?
        else {
            return Ok(());
        };
        let what = format!("signed up with {email} {how}");
        self.judge(
            "sign-up with one's own address written another way",
            &r,
            &[409],
            Invariant::AccessControl,
            &what,
        );
        Ok(())
    }

    /// The service, worker and agent doors with no token, a cut one, one
    /// with a character changed, a lengthened one, and one's own session.
    async fn knock_with_wrong_tokens(&mut self, pick: u64) -> Result<(), CallError> {
        let seed = self.world.plan.seed;
        let service = hex::encode(crate::streams::derive(seed, "service-token"));
        let worker = hex::encode(crate::streams::derive(seed, "worker-token"));
        let agent = self.world.agent_token.clone();
        let victim = self
            .world
            .board
            .borrow()
            .principal_by_email
            .iter()
            .find(|(_, p)| **p != self.principal)
            .map(|(e, p)| (e.clone(), *p));
        let Some((email, victim)) = victim else {
            return Ok(());
        };
        let account = self.account_of(victim);
        let doors = protected_doors(&email, account, &service, &worker, &agent);
        // A few doors per visit, a different few each time: over a run the
        // curious user tries every one.
        let first = ((pick >> 32) % doors.len() as u64) as usize;
        let doors = doors.into_iter().cycle().skip(first).take(DOORS_PER_VISIT);
        for (n, (kind, to, method, path, body, real)) in doors.into_iter().enumerate() {
            let (how, token, refusals) = wrong_token(real, &self.session, pick >> (n * 3));
            let requested = sim_now_ms();
            let Some(r) = self
                .probe_call(to, method, &path, token.as_deref(), body)
                .await?
            else {
                continue;
            };
            let what = format!("called {path} with {how}");
            if !self.judge(kind, &r, refusals, Invariant::AccessControl, &what) {
                self.judge_page(&r, &format!("{path} with {how}"), requested);
            }
        }
        Ok(())
    }

    /// A closed account's old session, and uploads with device tokens that
    /// a sale, a reset or a closing replaced: all refused as unauthenticated.
    /// The upload carries a fresh watermarked capture of this person's: if
    /// the store files it anywhere, whoever lists it is judged.
    async fn old_session_and_devices(&mut self, nonce: u64) -> Result<(), CallError> {
        if let Some(old) = self.kept.old_session.clone() {
            let path = "/v1/recordings?limit=5";
            let requested = sim_now_ms();
            if let Some(r) = self
                .probe_call(Service::Store, Method::GET, path, Some(&old), None)
                .await?
            {
                let what = "listed history with the session of their closed account";
                self.judge(
                    "closed account's old session",
                    &r,
                    UNAUTHORIZED,
                    Invariant::AccessControl,
                    what,
                );
                self.judge_page(&r, "history with a closed account's session", requested);
            }
        }
        let Some(token) = self
            .kept
            .retired_tokens
            .get((nonce % 64) as usize % self.kept.retired_tokens.len().max(1))
            .cloned()
        else {
            return Ok(());
        };
        let now = sim_now_ms();
        let (audio, transcript) = {
            let oracle = self.world.oracle.borrow();
            (
                oracle.key().audio(nonce, nonce),
                oracle
                    .key()
                    .transcript(nonce, "said to a device no longer mine"),
            )
        };
        self.oracle()
            .utterance_started(nonce, self.principal, 0, now);
        self.oracle().transcript_sent(&transcript);
        let body = to_json(&IngestRequest {
            upload_key: format!("retired-{nonce:016x}"),
            captured_at_ms: crate::net::EPOCH_MS + now,
            transcript,
            audio_base64: STANDARD.encode(audio),
            ownership_epoch: None,
            intent: None,
        })?;
        if let Some(r) = self
            .probe_call(
                Service::Store,
                Method::POST,
                "/v1/recordings",
                Some(&token),
                Some(body),
            )
            .await?
        {
            let what = "uploaded with a device token that a sale, reset or closing replaced";
            self.judge(
                "retired device token",
                &r,
                UNAUTHORIZED,
                Invariant::AccessControl,
                what,
            );
        }
        Ok(())
    }

    /// Send an acknowledged upload again with the same key (a retry): the
    /// store must answer with the same recording, stored once.
    async fn replay_own_upload(&mut self, pick: u64) -> Result<(), CallError> {
        let now = sim_now_ms();
        let ready = self.devices_with_last_upload(now);
        if ready.is_empty() {
            return Ok(());
        }
        let device = ready[(pick % ready.len() as u64) as usize];
        self.resend_last_upload(
            device,
            "upload retried with the same key",
            Invariant::RequestIntegrity,
            "",
        )
        .await
    }

    /// Send `device`'s last acknowledged upload again with its key: only the
    /// same recording answered as a duplicate is right; judged as `kind`
    /// (`what_else` ends the violation's wording).
    async fn resend_last_upload(
        &mut self,
        device: usize,
        kind: &'static str,
        invariant: Invariant,
        what_else: &str,
    ) -> Result<(), CallError> {
        let Some((body, id)) = self.devices[device].last_upload.clone() else {
            return Ok(());
        };
        let token = self.devices[device].token.clone();
        let Some(r) = self
            .probe_call(
                Service::Store,
                Method::POST,
                "/v1/recordings",
                Some(&token),
                Some(body),
            )
            .await?
        else {
            return Ok(());
        };
        if r.status() == StatusCode::UNAUTHORIZED {
            return Ok(()); // A sale or reset whose answer was lost replaced the token.
        }
        let same = parse::<IngestResponse>(&r).is_ok_and(|i| i.recording_id.0 == id && i.duplicate);
        let refusals: &[u16] = if same { &[200] } else { &[] };
        let what = format!("sent the upload of rec-{id} again with the same key{what_else}");
        self.judge(kind, &r, refusals, invariant, &what);
        Ok(())
    }

    /// A device sends the upload of recording `id` again with its key after
    /// its owner deleted it (a retry whose first answer was lost): the store
    /// must answer with the same recording as a duplicate, never store the
    /// capture again (the history audit then sees a resurrection).
    async fn replay_deleted_upload(&mut self, id: u64) -> Result<(), CallError> {
        let now = sim_now_ms();
        let Some(device) = self.devices.iter().position(|d| {
            d.offline_until_ms <= now && d.last_upload.as_ref().is_some_and(|(_, last)| *last == id)
        }) else {
            return Ok(());
        };
        self.resend_last_upload(
            device,
            "deleted upload retried with the same key",
            Invariant::Erasure,
            " after deleting it",
        )
        .await
    }

    /// Look again at acknowledged claims: deleted recordings must not play
    /// back, an archive link older than a deletion must not serve it, and
    /// the latest upload must play back.
    async fn probe_claims(&mut self, pick: u64) -> Result<(), CallError> {
        let latest = self.play_latest_upload().await?;
        // "Listened to it, and deleted it": now and then, when plenty is left.
        if let Some(index) = latest
            && pick & 0x30 == 0
            && self.own_recordings.len() >= 3
        {
            let deleted = self.own_recordings[index].id;
            self.delete_one(index as u64).await?;
            // The device's retry, late: its reply was lost in a crowd.
            self.replay_deleted_upload(deleted).await?;
        }
        self.play_deleted().await?;
        self.old_link_after_deletion().await
    }

    /// Play back the latest own upload no deletion covers; its index.
    async fn play_latest_upload(&mut self) -> Result<Option<usize>, CallError> {
        let latest = {
            let oracle = self.world.oracle.borrow();
            self.own_recordings
                .iter()
                .rposition(|r| !oracle.deletion_sent(r.nonce))
        };
        if let Some(index) = latest {
            let before = self.world.oracle.borrow().violations().len();
            self.fetch_own_audio(index as u64).await?;
            if self.world.oracle.borrow().violations().len() == before {
                self.oracle().claim_kept("acknowledged upload: playback");
            }
        }
        Ok(latest)
    }

    /// Play back the last two recordings whose deletion was acknowledged.
    async fn play_deleted(&mut self) -> Result<(), CallError> {
        let session = self.session.clone();
        let recent: Vec<(u64, u64)> = self.kept.deleted.iter().rev().take(2).copied().collect();
        for (id, _) in recent {
            let path = format!("/v1/recordings/{id}/audio");
            let requested = sim_now_ms();
            if let Some(r) = self
                .probe_call(Service::Store, Method::GET, &path, Some(&session), None)
                .await?
            {
                let what =
                    format!("played back their own rec-{id} after its deletion was acknowledged");
                self.judge(
                    "after deletion: playback",
                    &r,
                    NOT_FOUND,
                    Invariant::Erasure,
                    &what,
                );
                self.judge_audio(&r, &format!("playback of deleted rec-{id}"), requested);
            }
        }
        Ok(())
    }

    /// An own archive link first downloaded before a deletion: revoked, or
    /// (if the archive never held what was deleted) served and judged.
    async fn old_link_after_deletion(&mut self) -> Result<(), CallError> {
        let last_deletion = self.kept.last_deletion_ms;
        let Some((path, _)) = self
            .kept
            .links
            .iter()
            .rev()
            .find(|(_, at)| *at < last_deletion)
            .cloned()
        else {
            return Ok(());
        };
        let session = self.session.clone();
        let requested = sim_now_ms();
        let Some(r) = self
            .probe_call(Service::Export, Method::GET, &path, Some(&session), None)
            .await?
        else {
            return Ok(());
        };
        let held: BTreeSet<u64> = self
            .judge_archive(&r, "an old link after a deletion", requested)
            .into_iter()
            .collect();
        let deleted_held = self
            .kept
            .deleted
            .iter()
            .any(|(_, nonce)| held.contains(nonce));
        // Gone (revoked, used up, expired) or served without what was deleted.
        let refusals: &[u16] = if deleted_held { &[410] } else { &[410, 200] };
        let what = "downloaded an archive link of theirs older than a deletion";
        self.judge(
            "after deletion: old archive link",
            &r,
            refusals,
            Invariant::Erasure,
            what,
        );
        Ok(())
    }
}

/// A wrong credential for a door whose real token is `real`: which one,
/// the bearer to send, and the refusals the door must answer with.
/// `email` with its first letter a capital.
fn capitalised(email: &str) -> String {
    let mut chars = email.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// How many protected doors a curious user knocks on per visit.
const DOORS_PER_VISIT: usize = 4;

/// Every door of the services that only a service principal, a worker or
/// an agent may open: the store's service API, the export's worker API
/// and its agent console, each with a well-formed body (so that the
/// credential is what decides the answer), naming `email`'s `account`
/// where a route names an account. Less-travelled doors (the agent's
/// audit log, a worker's lease renewal) are where a forgotten check hides.
fn protected_doors<'a>(
    email: &str,
    account: u64,
    service: &'a String,
    worker: &'a String,
    agent: &'a String,
) -> Vec<Door<'a>> {
    const SERVICE: &str = "service API with a wrong token";
    const WORKER: &str = "worker API with a wrong token";
    const AGENT: &str = "agent console with a wrong token";
    let body = |json: &str| Some(json.as_bytes().to_vec());
    let store = |method, path: String, json: Option<Vec<u8>>| {
        (SERVICE, Service::Store, method, path, json, service)
    };
    let work = |path: &str, json| {
        (
            WORKER,
            Service::Export,
            Method::POST,
            path.to_string(),
            json,
            worker,
        )
    };
    let console = |method, path: &str, json| {
        (
            AGENT,
            Service::Export,
            method,
            path.to_string(),
            json,
            agent,
        )
    };
    vec![
        store(
            Method::GET,
            format!(
                "/v1/service/lookup?email={}",
                crate::addresses::query_encoded(email)
            ),
            None,
        ),
        store(
            Method::GET,
            format!("/v1/service/accounts/{account}/recordings?limit=5"),
            None,
        ),
        store(
            Method::GET,
            format!("/v1/service/accounts/{account}/recordings/1/audio"),
            None,
        ),
        store(
            Method::POST,
            format!("/v1/service/accounts/{account}/recordings/live"),
            body(r#"{"ids":[1,2,3]}"#),
        ),
        store(
            Method::POST,
            format!("/v1/service/accounts/{account}/notifications"),
            body(r#"{"kind":"export-ready","text":"your export: /v1/downloads/x"}"#),
        ),
        store(
            Method::POST,
            "/v1/service/introspect".to_string(),
            body(r#"{"session_token":"not-a-session"}"#),
        ),
        work("/v1/internal/jobs/claim", body(r#"{"worker":"curious"}"#)),
        work("/v1/internal/jobs/1/renew", body(r#"{"fence":1}"#)),
        work(
            "/v1/internal/jobs/1/fail",
            body(r#"{"fence":1,"reason":"curious"}"#),
        ),
        work(
            "/v1/internal/jobs/1/complete",
            body(r#"{"fence":1,"snapshot_at_ms":0,"recording_ids":[],"archive_base64":""}"#),
        ),
        console(Method::GET, "/v1/agent/tickets", None),
        console(Method::GET, "/v1/agent/overdue", None),
        console(Method::GET, "/v1/agent/audit", None),
        console(Method::POST, "/v1/agent/tickets/1/resend-link", body("{}")),
        console(
            Method::POST,
            "/v1/agent/tickets/1/manual-verification",
            body(r#"{"facts":["my postcode"]}"#),
        ),
        console(
            Method::POST,
            "/v1/agent/exports/1/extend",
            body(r#"{"reason":"curious"}"#),
        ),
    ]
}

fn wrong_token(
    real: &str,
    own_session: &str,
    pick: u64,
) -> (&'static str, Option<String>, &'static [u16]) {
    let mut changed = real.to_string();
    let last = if changed.ends_with('0') { "1" } else { "0" };
    changed.replace_range(changed.len().saturating_sub(1).., last);
    match pick % 5 {
        0 => ("no token", None, UNAUTHORIZED),
        1 => (
            "the token cut in half",
            Some(real[..real.len() / 2].to_string()),
            FORBIDDEN,
        ),
        2 => ("one character changed", Some(changed), FORBIDDEN),
        3 => ("the token lengthened", Some(format!("{real}0")), FORBIDDEN),
        _ => (
            "their own session",
            Some(own_session.to_string()),
            FORBIDDEN,
        ),
    }
}
