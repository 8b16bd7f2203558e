//! A request's legal deadline and its one extension (GDPR Art. 12(3)): a
//! month to answer, extendable once by two further months for a complex
//! request, with a reason the subject is told.
//!
//! The simulator scales both (`world::export_config`: a "month" is ten
//! simulated minutes, the extension twenty) and the oracle learns them
//! (`learn_deadlines`). The support agent extends some requests
//! (`workload/agent.rs`) and makes the mistakes real agents make: it
//! extends the same request twice, types a neighbouring request's number or
//! one from another system, leaves the reason empty or pastes a whole
//! e-mail thread into it. Each extension reaches the oracle when it is sent
//! and when its answer comes, which makes the ledger the ground truth of
//! which request may have been extended by when: an extension answered 2xx
//! is in effect for anything sent after its answer arrived; one without an
//! answer (or answered 5xx) may have landed any time after it was sent; one
//! refused (4xx) never landed.
//!
//! Verdicts:
//! - **The extension's answer.** A blank or oversized reason (more than
//!   [`MAX_REASON_BYTES`]) is refused 400; a request no run can have (a
//!   number from [`NO_SUCH_EXPORT_FROM`] on) 404; a request whose extension
//!   was already granted 409. A 409 for a request no extension was ever
//!   sent for means another request's extension landed on it; a 404 for a
//!   request a client was already shown means the console cannot find it.
//!   Every refusal carries the JSON error body. A granted extension answers
//!   with the request's status, judged as below with the extension in
//!   effect.
//! - **Every status of a request** its subject or the agent sees shows a
//!   reason only when an extension of that very request may have landed,
//!   and must show it once one was granted before the status was asked
//!   for. Its due date is its request time plus the deadline, plus the
//!   extension exactly when it shows a reason (an extension moves the first
//!   due date by two months: not from the day it was granted, nor from the
//!   request), and it says `overdue` exactly when it is not ready and that
//!   due date has passed.
//! - **The overdue queue** (`check/books.rs`) holds each request to its own
//!   due date: the extended one where an extension of it was granted before
//!   the read, the first one for every other; a refused extension excuses
//!   nothing and an extension excuses no other request.

use super::replies::error_body_fault;
use super::{Invariant, Oracle};
use crosstalk_model::api::{ExportState, ExportStatus};
use std::collections::{BTreeMap, BTreeSet};

/// Export numbers from here on exist in no run (the agent pastes a number
/// from another system): an extension of one must be refused 404.
pub const NO_SUCH_EXPORT_FROM: u64 = 1 << 40;

/// The longest reason an extension may carry, in bytes.
pub const MAX_REASON_BYTES: usize = 500;

/// What became of one extension the agent sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Sent, no answer yet.
    InFlight,
    /// Answered 2xx.
    Granted,
    /// Answered 4xx: it never landed.
    Refused,
    /// No answer, or a 5xx: it may have landed.
    Unknown,
}

/// One extension the agent sent.
#[derive(Clone, Debug)]
struct Extension {
    export_id: u64,
    reason: String,
    sent_ms: u64,
    /// When its answer arrived (or the agent gave up on one).
    reply_ms: u64,
    outcome: Outcome,
}

impl Extension {
    /// Whether it may have landed by `at_ms`.
    fn may_have_landed_by(&self, at_ms: u64) -> bool {
        self.outcome != Outcome::Refused && self.sent_ms <= at_ms
    }
}

/// The contract's deadline and its one extension, in service ms.
#[derive(Clone, Copy, Debug)]
struct Terms {
    deadline_ms: u64,
    extension_ms: u64,
}

/// What the oracle knows of the agent's extensions.
#[derive(Clone, Debug, Default)]
pub(super) struct DeadlineLedger {
    terms: Option<Terms>,
    extensions: Vec<Extension>,
    /// Export id -> its extensions, as indices into `extensions`.
    by_export: BTreeMap<u64, Vec<usize>>,
    /// Exports a client was shown (a status, an acceptance): when first.
    shown_ms: BTreeMap<u64, u64>,
    /// Exports whose statuses were found wrong (reported once each).
    flagged: BTreeSet<u64>,
    /// Extended exports whose liveness was judged on the extended deadline.
    judged_extended: BTreeSet<u64>,
}

