//! The agent's books: the console's audit log and its overdue queue, read
//! by the support agent with its own token and matched against what the
//! simulator itself knows happened.
//!
//! The console's contract (`crates/export/src/agent.rs`): every action an
//! agent takes through the console, allowed or refused, is written to the
//! audit log as exactly one entry naming the agent, the action, the ticket
//! (and export) the agent named, and the outcome in words — `refused: …`
//! when the console refused, `failed: …` when the delivery failed, anything
//! else only when it was done — and nothing else: no email address, no
//! link. The workload records every console action the agent took and what
//! it answered; after the run the oracle requires one entry per action
//! answered with a definite outcome (2xx or 4xx) before the latest
//! complete read, at most one per action whose outcome is unknown (no
//! answer, 5xx), the right outcome and ticket, and no entry for an action
//! nobody took.
//!
//! The overdue queue lists every request past its own due date that is not
//! ready. The oracle knows when each direct export request was sent and
//! answered, and which extensions the agent sent and how they were answered
//! (`check/deadlines.rs`), so a listing before `deadline_ms` after its
//! sending is wrong, and before `deadline_ms` plus the extension for a
//! request whose extension was granted before the read; it knows which
//! exports its subjects saw `failed` (the poisoned subject's job, a terminal
//! state), so a read sent after such an export's latest possible due date
//! (the extended one only where an extension of that very request may have
//! landed) must list it; and it knows which archives their subjects
//! downloaded whole, so an export delivered to a subject who never deleted
//! anything (nothing can revoke it) must not be listed afterwards.

use super::deadlines::Shown;
use super::{Invariant, Oracle};
use crosstalk_model::api::{AuditEntry, ExportStatus};
use std::collections::{BTreeMap, BTreeSet};

/// The agent's name in the console (`ExportConfig::agent_tokens`).
pub const AGENT_NAME: &str = "agent";

/// Slack on the due date of a failed export before a read must list it, in
/// simulated ms (the services' clock is the simulator's).
const OVERDUE_MARGIN_MS: u64 = 1_000;

/// One console action the agent took, as the agent observed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentAction {
    /// The console's name for it: `resend-link`, `manual-verification`,
    /// `extend-deadline`.
    pub action: &'static str,
    pub ticket_id: Option<u64>,
    /// The export the entry must name, when the agent knows it.
    pub export_id: Option<u64>,
    /// The answer's status; `None` when no answer came.
    pub status: Option<u16>,
    pub sent_ms: u64,
    pub reply_ms: u64,
}

impl AgentAction {
    /// Whether the console surely decided (and so surely audited) it.
    fn definite(&self) -> bool {
        self.status.is_some_and(|s| (200..500).contains(&s))
    }
}

/// One read of the overdue queue.
#[derive(Clone, Debug)]
struct OverdueRead {
    sent_ms: u64,
    reply_ms: u64,
    listed: BTreeSet<u64>,
}

/// What the oracle knows of the agent's books.
#[derive(Clone, Debug, Default)]
pub(super) struct BooksLedger {
    actions: Vec<AgentAction>,
    /// Audit entries read, by sequence number.
    entries: BTreeMap<u64, AuditEntry>,
    /// When the latest read that reached the log's end was sent.
    complete_read_ms: Option<u64>,
    overdue_reads: Vec<OverdueRead>,
    /// Direct requests answered 202: export -> (principal, sent, answered).
    accepted: BTreeMap<u64, (usize, u64, u64)>,
    /// Exports their subject saw failed: export -> when first seen.
    failed_seen: BTreeMap<u64, u64>,
    /// Exports downloaded whole by their subject: export -> (principal, first ms).
    delivered: BTreeMap<u64, (usize, u64)>,
    /// Principals who started any deletion or closed their account.
    deleting: BTreeSet<usize>,
    /// The contract's deadline and extension, in ms.
    deadline_ms: u64,
    extension_ms: u64,
}

impl BooksLedger {
    pub(super) fn learn_deadlines(&mut self, deadline_ms: u64, extension_ms: u64) {
        self.deadline_ms = deadline_ms;
        self.extension_ms = extension_ms;
    }

    /// The latest due date export `export_id` can have; `extended` when an
    /// extension of it may have landed.
    fn latest_due_ms(&self, export_id: u64, extended: bool) -> Option<u64> {
        let (_, _, answered_ms) = self.accepted.get(&export_id)?;
        let extension = if extended { self.extension_ms } else { 0 };
        Some(answered_ms + self.deadline_ms + extension)
    }

