//! A contact list holds exactly what its owner put in it.
//!
//! Contacts are personal data of two people (the list's owner and the
//! person named), so a listing of someone else's entries is a leak like any
//! other. The workload tells the oracle what the simulator itself did: every
//! (name, address) it ever sent to the account's contact list, and the
//! entries the store acknowledged (the last one per name: a name is replaced
//! by a later add). The listing the account reads back must name only
//! entries that were sent (else isolation), and must hold every
//! acknowledged one (else request integrity). The store compares names
//! case-insensitively and keeps addresses in lower case, so both sides are
//! compared trimmed and in lower case.

use super::{Invariant, Oracle};
use crosstalk_model::api::Contact;
use std::collections::BTreeSet;

/// One contact entry, as the store compares it.
fn normal(name: &str, email: &str) -> (String, String) {
    (
        name.trim().to_lowercase(),
        email.trim().to_ascii_lowercase(),
    )
}

impl Oracle {
    /// `principal` listed their contacts at `at_ms` and got `listed`;
    /// `sent` is every (name, address) the simulator sent to that list,
    /// `acknowledged` the entries the store acknowledged and kept.
    pub fn on_contacts_listed(
        &mut self,
        principal: usize,
        sent: &[(String, String)],
        acknowledged: &[(String, String)],
        listed: &[Contact],
        at_ms: u64,
    ) {
        self.controls.contact_lists_judged += 1;
        let sent: BTreeSet<(String, String)> = sent.iter().map(|(n, e)| normal(n, e)).collect();
        let listed: BTreeSet<(String, String)> =
            listed.iter().map(|c| normal(&c.name, &c.email)).collect();
        for (name, email) in listed.difference(&sent) {
            let detail = format!(
                "{}'s contact list names {name:?} <{email}>, an entry they never added",
                self.who(principal)
            );
            self.violate(Invariant::Isolation, at_ms, None, Some(principal), detail);
        }
        for (name, email) in acknowledged.iter().map(|(n, e)| normal(n, e)) {
            if !listed.contains(&(name.clone(), email.clone())) {
                let detail = format!(
                    "{}'s contact list lacks {name:?} <{email}>, whose addition the store acknowledged",
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watermark::WatermarkKey;

    fn contact(name: &str, email: &str) -> Contact {
        Contact {
            name: name.into(),
            email: email.into(),
        }
    }

    #[test]
    fn a_listing_is_judged_against_what_was_sent_and_acknowledged() {
        let mut o = Oracle::new(WatermarkKey::for_seed(1), vec!["a@x".into()]);
        let sent = vec![("Ann".to_string(), "Ann@X.test".to_string())];
        let acked = sent.clone();
        o.on_contacts_listed(0, &sent, &acked, &[contact("ann", "ann@x.test")], 5);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        // Someone else's entry.
        let foreign = [contact("ann", "ann@x.test"), contact("bo", "bo@y.test")];
        o.on_contacts_listed(0, &sent, &acked, &foreign, 6);
        assert_eq!(o.violations.len(), 1);
        assert_eq!(o.violations[0].invariant, Invariant::Isolation);
        // An acknowledged entry missing.
        o.on_contacts_listed(0, &sent, &acked, &[], 7);
        assert_eq!(o.violations.len(), 2);
        assert_eq!(o.violations[1].invariant, Invariant::RequestIntegrity);
        // Sent but never acknowledged: may be there or not.
        o.on_contacts_listed(0, &sent, &[], &[], 8);
        assert_eq!(o.violations.len(), 2);
        assert_eq!(o.controls.contact_lists_judged, 4);
    }
}
