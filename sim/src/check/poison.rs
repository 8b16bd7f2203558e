//! A poison job's retries: bounded, and backing off.
//!
//! The world refuses every collection read of one subject for a long
//! window (`faults/poison.rs`) and records when the store refused each. The
//! subject has exactly one export job, and a worker gives up an attempt at
//! its first refused read, so each refused read belongs to a different
//! attempt of that job. The export contract (`ExportConfig`) then says: at
//! most `max_attempts` attempts, and after the k-th failed attempt the next
//! claim waits at least `min(retry_backoff_ms << (k - 1), max_backoff_ms)`
//! (a lapsed lease waits `lease_ms`, no less). So any `m` refused reads in
//! a row span at least the first `m - 1` backoffs, less how late a read may
//! reach the store after its claim (`slack_ms`). More reads than attempts,
//! or reads closer together than that, mean the service retries a failing
//! job forever or without backing off: a poison job that hammers the store
//! and never gives its subject an answer. Judged after the run, from the
//! simulator's own record, never from the services' job state.
//!
//! When the window outlasts the job's attempts, the job must end `failed`,
//! with a reason its subject can read, and not before its attempts could
//! have been made: the first `max_attempts - 1` backoffs after the request
//! (the only `failed` export the oracle excuses). The subject then asks
//! again once the fault healed, and that export must complete (judged as
//! every other).

use super::{Invariant, Oracle};

/// The retry contract the export service was configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryContract {
    pub max_attempts: u32,
    pub retry_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// How late a refused read may reach the store after its attempt's
    /// claim (network latency, a lapsed lease, spikes).
    pub slack_ms: u64,
}

impl RetryContract {
    /// The least wait after the `attempt`-th failed attempt (1-based).
    fn backoff_ms(&self, attempt: u32) -> u64 {
        let exponent = attempt.saturating_sub(1).min(16);
        (self.retry_backoff_ms << exponent).min(self.max_backoff_ms)
    }

    /// The least span of `reads` refused reads of one job in a row.
    fn least_span_ms(&self, reads: usize) -> u64 {
        (1..reads as u32).map(|k| self.backoff_ms(k)).sum()
    }
}

/// What the oracle knows of the run's poisoned subject.
#[derive(Clone, Debug, Default)]
pub(super) struct PoisonLedger {
    /// (principal, planned request time, the window's end, the contract).
    subject: Option<(usize, u64, u64, RetryContract)>,
    /// When the subject first saw their export `failed`.
    gave_up_seen_ms: Option<u64>,
}

impl Oracle {
    /// `principal`'s collection reads are refused until `until_ms`; they
    /// ask for their export at `request_ms` or later, and the export
    /// service retries under `contract`.
    pub fn learn_poison(
        &mut self,
        principal: usize,
        request_ms: u64,
        until_ms: u64,
        contract: RetryContract,
    ) {
        self.poison.subject = Some((principal, request_ms, until_ms, contract));
    }

    /// `principal` saw their export `failed` at `seen_ms`: true (and
    /// excused) when it is the poisoned subject's first give-up.
    pub(super) fn poison_gave_up(&mut self, principal: usize, seen_ms: u64) -> bool {
        let poisoned = matches!(self.poison.subject, Some((p, ..)) if p == principal);
        if !poisoned || self.poison.gave_up_seen_ms.is_some() {
            return false;
        }
        self.poison.gave_up_seen_ms = Some(seen_ms);
        self.controls.poison_give_ups_seen += 1;
        true
    }

    /// When `principal` may ask again for the export that gave up: when
    /// the fault that failed it healed (`None`: nothing to ask again).
    pub fn poison_healed_at(&self, principal: usize) -> Option<u64> {
        match (self.poison.subject, self.poison.gave_up_seen_ms) {
            (Some((p, _, until_ms, _)), Some(_)) if p == principal => Some(until_ms),
            _ => None,
        }
    }

    /// The poisoned subject's export must not have failed before its
    /// attempts could have been made.
    pub fn judge_poison_give_up(&mut self) {
        let (Some((principal, request_ms, _, contract)), Some(seen_ms)) =
            (self.poison.subject, self.poison.gave_up_seen_ms)
        else {
            return;
        };
        let least_ms = contract.least_span_ms(contract.max_attempts as usize);
        if seen_ms >= request_ms + least_ms {
            return;
        }
        let detail = format!(
            "{}'s export ended failed {} ms after it was asked for; {} attempts backing off from {} ms take at least {least_ms} ms: it gave up early",
            self.who(principal),
            seen_ms.saturating_sub(request_ms),
            contract.max_attempts,
            contract.retry_backoff_ms
        );
        self.violate(Invariant::Liveness, seen_ms, None, Some(principal), detail);
    }

