//! The lease contract, judged from the workers' calls as the simulator saw
//! them at the export service's door (`lease_watch.rs`), never from the
//! service's job state.
//!
//! A claim grants a lease of `lease_ms` on one job under a new fence; each
//! renewal under that fence extends it to `lease_ms` after the service
//! handled it. The service handles a call between its arrival and its
//! answer, so the lease of (export, fence) ends at the latest `lease_ms`
//! after the last answer to its claim or to any renewal that reached the
//! service before the publication was answered. A publication that reached the
//! service at or after that instant comes from a worker whose lease
//! lapsed (a stall, a pause): the contract says it is refused, whether or
//! not another worker claimed the job meanwhile (a lapsed lease may be
//! reclaimed at any moment, and the archive it publishes is as old as its
//! stall). Answered 200, it is an API-contract violation: "lease contract".
//! A renewal that reached the service but was never answered (a crash)
//! leaves the lease's end unknown: that publication is not judged.
//!
//! Two more clauses of the same contract, from the same observations:
//!
//! - *A claim grants a new fence.* Every claim answered 200 names a fence
//!   no other answered claim of that export named. A reclaim that hands out
//!   the fence of a lapsed lease again leaves the stalled worker holding a
//!   live fence: it renews and publishes its stale snapshot as if it were
//!   the new attempt ("lease contract: fence granted twice").
//! - *A ready export is never worked on again* until a download revoked
//!   it. Publication is final: a claim that reached the service after a
//!   publication of that export was accepted, with no download of it in
//!   between that could have revoked it (any download not answered 200;
//!   revocation happens only there), puts a finished export back to work,
//!   where it can be fenced, failed or replaced ("lease contract: ready
//!   export claimed again").

use super::{Invariant, Oracle};
use crate::lease_watch::{LeaseCall, LeaseExchange};
use std::collections::BTreeMap;

/// Where the lease of (export, fence) ends at the latest, counting every
/// call that reached the service by `before_ms` (the publication's answer:
/// a renewal handled before it may have extended the lease); `None` when
/// unknown (no answered claim, or a renewal never answered).
fn lease_end_bound(
    exchanges: &[LeaseExchange],
    export_id: u64,
    fence: u64,
    before_ms: u64,
    lease_ms: u64,
) -> Option<u64> {
    let mut granted_ms = None;
    let mut last_ms = 0;
    for e in exchanges {
        if e.export_id != export_id || e.fence != fence || e.arrived_ms > before_ms {
            continue;
        }
        match (e.call, e.answered) {
            (LeaseCall::Claim, Some((200, at))) => granted_ms = Some(at),
            (LeaseCall::Renew, Some((_, at))) => last_ms = last_ms.max(at),
            (LeaseCall::Renew, None) => return None,
            _ => {}
        }
    }
    granted_ms.map(|at| at.max(last_ms).saturating_add(lease_ms))
}

/// Whether `e` is a claim the service granted (answered 200, naming a job).
fn granted_claim(e: &LeaseExchange) -> bool {
    e.call == LeaseCall::Claim && e.export_id != 0 && matches!(e.answered, Some((200, _)))
}

/// Whether `e` is a download of `export_id` that may have revoked its
/// archive: anything but a 200 (a revocation answers 410; a crash may cut
/// its answer off).
fn may_revoke(e: &LeaseExchange, export_id: u64) -> bool {
    e.call == LeaseCall::Download
        && e.export_id == export_id
        && !matches!(e.answered, Some((200, _)))
}

impl Oracle {
    /// The world armed a power loss of the export host inside a
    /// publication (`faults/publish_crash.rs`).
    pub fn on_publication_power_loss_armed(&mut self) {
        self.controls.publication_power_losses_armed += 1;
    }

    /// Judge the workers' lease traffic: publications against their lease,
    /// claims for a fresh fence, and claims of finished exports.
    pub fn judge_leases(&mut self, exchanges: &[LeaseExchange], lease_ms: u64) {
        self.judge_publications(exchanges, lease_ms);
        self.judge_lease_grants(exchanges, lease_ms);
        self.judge_fences_granted(exchanges);
        self.judge_ready_reclaims(exchanges);
    }

    /// Every claim and renewal answered 200 grants a lease of exactly
    /// `lease_ms` from the moment the service handled it: its
    /// `lease_expires_at_ms` lies within `lease_ms` after the call reached
    /// the service and after it was answered. A lease that ends later (a
    /// renewal counted from the old expiry, not from now) keeps a stalled
    /// worker's claim alive past what the contract promises the next
    /// worker; one that ends sooner fences out a worker in good standing.
    fn judge_lease_grants(&mut self, exchanges: &[LeaseExchange], lease_ms: u64) {
        for e in exchanges {
            let (Some(expires), Some((200, answered_ms))) = (e.lease_expires_at_ms, e.answered)
            else {
                continue;
            };
            self.controls.lease_grants_judged += 1;
            let earliest = crate::net::EPOCH_MS + e.arrived_ms + lease_ms;
            let latest = crate::net::EPOCH_MS + answered_ms + lease_ms;
            if (earliest..=latest).contains(&expires) {
                continue;
            }
            let detail = format!(
                "lease contract: a {:?} of exp-{} (fence {}) that reached the service at {} ms and was answered at {answered_ms} ms granted a lease until {} ms, not {lease_ms} ms from then ({} ..= {} ms)",
                e.call,
                e.export_id,
                e.fence,
                e.arrived_ms,
                expires.saturating_sub(crate::net::EPOCH_MS),
                earliest - crate::net::EPOCH_MS,
                latest - crate::net::EPOCH_MS,
            );
            self.violate(Invariant::ApiContract, answered_ms, None, None, detail);
        }
    }

