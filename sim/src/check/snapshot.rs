//! An archive is exact for the snapshot it claims.
//!
//! Every archive's manifest names its snapshot time (`snapshot_at_ms`). The
//! oracle does not take that time as the truth about which recordings the
//! archive should hold (that stays `check_archive`'s window, from the
//! client's own request and ready times); it holds the claim to account.
//! A recording whose upload the subject's device saw acknowledged at or
//! before the claimed snapshot (or whose upload the store answered by then,
//! as the simulator saw at the store's door: `upload_watch.rs`; the bound is
//! inclusive) reached the store before it, so the archive
//! must hold it unless a deletion of it had started by the time the archive
//! was seen ready; a recording whose first upload attempt began after the
//! claimed snapshot cannot have reached the store by then, so the archive
//! must not hold it. A snapshot claimed after the archive was seen ready is
//! impossible. Both services and every client share the simulated clock
//! (the services see it from the simulated epoch, `net::EPOCH_MS`), so the
//! times compare exactly.

use super::{ArchiveContents, Invariant, Oracle, Presence, Utterance};
use std::collections::BTreeSet;

/// How a service's clock reads in the oracle's times: a service millisecond
/// `t` is the oracle's `(t - epoch_ms) * per_ms` up to `per_ms - 1` later.
/// The simulator's services count from the simulated epoch in the
/// simulator's milliseconds (`per_ms` 1); a fuzz driver that orders many
/// observations within one service millisecond gives each its own oracle
/// time (`per_ms` > 1), so a claim names a span, not an instant.
#[derive(Clone, Copy, Debug)]
pub struct ServiceClock {
    pub epoch_ms: u64,
    pub per_ms: u64,
}

impl Default for ServiceClock {
    fn default() -> Self {
        Self {
            epoch_ms: crate::net::EPOCH_MS,
            per_ms: 1,
        }
    }
}

impl ServiceClock {
    /// The span of oracle times a service time `at_ms` may stand for.
    pub(super) fn span(&self, at_ms: u64) -> Option<(u64, u64)> {
        let since = at_ms.checked_sub(self.epoch_ms)?;
        let first = since.checked_mul(self.per_ms)?;
        Some((first, first + self.per_ms.max(1) - 1))
    }
}

impl Oracle {
    /// Learn when the store answered each upload, as seen at its door
    /// (`upload_watch.rs`): a recording answered by the claimed snapshot
    /// must be in it, even when its device heard the answer only later.
    pub fn learn_upload_door(&mut self, door: crate::upload_watch::UploadDoor) {
        self.upload_door = Some(door);
    }

    /// How the services' clock reads in this oracle's times (the default is
    /// the simulator's: the simulated epoch, one oracle ms per service ms).
    pub fn set_service_clock(&mut self, clock: ServiceClock) {
        self.service_clock = clock;
    }

    /// Judge `contents` (downloaded by `subject` on `channel`, its export
    /// seen ready at `ready_seen_ms`) against its manifest's snapshot claim.
    pub(super) fn judge_snapshot_claim(
        &mut self,
        subject: usize,
        channel: &str,
        contents: &ArchiveContents,
        ready_seen_ms: u64,
        at_ms: u64,
    ) {
        let clock = self.service_clock;
        let Some((claimed, claimed_latest)) = contents.snapshot_at_ms.and_then(|at| clock.span(at))
        else {
            return;
        };
        self.controls.snapshot_claims_judged += 1;
        if claimed > ready_seen_ms {
            let detail = format!(
                "{channel}: the manifest claims a snapshot at {claimed} ms, after the export was seen ready at {ready_seen_ms} ms"
            );
            self.violate(Invariant::Exactness, at_ms, None, Some(subject), detail);
            return;
        }
        let present: BTreeSet<u64> = contents.audio.iter().copied().collect();
        let door = self.upload_door.clone().unwrap_or_default();
        let door = door.lock().unwrap_or_else(|p| p.into_inner());
        let stored = |u: &Utterance| u.recording_id.and_then(|id| door.get(&id).copied());
        self.controls.uploads_stored_at_snapshot_tick += self
            .owned_by(subject)
            .filter(|(_, u)| stored(u) == Some(claimed) && u.acked_ms.is_some_and(|a| a > claimed))
            .count() as u64;
        self.judge_presence(subject, &present, at_ms, |u, present| {
            let why = match (
                claim_on(u, stored(u), (claimed, claimed_latest), ready_seen_ms),
                present,
            ) {
                (Some(true), false) if u.acked_ms.is_some_and(|ack| ack <= claimed) => {
                    "missing, though its upload was acknowledged by then"
                }
                (Some(true), false) => {
                    "missing, though the store had answered its upload by then (seen at its door)"
                }
                (Some(false), true) => "present, though its upload began only after it",
                (None, _) => return Presence::Either,
                _ => return Presence::Right,
            };
            Presence::Wrong(format!(
                "{channel} claims a snapshot at {claimed} ms and has it {why}"
            ))
        });
    }
}

