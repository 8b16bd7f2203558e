//! Scenario files: the declarative description of a world to simulate.
//!
//! A scenario is TOML: world size, the network model, how long to run, and
//! the action mix as per-account ranges. The seed turns a scenario into a
//! concrete [`Plan`](crate::plan::Plan). Every field has a default, and
//! unknown fields are refused so that a typo is an error, not a silent no-op.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

fn yes() -> bool {
    true
}

/// An inclusive `[min, max]` range drawn uniformly per seed (or per account).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range(pub u64, pub u64);

impl Range {
    pub fn validate(&self, what: &str) -> Result<(), ScenarioError> {
        if self.0 > self.1 {
            return Err(invalid(format!(
                "{what}: min {} is above max {}",
                self.0, self.1
            )));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in reports and failure file names.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Swarm testing: each seed switches off some features and fault kinds
    /// (see `plan::swarm`). On unless a scenario says `swarm = false`.
    #[serde(default = "yes")]
    pub swarm: bool,
    /// A costly world (a city) runs at most this many seeds of any range:
    /// its first ones. Its vacuity and the probe gate judge it on those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seeds: Option<u64>,
    /// Which harness runs the scenario: the deterministic simulator
    /// (`sim`, the default) or real threads (`threads`, see
    /// `sim/src/threads/`), where the seed fixes the workload and the
    /// operating system the interleaving.
    #[serde(default, skip_serializing_if = "Harness::is_sim")]
    pub harness: Harness,
    /// The real-threads harness's workload (read only when `harness =
    /// "threads"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<crate::threads::ThreadsSpec>,
    #[serde(default)]
    pub world: WorldSpec,
    #[serde(default)]
    pub network: NetworkSpec,
    #[serde(default)]
    pub actions: ActionSpec,
    #[serde(default)]
    pub faults: FaultSpec,
    #[serde(default)]
    pub broadcasts: BroadcastSpec,
    #[serde(default)]
    pub agent: AgentSpec,
    /// The export contract's limits (link lifetime, downloads per link) and
    /// how often people try past them.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Harness self-tests only: see [`CanarySpec`].
    #[serde(default)]
    pub canary: CanarySpec,
    /// Clients' quirks (`workload/quirks.rs`), chances per thousand.
    #[serde(default)]
    pub quirks: crate::plan::Quirks,
    /// Heavy users with long histories, and "delete all my history"
    /// (`plan/heavy.rs`).
    #[serde(default, skip_serializing_if = "HeavySpec::is_off")]
    pub heavy: HeavySpec,
    /// Real users' data: awkward addresses and captures of real lengths
    /// (`plan/data.rs`).
    #[serde(default)]
    pub data: DataSpec,
}

/// The harness a scenario runs under.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Harness {
    /// The deterministic turmoil simulator: same seed, same trace.
    #[default]
    Sim,
    /// The same services on a multi-thread runtime under real parallelism:
    /// the seed fixes the workload, the operating system the interleaving.
    Threads,
}

impl Harness {
    pub fn is_sim(&self) -> bool {
        *self == Harness::Sim
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorldSpec {
    /// Number of accounts (people) in the world.
    pub accounts: Range,
    /// Devices each account registers.
    pub devices_per_account: Range,
    /// Turmoil client hosts the accounts are spread over (each drives many
    /// accounts as tasks; never one host per account).
    pub client_hosts: u64,
    /// Export worker hosts.
    pub worker_hosts: u64,
    /// Simulated seconds during which actions are scheduled.
    pub active_seconds: u64,
    /// Simulated seconds allowed after the last action for pending exports
    /// to finish; a run still busy after this fails the liveness check.
    pub drain_seconds: u64,
    /// People per household (consecutive accounts share a home): they speak
    /// near each other's devices, and one voice can reach several of the
    /// home's devices. Each capture belongs to its device's owner.
    pub household_size: Range,
}

impl Default for WorldSpec {
    fn default() -> Self {
        Self {
            accounts: Range(20, 40),
            devices_per_account: Range(1, 3),
            client_hosts: 2,
            worker_hosts: 2,
            active_seconds: 180,
            drain_seconds: 600,
            household_size: Range(1, 1),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSpec {
    /// Simulation step, in milliseconds. Each tick polls every host.
    pub tick_ms: u64,
    /// Per-message latency drawn by turmoil between these bounds.
    pub latency_ms: Range,
    /// Turmoil's per-socket capacity (accept backlog, stream buffers). By
    /// default it is derived from the world's size; a scenario sets it only
    /// to test the harness's own limits (a world too crowded for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_capacity: Option<u64>,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            tick_ms: 10,
            latency_ms: Range(1, 20),
            tcp_capacity: None,
        }
    }
}

/// How many of each action one account performs over the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionSpec {
    /// Utterances captured by the account's devices and uploaded.
    pub utterances: Range,
    /// Times the account lists its whole history.
    pub history_lists: Range,
    /// Times the account plays back one of its own recordings.
    pub own_audio_fetches: Range,
    /// DSAR exports the account requests (and downloads once ready).
    pub exports: Range,
    /// Attempts to use an export link that belongs to somebody else.
    pub foreign_link_uses: Range,
    /// Attempts to fetch audio by a recording id that is somebody else's.
    pub guessed_audio_fetches: Range,
    /// Deletions of one of one's own recordings.
    pub deletions: Range,
    /// Deletions of every own recording captured in a time range.
    pub range_deletions: Range,
    /// Share of utterances, per thousand, that ask to buy something.
    pub purchase_per_mille: u64,
    /// Share of utterances, per thousand, that say "send this to <contact>"
    /// (held, then confirmed by the speaker in the app).
    pub spoken_message_per_mille: u64,
    /// Share of utterances, per thousand, spoken by a housemate near this
    /// person's device (households of more than one only).
    pub housemate_speech_per_mille: u64,
    /// Share of housemate utterances, per thousand, that a second
    /// housemate's device also captures.
    pub overheard_per_mille: u64,
    /// Share of plain utterances, per thousand, of a person with two or
    /// more devices that their next device also captures at the same
    /// instant (two speakers in one room): one sound, two recordings of the
    /// same account with the same capture time.
    pub two_speakers_per_mille: u64,
    /// Devices sold to another person in the world (resale).
    pub device_transfers: Range,
    /// Factory resets of one's own devices.
    pub device_resets: Range,
    /// Times one of one's devices loses its connection, and for how long.
    pub device_outages: Range,
    pub device_outage_ms: Range,
    /// People in one's contacts.
    pub contacts: Range,
    /// Voice messages sent to a contact.
    pub messages: Range,
    /// Times one reads one's inbox.
    pub inbox_reads: Range,
    /// Chance, per thousand, that a person closes their account during the
    /// run (and, half the time, signs up again with the same email).
    pub close_account_per_mille: u64,
    /// Chance, per thousand exports, of deleting a recording between the
    /// export becoming ready and its download (the archive must be revoked).
    pub delete_before_download_per_mille: u64,
    /// Chance, per thousand direct exports, that the person asks again at
    /// once, once or twice (an impatient double tap): the repeats must be
    /// joined to the pending request, never start a second export.
    pub impatient_export_per_mille: u64,
    /// Chance, per thousand voice messages, that the name the device hears
    /// is another contact's (a sound-alike): the store resolves it to the
    /// wrong person, and the sender refuses to confirm.
    pub misheard_contact_per_mille: u64,
    /// Chance, per thousand people, that one "moves out" (`plan/handover.rs`):
    /// sells an unplugged device still holding their captures (a spoken
    /// order and message among them) and closes the account; the buyer
    /// plugs it in and looks at everything.
    pub move_out_per_mille: u64,
    /// Extra downloads of the same archive (past the limit: refused).
    pub redownloads: Range,
    /// Exports asked for through a support ticket.
    pub ticket_exports: Range,
    /// Tickets opened for someone else's email, with guessed codes.
    pub impersonations: Range,
    /// Codes an impersonator guesses on one ticket (from the plan's
    /// `ticket_attempts` wrong codes on, the ticket is rejected).
    pub impersonation_guesses: Range,
    /// Times one reads one's notifications and follows their links.
    pub notification_reads: Range,
    /// Rounds of the curious user (`workload/adversary.rs`): other people's
    /// ids in every place, one's own link token tampered with, wrong
    /// credentials at every door, acknowledged claims probed again.
    pub curious_probes: Range,
    /// Chance, per thousand exports, that the household keeps talking to
    /// the account's always-on speaker while the export is being built
    /// (`plan/chatter.rs`): a burst of `chatter_captures` utterances,
    /// `chatter_gap_ms` apart, that the speaker uploads on its own.
    pub chatter_per_mille: u64,
    pub chatter_captures: Range,
    pub chatter_gap_ms: Range,
}

impl Default for ActionSpec {
    fn default() -> Self {
        Self {
            utterances: Range(3, 12),
            history_lists: Range(0, 2),
            own_audio_fetches: Range(0, 2),
            exports: Range(0, 1),
            foreign_link_uses: Range(0, 1),
            guessed_audio_fetches: Range(0, 1),
            deletions: Range(0, 1),
            range_deletions: Range(0, 0),
            purchase_per_mille: 0,
            spoken_message_per_mille: 0,
            housemate_speech_per_mille: 0,
            overheard_per_mille: 0,
            two_speakers_per_mille: 0,
            device_transfers: Range(0, 0),
            device_resets: Range(0, 0),
            device_outages: Range(0, 0),
            device_outage_ms: Range(5_000, 60_000),
            contacts: Range(0, 0),
            messages: Range(0, 0),
            inbox_reads: Range(0, 0),
            close_account_per_mille: 0,
            delete_before_download_per_mille: 0,
            impatient_export_per_mille: 0,
            misheard_contact_per_mille: 0,
            move_out_per_mille: 0,
            redownloads: Range(0, 0),
            ticket_exports: Range(0, 0),
            impersonations: Range(0, 0),
            impersonation_guesses: Range(1, 3),
            notification_reads: Range(0, 0),
            curious_probes: Range(0, 0),
            chatter_per_mille: 700,
            chatter_captures: Range(3, 8),
            chatter_gap_ms: Range(50, 600),
        }
    }
}

/// Faults injected during the active period; all heal before the drain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSpec {
    /// Crashes of the store host per seed (power loss: unsynced writes are
    /// lost or torn on its simulated disk), each followed by a restart.
    pub store_crashes: Range,
    /// How long the store stays down after each crash.
    pub store_downtime_ms: Range,
    /// Crashes of the store right after it acknowledges a rare write (an
    /// account closed, a device sold or reset, a deletion; per seed, each
    /// after one of the first answers to a kind the plan's people ask for:
    /// `faults/ack_crash.rs`), with `store_downtime_ms` of downtime.
    pub store_crashes_after_ack: Range,
    /// Disk I/O errors on the store's writes and syncs, per million; each one
    /// makes the store process exit and restart.
    pub store_io_errors_per_million: Range,
    /// Syncs of the store's disk that fail with an I/O error, each followed
    /// by a power loss at the disk's next write or sync: whatever the store
    /// wrote since its last good sync is lost (fsyncgate; `faults/disk.rs`).
    pub store_sync_failures: Range,
    /// Crashes of the export service's host (its disk loses unsynced writes).
    pub export_crashes: Range,
    /// Power losses of the export service's host inside a publication (at
    /// one of the disk writes from one of the first publications on:
    /// `faults/publish_crash.rs`), with `export_downtime_ms` of downtime.
    pub export_crashes_in_publication: Range,
    pub export_downtime_ms: Range,
    /// Crashes of each worker host (stateless; its lease lapses).
    pub worker_crashes: Range,
    pub worker_downtime_ms: Range,
    /// Partitions (half of them one-way) on links between hosts, and
    /// latency spikes; each lasts `net_fault_ms`.
    pub partitions: Range,
    pub latency_spikes: Range,
    pub latency_spike_ms: Range,
    pub net_fault_ms: Range,
    /// How wrong each device's clock is (magnitude in ms; the sign is drawn).
    pub device_clock_skew_ms: Range,
    /// Share of devices, per thousand, whose clock is off at all (the rest
    /// keep network time and agree to the tick).
    pub device_clock_skew_per_mille: u64,
    /// Chance, per thousand passes, that a fault point inside the services
    /// fires (a reply lost after a commit, a worker stalling past its lease,
    /// a failed page read, a dropped notification...).
    pub sut_fault_points_per_mille: Range,
    /// Chance, per thousand seeds, that one person's collection reads are
    /// refused by the store for a window of `poisoned_subject_window_ms`
    /// (a poison job: `faults/poison.rs`).
    pub poisoned_subject_per_mille: u64,
    pub poisoned_subject_window_ms: Range,
}

impl Default for FaultSpec {
    fn default() -> Self {
        Self {
            store_crashes: Range(0, 0),
            store_downtime_ms: Range(500, 5_000),
            store_crashes_after_ack: Range(0, 0),
            store_io_errors_per_million: Range(0, 0),
            store_sync_failures: Range(0, 0),
            export_crashes: Range(0, 0),
            export_crashes_in_publication: Range(0, 0),
            export_downtime_ms: Range(500, 5_000),
            worker_crashes: Range(0, 0),
            worker_downtime_ms: Range(500, 5_000),
            partitions: Range(0, 0),
            latency_spikes: Range(0, 0),
            latency_spike_ms: Range(200, 3_000),
            net_fault_ms: Range(1_000, 20_000),
            device_clock_skew_ms: Range(0, 0),
            device_clock_skew_per_mille: 1000,
            sut_fault_points_per_mille: Range(0, 0),
            poisoned_subject_per_mille: 0,
            poisoned_subject_window_ms: Range(60_000, 150_000),
        }
    }
}

/// Broadcast audio ("Alexa, order me a dollhouse" on television) heard at
/// one moment by many homes' devices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BroadcastSpec {
    /// Broadcasts per seed.
    pub count: Range,
    /// Share of accounts, per thousand, that have a device within earshot
    /// (at least three homes hear each broadcast: it is media, not speech).
    pub heard_per_mille: u64,
    /// Share of broadcasts, per thousand, whose command is "send a message
    /// to <name>" rather than a purchase.
    pub message_per_mille: u64,
    /// Share of broadcasts, per thousand, heard by exactly the fewest homes
    /// that make a media event (three): the detector's boundary, where an
    /// off-by-one places the order.
    pub boundary_per_mille: u64,
}

impl Default for BroadcastSpec {
    fn default() -> Self {
        Self {
            count: Range(0, 0),
            heard_per_mille: 400,
            message_per_mille: 0,
            boundary_per_mille: 0,
        }
    }
}

/// A support agent working the ticket queue, and the mistakes they make
/// (per thousand actions).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSpec {
    pub enabled: bool,
    pub shift_interval_ms: u64,
    pub typo_per_mille: u32,
    pub stale_clipboard_per_mille: u32,
    pub swap_per_mille: u32,
    pub weak_proof_per_mille: u32,
    pub duplicate_per_mille: u32,
    /// A customer calling back about an earlier ticket, per ticket and
    /// shift: the agent re-sends its link.
    pub callback_per_mille: u32,
    /// The chance, per request the agent learns of, that it extends the
    /// request's deadline as complex (GDPR Art. 12(3)); drawn per seed
    /// from this range.
    pub extend_per_mille: Range,
    /// Leaving an extension's reason empty, or pasting a whole e-mail
    /// thread into it, per extension.
    pub bad_reason_per_mille: u32,
}

