//! The totals of a run and the summary `run` and `replay` print: the seeds'
//! verdicts, every positive control the oracle counted (by topic, one line
//! each), the code probes and the speed. Counting and printing only; the
//! verdict on them is [`super::verdict`]'s and [`crate::vacuity`]'s.

use crate::check::Controls;
use crate::faults::disk::DiskStats;
use crate::world::RunOutcome;

/// What a run counted over its seeds.
#[derive(Default)]
pub(super) struct Totals {
    pub seeds: u64,
    pub passed: u64,
    pub failed: u64,
    pub nondeterministic: u64,
    pub infra: u64,
    pub controls: Controls,
    pub simulated_ms: u64,
    pub sut_requests: u64,
    pub runs: u64,
    pub disk: DiskStats,
}

impl Totals {
    /// Count one run's cost (every run, including determinism re-runs).
    pub fn record(&mut self, outcome: &RunOutcome) {
        self.runs += 1;
        self.simulated_ms += outcome.simulated_ms;
        self.sut_requests += outcome.sut_requests;
    }

    /// Count one seed's evidence (once per seed, like the positive controls).
    pub fn evidence(&mut self, outcome: &RunOutcome) {
        self.seeds += 1;
        self.controls.add(&outcome.controls);
        for d in [&outcome.store_disk, &outcome.export_disk] {
            self.disk.crashes += d.crashes;
            self.disk.unsynced_writes_lost += d.unsynced_writes_lost;
            self.disk.unsynced_writes_kept += d.unsynced_writes_kept;
            self.disk.torn_writes += d.torn_writes;
            self.disk.io_errors_injected += d.io_errors_injected;
            self.disk.syncs += d.syncs;
        }
    }
}

/// Print the summary of `totals`, run in `wall_seconds`.
pub(super) fn print_summary(totals: &Totals, wall_seconds: f64) {
    let c = &totals.controls;
    println!("== summary ==");
    println!("{}", seeds_line(totals));
    let lines = [
        delivery_lines(c).as_slice(),
        durability_lines(c, &totals.disk).as_slice(),
        export_lines(c).as_slice(),
        contract_lines(c).as_slice(),
    ]
    .concat();
    for line in lines {
        println!("{line}");
    }
    if c.requests_raced > 0 || c.quiescent_probes > 0 {
        println!(
            "real threads: playbacks that raced a deletion of the same recording {}, sent after its acknowledgement {}, quiescent probes {} (the seed fixes the workload, the OS the interleaving)",
            c.requests_raced, c.requests_after_deletion_acked, c.quiescent_probes
        );
    }
    if let Some(line) = heavy_line(c) {
        println!("{line}");
    }
    println!("{}", real_data_line(c));
    println!("{}", jobs_line(c));
    println!("{}", c.probe_summary());
    println!("{}", speed_line(totals, wall_seconds));
}

/// Real users' data: requests carrying an address judged against who held
/// it (`check/addresses.rs`), and captures of real lengths (`check/audio.rs`).
fn real_data_line(c: &Controls) -> String {
    format!(
        "real users' data: requests carrying an address judged against who held it {} (by awkward addresses {}; the store's lookups {}, sign-ins with the right password {}); captures of a real length stored {} (at exactly the limit {}), refused one byte past it {}, delivered whole {} (of {} deliveries of one capture judged byte for byte)",
        c.address_requests_judged,
        c.awkward_address_requests_judged,
        c.lookups_judged_against_holders,
        c.sign_ins_judged,
        c.large_captures_uploaded,
        c.captures_at_limit_uploaded,
        c.oversized_captures_refused,
        c.large_captures_delivered_whole,
        c.audio_deliveries_judged_whole,
    )
}

/// The export jobs' contract: fences, finished exports, tickets' lookups,
/// and power losses inside publications.
fn jobs_line(c: &Controls) -> String {
    format!(
        "export jobs: claims judged for a fresh fence {} (of exports claimed before {}), claims judged against accepted publications {}; tickets accepted judged against the store's lookups {}; power losses armed inside a publication {}",
        c.claims_judged_for_a_fresh_fence,
        c.exports_claimed_again,
        c.claims_judged_against_publication,
        c.tickets_judged_against_lookups,
        c.publication_power_losses_armed,
    )
}

/// How many seeds ran, passed and failed.
fn seeds_line(totals: &Totals) -> String {
    format!(
        "seeds run {}, passed {}, failed {}{}{}",
        totals.seeds,
        totals.passed,
        totals.failed,
        if totals.nondeterministic > 0 {
            format!(", NONDETERMINISTIC {}", totals.nondeterministic)
        } else {
            String::new()
        },
        if totals.infra > 0 {
            format!(", infrastructure errors {}", totals.infra)
        } else {
            String::new()
        },
    )
}

