//! Uploads whose answer was lost, and the orders spoken in them.
//!
//! A device that sent a capture and got no answer (a 503 after the commit,
//! a timeout, a lost reply) does not know whether the store kept it; if the
//! device is then reset, its buffer is gone and no retry ever learns the
//! recording's id. The store may still hold the capture, and a purchase
//! spoken in it becomes an order whose source id the oracle never saw
//! acknowledged (chaos seed 29 with the key-reuse probe: "order 22 comes
//! from rec-206, which nobody uploaded", where rec-206 was the owner's own
//! "alexa, order headphones", stored, its answer a 503, its device reset).
//!
//! Such an id is attributed by ground truth only: the owner's own history
//! listing shows the recording with its watermark, which names the capture
//! (`own_listing_named`). An order whose source no acknowledgement and no
//! listing names is excused only while its principal has a capture sent
//! without an answer that nothing has named yet (it may be that one);
//! otherwise it comes from a recording nobody uploaded.

use super::Oracle;
use std::collections::{BTreeMap, BTreeSet};

/// Captures sent without an answer, and the ids their owners' listings
/// named them under.
#[derive(Debug, Default)]
pub(super) struct UnansweredLedger {
    /// Nonces of captures sent at least once without an answer.
    sent_unanswered: BTreeSet<u64>,
    /// Recording id -> the never-acknowledged nonce its owner's own listing
    /// showed under it (by the watermark).
    named_by_listing: BTreeMap<u64, u64>,
}

/// Where an order's source recording came from, as far as the oracle knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OrderSource {
    /// This capture (acknowledged, or named by its owner's listing).
    Capture(u64),
    /// Unnamed, but the principal sent a capture without an answer that
    /// nothing has named yet: it may be that one.
    MaybeUnanswered,
    /// No capture of anyone's can be behind it.
    Nobody,
}

impl Oracle {
    /// `nonce`'s upload was sent and no answer came back: the store may
    /// hold it though the device never learns its id.
    pub fn upload_unanswered(&mut self, nonce: u64) {
        self.unanswered.sent_unanswered.insert(nonce);
    }

    /// `owner`'s own history listing showed recording `recording_id` with
    /// the watermark of `nonce`. A capture of theirs sent without an answer
    /// and never acknowledged is known by that id from now on.
    pub fn own_listing_named(&mut self, owner: usize, recording_id: u64, nonce: u64) {
        let unacked_own = self
            .utterances
            .get(&nonce)
            .is_some_and(|u| u.owner == owner && u.recording_id.is_none());
        if !unacked_own
            || !self.unanswered.sent_unanswered.contains(&nonce)
            || self.nonce_of_recording(recording_id).is_some()
        {
            return;
        }
        if let std::collections::btree_map::Entry::Vacant(slot) =
            self.unanswered.named_by_listing.entry(recording_id)
        {
            slot.insert(nonce);
            self.controls.unanswered_uploads_named_by_listing += 1;
        }
    }

    /// The capture behind an order's source recording `recording_id`, for
    /// `principal`'s order listing.
    pub(super) fn order_source(&mut self, principal: usize, recording_id: u64) -> OrderSource {
        if let Some(nonce) = self.nonce_of_recording(recording_id) {
            return OrderSource::Capture(nonce);
        }
        if let Some(&nonce) = self.unanswered.named_by_listing.get(&recording_id) {
            self.controls.orders_from_unanswered_uploads += 1;
            return OrderSource::Capture(nonce);
        }
        let named: BTreeSet<u64> = self.unanswered.named_by_listing.values().copied().collect();
        let unnamed = self.unanswered.sent_unanswered.iter().any(|nonce| {
            !named.contains(nonce)
                && self
                    .utterances
                    .get(nonce)
                    .is_some_and(|u| u.owner == principal && u.recording_id.is_none())
        });
        if unnamed {
            self.controls.orders_of_unknown_uploads_excused += 1;
            OrderSource::MaybeUnanswered
        } else {
            OrderSource::Nobody
        }
    }
}
