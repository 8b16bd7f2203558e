//! Long histories walked page by page, and "delete all my history".
//!
//! A person reads their history by following the store's cursor to its
//! end; the oracle judges every item by its watermark as it arrives
//! (`Oracle::receive`) and the union at the final audit. This module adds
//! what only a walk as a whole shows: one recording on two pages of one
//! walk, or a cursor handed out twice (a loop), is a paging defect
//! (request integrity); an own recording acknowledged before the walk
//! began, with no deletion of it ever sent, that the walk never listed was
//! lost by a page or a cursor (durability, judged on every full walk, not
//! only the final audit's); and it counts the walks that went past the store's
//! page clamp, the positive control that heavy users (`plan/heavy.rs`)
//! really exercised paging.
//!
//! "Delete all" (`{"all": true}`) reuses the range deletions' judgement
//! ([`Oracle::judge_deletion`] with [`DeletionScope::All`]): every own
//! recording acknowledged before the request was sent is deleted from then
//! on, named or not; uploads still in flight go either way as the answer
//! says. When the request is sent, every own capture already started is
//! marked as having a deletion started (the outcome of a request without
//! an answer is unknown), so that the final audit never calls a recording
//! the request may have taken lost.

use super::{DeletionScope, Invariant, Oracle};
use std::collections::BTreeSet;

/// What one walk of a history has seen so far.
#[derive(Debug, Default)]
pub struct HistoryWalk {
    /// Recording ids listed by earlier pages of this walk.
    ids: BTreeSet<u64>,
    /// Cursors handed out by earlier pages of this walk.
    cursors: BTreeSet<String>,
    /// Pages read.
    pages: u64,
}

impl HistoryWalk {
    pub fn new() -> HistoryWalk {
        HistoryWalk::default()
    }

    /// Items listed so far.
    pub fn items(&self) -> usize {
        self.ids.len()
    }
}

impl Oracle {
    /// One page of `principal`'s walk listed recording `ids` and handed out
    /// `next_cursor`. Returns whether the walk may go on: a cursor handed
    /// out twice would loop forever.
    pub fn history_page(
        &mut self,
        walk: &mut HistoryWalk,
        principal: usize,
        ids: &[u64],
        next_cursor: Option<&str>,
        at_ms: u64,
    ) -> bool {
        walk.pages += 1;
        for &id in ids {
            if !walk.ids.insert(id) {
                let detail = format!(
                    "{} was given rec-{id} again on page {} of one walk of their history",
                    self.who(principal),
                    walk.pages
                );
                let nonce = self.nonce_of_recording(id);
                self.violate(
                    Invariant::RequestIntegrity,
                    at_ms,
                    nonce,
                    Some(principal),
                    detail,
                );
            }
        }
        let Some(cursor) = next_cursor else {
            return true;
        };
        if walk.cursors.insert(cursor.to_string()) {
            return true;
        }
        let detail = format!(
            "{} was handed the same history cursor twice in one walk (page {}): the walk never ends",
            self.who(principal),
            walk.pages
        );
        self.violate(
            Invariant::RequestIntegrity,
            at_ms,
            None,
            Some(principal),
            detail,
        );
        false
    }

    /// A walk `principal` began at `started_ms` reached the end of the
    /// history, having listed `listed` (nonces): every own recording
    /// acknowledged before the walk began and no deletion of which was ever
    /// sent must be in it (a page or a cursor that lost items), whatever
    /// the faults (durability holds across them).
    pub fn history_walked(
        &mut self,
        walk: &HistoryWalk,
        principal: usize,
        listed: &BTreeSet<u64>,
        started_ms: u64,
        at_ms: u64,
    ) {
        let missing: Vec<u64> = self
            .owned_by(principal)
            .filter(|(n, u)| {
                u.acked_ms.is_some_and(|ack| ack <= started_ms)
                    && u.deletion_started_ms.is_none()
                    && !listed.contains(n)
            })
            .map(|(n, _)| *n)
            .collect();
        for nonce in missing {
            let Some(u) = self.utterances.get(&nonce).cloned() else {
                continue;
            };
            let detail = format!(
                "{}; missing from a full walk of its owner's history ({} pages, {} items)",
                self.provenance(nonce, &u),
                walk.pages,
                walk.ids.len()
            );
            self.violate(
                Invariant::Durability,
                at_ms,
                Some(nonce),
                Some(principal),
                detail,
            );
        }
        self.controls.history_walks_judged_whole += 1;
    }

    /// A walk reached the end of the history: counted when it went past
    /// the store's page clamp.
    pub fn history_walk_counted(&mut self, walk: &HistoryWalk) {
        let clamp = crosstalk_store::MAX_PAGE_ITEMS;
        if walk.ids.len() > clamp && walk.pages > 1 {
            self.controls.history_walks_past_page_clamp += 1;
            self.controls.history_items_past_page_clamp += (walk.ids.len() - clamp) as u64;
        }
    }

    /// `requester` sends "delete all my history" at `sent_ms`: whatever of
    /// theirs was captured by then may go from now on.
    pub fn delete_all_sent(&mut self, requester: usize, sent_ms: u64) {
        let started: Vec<u64> = self
            .owned_by(requester)
            .filter(|(_, u)| u.upload_started_ms <= sent_ms)
            .map(|(n, _)| *n)
            .collect();
        for nonce in started {
            self.deletion_started(nonce, sent_ms);
        }
    }