/// Deliveries judged, and foreign downloads refused.
fn delivery_lines(c: &Controls) -> [String; 2] {
    [
        format!(
            "positive controls: exports completed {} of {} requested; recordings delivered and judged {} (history {}, their transcripts judged character for character {}, playback {}, in archives {}); uploads acknowledged {}; racy recordings allowed {}",
            c.exports_completed,
            c.exports_requested,
            c.recordings_delivered,
            c.history_items_checked,
            c.transcripts_judged_exact,
            c.own_audio_checked,
            c.archive_recordings_checked,
            c.utterances_uploaded,
            c.racy_recordings_allowed,
        ),
        format!(
            "foreign downloads: forwarded links refused {} of {} attempted, anonymous link uses refused {}; guessed recording ids refused {} of {} attempted",
            c.foreign_link_refused,
            c.foreign_link_attempts,
            c.anonymous_link_refused,
            c.guessed_audio_refused,
            c.guessed_audio_attempts,
        ),
    ]
}

/// Crashes and the audits after them, devices, messages and broadcasts.
fn durability_lines(c: &Controls, disk: &DiskStats) -> [String; 3] {
    [
        format!(
            "durability: store crashes {} (right after acknowledging a close, sale, reset or deletion {}; acknowledged closes and token replacements probed after a power loss {}; unsynced writes lost {}, torn {}, on the store's and the export's disks), disk I/O errors {}, uploads buffered while the store was down {}; final audits {}: acknowledged recordings found again {}, deletions acknowledged {} and verified gone {}",
            c.store_crashes,
            c.store_crashes_after_ack,
            c.acked_states_probed_after_power_loss,
            disk.unsynced_writes_lost,
            disk.torn_writes,
            disk.io_errors_injected,
            c.uploads_buffered,
            c.audits_completed,
            c.recordings_verified_durable,
            c.deletions_acknowledged,
            c.deletions_verified,
        ),
        format!(
            "devices: transferred {} (captures uploaded after their device changed hands {}), factory resets {}; messages: delivered {}, refused by their sender {}, inbox items checked {}, withdrawn messages asked for again {}, messages addressed to the caller asked for by id {} (refused {})",
            c.devices_transferred,
            c.pre_transfer_uploads,
            c.device_resets,
            c.messages_delivered,
            c.messages_refused_by_sender,
            c.inbox_items_checked,
            c.withdrawn_messages_rechecked,
            c.addressed_messages_played_by_id + c.addressed_messages_refused_by_id,
            c.addressed_messages_refused_by_id,
        ),
        format!(
            "broadcasts: captures {} (heard while their household waited {}), their orders suppressed {}, their messages suppressed {}; genuine spoken orders placed {} (cancelled by their recording's deletion {}), spoken messages delivered {}; housemates' voices captured {}, utterances captured by two speakers in one room {}; accounts closed {}, emails signed up again {}; uploads without an answer named by their owner's listing {}, orders judged by them {}, orders excused as maybe theirs {}",
            c.broadcast_captures,
            c.broadcasts_heard_during_wait,
            c.broadcast_orders_suppressed,
            c.broadcast_messages_suppressed,
            c.genuine_orders_placed,
            c.orders_cancelled_by_deletion,
            c.spoken_messages_delivered,
            c.housemate_captures,
            c.captures_by_two_speakers,
            c.accounts_closed,
            c.accounts_recycled,
            c.unanswered_uploads_named_by_listing,
            c.orders_from_unanswered_uploads,
            c.orders_of_unknown_uploads_excused,
        ),
    ]
}

/// The export pipeline and its limits.
fn export_lines(c: &Controls) -> [String; 2] {
    [
        format!(
            "export pipeline: tickets verified {}, impersonation codes refused {}, duplicate requests joined {}, rate-limited {}, archives revoked after a deletion {} (rebuilt and downloaded {}, revoked links judged never offered again {}), downloads refused past the limit {}, notified links followed {}, links in feeds judged their reader's own {}, feeds read whole then after their cursor {} (notifications past the cursor judged {}); export crashes {}, worker crashes {}, network faults {}, fault points fired inside the services {}",
            c.tickets_verified,
            c.impersonation_codes_refused,
            c.duplicate_requests_joined,
            c.exports_rate_limited,
            c.archives_revoked,
            c.rebuilt_archives_downloaded,
            c.revoked_links_judged,
            c.download_limit_refusals,
            c.notified_links_followed,
            c.links_delivered_judged,
            c.feed_rereads_judged,
            c.feed_items_past_cursor_judged,
            c.export_crashes,
            c.worker_crashes,
            c.net_faults,
            c.sut_faults_fired,
        ),
        format!(
            "export limits: successful downloads judged against the link's limits {}, refusals (410) judged for a cause {}: downloads refused past limit {}, downloads refused after expiry {}; dead links (refused or replaced) tried again {}, all refused; rebuilt links used to their limit {}, rebuilt a link lifetime after the first and downloaded {}; downloads tried while the store was down after a deletion {}; archive entries judged whole {}; own devices' resets answered 404 judged {}; workers' publications judged against their lease {} (reached the service after it lapsed {}, refused {}), leases granted by claims and renewals judged to end lease_ms after the call {}",
            c.downloads_judged_against_limits,
            c.gone_answers_judged,
            c.downloads_refused_past_limit,
            c.downloads_refused_after_expiry,
            c.dead_links_tried_again,
            c.rebuilt_links_used_to_limit,
            c.rebuilt_links_late_downloaded,
            c.downloads_while_store_down_after_deletion,
            c.archive_entries_judged_whole,
            c.refusals_of_own_things_judged,
            c.publications_judged_against_lease,
            c.publications_after_lease_lapsed,
            c.lapsed_publications_refused,
            c.lease_grants_judged,
        ),
    ]
}

