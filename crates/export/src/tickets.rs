//! Support tickets and identity verification.
//!
//! Anyone may open a ticket asking for the data of the account registered
//! under some email. The answer never reveals whether such an account
//! exists. If it does, a one-time code goes to that account's own feed in
//! the store (its verified contact channel); only whoever can read that
//! feed — the account holder — can verify the ticket. A verified ticket
//! becomes (or joins) an export of exactly that account. Every ticket needs
//! its own verification: a duplicate request never inherits another's.

use crate::jobs::Origin;
use crate::schema::{META, NEXT_TICKET, TICKETS};
use crate::service::{ExportService, internal};
use crosstalk_model::api::{AgentTicketView, ExportState, TicketState, TicketStatus};
use crosstalk_model::{AccountId, ExportId};
use crosstalk_service::{ApiError, Bug};
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

/// Wrong codes before a ticket is rejected, unless the deployment's
/// `ExportConfig::max_verify_attempts` says otherwise.
pub const MAX_VERIFY_ATTEMPTS: u32 = 5;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Ticket {
    pub(crate) id: u64,
    pub(crate) claimed_email: String,
    pub(crate) message: String,
    pub(crate) created_at_ms: u64,
    pub(crate) state: TicketState,
    /// The account the claimed email belonged to when the ticket was opened
    /// (never shown to the requester or the agent before verification).
    pub(crate) subject: Option<AccountId>,
    pub(crate) code_sha256: Option<String>,
    pub(crate) attempts: u32,
    pub(crate) export_id: Option<crosstalk_model::ExportId>,
}

impl Ticket {
    pub(crate) fn status(&self) -> TicketStatus {
        TicketStatus {
            ticket_id: self.id,
            state: self.state,
            export_id: self.export_id,
        }
    }

    pub(crate) fn agent_view(&self) -> AgentTicketView {
        AgentTicketView {
            ticket_id: self.id,
            state: self.state,
            claimed_email: self.claimed_email.clone(),
            message: self.message.clone(),
            export_id: self.export_id,
        }
    }
}

