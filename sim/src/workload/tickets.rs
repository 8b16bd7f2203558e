//! The support ticket's two doors as every person uses them: opening a
//! ticket for an address (one's own, a neighbour's, one just handed over)
//! and sending a code to verify it. No session on either: a ticket is how
//! someone who lost access asks for their data.

use super::CallError;
use super::person::{Person, parse, to_json};
use crate::workload::Service;
use crosstalk_model::api::{Notification, TicketRequest, TicketStatus, VerifyTicketRequest};
use crosstalk_service::HttpResponse;
use http::{Method, StatusCode};

impl Person {
    /// Open a ticket claiming `claimed_email`; any status but 202 Accepted
    /// is unexpected (the ticket's state is the caller's to judge).
    pub(super) async fn open_ticket(
        &mut self,
        claimed_email: String,
        message: &str,
    ) -> Result<TicketStatus, CallError> {
        let body = to_json(&TicketRequest {
            claimed_email,
            message: message.to_string(),
        })?;
        let response = self
            .call(
                Service::Export,
                Method::POST,
                "/v1/tickets",
                None,
                Some(body),
            )
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(CallError::Unexpected(format!(
                "opening a ticket answered {}",
                response.status()
            )));
        }
        parse(&response)
    }

    /// Send `code` to verify `ticket_id`; the answer as it came.
    pub(super) async fn send_ticket_code(
        &mut self,
        ticket_id: u64,
        code: &str,
    ) -> Result<HttpResponse, CallError> {
        let body = to_json(&VerifyTicketRequest {
            code: code.to_string(),
        })?;
        let path = format!("/v1/tickets/{ticket_id}/verify");
        self.call(Service::Export, Method::POST, &path, None, Some(body))
            .await
    }
}

/// The code the identity challenge of `ticket_id` in `feed` gives.
pub(super) fn code_in(feed: &[Notification], ticket_id: u64) -> Option<String> {
    let marker = format!("(ticket {ticket_id})");
    feed.iter()
        .filter(|n| n.kind == "identity-challenge" && n.text.contains(&marker))
        .find_map(|n| {
            n.text
                .split("your code is ")
                .nth(1)
                .map(|c| c.trim_end_matches('.').to_string())
        })
}