impl Default for AgentSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            shift_interval_ms: 5_000,
            typo_per_mille: 100,
            stale_clipboard_per_mille: 100,
            swap_per_mille: 100,
            weak_proof_per_mille: 200,
            duplicate_per_mille: 100,
            callback_per_mille: 0,
            extend_per_mille: Range(200, 800),
            bad_reason_per_mille: 100,
        }
    }
}

/// The export contract's limits, drawn per seed, and the people who try
/// past them (`workload/limits.rs`). The oracle learns the drawn limits
/// from the plan (`check/limits.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSpec {
    /// How long a download link lives after its archive is published, in
    /// simulated seconds (short enough that some links expire within a run).
    pub link_ttl_seconds: Range,
    /// Successful downloads allowed per published archive.
    pub max_downloads: Range,
    /// Chance, per thousand accounts, that the person keeps downloading
    /// their latest archive until the service refuses (past the limit).
    pub past_limit_per_mille: u64,
    /// Chance, per thousand accounts, that the person waits until their
    /// latest link has expired and tries it once more.
    pub past_expiry_per_mille: u64,
    /// Chance, per thousand accounts, that the person has their latest
    /// archive rebuilt (a deletion a link lifetime after the request), uses
    /// the rebuilt link to its limit and clicks the old link again.
    pub rebuild_per_mille: u64,
    /// Chance, per thousand export requests followed by a deletion before
    /// the download (`[actions] delete_before_download_per_mille`) early
    /// enough in the run, that the download's live check finds the store
    /// losing power (`faults/live_check.rs`).
    pub store_down_download_per_mille: u64,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        Self {
            link_ttl_seconds: Range(30, 600),
            max_downloads: Range(1, 5),
            past_limit_per_mille: 0,
            past_expiry_per_mille: 0,
            rebuild_per_mille: 0,
            store_down_download_per_mille: 0,
        }
    }
}

