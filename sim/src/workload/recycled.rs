//! Bad timing around a recycled address: a sender sends a message to a
//! contact, gets distracted, and confirms it only after the contact closed
//! their account and someone signed up again with the same address. The
//! message was resolved to the old account; the store must not deliver it
//! to whoever holds the address now. The workload reports who held the
//! address when the message was sent and when it was confirmed, and the
//! answer; the oracle decides (`check/recycled.rs`), and the new holder's
//! inbox is read later by the plan (`plan/probes.rs`) and judged by the
//! watermark.

use super::CallError;
use super::person::{OwnRecording, POLL_MS, Person};
use crate::check::recycled::LateConfirmation;
use crate::net::sim_now_ms;
use crate::plan::display_name;
use crosstalk_model::api::MessageState;
use std::time::Duration;

impl Person {
    /// Send one of one's recordings to `contact` (a person index) and
    /// confirm it once their address has a new holder.
    pub(super) async fn confirm_after_recycle(
        &mut self,
        contact: usize,
        pick: u64,
    ) -> Result<(), CallError> {
        if self.own_recordings.is_empty() || !self.contacts.values().any(|&p| p == contact) {
            return Ok(());
        }
        let OwnRecording { id, nonce, .. } =
            self.own_recordings[(pick % self.own_recordings.len() as u64) as usize];
        let email = self.world.plan.accounts[contact].email.clone();
        let Some(holder) = self.holder_of(&email) else {
            return Ok(());
        };
        let Some(pending) = self.send_to_contact(id, display_name(contact)).await? else {
            return Ok(());
        };
        // Resolved to the address meant, while it surely had one holder.
        if !pending.resolved_contact.email.eq_ignore_ascii_case(&email)
            || pending.state != MessageState::Pending
            || self.holder_of(&email) != Some(holder)
        {
            return Ok(());
        }
        let Some(new_holder) = self.wait_for_new_holder(&email, holder).await else {
            return Ok(());
        };
        self.oracle().sent(nonce, holder);
        let sent_ms = sim_now_ms();
        let response = self
            .post_confirmation(pending.message_id, &pending.resolved_contact.email)
            .await?;
        self.oracle().on_late_confirmation(LateConfirmation {
            sender: self.principal,
            nonce,
            recipient: holder,
            new_holder,
            status: response.status(),
            sent_ms,
            at_ms: sim_now_ms(),
        });
        Ok(())
    }

    /// The principal who holds `email` now, as far as the people know.
    fn holder_of(&self, email: &str) -> Option<usize> {
        self.world.board.borrow().holder_of(email)
    }

    /// Wait until someone other than `old` holds `email` (signed up
    /// again); `None` if that does not happen in the active period.
    async fn wait_for_new_holder(&self, email: &str, old: usize) -> Option<usize> {
        loop {
            if let Some(new) = self.holder_of(email).filter(|&h| h != old) {
                return Some(new);
            }
            if sim_now_ms() + POLL_MS >= self.world.plan.active_ms {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }
}