impl DeadlineLedger {
    fn of(&self, export_id: u64) -> impl Iterator<Item = (usize, &Extension)> {
        self.by_export
            .get(&export_id)
            .into_iter()
            .flatten()
            .map(|&i| (i, &self.extensions[i]))
    }

    /// When an extension of `export_id` was first granted (its answer's
    /// arrival), if one was.
    pub(super) fn granted_ms(&self, export_id: u64) -> Option<u64> {
        self.of(export_id)
            .filter(|(_, e)| e.outcome == Outcome::Granted)
            .map(|(_, e)| e.reply_ms)
            .min()
    }

    /// Whether an extension of `export_id` was granted by `at_ms`: in
    /// effect for anything sent from then on.
    pub(super) fn granted_by(&self, export_id: u64, at_ms: u64) -> bool {
        self.granted_ms(export_id).is_some_and(|g| g <= at_ms)
    }

    /// Whether an extension of `export_id` sent by `at_ms` may have landed.
    pub(super) fn may_have_landed_by(&self, export_id: u64, at_ms: u64) -> bool {
        self.of(export_id).any(|(_, e)| e.may_have_landed_by(at_ms))
    }

    /// When an extension of `export_id` other than `but` was first granted,
    /// if one was by `at_ms`.
    fn other_granted_by(&self, export_id: u64, but: usize, at_ms: u64) -> Option<u64> {
        self.of(export_id)
            .filter(|(i, e)| *i != but && e.outcome == Outcome::Granted && e.reply_ms <= at_ms)
            .map(|(_, e)| e.reply_ms)
            .min()
    }

    /// [`Self::may_have_landed_by`], leaving extension `but` out.
    fn other_may_have_landed_by(&self, export_id: u64, but: usize, at_ms: u64) -> bool {
        self.of(export_id)
            .any(|(i, e)| i != but && e.may_have_landed_by(at_ms))
    }

    /// Whether an extension of `export_id` that may have landed by `at_ms`
    /// carried `reason` (both trimmed, as the console keeps it).
    fn gave_reason_by(&self, export_id: u64, reason: &str, at_ms: u64) -> bool {
        self.of(export_id)
            .any(|(_, e)| e.may_have_landed_by(at_ms) && e.reason.trim() == reason.trim())
    }

    /// Count `export_id` among the extended requests judged on their
    /// extended deadline.
    pub(super) fn judged_on_extension(&mut self, export_id: u64) {
        self.judged_extended.insert(export_id);
    }
}

/// One status of a request as a client saw it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shown<'a> {
    pub(super) status: &'a ExportStatus,
    /// The subject who asked, or `None` for the agent.
    pub(super) viewer: Option<usize>,
    pub(super) sent_ms: u64,
    pub(super) at_ms: u64,
    /// An extension of it surely in effect (granted before it was asked
    /// for, or the extension this status answers).
    pub(super) extended: bool,
}

impl Oracle {
    /// The export contract's deadline and its one extension (ms).
    pub fn learn_deadlines(&mut self, deadline_ms: u64, extension_ms: u64) {
        self.deadlines.terms = Some(Terms {
            deadline_ms,
            extension_ms,
        });
        self.books.learn_deadlines(deadline_ms, extension_ms);
    }

    /// The agent sends an extension of exp-`export_id` with `reason` at
    /// `sent_ms`; the number to report its answer with.
    pub fn on_extension_sent(&mut self, export_id: u64, reason: &str, sent_ms: u64) -> usize {
        let index = self.deadlines.extensions.len();
        self.deadlines.extensions.push(Extension {
            export_id,
            reason: reason.to_string(),
            sent_ms,
            reply_ms: sent_ms,
            outcome: Outcome::InFlight,
        });
        self.deadlines
            .by_export
            .entry(export_id)
            .or_default()
            .push(index);
        index
    }