/// Heavy users (`plan/heavy.rs`): a few accounts whose always-on speaker
/// uploads many small recordings over the run, well past the store's page
/// clamp and every batch size, and people who press "delete all my
/// history". Off unless a scenario asks for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeavySpec {
    /// Heavy accounts per seed.
    pub accounts: Range,
    /// Recordings each heavy account's speaker uploads over the run.
    pub recordings: Range,
    /// Chance, per thousand heavy accounts, of "delete all my history"
    /// during the run (followed by an export, and more uploads).
    pub delete_all_per_mille: u64,
    /// Chance, per thousand of the other accounts, of the same.
    pub others_delete_all_per_mille: u64,
}

impl Default for HeavySpec {
    fn default() -> Self {
        Self {
            accounts: Range(0, 0),
            recordings: Range(150, 350),
            delete_all_per_mille: 500,
            others_delete_all_per_mille: 0,
        }
    }
}

impl HeavySpec {
    /// Whether the scenario has neither heavy users nor "delete all".
    pub fn is_off(&self) -> bool {
        self.accounts.1 == 0 && self.others_delete_all_per_mille == 0
    }
}

/// Real users' data (`plan/data.rs`), drawn per seed from streams of their
/// own: addresses as people have and type them (`addresses.rs`), and
/// captures of the lengths people speak, up to the API's limit and one
/// byte past it. Swarm testing switches each off in one seed of four.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSpec {
    /// Chance, per thousand people, of an awkward address (plus-addressing,
    /// apostrophes, mixed case, the characters a query must encode).
    pub awkward_address_per_mille: u64,
    /// Chance, per thousand captures of a planned utterance or broadcast, of
    /// a realistic length: 5 to 15 s at 16 kHz, 16-bit mono (160 to 480 KB).
    pub long_capture_per_mille: u64,
    /// Chance, per thousand such captures, of exactly the API's limit
    /// (`crosstalk_model::MAX_AUDIO_BYTES`).
    pub capture_at_limit_per_mille: u64,
    /// Chance, per thousand such captures, of one byte over the limit: the
    /// store must refuse it (413, with a JSON error).
    pub capture_over_limit_per_mille: u64,
}

