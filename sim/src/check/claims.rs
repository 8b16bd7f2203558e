//! Refusals the workload used to take on trust, judged against what the
//! simulator knows it did.
//!
//! A factory reset of one's own device answered 404 ("no such device") is
//! explained only by a sale of that device whose answer never came back
//! (the sale went through, the seller never heard): the oracle remembers
//! every sale its sender attempted (`store_request_sent`) and calls any
//! other such 404 a lie about one's own live device. (A download answered
//! 410 is judged in `check/limits.rs`.)

use super::{Invariant, Oracle};
use std::collections::BTreeSet;

/// Sales attempted: (principal, device id).
#[derive(Debug, Default)]
pub struct ClaimsLedger {
    sales_sent: BTreeSet<(usize, u64)>,
}

/// The device id of a sale (`POST /v1/devices/{id}/transfer`).
fn sold_device(method: &http::Method, path: &str) -> Option<u64> {
    let rest = path.strip_prefix("/v1/devices/")?;
    let id = rest.strip_suffix("/transfer")?;
    (*method == http::Method::POST).then(|| id.parse().ok())?
}

impl Oracle {
    pub(super) fn note_sale(&mut self, principal: usize, method: &http::Method, path: &str) {
        if let Some(device) = sold_device(method, path) {
            self.claims.sales_sent.insert((principal, device));
        }
    }

    /// `principal` reset device `device`, which they registered themselves
    /// and never saw sold, and the store answered 404 at `at_ms`.
    pub fn own_device_reset_not_found(&mut self, principal: usize, device: u64, at_ms: u64) {
        self.controls.refusals_of_own_things_judged += 1;
        if self.claims.sales_sent.contains(&(principal, device)) {
            return;
        }
        let detail = format!(
            "{} reset their own dev-{device}, never offered for sale, and the store answered 404 (no such device)",
            self.who(principal)
        );
        self.violate(
            Invariant::RequestIntegrity,
            at_ms,
            None,
            Some(principal),
            detail,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    #[test]
    fn a_reset_refused_is_excused_only_by_a_sale_sent() {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        o.store_request_sent(0, &http::Method::POST, "/v1/devices/4/transfer", 10);
        o.own_device_reset_not_found(0, 4, 20);
        assert!(o.violations.is_empty());
        o.own_device_reset_not_found(0, 5, 20);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.controls.refusals_of_own_things_judged, 2);
    }
}
