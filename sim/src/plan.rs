//! The plan: everything one run will do, as plain data.
//!
//! A plan is generated from a scenario and a seed (or loaded from a saved
//! failure) and fully determines the run: world size, network model, every
//! account's timed actions with the nonces of their utterances, and the
//! canary switch. Generation uses one ChaCha8 stream seeded from the seed.

use crate::scenario::{Range, Scenario};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

mod broadcasts;
mod chatter;
mod data;
mod faults;
mod handover;
mod heavy;
mod limits;
mod people;
mod probes;

pub use chatter::AmbientCapture;
pub use data::{ADDRESSES_SWARM_NAME, AUDIO_SIZES_SWARM_NAME};
pub use heavy::SWARM_NAME as HEAVY_SWARM_NAME;

/// Chances per thousand of the clients' quirks (`workload/quirks.rs`):
/// unusual but legitimate requests that reach the services' refusals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quirks {
    /// Per person: right after signing up, the app sends the sign-up again
    /// and calls with a session token from another install.
    pub confused_app_per_mille: u32,
    /// Per message sent from the app: the device first hears a name that is
    /// in no contact list.
    pub unknown_contact_per_mille: u32,
    /// Per message resolved to the wrong contact: the sender confirms the
    /// contact they meant ("no, to Ann") instead of only refusing.
    pub corrected_confirmation_per_mille: u32,
    /// Per spoken message: the speaker confirms it during its hold.
    pub early_confirmation_per_mille: u32,
    /// Per spoken message whose recording was deleted: the speaker then
    /// confirms the message that deletion cancelled.
    pub cancelled_confirmation_per_mille: u32,
    /// Per verified ticket: the requester sends the right code again.
    pub repeated_verification_per_mille: u32,
}

impl Quirks {
    /// Whether no quirk is on (plans then serialise as before).
    pub fn is_none(&self) -> bool {
        *self == Quirks::default()
    }

