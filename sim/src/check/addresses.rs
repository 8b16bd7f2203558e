//! Requests that carry an address, judged by who held it.
//!
//! An address reaches the services in a JSON body (sign-up, sign-in, a
//! contact, a sale, a confirmation, a support ticket) or in a URL query
//! (the export service asking the store who holds an address). Each must
//! be read as its holder wrote it, whatever it holds: plus-addressing,
//! apostrophes, capitals, the characters a query must percent-encode
//! (`addresses.rs`). The oracle knows who held each address when: a
//! principal holds theirs surely from the moment their sign-up was
//! acknowledged until they first sent a closing, and may hold it from their
//! first sign-up sent until their closing was acknowledged. The verdicts:
//!
//! - an address resolved to nobody while someone surely held it (a lookup
//!   or a sale answered 404, a message to a contact answered 404, a sign-in
//!   with the right password refused, a confirmation naming the very
//!   address its message resolved to refused): "address contract" (api
//!   contract);
//! - a lookup answered with an account that did not hold the address: a
//!   support challenge for it would reach someone else (agent containment);
//! - a sign-in with one's own address and password that opened another
//!   account (access control);
//! - a contact name resolved to an address its owner never gave: "address
//!   contract".
//!
//! Every such request judged is counted, and those by awkward addresses
//! apart: the positive control that awkward addresses went through.

use super::{Invariant, Oracle};
use crate::addresses::{is_awkward, normalized};
use crate::lookup_watch::Lookup;
use std::collections::BTreeMap;

/// When one principal held their address, as the simulator knows it.
#[derive(Clone, Copy, Debug, Default)]
struct Holding {
    /// The first sign-up the principal sent.
    signup_sent_ms: Option<u64>,
    /// When the principal first knew their account open (the sign-up's
    /// answer, or a sign-in after its answer was lost).
    held_from_ms: Option<u64>,
    /// The first closing the principal sent.
    close_sent_ms: Option<u64>,
}

/// Who held which address when, and the sales the simulator sent.
#[derive(Debug, Default)]
pub struct AddressLedger {
    holdings: BTreeMap<usize, Holding>,
    /// Normalized address -> every principal who signed up (or may have)
    /// with it, in order.
    by_address: BTreeMap<String, Vec<usize>>,
    /// Account id -> the principal whose sign-up it answered.
    by_account: BTreeMap<u64, usize>,
    /// (seller principal, device id) -> when each sale of it was sent.
    sales_sent: BTreeMap<(usize, u64), Vec<u64>>,
}

/// A sign-in with a principal's own address (as typed) and password.
#[derive(Clone, Copy, Debug)]
pub struct SignIn<'a> {
    pub principal: usize,
    pub typed: &'a str,
    pub status: u16,
    /// The account a 201 answer names.
    pub account_id: Option<u64>,
    pub sent_ms: u64,
    pub at_ms: u64,
}

/// The answer to a sale of `device` by `seller` to the address `typed`.
#[derive(Clone, Copy, Debug)]
pub struct SaleAnswer<'a> {
    pub seller: usize,
    pub device: u64,
    /// The seller registered the device themselves (a device bought may
    /// have been filed under an account its buyer has since closed).
    pub registered_by_seller: bool,
    pub typed: &'a str,
    pub status: u16,
    pub sent_ms: u64,
    pub at_ms: u64,
}

/// The answer to a message of `sender`'s capture `nonce` to the contact
/// whose address (as the sender gave it) is `contact`.
#[derive(Clone, Copy, Debug)]
pub struct MessageAddressed<'a> {
    pub sender: usize,
    pub nonce: u64,
    pub contact: &'a str,
    /// Every address the sender gave their contact list.
    pub contacts: &'a [String],
    /// The address the store resolved the name to (`None`: 404).
    pub resolved: Option<&'a str>,
    pub sent_ms: u64,
    pub at_ms: u64,
}

/// The answer to a confirmation of a pending message that named `named`,
/// the message having resolved to `resolved`.
#[derive(Clone, Copy, Debug)]
pub struct ConfirmationAnswer<'a> {
    pub sender: usize,
    pub message_id: u64,
    pub named: &'a str,
    pub resolved: &'a str,
    pub status: u16,
    pub at_ms: u64,
}

impl AddressLedger {
    pub(super) fn note_principal(&mut self, principal: usize, email: &str) {
        let holders = self.by_address.entry(normalized(email)).or_default();
        if !holders.contains(&principal) {
            holders.push(principal);
        }
    }