    /// When a read must list `export_id` (failed and past due), if ever;
    /// `extended` as for [`Self::latest_due_ms`].
    fn must_list_from_ms(&self, export_id: u64, extended: bool) -> Option<u64> {
        let failed_ms = *self.failed_seen.get(&export_id)?;
        let due_ms = self.latest_due_ms(export_id, extended)?;
        Some(failed_ms.max(due_ms + OVERDUE_MARGIN_MS))
    }
}

impl Oracle {
    /// The agent took `action` through the console.
    pub fn on_agent_action(&mut self, action: AgentAction) {
        self.books.actions.push(action);
    }

    /// The agent read audit entries `page` (sent at `sent_ms`); `complete`
    /// when the read reached the end of the log.
    pub fn on_audit_read(&mut self, page: Vec<AuditEntry>, sent_ms: u64, complete: bool) {
        for entry in page {
            self.books.entries.entry(entry.seq).or_insert(entry);
        }
        if complete {
            self.books.complete_read_ms = Some(sent_ms);
        }
    }

    /// The agent read the overdue queue: `listed`, asked at `sent_ms`,
    /// answered at `reply_ms`. Each listed status's deadline is judged as
    /// any other status (`check/deadlines.rs`).
    pub fn on_overdue_read(&mut self, listed: &[ExportStatus], sent_ms: u64, reply_ms: u64) {
        for status in listed {
            let extended = self.deadlines.granted_by(status.export_id.0, sent_ms);
            self.judge_shown(Shown {
                status,
                viewer: None,
                sent_ms,
                at_ms: reply_ms,
                extended,
            });
        }
        let listed = listed.iter().map(|s| s.export_id.0).collect();
        self.books.overdue_reads.push(OverdueRead {
            sent_ms,
            reply_ms,
            listed,
        });
    }

    /// `principal`'s direct request, sent at `sent_ms`, was answered 202
    /// with a new exp-`export_id` at `reply_ms`.
    pub fn on_export_accepted(
        &mut self,
        principal: usize,
        export_id: u64,
        sent_ms: u64,
        reply_ms: u64,
    ) {
        self.books
            .accepted
            .entry(export_id)
            .or_insert((principal, sent_ms, reply_ms));
    }

    /// The earliest time a read of the overdue queue judges an export the
    /// oracle knows undelivered past its first due date (for the agent's
    /// last read): listed if it was not extended, left out if it was.
    pub fn overdue_read_due_ms(&self) -> Option<u64> {
        let books = &self.books;
        books
            .failed_seen
            .keys()
            .filter_map(|&e| books.must_list_from_ms(e, false))
            .min()
    }

    pub(super) fn books_export_failed(&mut self, export_id: u64, seen_ms: u64) {
        self.books.failed_seen.entry(export_id).or_insert(seen_ms);
    }

    pub(super) fn books_export_delivered(&mut self, principal: usize, export_id: u64, at_ms: u64) {
        self.books
            .delivered
            .entry(export_id)
            .or_insert((principal, at_ms));
    }

    pub(super) fn books_deleting(&mut self, principal: usize) {
        self.books.deleting.insert(principal);
    }

    /// Judge the books after the run: the audit log, then the queue.
    pub fn judge_books(&mut self) {
        self.judge_audit_log();
        self.judge_overdue_reads();
    }
}

impl Oracle {
    fn judge_audit_log(&mut self) {
        let entries: Vec<AuditEntry> = self.books.entries.values().cloned().collect();
        let mut matched = vec![false; self.books.actions.len()];
        for entry in &entries {
            self.controls.audit_entries_judged += 1;
            self.judge_entry_content(entry);
            match self.match_entry(entry, &matched) {
                Some(i) => {
                    matched[i] = true;
                    let action = self.books.actions[i].clone();
                    self.judge_entry_outcome(entry, &action);
                }
                None => {
                    let detail = format!(
                        "audit entry #{} says the agent did {} on ticket {:?} (export {:?}) at {} ms, \"{}\": the agent took no such action then (or it is audited twice)",
                        entry.seq,
                        entry.action,
                        entry.ticket_id,
                        entry.export_id.map(|e| e.0),
                        self.service_ms(entry.at_ms),
                        entry.outcome
                    );
                    let at = self.service_ms(entry.at_ms);
                    self.violate(Invariant::AgentContainment, at, None, None, detail);
                }
            }
        }
        self.judge_unaudited(&matched);
    }

