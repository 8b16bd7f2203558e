//! Vacuity: a run passes only if every check had something to check. Each
//! scenario's enabled features are held against **that scenario's own**
//! positive controls, summed over its seeds, so a scenario whose feature
//! never happened fails even when another scenario of the same run (or of
//! another shard) exercised it.
//!
//! Controls are read by name from their serialized form (`Controls` derives
//! `Serialize`), which is also the form the `--json` results carry, so the
//! same rules judge a live run and a merge of shard results.

use crate::check::Controls;
use crate::scenario::Scenario;
use std::collections::BTreeMap;

/// Below this many seeds of a scenario only the always-expected controls are
/// checked: a rare feature may legitimately not happen in a few seeds.
pub const MIN_SEEDS: u64 = 20;

/// Controls by field name, as `Controls` serializes them.
pub type ControlCounts = BTreeMap<String, u64>;

/// One rule: if the scenario enables the feature, every named control must
/// be above zero once the scenario ran `min_seeds` seeds.
struct Rule {
    label: &'static str,
    enabled: fn(&Scenario) -> bool,
    controls: &'static [&'static str],
    min_seeds: u64,
}

const fn rule(
    label: &'static str,
    enabled: fn(&Scenario) -> bool,
    controls: &'static [&'static str],
) -> Rule {
    Rule {
        label,
        enabled,
        controls,
        min_seeds: MIN_SEEDS,
    }
}

