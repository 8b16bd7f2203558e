//! Verdicts on how a client's steps ended (a person's sign-up, actions and
//! final audit), on the support agent's console, and on the world as a
//! whole (a simulation that never went quiet).
//!
//! An unknown outcome (no answer, a 5xx) is not wrong while faults are
//! active; it is judged against the fault log at the end (the API
//! contract) or, once every fault healed, as a liveness failure. An answer
//! outside the API's contract always fails the run.

use super::contract::ServerError;
use super::{Invariant, Oracle, StepFailure};
use crate::net::STORE_HOST;
use http::StatusCode;

impl Oracle {
    /// `principal`'s sign-up (sent at `sent_ms` with `email`) failed at `now`.
    pub fn on_sign_up_failed(
        &mut self,
        principal: usize,
        email: &str,
        failure: StepFailure,
        sent_ms: u64,
        now: u64,
    ) {
        match failure {
            // Judged like a server error: a violation of the API contract
            // unless a fault was near it.
            StepFailure::Unavailable(e) => self.server_error(ServerError {
                service: STORE_HOST,
                request: format!("{email}'s sign-up"),
                status: None,
                body: e,
                principal: Some(principal),
                sent_ms,
                at_ms: now,
            }),
            StepFailure::OutsideContract(e) => {
                let detail =
                    format!("{email}'s sign-up: the service answered outside its contract: {e}");
                self.violate(
                    Invariant::RequestIntegrity,
                    now,
                    None,
                    Some(principal),
                    detail,
                );
            }
        }
    }

    /// `principal`'s action `action` ended with `outcome` at `now`. True
    /// when the person goes on: the action succeeded or its outcome is
    /// unknown (the service was down).
    pub fn on_action_ended(
        &mut self,
        principal: usize,
        action: &str,
        outcome: Result<(), StepFailure>,
        now: u64,
    ) -> bool {
        match outcome {
            Ok(()) | Err(StepFailure::Unavailable(_)) => true,
            Err(StepFailure::OutsideContract(e)) => {
                // An answer outside the API's contract (a 404 for one's own
                // export, a reply that is not what was asked): the services
                // misbehaved. The person stops; the run fails.
                let detail = format!(
                    "{} {action}: the service answered outside its contract: {e}",
                    self.who(principal)
                );
                self.violate(
                    Invariant::RequestIntegrity,
                    now,
                    None,
                    Some(principal),
                    detail,
                );
                false
            }
        }
    }

    /// `principal`'s final audit, run after every fault healed, failed at `now`.
    pub fn on_final_audit_failed(&mut self, principal: usize, failure: StepFailure, now: u64) {
        let (invariant, detail) = match failure {
            StepFailure::Unavailable(e) => (
                Invariant::Liveness,
                format!(
                    "{}'s final audit: the services still failed after every fault healed: {e}",
                    self.who(principal)
                ),
            ),
            StepFailure::OutsideContract(e) => (
                Invariant::RequestIntegrity,
                format!(
                    "{}'s final audit: the service answered outside its contract: {e}",
                    self.who(principal)
                ),
            ),
        };
        self.violate(invariant, now, None, Some(principal), detail);
    }

    /// `principal` gave up at the run's deadline with `buffered` captures
    /// still on their devices, every fault healed: the store never took them.
    pub fn on_uploads_stuck_at_deadline(&mut self, principal: usize, buffered: usize, now: u64) {
        let detail = format!("{buffered} captures still buffered at the deadline");
        self.violate(Invariant::Liveness, now, None, Some(principal), detail);
    }

    /// The agent, talked round, asked the console to accept knowable facts
    /// as proof of identity for `ticket` and got `status`: it must refuse.
    pub fn on_manual_verification(&mut self, ticket: u64, status: StatusCode, now: u64) {
        self.controls.agent_actions += 1;
        if status == StatusCode::FORBIDDEN {
            self.controls.manual_verifications_refused += 1;
        } else if status.is_success() {
            let detail = format!(
                "the console accepted manual identity proof for ticket {ticket} ({status})"
            );
            self.violate(Invariant::AgentContainment, now, None, None, detail);
        }
    }

    /// The agent resent a ticket's link, `attached` an archive or not, and
    /// got `status`: the console must refuse to take an archive at all.
    pub fn on_link_resent(&mut self, attached: bool, status: StatusCode) {
        self.controls.agent_actions += 1;
        if attached && status == StatusCode::BAD_REQUEST {
            self.controls.archive_attachments_refused += 1;
        }
    }

    /// The simulation ended with `error` after `simulated_ms` of the
    /// `duration_ms` it was given. A world still busy at the end is a
    /// liveness violation; any other error is the harness's own, returned.
    pub fn on_simulation_error(
        &mut self,
        error: String,
        duration_ms: u64,
        simulated_ms: u64,
    ) -> Option<String> {
        if !error.contains("Ran for duration") {
            return Some(format!("simulation error: {error}"));
        }
        let detail = format!("the world was still busy after {duration_ms} simulated ms: {error}");
        self.violate(Invariant::Liveness, simulated_ms, None, None, detail);
        None
    }
}