    fn holding(&mut self, principal: usize) -> &mut Holding {
        self.holdings.entry(principal).or_default()
    }
}

/// The device id of a sale (`POST /v1/devices/{id}/transfer`).
fn sold_device(method: &http::Method, path: &str) -> Option<u64> {
    let id = path
        .strip_prefix("/v1/devices/")?
        .strip_suffix("/transfer")?;
    (*method == http::Method::POST).then(|| id.parse().ok())?
}

impl Oracle {
    /// `principal` sent `method path` to the store at `sent_ms`: sign-ups,
    /// closings and sales bound when an address was held.
    pub(super) fn note_address_request(
        &mut self,
        principal: usize,
        method: &http::Method,
        path: &str,
        sent_ms: u64,
    ) {
        let ledger = &mut self.addresses;
        match (method.as_str(), path) {
            ("POST", "/v1/accounts") => {
                ledger
                    .holding(principal)
                    .signup_sent_ms
                    .get_or_insert(sent_ms);
            }
            ("DELETE", "/v1/accounts/me") => {
                ledger
                    .holding(principal)
                    .close_sent_ms
                    .get_or_insert(sent_ms);
            }
            _ => {
                if let Some(device) = sold_device(method, path) {
                    let sales = ledger.sales_sent.entry((principal, device)).or_default();
                    sales.push(sent_ms);
                }
            }
        }
    }

    /// `principal` learned at `at_ms` that their sign-up opened
    /// `account_id` (its answer, or a sign-in after it was lost).
    pub fn on_signed_up(&mut self, principal: usize, account_id: u64, at_ms: u64) {
        if let Some(person) = self.people.get_mut(principal) {
            person.account_id = Some(account_id);
        }
        let ledger = &mut self.addresses;
        ledger.holding(principal).held_from_ms.get_or_insert(at_ms);
        ledger.by_account.insert(account_id, principal);
    }

    /// Whether `principal` surely held their address from `from_ms` to
    /// `to_ms`: signed up by then, no closing sent before the end.
    fn held_surely(&self, principal: usize, from_ms: u64, to_ms: u64) -> bool {
        self.addresses.holdings.get(&principal).is_some_and(|h| {
            h.held_from_ms.is_some_and(|at| at <= from_ms)
                && h.close_sent_ms.is_none_or(|at| at > to_ms)
        })
    }

    /// Whether `principal` may have held their address at some moment from
    /// `from_ms` to `to_ms`.
    fn may_have_held(&self, principal: usize, from_ms: u64, to_ms: u64) -> bool {
        let sent = self.addresses.holdings.get(&principal);
        sent.is_some_and(|h| h.signup_sent_ms.is_some_and(|at| at <= to_ms))
            && self
                .closed
                .closed_at(principal)
                .is_none_or(|at| at > from_ms)
    }

    /// Who surely held `address` (normalized) from `from_ms` to `to_ms`.
    fn sure_holder(&self, address: &str, from_ms: u64, to_ms: u64) -> Option<usize> {
        let holders = self.addresses.by_address.get(address)?;
        holders
            .iter()
            .copied()
            .find(|&p| self.held_surely(p, from_ms, to_ms))
    }

    /// Count one request carrying `address` (as sent) judged; by an
    /// awkward address when it, or its holder's own, is one.
    fn address_judged(&mut self, address: &str, holder: Option<usize>) {
        self.controls.address_requests_judged += 1;
        let holders_own = holder
            .and_then(|p| self.people.get(p))
            .is_some_and(|p| is_awkward(&p.email));
        if is_awkward(address) || holders_own {
            self.controls.awkward_address_requests_judged += 1;
        }
    }

    /// Judge every lookup the store answered (seen at its door) against
    /// who held the address then.
    pub fn judge_lookups(&mut self, lookups: &[Lookup]) {
        for lookup in lookups {
            let Some((status @ (200 | 404), answered_ms)) = lookup.answered else {
                continue;
            };
            let (from, to) = (lookup.arrived_ms, answered_ms);
            let sure = self.sure_holder(&lookup.email, from, to);
            self.controls.lookups_judged_against_holders += 1;
            self.address_judged(&lookup.email, sure);
            match (status, sure, lookup.account_id) {
                (404, Some(holder), _) => {
                    let detail = format!(
                        "address contract: the store answered 404 at {to} ms to the export service's lookup of {:?} (arrived at {from} ms), while {} held that address (signed up, no closing sent): an existing customer's address resolved to nobody",
                        lookup.email,
                        self.who(holder)
                    );
                    self.violate(Invariant::ApiContract, to, None, Some(holder), detail);
                }
                (200, _, Some(account)) => self.judge_lookup_answer(lookup, account, to),
                _ => {}
            }
        }
    }