    /// Extension `sent` was answered `status` (`None`: no answer) with
    /// `body` of `content_type` at `at_ms`.
    pub fn on_extension_answered(
        &mut self,
        sent: usize,
        status: Option<u16>,
        content_type: &str,
        body: &[u8],
        at_ms: u64,
    ) {
        let Some(extension) = self.deadlines.extensions.get_mut(sent) else {
            return;
        };
        extension.reply_ms = at_ms;
        extension.outcome = match status {
            Some(200..=299) => Outcome::Granted,
            Some(400..=499) => Outcome::Refused,
            _ => Outcome::Unknown,
        };
        let extension = extension.clone();
        if status.is_some() {
            self.controls.agent_actions += 1;
        }
        let Some(status) = status.filter(|s| *s < 500) else {
            return;
        };
        if status >= 400
            && let Some(fault) = error_body_fault(content_type, body)
        {
            let detail = format!(
                "the console refused the agent's extension of exp-{} with {status} and {fault}",
                extension.export_id
            );
            self.violate(Invariant::ApiContract, at_ms, None, None, detail);
        }
        let wrong = self.judge_extension_answer(sent, &extension, status, body);
        if let Some((invariant, detail)) = wrong {
            self.violate(invariant, at_ms, None, None, detail);
        }
    }

    /// What is wrong with `status` as the answer to `extension` (number
    /// `sent`), counting the refusals and grants that are right.
    fn judge_extension_answer(
        &mut self,
        sent: usize,
        extension: &Extension,
        status: u16,
        body: &[u8],
    ) -> Option<(Invariant, String)> {
        let export_id = extension.export_id;
        let granted = (200..300).contains(&status);
        let reason_bytes = extension.reason.len();
        let blank = extension.reason.trim().is_empty();
        if blank || reason_bytes > MAX_REASON_BYTES {
            let earlier =
                self.deadlines
                    .other_may_have_landed_by(export_id, sent, extension.reply_ms);
            let refused_right = status == 400 || (status == 409 && earlier);
            if refused_right {
                self.controls.extensions_refused_bad_reason += 1;
            }
            let what = if blank {
                "a blank reason".to_string()
            } else {
                format!("a reason of {reason_bytes} bytes")
            };
            return granted.then(|| {
                (
                    Invariant::AgentContainment,
                    format!(
                        "the console extended exp-{export_id} with {what} (answered {status}): the subject must be told why, in 1 to {MAX_REASON_BYTES} bytes"
                    ),
                )
            });
        }
        if export_id >= NO_SUCH_EXPORT_FROM {
            if status == 404 {
                self.controls.extensions_refused_unknown_export += 1;
                return None;
            }
            return Some((
                Invariant::AgentContainment,
                format!(
                    "the agent extended exp-{export_id}, a number no request has, and the console answered {status}, not 404"
                ),
            ));
        }
        if let Some(first_ms) = self
            .deadlines
            .other_granted_by(export_id, sent, extension.sent_ms)
        {
            if status == 409 {
                self.controls.extensions_refused_twice += 1;
                return None;
            }
            return Some((
                Invariant::Liveness,
                format!(
                    "the agent extended exp-{export_id} again (its extension was granted at {first_ms} ms) and the console answered {status}, not 409: one extension only"
                ),
            ));
        }
        self.judge_first_extension(sent, extension, status, body)
    }