    /// Simulated ms of a service time (the service clock's first).
    fn service_ms(&self, at_ms: u64) -> u64 {
        self.service_clock.span(at_ms).map_or(0, |(first, _)| first)
    }

    /// The first unmatched action `entry` can stand for: same action and
    /// ticket, written while the action was under way (an action without a
    /// definite answer may be written any time after it was sent). Where
    /// the times fit several, a definite action the entry agrees with comes
    /// first, then one without a definite answer (whose entry may be written
    /// after the agent gave up and took the next action), and only then a
    /// definite one the entry contradicts (a violation).
    fn match_entry(&self, entry: &AuditEntry, matched: &[bool]) -> Option<usize> {
        let (first, last) = self.service_clock.span(entry.at_ms)?;
        let fits = |a: &AgentAction| {
            a.action == entry.action
                && a.ticket_id == entry.ticket_id
                && last >= a.sent_ms
                && (!a.definite() || first <= a.reply_ms)
        };
        let actions = &self.books.actions;
        let unmatched = || (0..actions.len()).filter(|&i| !matched[i] && fits(&actions[i]));
        let agreeing = unmatched()
            .find(|&i| actions[i].definite() && entry_disagrees(entry, &actions[i]).is_none());
        agreeing
            .or_else(|| unmatched().find(|&i| !actions[i].definite()))
            .or_else(|| unmatched().next())
    }

    /// An entry names the agent and carries no personal data.
    fn judge_entry_content(&mut self, entry: &AuditEntry) {
        let foreign = entry.outcome.contains('@')
            || entry.outcome.contains("/v1/downloads/")
            || entry.agent.contains('@');
        if entry.agent != AGENT_NAME || foreign {
            let detail = format!(
                "audit entry #{} (agent \"{}\", outcome \"{}\") names another agent or carries an address or a link (the log names agents, tickets and exports only)",
                entry.seq, entry.agent, entry.outcome
            );
            let at = self.service_ms(entry.at_ms);
            self.violate(Invariant::AgentContainment, at, None, None, detail);
        }
    }

    /// The entry's outcome and export agree with what the agent saw.
    fn judge_entry_outcome(&mut self, entry: &AuditEntry, action: &AgentAction) {
        let Some(what) = entry_disagrees(entry, action) else {
            if is_refusal(entry) {
                self.controls.audit_refusals_judged += 1;
            }
            return;
        };
        let detail = format!(
            "audit entry #{} records {} on ticket {:?} as \"{}\" for export {:?}; the console answered the agent {:?} for export {:?} (another {what})",
            entry.seq,
            entry.action,
            entry.ticket_id,
            entry.outcome,
            entry.export_id.map(|e| e.0),
            action.status,
            action.export_id
        );
        self.violate(
            Invariant::AgentContainment,
            action.reply_ms,
            None,
            None,
            detail,
        );
    }

    /// Every action decided before the latest complete read is in the log.
    fn judge_unaudited(&mut self, matched: &[bool]) {
        let Some(read_ms) = self.books.complete_read_ms else {
            return;
        };
        let missing: Vec<AgentAction> = self
            .books
            .actions
            .iter()
            .zip(matched)
            .filter(|(a, m)| !**m && a.definite() && a.reply_ms <= read_ms)
            .map(|(a, _)| a.clone())
            .collect();
        for action in missing {
            let detail = format!(
                "the agent's {} on ticket {:?} (sent at {} ms, answered {:?}) is missing from the audit log read at {read_ms} ms (every action, allowed or refused, is audited)",
                action.action, action.ticket_id, action.sent_ms, action.status
            );
            self.violate(
                Invariant::AgentContainment,
                action.reply_ms,
                None,
                None,
                detail,
            );
        }
    }

    fn judge_overdue_reads(&mut self) {
        let reads = self.books.overdue_reads.clone();
        for read in &reads {
            self.controls.overdue_listings_judged += 1;
            self.judge_overdue_listed(read);
            self.judge_overdue_missing(read);
            self.count_overdue_extended(read);
        }
        self.count_extended_judged();
    }

    /// The earliest due date of `export_id` as `read` must see it: its
    /// request's sending plus the deadline, plus the extension when one of
    /// it was granted before the read was sent.
    fn earliest_due_ms(&self, export_id: u64, read: &OverdueRead) -> Option<(usize, u64, u64)> {
        let (principal, sent_ms, _) = *self.books.accepted.get(&export_id)?;
        let extended = self.deadlines.granted_by(export_id, read.sent_ms);
        let extension = if extended { self.books.extension_ms } else { 0 };
        Some((
            principal,
            sent_ms,
            sent_ms + self.books.deadline_ms + extension,
        ))
    }