    pub fn validate(&self) -> Result<(), String> {
        let all = [
            self.confused_app_per_mille,
            self.unknown_contact_per_mille,
            self.corrected_confirmation_per_mille,
            self.early_confirmation_per_mille,
            self.cancelled_confirmation_per_mille,
            self.repeated_verification_per_mille,
        ];
        if all.iter().any(|p| *p > 1000) {
            return Err("quirks.*_per_mille: at most 1000".into());
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub scenario: String,
    pub seed: u64,
    /// Features and fault kinds this seed switched off (swarm testing).
    #[serde(default)]
    pub swarm_off: Vec<String>,
    pub tick_ms: u64,
    pub latency_ms_min: u64,
    pub latency_ms_max: u64,
    /// The scenario's override of turmoil's socket capacity (normally
    /// derived from the world's size, see [`crate::world::tcp_capacity`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_capacity: Option<u64>,
    pub client_hosts: u64,
    pub active_ms: u64,
    pub drain_ms: u64,
    pub canary_leak_into_archives: bool,
    /// Harness self-tests only: a wrapper in front of the store breaks it
    /// one way (see [`crate::canary::CanaryBreak`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_break: Option<crate::canary::CanaryBreak>,
    /// Export worker hosts (stateless; they claim jobs with leases).
    pub worker_hosts: u64,
    /// Host crashes (store, export, worker-N), in time order per host; each
    /// host restarts after its downtime.
    pub crashes: Vec<Crash>,
    /// When faults may begin (after sign-up has settled).
    pub crashes_from_ms: u64,
    /// Crashes of the store right after it acknowledges a rare write
    /// (`faults/ack_crash.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ack_crashes: Vec<crate::faults::ack_crash::AckCrashPlan>,
    /// Power losses of the export host inside a publication
    /// (`faults/publish_crash.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish_crashes: Vec<crate::faults::publish_crash::PublishCrashPlan>,
    /// Chance per thousand that a fault point inside the services fires
    /// during the active period.
    #[serde(default)]
    pub sut_fault_points_per_mille: u32,
    /// Network faults between hosts, each healed after its duration.
    #[serde(default)]
    pub net_faults: Vec<NetFault>,
    /// One subject whose collection reads the store refuses for a long
    /// window, so their export job fails again and again
    /// (`faults/poison.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poison: Option<crate::faults::poison::PoisonPlan>,
    /// Injected disk I/O errors during the active period, per million writes
    /// and syncs (drawn per seed from the scenario's range).
    pub store_io_errors_per_million: u32,
    pub accounts: Vec<AccountPlan>,
    /// The support agent's working pattern and mistakes (none: no agent).
    pub agent: Option<AgentPlan>,
    /// Bugs of the planted catalogue to switch on in the services, by name
    /// (`crosstalk hunt`); only a build with the `planted-bugs` feature can
    /// run a plan that names any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planted: Vec<String>,
    /// The export contract's limits this run's export service is
    /// configured with, and the oracle judges by: how long a link lives
    /// after its archive is published, and downloads allowed per archive.
    /// (Plans saved before they were plan data had an hour and three.)
    #[serde(default = "default_link_ttl_ms")]
    pub link_ttl_ms: u64,
    #[serde(default = "default_max_downloads")]
    pub max_downloads: u32,
    /// Wrong codes a support ticket takes before it is rejected, as this
    /// run's export service is configured and the lockout probe learns it
    /// (plans saved before it was plan data had the service's default, 5).
    #[serde(default = "default_ticket_attempts")]
    pub ticket_attempts: u32,
    /// How long the store holds a spoken command before it acts on it, as
    /// this run's store is configured and the oracle and the people learn
    /// it ([`STORE_HOLD_MS`]; plans saved before it was plan data had the
    /// same).
    #[serde(default = "default_hold_ms")]
    pub hold_ms: u64,
    /// Clients' quirks (none in plans saved before they existed).
    #[serde(default, skip_serializing_if = "Quirks::is_none")]
    pub quirks: Quirks,
    /// The real-threads harness's workload, when the scenario runs under
    /// it (then nothing above but the seed, the name and `planted` is read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<crate::threads::ThreadsPlan>,
}

fn default_link_ttl_ms() -> u64 {
    3_600_000
}

fn default_max_downloads() -> u32 {
    3
}

/// The hold every planned store is configured with: two minutes, long
/// enough for the other homes' captures of a broadcast to arrive through
/// the world's outages.
pub const STORE_HOLD_MS: u64 = 120_000;

fn default_hold_ms() -> u64 {
    STORE_HOLD_MS
}

fn default_ticket_attempts() -> u32 {
    crosstalk_export::tickets::MAX_VERIFY_ATTEMPTS
}

/// A support agent working tickets, with a seeded error model. Each error
/// is a chance per thousand actions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentPlan {
    /// How often the agent goes through the ticket queue.
    pub shift_interval_ms: u64,
    /// Typing a ticket id one off.
    pub typo_per_mille: u32,
    /// Acting on the previous ticket's id (stale clipboard).
    pub stale_clipboard_per_mille: u32,
    /// Swapping two tickets being worked at once.
    pub swap_per_mille: u32,
    /// Vouching for a requester who "knew the address and birthday".
    pub weak_proof_per_mille: u32,
    /// Doing the same thing twice.
    pub duplicate_per_mille: u32,
    /// A customer calling back about a ticket worked in an earlier shift
    /// (each such ticket, each shift): its link is re-sent.
    #[serde(default)]
    pub callback_per_mille: u32,
    /// Extending a request's deadline as complex, per request the agent
    /// learns of (this seed's draw from the scenario's range).
    #[serde(default)]
    pub extend_per_mille: u32,
    /// An extension's reason left empty or pasted far too long.
    #[serde(default)]
    pub bad_reason_per_mille: u32,
    /// Seed of the agent's own choices.
    pub seed: u64,
}

/// A fault on the link between two hosts for a while.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetFault {
    pub at_ms: u64,
    pub duration_ms: u64,
    pub a: String,
    pub b: String,
    pub kind: NetFaultKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NetFaultKind {
    /// Nothing passes either way.
    Partition,
    /// Nothing passes from `a` to `b`; `b` still reaches `a`.
    OneWay,
    /// Every message takes this long.
    LatencySpike { latency_ms: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crash {
    /// `store`, `export` or `worker-N`.
    pub host: String,
    pub at_ms: u64,
    pub downtime_ms: u64,
    /// `None`: the power goes at `at_ms`, between two simulation steps.
    /// `Some(n)`: from `at_ms` on, it goes in the middle of the host's n-th
    /// next disk write or sync — inside a commit (hosts with a disk only).
    pub mid_write_ops: Option<u32>,
    /// From `at_ms` on, the host's next sync fails with an I/O error and
    /// the power goes at its next write or sync after that (fsyncgate:
    /// everything since the last good sync is lost). Store only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sync_error: bool,
}

/// The store's failed syncs, each followed by a power loss (drawn from a
/// stream of their own, so that the rest of the plan is as it was).
fn store_sync_failures(
    faults: &crate::scenario::FaultSpec,
    seed: u64,
    from_ms: u64,
    active_ms: u64,
) -> Vec<Crash> {
    let mut rng = ChaCha8Rng::from_seed(crate::streams::derive(seed, "plan/sync-failures"));
    (0..draw(&mut rng, faults.store_sync_failures))
        .map(|_| Crash {
            host: crate::net::STORE_HOST.to_string(),
            at_ms: rng.random_range(from_ms..active_ms.max(from_ms + 1)),
            downtime_ms: draw(&mut rng, faults.store_downtime_ms),
            mid_write_ops: None,
            sync_error: true,
        })
        .collect()
}

impl Plan {
    /// Whether the store may lose power or fail its disk in this run
    /// (crashes, crashes right after an acknowledgement, I/O errors).
    pub fn store_loses_power(&self) -> bool {
        self.crashes
            .iter()
            .any(|c| c.host == crate::net::STORE_HOST)
            || !self.ack_crashes.is_empty()
            || self.store_io_errors_per_million > 0
            || self.downloads_while_store_down()
    }

    /// Whether someone downloads while the store loses power inside their
    /// download (`faults/live_check.rs`).
    pub fn downloads_while_store_down(&self) -> bool {
        self.accounts.iter().any(|a| {
            a.actions.iter().any(|t| {
                matches!(
                    t.action,
                    Action::RequestExport {
                        store_down_ms: Some(_),
                        ..
                    }
                )
            })
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountPlan {
    pub email: String,
    pub devices: u32,
    /// Each device's clock error in ms (positive: ahead), by device index.
    #[serde(default)]
    pub device_clock_skew_ms: Vec<i64>,
    /// People (indices) this person keeps in their contacts.
    pub contacts: Vec<u32>,
    pub actions: Vec<TimedAction>,
    /// What the account's always-on speaker captures on its own, by time
    /// (`plan/chatter.rs`); empty: the account has no such speaker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ambient: Vec<AmbientCapture>,
}

impl AccountPlan {
    /// Whether the account's history outgrows one page of the store's
    /// listing (a heavy user of `plan/heavy.rs`).
    pub fn is_heavy(&self) -> bool {
        self.ambient.len() > crosstalk_store::MAX_PAGE_ITEMS
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedAction {
    pub at_ms: u64,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// A device of this account captures an utterance and uploads it. With
    /// `purchase`, the person asks the device to buy `ITEMS[purchase]`.
    /// With `message`, the person says "send this to <contact>" (`message`
    /// picks one of their contacts). With `speaker`, it is housemate
    /// `speaker` who talks near this account's device: the capture is still
    /// this account's.
    Speak {
        device: u32,
        nonce: u64,
        content: u64,
        phrase: u32,
        purchase: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        speaker: Option<u32>,
        /// Two speakers in one room: the account's next device captures the
        /// same words at the same instant, as its own recording (this nonce).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        also_heard: Option<u64>,
        /// The capture's length in bytes, when it is not the short default
        /// (`plan/data.rs`: a realistic length, the API's limit, or one byte
        /// past it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio_bytes: Option<u32>,
    },
    /// A device of this account hears broadcast `broadcast` (the same
    /// content in every home) and uploads its own capture of it. The
    /// broadcast says "order me ITEMS[item]", or, with `message_to`, "send a
    /// message to <display_name(message_to)>".
    HearBroadcast {
        broadcast: u32,
        device: u32,
        nonce: u64,
        content: u64,
        item: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_to: Option<u32>,
        /// The capture's length in bytes, when it is not the short default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio_bytes: Option<u32>,
    },
    /// List the whole history, page by page.
    ListHistory,
    /// Play back one of one's own recordings (`pick` chooses which).
    FetchOwnAudio { pick: u64 },
    /// Request a DSAR export, wait for it, download it (and again
    /// `redownloads` times). With `delete_first`, delete one of one's
    /// recordings after the export is ready and before downloading it.
    RequestExport {
        delete_first: bool,
        redownloads: u32,
        /// Requests sent again at once after the first was accepted.
        #[serde(default, skip_serializing_if = "is_zero")]
        repeats: u32,
        /// After the repeats, ask support too (a ticket for one's own
        /// address, verified) while the first request is being built.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        by_ticket: bool,
        /// With `delete_first`: the store loses power as the first
        /// download's live check reaches it (`faults/live_check.rs`), and
        /// stays down this long (ms); the person clicks the link again
        /// until the store is back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        store_down_ms: Option<u64>,
    },
    /// Ask for one's data through a support ticket: open it, read the code
    /// from one's own notifications, verify, then wait and download.
    TicketExport,
    /// Open a ticket for someone else's email and guess codes.
    Impersonate { victim: u32, guesses: u32 },
    /// Read one's notifications and follow every download link in them.
    ReadNotifications,
    /// Try an export link that belongs to another account.
    UseForeignLink { pick: u64 },
    /// Try to fetch audio by another account's recording id.
    GuessAudio { pick: u64 },
    /// Delete one of one's own recordings.
    DeleteOne { pick: u64 },
    /// Delete every own recording captured between two of one's own
    /// recordings' capture times (inclusive).
    DeleteRange { first: u64, second: u64 },
    /// Sell one of one's devices to person `to` (resale): the device, with
    /// whatever captures it still holds, goes to them.
    TransferDevice { pick: u64, to: u32 },
    /// Factory-reset one of one's devices (it forgets unsent captures).
    ResetDevice { pick: u64 },
    /// One of one's devices loses its own connection (Wi-Fi down, unplugged
    /// router) for `for_ms`: it keeps capturing into its buffer.
    DeviceOutage { device: u32, for_ms: u64 },
    /// Send one of one's recordings to contact `contact` (an index into the
    /// person's contacts), confirming only if it resolved to the intended person.
    SendMessage {
        pick: u64,
        contact: u64,
        /// The device hears another contact's name than the one meant.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        misheard: bool,
    },
    /// Read the inbox and play one message.
    ReadInbox { pick: u64 },
    /// The curious user's round (`workload/adversary.rs`): with their own
    /// session, try other people's ids, cursors and links in every place,
    /// tamper with their own link token, knock on every door with wrong
    /// credentials, and look again at what they were told is gone or kept.
    /// `nonce` marks the capture a retired device token tries to upload.
    Probe { pick: u64, nonce: u64 },
    /// Try one's latest download link past the contract's limits
    /// (`workload/limits.rs`): download it until the service refuses, or
    /// (`past_expiry`) wait until it must have expired and try it again.
    ProbeLinkLimits { past_expiry: bool },
    /// Have one's latest archive rebuilt (`workload/limits.rs`): delete a
    /// recording in it a link lifetime after the request, download the
    /// rebuilt archive to its limit, then click the old link again.
    RebuildOwnArchive,
    /// Brute-force a ticket for `victim`'s email (`workload/lockout.rs`):
    /// as many wrong codes as the plan's `ticket_attempts` allows, then the
    /// right one, which the victim reads out to a caller posing as support
    /// (or, `by_victim`, enters themselves): the locked ticket must refuse it.
    /// With `near_miss`, the ticket claims an address one letter short of
    /// the victim's, which nobody holds: no challenge may reach anyone.
    BruteForceTicket {
        victim: u32,
        by_victim: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        near_miss: bool,
    },
    /// Send a typed message to contact `contact` (a person index), then
    /// confirm it only once the contact closed their account and the
    /// address was signed up again (`workload/recycled.rs`): nothing may
    /// reach the address's new holder.
    ConfirmAfterRecycle { contact: u32, pick: u64 },
    /// Open a support ticket for one's own address and read its code, close
    /// the account, and verify the ticket only after someone else signed up
    /// with the released address and recorded `nonces` on their own device
    /// (`workload/handover.rs`). The newcomer (with `attacker`, someone who
    /// watches for released addresses and then asks for "their" data) reads
    /// their feed: nothing of theirs may come of the old holder's ticket.
    TicketAcrossHandover { attacker: bool, nonces: [u64; 2] },
    /// "Moving out" (`workload/handover.rs`): unplug device `device`, let
    /// it capture `nonces` into its buffer (the second a spoken order of
    /// `ITEMS[item]`, the third, with `contact`, "send this to" that
    /// person), sell it to person `to` still unplugged, and close the
    /// account; the buyer plugs it in (with `buyer_first`, before the
    /// seller closes), it flushes its buffer, and the buyer looks at
    /// everything: no capture of the seller's may act for them.
    MoveOut {
        to: u32,
        device: u32,
        nonces: [u64; 3],
        item: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contact: Option<u32>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        buyer_first: bool,
    },
    /// "Delete all my history": every own recording, by `{"all": true}`
    /// (`workload/delete_all.rs`); the account stays open.
    DeleteAll,
    /// Close the account ("delete my account").
    CloseAccount,
    /// Sign up again with the same email after closing: a new identity.
    SignUpAgain,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Speak { .. } => "speak",
            Action::ListHistory => "list_history",
            Action::FetchOwnAudio { .. } => "fetch_own_audio",
            Action::RequestExport { .. } => "request_export",
            Action::TicketExport => "ticket_export",
            Action::Impersonate { .. } => "impersonate",
            Action::ReadNotifications => "read_notifications",
            Action::UseForeignLink { .. } => "use_foreign_link",
            Action::GuessAudio { .. } => "guess_audio",
            Action::DeleteOne { .. } => "delete_one",
            Action::DeleteRange { .. } => "delete_range",
            Action::HearBroadcast { .. } => "hear_broadcast",
            Action::TransferDevice { .. } => "transfer_device",
            Action::ResetDevice { .. } => "reset_device",
            Action::DeviceOutage { .. } => "device_outage",
            Action::SendMessage { .. } => "send_message",
            Action::ReadInbox { .. } => "read_inbox",
            Action::Probe { .. } => "probe",
            Action::ProbeLinkLimits { .. } => "probe_link_limits",
            Action::RebuildOwnArchive => "rebuild_own_archive",
            Action::BruteForceTicket { .. } => "brute_force_ticket",
            Action::ConfirmAfterRecycle { .. } => "confirm_after_recycle",
            Action::TicketAcrossHandover { .. } => "ticket_across_handover",
            Action::MoveOut { .. } => "move_out",
            Action::DeleteAll => "delete_all",
            Action::CloseAccount => "close_account",
            Action::SignUpAgain => "sign_up_again",
        }
    }
}

/// A failure kept as a named regression: the plan that showed it and a
/// one-line postmortem. Files live in `scenarios/regressions/`; CI replays
/// every one of them (twice: it must pass and be deterministic).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Regression {
    pub postmortem: String,
    pub plan: Plan,
    /// The planted bug this plan catches: it must pass as it is, and fail
    /// with that bug planted (checked by `crosstalk regressions` in a build
    /// with the `planted-bugs` feature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catches: Option<String>,
    /// The invariant (short name) that must fail first with the `catches`
    /// bug planted, when the file pins it (shrunk regressions do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caught_by: Option<String>,
}

/// Read a plan file: a bare plan (as saved under `target/crosstalk/failures/`)
/// or a regression (plan plus postmortem).
pub fn load_plan_file(text: &str) -> Result<(Plan, Option<String>), String> {
    load_regression_file(text).map(|r| (r.plan, Some(r.postmortem).filter(|p| !p.is_empty())))
}

/// Read a plan file as a regression (a bare plan has an empty postmortem).
pub fn load_regression_file(text: &str) -> Result<Regression, String> {
    if let Ok(regression) = serde_json::from_str::<Regression>(text) {
        return Ok(regression);
    }
    serde_json::from_str::<Plan>(text)
        .map(|plan| Regression {
            postmortem: String::new(),
            plan,
            catches: None,
            caught_by: None,
        })
        .map_err(|e| e.to_string())
}

/// Things people (and television presenters) ask their speakers to buy.
pub const ITEMS: &[&str] = &[
    "dollhouse",
    "cookies",
    "batteries",
    "dog food",
    "headphones",
];

/// People's names, with sound-alikes on purpose: a contact resolver that
/// matches loosely will confuse them.
pub const NAMES: &[&str] = &[
    "Ann", "Anne", "Dan", "Don", "Jon", "John", "Mia", "Maya", "Lee", "Leigh", "Kai", "Kay",
];

/// The display name person `index` goes by in other people's contacts.
pub fn display_name(index: usize) -> String {
    let base = NAMES[index % NAMES.len()];
    match index / NAMES.len() {
        0 => base.to_string(),
        round => format!("{base} {round}"),
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What people say to their devices. The watermark, not the words, carries
/// the ground truth; the words make listings readable in a failure report.
pub const PHRASES: &[&str] = &[
    "what's the weather tomorrow",
    "play something relaxing",
    "set a timer for ten minutes",
    "add milk to the shopping list",
    "call mum",
    "turn off the kitchen lights",
    "remind me to take my medication",
    "how long is the drive to work",
    "what's on my calendar today",
    "read me the news",
    // What people say is not plain ASCII: quotes, apostrophes, ampersands,
    // angle brackets, slashes, percent and plus signs, accents, scripts
    // written right to left, emoji. A service that escapes, truncates,
    // re-encodes or normalises a transcript anywhere on its way back is
    // caught by the oracle comparing every copy with the text sent.
    "remind me: \"dentist\" at 3 o'clock, not 4",
    "add 2 × 500 g flour & 1/2 cup sugar; 100% cocoa",
    "play \"Ça plane pour moi\" by Plastic Bertrand",
    "text Zoë: <running late> \\ back in 5",
    "what's 5 + 3 = ? #maths",
    "wish José a happy birthday 🎂🎉",
    "say مرحبا to Grandma and שלום to Avi",
    "note {curly} [square] and 'single' quotes, façade, naïve, ﬁ ligature",
];

/// Swarm testing: each seed switches off each optional feature and fault
/// kind the scenario enables with probability 1/4 (in a fixed order, so the
/// seed alone decides), so that features are also tested without the
/// company of the others — a bug that one feature's noise hides shows up in
/// the seeds where that feature is off. Uploads and exports always stay on.
pub fn swarm(scenario: &Scenario, rng: &mut ChaCha8Rng) -> (Scenario, Vec<String>) {
    let mut s = scenario.clone();
    if !scenario.swarm {
        return (s, Vec::new());
    }
    let mut off = Vec::new();
    let mut toggle = |name: &str, enabled: bool, rng: &mut ChaCha8Rng| -> bool {
        let switched = enabled && rng.random_ratio(1, 4);
        if switched {
            off.push(name.to_string());
        }
        switched
    };
    let zero = Range(0, 0);
    let a = &mut s.actions;
    for (name, range) in [
        ("history_lists", &mut a.history_lists),
        ("own_audio_fetches", &mut a.own_audio_fetches),
        ("foreign_link_uses", &mut a.foreign_link_uses),
        ("guessed_audio_fetches", &mut a.guessed_audio_fetches),
        ("deletions", &mut a.deletions),
        ("range_deletions", &mut a.range_deletions),
        ("device_transfers", &mut a.device_transfers),
        ("device_resets", &mut a.device_resets),
        ("device_outages", &mut a.device_outages),
        ("messages", &mut a.messages),
        ("inbox_reads", &mut a.inbox_reads),
        ("redownloads", &mut a.redownloads),
        ("ticket_exports", &mut a.ticket_exports),
        ("impersonations", &mut a.impersonations),
        ("notification_reads", &mut a.notification_reads),
        ("curious_probes", &mut a.curious_probes),
    ] {
        if toggle(name, range.1 > 0, rng) {
            *range = zero;
        }
    }
    for (name, rate) in [
        ("purchases", &mut a.purchase_per_mille),
        ("spoken_messages", &mut a.spoken_message_per_mille),
        ("housemate_speech", &mut a.housemate_speech_per_mille),
        ("account_closing", &mut a.close_account_per_mille),
        (
            "deletions_before_download",
            &mut a.delete_before_download_per_mille,
        ),
    ] {
        if toggle(name, *rate > 0, rng) {
            *rate = 0;
        }
    }
    let f = &mut s.faults;
    for (name, range) in [
        ("store_crashes", &mut f.store_crashes),
        ("store_io_errors", &mut f.store_io_errors_per_million),
        ("export_crashes", &mut f.export_crashes),
        ("worker_crashes", &mut f.worker_crashes),
        ("partitions", &mut f.partitions),
        ("device_clock_skew", &mut f.device_clock_skew_ms),
        ("sut_fault_points", &mut f.sut_fault_points_per_mille),
        ("latency_spikes", &mut f.latency_spikes),
    ] {
        if toggle(name, range.1 > 0, rng) {
            *range = zero;
        }
    }
    if toggle("broadcasts", s.broadcasts.count.1 > 0, rng) {
        s.broadcasts.count = zero;
    }
    if toggle("households", s.world.household_size.1 > 1, rng) {
        s.world.household_size = Range(1, 1);
    }
    if toggle("support_agent", s.agent.enabled, rng) {
        s.agent.enabled = false;
    }
    (s, off)
}

fn draw(rng: &mut ChaCha8Rng, range: Range) -> u64 {
    rng.random_range(range.0..=range.1)
}

/// This seed's chance that the agent extends a request it learns of, from
/// a stream of its own (so that every other draw of a plan stays as it was).
fn draw_extend_per_mille(scenario: &Scenario, seed: u64) -> u32 {
    let mut rng = ChaCha8Rng::from_seed(crate::streams::derive(seed, "plan/extensions"));
    draw(&mut rng, scenario.agent.extend_per_mille) as u32
}

/// The support agent's plan, when the scenario has one (one draw of the
/// plan's main stream, for the agent's own seed).
fn agent_plan(rng: &mut ChaCha8Rng, scenario: &Scenario, seed: u64) -> Option<AgentPlan> {
    scenario.agent.enabled.then(|| AgentPlan {
        shift_interval_ms: scenario.agent.shift_interval_ms,
        typo_per_mille: scenario.agent.typo_per_mille,
        stale_clipboard_per_mille: scenario.agent.stale_clipboard_per_mille,
        swap_per_mille: scenario.agent.swap_per_mille,
        weak_proof_per_mille: scenario.agent.weak_proof_per_mille,
        duplicate_per_mille: scenario.agent.duplicate_per_mille,
        callback_per_mille: scenario.agent.callback_per_mille,
        extend_per_mille: draw_extend_per_mille(scenario, seed),
        bad_reason_per_mille: scenario.agent.bad_reason_per_mille,
        seed: rng.random(),
    })
}

/// The plan's sections drawn from streams of their own (so that every
/// earlier draw stays as it was when they were added), in their order:
/// limit probes, downloads while the store is down, the curious user's
/// probes, hand-overs, chatter, heavy histories, move-outs and real users'
/// data. Returns the swarm names they switched off.
fn sections_of_their_own(
    scenario: &Scenario,
    seed: u64,
    first_action_ms: u64,
    accounts: &mut [AccountPlan],
    nonces: &mut BTreeSet<u64>,
) -> Vec<String> {
    let active_ms = scenario.world.active_seconds * 1000;
    let mut swarm_off = Vec::new();
    if limits::schedule_probes(scenario, seed, active_ms, accounts) {
        swarm_off.push(limits::SWARM_NAME.to_string());
    }
    if limits::schedule_store_down_downloads(scenario, seed, active_ms, accounts) {
        swarm_off.push(limits::STORE_DOWN_SWARM_NAME.to_string());
    }
    swarm_off.extend(probes::schedule(scenario, seed, active_ms, accounts));
    swarm_off.extend(handover::schedule(scenario, seed, active_ms, accounts));
    swarm_off.extend(chatter::schedule(
        scenario, seed, active_ms, accounts, nonces,
    ));
    swarm_off.extend(heavy::schedule(
        scenario,
        seed,
        first_action_ms,
        active_ms,
        accounts,
        nonces,
    ));
    swarm_off.extend(handover::schedule_move_outs(
        scenario, seed, active_ms, accounts, nonces,
    ));
    swarm_off.extend(data::apply(scenario, seed, accounts));
    swarm_off
}

impl Plan {
    pub fn generate(scenario: &Scenario, seed: u64) -> Plan {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (swarmed, swarm_off) = swarm(scenario, &mut rng);
        let scenario = &swarmed;
        let world = &scenario.world;
        let active_ms = world.active_seconds * 1000;
        let account_count = draw(&mut rng, world.accounts) as usize;
        let mut nonces = BTreeSet::new();
        // Leave the first seconds for sign-up and device registration.
        let first_action_ms = (active_ms / 20).max(1000);
        let window = people::Window {
            first_ms: first_action_ms,
            active_ms,
        };
        let mut accounts: Vec<AccountPlan> = (0..account_count)
            .map(|index| {
                people::account(
                    &mut rng,
                    scenario,
                    seed,
                    index,
                    account_count,
                    window,
                    &mut nonces,
                )
            })
            .collect();
        people::households(&mut rng, scenario, &mut accounts, &mut nonces);
        broadcasts::schedule(&mut rng, scenario, window, &mut accounts, &mut nonces);
        let faults = &scenario.faults;
        let crash_window_start = first_action_ms + 1_000;
        let crash_window = people::Window {
            first_ms: crash_window_start,
            active_ms,
        };
        let crashes = faults::crashes(&mut rng, scenario, seed, crash_window);
        let store_io_errors_per_million = draw(&mut rng, faults.store_io_errors_per_million) as u32;
        let net_faults = faults::net_faults(&mut rng, scenario, crash_window);
        let agent = agent_plan(&mut rng, scenario, seed);
        let (link_ttl_ms, max_downloads) = limits::draw_limits(scenario, seed);
        let mut swarm_off = swarm_off;
        swarm_off.extend(sections_of_their_own(
            scenario,
            seed,
            first_action_ms,
            &mut accounts,
            &mut nonces,
        ));
        let (poison, ack_crashes, publish_crashes) =
            faults::power_and_poison(scenario, seed, &mut accounts);
        Plan {
            scenario: scenario.name.clone(),
            seed,
            swarm_off,
            tick_ms: scenario.network.tick_ms,
            latency_ms_min: scenario.network.latency_ms.0,
            latency_ms_max: scenario.network.latency_ms.1,
            tcp_capacity: scenario.network.tcp_capacity,
            client_hosts: world.client_hosts,
            active_ms,
            drain_ms: world.drain_seconds * 1000,
            canary_leak_into_archives: scenario.canary.leak_into_archives,
            canary_break: None,
            worker_hosts: world.worker_hosts,
            crashes_from_ms: crash_window_start,
            ack_crashes,
            publish_crashes,
            sut_fault_points_per_mille: draw(&mut rng, faults.sut_fault_points_per_mille) as u32,
            net_faults,
            poison,
            crashes,
            store_io_errors_per_million,
            accounts,
            agent,
            planted: Vec::new(),
            link_ttl_ms,
            max_downloads,
            ticket_attempts: probes::draw_ticket_attempts(seed),
            hold_ms: STORE_HOLD_MS,
            quirks: scenario.quirks.clone(),
            threads: None,
        }
        .with_threads(scenario, seed)
    }

    /// For a threads scenario: its workload, and no simulator plan.
    fn with_threads(mut self, scenario: &Scenario, seed: u64) -> Plan {
        if let (crate::scenario::Harness::Threads, Some(spec)) =
            (scenario.harness, &scenario.threads)
        {
            self.threads = Some(crate::threads::ThreadsPlan::generate(spec, seed));
            self.accounts.clear();
            self.crashes.clear();
            self.ack_crashes.clear();
            self.publish_crashes.clear();
            self.net_faults.clear();
            self.agent = None;
        }
        self
    }

    /// How many actions of each kind the plan holds, for the seed banner.
    pub fn action_counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts: std::collections::BTreeMap<&'static str, usize> = Default::default();
        for account in &self.accounts {
            for action in &account.actions {
                *counts.entry(action.action.name()).or_default() += 1;
            }
        }
        counts.into_iter().collect()
    }
}
