//! Downloads whose erasure check could not reach the store.
//!
//! Before serving an archive the export service asks the store which of
//! its recordings are still live; when the store cannot answer it must
//! refuse. The person of `workload/limits.rs` (`download_while_store_down`)
//! deletes a recording of a ready archive and clicks its link again while
//! the store loses power between the two calls the download makes to it
//! (`faults/live_check.rs`). What was served is judged like every delivery
//! (a deleted recording in it is an erasure violation); this ledger only
//! counts the positive control, by ground truth: the deletion the store
//! acknowledged before the download was sent (the utterance's
//! `deletion_acked_ms`), and
//! the store host down from a moment inside the download's exchange until
//! after its answer arrived (the world's crash windows, `on_host_down`),
//! so that the export service's live check, made between the two, found
//! the store down. The services' answers play no part.

use super::Oracle;
use crate::net::STORE_HOST;

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
    /// The store host's down windows: (power gone, back).
    store_down: Vec<(u64, u64)>,
    probes: Vec<Probe>,
}

impl Oracle {
    /// Host `host` was down from `since_ms` until `until_ms` (the world's
    /// crash schedule as applied).
    pub fn on_host_down(&mut self, host: &str, since_ms: u64, until_ms: u64) {
        if host == STORE_HOST {
            self.live_check.store_down.push((since_ms, until_ms));
        }
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

    /// Count the probes whose live check surely found the store down.
    pub(super) fn count_live_check_probes(&mut self) {
        let probes = std::mem::take(&mut self.live_check.probes);
        for p in probes {
            let deleted_before = self
                .utterances
                .get(&p.nonce)
                .and_then(|u| u.deletion_acked_ms)
                .is_some_and(|acked| acked <= p.sent_ms);
            let down = self
                .live_check
                .store_down
                .iter()
                .any(|&(since, until)| p.sent_ms <= since && since <= p.ended_ms && p.ended_ms < until);
            if deleted_before && down {
                self.controls.downloads_while_store_down_after_deletion += 1;
            }
        }
    }
}