    /// Nothing listed before its own deadline, nor once delivered for good.
    fn judge_overdue_listed(&mut self, read: &OverdueRead) {
        for &export_id in &read.listed {
            let early = self
                .earliest_due_ms(export_id, read)
                .filter(|(_, _, due_ms)| read.reply_ms < *due_ms);
            let delivered = self
                .books
                .delivered
                .get(&export_id)
                .filter(|(p, at_ms)| *at_ms < read.sent_ms && !self.books.deleting.contains(p));
            let detail = match (early, delivered) {
                (Some((p, sent_ms, due_ms)), _) => format!(
                    "the overdue queue read at {} ms lists exp-{export_id}, which {} asked for at {sent_ms} ms: not due before {due_ms} ms{}",
                    read.reply_ms,
                    self.who(p),
                    match self.deadlines.granted_ms(export_id) {
                        Some(g) if g <= read.sent_ms => format!(
                            " (its deadline was extended, granted at {g} ms: the queue must honour the extension)"
                        ),
                        _ => String::new(),
                    }
                ),
                (None, Some((p, at_ms))) => format!(
                    "the overdue queue read at {} ms lists exp-{export_id}, which {} downloaded whole at {at_ms} ms and never deleted anything since (it is delivered)",
                    read.sent_ms,
                    self.who(*p)
                ),
                (None, None) => continue,
            };
            self.violate(Invariant::Liveness, read.reply_ms, None, None, detail);
        }
    }

    /// Every export known undelivered and past its own due date is listed
    /// (the extended one only where an extension of it may have landed).
    fn judge_overdue_missing(&mut self, read: &OverdueRead) {
        let failed: Vec<u64> = self.books.failed_seen.keys().copied().collect();
        for export_id in failed {
            let extended = self.deadlines.may_have_landed_by(export_id, read.reply_ms);
            let Some(from_ms) = self.books.must_list_from_ms(export_id, extended) else {
                continue;
            };
            if read.sent_ms < from_ms {
                continue;
            }
            self.controls.overdue_exports_required += 1;
            if read.listed.contains(&export_id) {
                continue;
            }
            let principal = self.books.accepted.get(&export_id).map(|(p, _, _)| *p);
            let detail = format!(
                "the overdue queue read at {} ms omits exp-{export_id}, seen failed by its subject and due by {} ms at the latest{} (an undelivered request past its due date)",
                read.sent_ms,
                self.books.latest_due_ms(export_id, extended).unwrap_or(0),
                if extended {
                    ", extended included"
                } else {
                    ", never extended"
                }
            );
            self.violate(Invariant::Liveness, read.reply_ms, None, principal, detail);
        }
    }

    /// Count the extended requests `read` had to leave out though they were
    /// past their first due date and known undelivered (failed before it):
    /// a queue that ignores the extension lists them.
    fn count_overdue_extended(&mut self, read: &OverdueRead) {
        let failed: Vec<(u64, u64)> = self
            .books
            .failed_seen
            .iter()
            .map(|(&e, &at)| (e, at))
            .collect();
        for (export_id, failed_ms) in failed {
            let extended = self.deadlines.granted_by(export_id, read.sent_ms);
            let first_due = self.books.must_list_from_ms(export_id, false);
            if extended && failed_ms <= read.sent_ms && first_due.is_some_and(|d| d <= read.sent_ms)
            {
                self.controls.overdue_listings_judged_with_extended += 1;
                self.deadlines.judged_on_extension(export_id);
            }
        }
    }
}

/// Whether `entry` says its action was refused (or failed).
fn is_refusal(entry: &AuditEntry) -> bool {
    entry.outcome.starts_with("refused") || entry.outcome.starts_with("failed")
}

