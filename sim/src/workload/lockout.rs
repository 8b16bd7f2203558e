//! The brute force that finally hits: someone opens a support ticket with
//! another person's email, sends as many wrong codes as the deployment
//! allows (the plan's `ticket_attempts`, the limit the export service is
//! configured with), then gets the right one. A real attacker gets it from
//! the victim: they phone posing as support and the victim reads the code
//! off their own screen. The harness plays the victim's app for that — it
//! signs in with the victim's own credentials and reads the victim's feed
//! — and then the attacker sends the code, or (`by_victim`) the victim,
//! puzzled by the message, enters it themselves. Either way the ticket was
//! rejected by the wrong codes and must stay so. Some attackers instead
//! claim an address one letter short of the victim's, which nobody holds:
//! the victim's feed must show no challenge for it. The oracle judges
//! every answer and what the feed showed (`check/lockout.rs`).

use super::CallError;
use super::person::{Person, parse};
use super::tickets::code_in;
use crate::check::lockout::{ChallengeRead, RightCode};
use crate::net::sim_now_ms;
use crate::workload::Service;
use crosstalk_model::api::{Notification, SignupResponse};
use http::{Method, StatusCode};

impl Person {
    /// Brute-force a ticket for `victim`'s email (or, `near_miss`, for an
    /// address one letter short of it), then send the right code.
    pub(super) async fn brute_force_ticket(
        &mut self,
        victim: usize,
        by_victim: bool,
        near_miss: bool,
    ) -> Result<(), CallError> {
        if victim == self.index || victim >= self.world.plan.accounts.len() {
            return Ok(());
        }
        let email = self.world.plan.accounts[victim].email.clone();
        // Who holds the address before the ticket is opened: the code goes
        // to their feed (if they still hold it when the store is asked).
        let holder = self.world.board.borrow().holder_of(&email);
        let Some(holder) = holder else {
            return Ok(());
        };
        let mut claimed = email.clone();
        if near_miss {
            claimed.pop();
        }
        let Some(ticket_id) = self
            .open_foreign_ticket(&claimed, "I forgot my password, please send my recordings")
            .await?
        else {
            return Ok(());
        };
        for guess in 0..self.world.plan.ticket_attempts {
            self.send_wrong_code(ticket_id, guess).await?;
        }
        let Some(feed) = self.read_screen(&email, holder).await? else {
            return Ok(());
        };
        let code = code_in(&feed, ticket_id);
        self.oracle().on_challenge_feed_read(ChallengeRead {
            opener: self.principal,
            reader: holder,
            ticket_id,
            claimed_email: &claimed,
            found: code.is_some(),
            at_ms: sim_now_ms(),
        });
        let (Some(code), false) = (code, near_miss) else {
            return Ok(());
        };
        let response = self.send_ticket_code(ticket_id, &code).await?;
        self.oracle().on_lockout_right_code(RightCode {
            attacker: self.principal,
            victim: holder,
            by_victim,
            ticket_id,
            status: response.status(),
            at_ms: sim_now_ms(),
        });
        Ok(())
    }

    /// Open a ticket claiming someone else's `email` with `message`; its id,
    /// if it awaits verification as it must (the oracle judges the answer).
    pub(super) async fn open_foreign_ticket(
        &mut self,
        email: &str,
        message: &str,
    ) -> Result<Option<u64>, CallError> {
        let ticket = self.open_ticket(email.to_string(), message).await?;
        let unverified = self.oracle().on_impersonation_ticket(
            self.principal,
            ticket.state,
            ticket.export_id,
            sim_now_ms(),
        );
        Ok(unverified.then_some(ticket.ticket_id))
    }

    /// Send wrong code number `guess` on `ticket_id` (a code the service
    /// never issues: the service's codes are 16 hex digits).
    async fn send_wrong_code(&mut self, ticket_id: u64, guess: u32) -> Result<(), CallError> {
        let code = format!("guess-{ticket_id}-{guess}");
        let response = self.send_ticket_code(ticket_id, &code).await?;
        let status = response.status();
        if !self
            .oracle()
            .on_lockout_wrong_code(self.principal, ticket_id, status, sim_now_ms())
        {
            return Err(CallError::Unexpected(format!(
                "a wrong ticket code answered {status}"
            )));
        }
        Ok(())
    }

    /// `holder`'s notification feed as their own app shows it (signed in
    /// with `email` and the holder's own password); `None` when the holder
    /// no longer holds the address.
    async fn read_screen(
        &mut self,
        email: &str,
        holder: usize,
    ) -> Result<Option<Vec<Notification>>, CallError> {
        let response = self.sign_in_as(holder, email).await?;
        let signed_in = parse::<SignupResponse>(&response).ok();
        let Some(session) = signed_in.filter(|_| response.status() == StatusCode::CREATED) else {
            return Ok(None);
        };
        let response = self
            .call(
                Service::Store,
                Method::GET,
                "/v1/notifications?after=0",
                Some(&session.session_token),
                None,
            )
            .await?;
        if response.status() != StatusCode::OK {
            // The holder closed their account in between.
            return Ok(None);
        }
        parse(&response).map(Some)
    }
}
