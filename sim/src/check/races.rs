//! Verdicts the real-threads harness (`sim/src/threads/`) needs beyond the
//! simulator's: answers to requests that ran in parallel with writes of the
//! same recordings, judged by the client-side order of sends and answers.
//!
//! Times here are the harness's monotonic counter: an answer observed at
//! `t` happened before every request sent at a later count. So a deletion
//! acknowledged before a request was sent binds that request (erasure), an
//! upload acknowledged before it binds it too (durability), and a write
//! whose interval overlaps the request's raced it: either answer is
//! allowed, and the race is counted (`requests_raced`), so that a run in
//! which nothing raced cannot pass as "no race bug". Probes sent after every
//! writer stopped (`quiescent_probes`) are where a stale cache entry or a
//! recording a closing forgot shows.

use super::{Invariant, Oracle};
use crate::watermark::Decoded;

impl Oracle {
    /// A request about `nonce` was sent at `sent_ms` and answered at
    /// `at_ms`: count it as raced when a deletion of `nonce` was in flight
    /// meanwhile (sent before the answer, not acknowledged before the send).
    pub fn on_request_about(&mut self, nonce: u64, sent_ms: u64, at_ms: u64) {
        let Some(u) = self.utterances.get(&nonce) else {
            return;
        };
        let started = u.deletion_started_ms.is_some_and(|s| s <= at_ms);
        let not_done_before = u.deletion_acked_ms.is_none_or(|a| a >= sent_ms);
        if started && not_done_before {
            self.controls.requests_raced += 1;
        } else if u.deletion_acked_ms.is_some_and(|a| a < sent_ms) {
            self.controls.requests_after_deletion_acked += 1;
        }
    }

    /// `principal` asked at `sent_ms` for their own `nonce` (playback or a
    /// deletion of one recording) and was told at `at_ms` that it does not
    /// exist. Only a deletion sent before the answer, or an upload not yet
    /// acknowledged when the request was sent, explains that.
    #[allow(clippy::too_many_arguments)]
    pub fn on_own_recording_refused(
        &mut self,
        principal: usize,
        nonce: u64,
        channel: &str,
        sent_ms: u64,
        at_ms: u64,
        quiescent: bool,
    ) {
        self.controls.refusals_of_own_things_judged += 1;
        if quiescent {
            self.controls.quiescent_probes += 1;
        }
        let Some(u) = self.utterances.get(&nonce).cloned() else {
            return;
        };
        let acked_before = u.acked_ms.is_some_and(|a| a < sent_ms);
        let deletion_before_answer = u.deletion_started_ms.is_some_and(|s| s <= at_ms);
        if u.owner == principal && acked_before && !deletion_before_answer {
            let detail = format!(
                "{}; {channel} sent at {sent_ms} answered 404 (no such recording) at {at_ms}, no deletion of it sent before",
                self.provenance(nonce, &u)
            );
            self.violate(
                Invariant::Durability,
                at_ms,
                Some(nonce),
                Some(principal),
                detail,
            );
        }
    }

    /// `principal` played back their own `nonce` and got `decoded`: judged
    /// like any delivery, and it must be exactly that recording.
    /// `quiescent`: sent after every writer stopped.
    #[allow(clippy::too_many_arguments)]
    pub fn on_own_playback(
        &mut self,
        principal: usize,
        nonce: u64,
        decoded: &Decoded,
        channel: &str,
        sent_ms: u64,
        at_ms: u64,
        quiescent: bool,
    ) {
        self.controls.own_audio_checked += 1;
        if quiescent {
            self.controls.quiescent_probes += 1;
        }
        self.receive(principal, channel, decoded, sent_ms, at_ms);
        if decoded.nonces != [nonce] {
            let detail = format!(
                "{channel}: asked for utterance {nonce:016x} but received {:?}",
                decoded.nonces
            );
            self.violate(
                Invariant::RequestIntegrity,
                at_ms,
                Some(nonce),
                Some(principal),
                detail,
            );
        }
    }

    /// A probe sent after every writer stopped: what `principal`'s data
    /// looked like through `channel`. Judged like any delivery (a deleted
    /// recording in it is an erasure violation) and counted.
    pub fn on_quiescent_probe(
        &mut self,
        principal: usize,
        channel: &str,
        decoded: &Decoded,
        sent_ms: u64,
        at_ms: u64,
    ) {
        self.controls.quiescent_probes += 1;
        self.receive(principal, channel, decoded, sent_ms, at_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    fn oracle_with_one_recording() -> Oracle {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        o.utterance_started(7, 0, 0, 1);
        o.utterance_acked(7, 70, 2);
        o
    }

    #[test]
    fn a_request_overlapping_a_deletion_counts_as_raced() {
        let mut o = oracle_with_one_recording();
        o.on_request_about(7, 3, 4);
        assert_eq!(o.controls.requests_raced, 0, "no deletion at all");
        o.deletion_started(7, 5);
        o.deletion_acked(7, 8);
        o.on_request_about(7, 6, 7);
        o.on_request_about(7, 4, 9);
        assert_eq!(o.controls.requests_raced, 2);
        o.on_request_about(7, 9, 10);
        assert_eq!(o.controls.requests_raced, 2, "sent after the ack");
        assert_eq!(o.controls.requests_after_deletion_acked, 1);
    }

    #[test]
    fn an_own_recording_refused_is_excused_only_by_a_deletion_or_an_upload_in_flight() {
        let mut o = oracle_with_one_recording();
        o.on_own_recording_refused(0, 7, "playback", 2, 3, false);
        assert!(o.violations.is_empty(), "the upload's ack was not seen yet");
        o.on_own_recording_refused(0, 7, "playback", 3, 4, false);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.violations[0].invariant, Invariant::Durability);
        o.deletion_started(7, 5);
        o.on_own_recording_refused(0, 7, "playback", 4, 6, true);
        assert_eq!(
            o.violations.len(),
            1,
            "a deletion was sent before the answer"
        );
        assert_eq!(o.controls.refusals_of_own_things_judged, 3);
    }

    #[test]
    fn a_quiescent_probe_that_finds_deleted_audio_is_an_erasure_violation() {
        let mut o = oracle_with_one_recording();
        o.deletion_started(7, 3);
        o.deletion_acked(7, 4);
        let decoded = Decoded {
            nonces: vec![7],
            invalid_marks: 0,
        };
        o.on_quiescent_probe(0, "playback", &decoded, 5, 6);
        assert_eq!(o.controls.quiescent_probes, 1);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.violations[0].invariant, Invariant::Erasure);
    }
}