impl Default for DataSpec {
    fn default() -> Self {
        Self {
            awkward_address_per_mille: 200,
            long_capture_per_mille: 0,
            capture_at_limit_per_mille: 0,
            capture_over_limit_per_mille: 0,
        }
    }
}

impl DataSpec {
    /// Whether any capture is of a length other than the short default.
    pub fn sized_captures(&self) -> bool {
        self.long_capture_per_mille
            + self.capture_at_limit_per_mille
            + self.capture_over_limit_per_mille
            > 0
    }
}

/// A deliberately broken world, used only by the harness's own tests to
/// prove the oracle sees: when `leak_into_archives` is on, a wrapper in
/// front of the export service slips one recording from another account's
/// archive into each download. Correct scenarios never set it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CanarySpec {
    pub leak_into_archives: bool,
}

/// The largest world a scenario may ask for.
pub const MAX_ACCOUNTS: u64 = 10_000;

/// Why a scenario (or a folder of them) is refused: which file, if any,
/// and what is wrong with it.
#[derive(Debug)]
pub struct ScenarioError {
    /// The file or folder, when the scenario came from one.
    pub path: Option<PathBuf>,
    pub kind: ScenarioErrorKind,
}

/// What is wrong with a scenario.
#[derive(Debug)]
pub enum ScenarioErrorKind {
    /// The file or folder cannot be read.
    Read(std::io::Error),
    /// The path names neither a file nor a folder.
    NotFound,
    /// The folder holds no `*.toml` scenario.
    NoScenarios,
    /// Not TOML of the scenario format (an unknown field, a wrong type), in
    /// the TOML parser's words.
    Syntax(String),
    /// A field out of its bounds: the field and what it allows.
    Invalid(String),
}