/// How `entry` contradicts what the agent saw of `action`, if it does: an
/// outcome other than its answer's (done for a 2xx, refused for a 4xx), or
/// another export than the one it named.
fn entry_disagrees(entry: &AuditEntry, action: &AgentAction) -> Option<&'static str> {
    let refused = is_refusal(entry);
    let wrong_outcome = match action.status {
        Some(s) if (200..300).contains(&s) => refused,
        Some(s) if (400..500).contains(&s) => !refused,
        _ => false,
    };
    let attach_refused = action.status == Some(400) && action.action == "resend-link";
    let export_judged = action.status.is_some_and(|s| (200..300).contains(&s))
        || attach_refused
        || action.action == "extend-deadline";
    let wrong_export = export_judged
        && action.export_id.is_some()
        && action.status.is_some()
        && entry.export_id.map(|e| e.0) != action.export_id;
    if wrong_outcome {
        Some("outcome")
    } else if wrong_export {
        Some("export")
    } else {
        None
    }
}

impl Oracle {
    /// The agent re-sent the link of a ticket of `subject` (sent at
    /// `sent_ms`, answered `status` at `at_ms`). Once the subject's closing
    /// was acknowledged their feed is gone: the console can only refuse (a
    /// 2xx means the link went to someone else, as to whoever holds the
    /// address now). Re-sends after the address was signed up again are
    /// counted, and their refusals, as the positive control.
    pub fn on_ticket_link_resent(
        &mut self,
        subject: usize,
        status: Option<u16>,
        sent_ms: u64,
        at_ms: u64,
    ) {
        let Some(closed_ms) = self.closed.closed_at(subject) else {
            return;
        };
        if closed_ms >= sent_ms {
            return;
        }
        let email = self
            .people
            .get(subject)
            .map(|p| p.email.to_ascii_lowercase());
        let new_holder = (subject + 1..self.people.len())
            .find(|&p| Some(self.people[p].email.to_ascii_lowercase()) == email);
        if new_holder.is_some() {
            self.controls.callbacks_after_recycling += 1;
        }
        match status {
            Some(s) if (200..300).contains(&s) => {
                let holder = new_holder.map_or("nobody".to_string(), |p| self.who(p));
                let detail = format!(
                    "the agent re-sent the link of a ticket of {}, whose account closing was acknowledged at {closed_ms} ms, and the console answered {s}: the link went to someone else (the address is now held by {holder})",
                    self.who(subject)
                );
                self.violate(
                    Invariant::AgentContainment,
                    at_ms,
                    None,
                    Some(subject),
                    detail,
                );
            }
            Some(s) if (400..500).contains(&s) && new_holder.is_some() => {
                self.controls.callbacks_after_recycling_refused += 1;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::EPOCH_MS;
    use crate::watermark::WatermarkKey;
    use crosstalk_model::ExportId;
    use crosstalk_model::api::ExportState;

    fn oracle() -> Oracle {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into(), "b@x".into()]);
        o.learn_deadlines(600_000, 1_200_000);
        o
    }

    fn resend(ticket: u64, status: Option<u16>, sent_ms: u64) -> AgentAction {
        AgentAction {
            action: "resend-link",
            ticket_id: Some(ticket),
            export_id: None,
            status,
            sent_ms,
            reply_ms: sent_ms + 10,
        }
    }

    fn entry(seq: u64, ticket: u64, at_ms: u64, outcome: &str) -> AuditEntry {
        AuditEntry {
            seq,
            at_ms: EPOCH_MS + at_ms,
            agent: AGENT_NAME.to_string(),
            action: "resend-link".to_string(),
            ticket_id: Some(ticket),
            export_id: None,
            outcome: outcome.to_string(),
        }
    }

    /// Exp-`export_id` as the overdue queue lists it: failed, asked for
    /// at 1 s, due a deadline later.
    fn listed(export_id: u64) -> ExportStatus {
        ExportStatus {
            export_id: ExportId(export_id),
            state: ExportState::Failed,
            requested_at_ms: EPOCH_MS + 1_000,
            due_at_ms: EPOCH_MS + 1_000 + 600_000,
            overdue: true,
            extension_reason: None,
            snapshot_at_ms: None,
            download_path: None,
            expires_at_ms: None,
            downloads_left: None,
            failure: None,
        }
    }

    #[test]
    fn every_decided_action_has_one_entry_and_no_entry_is_invented() {
        let mut o = oracle();
        o.on_agent_action(resend(1, Some(409), 100));
        o.on_agent_action(resend(2, None, 200));
        o.on_agent_action(resend(3, Some(200), 300));
        let page = vec![
            entry(1, 1, 105, "refused: ticket not verified"),
            entry(2, 3, 305, "sent to the subject's own feed"),
        ];
        o.on_audit_read(page, 1_000, true);
        o.judge_books();
        assert!(o.violations.is_empty(), "{:#?}", o.violations);
        assert_eq!(o.controls.audit_entries_judged, 2);
        assert_eq!(o.controls.audit_refusals_judged, 1);

        // A refusal left out, and an entry for an action never taken.
        let mut o = oracle();
        o.on_agent_action(resend(1, Some(409), 100));
        o.on_audit_read(vec![entry(1, 7, 105, "sent")], 1_000, true);
        o.judge_books();
        let details: Vec<&str> = o.violations.iter().map(|v| v.detail.as_str()).collect();
        assert_eq!(o.violations.len(), 2, "{details:#?}");
        assert!(
            details
                .iter()
                .any(|d| d.contains("missing from the audit log"))
        );
        assert!(details.iter().any(|d| d.contains("took no such action")));
        assert!(
            o.violations
                .iter()
                .all(|v| v.invariant == Invariant::AgentContainment)
        );
    }

    #[test]
    fn a_timed_out_actions_late_entry_is_not_taken_for_the_next_ones() {
        // The agent gave up on a resend at 110 and sent it again; the first
        // one's failure was written at 112, while the second was under way.
        let mut o = oracle();
        o.on_agent_action(resend(10, None, 100));
        o.on_agent_action(resend(10, Some(200), 110));
        let page = vec![
            entry(1, 10, 112, "failed: recording store unavailable"),
            entry(2, 10, 115, "sent to the subject's own feed"),
        ];
        o.on_audit_read(page, 1_000, true);
        o.judge_books();
        assert!(o.violations.is_empty(), "{:#?}", o.violations);
        // With no other action to stand for, the failure contradicts the 200.
        let mut o = oracle();
        o.on_agent_action(resend(10, Some(200), 110));
        o.on_audit_read(vec![entry(1, 10, 112, "failed: timed out")], 1_000, true);
        o.judge_books();
        assert!(
            o.violations
                .iter()
                .any(|v| v.detail.contains("another outcome")),
            "{:#?}",
            o.violations
        );
    }

    #[test]
    fn an_entry_with_the_wrong_outcome_or_an_address_is_a_violation() {
        let mut o = oracle();
        o.on_agent_action(resend(1, Some(409), 100));
        o.on_agent_action(resend(2, Some(200), 200));
        let page = vec![
            entry(1, 1, 105, "sent to the subject's own feed"),
            entry(2, 2, 205, "sent to b@x"),
        ];
        o.on_audit_read(page, 1_000, true);
        o.judge_books();
        assert_eq!(o.violations.len(), 2, "{:#?}", o.violations);
    }

    #[test]
    fn a_failed_request_past_due_must_be_listed_and_nothing_early() {
        let mut o = oracle();
        o.on_export_accepted(0, 5, 1_000, 1_100);
        o.books_export_failed(5, 400_000);
        assert_eq!(
            o.overdue_read_due_ms(),
            Some(1_100 + 600_000 + OVERDUE_MARGIN_MS)
        );
        o.on_overdue_read(&[], 500_000, 500_010);
        o.on_overdue_read(&[listed(5)], 700_000, 700_010);
        o.judge_books();
        assert!(o.violations.is_empty(), "{:#?}", o.violations);
        assert_eq!(o.controls.overdue_exports_required, 1);

        let mut o = oracle();
        o.on_export_accepted(0, 5, 1_000, 1_100);
        o.books_export_failed(5, 400_000);
        o.on_export_accepted(1, 6, 150_000, 150_100);
        // Omits the failed one; lists one not yet due.
        o.on_overdue_read(&[listed(6)], 700_000, 700_010);
        o.judge_books();
        assert_eq!(o.violations.len(), 2, "{:#?}", o.violations);
        assert!(
            o.violations
                .iter()
                .all(|v| v.invariant == Invariant::Liveness)
        );
    }

    #[test]
    fn a_closed_subjects_link_is_never_sent() {
        let mut o = oracle();
        let again = o.add_principal("a@x".into());
        o.account_closed(0, 1_000);
        o.on_ticket_link_resent(0, Some(404), 2_000, 2_010);
        o.on_ticket_link_resent(0, Some(200), 500, 510);
        assert!(o.violations.is_empty());
        assert_eq!(o.controls.callbacks_after_recycling_refused, 1);
        o.on_ticket_link_resent(0, Some(200), 3_000, 3_010);
        assert_eq!(o.violations.len(), 1);
        assert!(o.violations[0].detail.contains(&o.who(again)));
    }
}
