//! The support-agent console, designed so that the 2018 Alexa misdelivery
//! cannot happen by any agent's mistake.
//!
//! An agent works tickets. No operation takes a recipient or an archive:
//! a link can be re-sent only for the export of the ticket's *verified*
//! subject, and only to that subject's own feed in the store. A typo'd
//! ticket id, a stale clipboard or a swapped ticket therefore reaches either
//! nothing or the right person. Identity is never accepted from an agent's
//! say-so ("they knew the address and birthday"): only the challenge sent to
//! the account verifies a ticket. Every agent action, allowed or refused, is
//! written to the audit log.
//!
//! The agent's books, as the console promises them (`GET /v1/agent/audit`,
//! `GET /v1/agent/overdue`):
//!
//! - Every action an agent takes through the console (a resend, a manual
//!   verification, an extension) that gets past authentication and body
//!   parsing is written as exactly one [`AuditEntry`], before its answer is
//!   sent: the agent's name, the action, the ticket (and export) the agent
//!   named, and the outcome in words: `refused: …` when the console refused
//!   it (a 4xx answer), `failed: …` when its delivery failed (the store
//!   refused or was unavailable), anything else only when it was done (a 2xx
//!   answer). An action answered 5xx may have an entry or none. No entry is
//!   written for an action nobody took, and entries carry no email address,
//!   no link and no recording: tickets and exports are named by id.
//! - The overdue queue lists every request past its due date that is not
//!   ready: pending (or being built) and failed alike, and nothing else.

use crate::jobs::{Job, Origin};
use crate::schema::{AUDIT, META, NEXT_AUDIT};
use crate::service::{ExportService, internal};
use crosstalk_model::api::{AuditEntry, ExportState, TicketState, TicketStatus};
use crosstalk_model::{AccountId, ExportId};
use crosstalk_service::{ApiError, Bug};
use redb::{ReadableDatabase, ReadableTable};

impl ExportService {
    /// Append one entry to the audit log.
    pub(crate) fn audit(
        &self,
        agent: &str,
        action: &str,
        ticket_id: Option<u64>,
        export_id: Option<ExportId>,
        outcome: &str,
    ) -> Result<(), ApiError> {
        let now = self.clock.now_ms();
        let txn = self.db.begin_write().map_err(internal)?;
        {
            let mut meta = txn.open_table(META).map_err(internal)?;
            let seq = meta
                .get(NEXT_AUDIT)
                .map_err(internal)?
                .map(|v| v.value())
                .unwrap_or(1);
            meta.insert(NEXT_AUDIT, seq + 1).map_err(internal)?;
            let entry = AuditEntry {
                seq,
                at_ms: now,
                agent: agent.to_string(),
                action: action.to_string(),
                ticket_id,
                export_id,
                outcome: outcome.to_string(),
            };
            let json = serde_json::to_string(&entry).map_err(internal)?;
            txn.open_table(AUDIT)
                .map_err(internal)?
                .insert(seq, json.as_str())
                .map_err(internal)?;
        }
        txn.commit().map_err(internal)
    }

    /// Audit entries after `after`, oldest first (at most 500).
    pub(crate) fn audit_log(&self, after: u64) -> Result<Vec<AuditEntry>, ApiError> {
        let txn = self.db.begin_read().map_err(internal)?;
        let audit = txn.open_table(AUDIT).map_err(internal)?;
        let mut out = Vec::new();
        for entry in audit.range(after.saturating_add(1)..).map_err(internal)? {
            let (_, json) = entry.map_err(internal)?;
            out.push(serde_json::from_str(json.value()).map_err(internal)?);
            if out.len() == 500 {
                break;
            }
        }
        Ok(out)
    }

    /// Re-send the download link of ticket `id`'s export — to the ticket's
    /// verified subject's own feed, and nowhere else.
    pub async fn agent_resend_link(&self, agent: &str, id: u64) -> Result<(), ApiError> {
        self.agent_resend_link_with(agent, id, None).await
    }

    /// [`Self::agent_resend_link`], with the archive an agent may have
    /// attached (`ResendLinkRequest::export_id`). The console takes no
    /// archive: an attached one is refused (400) and audited.
    pub async fn agent_resend_link_with(
        &self,
        agent: &str,
        id: u64,
        attached: Option<ExportId>,
    ) -> Result<(), ApiError> {
        let (subject, export_id, job) = self.resend_link_target(agent, id, attached)?;
        self.resend_link_to_subject(agent, id, subject, export_id, &job)
            .await
    }

