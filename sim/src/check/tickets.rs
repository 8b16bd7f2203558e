//! The ticket contract, judged from what the simulator saw at both doors:
//! the export service's (`lease_watch.rs`: every ticket opened, the address
//! it claims, its answer) and the store's (`lookup_watch.rs`: every lookup
//! of an address, the store's answer).
//!
//! Opening a ticket answers 202 whether or not the address has an account
//! (the answer must not reveal it), so the requester cannot tell "no such
//! customer" from "your code is on its way". The service may only give
//! that answer once it knows which: the store answered a lookup of the
//! address (200, an account; 404, none) while the ticket was being opened.
//! A 202 with no such answer means the service took a failed lookup (the
//! store down, cut off or refusing) for an unknown address: a real
//! customer gets no challenge, their ticket can never be verified, and
//! nothing tells them to try again (it must refuse, retryably, instead:
//! 5xx). Violations are "ticket contract" (`ApiContract`).

use super::{Invariant, Oracle};
use crate::lease_watch::{LeaseCall, LeaseExchange};
use crate::lookup_watch::{Lookup, normalized};

/// Whether the store answered `lookup` of `email` (an account or none)
/// between `from_ms` and `to_ms`.
fn answered_within(lookup: &Lookup, email: &str, from_ms: u64, to_ms: u64) -> bool {
    lookup.email == email
        && lookup.arrived_ms >= from_ms
        && lookup
            .answered
            .is_some_and(|(status, at)| matches!(status, 200 | 404) && at <= to_ms)
}

impl Oracle {
    /// Judge every ticket the export service accepted against the lookups
    /// the store answered.
    pub fn judge_ticket_lookups(&mut self, exchanges: &[LeaseExchange], lookups: &[Lookup]) {
        for ticket in exchanges.iter().filter(|e| e.call == LeaseCall::Ticket) {
            let Some((202, answered_ms)) = ticket.answered else {
                continue;
            };
            self.controls.tickets_judged_against_lookups += 1;
            let email = normalized(&ticket.email);
            if lookups
                .iter()
                .any(|l| answered_within(l, &email, ticket.arrived_ms, answered_ms))
            {
                continue;
            }
            // What the store was asked meanwhile, if not this address: a
            // query built without percent-encoding reaches it mangled.
            let asked: Vec<&str> = lookups
                .iter()
                .filter(|l| l.arrived_ms >= ticket.arrived_ms && l.arrived_ms <= answered_ms)
                .map(|l| l.email.as_str())
                .collect();
            let detail = format!(
                "ticket contract: a ticket for {email} reached the export service at {} ms and was accepted (202) at {answered_ms} ms, but the store answered no lookup of that address meanwhile (it was asked about {asked:?}): a failed or mangled lookup was taken for an unknown address (a real customer gets no challenge and no reason to retry)",
                ticket.arrived_ms
            );
            self.violate(Invariant::ApiContract, answered_ms, None, None, detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    fn ticket(arrived_ms: u64, answered: Option<(u16, u64)>) -> LeaseExchange {
        LeaseExchange {
            call: LeaseCall::Ticket,
            export_id: 0,
            fence: 0,
            email: " Ann@X.org".into(),
            arrived_ms,
            answered,
            lease_expires_at_ms: None,
        }
    }

    fn lookup(arrived_ms: u64, answered: Option<(u16, u64)>) -> Lookup {
        Lookup {
            email: "ann@x.org".into(),
            arrived_ms,
            answered,
            account_id: None,
        }
    }

    fn judged(tickets: &[LeaseExchange], lookups: &[Lookup]) -> Oracle {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        o.judge_ticket_lookups(tickets, lookups);
        o
    }

    #[test]
    fn a_ticket_is_accepted_only_once_the_store_answered_its_lookup() {
        let accepted = ticket(1_000, Some((202, 1_050)));
        // An account (200) or none (404), answered while it was opened.
        for status in [200, 404] {
            let o = judged(
                std::slice::from_ref(&accepted),
                &[lookup(1_010, Some((status, 1_020)))],
            );
            assert!(o.violations.is_empty(), "{:?}", o.violations);
            assert_eq!(o.controls.tickets_judged_against_lookups, 1);
        }
        // The store refused, never answered, or answered another ticket's.
        for seen in [
            lookup(1_010, Some((503, 1_020))),
            lookup(1_010, None),
            lookup(500, Some((200, 600))),
        ] {
            let o = judged(std::slice::from_ref(&accepted), &[seen]);
            assert_eq!(o.violations.len(), 1);
            assert_eq!(o.violations[0].invariant, Invariant::ApiContract);
            assert!(o.violations[0].detail.starts_with("ticket contract"));
        }
        // A refused ticket (5xx: retry) or an unanswered one is not judged.
        let o = judged(
            &[ticket(1_000, Some((503, 1_050))), ticket(1_000, None)],
            &[],
        );
        assert!(o.violations.is_empty());
        assert_eq!(o.controls.tickets_judged_against_lookups, 0);
    }
}