const RULES: &[Rule] = &[
    Rule {
        label: "recordings delivered",
        enabled: |_| true,
        controls: &["recordings_delivered"],
        min_seeds: 1,
    },
    rule(
        "exports completed",
        |s| s.actions.exports.1 > 0,
        &["exports_completed"],
    ),
    rule(
        "foreign links refused",
        |s| s.actions.foreign_link_uses.1 > 0 && s.actions.exports.1 > 0,
        &["foreign_link_refused"],
    ),
    rule(
        "guessed recording ids refused",
        |s| s.actions.guessed_audio_fetches.1 > 0,
        &["guessed_audio_refused"],
    ),
    rule(
        "store crashes",
        |s| s.faults.store_crashes.1 > 0,
        &["store_crashes"],
    ),
    rule(
        "recordings listed by the final audit played back whole after store crashes",
        |s| s.faults.store_crashes.1 > 0,
        &["listed_recordings_played_back"],
    ),
    rule(
        "store disk syncs failed, then the power went",
        |s| s.faults.store_sync_failures.1 > 0,
        &["store_power_losses_after_failed_sync"],
    ),
    rule(
        "store crashes right after an acknowledged rare write",
        |s| s.faults.store_crashes_after_ack.1 > 0,
        &["store_crashes_after_ack"],
    ),
    rule(
        "acknowledged closes and token replacements probed after a power loss",
        |s| {
            s.faults.store_crashes_after_ack.1 > 0
                && (s.actions.close_account_per_mille > 0
                    || s.actions.device_transfers.1 > 0
                    || s.actions.device_resets.1 > 0)
        },
        &["acked_states_probed_after_power_loss"],
    ),
    rule("deletions verified", deletions, &["deletions_verified"]),
    rule(
        "final audits",
        |_| true,
        &["audits_completed", "recordings_verified_durable"],
    ),
    // Every final audit reads its feed whole and then after its cursor.
    rule(
        "notification feeds read whole, then after their cursor",
        |_| true,
        &["feed_rereads_judged"],
    ),
    rule(
        "device transfers",
        |s| s.actions.device_transfers.1 > 0,
        &["devices_transferred"],
    ),
    // A device changes hands loaded with the seller's captures routinely
    // only where every device also goes offline (chaos, whose outages are
    // optional, saw one such sale in 20 seeds).
    rule(
        "captures uploaded after their device's sale",
        |s| s.actions.device_transfers.1 > 0 && s.actions.device_outages.0 > 0,
        &["pre_transfer_uploads"],
    ),
    rule(
        "messages delivered and read",
        |s| s.actions.messages.1 > 0 && s.actions.contacts.1 > 0,
        &["messages_delivered", "inbox_items_checked"],
    ),
    // A misheard message its sender refused stays unconfirmed; its
    // addressee, as a curious user, asks for it by id and must be refused.
    rule(
        "unconfirmed messages asked for by their addressee",
        |s| s.actions.misheard_contact_per_mille > 0 && s.actions.curious_probes.1 > 0,
        &["addressed_messages_refused_by_id"],
    ),
    rule(
        "broadcast orders suppressed",
        |s| s.broadcasts.count.1 > 0,
        &["broadcast_orders_suppressed"],
    ),
    rule(
        "broadcast messages suppressed",
        |s| s.broadcasts.count.1 > 0 && s.broadcasts.message_per_mille > 0,
        &["broadcast_messages_suppressed"],
    ),
    rule(
        "spoken messages delivered",
        |s| s.actions.spoken_message_per_mille > 0 && s.actions.contacts.1 > 0,
        &["spoken_messages_delivered"],
    ),
    rule(
        "housemates' voices captured",
        |s| s.world.household_size.1 > 1 && s.actions.housemate_speech_per_mille > 0,
        &["housemate_captures"],
    ),
    rule(
        "utterances captured by two speakers in one room",
        |s| s.actions.two_speakers_per_mille > 0 && s.world.devices_per_account.1 > 1,
        &["captures_by_two_speakers"],
    ),
    rule(
        "genuine orders placed",
        |s| s.actions.purchase_per_mille > 0,
        &["genuine_orders_placed"],
    ),
    rule(
        "accounts closed and recycled",
        |s| s.actions.close_account_per_mille > 0,
        &["accounts_closed", "accounts_recycled"],
    ),
    rule(
        "uploads of always-on speakers that raced their owner's export build",
        |s| {
            s.actions.chatter_per_mille > 0
                && s.actions.chatter_captures.1 > 0
                && s.actions.exports.1 > 0
        },
        &["ambient_captures", "uploads_raced_export_build"],
    ),
    rule(
        "heavy users: histories walked whole past the store's page clamp, archives past it",
        |s| s.heavy.accounts.1 > 0,
        &[
            "history_walks_past_page_clamp",
            "history_walks_judged_whole",
            "archives_past_page_clamp",
        ],
    ),
    rule(
        "delete all my history: requests answered, covered recordings forgotten by the next walk",
        |s| {
            (s.heavy.accounts.1 > 0 && s.heavy.delete_all_per_mille > 0)
                || s.heavy.others_delete_all_per_mille > 0
        },
        &["delete_all_requests", "delete_all_forgotten_by_history"],
    ),
    rule(
        "tickets verified",
        |s| s.actions.ticket_exports.1 > 0,
        &["tickets_verified"],
    ),
    rule(
        "impersonations refused",
        |s| s.actions.impersonations.1 > 0,
        &["impersonation_codes_refused"],
    ),
    rule(
        "ticket lockout: the right code refused after the wrong ones, no challenge for a near miss",
        |s| s.actions.impersonations.1 > 0,
        &[
            "refused: lockout: a wrong code on a ticket for someone else's email",
            "refused: lockout: the right code read out by its victim on a locked ticket",
            "refused: lockout: the victim's own right code on a ticket an attacker locked",
            "refused: lockout: no challenge in the nearest holder's feed for a ticket claiming an address nobody holds",
        ],
    ),
    // A sender who has the recycled person as a contact and something to
    // send is common only where many accounts close (recycled-identity).
    rule(
        "recycled address: a late confirmation refused",
        |s| s.actions.close_account_per_mille >= 300 && s.actions.contacts.1 > 0,
        &[
            "refused: recycled address: a message confirmed after its recipient closed and the address was signed up again",
        ],
    ),
    rule(
        "archives revoked after a deletion",
        |s| s.actions.delete_before_download_per_mille > 0 && s.actions.exports.1 > 0,
        &["archives_revoked"],
    ),
    rule(
        "archives revoked, rebuilt and downloaded; revoked links judged",
        |s| s.actions.delete_before_download_per_mille > 0 && s.actions.exports.1 > 0,
        &["rebuilt_archives_downloaded", "revoked_links_judged"],
    ),
    rule(
        "leases granted by claims and renewals judged",
        |s| s.actions.exports.1 > 0,
        &["lease_grants_judged"],
    ),
    // The publish stall (a fault point inside the workers) ends just past
    // the lease, often before any other worker claims the job.
    rule(
        "publications after a lapsed lease refused",
        |s| s.faults.sut_fault_points_per_mille.1 > 0 && s.actions.exports.1 > 0,
        &[
            "publications_after_lease_lapsed",
            "lapsed_publications_refused",
        ],
    ),
    // Every claim is judged for a fresh fence; reclaims (a crashed or
    // stalled worker's lapsed lease, a rebuild) are what the judgement is for.
    rule(
        "claims judged for a fresh fence, reclaims among them; claims judged against publications",
        |s| s.faults.worker_crashes.1 > 0 && exports(s),
        &[
            "claims_judged_for_a_fresh_fence",
            "exports_claimed_again",
            "claims_judged_against_publication",
        ],
    ),
    rule(
        "power losses armed inside a publication",
        |s| s.faults.export_crashes_in_publication.1 > 0 && exports(s),
        &["publication_power_losses_armed"],
    ),
    rule(
        "tickets accepted judged against the store's lookups",
        |s| s.actions.ticket_exports.1 > 0,
        &["tickets_judged_against_lookups"],
    ),
    rule(
        "the store's lookups judged against who held the address",
        |s| s.actions.ticket_exports.1 > 0 || s.actions.impersonations.1 > 0,
        &["lookups_judged_against_holders"],
    ),
    // Every awkward address signs in on a second device after signing up.
    rule(
        "requests by awkward addresses judged against who held them, sign-ins with the right password",
        |s| s.data.awkward_address_per_mille > 0,
        &["awkward_address_requests_judged", "sign_ins_judged"],
    ),
    rule(
        "captures of a real length stored and delivered whole",
        |s| s.data.long_capture_per_mille > 0,
        &["large_captures_uploaded", "large_captures_delivered_whole"],
    ),
    rule(
        "captures at exactly the API's limit stored",
        |s| s.data.capture_at_limit_per_mille > 0,
        &["captures_at_limit_uploaded"],
    ),
    rule(
        "captures one byte past the API's limit refused with 413 and a JSON error",
        |s| s.data.capture_over_limit_per_mille > 0,
        &["oversized_captures_refused"],
    ),
    rule(
        "downloads refused past the limit",
        |s| s.actions.redownloads.1 >= 3 && s.actions.exports.1 > 0,
        &["download_limit_refusals"],
    ),
    rule(
        "agent mistakes injected and notified links followed",
        |s| s.agent.enabled && s.actions.ticket_exports.1 > 0,
        &["agent_errors_injected", "notified_links_followed"],
    ),
    rule(
        "the agent's books read and judged: audit entries, refusals among them, overdue queue reads",
        |s| s.agent.enabled && s.actions.ticket_exports.1 > 0,
        &[
            "audit_entries_judged",
            "audit_refusals_judged",
            "overdue_listings_judged",
        ],
    ),
    // A failed request past its first due date needs a poisoned subject
    // whose window outlasts the job's attempts, early enough for the drain
    // to reach its due date (smoke: about one seed in four each way, as the
    // agent extended it or not).
    Rule {
        label: "overdue reads past a failed request's first due date: listed when not extended, left out when extended",
        enabled: |s| {
            agent_extends(s)
                && s.faults.poisoned_subject_per_mille > 0
                && s.faults.poisoned_subject_window_ms.0 >= 300_000
                && s.world.drain_seconds >= 600
        },
        controls: &[
            "overdue_exports_required",
            "overdue_listings_judged_with_extended",
        ],
        min_seeds: 2 * MIN_SEEDS,
    },
    rule(
        "call-backs after the subject closed and the address was signed up again, refused",
        |s| {
            s.agent.enabled
                && s.agent.callback_per_mille > 0
                && s.actions.ticket_exports.0 > 0
                && s.actions.close_account_per_mille >= 300
        },
        &[
            "callbacks_after_recycling",
            "callbacks_after_recycling_refused",
        ],
    ),
    rule(
        "worker crashes",
        |s| s.faults.worker_crashes.1 > 0,
        &["worker_crashes"],
    ),
    rule(
        "fault points fired",
        |s| s.faults.sut_fault_points_per_mille.1 > 0,
        &["sut_faults_fired"],
    ),
    rule(
        "network faults",
        |s| s.faults.partitions.1 > 0 || s.faults.latency_spikes.1 > 0,
        &["net_faults"],
    ),
    rule(
        "export crashes",
        |s| s.faults.export_crashes.1 > 0,
        &["export_crashes"],
    ),
    rule(
        "confirmed messages found in their recipient's inbox",
        |s| s.actions.messages.1 > 0 && s.actions.contacts.1 > 0,
        &["messages_verified_delivered"],
    ),
    rule(
        "curious user: others' recordings played, deleted, sent, range-deleted",
        curious,
        &[
            "refused: foreign recording: playback",
            "refused: foreign recording: delete",
            "refused: foreign recording: message",
            "refused: foreign range deletion",
        ],
    ),
    rule(
        "curious user: others' devices reset and transferred, undocumented parameters",
        curious,
        &[
            "refused: foreign device: reset",
            "refused: foreign device: transfer",
            "refused: undocumented parameter",
        ],
    ),
    rule(
        "curious user: wrong credentials at every door",
        curious,
        &[
            "refused: sign-in as a neighbour",
            "refused: service API with a wrong token",
            "refused: service route with a user's credentials",
            "refused: worker API with a wrong token",
            "refused: agent console with a wrong token",
        ],
    ),
    rule(
        "downloads refused past limit (people who download again until refused)",
        |s| s.limits.past_limit_per_mille > 0 && exports(s),
        &["downloads_refused_past_limit"],
    ),
    rule(
        "rebuilt archives: dead links tried again, rebuilt links used to their limit",
        |s| s.limits.rebuild_per_mille > 0 && exports(s),
        &["dead_links_tried_again", "rebuilt_links_used_to_limit"],
    ),
    rule(
        "downloads while the store was down after a deletion (the export's live check could not reach it)",
        |s| {
            s.limits.store_down_download_per_mille > 0
                && s.actions.delete_before_download_per_mille > 0
                && exports(s)
        },
        &["downloads_while_store_down_after_deletion"],
    ),
    rule(
        "downloads refused after expiry (people who wait past their link's lifetime)",
        |s| s.limits.past_expiry_per_mille > 0 && exports(s),
        &["downloads_refused_after_expiry"],
    ),
    rule(
        "archive entries judged whole, downloads judged against the limits",
        exports,
        &[
            "archive_entries_judged_whole",
            "downloads_judged_against_limits",
        ],
    ),
    rule(
        "curious user: tampered link tokens",
        |s| curious(s) && s.actions.exports.1 > 0,
        &["refused: tampered link token"],
    ),
    // Every check below judges something every run of its scenario does;
    // a count of zero means the check (or the feature) silently stopped.
    rule(
        "owners' listings, playback and contact lists judged, service state hashed, error bodies, cache headers and transcripts judged",
        |_| true,
        &[
            "error_bodies_judged",
            "cache_headers_judged",
            "transcripts_judged_exact",
            "history_items_checked",
            "own_audio_checked",
            "audio_deliveries_judged_whole",
            "contact_lists_judged",
            "state_digests_taken",
        ],
    ),
    rule(
        "archives judged entry by entry, snapshot claims, links delivered, gone answers",
        exports,
        &[
            "archive_recordings_checked",
            "snapshot_claims_judged",
            "links_delivered_judged",
            "gone_answers_judged",
        ],
    ),
    rule(
        "deleted recordings looked for again in their owner's history",
        deletions,
        &["refused: after deletion: history"],
    ),
    rule(
        "deleted recordings looked for again in their owner's next archive",
        |s| deletions(s) && exports(s),
        &["refused: after deletion: archive"],
    ),
    rule(
        "curious user: looks again at what it was told, reuses what it was given",
        curious,
        &[
            "refused: acknowledged upload: playback",
            "refused: foreign cursor",
            "refused: upload key reused for other content",
            "refused: upload retried with the same key",
            "refused: sign-up with one's own address written another way",
            "refused: foreign range deletion with an extra field",
        ],
    ),
    rule(
        "curious user: deleted recordings played back by id, their uploads retried",
        |s| curious(s) && deletions(s),
        &[
            "refused: after deletion: playback",
            "refused: deleted upload retried with the same key",
        ],
    ),
    rule(
        "curious user: others' export statuses, old archive links after a deletion",
        |s| curious(s) && deletions(s) && exports(s),
        &[
            "refused: foreign export: status",
            "refused: after deletion: old archive link",
        ],
    ),
    rule(
        "curious user: others' messages confirmed and played, withdrawn ones looked for",
        |s| curious(s) && s.actions.messages.1 > 0 && s.actions.contacts.1 > 0,
        &[
            "refused: foreign message: confirm",
            "refused: foreign message: inbox audio",
            "refused: after deletion: recipient's inbox",
        ],
    ),
    rule(
        "curious user: wrong codes on others' tickets",
        |s| curious(s) && s.actions.ticket_exports.1 > 0,
        &["refused: foreign ticket: wrong code"],
    ),
    rule(
        "curious user: retired device tokens",
        |s| curious(s) && (s.actions.device_transfers.1 > 0 || s.actions.device_resets.1 > 0),
        &["refused: retired device token"],
    ),
    Rule {
        label: "curious user: a closed account's old session",
        enabled: |s| curious(s) && s.actions.close_account_per_mille > 0,
        controls: &["refused: closed account's old session"],
        min_seeds: 2 * MIN_SEEDS,
    },
    rule(
        "held orders and spoken messages decided within their hold",
        |s| s.actions.purchase_per_mille > 0 || s.actions.spoken_message_per_mille > 0,
        &["refused: held command decided within its hold"],
    ),
    // One handover per seed, switched off in one seed of four: judged where
    // seeds are many (a capped world's few seeds may all lose theirs to its
    // outage).
    rule(
        "tickets verified across an address handover",
        |s| {
            (s.actions.close_account_per_mille > 0 || s.actions.ticket_exports.1 > 0)
                && s.max_seeds.is_none()
        },
        &[
            "refused: ticket handover: tickets verified after their address changed hands",
            "refused: ticket handover: new holders' feeds read for exports they never asked for",
        ],
    ),
    // Moving out: up to two per seed, switched off in one seed of four.
    rule(
        "moving out: a closed seller's captures flushed under the buyer, intents flushed, buyer's listings judged",
        |s| s.actions.move_out_per_mille > 0 && s.max_seeds.is_none(),
        &[
            "moved_out_captures_flushed_after_close",
            "moved_out_intents_flushed",
            "moving_in_listings_judged",
        ],
    ),
    rule(
        "outgoing messages judged to carry their sender's own capture",
        |s| s.actions.spoken_message_per_mille > 0,
        &["outgoing_messages_judged"],
    ),
    rule(
        "broadcast captures",
        |s| s.broadcasts.count.1 > 0,
        &["broadcast_captures"],
    ),
    rule(
        "misheard messages refused by their sender",
        |s| {
            s.actions.misheard_contact_per_mille > 0
                && s.actions.messages.1 > 0
                && s.actions.contacts.1 > 0
        },
        &["messages_refused_by_sender"],
    ),
    rule(
        "agent actions judged: deadline extensions granted, extended requests judged on their extended deadline",
        agent_extends,
        &[
            "agent_actions",
            "extensions_granted",
            "extended_requests_judged_on_liveness",
        ],
    ),
    rule(
        "deadline extensions refused: a second one, a number no request has, a blank or oversized reason",
        |s| {
            agent_extends(s)
                && s.agent.duplicate_per_mille > 0
                && s.agent.typo_per_mille > 0
                && s.agent.bad_reason_per_mille > 0
        },
        &[
            "extensions_refused_twice",
            "extensions_refused_unknown_export",
            "extensions_refused_bad_reason",
        ],
    ),
    // Tickets left awaiting verification for the agent to be talked round
    // on are the impersonators' (a customer verifies their own at once).
    rule(
        "agent: manual verifications on weak proof refused",
        |s| {
            s.agent.enabled
                && s.actions.ticket_exports.1 > 0
                && s.actions.impersonations.1 > 0
                && s.agent.weak_proof_per_mille > 0
        },
        &["manual_verifications_refused"],
    ),
    Rule {
        label: "agent: archives attached to the wrong ticket refused",
        enabled: |s| s.agent.enabled && s.actions.ticket_exports.1 > 0,
        controls: &["archive_attachments_refused"],
        min_seeds: 3 * MIN_SEEDS,
    },
    rule(
        "device resets",
        |s| s.actions.device_resets.1 > 0,
        &["device_resets"],
    ),
    rule(
        "poisoned subjects' reads refused",
        |s| s.faults.poisoned_subject_per_mille > 0 && exports(s),
        &["poisoned_reads_refused"],
    ),
    rule(
        "the store's transient refusals of the export worker's reads",
        |s| s.faults.sut_fault_points_per_mille.1 > 0 && exports(s),
        &["collection_reads_refused"],
    ),
];

