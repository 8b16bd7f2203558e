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
    rule(
        "deletions verified",
        |s| s.actions.deletions.1 > 0 || s.actions.range_deletions.1 > 0,
        &["deletions_verified"],
    ),
    rule(
        "final audits",
        |_| true,
        &["audits_completed", "recordings_verified_durable"],
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

/// The attempt kind that needs exports to happen.
const TAMPERED_LINK: &str = "tampered link token";

/// Rules for the curious user: each core kind of attempt refused at least
/// once wherever the actor is on (and the tampered link where exports are).
fn curious(s: &Scenario) -> bool {
    s.actions.curious_probes.1 > 0
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

    #[test]
    fn every_rule_names_real_controls() {
        let names = control_counts(&Controls::default());
        for rule in RULES {
            for control in rule.controls {
                assert!(
                    names.contains_key(*control),
                    "{}: no control {control}",
                    rule.label
                );
            }
        }
    }

    #[test]
    fn a_feature_seen_only_in_another_scenario_is_vacuous_in_its_own() {
        let (chaos, smoke) = (scenario("chaos"), scenario("smoke"));
        assert!(chaos.faults.store_crashes.1 > 0, "chaos crashes the store");
        let mut everything = control_counts(&Controls::default());
        for n in everything.values_mut() {
            *n = 1;
        }
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
        let mut no_broadcast_orders = control_counts(&Controls::default());
        for n in no_broadcast_orders.values_mut() {
            *n = 1;
        }
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
