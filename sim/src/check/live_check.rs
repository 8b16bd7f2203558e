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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    /// An oracle whose person 0 recorded utterance 7 (recording 70) and had
    /// its deletion acknowledged at 1 000 ms.
    fn oracle() -> Oracle {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        o.utterance_started(7, 0, 0, 1);
        o.utterance_acked(7, 70, 2);
        o.deletion_started(7, 900);
        o.deletion_acked(7, 1_000);
        o
    }

    fn counted(o: &mut Oracle) -> u64 {
        o.count_live_check_probes();
        o.controls.downloads_while_store_down_after_deletion
    }

    #[test]
    fn a_download_whose_live_check_was_cut_off_after_the_deletion_counts() {
        let mut o = oracle();
        o.on_download_after_deletion(7, 2_000, 2_100);
        o.on_live_check_cut_off(2_050);
        assert_eq!(counted(&mut o), 1);
    }

    #[test]
    fn nothing_counts_without_the_ground_truth() {
        // No power loss inside the exchange (the services' answer is not asked).
        let mut o = oracle();
        o.on_download_after_deletion(7, 2_000, 2_100);
        o.on_live_check_cut_off(1_990);
        o.on_live_check_cut_off(2_101);
        assert_eq!(counted(&mut o), 0);
        // The deletion acknowledged in the same millisecond as the click
        // (the oracle cannot order them), or never.
        let mut o = oracle();
        o.on_download_after_deletion(7, 1_000, 1_100);
        o.on_live_check_cut_off(1_050);
        assert_eq!(counted(&mut o), 0);
        let mut o = oracle();
        o.on_download_after_deletion(8, 2_000, 2_100);
        o.on_live_check_cut_off(2_050);
        assert_eq!(counted(&mut o), 0);
    }
}