    /// Every claim answered 200 names a fence of its export no earlier
    /// granted claim named.
    fn judge_fences_granted(&mut self, exchanges: &[LeaseExchange]) {
        let mut granted: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        let mut claimed: BTreeMap<u64, u64> = BTreeMap::new();
        for claim in exchanges.iter().filter(|e| granted_claim(e)) {
            self.controls.claims_judged_for_a_fresh_fence += 1;
            let before = claimed.entry(claim.export_id).or_default();
            if *before > 0 {
                self.controls.exports_claimed_again += 1;
            }
            *before += 1;
            let at_ms = claim.answered.map_or(claim.arrived_ms, |(_, at)| at);
            let Some(first_ms) = granted.insert((claim.export_id, claim.fence), at_ms) else {
                continue;
            };
            let detail = format!(
                "lease contract: fence granted twice: a claim of exp-{} answered at {at_ms} ms granted fence {}, which a claim answered at {first_ms} ms had already granted (a reclaim must fence the lapsed holder out)",
                claim.export_id, claim.fence
            );
            self.violate(Invariant::ApiContract, at_ms, None, None, detail);
        }
    }

    /// No claim of an export reaches the service after a publication of it
    /// was accepted, unless a download that may have revoked it came between.
    fn judge_ready_reclaims(&mut self, exchanges: &[LeaseExchange]) {
        for claim in exchanges.iter().filter(|e| granted_claim(e)) {
            let Some((_, claim_answered_ms)) = claim.answered else {
                continue;
            };
            let published = exchanges.iter().find(|p| {
                p.call == LeaseCall::Publish
                    && p.export_id == claim.export_id
                    && p.answered
                        .is_some_and(|(s, at)| s == 200 && at < claim.arrived_ms)
                    && !exchanges.iter().any(|d| {
                        may_revoke(d, claim.export_id)
                            && d.arrived_ms >= p.arrived_ms
                            && d.arrived_ms <= claim_answered_ms
                    })
            });
            self.controls.claims_judged_against_publication += 1;
            let Some(publish) = published else {
                continue;
            };
            let published_ms = publish.answered.map_or(0, |(_, at)| at);
            let detail = format!(
                "lease contract: ready export claimed again: exp-{} was published at {published_ms} ms (accepted) and claimed again under fence {} at {} ms, with no download of it in between that could have revoked it",
                claim.export_id, claim.fence, claim.arrived_ms
            );
            self.violate(
                Invariant::ApiContract,
                claim_answered_ms,
                None,
                None,
                detail,
            );
        }
    }