    /// A lookup answered 200 naming `account` must name an account that
    /// may have held the address then.
    fn judge_lookup_answer(&mut self, lookup: &Lookup, account: u64, to: u64) {
        let Some(&named) = self.addresses.by_account.get(&account) else {
            return; // An account the simulator never learned: unjudged.
        };
        let own = self
            .people
            .get(named)
            .is_some_and(|p| normalized(&p.email) == lookup.email);
        if own && self.may_have_held(named, lookup.arrived_ms, to) {
            return;
        }
        let detail = format!(
            "address contract: the store answered the export service's lookup of {:?} (arrived at {} ms) with acct-{account}, the account of {}, who did not hold that address then: a support challenge for it would reach someone else",
            lookup.email,
            lookup.arrived_ms,
            self.who(named)
        );
        self.violate(Invariant::AgentContainment, to, None, Some(named), detail);
    }

    /// A principal signed in with their own address and password.
    pub fn on_sign_in(&mut self, sign_in: SignIn<'_>) {
        let p = sign_in.principal;
        if !self.held_surely(p, sign_in.sent_ms, sign_in.at_ms) {
            return; // Not yet signed up, or closing: either answer is right.
        }
        let own = self.people.get(p).and_then(|person| person.account_id);
        match sign_in.status {
            201 if sign_in.account_id == own => {
                self.controls.sign_ins_judged += 1;
                self.address_judged(sign_in.typed, Some(p));
            }
            201 => {
                let detail = format!(
                    "{} signed in with their own address as typed ({:?}) and password at {} ms and got a session of acct-{}, not of their own account",
                    self.who(p),
                    sign_in.typed,
                    sign_in.sent_ms,
                    sign_in.account_id.unwrap_or_default()
                );
                self.violate(
                    Invariant::AccessControl,
                    sign_in.at_ms,
                    None,
                    Some(p),
                    detail,
                );
            }
            401 => {
                let detail = format!(
                    "address contract: {} signed in with their own address as typed ({:?}) and the right password at {} ms and was refused (401), while their account was open",
                    self.who(p),
                    sign_in.typed,
                    sign_in.sent_ms
                );
                self.violate(Invariant::ApiContract, sign_in.at_ms, None, Some(p), detail);
            }
            _ => {} // A server error: judged with the fault log.
        }
    }

    /// The store answered a sale: a 404 ("no account with that email") for
    /// an address someone surely held is the address resolved to nobody,
    /// unless the device may not be the seller's: bought, or sold by an
    /// earlier attempt whose answer was lost (`sent_ms` is the first
    /// attempt's; every attempt was noted by `store_request_sent`).
    pub fn on_sale_answered(&mut self, sale: SaleAnswer<'_>) {
        let address = normalized(sale.typed);
        let Some(holder) = self.sure_holder(&address, sale.sent_ms, sale.at_ms) else {
            return;
        };
        // Another attempt of this sale (a retry after a lost answer) or an
        // earlier sale may have moved the device already.
        let sold_before = self
            .addresses
            .sales_sent
            .get(&(sale.seller, sale.device))
            .is_some_and(|sent| sent.iter().filter(|&&at| at <= sale.at_ms).count() > 1);
        if !matches!(sale.status, 200 | 404) || sold_before || !sale.registered_by_seller {
            return;
        }
        self.address_judged(sale.typed, Some(holder));
        if sale.status == 200 {
            return;
        }
        let detail = format!(
            "address contract: {} sold dev-{} to {:?} at {} ms and the store answered 404 (no such account), while {} held that address",
            self.who(sale.seller),
            sale.device,
            sale.typed,
            sale.sent_ms,
            self.who(holder)
        );
        self.violate(
            Invariant::ApiContract,
            sale.at_ms,
            None,
            Some(holder),
            detail,
        );
    }

