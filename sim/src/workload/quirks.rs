//! Clients with quirks: unusual but legitimate things real apps and people
//! do, which polite clients never do and which reach the services' refusal
//! branches (issue 17: every code probe must be hit).
//!
//! An app that submits its sign-up twice, or carries a session token from
//! another install; a device that hears a name nobody has in their
//! contacts (or a contact's name cut short); a sender who answers "no, to Ann" by confirming the contact
//! they meant; an impatient speaker who confirms a spoken message during
//! its hold, or one whose recording they deleted; a television whose "...yes!" confirms a broadcast message the
//! store suppressed; a requester who sends the right ticket code twice. Each
//! quirk is a chance per thousand (the plan's `quirks`, from the scenario's
//! `[actions]`), decided from the plan's seed; each answer is judged by the
//! oracle as an attempt (`Oracle::attempt`), so the summary's curious-user
//! line counts them (the positive control), and a wrong answer is a
//! violation.

use super::CallError;
use super::person::Person;
use crate::check::Invariant;
use crate::net::sim_now_ms;
use crate::workload::Service;
use crosstalk_model::api::{MessageState, MessageView, TicketStatus};
use http::{Method, StatusCode};

/// A spoken message is confirmed early only while this much of its hold is
/// left, so that no slow reply can straddle the hold's end.
const EARLY_MARGIN_MS: u64 = 30_000;

/// The oracle's name for each quirk's attempt (the summary's counters).
pub(crate) const SIGNUP_TWICE: &str = "quirk: sign-up with one's own open account's email";
pub(crate) const SESSION_NEVER_ISSUED: &str = "quirk: a session the store never issued";
pub(crate) const SIGN_IN_AGAIN: &str = "quirk: signing in again with one's own password";
pub(crate) const NAME_IN_NO_CONTACTS: &str = "quirk: a message to a name in no contact list";
pub(crate) const CONFIRM_OTHER_CONTACT: &str =
    "quirk: a confirmation naming the contact meant, not the one resolved";
pub(crate) const CONFIRM_DURING_HOLD: &str = "quirk: a spoken message confirmed during its hold";
pub(crate) const CONFIRM_SUPPRESSED: &str = "quirk: a suppressed broadcast message confirmed";
pub(crate) const CONFIRM_CANCELLED: &str =
    "quirk: a spoken message confirmed after its deletion cancelled it";
pub(crate) const TICKET_CODE_TWICE: &str = "quirk: the right ticket code sent twice";

