//! Verdicts on a message confirmed after its recipient's address changed
//! hands: the sender's message was resolved to the account that held the
//! address when it was sent; that account was closed (acknowledged to its
//! holder) and the address signed up again by a new identity before the
//! sender confirmed. The store must refuse the confirmation (410, the
//! recipient's account is closed): delivering it would hand the old
//! holder's message to whoever holds the address now (identity epochs,
//! judged as isolation). Whatever the new holder's inbox shows is judged
//! by the watermark as well (`receive`: the message was sent only to the
//! old holder).

use super::{Invariant, Oracle};
use http::StatusCode;

/// The summary's counter (`Controls::probes`) of this probe.
pub const AFTER_RECYCLE: &str = "recycled address: a message confirmed after its recipient closed and the address was signed up again";

/// A confirmation sent at `sent_ms` for the message carrying `nonce`, which
/// `sender` sent to `recipient` (the principal holding the address then);
/// `new_holder` held the address when the confirmation was sent; answered
/// `status` at `at_ms`.
#[derive(Clone, Copy, Debug)]
pub struct LateConfirmation {
    pub sender: usize,
    pub nonce: u64,
    pub recipient: usize,
    pub new_holder: usize,
    pub status: StatusCode,
    pub sent_ms: u64,
    pub at_ms: u64,
}

impl Oracle {
    /// Judge a confirmation sent after the recipient's address changed
    /// hands. Before the close was acknowledged the recipient may still be
    /// open: a delivery then is to them, rightly.
    pub fn on_late_confirmation(&mut self, c: LateConfirmation) {
        let closed_before = self
            .closed
            .closed_at(c.recipient)
            .is_some_and(|closed| closed <= c.sent_ms);
        if !closed_before {
            if c.status == StatusCode::OK {
                self.message_confirmed(c.nonce, c.recipient, c.at_ms);
            }
            return;
        }
        if !matches!(c.status, StatusCode::OK | StatusCode::GONE) {
            return;
        }
        let what = format!(
            "confirmed message (nonce {}) to {} after that account was closed and {} signed up with its address",
            c.nonce,
            self.who(c.recipient),
            self.who(c.new_holder),
        );
        self.attempt(
            AFTER_RECYCLE,
            c.sender,
            c.status.as_u16(),
            &[410],
            Invariant::Isolation,
            c.at_ms,
            &what,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    fn late(status: StatusCode, sent_ms: u64) -> LateConfirmation {
        LateConfirmation {
            sender: 0,
            nonce: 42,
            recipient: 1,
            new_holder: 2,
            status,
            sent_ms,
            at_ms: sent_ms + 5,
        }
    }

    fn oracle() -> Oracle {
        let emails = vec!["s@x.test".into(), "r@x.test".into(), "r@x.test".into()];
        let mut oracle = Oracle::new(WatermarkKey::for_seed(1), emails);
        oracle.account_closed(1, 100);
        oracle
    }

    #[test]
    fn a_delivery_after_the_close_is_a_violation() {
        let mut o = oracle();
        o.on_late_confirmation(late(StatusCode::GONE, 200));
        assert!(o.violations().is_empty());
        assert_eq!(o.controls().probes[AFTER_RECYCLE].refused, 1);
        o.on_late_confirmation(late(StatusCode::OK, 200));
        assert_eq!(o.violations().len(), 1);
        assert_eq!(o.violations()[0].invariant, Invariant::Isolation);
    }

    #[test]
    fn a_delivery_before_the_close_was_acknowledged_is_not_judged() {
        let mut o = oracle();
        o.on_late_confirmation(late(StatusCode::OK, 50));
        o.on_late_confirmation(late(StatusCode::SERVICE_UNAVAILABLE, 200));
        assert!(o.violations().is_empty());
        assert!(!o.controls().probes.contains_key(AFTER_RECYCLE));
    }
}