impl ScenarioError {
    fn at(path: &Path, kind: ScenarioErrorKind) -> ScenarioError {
        ScenarioError {
            path: Some(path.to_path_buf()),
            kind,
        }
    }
}

/// A field out of its bounds (the message names the field).
fn invalid(message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        path: None,
        kind: ScenarioErrorKind::Invalid(message.into()),
    }
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.as_deref().map(Path::display);
        match (&self.kind, path) {
            (ScenarioErrorKind::Read(e), Some(path)) => write!(f, "reading {path}: {e}"),
            (ScenarioErrorKind::Read(e), None) => write!(f, "reading: {e}"),
            (ScenarioErrorKind::NotFound, Some(path)) => write!(f, "{path} does not exist"),
            (ScenarioErrorKind::NoScenarios, Some(path)) => {
                write!(f, "{path} holds no *.toml scenario")
            }
            (ScenarioErrorKind::NotFound | ScenarioErrorKind::NoScenarios, None) => {
                f.write_str("no scenario")
            }
            (
                ScenarioErrorKind::Syntax(message) | ScenarioErrorKind::Invalid(message),
                Some(path),
            ) => write!(f, "{path}: {message}"),
            (ScenarioErrorKind::Syntax(message) | ScenarioErrorKind::Invalid(message), None) => {
                f.write_str(message)
            }
        }
    }
}