    /// The store answered `requester`'s "delete all" sent at `sent_ms`,
    /// naming `named`. Judged as any deletion of scope
    /// [`DeletionScope::All`]; returns the recordings it covers (id, nonce):
    /// every own one acknowledged before the request was sent.
    pub fn delete_all_answered(
        &mut self,
        requester: usize,
        named: &[u64],
        sent_ms: u64,
        at_ms: u64,
    ) -> Vec<(u64, u64)> {
        self.judge_deletion(requester, DeletionScope::All, named, sent_ms, at_ms);
        let covered: Vec<(u64, u64)> = self
            .owned_by(requester)
            .filter(|(_, u)| u.acked_ms.is_some_and(|ack| ack <= sent_ms))
            .filter_map(|(n, u)| u.recording_id.map(|id| (id, *n)))
            .collect();
        self.controls.delete_all_requests += 1;
        self.controls.delete_all_recordings_covered += covered.len() as u64;
        covered
    }

    /// A full walk of `requester`'s history after their "delete all" was
    /// acknowledged listed none of the `covered` recordings (every item of
    /// it was judged on arrival): count them as forgotten.
    pub fn delete_all_forgotten(&mut self, covered: usize) {
        self.controls.delete_all_forgotten_by_history += covered as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Oracle;
    use crate::watermark::WatermarkKey;

    fn oracle_with_uploads(count: u64) -> Oracle {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        let p = 0;
        for n in 0..count {
            o.utterance_started(n, p, 1, 10 + n);
            o.utterance_acked(n, 100 + n, 20 + n);
        }
        o
    }

    #[test]
    fn a_recording_on_two_pages_of_one_walk_is_a_violation() {
        let mut o = oracle_with_uploads(3);
        let mut walk = HistoryWalk::new();
        assert!(o.history_page(&mut walk, 0, &[100, 101], Some("c1"), 50));
        assert!(o.history_page(&mut walk, 0, &[101, 102], None, 51));
        assert_eq!(o.violations().len(), 1, "{:?}", o.violations());
        assert_eq!(o.violations()[0].invariant, Invariant::RequestIntegrity);
    }

    #[test]
    fn a_cursor_handed_out_twice_stops_the_walk() {
        let mut o = oracle_with_uploads(3);
        let mut walk = HistoryWalk::new();
        assert!(o.history_page(&mut walk, 0, &[100], Some("c1"), 50));
        assert!(!o.history_page(&mut walk, 0, &[101], Some("c1"), 51));
        assert_eq!(o.violations().len(), 1);
    }

    #[test]
    fn a_clean_walk_past_the_clamp_is_counted_and_passes() {
        let count = crosstalk_store::MAX_PAGE_ITEMS as u64 + 20;
        let mut o = oracle_with_uploads(count);
        let mut walk = HistoryWalk::new();
        let ids: Vec<u64> = (100..100 + count).collect();
        let (first, second) = ids.split_at(crosstalk_store::MAX_PAGE_ITEMS);
        assert!(o.history_page(&mut walk, 0, first, Some("c1"), 500));
        assert!(o.history_page(&mut walk, 0, second, None, 501));
        let listed: BTreeSet<u64> = (0..count).collect();
        o.history_walked(&walk, 0, &listed, 400, 502);
        o.history_walk_counted(&walk);
        assert!(o.violations().is_empty(), "{:?}", o.violations());
        assert_eq!(o.controls.history_walks_past_page_clamp, 1);
        assert_eq!(o.controls.history_items_past_page_clamp, 20);
    }

    #[test]
    fn a_walk_that_lost_an_acknowledged_recording_is_a_violation() {
        let mut o = oracle_with_uploads(3);
        let mut walk = HistoryWalk::new();
        assert!(o.history_page(&mut walk, 0, &[100, 101], None, 50));
        let listed: BTreeSet<u64> = [0, 1].into_iter().collect();
        o.history_walked(&walk, 0, &listed, 40, 51);
        assert_eq!(o.violations().len(), 1, "{:?}", o.violations());
        assert_eq!(o.violations()[0].invariant, Invariant::Durability);
        // Acknowledged after the walk began, or with a deletion sent: either way.
        let mut o = oracle_with_uploads(3);
        o.deletion_started(2, 30);
        o.history_walked(&walk, 0, &listed, 40, 51);
        assert!(o.violations().is_empty(), "{:?}", o.violations());
        let mut o = oracle_with_uploads(3);
        o.history_walked(&walk, 0, &listed, 21, 51);
        assert!(o.violations().is_empty(), "{:?}", o.violations());
    }

    #[test]
    fn delete_all_covers_what_was_acknowledged_before_it_and_nothing_after() {
        let mut o = oracle_with_uploads(3);
        // A fourth upload starts before the request and is acknowledged after it.
        o.utterance_started(3, 0, 1, 30);
        o.delete_all_sent(0, 40);
        o.utterance_acked(3, 103, 45);
        let covered = o.delete_all_answered(0, &[100, 101], 40, 50);
        assert_eq!(covered, vec![(100, 0), (101, 1), (102, 2)]);
        assert!(o.violations().is_empty());
        // The survivor of the race is unknown: its final audit may miss it.
        let listed: BTreeSet<u64> = [2].into_iter().collect();
        o.audit_history(0, &listed, 60, 61);
        let kinds: Vec<Invariant> = o.violations().iter().map(|v| v.invariant).collect();
        assert_eq!(kinds, vec![Invariant::Erasure], "{:?}", o.violations());
    }
}