    /// The store refused `principal`'s collection reads at `refused_ms` (in
    /// order) while their one export job was retried under `contract`.
    pub fn judge_poisoned_retries(
        &mut self,
        principal: usize,
        refused_ms: &[u64],
        contract: RetryContract,
    ) {
        self.controls.poisoned_reads_refused += refused_ms.len() as u64;
        if refused_ms.len() < 2 {
            return;
        }
        self.controls.poison_retries_judged += 1;
        let last = refused_ms[refused_ms.len() - 1];
        if refused_ms.len() > contract.max_attempts as usize {
            let detail = format!(
                "the store refused {}'s collection reads {} times for their one export job, more than its {} attempts: the job never gave up",
                self.who(principal),
                refused_ms.len(),
                contract.max_attempts
            );
            self.violate(Invariant::Liveness, last, None, Some(principal), detail);
            return;
        }
        if let Some((first, reads, span)) = too_close(refused_ms, contract) {
            let detail = format!(
                "{} refused reads of {}'s one export job came within {span} ms from {first} ms; retries backing off from {} ms (at most {} ms) need at least {} ms: the failing job was retried without backing off",
                reads,
                self.who(principal),
                contract.retry_backoff_ms,
                contract.max_backoff_ms,
                contract
                    .least_span_ms(reads)
                    .saturating_sub(contract.slack_ms)
            );
            self.violate(Invariant::Liveness, last, None, Some(principal), detail);
        }
    }
}

/// The first run of refused reads (its start, length and span) closer
/// together than the contract's backoffs allow.
fn too_close(refused_ms: &[u64], contract: RetryContract) -> Option<(u64, usize, u64)> {
    for (i, &from) in refused_ms.iter().enumerate() {
        for (j, &to) in refused_ms.iter().enumerate().skip(i + 1) {
            let reads = j - i + 1;
            let span = to.saturating_sub(from);
            if span + contract.slack_ms < contract.least_span_ms(reads) {
                return Some((from, reads, span));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    const CONTRACT: RetryContract = RetryContract {
        max_attempts: 6,
        retry_backoff_ms: 500,
        max_backoff_ms: 8_000,
        slack_ms: 1_000,
    };

    fn judged(refused_ms: &[u64]) -> Oracle {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        o.judge_poisoned_retries(0, refused_ms, CONTRACT);
        o
    }

    #[test]
    fn retries_that_back_off_and_stop_pass() {
        // Gaps of 500, 1000, 2000, 4000, 8000 ms: six attempts.
        let o = judged(&[0, 500, 1_500, 3_500, 7_500, 15_500]);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!(o.controls.poisoned_reads_refused, 6);
        assert_eq!(o.controls.poison_retries_judged, 1);
        // Reads may come a little late after their claim (the slack).
        let o = judged(&[900, 1_000, 1_600, 3_500, 7_500, 15_500]);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        // Nothing to judge in one read.
        let o = judged(&[10]);
        assert_eq!(o.controls.poison_retries_judged, 0);
    }

    #[test]
    fn a_job_retried_past_its_attempts_is_a_violation() {
        let reads: Vec<u64> = (0..7).map(|k| k * 10_000).collect();
        let o = judged(&reads);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.violations[0].invariant, Invariant::Liveness);
        assert!(o.violations[0].detail.contains("never gave up"));
    }

    #[test]
    fn the_poisoned_subjects_first_failed_export_is_excused_if_not_early() {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into(), "b@x".into()]);
        o.learn_poison(1, 1_000, 90_000, CONTRACT);
        assert!(!o.poison_gave_up(0, 50_000), "not the poisoned subject");
        assert_eq!(o.poison_healed_at(1), None);
        // Six attempts need 15.5 s of backoff after the request.
        assert!(o.poison_gave_up(1, 16_500));
        assert!(!o.poison_gave_up(1, 17_000), "excused once only");
        assert_eq!(o.poison_healed_at(1), Some(90_000));
        o.judge_poison_give_up();
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!(o.controls.poison_give_ups_seen, 1);
        let mut early = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        early.learn_poison(0, 1_000, 90_000, CONTRACT);
        assert!(early.poison_gave_up(0, 16_400));
        early.judge_poison_give_up();
        assert_eq!(early.violations.len(), 1);
        assert!(early.violations[0].detail.contains("gave up early"));
    }

    #[test]
    fn retries_without_backoff_are_a_violation() {
        // Every second, whatever the attempt: no exponential backoff.
        let o = judged(&[0, 1_000, 2_000, 3_000, 4_000]);
        assert_eq!(o.violations.len(), 1);
        assert!(o.violations[0].detail.contains("without backing off"));
    }
}