    /// The answer to an extension of a request not known extended yet.
    fn judge_first_extension(
        &mut self,
        sent: usize,
        extension: &Extension,
        status: u16,
        body: &[u8],
    ) -> Option<(Invariant, String)> {
        let export_id = extension.export_id;
        match status {
            200..=299 => {
                self.controls.extensions_granted += 1;
                let shown = serde_json::from_slice::<ExportStatus>(body).ok()?;
                if shown.export_id.0 != export_id {
                    return Some((
                        Invariant::Liveness,
                        format!(
                            "the console extended exp-{export_id} and answered with exp-{}'s status",
                            shown.export_id.0
                        ),
                    ));
                }
                self.judge_shown(Shown {
                    status: &shown,
                    viewer: None,
                    sent_ms: extension.sent_ms,
                    at_ms: extension.reply_ms,
                    extended: true,
                });
                None
            }
            409 if self
                .deadlines
                .other_may_have_landed_by(export_id, sent, extension.reply_ms) =>
            {
                None
            }
            409 => Some((
                Invariant::Liveness,
                format!(
                    "the console refused to extend exp-{export_id} as already extended, though no extension of it was ever sent: another request's extension landed on it"
                ),
            )),
            404 => {
                let shown = self.deadlines.shown_ms.get(&export_id).copied();
                let shown_ms = shown.filter(|&s| s <= extension.sent_ms)?;
                Some((
                    Invariant::Liveness,
                    format!(
                        "the console refused to extend exp-{export_id} as unknown, though a client was shown that request at {shown_ms} ms"
                    ),
                ))
            }
            other => Some((
                Invariant::Liveness,
                format!(
                    "the console refused the agent's extension of exp-{export_id} with a reason of {} bytes with {other}",
                    extension.reason.len()
                ),
            )),
        }
    }

    /// `viewer` asked for exp-`status.export_id`'s status at `sent_ms` and
    /// saw `status` at `at_ms`: judge its deadline.
    pub(super) fn deadline_shown(
        &mut self,
        viewer: usize,
        status: &ExportStatus,
        sent_ms: u64,
        at_ms: u64,
    ) {
        let export_id = status.export_id.0;
        self.deadlines.shown_ms.entry(export_id).or_insert(at_ms);
        let extended = self.deadlines.granted_by(export_id, sent_ms);
        self.judge_shown(Shown {
            status,
            viewer: Some(viewer),
            sent_ms,
            at_ms,
            extended,
        });
    }

    /// Judge one status's reason, due date and overdue flag; report the
    /// first fault, once per request.
    pub(super) fn judge_shown(&mut self, shown: Shown<'_>) {
        let Some(terms) = self.deadlines.terms else {
            return;
        };
        let export_id = shown.status.export_id.0;
        if shown.extended && shown.viewer.is_some() {
            self.deadlines.judged_on_extension(export_id);
        }
        let Some(fault) = self.deadline_fault(&shown, terms) else {
            return;
        };
        if !self.deadlines.flagged.insert(export_id) {
            return;
        }
        let detail = match shown.viewer {
            Some(p) => format!("{} saw {fault}", self.who(p)),
            None => format!("the agent saw {fault}"),
        };
        self.violate(Invariant::Liveness, shown.at_ms, None, shown.viewer, detail);
    }

    /// What is wrong with the deadline `shown`, if anything.
    fn deadline_fault(&self, shown: &Shown<'_>, terms: Terms) -> Option<String> {
        let s = shown.status;
        let export_id = s.export_id.0;
        let asked = format!("exp-{export_id}'s status (asked at {} ms)", shown.sent_ms);
        if let Some(reason) = s.extension_reason.as_deref() {
            if !self.deadlines.may_have_landed_by(export_id, shown.at_ms) {
                return Some(format!(
                    "{asked} showing the extension \"{reason}\", though no extension of exp-{export_id} was ever sent: another request's extension landed on it"
                ));
            }
            if !self
                .deadlines
                .gave_reason_by(export_id, reason, shown.at_ms)
            {
                return Some(format!(
                    "{asked} showing the extension reason \"{reason}\", which no extension of exp-{export_id} gave"
                ));
            }
        } else if shown.extended {
            return Some(format!(
                "{asked} showing no extension, though exp-{export_id}'s extension was granted before: the subject is not told why it waits"
            ));
        }
        let extension = if s.extension_reason.is_some() {
            terms.extension_ms
        } else {
            0
        };
        let due_ms = s
            .requested_at_ms
            .saturating_add(terms.deadline_ms)
            .saturating_add(extension);
        if s.due_at_ms != due_ms {
            let shows = if extension > 0 {
                "extended"
            } else {
                "not extended"
            };
            return Some(format!(
                "{asked} {shows}, due at {} for a request at {}: the due date is the request plus {} ms{}, {due_ms} (a deadline moved from the wrong base, or without its reason)",
                s.due_at_ms,
                s.requested_at_ms,
                terms.deadline_ms,
                if extension > 0 {
                    format!(" plus the extension's {extension} ms")
                } else {
                    String::new()
                }
            ));
        }
        self.overdue_flag_fault(shown, &asked)
    }