    /// Judge every publication the workers sent against its lease.
    fn judge_publications(&mut self, exchanges: &[LeaseExchange], lease_ms: u64) {
        for publish in exchanges.iter().filter(|e| e.call == LeaseCall::Publish) {
            let Some((status, answered_ms)) = publish.answered else {
                continue;
            };
            let Some(ends_ms) = lease_end_bound(
                exchanges,
                publish.export_id,
                publish.fence,
                answered_ms,
                lease_ms,
            ) else {
                continue;
            };
            self.controls.publications_judged_against_lease += 1;
            if publish.arrived_ms < ends_ms {
                continue;
            }
            self.controls.publications_after_lease_lapsed += 1;
            if status != 200 {
                self.controls.lapsed_publications_refused += 1;
                continue;
            }
            let detail = format!(
                "lease contract: a worker's publication of exp-{} under fence {} reached the export service at {} ms, when its lease had lapsed (it ended by {ends_ms} ms: {lease_ms} ms after the last claim or renewal answered), and was accepted",
                publish.export_id, publish.fence, publish.arrived_ms
            );
            self.violate(Invariant::ApiContract, answered_ms, None, None, detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    fn call(call: LeaseCall, arrived_ms: u64, answered: Option<(u16, u64)>) -> LeaseExchange {
        LeaseExchange {
            call,
            export_id: 3,
            fence: 2,
            email: String::new(),
            arrived_ms,
            answered,
            lease_expires_at_ms: None,
        }
    }

    fn judged(exchanges: &[LeaseExchange]) -> Oracle {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        o.judge_leases(exchanges, 8_000);
        o
    }

    #[test]
    fn a_lease_granted_ends_lease_ms_after_the_call() {
        let granted = |expires_ms: u64| {
            let mut renew = call(LeaseCall::Renew, 3_000, Some((200, 3_010)));
            renew.lease_expires_at_ms = Some(crate::net::EPOCH_MS + expires_ms);
            renew
        };
        // 8 s from any moment the service handled it: fine.
        for expires_ms in [11_000, 11_005, 11_010] {
            let o = judged(&[granted(expires_ms)]);
            assert!(
                o.violations().is_empty(),
                "{expires_ms}: {:?}",
                o.violations()
            );
            assert_eq!(o.controls().lease_grants_judged, 1);
        }
        // Counted from the old expiry (later), or cut short (sooner).
        for expires_ms in [19_000, 11_011, 10_999] {
            let o = judged(&[granted(expires_ms)]);
            assert!(
                o.violations()
                    .iter()
                    .any(|v| v.detail.contains("granted a lease until")),
                "{expires_ms}"
            );
        }
        // A refused renewal grants nothing.
        let mut refused = granted(19_000);
        refused.answered = Some((409, 3_010));
        assert_eq!(judged(&[refused]).controls().lease_grants_judged, 0);
    }

    #[test]
    fn a_publication_after_its_lease_lapsed_must_be_refused() {
        let claim = call(LeaseCall::Claim, 1_000, Some((200, 1_010)));
        let renew = call(LeaseCall::Renew, 3_000, Some((200, 3_010)));
        // Within the renewed lease: accepted, judged, fine.
        let o = judged(&[
            claim.clone(),
            renew.clone(),
            call(LeaseCall::Publish, 11_000, Some((200, 11_020))),
        ]);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!(o.controls.publications_judged_against_lease, 1);
        assert_eq!(o.controls.publications_after_lease_lapsed, 0);
        // Past it and refused: the positive control.
        let o = judged(&[
            claim.clone(),
            renew.clone(),
            call(LeaseCall::Publish, 11_010, Some((409, 11_020))),
        ]);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!(o.controls.lapsed_publications_refused, 1);
        // Past it and accepted: the violation.
        let o = judged(&[
            claim.clone(),
            renew,
            call(LeaseCall::Publish, 11_010, Some((200, 11_020))),
        ]);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.violations[0].invariant, Invariant::ApiContract);
        assert!(o.violations[0].detail.starts_with("lease contract"));
        // A renewal never answered: the lease's end is unknown.
        let o = judged(&[
            claim,
            call(LeaseCall::Renew, 3_000, None),
            call(LeaseCall::Publish, 30_000, Some((200, 30_020))),
        ]);
        assert!(o.violations.is_empty());
        assert_eq!(o.controls.publications_judged_against_lease, 0);
    }

    #[test]
    fn a_claim_grants_a_fence_no_other_claim_was_granted() {
        let first = call(LeaseCall::Claim, 1_000, Some((200, 1_010)));
        let mut next = call(LeaseCall::Claim, 20_000, Some((200, 20_010)));
        next.fence = 3;
        let o = judged(&[first.clone(), next]);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!(o.controls.claims_judged_for_a_fresh_fence, 2);
        assert_eq!(o.controls.exports_claimed_again, 1);
        // The lapsed lease's fence handed out again: the stalled holder
        // still holds a live fence.
        let again = call(LeaseCall::Claim, 20_000, Some((200, 20_010)));
        let o = judged(&[first, again]);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.violations[0].invariant, Invariant::ApiContract);
        assert!(o.violations[0].detail.contains("fence granted twice"));
    }

    #[test]
    fn a_published_export_is_claimed_again_only_after_a_refused_download() {
        let claim = call(LeaseCall::Claim, 1_000, Some((200, 1_010)));
        let publish = call(LeaseCall::Publish, 4_000, Some((200, 4_020)));
        let mut again = call(LeaseCall::Claim, 30_000, Some((200, 30_010)));
        again.fence = 3;
        let o = judged(&[claim.clone(), publish.clone(), again.clone()]);
        assert_eq!(o.violations.len(), 1, "{:?}", o.violations);
        assert!(
            o.violations[0]
                .detail
                .contains("ready export claimed again")
        );
        // A download answered 200 revokes nothing.
        let mut fine = call(LeaseCall::Download, 9_000, Some((200, 9_010)));
        fine.fence = 0;
        let o = judged(&[claim.clone(), publish.clone(), fine, again.clone()]);
        assert_eq!(o.violations.len(), 1);
        // One refused (410: a deletion revoked it) puts it back to work.
        let mut revoking = call(LeaseCall::Download, 9_000, Some((410, 9_010)));
        revoking.fence = 0;
        let o = judged(&[claim.clone(), publish.clone(), revoking, again.clone()]);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        // A publication refused (fenced out) finished nothing.
        let refused = call(LeaseCall::Publish, 4_000, Some((409, 4_020)));
        let o = judged(&[claim, refused, again]);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!(o.controls.claims_judged_against_publication, 2);
    }
}
