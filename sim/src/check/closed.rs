//! Nothing is stored for an account after its closing was acknowledged.
//!
//! Closing an account deletes everything it holds, and the store says so.
//! A capture made before a device was sold belongs to the seller even when
//! the buyer's hands upload it later (ownership epochs); if the seller has
//! closed their account by then, the capture has no one to belong to and
//! the store must refuse it (410). The oracle remembers when each
//! principal's closing was acknowledged; an upload of one of their
//! utterances *sent* after that and answered 2xx means the store took (or
//! kept) a recording for a closed account: an erasure violation, invisible
//! to every listing (nobody can sign in as a closed account), which is why
//! it is judged at the upload's answer. Refusals are counted as the
//! positive control that the path ran.

use super::{Invariant, Oracle};
use std::collections::BTreeMap;

/// When each principal's closing was acknowledged (simulated ms).
#[derive(Debug, Default)]
pub struct ClosedLedger {
    closed_at: BTreeMap<usize, u64>,
}

impl ClosedLedger {
    /// When `principal`'s account closing was first acknowledged.
    pub(super) fn closed_at(&self, principal: usize) -> Option<u64> {
        self.closed_at.get(&principal).copied()
    }

    pub(super) fn note(&mut self, principal: usize, at_ms: u64) {
        self.closed_at.entry(principal).or_insert(at_ms);
    }
}

impl Oracle {
    /// The store answered 2xx at `at_ms` to an upload of `nonce` sent at
    /// `sent_ms` (the first attempt of this exchange).
    pub fn on_upload_accepted(&mut self, nonce: u64, sent_ms: u64, at_ms: u64) {
        let Some(owner) = self.utterances.get(&nonce).map(|u| u.owner) else {
            return;
        };
        let Some(&closed_ms) = self.closed.closed_at.get(&owner) else {
            return;
        };
        self.controls.uploads_for_closed_accounts_judged += 1;
        if sent_ms <= closed_ms {
            return;
        }
        let Some(u) = self.utterances.get(&nonce).cloned() else {
            return;
        };
        let detail = format!(
            "{}; uploaded at {sent_ms} ms and accepted, though its owner's account closing was acknowledged at {closed_ms} ms",
            self.provenance(nonce, &u)
        );
        self.violate(Invariant::Erasure, at_ms, Some(nonce), None, detail);
    }

    /// The store refused an upload of `nonce` with 410: the account that
    /// owned its device when it was captured is closed.
    pub fn on_upload_refused_owner_closed(&mut self, nonce: u64) {
        if let Some(owner) = self.utterances.get(&nonce).map(|u| u.owner)
            && self.closed.closed_at.contains_key(&owner)
        {
            self.controls.uploads_for_closed_accounts_judged += 1;
            self.controls.uploads_refused_owner_closed += 1;
        }
    }
}

/// What a sold device's flush under its buyer did with a seller's
/// captures (moving out, `workload/handover.rs`).
#[derive(Clone, Copy, Debug, Default)]
pub struct MovedOutFlush {
    /// Captures that left the device's buffer (stored or refused).
    pub answered: u64,
    /// Spoken orders and messages among them.
    pub intents: u64,
    /// The flush began after the seller's closing was acknowledged.
    pub after_close: bool,
}

impl Oracle {
    /// The recording id the store gave `nonce`'s upload (what the device
    /// that uploaded it was told), if it was answered.
    pub fn recording_told(&self, nonce: u64) -> Option<u64> {
        self.utterances.get(&nonce).and_then(|u| u.recording_id)
    }

    /// A sold device flushed a seller's captures under its buyer.
    pub fn on_moved_out_flush(&mut self, flush: MovedOutFlush) {
        self.controls.moved_out_intents_flushed += flush.intents;
        if flush.after_close {
            self.controls.moved_out_captures_flushed_after_close += flush.answered;
        }
    }

    /// The buyer of a moved-out seller's device read their orders and
    /// outgoing messages after its flush (each judged as it was read).
    pub fn on_moving_in_listings_judged(&mut self) {
        self.controls.moving_in_listings_judged += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    #[test]
    fn an_upload_sent_after_its_owner_closed_must_be_refused() {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into(), "b@x".into()]);
        o.utterance_started(7, 0, 1, 10);
        o.utterance_started(8, 0, 1, 11);
        o.account_closed(0, 100);
        // Sent before the closing was acknowledged: either way.
        o.on_upload_accepted(7, 90, 120);
        assert!(o.violations.is_empty());
        o.on_upload_refused_owner_closed(8);
        assert_eq!(o.controls.uploads_refused_owner_closed, 1);
        // Sent after: the store took a recording for a closed account.
        o.on_upload_accepted(8, 130, 140);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.violations[0].invariant, Invariant::Erasure);
    }
}