impl Person {
    /// Whether this person shows quirk `what` for `subject`: a chance of
    /// `per_mille` in a thousand, derived from the plan's seed.
    fn quirk(&self, per_mille: u32, what: &str, subject: u64) -> bool {
        if per_mille == 0 {
            return false;
        }
        let purpose = format!("quirk/{what}/{}/{subject}", self.index);
        let bytes = crate::streams::derive(self.world.plan.seed, &purpose);
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[..8]);
        u64::from_le_bytes(word) % 1000 < u64::from(per_mille)
    }

    /// Judge a quirk's answer: `status` must be one of `expected`.
    fn judge_quirk(
        &self,
        kind: &'static str,
        status: StatusCode,
        expected: &[u16],
        invariant: Invariant,
        what: &str,
    ) -> bool {
        self.oracle().attempt(
            kind,
            self.principal,
            status.as_u16(),
            expected,
            invariant,
            sim_now_ms(),
            what,
        )
    }

    /// Right after signing up, a confused app submits the sign-up again
    /// (the email is taken: 409), calls with a session token from another
    /// install (never issued: 401), then signs in (201).
    pub(super) async fn confused_app(&mut self) -> Result<(), CallError> {
        let per_mille = self.world.plan.quirks.confused_app_per_mille;
        if !self.quirk(per_mille, "confused-app", 0) {
            return Ok(());
        }
        let response = self.send_sign_up().await?;
        let what = "signed up again with their own open account's email";
        self.judge_quirk(
            SIGNUP_TWICE,
            response.status(),
            &[409],
            Invariant::RequestIntegrity,
            what,
        );
        let bytes = crate::streams::derive(
            self.world.plan.seed,
            &format!("quirk/stale-session/{}", self.index),
        );
        let token = hex::encode(bytes);
        let response = self
            .call(
                Service::Store,
                Method::GET,
                "/v1/recordings",
                Some(&token),
                None,
            )
            .await?;
        let what = "listed recordings with a session token the store never issued";
        self.judge_quirk(
            SESSION_NEVER_ISSUED,
            response.status(),
            &[401],
            Invariant::AccessControl,
            what,
        );
        // The app gives up on its stale session and signs in: the right
        // password opens a second session of one's own account.
        let response = self.sign_in_as_typed(&self.email()).await?;
        let what = "signed in with their own email and password";
        self.judge_quirk(
            SIGN_IN_AGAIN,
            response.status(),
            &[201],
            Invariant::AccessControl,
            what,
        );
        Ok(())
    }

    /// Before a message is sent, the device may hear a name that is in no
    /// contact list: the store must find no such contact (404).
    pub(super) async fn message_nobody(
        &mut self,
        recording: u64,
        pick: u64,
    ) -> Result<(), CallError> {
        let per_mille = self.world.plan.quirks.unknown_contact_per_mille;
        if !self.quirk(per_mille, "unknown-contact", pick) {
            return Ok(());
        }
        let response = self
            .post_message(recording, self.name_in_no_contacts(pick))
            .await?;
        let what = "sent a message to a name that is in no contact list";
        self.judge_quirk(
            NAME_IN_NO_CONTACTS,
            response.status(),
            &[404],
            Invariant::RequestIntegrity,
            what,
        );
        Ok(())
    }

    /// A name that is exactly none of this person's contacts (as the plan
    /// gave them): "Nobody N", or every other time one of the contacts'
    /// names cut short by its last letter, the way a device hears a name
    /// half-said ("Ann" for "Anne", "An" for "Ann"). A store that resolves
    /// names by prefix or by sound finds a contact for the cut name; the
    /// contract is exact names only.
    fn name_in_no_contacts(&self, pick: u64) -> String {
        let planned: Vec<String> = self.world.plan.accounts[self.index]
            .contacts
            .iter()
            .map(|&other| crate::plan::display_name(other as usize).to_lowercase())
            .collect();
        let cut: Vec<String> = planned
            .iter()
            .filter_map(|name| {
                let mut chars = name.chars();
                chars.next_back();
                let cut = chars.as_str().trim();
                (!cut.is_empty() && !planned.iter().any(|n| n == cut)).then(|| cut.to_string())
            })
            .collect();
        if pick % 2 == 1 && !cut.is_empty() {
            return cut[((pick / 2) % cut.len() as u64) as usize].clone();
        }
        format!("Nobody {}", pick % 1000)
    }

    /// A sender shown the wrong contact may answer "no, to Ann": a
    /// confirmation naming the contact meant, which the store must refuse
    /// (409); the message stays undelivered.
    pub(super) async fn confirm_contact_meant(
        &mut self,
        pending: &MessageView,
        meant_email: &str,
    ) -> Result<(), CallError> {
        let per_mille = self.world.plan.quirks.corrected_confirmation_per_mille;
        if !self.quirk(per_mille, "corrected-confirmation", pending.message_id) {
            return Ok(());
        }
        let response = self
            .post_confirmation(pending.message_id, meant_email)
            .await?;
        let what = "confirmed a message naming another contact than it resolved to";
        self.judge_quirk(
            CONFIRM_OTHER_CONTACT,
            response.status(),
            &[409],
            Invariant::RequestIntegrity,
            what,
        );
        Ok(())
    }

    /// The television's "...yes!" confirms a broadcast message the store
    /// suppressed: it must stay unsent (409).
    pub(super) async fn confirm_suppressed(
        &mut self,
        message: &MessageView,
    ) -> Result<(), CallError> {
        let response = self
            .post_confirmation(message.message_id, &message.resolved_contact.email)
            .await?;
        let what = "confirmed a broadcast message the store had suppressed";
        self.judge_quirk(
            CONFIRM_SUPPRESSED,
            response.status(),
            &[409],
            Invariant::BroadcastActed,
            what,
        );
        Ok(())
    }

    /// An impatient speaker confirms a spoken message (`nonce`, uploaded
    /// from `started_ms` on) during its hold: the store must refuse (409).
    /// The confirmation names the contact meant, so a reply that comes too
    /// late to judge (the hold may have ended) may deliver it rightly.
    pub(super) async fn confirm_during_hold(
        &mut self,
        nonce: u64,
        started_ms: u64,
        intended: usize,
    ) -> Result<(), CallError> {
        let per_mille = self.world.plan.quirks.early_confirmation_per_mille;
        let acked = self.world.oracle.borrow().acked_at(nonce).is_some();
        if !acked
            || sim_now_ms() + EARLY_MARGIN_MS >= started_ms + self.world.plan.hold_ms
            || !self.quirk(per_mille, "early-confirmation", nonce)
        {
            return Ok(());
        }
        let Some(id) = self
            .own_recordings
            .iter()
            .find(|r| r.nonce == nonce)
            .map(|r| r.id)
        else {
            return Ok(());
        };
        let outgoing: Vec<MessageView> = self.read_own(Service::Store, "/v1/messages").await?;
        let intended_email = self.world.plan.accounts[intended].email.clone();
        let Some(message) = outgoing.into_iter().find(|m| {
            m.spoken
                && m.recording_id.0 == id
                && m.state == MessageState::Held
                && m.resolved_contact
                    .email
                    .eq_ignore_ascii_case(&intended_email)
        }) else {
            return Ok(());
        };
        let recipient = self
            .world
            .board
            .borrow()
            .holder_of(&message.resolved_contact.email);
        if let Some(recipient) = recipient {
            self.oracle().sent(nonce, recipient);
        }
        let response = self
            .post_confirmation(message.message_id, &message.resolved_contact.email)
            .await?;
        let now = sim_now_ms();
        if response.status() == StatusCode::OK {
            // Delivered: it is no longer a command to settle after its hold.
            self.spoken_messages.retain(|s| s.nonce != nonce);
            if let Some(recipient) = recipient {
                self.oracle().message_confirmed(nonce, recipient, now);
            }
        }
        if now < started_ms + self.world.plan.hold_ms {
            let what = "confirmed a spoken message during its hold";
            self.judge_quirk(
                CONFIRM_DURING_HOLD,
                response.status(),
                &[409],
                Invariant::RequestIntegrity,
                what,
            );
        }
        Ok(())
    }

    /// A sender who deleted a spoken message's recording while it was held
    /// may still tap "send" on it: a message its deletion cancelled must
    /// stay unsent (409). `nonce` is the spoken message just found deleted.
    pub(super) async fn confirm_cancelled(
        &mut self,
        nonce: u64,
        outgoing: &[MessageView],
    ) -> Result<(), CallError> {
        let per_mille = self.world.plan.quirks.cancelled_confirmation_per_mille;
        if !self.quirk(per_mille, "cancelled-confirmation", nonce) {
            return Ok(());
        }
        let Some(message) = outgoing
            .iter()
            .rev()
            .find(|m| m.spoken && m.state == MessageState::Cancelled)
        else {
            return Ok(());
        };
        let response = self
            .post_confirmation(message.message_id, &message.resolved_contact.email)
            .await?;
        let what = "confirmed a spoken message cancelled by its recording's deletion";
        self.judge_quirk(
            CONFIRM_CANCELLED,
            response.status(),
            &[409],
            Invariant::Erasure,
            what,
        );
        Ok(())
    }

    /// A requester whose verification answer seemed lost sends the right
    /// code again: the same verified ticket and export come back (200).
    pub(super) async fn verify_ticket_again(
        &mut self,
        ticket_id: u64,
        code: &str,
        export_id: u64,
    ) -> Result<(), CallError> {
        let per_mille = self.world.plan.quirks.repeated_verification_per_mille;
        if !self.quirk(per_mille, "verify-twice", ticket_id) {
            return Ok(());
        }
        let response = self.send_ticket_code(ticket_id, code).await?;
        let what = "sent the right code of a verified ticket again";
        if !self.judge_quirk(
            TICKET_CODE_TWICE,
            response.status(),
            &[200],
            Invariant::RequestIntegrity,
            what,
        ) {
            return Ok(());
        }
        let again: Option<TicketStatus> = serde_json::from_slice(response.body()).ok();
        let answered = again.as_ref().and_then(|t| t.export_id).map(|e| e.0);
        self.oracle().on_ticket_verified_again(
            self.principal,
            ticket_id,
            answered,
            export_id,
            sim_now_ms(),
        );
        Ok(())
    }
}