    /// A status says `overdue` exactly when it is not ready and its own
    /// due date passed before it was asked for; never before it was due.
    fn overdue_flag_fault(&self, shown: &Shown<'_>, asked: &str) -> Option<String> {
        let s = shown.status;
        let (due_first_ms, due_last_ms) = self.service_clock.span(s.due_at_ms)?;
        let must = s.state != ExportState::Ready && shown.sent_ms > due_last_ms;
        let must_not = s.state == ExportState::Ready || shown.at_ms <= due_first_ms;
        let wrong = (must && !s.overdue) || (must_not && s.overdue);
        wrong.then(|| {
            format!(
                "{asked} {:?} and {}overdue, its due date {} ms into the run",
                s.state,
                if s.overdue { "" } else { "not " },
                due_first_ms
            )
        })
    }

    /// The extended requests judged on their extended deadline, counted
    /// once each (at the end of the run).
    pub(super) fn count_extended_judged(&mut self) {
        self.controls.extended_requests_judged_on_liveness =
            self.deadlines.judged_extended.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::EPOCH_MS;
    use crate::watermark::WatermarkKey;
    use crosstalk_model::ExportId;

    const DEADLINE_MS: u64 = 600_000;
    const EXTENSION_MS: u64 = 1_200_000;

    fn oracle() -> Oracle {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into(), "b@x".into()]);
        o.learn_deadlines(DEADLINE_MS, EXTENSION_MS);
        o
    }

    /// Exp-`id` asked for at 1 s, as its status shows it at `now_ms`.
    fn status(id: u64, reason: Option<&str>, now_ms: u64) -> ExportStatus {
        let requested_at_ms = EPOCH_MS + 1_000;
        let extension = if reason.is_some() { EXTENSION_MS } else { 0 };
        let due_at_ms = requested_at_ms + DEADLINE_MS + extension;
        ExportStatus {
            export_id: ExportId(id),
            state: ExportState::Pending,
            requested_at_ms,
            due_at_ms,
            overdue: EPOCH_MS + now_ms > due_at_ms,
            extension_reason: reason.map(str::to_string),
            snapshot_at_ms: None,
            download_path: None,
            expires_at_ms: None,
            downloads_left: None,
            failure: None,
        }
    }

    fn json(status: &ExportStatus) -> Vec<u8> {
        serde_json::to_vec(status).expect("a status serializes")
    }

    const ERROR: &[u8] = br#"{"error":"conflict","message":"already extended"}"#;
    const JSON: &str = "application/json";

    /// Extend exp-`id` with `reason` at `at_ms`, answered `status`.
    fn extend(o: &mut Oracle, id: u64, reason: &str, status: Option<u16>, at_ms: u64) {
        let sent = o.on_extension_sent(id, reason, at_ms);
        let body = match status {
            Some(200) => json(&status_of(id, reason, at_ms + 5)),
            _ => ERROR.to_vec(),
        };
        o.on_extension_answered(sent, status, JSON, &body, at_ms + 5);
    }

    fn status_of(id: u64, reason: &str, now_ms: u64) -> ExportStatus {
        status(id, Some(reason.trim()), now_ms)
    }

    fn invariants(o: &Oracle) -> Vec<Invariant> {
        o.violations.iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn a_request_is_extended_once_with_a_reason_of_one_to_500_bytes() {
        let mut o = oracle();
        extend(&mut o, 1, "", Some(400), 10);
        extend(&mut o, 1, &"x".repeat(501), Some(400), 20);
        extend(&mut o, NO_SUCH_EXPORT_FROM + 7, "complex", Some(404), 30);
        extend(&mut o, 1, "complex", Some(200), 40);
        extend(&mut o, 1, "complex", Some(409), 50);
        extend(&mut o, 2, "complex", None, 60);
        extend(&mut o, 2, "complex", Some(409), 70);
        assert!(o.violations.is_empty(), "{:#?}", o.violations);
        let c = &o.controls;
        assert_eq!(c.extensions_refused_bad_reason, 2);
        assert_eq!(c.extensions_refused_unknown_export, 1);
        assert_eq!(c.extensions_granted, 1);
        assert_eq!(c.extensions_refused_twice, 1);

        let mut o = oracle();
        extend(&mut o, 1, "   ", Some(200), 10);
        extend(&mut o, NO_SUCH_EXPORT_FROM, "complex", Some(200), 20);
        extend(&mut o, 2, "complex", Some(200), 30);
        extend(&mut o, 2, "complex", Some(200), 40);
        extend(&mut o, 3, "complex", Some(409), 50);
        let expected = [
            Invariant::AgentContainment,
            Invariant::AgentContainment,
            Invariant::Liveness,
            Invariant::Liveness,
        ];
        assert_eq!(invariants(&o), expected, "{:#?}", o.violations);
    }

    #[test]
    fn a_refusal_without_a_json_error_breaks_the_contract() {
        let mut o = oracle();
        let sent = o.on_extension_sent(1, "", 10);
        o.on_extension_answered(sent, Some(400), "text/plain", b"bad", 15);
        assert_eq!(invariants(&o), [Invariant::ApiContract]);
    }

    #[test]
    fn an_extension_moves_the_first_due_date_by_two_months() {
        let mut o = oracle();
        let sent = o.on_extension_sent(1, "complex", 100_000);
        let mut wrong_base = status_of(1, "complex", 100_005);
        // Two months from the day it was granted.
        wrong_base.due_at_ms = EPOCH_MS + 100_000 + EXTENSION_MS;
        o.on_extension_answered(sent, Some(200), JSON, &json(&wrong_base), 100_005);
        assert_eq!(invariants(&o), [Invariant::Liveness]);
        assert!(o.violations[0].detail.contains("wrong base"));
    }

    #[test]
    fn a_status_shows_exactly_its_own_extension() {
        let mut o = oracle();
        extend(&mut o, 1, "complex", Some(200), 1_000);
        // Before the extension was sent, after it was granted, another request.
        o.deadline_shown(0, &status(1, None, 900), 800, 900);
        o.deadline_shown(0, &status(1, Some("complex"), 2_000), 2_000, 2_010);
        o.deadline_shown(0, &status(2, None, 2_000), 2_000, 2_010);
        assert!(o.violations.is_empty(), "{:#?}", o.violations);
        // The reason left out of a status asked for after the grant.
        o.deadline_shown(0, &status(1, None, 3_000), 3_000, 3_010);
        // Another request of the subject shows it too.
        o.deadline_shown(0, &status(2, Some("complex"), 3_000), 3_000, 3_010);
        assert_eq!(invariants(&o), [Invariant::Liveness, Invariant::Liveness]);
        o.count_extended_judged();
        assert_eq!(o.controls.extended_requests_judged_on_liveness, 1);
    }

    #[test]
    fn a_status_is_overdue_only_past_its_own_due_date() {
        let mut o = oracle();
        let late_ms = 1_000 + DEADLINE_MS + 10;
        let mut early = status(1, None, 500);
        early.overdue = true;
        o.deadline_shown(0, &early, 500, 510);
        let mut late = status(2, None, late_ms);
        late.overdue = false;
        o.deadline_shown(0, &late, late_ms, late_ms + 10);
        assert_eq!(invariants(&o), [Invariant::Liveness, Invariant::Liveness]);
    }
}
