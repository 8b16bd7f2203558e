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

use super::{Invariant, Oracle};
use crate::lease_watch::{LeaseCall, LeaseExchange};

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

impl Oracle {
    /// Judge every publication the workers sent against its lease.
    pub fn judge_leases(&mut self, exchanges: &[LeaseExchange], lease_ms: u64) {
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
            arrived_ms,
            answered,
        }
    }

    fn judged(exchanges: &[LeaseExchange]) -> Oracle {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        o.judge_leases(exchanges, 8_000);
        o
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
}
