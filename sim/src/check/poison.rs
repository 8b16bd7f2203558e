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

impl Oracle {
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
    fn retries_without_backoff_are_a_violation() {
        // Every second, whatever the attempt: no exponential backoff.
        let o = judged(&[0, 1_000, 2_000, 3_000, 4_000]);
        assert_eq!(o.violations.len(), 1);
        assert!(o.violations[0].detail.contains("without backing off"));
    }
}