/// The rules of a threads scenario (`harness = "threads"`): none of the
/// simulator's features run there, and these must.
const THREAD_RULES: &[Rule] = &[
    Rule {
        label: "recordings delivered",
        enabled: |_| true,
        controls: &["recordings_delivered"],
        min_seeds: 1,
    },
    // Judged over the scenario's seeds together: the OS decides whether a
    // single seed's requests happened to overlap.
    rule(
        "requests raced a deletion of the same recording (real threads)",
        |_| true,
        &["requests_raced"],
    ),
    rule(
        "quiescent probes, deletions verified gone, recordings found again",
        |_| true,
        &[
            "quiescent_probes",
            "deletions_verified",
            "recordings_verified_durable",
        ],
    ),
    rule(
        "playbacks sent after a deletion of the same recording was acknowledged (deletion storms)",
        |s| s.threads.as_ref().is_some_and(|t| t.deletion_storm.1 > 0),
        &["requests_after_deletion_acked"],
    ),
    rule(
        "speakers sold while their uploads were in flight",
        |s| s.threads.as_ref().is_some_and(|t| t.transfer_per_mille > 0),
        &["devices_transferred"],
    ),
    rule(
        "accounts closed while uploads were in flight",
        |s| s.threads.as_ref().is_some_and(|t| t.close_per_mille > 0),
        &["accounts_closed"],
    ),
];