impl Oracle {
    /// Count `subject`'s uploads acknowledged after their export was
    /// requested (at `requested_at_ms`; 0: unknown, nothing is counted) and
    /// by the time it was seen ready: the positive control that uploads
    /// raced the build whose snapshot claim was judged.
    pub(super) fn count_raced_uploads(
        &mut self,
        subject: usize,
        requested_at_ms: u64,
        ready_seen_ms: u64,
    ) {
        if requested_at_ms == 0 {
            return;
        }
        let raced = self
            .owned_by(subject)
            .filter(|(_, u)| {
                u.acked_ms
                    .is_some_and(|ack| ack > requested_at_ms && ack <= ready_seen_ms)
            })
            .count();
        self.controls.uploads_raced_export_build += raced as u64;
    }
}

/// What a snapshot at some time within `(earliest, latest)` says of `u`
/// (whose upload the store answered at `stored_ms`, if seen at its door):
/// `Some(true)` it must be in the archive, `Some(false)` it must not,
/// `None` either way (a deletion of it raced the build, or its upload raced
/// the snapshot). The bound is inclusive: the store received a recording
/// it answered at the snapshot's very ms by then.
fn claim_on(
    u: &Utterance,
    stored_ms: Option<u64>,
    (earliest, latest): (u64, u64),
    ready_seen_ms: u64,
) -> Option<bool> {
    if u.deletion_started_ms.is_some_and(|at| at <= ready_seen_ms) {
        return None;
    }
    let stored_by = match (u.acked_ms, stored_ms) {
        (Some(ack), Some(stored)) => Some(ack.min(stored)),
        (ack, stored) => ack.or(stored),
    };
    if stored_by.is_some_and(|at| at <= earliest) {
        Some(true)
    } else if u.upload_started_ms > latest {
        Some(false)
    } else {
        None
    }
}