/// The API contract and the support agent.
fn contract_lines(c: &Controls) -> [String; 7] {
    [
        format!(
            "api contract: replies judged {}, error bodies judged JSON {}, authenticated answers judged not storable by a shared cache {}, refusals as overloaded judged against the load measured inside the service {} (their Retry-After {}), server errors excused by a fault near them {}, runs with the panic hook {}; deletion answers judged {} (ids of uploads still in flight {}); foreign-access statuses judged {}; service state digests {}",
            c.api_replies_judged,
            c.error_bodies_judged,
            c.cache_headers_judged,
            c.load_shedding_judged,
            c.retry_afters_judged,
            c.server_errors_excused,
            c.panic_hooks_installed,
            c.deletion_answers_judged,
            c.deleted_ids_unknown_owner,
            c.foreign_statuses_judged,
            c.state_digests_taken,
        ),
        format!(
            "support agent: actions {}, mistakes injected {} (all contained unless a violation says otherwise), manual identity proofs refused {}, archives attached to a resend refused {}",
            c.agent_actions,
            c.agent_errors_injected,
            c.manual_verifications_refused,
            c.archive_attachments_refused,
        ),
        format!(
            "agent's books: audit entries judged {} (refusals and failures among them {}), overdue queue reads judged {} (exports known undelivered past due that had to be listed {}, extended ones past their first due date that had to be left out {}); call-backs after the subject closed and the address was signed up again {} (refused {})",
            c.audit_entries_judged,
            c.audit_refusals_judged,
            c.overdue_listings_judged,
            c.overdue_exports_required,
            c.overdue_listings_judged_with_extended,
            c.callbacks_after_recycling,
            c.callbacks_after_recycling_refused,
        ),
        format!(
            "deadline extensions: granted {}, refused as a second extension {}, for a number no request has {}, for a blank or oversized reason {}; extended requests judged on their extended deadline {}",
            c.extensions_granted,
            c.extensions_refused_twice,
            c.extensions_refused_unknown_export,
            c.extensions_refused_bad_reason,
            c.extended_requests_judged_on_liveness,
        ),
        format!(
            "claims read back: archive snapshot claims judged {} (uploads that raced their owner's export build {}, always-on speaker captures {}), contact lists judged {}, uploads of closed accounts judged {} (refused with 410 {})",
            c.snapshot_claims_judged,
            c.uploads_raced_export_build,
            c.ambient_captures,
            c.contact_lists_judged,
            c.uploads_for_closed_accounts_judged,
            c.uploads_refused_owner_closed,
        ),
        format!(
            "moving out: captures flushed under the buyer after the seller closed {}, spoken orders and messages among the flushed captures {}, the buyer's orders and messages listings judged {}; outgoing messages judged to carry the sender's own capture {}",
            c.moved_out_captures_flushed_after_close,
            c.moved_out_intents_flushed,
            c.moving_in_listings_judged,
            c.outgoing_messages_judged,
        ),
        format!(
            "worker faults: collection reads refused 503 by the store {}, a poisoned subject's reads refused {} (poison jobs' retries judged {}, seen failed after their attempts and asked for again {})",
            c.collection_reads_refused,
            c.poisoned_reads_refused,
            c.poison_retries_judged,
            c.poison_give_ups_seen,
        ),
    ]
}

/// Heavy users and "delete all" (`check/history.rs`), when any ran.
fn heavy_line(c: &Controls) -> Option<String> {
    if c.history_walks_past_page_clamp == 0 && c.delete_all_requests == 0 {
        return None;
    }
    Some(format!(
        "long histories: full walks judged whole {}, walks past the store's page clamp {} (items past it {}), archives past it {}; delete-all requests {}, recordings covered {}, forgotten by the next full walk {}",
        c.history_walks_judged_whole,
        c.history_walks_past_page_clamp,
        c.history_items_past_page_clamp,
        c.archives_past_page_clamp,
        c.delete_all_requests,
        c.delete_all_recordings_covered,
        c.delete_all_forgotten_by_history,
    ))
}

/// The run's speed: runs, seeds, simulated time and requests per wall second.
fn speed_line(totals: &Totals, wall_seconds: f64) -> String {
    let wall = wall_seconds.max(1e-9);
    format!(
        "speed: {} runs in {:.2} s wall = {:.2} seeds/s; {:.0} simulated s = {:.1}x wall; {} SUT HTTP requests = {:.0} requests/s",
        totals.runs,
        wall_seconds,
        totals.seeds as f64 / wall,
        totals.simulated_ms as f64 / 1000.0,
        totals.simulated_ms as f64 / 1000.0 / wall,
        totals.sut_requests,
        totals.sut_requests as f64 / wall,
    )
}
