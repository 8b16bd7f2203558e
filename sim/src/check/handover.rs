//! Verdicts on a support ticket verified across an address handover: its
//! opener held the address when the challenge was sent and read the code
//! from their own feed, then closed the account (acknowledged), and someone
//! else signed up with the released address before the opener verified.
//!
//! The contract: a ticket is bound to the account the address belonged to
//! when it was opened (`crates/export/src/tickets.rs`). Its verification
//! may accept an export of *that* account — closed, holding nothing, and
//! downloadable by nobody (a closed account cannot sign in) — or refuse;
//! it must never reach the address's new holder. Nobody but a subject can
//! download an export, so such a misbinding shows where the new holder
//! looks: an export of their recordings they never asked for, announced
//! on their own feed. The new holder (the innocent newcomer) never asks
//! for an export; every link their feed gives that downloads is judged by
//! the watermark: the archive holds the new holder's recordings, made by a
//! verification only the old holder could do — the old holder's code, sent
//! after the handover, impersonated the new holder (identity epochs, judged
//! as agent containment: an impersonation reached someone's data). The
//! counts of verifications and feed reads are the positive controls that
//! the path ran.

use super::{Invariant, Oracle};
use http::StatusCode;
use std::collections::BTreeMap;

/// The summary's counter (`Controls::probes`): verification answers judged
/// (within the contract / all).
pub const VERIFIED_AFTER_HANDOVER: &str =
    "ticket handover: tickets verified after their address changed hands";
/// The summary's counter: the new holder's feed reads judged (with no
/// unasked export / all).
pub const NEWCOMER_FEED: &str =
    "ticket handover: new holders' feeds read for exports they never asked for";

/// What a verification across a handover may answer: an export of the old,
/// closed account (200), or a refusal.
const ALLOWED: &[u16] = &[200, 403, 404, 410];

/// The old holder `opener` sent, at `sent_ms`, the code of `ticket_id`
/// (read from their own feed before closing), after `new_holder` signed up
/// with the address; answered `status` at `at_ms`.
#[derive(Clone, Copy, Debug)]
pub struct HandoverVerification {
    pub opener: usize,
    pub new_holder: usize,
    pub ticket_id: u64,
    pub status: StatusCode,
    pub sent_ms: u64,
    pub at_ms: u64,
}

/// The verifications sent across a handover, by the address's new holder.
#[derive(Debug, Default)]
pub struct HandoverLedger {
    by_new_holder: BTreeMap<usize, HandoverVerification>,
}

impl Oracle {
    /// Judge the answer to a verification sent across a handover. Before
    /// the old holder's closing was acknowledged nothing is judged (the
    /// workload closes first, so that only happens if it misreports).
    pub fn on_handover_verification(&mut self, v: HandoverVerification) {
        let closed_before = self
            .closed
            .closed_at(v.opener)
            .is_some_and(|closed| closed <= v.sent_ms);
        if !closed_before {
            return;
        }
        self.handover.by_new_holder.insert(v.new_holder, v);
        let status = v.status.as_u16();
        let entry = self
            .controls
            .probes
            .entry(VERIFIED_AFTER_HANDOVER)
            .or_default();
        entry.attempted += 1;
        if ALLOWED.contains(&status) {
            // Refused, or an export of the closed account: the contract kept.
            entry.refused += 1;
            return;
        }
        let detail = format!(
            "{} verified ticket {} with its own code after closing the account and {} signing up with the address: answered {status}, where only {ALLOWED:?} (an export of the closed account, or a refusal) is the contract",
            self.who(v.opener),
            v.ticket_id,
            self.who(v.new_holder),
        );
        self.violate(
            Invariant::RequestIntegrity,
            v.at_ms,
            None,
            Some(v.opener),
            detail,
        );
    }

    /// A new holder who never asked for an export read their feed and
    /// found `links` download links in it.
    pub fn on_newcomer_feed_read(&mut self, links: usize) {
        let entry = self.controls.probes.entry(NEWCOMER_FEED).or_default();
        entry.attempted += 1;
        if links == 0 {
            entry.refused += 1;
        }
    }