/// The numeric fields of `controls`, by name; the curious user's attempts
/// (`probes`, by kind) as `refused: <kind>` (every core kind present, zero
/// when never refused).
pub fn control_counts(controls: &Controls) -> ControlCounts {
    let mut counts = ControlCounts::new();
    for kind in crate::check::adversary::CORE_ATTEMPTS
        .iter()
        .chain(&[TAMPERED_LINK])
        .chain(crate::check::lockout::KINDS)
        .chain(&[crate::check::recycled::AFTER_RECYCLE])
    {
        counts.insert(format!("refused: {kind}"), 0);
    }
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(controls) {
        for (name, value) in fields {
            if let Some(n) = value.as_u64() {
                counts.insert(name, n);
            } else if name == "probes"
                && let serde_json::Value::Object(kinds) = value
            {
                for (kind, attempts) in kinds {
                    let refused = attempts.get("refused").and_then(|r| r.as_u64());
                    counts.insert(format!("refused: {kind}"), refused.unwrap_or(0));
                }
            }
        }
    }
    counts
}

/// Every control some rule reads (simulator and threads rules alike), in
/// rule order: what a test that fabricates a fully exercised run must set.
pub fn named_controls() -> Vec<&'static str> {
    RULES
        .iter()
        .chain(THREAD_RULES)
        .flat_map(|r| r.controls.iter().copied())
        .collect()
}

