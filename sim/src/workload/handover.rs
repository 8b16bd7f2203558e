//! A support ticket across an address handover (Yahoo 2013 recycled
//! identities meet the Alexa DSAR 2018 misdelivery). A person asks for
//! their data through a ticket and reads the code the service sends to
//! their own feed — then, before verifying, closes their account. Someone
//! else signs up with the released address and records on their own new
//! device; only then does the old holder send the code they read. The
//! ticket belongs to the account that held the address when it was opened:
//! nothing of the new holder's may come of it. The new holder never asks
//! for an export, and reads their feed for a while: any link there that
//! downloads is an export of them someone else made (`check/handover.rs`
//! judges it by the watermark). An attacker who watches for released
//! addresses (`attacker`) then also asks for "their" data with a ticket of
//! their own: the archive is judged like every download, so the old
//! holder's recordings must not be in it.
//!
//! The newcomer is a separate identity (their own principal, password,
//! session and devices) driven from the old holder's task, whose account is
//! closed from then on: the order of the steps is the plan's, not a race.

use super::CallError;
use super::person::{POLL_MS, Person, parse, to_json};
use crate::check::handover::HandoverVerification;
use crate::net::sim_now_ms;
use crosstalk_model::api::{TicketRequest, TicketStatus, VerifyTicketRequest};
use http::{Method, StatusCode};
use std::time::Duration;

/// How long after the old holder's verification the new holder keeps
/// reading their feed (simulated ms): long enough for an export to be
/// built past a worker crash.
const FEED_WATCH_MS: u64 = 90_000;
/// How often the new holder reads their feed meanwhile (simulated ms).
const FEED_READ_EVERY_MS: u64 = 15_000;

impl Person {
    /// Open a ticket for one's own address, close the account, let a
    /// newcomer take the address over, then verify with the code.
    pub(super) async fn ticket_across_handover(
        &mut self,
        attacker: bool,
        nonces: [u64; 2],
    ) -> Result<(), CallError> {
        let Some((ticket_id, code)) = self
            .open_ticket_for_own_address("please send me my recordings before I close my account")
            .await?
        else {
            return Ok(());
        };
        let opener = self.principal;
        self.close_account().await?;
        let mut newcomer = self.newcomer();
        newcomer.trace(format!(
            "newcomer p#{} signs up with the released address",
            newcomer.principal
        ));
        newcomer.sign_up().await?;
        for (turn, nonce) in nonces.into_iter().enumerate() {
            let content = nonce.rotate_left(17) ^ 0x6e65_7763_6f6d_6572;
            newcomer
                .speak(turn as u32, nonce, content, turn as u32, None, None, None)
                .await?;
        }
        let sent_ms = sim_now_ms();
        match self.send_held_code(ticket_id, &code).await {
            Ok(status) => {
                self.oracle()
                    .on_handover_verification(HandoverVerification {
                        opener,
                        new_holder: newcomer.principal,
                        ticket_id,
                        status,
                        sent_ms,
                        at_ms: sim_now_ms(),
                    });
            }
            // Its outcome is unknown; the new holder's feed is judged anyway.
            Err(CallError::Unavailable(_)) => {}
            Err(e) => return Err(e),
        }
        newcomer.watch_feed(sent_ms + FEED_WATCH_MS).await?;
        if attacker {
            newcomer.ticket_export().await?;
        }
        Ok(())
    }

    /// Open a ticket claiming one's own address and read its code from
    /// one's own feed (without marking the feed read); `None` when the
    /// challenge did not arrive.
    pub(super) async fn open_ticket_for_own_address(
        &mut self,
        message: &str,
    ) -> Result<Option<(u64, String)>, CallError> {
        let body = to_json(&TicketRequest {
            claimed_email: self.email(),
            message: message.to_string(),
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
        Ok(code.map(|code| (ticket.ticket_id, code)))
    }

    /// Send the code of `ticket_id` (no session: the account is closed).
    async fn send_held_code(
        &mut self,
        ticket_id: u64,
        code: &str,
    ) -> Result<StatusCode, CallError> {
        let body = to_json(&VerifyTicketRequest {
            code: code.to_string(),
        })?;
        let path = format!("/v1/tickets/{ticket_id}/verify");
        let response = self
            .call(true, Method::POST, &path, None, Some(body))
            .await?;
        Ok(response.status())
    }

    /// A new identity for this person's address: someone else, with their
    /// own principal, password, clients and (after signing up) devices.
    fn newcomer(&self) -> Person {
        let principal = self.oracle().add_principal(self.email());
        let mut newcomer = Person::new(self.world.clone(), self.index);
        newcomer.principal = principal;
        newcomer
    }

    /// Read one's feed every little while until `until_ms` (or the end of
    /// the drain), following every download link in it: one never asked
    /// for an export, so each is judged as one someone else made.
    async fn watch_feed(&mut self, until_ms: u64) -> Result<(), CallError> {
        let deadline_ms = self.world.plan.active_ms + self.world.plan.drain_ms;
        let until_ms = until_ms.min(deadline_ms.saturating_sub(POLL_MS));
        loop {
            tokio::time::sleep(Duration::from_millis(FEED_READ_EVERY_MS)).await;
            match self.notifications().await {
                Ok(notes) => self.follow_unasked_links(notes).await?,
                Err(CallError::Unavailable(_)) => {}
                Err(e) => return Err(e),
            }
            if sim_now_ms() + FEED_READ_EVERY_MS > until_ms {
                return Ok(());
            }
        }
    }

    async fn follow_unasked_links(
        &mut self,
        notes: Vec<crosstalk_model::api::Notification>,
    ) -> Result<(), CallError> {
        let links: Vec<(u64, String, String)> = notes
            .into_iter()
            .filter_map(|n| {
                let path = n.text.split("ready: ").nth(1)?.to_string();
                Some((n.seq, n.kind, path))
            })
            .collect();
        self.oracle().on_newcomer_feed_read(links.len());
        let session = self.session.clone();
        for (seq, kind, path) in links {
            let requested_ms = sim_now_ms();
            let response = self
                .call(true, Method::GET, &path, Some(&session), None)
                .await?;
            let (status, now) = (response.status(), sim_now_ms());
            let mut oracle = self.oracle();
            oracle.on_notified_link(
                self.principal,
                seq,
                &kind,
                status,
                response.body(),
                requested_ms,
                now,
            );
            oracle.on_unasked_download(self.principal, seq, status, response.body(), now);
        }
        Ok(())
    }
}