impl Oracle {
    /// `principal`'s export request was answered 200 at `at_ms`: joined to
    /// export `export_id`, shown in `state`. The contract joins a request
    /// only to an export still being built (pending), whose snapshot is yet
    /// to come or under way; an export already ready (or failed) would hand
    /// a new request an old snapshot, so the request must have started a
    /// new export instead (202).
    pub fn on_export_request_joined(
        &mut self,
        principal: usize,
        export_id: u64,
        state: crosstalk_model::api::ExportState,
        at_ms: u64,
    ) {
        self.controls.duplicate_requests_joined += 1;
        if state == crosstalk_model::api::ExportState::Pending {
            return;
        }
        let detail = format!(
            "{}'s new export request was joined to exp-{export_id}, already {state:?}: an old snapshot for a new request",
            self.who(principal)
        );
        self.violate(Invariant::Exactness, at_ms, None, Some(principal), detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::EPOCH_MS;
    use crate::watermark::WatermarkKey;
    use crosstalk_model::api::ExportState;

    /// Person 0 with utterance 1 acknowledged at 100 ms and utterance 2
    /// whose upload began at 300 ms (acknowledged at 320 ms).
    fn oracle() -> Oracle {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        o.utterance_started(1, 0, 1, 90);
        o.utterance_acked(1, 11, 100);
        o.utterance_started(2, 0, 1, 300);
        o.utterance_acked(2, 12, 320);
        o
    }

    fn archive(audio: &[u64], snapshot_ms: u64) -> ArchiveContents {
        ArchiveContents {
            audio: audio.to_vec(),
            snapshot_at_ms: Some(EPOCH_MS + snapshot_ms),
            ..ArchiveContents::default()
        }
    }

    #[test]
    fn an_archive_is_exact_for_the_snapshot_it_claims() {
        let mut o = oracle();
        o.judge_snapshot_claim(0, "exp-1", &archive(&[1], 200), 500, 600);
        o.judge_snapshot_claim(0, "exp-1", &archive(&[1, 2], 400), 500, 600);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        // Stamped later than what it holds: utterance 2 was acknowledged by then.
        o.judge_snapshot_claim(0, "exp-1", &archive(&[1], 400), 500, 600);
        assert_eq!(o.violations.len(), 1);
        // Holds an upload begun after the snapshot it claims.
        o.judge_snapshot_claim(0, "exp-1", &archive(&[1, 2], 200), 500, 600);
        assert_eq!(o.violations.len(), 2);
        // A snapshot claimed after the archive was seen ready.
        o.judge_snapshot_claim(0, "exp-1", &archive(&[1, 2], 700), 500, 800);
        assert_eq!(o.violations.len(), 3);
        assert!(
            o.violations
                .iter()
                .all(|v| v.invariant == Invariant::Exactness)
        );
        assert_eq!(o.controls.snapshot_claims_judged, 5);
    }

    /// A driver whose observations spread each service millisecond over
    /// 1,000 oracle times: a claim names that whole span, so an upload begun
    /// within the claimed millisecond may be in the archive, and one begun
    /// in a later millisecond may not.
    #[test]
    fn a_coarse_service_clock_claims_a_span() {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        o.set_service_clock(ServiceClock {
            epoch_ms: 0,
            per_ms: 1_000,
        });
        o.utterance_started(1, 0, 1, 7_002);
        o.utterance_acked(1, 11, 7_004);
        let at = |ms: u64| ArchiveContents {
            audio: vec![1],
            snapshot_at_ms: Some(ms),
            ..ArchiveContents::default()
        };
        o.judge_snapshot_claim(0, "exp-1", &at(7), 9_000, 9_001);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        o.judge_snapshot_claim(0, "exp-1", &at(6), 9_000, 9_001);
        assert_eq!(o.violations.len(), 1, "begun a millisecond after the claim");
    }

    /// An always-on speaker's upload acknowledged at 320 ms, while the
    /// export requested at 250 ms was being collected (from 300 ms, seen
    /// ready at 500 ms): a claim stamped when collection began may leave it
    /// out; one stamped when collection ended (400 ms) may not.
    #[test]
    fn an_upload_racing_the_build_is_judged_by_the_claimed_snapshot() {
        let mut o = oracle();
        o.count_raced_uploads(0, 250, 500);
        assert_eq!(o.controls.uploads_raced_export_build, 1);
        o.judge_snapshot_claim(0, "exp-1", &archive(&[1], 300), 500, 600);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        o.judge_snapshot_claim(0, "exp-1", &archive(&[1], 400), 500, 600);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.violations[0].nonce, Some(2));
        // A request time unknown (a joined request): nothing counted.
        o.count_raced_uploads(0, 0, 500);
        assert_eq!(o.controls.uploads_raced_export_build, 1);
    }

    /// Utterance 2's upload was answered by the store at 300 ms exactly
    /// (seen at its door), its device heard it at 320 ms: a snapshot
    /// claimed at 300 ms includes it (the bound is inclusive).
    #[test]
    fn an_upload_the_store_answered_in_the_snapshots_very_tick_is_inside_it() {
        let mut o = oracle();
        let door = crate::upload_watch::UploadDoor::default();
        door.lock().unwrap().insert(12, 300);
        o.learn_upload_door(door);
        o.judge_snapshot_claim(0, "exp-1", &archive(&[1, 2], 300), 500, 600);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!(o.controls.uploads_stored_at_snapshot_tick, 1);
        o.judge_snapshot_claim(0, "exp-1", &archive(&[1], 300), 500, 600);
        assert_eq!(o.violations.len(), 1, "left out at the snapshot's own ms");
        assert_eq!(o.violations[0].nonce, Some(2));
        // A millisecond earlier the upload may not have reached the store.
        o.judge_snapshot_claim(0, "exp-1", &archive(&[1], 299), 500, 600);
        assert_eq!(o.violations.len(), 1);
    }

    #[test]
    fn a_deletion_racing_the_build_excuses_either_way() {
        let mut o = oracle();
        o.deletion_started(2, 450);
        o.judge_snapshot_claim(0, "exp-1", &archive(&[1], 400), 500, 600);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
    }

    #[test]
    fn a_request_joins_only_a_pending_export() {
        let mut o = oracle();
        o.on_export_request_joined(0, 3, ExportState::Pending, 10);
        assert!(o.violations.is_empty());
        o.on_export_request_joined(0, 3, ExportState::Ready, 20);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.violations[0].invariant, Invariant::Exactness);
        assert_eq!(o.controls.duplicate_requests_joined, 2);
    }
}
