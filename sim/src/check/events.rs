//! Things the workload and the world saw happen that carry no verdict of
//! their own but prove a check had something to check.
//!
//! The workload names what happened ([`Event`]); the oracle alone decides
//! which positive controls that feeds, so the counters stay private to
//! `check/` (see [`Oracle::controls`]).

use super::Oracle;
use crate::net::{EXPORT_HOST, STORE_HOST};

/// One observation without a verdict, reported with [`Oracle::on`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A partition or latency spike began.
    NetFault,
    /// A service's state digest was folded into the trace.
    StateDigestTaken,
    /// A request refused as overloaded was retried after `Retry-After`.
    OverloadedRetry,
    /// A capture of a housemate's voice was made on a person's device.
    HousemateCapture,
    /// An always-on speaker captured an utterance on its own.
    AmbientCapture,
    /// A broadcast aired while its household waited for something long,
    /// and a device heard it at its airing time (`workload/airing.rs`).
    BroadcastHeardDuringWait,
    /// Two devices of one account captured the same words at the same
    /// instant (`Action::Speak` with `also_heard`).
    CaptureByTwoSpeakers,
    /// A capture made before its device was sold was uploaded after.
    PreTransferUpload,
    /// An upload's outcome was unknown (the store was down); it stays buffered.
    UploadBuffered,
    /// The store answered a sale of a device with new credentials.
    DeviceTransferred,
    /// The store answered a factory reset with new credentials.
    DeviceReset,
    /// A person signed up again with the email of their closed account.
    AccountRecycled,
    /// A person's export request was taken on by the service.
    ExportRequested,
    /// A repeated export request joined the one already under way.
    ExportJoined,
    /// An export request was refused as too frequent (429).
    ExportRateLimited,
    /// A support ticket was verified with the code sent to the subject and
    /// came back with an export.
    TicketVerified,
    /// A support ticket was verified and joined the export one's own
    /// request was still building (no new export).
    TicketJoinedExport,
    /// An item of a person's history was decoded and judged.
    HistoryItemChecked,
    /// A message in a person's inbox was decoded and judged.
    InboxItemChecked,
    /// A message resolved to someone other than meant; the sender refused it.
    MessageRefusedBySender,
    /// A message that left the inbox listing was asked for again by id.
    WithdrawnMessageRechecked,
    /// A message sent from the app was confirmed and delivered.
    MessageDelivered,
    /// A message addressed to the caller, asked for by id, played.
    AddressedMessagePlayedById,
    /// A message addressed to the caller, asked for by id, was refused
    /// (not confirmed by its sender, or withdrawn).
    AddressedMessageRefusedById,
    /// A message spoken at home was confirmed and delivered.
    SpokenMessageDelivered,
    /// A support agent was made to make a mistake.
    AgentMistake,
    /// A person's own live recording was played back and judged.
    OwnAudioChecked,
    /// An export was published (a fuzz driver runs the worker itself).
    ExportCompleted,
    /// Someone else's download link was tried.
    ForeignLinkAttempted,
    /// Someone else's download link was refused.
    ForeignLinkRefused,
    /// A ready archive was revoked (a recording in it was deleted).
    ArchiveRevoked,
    /// A subject downloaded the archive rebuilt after their deletion
    /// revoked the one they were first offered.
    RebuiltArchiveDownloaded,
    /// The agent console refused an agent's say-so as proof of identity.
    ManualVerificationRefused,
    /// The agent console refused an archive attached to a resend.
    ArchiveAttachmentRefused,
}

impl Oracle {
    /// Record that `event` happened.
    pub fn on(&mut self, event: Event) {
        let c = &mut self.controls;
        match event {
            Event::NetFault => c.net_faults += 1,
            Event::StateDigestTaken => c.state_digests_taken += 1,
            Event::OverloadedRetry => c.overloaded_retries += 1,
            Event::HousemateCapture => c.housemate_captures += 1,
            Event::PreTransferUpload => c.pre_transfer_uploads += 1,
            Event::AmbientCapture => c.ambient_captures += 1,
            Event::BroadcastHeardDuringWait => c.broadcasts_heard_during_wait += 1,
            Event::CaptureByTwoSpeakers => c.captures_by_two_speakers += 1,
            Event::UploadBuffered => c.uploads_buffered += 1,
            Event::DeviceTransferred => c.devices_transferred += 1,
            Event::DeviceReset => c.device_resets += 1,
            Event::AccountRecycled => c.accounts_recycled += 1,
            Event::ExportRequested => c.exports_requested += 1,
            Event::ExportJoined => c.duplicate_requests_joined += 1,
            Event::ExportRateLimited => c.exports_rate_limited += 1,
            Event::TicketVerified => {
                c.tickets_verified += 1;
                c.exports_requested += 1;
            }
            Event::TicketJoinedExport => {
                c.tickets_verified += 1;
                c.duplicate_requests_joined += 1;
            }
            Event::HistoryItemChecked => c.history_items_checked += 1,
            Event::InboxItemChecked => c.inbox_items_checked += 1,
            Event::WithdrawnMessageRechecked => c.withdrawn_messages_rechecked += 1,
            Event::MessageRefusedBySender => c.messages_refused_by_sender += 1,
            Event::MessageDelivered => c.messages_delivered += 1,
            Event::AddressedMessagePlayedById => c.addressed_messages_played_by_id += 1,
            Event::AddressedMessageRefusedById => c.addressed_messages_refused_by_id += 1,
            Event::SpokenMessageDelivered => c.spoken_messages_delivered += 1,
            Event::OwnAudioChecked => c.own_audio_checked += 1,
            Event::ExportCompleted => c.exports_completed += 1,
            Event::ForeignLinkAttempted => c.foreign_link_attempts += 1,
            Event::ForeignLinkRefused => c.foreign_link_refused += 1,
            Event::ArchiveRevoked => c.archives_revoked += 1,
            Event::RebuiltArchiveDownloaded => c.rebuilt_archives_downloaded += 1,
            Event::ManualVerificationRefused => c.manual_verifications_refused += 1,
            Event::ArchiveAttachmentRefused => c.archive_attachments_refused += 1,
            Event::AgentMistake => c.agent_errors_injected += 1,
        }
    }

    /// The world crashed `host` (the store, the export service or a worker).
    pub fn on_crash(&mut self, host: &str) {
        match host {
            STORE_HOST => self.controls.store_crashes += 1,
            EXPORT_HOST => self.controls.export_crashes += 1,
            _ => self.controls.worker_crashes += 1,
        }
    }

    /// By the end of the run, `fired` fault points inside the services fired.
    pub fn on_sut_faults_fired(&mut self, fired: u64) {
        self.controls.sut_faults_fired = fired;
    }

    /// By the end of the run, the store refused `refused` of the export
    /// worker's collection reads with a transient 503.
    pub fn on_collection_reads_refused(&mut self, refused: u64) {
        self.controls.collection_reads_refused = refused;
    }
}
