//! Verdicts on what a fuzz driver saw that no simulated person reports: the
//! `export_api` target calls the services directly and tells the oracle
//! which promise of the API an answer broke; the oracle decides which
//! invariant that is (TigerBeetle's auditor: the driver observes, the
//! auditor judges).

use super::{Invariant, Oracle};

/// A promise of the API that an answer broke, as a driver saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokenPromise {
    /// The body of an answer broke off mid-stream.
    BodyBrokeOff,
    /// A success answer is not the documented JSON.
    NotDocumentedJson,
    /// A sign-up succeeded for an email an open account holds.
    SignUpOfHeldEmail,
    /// A sign-in opened another account than the email's holder.
    SignInOpenedAnother,
    /// A device was registered for a caller without a session.
    DeviceWithoutSession,
    /// The retry of an upload answered another recording, or not as a duplicate.
    RetryAnsweredAnother,
    /// A listing was served to a caller without a session.
    ListingWithoutSession,
    /// A person asked for their own live recording and did not get it.
    OwnRecordingNotServed,
    /// A deletion was accepted from a caller without a session.
    DeletionWithoutSession,
    /// A malformed deletion request was accepted.
    MalformedDeletionAccepted,
    /// A request joined an export of someone else.
    JoinedAnothersExport,
    /// An export was accepted for a caller without a session.
    ExportWithoutSession,
    /// A worker failed a job while the store was reachable.
    WorkerFailedWithStoreUp,
    /// The status of someone else's export was shown.
    AnothersExportStatus,
    /// A download answered 200 with bytes that are no readable archive.
    UnreadableArchive,
    /// A notification feed was served to a caller without a session.
    FeedWithoutSession,
    /// A device sale went through to nobody (no other open account).
    DeviceToNobody,
    /// A sale answered an ownership epoch that does not count the owners.
    WrongOwnershipEpoch,
    /// A new ticket started verified or with an export.
    NewTicketNotAwaiting,
    /// A ticket was verified with a guessed code.
    TicketVerifiedWithGuess,
    /// The agent console verified a ticket on an agent's say-so.
    AgentSaySoVerified,
    /// The agent console took an archive attached to a resend.
    ConsoleTookArchive,
}

impl BrokenPromise {
    /// The invariant an answer breaking this promise violates.
    pub fn invariant(self) -> Invariant {
        match self {
            BrokenPromise::BodyBrokeOff | BrokenPromise::WorkerFailedWithStoreUp => {
                Invariant::ApiContract
            }
            BrokenPromise::ListingWithoutSession
            | BrokenPromise::FeedWithoutSession
            | BrokenPromise::JoinedAnothersExport
            | BrokenPromise::AnothersExportStatus => Invariant::Isolation,
            BrokenPromise::NewTicketNotAwaiting
            | BrokenPromise::TicketVerifiedWithGuess
            | BrokenPromise::AgentSaySoVerified
            | BrokenPromise::ConsoleTookArchive => Invariant::AgentContainment,
            BrokenPromise::DeletionWithoutSession
            | BrokenPromise::MalformedDeletionAccepted
            | BrokenPromise::ExportWithoutSession
            | BrokenPromise::UnreadableArchive
            | BrokenPromise::DeviceToNobody
            | BrokenPromise::WrongOwnershipEpoch
            | BrokenPromise::NotDocumentedJson
            | BrokenPromise::SignUpOfHeldEmail
            | BrokenPromise::SignInOpenedAnother
            | BrokenPromise::DeviceWithoutSession
            | BrokenPromise::RetryAnsweredAnother
            | BrokenPromise::OwnRecordingNotServed => Invariant::RequestIntegrity,
        }
    }
}

impl Oracle {
    /// A driver saw an answer at `now` that broke `promise`; `detail` names
    /// the request and the answer.
    pub fn on_broken_promise(&mut self, promise: BrokenPromise, now: u64, detail: String) {
        self.violate(promise.invariant(), now, None, None, detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_broken_promise_is_a_violation_of_its_invariant() {
        for (promise, invariant) in [
            (BrokenPromise::BodyBrokeOff, Invariant::ApiContract),
            (BrokenPromise::ListingWithoutSession, Invariant::Isolation),
            (
                BrokenPromise::RetryAnsweredAnother,
                Invariant::RequestIntegrity,
            ),
            (
                BrokenPromise::TicketVerifiedWithGuess,
                Invariant::AgentContainment,
            ),
        ] {
            let mut oracle = Oracle::new(crate::watermark::WatermarkKey::for_seed(1), Vec::new());
            assert!(oracle.violations().is_empty());
            oracle.on_broken_promise(promise, 5, format!("{promise:?}"));
            assert_eq!(oracle.violations().len(), 1);
            assert_eq!(oracle.violations()[0].invariant, invariant);
        }
    }
}
