//! The oracle: an independent model of ground truth and the invariant checks.
//!
//! The oracle learns what truly happened from the workload (who captured
//! which utterance, when its upload was acknowledged) and judges everything
//! any principal received by the watermark decoded from the bytes — never by
//! the SUT's ids, owners or manifests. Each check also counts its positive
//! control, so a run in which nothing was delivered cannot pass as "no leak".

pub mod addresses;
pub mod adversary;
pub mod audio;
pub mod books;
pub mod claims;
pub mod closed;
mod contacts;
pub mod contract;
pub mod deadlines;
pub mod driver;
pub mod durable;
pub mod entries;
mod events;
pub mod feed;
pub mod handover;
pub mod history;
mod household;
mod leases;
pub mod limits;
mod live_check;
pub mod lockout;
mod observations;
pub mod panics;
pub mod poison;
mod races;
pub mod recycled;
pub mod replies;
mod snapshot;
mod tickets;
pub use snapshot::ServiceClock;
mod steps;
mod unanswered;
#[cfg(test)]
mod verdict_tests;

use crate::watermark::{Decoded, WatermarkKey};
use contract::{FaultLog, ServerError};
pub use events::Event;
pub use household::SpokenListing;
pub use observations::{DownloadNext, SpokenNext, StepFailure};
use panics::ServicePanic;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};

/// The invariants of docs/design.md this build checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Invariant {
    /// 1: every recording a principal receives is their own.
    Isolation,
    /// 2: an export holds exactly the subject's recordings at its snapshot.
    Exactness,
    /// 3: a recording whose deletion was acknowledged is never delivered again.
    Erasure,
    /// 4: a download link works only for its subject, within its limits.
    LinkBinding,
    /// 6: a reply carries what was asked for, intact and attributable.
    RequestIntegrity,
    /// 7: an acknowledged recording is never lost except by its deletion.
    Durability,
    /// 8: every accepted export completes within its deadline.
    Liveness,
    /// 9: broadcast audio heard by many homes causes no purchase or message.
    BroadcastActed,
    /// 10: every support-agent error and impersonation is blocked or harmless.
    AgentContainment,
    /// 11: a service answers 5xx only near an injected fault, and never panics.
    ApiContract,
    /// Another account's id, a tampered token or a wrong credential was
    /// not refused exactly as if the thing did not exist.
    AccessControl,
}

impl Invariant {
    /// The invariant's short name, as in reports and tables.
    pub fn short(self) -> &'static str {
        match self {
            Invariant::Isolation => "isolation",
            Invariant::Exactness => "exactness",
            Invariant::Erasure => "erasure",
            Invariant::LinkBinding => "link binding",
            Invariant::RequestIntegrity => "request integrity",
            Invariant::Durability => "durability",
            Invariant::Liveness => "liveness",
            Invariant::BroadcastActed => "broadcast never acts",
            Invariant::AgentContainment => "agent containment",
            Invariant::ApiContract => "api contract",
            Invariant::AccessControl => "access control",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Invariant::Isolation => {
                "isolation (invariant 1): a principal received a recording that is not theirs"
            }
            Invariant::Exactness => {
                "exactness (invariant 2): an export is not exactly the subject's recordings at its snapshot"
            }
            Invariant::Erasure => {
                "erasure (invariant 3): a recording was delivered after its deletion was acknowledged"
            }
            Invariant::Durability => {
                "durability (invariant 7): an acknowledged recording or change was lost (not by a deletion)"
            }
            Invariant::LinkBinding => {
                "link binding (invariant 4): a download link worked for someone other than its subject, past its download limit or after its expiry, or died before any of these"
            }
            Invariant::RequestIntegrity => {
                "request integrity (invariant 6): a reply did not carry what was asked for"
            }
            Invariant::Liveness => {
                "liveness (invariant 8): an accepted export did not complete in time"
            }
            Invariant::AgentContainment => {
                "agent mistakes stay contained (invariant 10): a support error or an impersonation reached someone's data"
            }
            Invariant::BroadcastActed => {
                "broadcast never acts (invariant 9): broadcast audio placed an order or sent a message"
            }
            Invariant::ApiContract => {
                "api contract (invariant 11): a service failed (5xx, a panic) with no fault injected near it, or broke its own API contract (a publication after a lapsed lease)"
            }
            Invariant::AccessControl => {
                "access control (invariant 12): someone else's id, a tampered token or a wrong credential was not refused as if it did not exist"
            }
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    pub invariant: Invariant,
    pub at_ms: u64,
    /// The offending recording's nonce, when one recording is at fault.
    pub nonce: Option<u64>,
    pub true_owner: Option<String>,
    pub receiver: Option<String>,
    /// The provenance chain and what was expected.
    pub detail: String,
}

/// How often one kind of adversarial attempt (or probe) was made, and how
/// often the answer was the refusal (or the forgetting) the contract demands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Attempts {
    pub attempted: u64,
    pub refused: u64,
}