/// The attempt kind that needs exports to happen.
const TAMPERED_LINK: &str = "tampered link token";

/// Rules for the curious user: each core kind of attempt refused at least
/// once wherever the actor is on (and the tampered link where exports are).
fn curious(s: &Scenario) -> bool {
    s.actions.curious_probes.1 > 0
}

/// Whether people delete recordings (one at a time or by range).
fn deletions(s: &Scenario) -> bool {
    s.actions.deletions.1 > 0 || s.actions.range_deletions.1 > 0
}

/// Whether the support agent extends requests' deadlines (it learns of
/// every request, direct or by ticket).
fn agent_extends(s: &Scenario) -> bool {
    s.agent.enabled && s.agent.extend_per_mille.1 > 0 && exports(s)
}

/// Whether people ask for exports at all (directly or by ticket).
fn exports(s: &Scenario) -> bool {
    s.actions.exports.1 > 0 || s.actions.ticket_exports.1 > 0
}

/// Add `more` into `sum`, field by field.
pub fn add_counts(sum: &mut ControlCounts, more: &ControlCounts) {
    for (name, n) in more {
        *sum.entry(name.clone()).or_default() += n;
    }
}

/// The features `scenario` enables that its own controls, over `seeds`
/// seeds, never saw.
pub fn missing_controls(
    scenario: &Scenario,
    seeds: u64,
    counts: &ControlCounts,
) -> Vec<&'static str> {
    let rules = match scenario.harness {
        crate::scenario::Harness::Sim => RULES,
        crate::scenario::Harness::Threads => THREAD_RULES,
    };
    rules
        .iter()
        .filter(|r| seeds >= r.min_seeds.min(full_check_seeds(scenario)) && (r.enabled)(scenario))
        .filter(|r| {
            r.controls
                .iter()
                .any(|c| counts.get(*c).copied().unwrap_or(0) == 0)
        })
        .map(|r| r.label)
        .collect()
}