impl ExportService {
    pub(crate) fn load_ticket(&self, id: u64) -> Result<Option<Ticket>, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let tickets = txn.open_table(TICKETS).map_err(internal)?;
        match tickets.get(id).map_err(internal)? {
            Some(json) => serde_json::from_str(json.value())
                .map(Some)
                .map_err(internal),
            None => Ok(None),
        }
    }

    pub(crate) fn read_ticket_in(
        txn: &redb::WriteTransaction,
        id: u64,
    ) -> Result<Option<Ticket>, ApiError> {
        let tickets = txn.open_table(TICKETS).map_err(internal)?;
        match tickets.get(id).map_err(internal)? {
            Some(json) => serde_json::from_str(json.value())
                .map(Some)
                .map_err(internal),
            None => Ok(None),
        }
    }

    /// The export of a verified ticket of `subject` that is still pending or
    /// ready (newest ticket first). Only the planted duplicate-request-bypass
    /// asks.
    fn verified_export_of(
        txn: &redb::WriteTransaction,
        subject: AccountId,
    ) -> Result<Option<ExportId>, ApiError> {
        let tickets = txn.open_table(TICKETS).map_err(internal)?;
        for entry in tickets.iter().map_err(internal)?.rev() {
            let (_, json) = entry.map_err(internal)?;
            let ticket: Ticket = serde_json::from_str(json.value()).map_err(internal)?;
            let (TicketState::Verified, Some(owner), Some(export_id)) =
                (ticket.state, ticket.subject, ticket.export_id)
            else {
                continue;
            };
            if owner != subject {
                continue;
            }
            let job = Self::read_job_in(txn, export_id)?;
            if matches!(job.state, ExportState::Pending | ExportState::Ready) {
                return Ok(Some(export_id));
            }
        }
        Ok(None)
    }

    pub(crate) fn write_ticket(
        txn: &redb::WriteTransaction,
        ticket: &Ticket,
    ) -> Result<(), ApiError> {
        let json = serde_json::to_string(ticket).map_err(internal)?;
        txn.open_table(TICKETS)
            .map_err(internal)?
            .insert(ticket.id, json.as_str())
            .map_err(internal)?;
        Ok(())
    }

    pub(crate) fn tickets(&self) -> Result<Vec<Ticket>, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let tickets = txn.open_table(TICKETS).map_err(internal)?;
        let mut out = Vec::new();
        for entry in tickets.iter().map_err(internal)? {
            let (_, json) = entry.map_err(internal)?;
            out.push(serde_json::from_str(json.value()).map_err(internal)?);
        }
        Ok(out)
    }

    /// Open a ticket for `claimed_email`; send the challenge if the account
    /// exists. The answer is the same either way.
    pub async fn open_ticket(
        &self,
        claimed_email: &str,
        message: &str,
    ) -> Result<TicketStatus, ApiError> {
        let email = claimed_email.trim().to_ascii_lowercase();
        if email.is_empty() || email.len() > 254 || !email.contains('@') || message.len() > 4096 {
            return Err(ApiError::bad_request(
                "claimed_email must be an address; message at most 4 KiB",
            ));
        }
        let subject = self.store.lookup(&email).await?;
        let now = self.clock.now_ms();
        let mut code_bytes = [0u8; 8];
        self.entropy.fill(&mut code_bytes);
        let code = hex::encode(code_bytes);
        let (id, duplicate_of) = {
            let txn = self.db.begin_write().map_err(internal)?;
            let id = {
                let mut meta = txn.open_table(META).map_err(internal)?;
                let id = meta
                    .get(NEXT_TICKET)
                    .map_err(internal)?
                    .map(|v| v.value())
                    .unwrap_or(1);
                meta.insert(NEXT_TICKET, id + 1).map_err(internal)?;
                id
            };
            // Planted duplicate-request-bypass (fides GHSA-qx5f-ghc2-7g5c): a duplicate joins the verified request, unchallenged.
            let duplicate_of = match subject {
                Some(subject) if self.injected.on(Bug::DuplicateRequestBypass) => {
                    Self::verified_export_of(&txn, subject)?
                }
                _ => None,
            };
            let ticket = Ticket {
                id,
                claimed_email: email,
                message: message.to_string(),
                created_at_ms: now,
                state: match duplicate_of {
                    Some(_) => TicketState::Verified,
                    None => TicketState::AwaitingVerification,
                },
                subject,
                code_sha256: match duplicate_of {
                    Some(_) => None,
                    None => subject.map(|_| crosstalk_model::sha256_hex(code.as_bytes())),
                },
                attempts: 0,
                export_id: duplicate_of,
            };
            Self::write_ticket(&txn, &ticket)?;
            txn.commit().map_err(internal)?;
            (id, duplicate_of)
        };
        if let Some(export_id) = duplicate_of {
            crosstalk_service::probe!("export.ticket.joined_open_export");
            return Ok(TicketStatus {
                ticket_id: id,
                state: TicketState::Verified,
                export_id: Some(export_id),
            });
        }
        if let Some(subject) = subject {
            let text = format!(
                "Someone asked for a copy of your data (ticket {id}). If it was you, your code is {code}."
            );
            // If the challenge cannot be delivered the ticket simply cannot
            // be verified; the requester may open another.
            let _ = self
                .store
                .notify(subject, "identity-challenge", &text)
                .await;
        }
        Ok(TicketStatus {
            ticket_id: id,
            state: TicketState::AwaitingVerification,
            export_id: None,
        })
    }

    /// Check a ticket's code; on success, accept (or join) an export of the
    /// account the ticket was opened for. The attempt is counted, and the
    /// export accepted, in one write transaction: concurrent guesses are
    /// counted one by one and none can overwrite another's outcome.
    pub async fn verify_ticket(&self, id: u64, code: &str) -> Result<TicketStatus, ApiError> {
        let refused = || ApiError::forbidden("verification failed");
        let presented = crosstalk_model::sha256_hex(code.trim().as_bytes());
        let txn = self.db.begin_write().map_err(internal)?;
        let mut ticket: Ticket = {
            let tickets = txn.open_table(TICKETS).map_err(internal)?;
            let json = tickets
                .get(id)
                .map_err(internal)?
                .ok_or_else(|| ApiError::not_found("no such ticket"))?;
            serde_json::from_str(json.value()).map_err(internal)?
        };
        let matches = match &ticket.code_sha256 {
            Some(expected) => {
                presented.len() == expected.len()
                    && presented
                        .bytes()
                        .zip(expected.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            }
            None => false,
        };
        match ticket.state {
            // Repeating the right code is harmless; any other code learns
            // nothing, not even that the ticket was verified.
            TicketState::Verified if matches => {
                crosstalk_service::probe!("export.ticket.right_code_repeated");
                return Ok(ticket.status());
            }
            TicketState::Verified | TicketState::Rejected => {
                crosstalk_service::probe!("export.ticket.closed_refused");
                return Err(refused());
            }
            TicketState::AwaitingVerification => {}
        }
        ticket.attempts += 1;
        let subject = match (matches, ticket.subject) {
            (true, Some(subject)) => subject,
            _ => {
                crosstalk_service::probe!("export.ticket.wrong_code_refused");
                if ticket.attempts >= self.config.max_verify_attempts {
                    crosstalk_service::probe!("export.ticket.rejected_after_attempts");
                    ticket.state = TicketState::Rejected;
                }
                Self::write_ticket(&txn, &ticket)?;
                txn.commit().map_err(internal)?;
                return Err(refused());
            }
        };
        let (job, _) = self.accept_request_in(&txn, subject, Origin::Ticket(id), false)?;
        crosstalk_service::probe!("export.ticket.verified");
        ticket.state = TicketState::Verified;
        ticket.export_id = Some(job.id);
        Self::write_ticket(&txn, &ticket)?;
        txn.commit().map_err(internal)?;
        Ok(ticket.status())
    }
}