    /// `newcomer`, who never asked for an export, followed a link of their
    /// feed (notification `seq`) and got `status` with `body` at `at_ms`.
    /// A download is an export of them someone else's request made.
    pub fn on_unasked_download(
        &mut self,
        newcomer: usize,
        seq: u64,
        status: StatusCode,
        body: &[u8],
        at_ms: u64,
    ) {
        if status != StatusCode::OK {
            return;
        }
        let own: std::collections::BTreeSet<u64> = match self.read_archive(body) {
            Ok(contents) => contents
                .audio
                .iter()
                .chain(&contents.text)
                .copied()
                .filter(|n| self.utterances.get(n).is_some_and(|u| u.owner == newcomer))
                .collect(),
            Err(_) => Default::default(),
        };
        let cause = match self.handover.by_new_holder.get(&newcomer) {
            Some(v) => format!(
                ": ticket {} that {} opened for the address before closing that account was verified with its code at {} ms, after the address changed hands, and answered {} with the new holder's data",
                v.ticket_id,
                self.who(v.opener),
                v.sent_ms,
                v.status.as_u16()
            ),
            None => String::new(),
        };
        let detail = format!(
            "{} never asked for an export, yet the link of notification {seq} in their feed downloaded an archive holding {} of their own recordings{cause}",
            self.who(newcomer),
            own.len(),
        );
        self.violate(
            Invariant::AgentContainment,
            at_ms,
            own.first().copied(),
            Some(newcomer),
            detail,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    fn oracle() -> Oracle {
        let emails = vec!["old@x.test".into(), "old@x.test".into()];
        let mut oracle = Oracle::new(WatermarkKey::for_seed(1), emails);
        oracle.account_closed(0, 100);
        oracle
    }

    fn verification(status: StatusCode, sent_ms: u64) -> HandoverVerification {
        HandoverVerification {
            opener: 0,
            new_holder: 1,
            ticket_id: 7,
            status,
            sent_ms,
            at_ms: sent_ms + 5,
        }
    }

    #[test]
    fn an_export_of_the_closed_account_or_a_refusal_is_the_contract() {
        let mut o = oracle();
        o.on_handover_verification(verification(StatusCode::OK, 200));
        o.on_handover_verification(verification(StatusCode::GONE, 300));
        assert!(o.violations().is_empty());
        let counted = o.controls().probes[VERIFIED_AFTER_HANDOVER];
        assert_eq!((counted.refused, counted.attempted), (2, 2));
        o.on_handover_verification(verification(StatusCode::CONFLICT, 400));
        assert_eq!(o.violations().len(), 1);
    }

    #[test]
    fn a_verification_before_the_close_is_not_judged() {
        let mut o = oracle();
        o.on_handover_verification(verification(StatusCode::CONFLICT, 50));
        assert!(o.violations().is_empty());
        assert!(!o.controls().probes.contains_key(VERIFIED_AFTER_HANDOVER));
    }

    #[test]
    fn a_download_the_new_holder_never_asked_for_is_a_violation() {
        let mut o = oracle();
        o.on_handover_verification(verification(StatusCode::OK, 200));
        o.on_newcomer_feed_read(0);
        o.on_unasked_download(1, 3, StatusCode::GONE, b"", 500);
        o.on_unasked_download(1, 3, StatusCode::FORBIDDEN, b"", 500);
        assert!(o.violations().is_empty());
        o.on_newcomer_feed_read(1);
        o.on_unasked_download(1, 4, StatusCode::OK, b"not a zip", 600);
        assert_eq!(o.violations().len(), 1);
        assert_eq!(o.violations()[0].invariant, Invariant::AgentContainment);
        assert!(o.violations()[0].detail.contains("ticket 7"));
        let feed = o.controls().probes[NEWCOMER_FEED];
        assert_eq!((feed.refused, feed.attempted), (1, 2));
    }
}