    /// The store answered a message to a contact: it must resolve the name
    /// to an address the sender gave it, and find the contact while they
    /// surely hold an open account and the recording is the sender's own,
    /// with no deletion sent.
    pub fn on_message_addressed(&mut self, message: MessageAddressed<'_>) {
        let contact = normalized(message.contact);
        let holder = self.sure_holder(&contact, message.sent_ms, message.at_ms);
        if let Some(resolved) = message.resolved {
            self.address_judged(message.contact, holder);
            let given = message
                .contacts
                .iter()
                .any(|c| normalized(c) == normalized(resolved));
            if !given {
                let detail = format!(
                    "address contract: the store resolved {}'s message to {resolved:?}, an address they never gave it (they meant {:?})",
                    self.who(message.sender),
                    message.contact
                );
                let sender = Some(message.sender);
                self.violate(
                    Invariant::ApiContract,
                    message.at_ms,
                    Some(message.nonce),
                    sender,
                    detail,
                );
            }
            return;
        }
        let own_live = self.utterances.get(&message.nonce).is_some_and(|u| {
            u.owner == message.sender && u.acked_ms.is_some() && u.deletion_started_ms.is_none()
        });
        let Some(holder) = holder.filter(|_| own_live) else {
            return;
        };
        self.address_judged(message.contact, Some(holder));
        let detail = format!(
            "address contract: {} sent their own recording to their contact {:?} at {} ms and the store found nobody, while {} held that address",
            self.who(message.sender),
            message.contact,
            message.sent_ms,
            self.who(holder)
        );
        self.violate(
            Invariant::ApiContract,
            message.at_ms,
            Some(message.nonce),
            Some(holder),
            detail,
        );
    }

    /// What the store made of `sender`'s spoken "send this to <contact>"
    /// (utterance `nonce`), once its hold ended: a message resolved to
    /// `resolved`, or (`None`) no message at all. The name is the contact's
    /// exactly, so the store must resolve it to an address the sender gave
    /// it, and make a message whenever the contact surely held an open
    /// account while the capture was being uploaded.
    pub fn on_spoken_message_addressed(
        &mut self,
        sender: usize,
        nonce: u64,
        contact: &str,
        contacts: &[String],
        resolved: Option<&str>,
    ) {
        let Some(u) = self.utterances.get(&nonce) else {
            return;
        };
        let (Some(acked_ms), owner) = (u.acked_ms, u.owner) else {
            return;
        };
        if owner != sender {
            return;
        }
        let message = MessageAddressed {
            sender,
            nonce,
            contact,
            contacts,
            resolved,
            sent_ms: u.upload_started_ms,
            at_ms: acked_ms,
        };
        self.on_message_addressed(message);
    }