/// Defines [`Controls`] and its [`Controls::add`], which sums every
/// counter: a counter added to the struct is summed by construction, never
/// forgotten (a scenario's seeds are judged on the sum).
macro_rules! controls {
    (
        $(#[$outer:meta])*
        pub struct Controls {
            $(#[$probes_meta:meta])*
            pub probes: $probes:ty,
            $( $(#[$meta:meta])* pub $field:ident: u64, )*
        }
    ) => {
        $(#[$outer])*
        pub struct Controls {
            $(#[$probes_meta])*
            pub probes: $probes,
            $( $(#[$meta])* pub $field: u64, )*
        }

        impl Controls {
            /// Add `other`'s counts to these.
            pub fn add(&mut self, other: &Controls) {
                for (kind, a) in &other.probes {
                    let mine = self.probes.entry(kind).or_default();
                    mine.attempted += a.attempted;
                    mine.refused += a.refused;
                }
                $( self.$field += other.$field; )*
            }
        }
    };
}

controls! {
/// Positive controls: evidence that each check had something to check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Controls {
    /// The curious user's attempts and the probes of acknowledged claims,
    /// per kind (see `workload/adversary.rs`).
    pub probes: BTreeMap<&'static str, Attempts>,
    /// Confirmed messages found in their intended recipient's inbox.
    pub messages_verified_delivered: u64,
    pub utterances_uploaded: u64,
    pub history_items_checked: u64,
    pub own_audio_checked: u64,
    /// Recordings the final audit listed and then played back whole
    /// (`check/durable.rs`; only where the store may lose power).
    #[serde(skip_serializing_if = "is_zero")]
    pub listed_recordings_played_back: u64,
    pub exports_requested: u64,
    pub exports_completed: u64,
    pub archive_recordings_checked: u64,
    /// Every recording any principal received and the oracle judged.
    pub recordings_delivered: u64,
    pub foreign_link_attempts: u64,
    pub foreign_link_refused: u64,
    pub anonymous_link_refused: u64,
    pub guessed_audio_attempts: u64,
    pub guessed_audio_refused: u64,
    pub racy_recordings_allowed: u64,
    pub deletions_acknowledged: u64,
    pub store_crashes: u64,
    /// Store crashes right after it acknowledged a rare write
    /// (`faults/ack_crash.rs`), and acknowledged changes probed after a
    /// power loss (`check/durable.rs`).
    pub store_crashes_after_ack: u64,
    pub acked_states_probed_after_power_loss: u64,
    /// Power losses of the store's disk right after a sync it failed
    /// (`Crash::sync_error`).
    #[serde(skip_serializing_if = "is_zero")]
    pub store_power_losses_after_failed_sync: u64,
    pub export_crashes: u64,
    pub worker_crashes: u64,
    /// Partitions and latency spikes injected.
    pub net_faults: u64,
    /// Fault points inside the services that fired.
    pub sut_faults_fired: u64,
    pub audits_completed: u64,
    /// Acknowledged, undeleted recordings found again by the final audit.
    pub recordings_verified_durable: u64,
    /// Deleted recordings the final audit confirmed gone.
    pub deletions_verified: u64,
    /// Uploads whose outcome was unknown when first sent (store down).
    pub uploads_buffered: u64,
    pub devices_transferred: u64,
    /// Captures made before a transfer and uploaded after it (by the new
    /// owner's hands) — they must stay with the previous owner.
    pub pre_transfer_uploads: u64,
    pub device_resets: u64,
    pub messages_delivered: u64,
    /// Messages whose contact resolved to someone other than intended and
    /// that the sender therefore did not confirm.
    pub messages_refused_by_sender: u64,
    pub inbox_items_checked: u64,
    pub withdrawn_messages_rechecked: u64,
    /// Messages addressed to the caller asked for by id (curious user):
    /// played, and refused (not confirmed to them, or withdrawn).
    pub addressed_messages_played_by_id: u64,
    pub addressed_messages_refused_by_id: u64,
    /// Held orders cancelled because their recording was deleted during
    /// the hold (the store's contract; placing one is a violation).
    pub orders_cancelled_by_deletion: u64,
    pub broadcast_captures: u64,
    /// Of them, heard at their airing time while the household waited for
    /// something long (`workload/airing.rs`).
    pub broadcasts_heard_during_wait: u64,
    /// Utterances two devices of one account captured at the same instant
    /// (two speakers in one room).
    pub captures_by_two_speakers: u64,
    pub broadcast_orders_suppressed: u64,
    pub genuine_orders_placed: u64,
    /// Captures sent without an answer that their owner's own listing then
    /// showed (by the watermark) under a recording id.
    pub unanswered_uploads_named_by_listing: u64,
    /// Orders whose source was such a capture, judged by it.
    pub orders_from_unanswered_uploads: u64,
    /// Orders with an unnamed source, excused because their principal had
    /// a capture sent without an answer that nothing named.
    pub orders_of_unknown_uploads_excused: u64,
    /// Broadcast "send a message" commands the store never let through
    /// (the harness even said "yes" to any it offered for confirmation).
    pub broadcast_messages_suppressed: u64,
    /// Messages spoken at home ("send this to Ann"), held, then confirmed.
    pub spoken_messages_delivered: u64,
    /// Captures of a housemate's voice, filed under the device's owner.
    pub housemate_captures: u64,
    pub accounts_closed: u64,
    pub accounts_recycled: u64,
    pub duplicate_requests_joined: u64,
    pub exports_rate_limited: u64,
    /// Archives refused at download because a recording in them was
    /// deleted (then rebuilt).
    pub archives_revoked: u64,
    /// Archives downloaded after their first build was revoked.
    pub rebuilt_archives_downloaded: u64,
    /// Refusals (410) that could only be revocations, judged against every
    /// later status that offered the same link.
    pub revoked_links_judged: u64,
    /// Uploads the store answered in the very tick of a snapshot claimed
    /// by their owner's archive (the inclusive bound judged).
    pub uploads_stored_at_snapshot_tick: u64,
    /// Workers' publications judged against their lease, those that
    /// reached the service after it lapsed, and those refused as they must.
    pub publications_judged_against_lease: u64,
    pub publications_after_lease_lapsed: u64,
    pub lapsed_publications_refused: u64,
    /// Claims answered 200 judged for a fence no other claim was granted,
    /// and those that claimed an export claimed before (reclaims, rebuilds).
    pub claims_judged_for_a_fresh_fence: u64,
    pub exports_claimed_again: u64,
    /// Claims judged against the export's accepted publications (a ready
    /// export is never claimed again unless a download revoked it).
    pub claims_judged_against_publication: u64,
    /// Power losses of the export host armed inside a publication.
    pub publication_power_losses_armed: u64,
    /// Tickets accepted (202) judged against the store's answered lookups.
    pub tickets_judged_against_lookups: u64,
    pub download_limit_refusals: u64,
    pub tickets_verified: u64,
    pub impersonation_codes_refused: u64,
    pub notified_links_followed: u64,
    /// Feeds read whole and then after the reader's cursor (`feed.rs`), and
    /// the notifications past the cursor the whole read showed, each of
    /// which the cursor's read had to return.
    pub feed_rereads_judged: u64,
    pub feed_items_past_cursor_judged: u64,
    pub agent_actions: u64,
    pub agent_errors_injected: u64,
    pub manual_verifications_refused: u64,
    /// Agent resends that "attached" an archive, refused by the console.
    pub archive_attachments_refused: u64,
    /// Replies from the services whose status the API contract judged.
    pub api_replies_judged: u64,
    /// Server errors (and unanswered sign-ups) excused by a fault near them.
    pub server_errors_excused: u64,
    /// Runs whose service panics were collected by the panic hook.
    pub panic_hooks_installed: u64,
    /// Deletion answers judged against what the request had to delete.
    pub deletion_answers_judged: u64,
    /// Ids a deletion answer named whose owner was not yet known (an
    /// upload whose acknowledgement was still in flight), judged later.
    pub deleted_ids_unknown_owner: u64,
    /// Statuses of foreign-access attempts judged against the exact set.
    pub foreign_statuses_judged: u64,
    /// Service state digests folded into the trace hash.
    pub state_digests_taken: u64,
    /// Requests a service refused as overloaded (503 `overloaded`) that the
    /// client retried after the service's `Retry-After`.
    pub overloaded_retries: u64,
    // The next ones are fed by `replies.rs`, through which every answer
    // any driver received is judged (the simulator's clients, the
    // `export_api` fuzz target, the real-threads harness).
    /// Error answers whose JSON `{"error", "message"}` body was checked.
    pub error_bodies_judged: u64,
    /// Error answers without one (each also a violation).
    #[serde(skip_serializing_if = "is_zero")]
    pub error_bodies_malformed: u64,
    /// Overloaded refusals (503 `overloaded`) judged against the requests
    /// measured in flight inside the service (`load_watch.rs`).
    #[serde(skip_serializing_if = "is_zero")]
    pub load_shedding_judged: u64,
    /// `Retry-After` headers of overloaded refusals judged against the
    /// service's configured seconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub retry_afters_judged: u64,
    /// Transcripts in listings judged character for character against the
    /// text their device sent (archive entries: `archive_entries_judged_whole`).
    pub transcripts_judged_exact: u64,
    /// Leases granted by a claim or renewal judged to end exactly
    /// `lease_ms` after the call (`check/leases.rs`).
    pub lease_grants_judged: u64,
    /// Answers to authenticated requests whose `Cache-Control` was judged:
    /// none may be storable by a shared cache (`replies.rs`).
    pub cache_headers_judged: u64,
    /// Download links found in what a principal received, judged by whose
    /// account they name.
    #[serde(skip_serializing_if = "is_zero")]
    pub links_delivered_judged: u64,
    /// Successful downloads judged against the link's limits (count and
    /// lifetime, by client-observed times; `check/limits.rs`).
    pub downloads_judged_against_limits: u64,
    /// 410 answers to a link's subject judged for a cause.
    pub gone_answers_judged: u64,
    /// Refusals of a link its subject had already used up, and of a link
    /// tried after it must have expired.
    pub downloads_refused_past_limit: u64,
    pub downloads_refused_after_expiry: u64,
    /// Downloads of a link sent after it was known dead (refused, or
    /// replaced by a rebuild) with a definite answer: all must be refused.
    pub dead_links_tried_again: u64,
    /// Rebuilt links (after a revocation) downloaded to their full limit.
    pub rebuilt_links_used_to_limit: u64,
    /// Rebuilt links first seen a link lifetime or more after their
    /// export's first link, and downloaded.
    pub rebuilt_links_late_downloaded: u64,
    /// Downloads of a link sent after one of its archive's recordings was
    /// deleted, whose live check found the store down (it lost power
    /// inside the exchange and came back only after the answer).
    pub downloads_while_store_down_after_deletion: u64,

    /// Archive entries whose audio, transcript, manifest fields and digest
    /// were found to be of one utterance.
    pub archive_entries_judged_whole: u64,
    /// Refusals ("no such thing") of one's own things judged against what
    /// the simulator did (`check/claims.rs`).
    pub refusals_of_own_things_judged: u64,
    // The next two are fed by `races.rs`, which only the real-threads
    // harness calls: left out of a summary while zero.
    /// Requests about a recording answered while a deletion of it was in
    /// flight (real threads; either answer allowed).
    #[serde(skip_serializing_if = "is_zero")]
    pub requests_raced: u64,
    /// Probes of every claim sent after every writer stopped (real threads).
    #[serde(skip_serializing_if = "is_zero")]
    pub quiescent_probes: u64,
    /// Requests about a recording sent after a deletion of it was
    /// acknowledged (real threads' deletion storms): each must find it gone.
    #[serde(skip_serializing_if = "is_zero")]
    pub requests_after_deletion_acked: u64,
    /// Archives whose manifest's snapshot claim was judged against ground
    /// truth (`check/snapshot.rs`).
    pub snapshot_claims_judged: u64,
    /// Contact lists read back and judged (`check/contacts.rs`).
    pub contact_lists_judged: u64,
    /// Uploads of a closed account's captures judged, and those refused
    /// with 410 (`check/closed.rs`).
    pub uploads_for_closed_accounts_judged: u64,
    pub uploads_refused_owner_closed: u64,
    /// Moving out (`workload/handover.rs`): captures a sold device flushed
    /// under its buyer after its seller's closing was acknowledged, spoken
    /// orders and messages among the captures it flushed, and the buyer's
    /// orders and messages listings judged after the flush. Left out of a
    /// summary while zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub moved_out_captures_flushed_after_close: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub moved_out_intents_flushed: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub moving_in_listings_judged: u64,
    /// Outgoing messages whose recording was judged to be the lister's own
    /// capture (`check/household.rs`).
    #[serde(skip_serializing_if = "is_zero")]
    pub outgoing_messages_judged: u64,
    /// The agent's extensions of a request's deadline (`check/deadlines.rs`):
    /// granted, and refused because the request was already extended, the
    /// number was no request's, or the reason was blank or too long.
    pub extensions_granted: u64,
    pub extensions_refused_twice: u64,
    pub extensions_refused_unknown_export: u64,
    pub extensions_refused_bad_reason: u64,
    /// Extended requests whose liveness was judged on the extended deadline
    /// (their subject's status, an overdue read past the first due date).
    pub extended_requests_judged_on_liveness: u64,
    /// Collection reads of the export worker the store refused with a
    /// transient 503 (`faults/poison.rs`); left out of a summary while zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub collection_reads_refused: u64,
    /// The poisoned subject's collection reads the store refused, and the
    /// runs whose retries of that job were judged (`check/poison.rs`).
    #[serde(skip_serializing_if = "is_zero")]
    pub poisoned_reads_refused: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub poison_retries_judged: u64,
    /// Poisoned subjects' exports seen `failed` after their attempts, and
    /// asked for again once the fault healed.
    #[serde(skip_serializing_if = "is_zero")]
    pub poison_give_ups_seen: u64,
    /// Audit-log entries the agent read and the oracle matched against the
    /// agent's own actions, and of them refusals (or failures) judged.
    pub audit_entries_judged: u64,
    pub audit_refusals_judged: u64,
    /// Reads of the overdue queue judged, and exports known undelivered
    /// and past due that a read had to list.
    pub overdue_listings_judged: u64,
    pub overdue_exports_required: u64,
    /// Extended requests known undelivered past their first due date that
    /// an overdue read had to leave out, counted per read.
    pub overdue_listings_judged_with_extended: u64,
    /// Links re-sent for tickets whose subject closed and whose address
    /// was signed up again, and of them refused.
    pub callbacks_after_recycling: u64,
    pub callbacks_after_recycling_refused: u64,
    /// Captures of always-on speakers, which upload on their own
    /// (`workload/devices.rs`).
    pub ambient_captures: u64,
    /// Uploads of an archive's subject acknowledged after the export was
    /// requested and before it was seen ready (they raced its build),
    /// counted in every archive judged (`check/snapshot.rs`).
    pub uploads_raced_export_build: u64,
    /// Walks of a history longer than the store's page clamp, and the items
    /// they listed past it (`check/history.rs`).
    pub history_walks_past_page_clamp: u64,
    pub history_items_past_page_clamp: u64,
    /// Full walks of a history (other than the final audit's) judged for
    /// acknowledged recordings they lost.
    pub history_walks_judged_whole: u64,
    /// "Delete all my history" requests answered, the recordings they
    /// covered, and those a full walk afterwards had forgotten.
    pub delete_all_requests: u64,
    pub delete_all_recordings_covered: u64,
    pub delete_all_forgotten_by_history: u64,
    /// Archives judged that held more recordings than one store page.
    pub archives_past_page_clamp: u64,
    /// Requests carrying an address judged against who held it
    /// (`check/addresses.rs`), and of them those by awkward addresses;
    /// lookups the store answered judged so, and sign-ins with the right
    /// password judged to open one's own account.
    pub address_requests_judged: u64,
    pub awkward_address_requests_judged: u64,
    pub lookups_judged_against_holders: u64,
    pub sign_ins_judged: u64,
    /// Captures of a real length (`check/audio.rs`): stored, stored at
    /// exactly the API's limit, refused one byte past it (413 with a JSON
    /// error), and delivered byte for byte as captured.
    #[serde(skip_serializing_if = "is_zero")]
    pub large_captures_uploaded: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub captures_at_limit_uploaded: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub oversized_captures_refused: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub large_captures_delivered_whole: u64,
    /// Audio deliveries of one capture compared byte for byte with it.
    pub audio_deliveries_judged_whole: u64,
}
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What the oracle knows about one utterance.
#[derive(Clone, Debug)]
pub struct Utterance {
    pub owner: usize,
    pub device: u32,
    pub upload_started_ms: u64,
    pub acked_ms: Option<u64>,
    pub recording_id: Option<u64>,
    /// When a deletion covering it was first sent, and when one was acknowledged.
    pub deletion_started_ms: Option<u64>,
    pub deletion_acked_ms: Option<u64>,
    /// Principals its owner deliberately sent it to (confirmed messages).
    pub sent_to: BTreeSet<usize>,
    /// Captured from broadcast audio, not spoken by anyone in the home.
    pub broadcast: bool,
    /// The capture time as the device sent it (its clock, skew and all):
    /// what a range deletion selects by.
    pub captured_at_ms: Option<u64>,
    /// The transcript as the device sent it: every copy delivered back must
    /// be the same text, character for character.
    pub transcript: Option<String>,
}

/// What a deletion request asked the store to delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletionScope {
    /// One recording, by id.
    One(u64),
    /// Every own recording whose capture time (as the device sent it) is
    /// in `from_ms..=to_ms`.
    Range { from_ms: u64, to_ms: u64 },
    /// Everything the account holds (closing it).
    All,
}

impl DeletionScope {
    fn covers(self, recording_id: u64, captured_at_ms: Option<u64>) -> bool {
        match self {
            DeletionScope::One(id) => id == recording_id,
            DeletionScope::Range { from_ms, to_ms } => {
                captured_at_ms.is_some_and(|at| (from_ms..=to_ms).contains(&at))
            }
            DeletionScope::All => true,
        }
    }
}

/// A recording id a deletion answer named before anyone knew whose upload
/// it was (its acknowledgement still in flight): judged when it is known.
#[derive(Clone, Copy, Debug)]
struct UnresolvedDeletion {
    requester: usize,
    scope: DeletionScope,
    at_ms: u64,
}

/// What the oracle knows about one person.
#[derive(Clone, Debug, Default)]
pub struct Person {
    pub email: String,
    pub account_id: Option<u64>,
}

pub struct Oracle {
    key: WatermarkKey,
    pub people: Vec<Person>,
    utterances: BTreeMap<u64, Utterance>,
    /// Indices over `utterances`, so that no single observation scans every
    /// utterance of the world (the oracle's cost stays linear in its size).
    index: UtteranceIndex,
    /// Recording id -> when the store acknowledged deleting it.
    deleted_recordings: BTreeMap<u64, u64>,
    /// Ids deletion answers named, not yet known to be anyone's upload.
    unresolved_deletions: BTreeMap<u64, UnresolvedDeletion>,
    /// Server errors received, judged at the end against the fault log.
    server_errors: Vec<ServerError>,
    /// Every 503 `overloaded` a client received (also those it waited out)
    /// with its `Retry-After` when the client read it, judged against the
    /// load measured inside the service.
    overloaded_answers: Vec<(ServerError, Option<String>)>,
    /// Confirmed messages: (nonce, recipient principal) -> when the store
    /// acknowledged the confirmation.
    confirmed_messages: BTreeMap<(u64, usize), u64>,
    /// The export contract's limits and what clients saw of every link.
    limits: limits::LimitsLedger,
    /// Downloads whose live check could not reach the store.
    live_check: live_check::LiveCheckLedger,
    claims: claims::ClaimsLedger,
    /// The ticket lockout's limit and the wrong codes surely counted.
    lockout: lockout::LockoutLedger,
    /// How long the store holds a spoken command (`learn_hold`; the
    /// planned stores' hold unless told otherwise).
    hold_ms: u64,
    /// How the services' clock reads in this oracle's times.
    service_clock: snapshot::ServiceClock,
    /// When the store answered each upload, seen at its door (the
    /// simulator's runs only; `check/snapshot.rs`).
    upload_door: Option<crate::upload_watch::UploadDoor>,
    /// When each principal's account closing was acknowledged.
    closed: closed::ClosedLedger,
    /// Tickets verified after their address changed hands.
    handover: handover::HandoverLedger,
    /// Uploads sent without an answer, and the ids listings named them by.
    unanswered: unanswered::UnansweredLedger,
    /// The poisoned subject, and when their export gave up.
    poison: poison::PoisonLedger,
    /// The agent's actions, its books as read, and what they must show.
    books: books::BooksLedger,
    /// The requests' deadlines and the agent's extensions of them.
    deadlines: deadlines::DeadlineLedger,
    /// Who held which address when (`check/addresses.rs`).
    addresses: addresses::AddressLedger,
    /// Each capture's length and digest (`check/audio.rs`).
    audio: audio::AudioLedger,
    /// Only the oracle records a verdict (see ARCHITECTURE.md).
    violations: Vec<Violation>,
    /// Only the oracle counts; everyone else reads [`Oracle::controls`].
    controls: Controls,
}

/// Indices over the oracle's utterances, kept as they are recorded.
#[derive(Debug, Default)]
struct UtteranceIndex {
    /// Owner principal -> nonces (an utterance's owner never changes).
    by_owner: BTreeMap<usize, BTreeSet<u64>>,
    /// Recipient principal -> nonces deliberately sent to them.
    by_recipient: BTreeMap<usize, BTreeSet<u64>>,
    /// Acknowledged recording id -> the lowest nonce acknowledged under it.
    by_recording: BTreeMap<u64, u64>,
}

/// What one archive held, read by the oracle itself.
#[derive(Debug, Default)]
pub struct ArchiveContents {
    /// Nonces decoded from audio entries, one per mark (duplicates kept).
    pub audio: Vec<u64>,
    /// Nonces decoded from any text in JSON entries (the manifest).
    pub text: Vec<u64>,
    pub invalid_marks: usize,
    /// Each manifest entry as read from the bytes (empty when there is no
    /// manifest in the contract's format), and files no entry names.
    pub entries: Vec<entries::EntryView>,
    pub unnamed_files: Vec<String>,
    /// The archive has no `manifest.json` in the contract's format.
    pub manifest_missing: bool,
    /// The snapshot time the manifest claims, when there is a manifest.
    pub snapshot_at_ms: Option<u64>,
}

impl Oracle {
    pub fn new(key: WatermarkKey, emails: Vec<String>) -> Self {
        let mut addresses = addresses::AddressLedger::default();
        for (principal, email) in emails.iter().enumerate() {
            addresses.note_principal(principal, email);
        }
        let people = emails
            .into_iter()
            .map(|email| Person {
                email,
                account_id: None,
            })
            .collect();
        Self {
            key,
            people,
            utterances: BTreeMap::new(),
            index: UtteranceIndex::default(),
            deleted_recordings: BTreeMap::new(),
            unresolved_deletions: BTreeMap::new(),
            server_errors: Vec::new(),
            overloaded_answers: Vec::new(),
            confirmed_messages: BTreeMap::new(),
            limits: limits::LimitsLedger::default(),
            live_check: live_check::LiveCheckLedger::default(),
            claims: claims::ClaimsLedger::default(),
            lockout: lockout::LockoutLedger::default(),
            hold_ms: crate::plan::STORE_HOLD_MS,
            service_clock: snapshot::ServiceClock::default(),
            upload_door: None,
            closed: closed::ClosedLedger::default(),
            handover: handover::HandoverLedger::default(),
            unanswered: unanswered::UnansweredLedger::default(),
            poison: poison::PoisonLedger::default(),
            books: books::BooksLedger::default(),
            deadlines: deadlines::DeadlineLedger::default(),
            addresses,
            audio: audio::AudioLedger::default(),
            violations: Vec::new(),
            controls: Controls::default(),
        }
    }

    pub fn key(&self) -> &WatermarkKey {
        &self.key
    }

    /// The positive controls so far, read-only: only the oracle counts.
    /// The workload reports observations (`on_*`, [`Oracle::on`]) and the
    /// oracle decides what they prove, so a counter cannot be bumped from
    /// outside `check/`:
    ///
    /// ```compile_fail,E0616
    /// fn bump(oracle: &mut crosstalk_sim::check::Oracle) {
    ///     oracle.controls.exports_requested += 1;
    /// }
    /// ```
    ///
    /// while reading them is fine:
    ///
    /// ```
    /// fn read(oracle: &crosstalk_sim::check::Oracle) -> u64 {
    ///     oracle.controls().exports_requested
    /// }
    /// ```
    pub fn controls(&self) -> &Controls {
        &self.controls
    }

    /// The violations recorded so far, read-only: a verdict is the
    /// oracle's alone, so nothing outside `check/` can record one:
    ///
    /// ```compile_fail,E0624
    /// fn accuse(oracle: &mut crosstalk_sim::check::Oracle) {
    ///     let detail = String::from("the workload decided");
    ///     let liveness = crosstalk_sim::check::Invariant::Liveness;
    ///     oracle.violate(liveness, 0, None, None, detail);
    /// }
    /// ```
    ///
    /// ```compile_fail,E0616
    /// fn accuse(oracle: &mut crosstalk_sim::check::Oracle) {
    ///     oracle.violations.clear();
    /// }
    /// ```
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    pub fn who(&self, person: usize) -> String {
        match self.people.get(person) {
            Some(Person {
                email,
                account_id: Some(id),
            }) => format!("{email} (acct-{id})"),
            Some(Person {
                email,
                account_id: None,
            }) => email.clone(),
            None => format!("person #{person}"),
        }
    }

    pub fn utterance_started(&mut self, nonce: u64, owner: usize, device: u32, at_ms: u64) {
        if !self.utterances.contains_key(&nonce) {
            self.index.by_owner.entry(owner).or_default().insert(nonce);
        }
        self.utterances.entry(nonce).or_insert(Utterance {
            owner,
            device,
            upload_started_ms: at_ms,
            acked_ms: None,
            recording_id: None,
            deletion_started_ms: None,
            deletion_acked_ms: None,
            sent_to: BTreeSet::new(),
            broadcast: false,
            captured_at_ms: None,
            transcript: None,
        });
    }

    /// The device stamped `nonce`'s capture with `captured_at_ms`.
    pub fn utterance_captured_at(&mut self, nonce: u64, captured_at_ms: u64) {
        if let Some(u) = self.utterances.get_mut(&nonce) {
            u.captured_at_ms.get_or_insert(captured_at_ms);
        }
    }

    /// `nonce` was captured from broadcast audio.
    pub fn mark_broadcast(&mut self, nonce: u64) {
        if let Some(u) = self.utterances.get_mut(&nonce) {
            u.broadcast = true;
            self.controls.broadcast_captures += 1;
        }
    }

    pub fn is_broadcast(&self, nonce: u64) -> bool {
        self.utterances.get(&nonce).is_some_and(|u| u.broadcast)
    }

    /// Its owner confirmed sending `nonce` to `recipient`.
    pub fn sent(&mut self, nonce: u64, recipient: usize) {
        if let Some(u) = self.utterances.get_mut(&nonce) {
            u.sent_to.insert(recipient);
            self.index
                .by_recipient
                .entry(recipient)
                .or_default()
                .insert(nonce);
        }
    }

    /// A new principal (a new sign-up, possibly with a recycled email).
    pub fn add_principal(&mut self, email: String) -> usize {
        self.addresses.note_principal(self.people.len(), &email);
        self.people.push(Person {
            email,
            account_id: None,
        });
        self.people.len() - 1
    }

    /// `principal` closed their account: the store acknowledged deleting
    /// everything they had.
    pub fn account_closed(&mut self, principal: usize, at_ms: u64) {
        self.controls.accounts_closed += 1;
        self.books_deleting(principal);
        self.closed.note(principal, at_ms);
        let owned: Vec<u64> = self.owned_by(principal).map(|(n, _)| *n).collect();
        for nonce in owned {
            self.deletion_acked(nonce, at_ms);
        }
    }

    /// A deletion covering `nonce` was sent (its outcome not yet known).
    pub fn deletion_started(&mut self, nonce: u64, at_ms: u64) {
        if let Some(u) = self.utterances.get_mut(&nonce) {
            u.deletion_started_ms.get_or_insert(at_ms);
            let owner = u.owner;
            self.books_deleting(owner);
        }
    }

    /// The store acknowledged that `nonce`'s recording is deleted.
    pub fn deletion_acked(&mut self, nonce: u64, at_ms: u64) {
        if let Some(u) = self.utterances.get_mut(&nonce)
            && u.deletion_acked_ms.is_none()
        {
            u.deletion_started_ms.get_or_insert(at_ms);
            u.deletion_acked_ms = Some(at_ms);
            self.controls.deletions_acknowledged += 1;
        }
    }

    /// Final audit of `person`'s complete history, taken after every fault
    /// healed and every buffered upload was flushed: every acknowledged,
    /// undeleted recording must be there; every deleted one must not.
    pub fn audit_history(
        &mut self,
        person: usize,
        listed: &BTreeSet<u64>,
        started_ms: u64,
        at_ms: u64,
    ) {
        self.controls.audits_completed += 1;
        let owned: Vec<(u64, Utterance)> = self
            .owned_by(person)
            .map(|(n, u)| (*n, u.clone()))
            .collect();
        for (nonce, u) in owned {
            let present = listed.contains(&nonce);
            if u.deletion_acked_ms.is_some() {
                if present {
                    let detail = format!(
                        "{}; still listed by the final audit",
                        self.provenance(nonce, &u)
                    );
                    self.violate(Invariant::Erasure, at_ms, Some(nonce), Some(person), detail);
                } else {
                    self.controls.deletions_verified += 1;
                }
            } else if u.acked_ms.is_some_and(|ack| ack <= started_ms)
                && u.deletion_started_ms.is_none()
            {
                if present {
                    self.controls.recordings_verified_durable += 1;
                } else {
                    let detail = format!(
                        "{}; missing from the final audit of its owner's history",
                        self.provenance(nonce, &u)
                    );
                    self.violate(
                        Invariant::Durability,
                        at_ms,
                        Some(nonce),
                        Some(person),
                        detail,
                    );
                }
            }
        }
    }

    /// A device sent `transcript` in an upload: the text of the utterance
    /// whose mark it carries, as ground truth (the first text sent wins).
    pub fn transcript_sent(&mut self, transcript: &str) {
        let decoded = self.key.decode_transcript(transcript);
        if let [nonce] = decoded.nonces[..]
            && let Some(u) = self.utterances.get_mut(&nonce)
        {
            u.transcript.get_or_insert_with(|| transcript.to_string());
        }
    }

    /// A listing gave `receiver` `transcript` for one of their recordings:
    /// it must be the text its device sent, character for character (a
    /// transcript escaped, truncated, re-encoded or normalised on its way
    /// through the services is not the person's data any more).
    pub fn judge_transcript(
        &mut self,
        receiver: usize,
        channel: &str,
        transcript: &str,
        at_ms: u64,
    ) {
        let decoded = self.key.decode_transcript(transcript);
        let [nonce] = decoded.nonces[..] else {
            return;
        };
        let Some(sent) = self
            .utterances
            .get(&nonce)
            .and_then(|u| u.transcript.clone())
        else {
            return;
        };
        self.controls.transcripts_judged_exact += 1;
        if sent != transcript {
            let detail = format!(
                "the transcript of utterance {nonce:016x} delivered via {channel} is not the one its device sent: sent {sent:?}, given {transcript:?}"
            );
            self.violate(
                Invariant::RequestIntegrity,
                at_ms,
                Some(nonce),
                Some(receiver),
                detail,
            );
        }
    }

    pub fn utterance_acked(&mut self, nonce: u64, recording_id: u64, at_ms: u64) {
        if let Some(u) = self.utterances.get_mut(&nonce)
            && u.acked_ms.is_none()
        {
            u.acked_ms = Some(at_ms);
            u.recording_id = Some(recording_id);
            let first = self.index.by_recording.entry(recording_id).or_insert(nonce);
            *first = (*first).min(nonce);
            self.controls.utterances_uploaded += 1;
        }
        // An upload whose first answer was lost, named by a deletion answer
        // before its retry was answered (the store keeps the upload key and
        // answers the retry with the deleted recording's id): judge the
        // deletion now that the recording's owner is known.
        if let Some(pending) = self.unresolved_deletions.remove(&recording_id) {
            self.judge_deleted_id(
                pending.requester,
                pending.scope,
                recording_id,
                pending.at_ms,
            );
        }
        if let Some(&deleted_at) = self.deleted_recordings.get(&recording_id) {
            self.deletion_acked(nonce, deleted_at);
        }
    }

    /// Judge the store's answer to a deletion `requester` sent at
    /// `sent_ms` for `scope`, naming `named` as deleted. Only the
    /// requester's own recordings the scope covers may be named: a foreign
    /// recording is an isolation violation (and it is *not* marked deleted,
    /// so its owner's final audit reports it lost), an own one outside the
    /// scope a request-integrity violation. Every own recording whose upload
    /// was acknowledged before the request was sent and that the scope
    /// covers is deleted from now on, named or not (the final audit and the
    /// erasure probes catch survivors); uploads still in flight go either
    /// way, as the answer says.
    pub fn judge_deletion(
        &mut self,
        requester: usize,
        scope: DeletionScope,
        named: &[u64],
        sent_ms: u64,
        at_ms: u64,
    ) {
        self.controls.deletion_answers_judged += 1;
        self.books_deleting(requester);
        for &id in named {
            if self.nonce_of_recording(id).is_some() {
                self.judge_deleted_id(requester, scope, id, at_ms);
            } else {
                self.controls.deleted_ids_unknown_owner += 1;
                self.unresolved_deletions.insert(
                    id,
                    UnresolvedDeletion {
                        requester,
                        scope,
                        at_ms,
                    },
                );
            }
        }
        let covered: Vec<u64> = self
            .owned_by(requester)
            .filter(|(_, u)| {
                u.acked_ms.is_some_and(|ack| ack <= sent_ms)
                    && u.recording_id
                        .is_some_and(|id| scope.covers(id, u.captured_at_ms))
            })
            .map(|(n, _)| *n)
            .collect();
        for nonce in covered {
            self.deletion_acked(nonce, at_ms);
        }
    }

    /// One id a deletion answer named, its owner known.
    fn judge_deleted_id(&mut self, requester: usize, scope: DeletionScope, id: u64, at_ms: u64) {
        let Some(nonce) = self.nonce_of_recording(id) else {
            return;
        };
        let Some(u) = self.utterances.get(&nonce).cloned() else {
            return;
        };
        if u.owner != requester {
            let detail = format!(
                "{}; named as deleted in the answer to a {scope:?} deletion by {}",
                self.provenance(nonce, &u),
                self.who(requester)
            );
            self.violate(
                Invariant::Isolation,
                at_ms,
                Some(nonce),
                Some(requester),
                detail,
            );
        } else if !scope.covers(id, u.captured_at_ms) {
            let detail = format!(
                "{}; captured at {:?} ms (device clock), named as deleted in the answer to a {scope:?} deletion",
                self.provenance(nonce, &u),
                u.captured_at_ms
            );
            self.violate(
                Invariant::RequestIntegrity,
                at_ms,
                Some(nonce),
                Some(requester),
                detail,
            );
        } else {
            self.deleted_recordings.entry(id).or_insert(at_ms);
            self.deletion_acked(nonce, at_ms);
        }
    }

    /// A service answered; its status is judged by the API contract.
    pub fn reply_judged(&mut self) {
        self.controls.api_replies_judged += 1;
    }

    /// A service answered 5xx (or a sign-up got no answer at all): judged
    /// at the end of the run, when every fault window is known.
    pub fn server_error(&mut self, error: ServerError) {
        self.server_errors.push(error);
    }

    /// A service refused a request as overloaded (503 `overloaded`) and the
    /// client waited it out: judged at the end of the run against the load
    /// measured inside the service ([`Self::judge_load_shedding`]).
    pub fn overloaded_answer(&mut self, answer: ServerError, retry_after: Option<String>) {
        self.overloaded_answers.push((answer, retry_after));
    }

    /// Every overloaded refusal from `service` (its bound `max_in_flight`
    /// requests at once), held against `gauge`, the requests the simulator
    /// measured inside it: the service claimed its bound was reached, so at
    /// some moment of the request's lifetime at least that many must have
    /// been in flight. A refusal below the bound is the service's own count
    /// gone wrong (a leak on some path: it ends by refusing everyone).
    /// Each refusal's `Retry-After` (where the client read it) must say
    /// the service's configured `retry_after_s` in seconds (RFC 9110
    /// §10.2.3): a fleet of clients honours it to the letter, so a value in
    /// the wrong unit stalls every device for a thousand times longer.
    pub fn judge_load_shedding(
        &mut self,
        service: &str,
        gauge: &crate::load_watch::LoadGauge,
        limits: crosstalk_service::ServeLimits,
    ) {
        let max_in_flight = limits.max_in_flight;
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.overloaded_answers)
            .into_iter()
            .partition(|(a, _)| a.service == service);
        self.overloaded_answers = others;
        for (answer, retry_after) in mine {
            self.controls.load_shedding_judged += 1;
            if let Some(retry_after) = retry_after {
                self.judge_retry_after(&answer, &retry_after, limits.retry_after_s);
            }
            let peak = gauge.peak(answer.sent_ms, answer.at_ms);
            if peak >= max_in_flight {
                continue;
            }
            let detail = format!(
                "{} to the {service} service, sent at {} ms, was refused as overloaded at {} ms, while at most {peak} requests were in flight inside the service (its bound is {max_in_flight}): the service's count of requests in flight is wrong",
                answer.request, answer.sent_ms, answer.at_ms
            );
            self.violate(
                Invariant::ApiContract,
                answer.at_ms,
                None,
                answer.principal,
                detail,
            );
        }
    }

    fn judge_retry_after(&mut self, answer: &ServerError, retry_after: &str, seconds: u32) {
        self.controls.retry_afters_judged += 1;
        if retry_after.trim().parse::<u32>().ok() == Some(seconds) {
            return;
        }
        let detail = format!(
            "{} to the {} service was refused as overloaded at {} ms with Retry-After: {retry_after:?}, not the {seconds} s the service is configured to ask for",
            answer.request, answer.service, answer.at_ms
        );
        self.violate(
            Invariant::ApiContract,
            answer.at_ms,
            None,
            answer.principal,
            detail,
        );
    }

    /// The API contract, judged once the run is over: every server error
    /// with no fault near it, and every panic inside a service, is a
    /// violation.
    pub fn judge_contract(&mut self, log: &FaultLog, panics: Vec<ServicePanic>) {
        self.controls.panic_hooks_installed += 1;
        for panic in panics {
            let detail = format!(
                "a service panicked at {}: {} (the connection was reset, the request's outcome lost)",
                panic.location, panic.message
            );
            self.violate(Invariant::ApiContract, panic.at_ms, None, None, detail);
        }
        for error in std::mem::take(&mut self.server_errors) {
            if error.is_load_shedding() {
                self.controls.server_errors_excused += 1;
                self.overloaded_answers.push((error, None));
                continue;
            }
            if log
                .near(error.service, error.sent_ms, error.at_ms)
                .is_some()
            {
                self.controls.server_errors_excused += 1;
                continue;
            }
            let status = error
                .status
                .map_or("no answer".to_string(), |s| format!("answered {s}"));
            let detail = format!(
                "{} to the {} service, sent at {} ms, {status} at {} ms with no fault injected near it: {}",
                error.request, error.service, error.sent_ms, error.at_ms, error.body
            );
            self.violate(
                Invariant::ApiContract,
                error.at_ms,
                None,
                error.principal,
                detail,
            );
        }
    }

    /// Whether an acknowledged deletion already covered recording `id`.
    pub fn recording_deleted(&self, id: u64) -> bool {
        self.deleted_recordings.contains_key(&id)
    }

    fn provenance(&self, nonce: u64, u: &Utterance) -> String {
        let mut stored = match (u.recording_id, u.acked_ms) {
            (Some(id), Some(at)) => {
                format!("stored on host store as rec-{id}, acknowledged at {at} ms")
            }
            _ => "upload not acknowledged".to_string(),
        };
        match (u.deletion_started_ms, u.deletion_acked_ms) {
            (_, Some(at)) => stored.push_str(&format!(", deletion acknowledged at {at} ms")),
            (Some(at), None) => {
                stored.push_str(&format!(", deletion sent at {at} ms (outcome unknown)"))
            }
            _ => {}
        }
        format!(
            "utterance {nonce:016x} captured by {} on their device #{} at {} ms, {stored}",
            self.who(u.owner),
            u.device,
            u.upload_started_ms
        )
    }

    fn violate(
        &mut self,
        invariant: Invariant,
        at_ms: u64,
        nonce: Option<u64>,
        receiver: Option<usize>,
        detail: String,
    ) {
        let true_owner = nonce
            .and_then(|n| self.utterances.get(&n))
            .map(|u| self.who(u.owner));
        let receiver = receiver.map(|r| self.who(r));
        self.violations.push(Violation {
            invariant,
            at_ms,
            nonce,
            true_owner,
            receiver,
            detail,
        });
    }

    /// Judge recordings `receiver` obtained through `channel`, by a request
    /// sent at `requested_at_ms`. Returns the nonces that were theirs.
    pub fn receive(
        &mut self,
        receiver: usize,
        channel: &str,
        decoded: &Decoded,
        requested_at_ms: u64,
        at_ms: u64,
    ) -> Vec<u64> {
        let mut own = Vec::new();
        if decoded.invalid_marks > 0 {
            self.violate(
                Invariant::RequestIntegrity,
                at_ms,
                None,
                Some(receiver),
                format!(
                    "{} corrupted or forged watermark(s) delivered via {channel}",
                    decoded.invalid_marks
                ),
            );
        }
        for &nonce in &decoded.nonces {
            self.controls.recordings_delivered += 1;
            match self.utterances.get(&nonce).cloned() {
                None => self.violate(
                    Invariant::RequestIntegrity,
                    at_ms,
                    Some(nonce),
                    Some(receiver),
                    format!("validly marked utterance {nonce:016x} that nobody captured, delivered via {channel}"),
                ),
                Some(u) if u.owner != receiver && u.sent_to.contains(&receiver) => {
                    // Deliberately sent to them by its owner.
                    if let Some(deleted_at) = u.deletion_acked_ms
                        && deleted_at < requested_at_ms
                    {
                        let detail = format!(
                            "{}; still delivered to message recipient {} via {channel} requested at {requested_at_ms} ms",
                            self.provenance(nonce, &u),
                            self.who(receiver)
                        );
                        self.violate(Invariant::Erasure, at_ms, Some(nonce), Some(receiver), detail);
                    }
                }
                Some(u) if u.owner != receiver => {
                    let detail = format!("{}; delivered to {} via {channel}", self.provenance(nonce, &u), self.who(receiver));
                    self.violate(Invariant::Isolation, at_ms, Some(nonce), Some(receiver), detail);
                }
                Some(u) => {
                    if let Some(deleted_at) = u.deletion_acked_ms
                        && deleted_at < requested_at_ms
                    {
                        let detail = format!(
                            "{}; delivered to its owner via {channel} requested at {requested_at_ms} ms",
                            self.provenance(nonce, &u)
                        );
                        self.violate(Invariant::Erasure, at_ms, Some(nonce), Some(receiver), detail);
                    }
                    own.push(nonce)
                }
            }
        }
        own
    }

    /// Check a downloaded archive for `subject`: isolation of every entry,
    /// then exactness against the requests' timing.
    ///
    /// Recordings acknowledged before the export was requested must be in it;
    /// recordings whose upload began after the client saw the export ready
    /// must not; anything in between raced the snapshot and may go either way.
    /// Erasure is judged at `download_requested_ms`: a deletion acknowledged
    /// before the download was asked for must not be in what it delivers,
    /// whenever the archive was built.
    #[allow(clippy::too_many_arguments)]
    pub fn check_archive(
        &mut self,
        subject: usize,
        channel: &str,
        contents: &ArchiveContents,
        requested_at_ms: u64,
        ready_seen_ms: u64,
        download_requested_ms: u64,
        at_ms: u64,
    ) {
        let decoded = Decoded {
            nonces: contents.audio.clone(),
            invalid_marks: contents.invalid_marks,
        };
        let own_audio = self.receive(subject, channel, &decoded, download_requested_ms, at_ms);
        self.controls.archive_recordings_checked += contents.audio.len() as u64;
        if contents.audio.len() > crosstalk_store::MAX_PAGE_ITEMS {
            self.controls.archives_past_page_clamp += 1;
        }
        // Transcripts in the manifest are deliveries too.
        let text = Decoded {
            nonces: contents.text.clone(),
            invalid_marks: 0,
        };
        let own_text = self.receive(
            subject,
            &format!("{channel} (manifest)"),
            &text,
            download_requested_ms,
            at_ms,
        );

        self.judge_entries_whole(subject, channel, contents, at_ms);
        self.judge_snapshot_claim(subject, channel, contents, ready_seen_ms, at_ms);
        self.count_raced_uploads(subject, requested_at_ms, ready_seen_ms);
        let mut seen = BTreeSet::new();
        for &nonce in &own_audio {
            if !seen.insert(nonce) {
                self.violate(
                    Invariant::Exactness,
                    at_ms,
                    Some(nonce),
                    Some(subject),
                    format!("{channel} holds utterance {nonce:016x} twice"),
                );
            }
        }
        let audio_set: BTreeSet<u64> = own_audio.iter().copied().collect();
        let text_set: BTreeSet<u64> = own_text.iter().copied().collect();
        self.owner_listed(
            "after deletion: archive",
            subject,
            &audio_set,
            download_requested_ms,
        );
        if audio_set != text_set {
            let differ: Vec<String> = audio_set
                .symmetric_difference(&text_set)
                .map(|n| format!("{n:016x}"))
                .collect();
            self.violate(
                Invariant::Exactness,
                at_ms,
                None,
                Some(subject),
                format!(
                    "{channel}: manifest and audio files disagree on {}",
                    differ.join(", ")
                ),
            );
        }
        let racy = self.judge_presence(subject, &audio_set, at_ms, |u, present| {
            let deleted_before_request =
                u.deletion_acked_ms.is_some_and(|at| at <= requested_at_ms);
            let deletion_raced = u.deletion_started_ms.is_some_and(|at| at <= ready_seen_ms);
            let must = u.acked_ms.is_some_and(|ack| ack <= requested_at_ms) && !deletion_raced;
            let must_not = u.upload_started_ms > ready_seen_ms || deleted_before_request;
            match (must, must_not, present) {
                (true, _, false) => {
                    Presence::Wrong(format!("missing from {channel} requested at {requested_at_ms} ms"))
                }
                (_, true, true) => {
                    let why = if deleted_before_request {
                        "after its deletion"
                    } else {
                        "before its upload began"
                    };
                    Presence::Wrong(format!(
                        "present in {channel} requested at {requested_at_ms} ms, ready at {ready_seen_ms} ms, {why}"
                    ))
                }
                (false, false, _) => Presence::Either,
                _ => Presence::Right,
            }
        });
        self.controls.racy_recordings_allowed += racy;
    }

    /// Hold an archive of `subject` holding the utterances `present` to a
    /// rule: `rule` says of each utterance the subject owns, and whether the
    /// archive has it, if that is right, allowed either way, or wrong (and
    /// why: an exactness violation naming its provenance). The number of
    /// utterances allowed either way.
    fn judge_presence(
        &mut self,
        subject: usize,
        present: &BTreeSet<u64>,
        at_ms: u64,
        rule: impl Fn(&Utterance, bool) -> Presence,
    ) -> u64 {
        let owned: Vec<(u64, Utterance)> = self
            .owned_by(subject)
            .map(|(n, u)| (*n, u.clone()))
            .collect();
        let mut either = 0;
        for (nonce, u) in owned {
            match rule(&u, present.contains(&nonce)) {
                Presence::Right => {}
                Presence::Either => either += 1,
                Presence::Wrong(why) => {
                    let detail = format!("{}; {why}", self.provenance(nonce, &u));
                    self.violate(
                        Invariant::Exactness,
                        at_ms,
                        Some(nonce),
                        Some(subject),
                        detail,
                    );
                }
            }
        }
        either
    }

    /// Read every entry of a zip archive without trusting its layout: audio
    /// marks from every non-JSON entry, transcript markers from every string
    /// in every JSON entry.
    pub fn read_archive(&self, bytes: &[u8]) -> Result<ArchiveContents, String> {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| format!("not a zip archive: {e}"))?;
        let mut contents = ArchiveContents::default();
        let mut files = BTreeMap::new();
        let mut manifest = None;
        for index in 0..zip.len() {
            let mut file = zip
                .by_index(index)
                .map_err(|e| format!("entry {index}: {e}"))?;
            let name = file.name().map(|n| n.to_string()).unwrap_or_default();
            let mut data = Vec::new();
            file.read_to_end(&mut data)
                .map_err(|e| format!("reading {name}: {e}"))?;
            if name.ends_with(".json") {
                let value: serde_json::Value = serde_json::from_slice(&data)
                    .map_err(|e| format!("{name} is not JSON: {e}"))?;
                if name == "manifest.json" {
                    manifest =
                        serde_json::from_value::<crosstalk_model::api::Manifest>(value.clone())
                            .ok();
                }
                let mut strings = Vec::new();
                collect_strings(&value, &mut strings);
                for s in strings {
                    let d = self.key.decode_transcript(s);
                    contents.text.extend(d.nonces);
                    contents.invalid_marks += d.invalid_marks;
                }
            } else {
                let d = self.key.decode_audio(&data);
                contents.audio.extend(d.nonces);
                contents.invalid_marks += d.invalid_marks;
                files.insert(name, data);
            }
        }
        match manifest {
            Some(manifest) => {
                contents.snapshot_at_ms = Some(manifest.snapshot_at_ms);
                (contents.entries, contents.unnamed_files) =
                    entries::entry_views(self, &manifest, &files);
            }
            None => {
                contents.manifest_missing = true;
            }
        }
        Ok(contents)
    }

    /// The principal who owns `nonce`.
    pub fn owner_of(&self, nonce: u64) -> Option<usize> {
        self.utterances.get(&nonce).map(|u| u.owner)
    }

    /// The nonce a recording id was acknowledged under, if any.
    pub fn nonce_of_recording(&self, recording_id: u64) -> Option<u64> {
        self.index.by_recording.get(&recording_id).copied()
    }

    /// The nonces of `owner`'s utterances with their ground truth, in nonce
    /// order.
    fn owned_by(&self, owner: usize) -> impl Iterator<Item = (&u64, &Utterance)> {
        self.index
            .by_owner
            .get(&owner)
            .into_iter()
            .flatten()
            .filter_map(|nonce| self.utterances.get_key_value(nonce))
    }

    /// The utterances deliberately sent to `recipient`, in nonce order.
    fn sent_to(&self, recipient: usize) -> impl Iterator<Item = (&u64, &Utterance)> {
        self.index
            .by_recipient
            .get(&recipient)
            .into_iter()
            .flatten()
            .filter_map(|nonce| self.utterances.get_key_value(nonce))
    }
}

fn collect_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// What an archive's having (or lacking) one utterance is, by some rule.
enum Presence {
    /// As the rule says it must be.
    Right,
    /// The rule allows either (an upload or a deletion raced the build).
    Either,
    /// Wrong, and why.
    Wrong(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oracle_with_two_uploads() -> Oracle {
        let mut oracle = Oracle::new(
            WatermarkKey::for_seed(1),
            vec!["a@example.com".into(), "b@example.com".into()],
        );
        // Person 0's recording rec-10, person 1's rec-11, both captured at
        // 100 ms by their devices' clocks and acknowledged early.
        for (nonce, owner, id) in [(1, 0, 10), (2, 1, 11)] {
            oracle.utterance_started(nonce, owner, 0, 1);
            oracle.utterance_captured_at(nonce, 100);
            oracle.utterance_acked(nonce, id, 5);
        }
        oracle
    }

    #[test]
    fn a_deletion_answer_naming_a_foreign_recording_is_judged_not_believed() {
        let mut oracle = oracle_with_two_uploads();
        let scope = DeletionScope::Range {
            from_ms: 0,
            to_ms: 200,
        };
        oracle.judge_deletion(0, scope, &[10, 11], 10, 12);
        assert_eq!(oracle.violations.len(), 1, "{:?}", oracle.violations);
        assert_eq!(oracle.violations[0].invariant, Invariant::Isolation);
        assert_eq!(oracle.violations[0].nonce, Some(2));
        // The victim's recording is not counted deleted: had the store
        // really deleted it, the victim's audit reports it lost.
        oracle.audit_history(1, &BTreeSet::new(), 20, 20);
        assert_eq!(oracle.violations[1].invariant, Invariant::Durability);
        // The requester's own recording is deleted from now on.
        oracle.audit_history(0, &BTreeSet::new(), 20, 20);
        assert_eq!(oracle.violations.len(), 2);
        assert_eq!(oracle.controls.deletions_verified, 1);
    }

    #[test]
    fn own_recordings_outside_the_range_and_unresolved_foreign_ids_are_violations() {
        let mut oracle = oracle_with_two_uploads();
        let scope = DeletionScope::Range {
            from_ms: 150,
            to_ms: 200,
        };
        // rec-10 is the requester's, but captured before the range; rec-12
        // is nobody's yet (its acknowledgement still in flight).
        oracle.judge_deletion(0, scope, &[10, 12], 10, 12);
        assert_eq!(oracle.violations[0].invariant, Invariant::RequestIntegrity);
        assert_eq!(oracle.controls.deleted_ids_unknown_owner, 1);
        // rec-12 turns out to be person 1's upload: judged then.
        oracle.utterance_started(3, 1, 0, 8);
        oracle.utterance_captured_at(3, 160);
        oracle.utterance_acked(3, 12, 30);
        assert_eq!(oracle.violations.len(), 2, "{:?}", oracle.violations);
        assert_eq!(oracle.violations[1].invariant, Invariant::Isolation);
    }
}