/// Seeds of `scenario` after which every rule applies: [`MIN_SEEDS`], or
/// all of a capped world's seeds (`max_seeds`; each of them is big enough
/// for every feature to happen).
fn full_check_seeds(scenario: &Scenario) -> u64 {
    MIN_SEEDS.min(scenario.max_seeds.unwrap_or(MIN_SEEDS).max(1))
}

/// The verdict over every scenario of a run: what each one missed, and
/// which ran too few seeds for the full check.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Vacuity {
    /// (scenario, the labels of the features it never exercised).
    pub missing: Vec<(String, Vec<&'static str>)>,
    /// (scenario, seeds run) for scenarios below [`MIN_SEEDS`].
    pub too_few_seeds: Vec<(String, u64)>,
}

impl Vacuity {
    /// Judge each (scenario, its seeds, its summed controls).
    pub fn judge<'a>(
        per_scenario: impl IntoIterator<Item = (&'a Scenario, u64, &'a ControlCounts)>,
    ) -> Vacuity {
        let mut vacuity = Vacuity::default();
        for (scenario, seeds, counts) in per_scenario {
            if seeds < full_check_seeds(scenario) {
                vacuity.too_few_seeds.push((scenario.name.clone(), seeds));
            }
            let missing = missing_controls(scenario, seeds, counts);
            if !missing.is_empty() {
                vacuity.missing.push((scenario.name.clone(), missing));
            }
        }
        vacuity
    }

    /// The line saying which scenarios got only the reduced check, if any.
    pub fn note(&self) -> Option<String> {
        (!self.too_few_seeds.is_empty()).then(|| {
            let names: Vec<String> = self
                .too_few_seeds
                .iter()
                .map(|(name, n)| format!("{name} ({n})"))
                .collect();
            format!(
                "vacuity: each scenario's feature controls are checked once it ran {MIN_SEEDS} seeds; fewer ran of {}",
                names.join(", ")
            )
        })
    }

    /// What the result line names: `label in scenario; ...`.
    pub fn describe(&self) -> String {
        self.missing
            .iter()
            .map(|(name, labels)| format!("{} in {name}", labels.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario(name: &str) -> Scenario {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.toml"));
        Scenario::load(&path).expect("a shipped scenario")
    }

    /// Counts in which every control any rule names was seen once.
    fn all_seen() -> ControlCounts {
        let mut counts = control_counts(&Controls::default());
        for rule in RULES.iter().chain(THREAD_RULES) {
            for control in rule.controls {
                counts.insert(control.to_string(), 1);
            }
        }
        for n in counts.values_mut() {
            *n = 1;
        }
        counts
    }

    /// The text of every harness source file but this one.
    fn harness_sources() -> String {
        fn walk(dir: &Path, text: &mut String) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .expect("sim/src is readable")
                .map(|e| e.expect("a directory entry").path())
                .collect();
            entries.sort();
            for path in entries {
                if path.is_dir() {
                    walk(&path, text);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("vacuity.rs")
                {
                    text.push_str(&std::fs::read_to_string(&path).expect("a source file"));
                }
            }
        }
        let mut text = String::new();
        walk(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut text,
        );
        text
    }

    /// Every control a rule names is a field of `Controls`, or the refusals
    /// of a kind of attempt that some actor or check of the harness names.
    #[test]
    fn every_rule_names_real_controls() {
        let names = control_counts(&Controls::default());
        let sources = harness_sources();
        for rule in RULES.iter().chain(THREAD_RULES) {
            for control in rule.controls {
                let known = names.contains_key(*control)
                    || sources.contains(&format!("pub {control}: u64,"))
                    || control
                        .strip_prefix("refused: ")
                        .is_some_and(|kind| sources.contains(&format!("\"{kind}\"")));
                assert!(known, "{}: no control {control}", rule.label);
            }
        }
    }

    /// Each rule added with the run's every-seed checks fires in a shipped
    /// scenario that enables its feature when its first control is zero.
    #[test]
    fn every_seed_checks_fire_when_their_control_is_zero() {
        let cases: &[(&str, &str, &str)] = &[
            ("smoke", "history_items_checked", "owners' listings"),
            ("smoke", "state_digests_taken", "owners' listings"),
            (
                "smoke",
                "snapshot_claims_judged",
                "archives judged entry by entry",
            ),
            (
                "broadcast-dollhouse",
                "refused: after deletion: history",
                "deleted recordings looked for again in their owner's history",
            ),
            (
                "deletion-vs-export",
                "refused: after deletion: archive",
                "next archive",
            ),
            (
                "smoke",
                "refused: foreign cursor",
                "looks again at what it was told",
            ),
            (
                "portland-message",
                "refused: after deletion: playback",
                "deleted recordings played back by id",
            ),
            (
                "smoke",
                "refused: foreign export: status",
                "others' export statuses",
            ),
            (
                "portland-message",
                "refused: foreign message: inbox audio",
                "others' messages",
            ),
            (
                "smoke",
                "refused: foreign ticket: wrong code",
                "wrong codes on others' tickets",
            ),
            (
                "device-resale",
                "refused: retired device token",
                "retired device tokens",
            ),
            (
                "device-resale",
                "refused: closed account's old session",
                "a closed account's old session",
            ),
            (
                "broadcast-dollhouse",
                "refused: held command decided within its hold",
                "decided within their hold",
            ),
            (
                "recycled-identity",
                "refused: ticket handover: tickets verified after their address changed hands",
                "address handover",
            ),
            (
                "broadcast-dollhouse",
                "broadcast_captures",
                "broadcast captures",
            ),
            (
                "portland-message",
                "messages_refused_by_sender",
                "misheard messages refused",
            ),
            (
                "gdpr-wrong-customer",
                "extended_requests_judged_on_liveness",
                "agent actions judged",
            ),
            (
                "smoke",
                "extensions_refused_bad_reason",
                "deadline extensions refused",
            ),
            (
                "smoke",
                "overdue_listings_judged_with_extended",
                "left out when extended",
            ),
            (
                "gdpr-wrong-customer",
                "manual_verifications_refused",
                "weak proof refused",
            ),
            (
                "gdpr-wrong-customer",
                "archive_attachments_refused",
                "wrong ticket refused",
            ),
            ("chaos", "device_resets", "device resets"),
            ("store-crash", "poisoned_reads_refused", "poisoned subjects"),
            (
                "deletion-vs-export",
                "collection_reads_refused",
                "transient refusals",
            ),
        ];
        let everything = all_seen();
        for (name, control, label) in cases {
            let scenario = scenario(name);
            assert!(
                missing_controls(&scenario, 3 * MIN_SEEDS, &everything).is_empty(),
                "{name} with every control seen"
            );
            let mut without = everything.clone();
            without.insert(control.to_string(), 0);
            let missing = missing_controls(&scenario, 3 * MIN_SEEDS, &without);
            assert!(
                missing.iter().any(|l| l.contains(label)),
                "{name} without {control}: {missing:?}"
            );
        }
    }

    #[test]
    fn a_feature_seen_only_in_another_scenario_is_vacuous_in_its_own() {
        let (chaos, smoke) = (scenario("chaos"), scenario("smoke"));
        assert!(chaos.faults.store_crashes.1 > 0, "chaos crashes the store");
        let everything = all_seen();
        let mut no_crashes = everything.clone();
        no_crashes.insert("store_crashes".into(), 0);
        // smoke saw store crashes, chaos (which enables them) did not.
        let vacuity = Vacuity::judge([(&smoke, 20, &everything), (&chaos, 20, &no_crashes)]);
        assert_eq!(vacuity.missing.len(), 1, "{vacuity:?}");
        assert_eq!(vacuity.missing[0].0, chaos.name);
        assert!(
            vacuity.missing[0].1.contains(&"store crashes"),
            "{vacuity:?}"
        );
        assert!(vacuity.note().is_none());
        // With fewer than MIN_SEEDS seeds only the always-expected controls count.
        let vacuity = Vacuity::judge([(&chaos, 5, &no_crashes)]);
        assert!(vacuity.missing.is_empty(), "{vacuity:?}");
        assert_eq!(vacuity.too_few_seeds, vec![(chaos.name.clone(), 5)]);
        assert!(vacuity.note().is_some_and(|n| n.contains("chaos (5)")));
    }

    #[test]
    fn a_capped_world_is_judged_in_full_on_its_few_seeds() {
        let city = scenario("city");
        let cap = city.max_seeds.expect("the city caps its seeds");
        assert!(cap < MIN_SEEDS);
        let mut no_broadcast_orders = all_seen();
        no_broadcast_orders.insert("broadcast_orders_suppressed".into(), 0);
        let vacuity = Vacuity::judge([(&city, cap, &no_broadcast_orders)]);
        assert!(vacuity.too_few_seeds.is_empty(), "{vacuity:?}");
        assert_eq!(vacuity.missing.len(), 1, "{vacuity:?}");
        assert!(
            vacuity.missing[0]
                .1
                .contains(&"broadcast orders suppressed")
        );
        // Fewer than its cap: only the always-expected controls.
        let vacuity = Vacuity::judge([(&city, cap - 1, &no_broadcast_orders)]);
        assert!(vacuity.missing.is_empty(), "{vacuity:?}");
    }
}