    /// The first phase of a resend: which subject and which export the
    /// ticket names, each refusal audited. Only a verified ticket with its
    /// own export gets through (and, with a bug planted, an attached one).
    fn resend_link_target(
        &self,
        agent: &str,
        id: u64,
        attached: Option<ExportId>,
    ) -> Result<(AccountId, ExportId, Job), ApiError> {
        // Planted agent-free-recipient (Alexa DSAR 2018): the console sends whichever archive the agent attached.
        let free_recipient = self.injected.on(Bug::AgentFreeRecipient);
        if let (Some(chosen), false) = (attached, free_recipient) {
            self.audit(
                agent,
                "resend-link",
                Some(id),
                Some(chosen),
                "refused: the console takes no archive",
            )?;
            crosstalk_service::probe!("export.agent.archive_attachment_refused");
            return Err(ApiError::bad_request("the console takes no archive"));
        }
        let ticket = match self.load_ticket(id)? {
            Some(ticket) => ticket,
            None => {
                self.audit(
                    agent,
                    "resend-link",
                    Some(id),
                    None,
                    "refused: no such ticket",
                )?;
                crosstalk_service::probe!("export.agent.no_such_ticket");
                return Err(ApiError::not_found("no such ticket"));
            }
        };
        let (TicketState::Verified, Some(subject), Some(own_export)) =
            (ticket.state, ticket.subject, ticket.export_id)
        else {
            self.audit(
                agent,
                "resend-link",
                Some(id),
                ticket.export_id,
                "refused: ticket not verified",
            )?;
            crosstalk_service::probe!("export.agent.unverified_ticket_refused");
            return Err(ApiError::conflict(
                "the ticket's requester has not verified their identity",
            ));
        };
        // Only a planted build gets here with an attached archive.
        let export_id = attached.unwrap_or(own_export);
        let job = match self.load_job(export_id)? {
            Some(job) => job,
            None if attached.is_some() => {
                self.audit(
                    agent,
                    "resend-link",
                    Some(id),
                    Some(export_id),
                    "refused: no such export",
                )?;
                return Err(ApiError::not_found("no such export"));
            }
            None => return Err(ApiError::internal("verified ticket without export")),
        };
        if job.subject != subject && !free_recipient {
            self.audit(
                agent,
                "resend-link",
                Some(id),
                Some(export_id),
                "refused: export of another subject",
            )?;
            return Err(ApiError::internal(
                "ticket and export disagree on the subject",
            ));
        }
        Ok((subject, export_id, job))
    }

    /// The second phase of a resend: send the export's link to `subject`'s
    /// own feed, and audit the outcome.
    async fn resend_link_to_subject(
        &self,
        agent: &str,
        id: u64,
        subject: AccountId,
        export_id: ExportId,
        job: &Job,
    ) -> Result<(), ApiError> {
        let Some(path) = self.download_path(job) else {
            self.audit(
                agent,
                "resend-link",
                Some(id),
                Some(export_id),
                "refused: export not ready",
            )?;
            crosstalk_service::probe!("export.agent.export_not_ready");
            return Err(ApiError::conflict("the export is not ready yet"));
        };
        if let Err(e) = self
            .store
            .notify(
                subject,
                "download-link",
                &format!("Your data is ready: {path}"),
            )
            .await
        {
            self.audit(
                agent,
                "resend-link",
                Some(id),
                Some(export_id),
                &format!("failed: {}", e.message),
            )?;
            return Err(e);
        }
        self.audit(
            agent,
            "resend-link",
            Some(id),
            Some(export_id),
            "sent to the subject's own feed",
        )
    }

    /// An agent vouching for a requester's identity from what they know. Always
    /// refused: knowable facts are not proof (Pavur 2019, Honan 2012). (The
    /// `Ok` answer, a verified ticket, exists only for the planted
    /// weak-identity bug.)
    pub fn agent_manual_verification(
        &self,
        agent: &str,
        id: u64,
        facts: &[String],
    ) -> Result<Option<TicketStatus>, ApiError> {
        // Planted weak-identity (Pavur 2019, Honan 2012): two knowable facts pass for proof.
        if self.injected.on(Bug::WeakIdentity)
            && facts.len() >= 2
            && let Some(status) = self.verify_by_facts(id)?
        {
            self.audit(
                agent,
                "manual-verification",
                Some(id),
                status.export_id,
                &format!("accepted: {} facts matched", facts.len()),
            )?;
            return Ok(Some(status));
        }
        let outcome = format!(
            "refused: {} facts offered; identity is verified only by the challenge",
            facts.len()
        );
        self.audit(agent, "manual-verification", Some(id), None, &outcome)?;
        crosstalk_service::probe!("export.agent.manual_verification_refused");
        Err(ApiError::forbidden(
            "identity can only be verified by the code sent to the account",
        ))
    }

    /// Mark ticket `id` verified without its challenge and accept (or join)
    /// its subject's export; `None` if the ticket is not awaiting
    /// verification of an existing account. Reached only by a planted build.
    fn verify_by_facts(&self, id: u64) -> Result<Option<TicketStatus>, ApiError> {
        let txn = self.db.begin_write().map_err(internal)?;
        let Some(mut ticket) = Self::read_ticket_in(&txn, id)? else {
            return Ok(None);
        };
        let (TicketState::AwaitingVerification, Some(subject)) = (ticket.state, ticket.subject)
        else {
            return Ok(None);
        };
        let (job, _) = self.accept_request_in(&txn, subject, Origin::Ticket(id), false)?;
        ticket.state = TicketState::Verified;
        ticket.export_id = Some(job.id);
        Self::write_ticket(&txn, &ticket)?;
        txn.commit().map_err(internal)?;
        Ok(Some(ticket.status()))
    }

    pub fn agent_extend(
        &self,
        agent: &str,
        export_id: ExportId,
        reason: &str,
    ) -> Result<(), ApiError> {
        match self.extend(export_id, reason) {
            Ok(_) => self.audit(agent, "extend-deadline", None, Some(export_id), "extended"),
            Err(e) => {
                self.audit(
                    agent,
                    "extend-deadline",
                    None,
                    Some(export_id),
                    &format!("refused: {}", e.message),
                )?;
                Err(e)
            }
        }
    }

    /// Overdue requests, for the agents' queue.
    pub fn agent_overdue(&self) -> Result<Vec<crosstalk_model::api::ExportStatus>, ApiError> {
        Ok(self
            .overdue()?
            .iter()
            .filter(|j| j.state != ExportState::Ready)
            .map(|j| self.status(j))
            .collect())
    }
}