    /// The store answered a confirmation of a pending message: naming the
    /// address the message resolved to (in any case, with any spaces
    /// around it), it may not be refused as naming another (409).
    pub fn on_confirmation_answered(&mut self, answer: ConfirmationAnswer<'_>) {
        if normalized(answer.named) != normalized(answer.resolved) {
            return;
        }
        self.address_judged(answer.named, None);
        if answer.status != 409 {
            return;
        }
        let detail = format!(
            "address contract: {} confirmed pending message {} naming {:?}, the address it resolved to ({}), and the store refused it (409) as naming another contact",
            self.who(answer.sender),
            answer.message_id,
            answer.named,
            answer.resolved
        );
        self.violate(
            Invariant::ApiContract,
            answer.at_ms,
            None,
            Some(answer.sender),
            detail,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    /// Ann (p0, an awkward address, acct-10 from 100 ms) and Bo (p1,
    /// acct-11 from 100 ms); Bo closes at 5 000 ms (sent), acknowledged at
    /// 5 100 ms.
    fn two_people() -> Oracle {
        let emails = vec!["Ann+Voice@X.test".into(), "bo@x.test".into()];
        let mut o = Oracle::new(WatermarkKey::for_seed(1), emails);
        for p in [0, 1] {
            o.store_request_sent(p, &http::Method::POST, "/v1/accounts", 50);
            o.on_signed_up(p, 10 + p as u64, 100);
        }
        o.store_request_sent(1, &http::Method::DELETE, "/v1/accounts/me", 5_000);
        o.account_closed(1, 5_100);
        o
    }

    fn lookup(email: &str, at: u64, status: u16, account_id: Option<u64>) -> Lookup {
        Lookup {
            email: email.into(),
            arrived_ms: at,
            answered: Some((status, at + 5)),
            account_id,
        }
    }

    #[test]
    fn a_lookup_must_find_the_holder_and_only_the_holder() {
        let mut o = two_people();
        o.judge_lookups(&[
            lookup("ann+voice@x.test", 1_000, 200, Some(10)),
            lookup("bo@x.test", 6_000, 404, None),
            lookup("bo@x.test", 4_990, 200, Some(11)),
            lookup("nobody@x.test", 1_000, 404, None),
        ]);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!(o.controls.lookups_judged_against_holders, 4);
        assert_eq!(o.controls.awkward_address_requests_judged, 1);
        // Resolved to nobody while Ann held it; to Ann for someone else's
        // address; to Bo after his closing was acknowledged.
        o.judge_lookups(&[
            lookup("ann+voice@x.test", 1_000, 404, None),
            lookup("ann voice@x.test", 1_000, 200, Some(10)),
            lookup("bo@x.test", 6_000, 200, Some(11)),
        ]);
        let found: Vec<Invariant> = o.violations.iter().map(|v| v.invariant).collect();
        assert_eq!(
            found,
            [
                Invariant::ApiContract,
                Invariant::AgentContainment,
                Invariant::AgentContainment
            ]
        );
    }

    #[test]
    fn the_right_password_must_open_ones_own_account() {
        let mut o = two_people();
        let sign_in = |status, account_id, sent_ms| SignIn {
            principal: 0,
            typed: "ann+voice@x.TEST ",
            status,
            account_id,
            sent_ms,
            at_ms: sent_ms + 5,
        };
        o.on_sign_in(sign_in(201, Some(10), 1_000));
        // Before the sign-up was answered either answer is right.
        o.on_sign_in(sign_in(401, None, 90));
        assert!(o.violations.is_empty());
        assert_eq!(o.controls.sign_ins_judged, 1);
        o.on_sign_in(sign_in(401, None, 1_000));
        o.on_sign_in(sign_in(201, Some(11), 1_000));
        let found: Vec<Invariant> = o.violations.iter().map(|v| v.invariant).collect();
        assert_eq!(found, [Invariant::ApiContract, Invariant::AccessControl]);
    }

    #[test]
    fn a_sale_or_a_message_to_a_held_address_must_find_it() {
        let mut o = two_people();
        let sale = |device, sent_ms, status| SaleAnswer {
            seller: 1,
            device,
            registered_by_seller: true,
            typed: "ANN+voice@x.test",
            status,
            sent_ms,
            at_ms: sent_ms + 5,
        };
        o.store_request_sent(1, &http::Method::POST, "/v1/devices/4/transfer", 900);
        o.store_request_sent(1, &http::Method::POST, "/v1/devices/4/transfer", 1_000);
        // The first sale's answer was lost: the second finds no device.
        o.on_sale_answered(sale(4, 1_000, 404));
        assert!(o.violations.is_empty());
        // A retry after a lost answer within one call: the same.
        o.store_request_sent(1, &http::Method::POST, "/v1/devices/6/transfer", 1_000);
        o.store_request_sent(1, &http::Method::POST, "/v1/devices/6/transfer", 1_002);
        o.on_sale_answered(sale(6, 1_000, 404));
        assert!(o.violations.is_empty());
        o.store_request_sent(1, &http::Method::POST, "/v1/devices/5/transfer", 1_000);
        o.on_sale_answered(sale(5, 1_000, 404));
        assert_eq!(o.violations.len(), 1);
        // A confirmation naming the resolved address in other letters.
        o.on_confirmation_answered(ConfirmationAnswer {
            sender: 1,
            message_id: 3,
            named: "Ann+Voice@x.test ",
            resolved: "ann+voice@x.test",
            status: 409,
            at_ms: 1_200,
        });
        assert_eq!(o.violations.len(), 2);
        // A name resolved to an address nobody gave.
        let contacts = vec!["Ann+Voice@X.test".to_string()];
        o.on_message_addressed(MessageAddressed {
            sender: 1,
            nonce: 9,
            contact: "Ann+Voice@X.test",
            contacts: &contacts,
            resolved: Some("ann voice@x.test"),
            sent_ms: 1_300,
            at_ms: 1_305,
        });
        assert_eq!(o.violations.len(), 3);
        // "Send this to Ann", spoken and uploaded while Ann held her
        // address: the store made no message of it.
        o.utterance_started(9, 1, 0, 1_000);
        o.utterance_acked(9, 90, 1_100);
        o.on_spoken_message_addressed(1, 9, "Ann+Voice@X.test", &contacts, None);
        assert_eq!(o.violations.len(), 4);
        assert!(
            o.violations
                .iter()
                .all(|v| v.invariant == Invariant::ApiContract)
        );
    }
}