impl std::error::Error for ScenarioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ScenarioErrorKind::Read(e) => Some(e),
            _ => None,
        }
    }
}

/// Callers that still speak in strings (the fuzz targets' plan decoding)
/// take the message.
impl From<ScenarioError> for String {
    fn from(e: ScenarioError) -> String {
        e.to_string()
    }
}

/// Checks that refuse a value with a message naming it.
fn at_most(what: &str, value: u64, max: u64) -> Result<(), ScenarioError> {
    if value > max {
        return Err(invalid(format!("{what}: at most {max}")));
    }
    Ok(())
}

fn between(what: &str, value: (u64, u64), min: u64, max: u64) -> Result<(), ScenarioError> {
    if value.0 < min || value.1 > max {
        return Err(invalid(format!("{what}: between {min} and {max}")));
    }
    Ok(())
}

impl Scenario {
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError {
            path: None,
            kind: ScenarioErrorKind::Syntax(e.to_string()),
        })?;
        scenario.validate()?;
        Ok(scenario)
    }

    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::at(path, ScenarioErrorKind::Read(e)))?;
        Self::parse(&text).map_err(|e| ScenarioError {
            path: Some(path.to_path_buf()),
            ..e
        })
    }

    /// Every section within its bounds, in file order.
    fn validate(&self) -> Result<(), ScenarioError> {
        self.validate_world()?;
        self.validate_limits()?;
        self.validate_network()?;
        self.validate_action_counts()?;
        self.validate_agent()?;
        self.validate_action_shares()?;
        self.validate_broadcasts()?;
        self.validate_heavy()?;
        self.validate_data()?;
        self.validate_faults()
    }

    fn validate_data(&self) -> Result<(), ScenarioError> {
        let d = &self.data;
        at_most(
            "data.awkward_address_per_mille",
            d.awkward_address_per_mille,
            1000,
        )?;
        let captures = d.long_capture_per_mille
            + d.capture_at_limit_per_mille
            + d.capture_over_limit_per_mille;
        at_most("data.*_capture_per_mille (together)", captures, 1000)
    }

    fn validate_heavy(&self) -> Result<(), ScenarioError> {
        let h = &self.heavy;
        h.accounts.validate("heavy.accounts")?;
        h.recordings.validate("heavy.recordings")?;
        between("heavy.accounts", (h.accounts.0, h.accounts.1), 0, 100)?;
        let recordings = (h.recordings.0, h.recordings.1);
        between("heavy.recordings", recordings, 0, 5_000)?;
        let shares = h.delete_all_per_mille.max(h.others_delete_all_per_mille);
        at_most("heavy.*_per_mille", shares, 1000)
    }

    fn validate_world(&self) -> Result<(), ScenarioError> {
        let w = &self.world;
        w.accounts.validate("world.accounts")?;
        w.devices_per_account
            .validate("world.devices_per_account")?;
        if w.accounts.0 < 2 {
            return Err(invalid(
                "world.accounts: at least 2 accounts are needed to test isolation",
            ));
        }
        at_most("world.accounts", w.accounts.1, MAX_ACCOUNTS)?;
        if self.max_seeds == Some(0) {
            return Err(invalid("max_seeds: at least 1"));
        }
        match (self.harness, &self.threads) {
            (Harness::Threads, Some(spec)) => spec.validate().map_err(invalid)?,
            (Harness::Threads, None) => {
                return Err(invalid("harness = \"threads\" needs a [threads] section"));
            }
            (Harness::Sim, Some(_)) => {
                return Err(invalid("a [threads] section needs harness = \"threads\""));
            }
            (Harness::Sim, None) => {}
        }
        w.household_size.validate("world.household_size")?;
        let household = (w.household_size.0, w.household_size.1);
        between("world.household_size", household, 1, 8)?;
        let devices = (w.devices_per_account.0, w.devices_per_account.1);
        between("world.devices_per_account", devices, 1, 16)?;
        between("world.client_hosts", (w.client_hosts, w.client_hosts), 1, 8)?;
        between("world.worker_hosts", (w.worker_hosts, w.worker_hosts), 1, 8)?;
        let active = (w.active_seconds, w.active_seconds);
        between("world.active_seconds", active, 1, 24 * 3600)
    }

    fn validate_limits(&self) -> Result<(), ScenarioError> {
        let l = &self.limits;
        l.link_ttl_seconds.validate("limits.link_ttl_seconds")?;
        l.max_downloads.validate("limits.max_downloads")?;
        let ttl = (l.link_ttl_seconds.0, l.link_ttl_seconds.1);
        between("limits.link_ttl_seconds", ttl, 1, 30 * 24 * 3600)?;
        let downloads = (l.max_downloads.0, l.max_downloads.1);
        between("limits.max_downloads", downloads, 1, 100)?;
        let shares = l.past_limit_per_mille.max(l.past_expiry_per_mille);
        at_most("limits.past_*_per_mille", shares, 1000)
    }

    fn validate_network(&self) -> Result<(), ScenarioError> {
        let n = &self.network;
        n.latency_ms.validate("network.latency_ms")?;
        between("network.tick_ms", (n.tick_ms, n.tick_ms), 1, 1000)?;
        match n.tcp_capacity {
            Some(c) => between("network.tcp_capacity", (c, c), 1, 1 << 20),
            None => Ok(()),
        }
    }

    /// The per-account counts, then the other action ranges.
    fn validate_action_counts(&self) -> Result<(), ScenarioError> {
        let a = &self.actions;
        for (name, range) in [
            ("actions.utterances", a.utterances),
            ("actions.history_lists", a.history_lists),
            ("actions.own_audio_fetches", a.own_audio_fetches),
            ("actions.exports", a.exports),
            ("actions.foreign_link_uses", a.foreign_link_uses),
            ("actions.guessed_audio_fetches", a.guessed_audio_fetches),
            ("actions.deletions", a.deletions),
            ("actions.range_deletions", a.range_deletions),
            ("actions.device_transfers", a.device_transfers),
            ("actions.device_resets", a.device_resets),
            ("actions.device_outages", a.device_outages),
            ("actions.contacts", a.contacts),
            ("actions.messages", a.messages),
            ("actions.inbox_reads", a.inbox_reads),
            ("actions.redownloads", a.redownloads),
            ("actions.ticket_exports", a.ticket_exports),
            ("actions.impersonations", a.impersonations),
            ("actions.notification_reads", a.notification_reads),
            ("actions.curious_probes", a.curious_probes),
            ("actions.chatter_captures", a.chatter_captures),
            ("actions.chatter_gap_ms", a.chatter_gap_ms),
        ] {
            range.validate(name)?;
            if range.1 > 1_000 {
                return Err(invalid(format!("{name}: at most 1000 per account")));
            }
        }
        a.device_outage_ms.validate("actions.device_outage_ms")?;
        a.impersonation_guesses
            .validate("actions.impersonation_guesses")?;
        let guesses = (a.impersonation_guesses.0, a.impersonation_guesses.1);
        between("actions.impersonation_guesses", guesses, 1, 20)?;
        self.quirks.validate().map_err(invalid)?;
        if a.device_outage_ms.1 > 3_600_000 {
            return Err(invalid("actions.device_outage_ms: at most an hour"));
        }
        Ok(())
    }

    fn validate_action_shares(&self) -> Result<(), ScenarioError> {
        let a = &self.actions;
        let shares = [
            a.purchase_per_mille,
            a.close_account_per_mille,
            a.delete_before_download_per_mille,
            a.impatient_export_per_mille,
            a.misheard_contact_per_mille,
            a.move_out_per_mille,
            a.spoken_message_per_mille,
            a.housemate_speech_per_mille,
            a.overheard_per_mille,
            a.two_speakers_per_mille,
        ];
        if shares.iter().any(|p| *p > 1000)
            || a.purchase_per_mille + a.spoken_message_per_mille > 1000
        {
            return Err(invalid(
                "actions.*_per_mille: at most 1000 (purchases and spoken messages together too)",
            ));
        }
        Ok(())
    }

    fn validate_agent(&self) -> Result<(), ScenarioError> {
        let g = &self.agent;
        let shift = (g.shift_interval_ms, g.shift_interval_ms);
        between("agent.shift_interval_ms", shift, 1, 3_600_000)?;
        let mistakes = [
            g.typo_per_mille,
            g.stale_clipboard_per_mille,
            g.swap_per_mille,
            g.weak_proof_per_mille,
            g.duplicate_per_mille,
            g.callback_per_mille,
            g.bad_reason_per_mille,
        ];
        let most = mistakes.iter().copied().max().unwrap_or(0);
        at_most("agent.*_per_mille", u64::from(most), 1000)?;
        g.extend_per_mille.validate("agent.extend_per_mille")?;
        between(
            "agent.extend_per_mille",
            (g.extend_per_mille.0, g.extend_per_mille.1),
            0,
            1000,
        )
    }

    fn validate_broadcasts(&self) -> Result<(), ScenarioError> {
        let b = &self.broadcasts;
        b.count.validate("broadcasts.count")?;
        if b.count.1 > 100
            || b.heard_per_mille > 1000
            || b.message_per_mille > 1000
            || b.boundary_per_mille > 1000
        {
            return Err(invalid(
                "broadcasts: at most 100 per seed, heard_per_mille, message_per_mille and boundary_per_mille at most 1000",
            ));
        }
        Ok(())
    }

    fn validate_faults(&self) -> Result<(), ScenarioError> {
        let f = &self.faults;
        for (name, range) in [
            ("faults.partitions", f.partitions),
            ("faults.latency_spikes", f.latency_spikes),
            ("faults.store_crashes", f.store_crashes),
            ("faults.store_crashes_after_ack", f.store_crashes_after_ack),
            ("faults.export_crashes", f.export_crashes),
            (
                "faults.export_crashes_in_publication",
                f.export_crashes_in_publication,
            ),
            ("faults.worker_crashes", f.worker_crashes),
        ] {
            range.validate(name)?;
            if range.1 > 100 {
                return Err(invalid(format!("{name}: at most 100 per seed")));
            }
        }
        for (name, range) in [
            ("faults.store_downtime_ms", f.store_downtime_ms),
            ("faults.export_downtime_ms", f.export_downtime_ms),
            ("faults.worker_downtime_ms", f.worker_downtime_ms),
            ("faults.latency_spike_ms", f.latency_spike_ms),
            ("faults.net_fault_ms", f.net_fault_ms),
        ] {
            range.validate(name)?;
            at_most(name, range.1, 60_000)?;
        }
        f.store_io_errors_per_million
            .validate("faults.store_io_errors_per_million")?;
        f.store_sync_failures
            .validate("faults.store_sync_failures")?;
        at_most("faults.store_sync_failures", f.store_sync_failures.1, 20)?;
        f.device_clock_skew_ms
            .validate("faults.device_clock_skew_ms")?;
        f.sut_fault_points_per_mille
            .validate("faults.sut_fault_points_per_mille")?;
        let points = f.sut_fault_points_per_mille.1;
        at_most("faults.sut_fault_points_per_mille", points, 500)?;
        let poisoned = f.poisoned_subject_per_mille;
        at_most("faults.poisoned_subject_per_mille", poisoned, 1000)?;
        f.poisoned_subject_window_ms
            .validate("faults.poisoned_subject_window_ms")?;
        let skewed = f.device_clock_skew_per_mille;
        at_most("faults.device_clock_skew_per_mille", skewed, 1000)?;
        if f.device_clock_skew_ms.1 > 7 * 24 * 3_600_000 {
            return Err(invalid("faults.device_clock_skew_ms: at most a week"));
        }
        let io_errors = f.store_io_errors_per_million.1;
        at_most("faults.store_io_errors_per_million", io_errors, 100_000)
    }
}

/// The scenario files a path names: the file itself, or every `*.toml`
/// directly inside a directory (sorted; `regressions/` is not included).
pub fn scenario_files(path: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| ScenarioError::at(path, ScenarioErrorKind::Read(e)))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
            // The probe allow-list lives beside the scenarios; it is none.
            .filter(|p| {
                p.file_name()
                    .is_none_or(|n| n != crate::probe_gate::ALLOW_LIST_FILE)
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(ScenarioError::at(path, ScenarioErrorKind::NoScenarios));
        }
        Ok(files)
    } else if path.is_file() {
        Ok(vec![path.to_path_buf()])
    } else {
        Err(ScenarioError::at(path, ScenarioErrorKind::NotFound))
    }
}
