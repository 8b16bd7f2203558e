//! The contact list read back: the final audit lists the account's contacts
//! and hands the oracle what the simulator sent and what the store
//! acknowledged (`check/contacts.rs` judges).

use super::CallError;
use super::person::Person;
use crate::net::sim_now_ms;
use crate::plan::display_name;
use crate::workload::Service;
use crosstalk_model::api::Contact;

impl Person {
    /// List the account's contacts and let the oracle judge them.
    pub(super) async fn audit_contacts(&mut self) -> Result<(), CallError> {
        let listed: Vec<Contact> = self.read_own(Service::Store, "/v1/contacts").await?;
        let plan = &self.world.plan.accounts;
        let email = |other: usize| plan[other].email.clone();
        // Every add the simulator may have sent: the plan's contacts.
        let sent: Vec<(String, String)> = plan[self.index]
            .contacts
            .iter()
            .map(|&other| (display_name(other as usize), email(other as usize)))
            .collect();
        let acknowledged: Vec<(String, String)> = self
            .contacts
            .iter()
            .map(|(name, &other)| (name.clone(), email(other)))
            .collect();
        self.oracle().on_contacts_listed(
            self.principal,
            &sent,
            &acknowledged,
            &listed,
            sim_now_ms(),
        );
        Ok(())
    }
}
