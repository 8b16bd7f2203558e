//! Downloads whose erasure check could not reach the store.
//!
//! Before serving an archive the export service asks the store which of
//! its recordings are still live; when the store cannot answer it must
//! refuse. The person of `workload/limits.rs` (`download_while_store_down`)
//! deletes a recording of a ready archive and clicks its link again while
//! the store loses power as the download's live check reaches it
//! (`faults/live_check.rs`). What was served is judged like every delivery
//! (a deleted recording in it is an erasure violation); this ledger only
//! counts the positive control, by ground truth: the deletion the store
//! acknowledged before the download was sent (the utterance's
//! `deletion_acked_ms`), and a live check cut off at the store's door (the
//! power gone as it arrived) inside the download's exchange. The services'
//! answers play no part.

use super::Oracle;

/// One download of the probe: after deleting which utterance, when
/// it was sent and when its answer arrived (or the client gave up).
#[derive(Clone, Debug)]
struct Probe {
    nonce: u64,
    sent_ms: u64,
    ended_ms: u64,
}

#[derive(Debug, Default)]
pub(super) struct LiveCheckLedger {
    /// When the store's door cut off an armed live check (power gone).
    cut_off_ms: Vec<u64>,
    probes: Vec<Probe>,
}

impl Oracle {
    /// The store lost power as an armed live check reached its door, at
    /// `at_ms` (`faults/live_check.rs`, applied by the world).
    pub fn on_live_check_cut_off(&mut self, at_ms: u64) {
        self.live_check.cut_off_ms.push(at_ms);
    }

    /// A person who deleted the recording of utterance `nonce` clicked
    /// their archive's link again at `sent_ms`; its answer arrived (or the
    /// client gave up) at `ended_ms`.
    pub fn on_download_after_deletion(&mut self, nonce: u64, sent_ms: u64, ended_ms: u64) {
        self.live_check.probes.push(Probe {
            nonce,
            sent_ms,
            ended_ms,
        });
    }

    /// Count the probes whose live check the store's door cut off.
    pub(super) fn count_live_check_probes(&mut self) {
        let probes = std::mem::take(&mut self.live_check.probes);
        for p in probes {
            let deleted_before = self
                .utterances
                .get(&p.nonce)
                .and_then(|u| u.deletion_acked_ms)
                .is_some_and(|acked| acked < p.sent_ms);
            let down = self
                .live_check
                .cut_off_ms
                .iter()
                .any(|&at| p.sent_ms <= at && at <= p.ended_ms);
            if deleted_before && down {
                self.controls.downloads_while_store_down_after_deletion += 1;
            }
        }
    }
}
