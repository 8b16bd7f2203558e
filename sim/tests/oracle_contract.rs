//! The oracle trusts nothing the services say: a service that panics or
//! answers 500 with no fault near it fails the run; a deletion answer that
//! names someone else's recording fails the run; the correct build passes
//! with every new check's positive control counted; and the services'
//! final state is part of the trace (equal for one seed).

use crosstalk_sim::canary::CanaryBreak;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::{RunOutcome, run_plan};
use std::path::Path;

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    Scenario::load(&path).expect("scenario loads")
}

fn broken(scenario: &Scenario, seed: u64, how: CanaryBreak) -> RunOutcome {
    let mut plan = Plan::generate(scenario, seed);
    plan.canary_break = Some(how);
    run_plan(&plan)
}

fn contract_violations(outcome: &RunOutcome) -> Vec<String> {
    outcome
        .violations
        .iter()
        .filter(|v| v.invariant == Invariant::ApiContract)
        .map(|v| v.detail.clone())
        .collect()
}

#[test]
fn a_service_panic_without_a_fault_fails_the_run_with_its_message() {
    let outcome = broken(&scenario("smoke.toml"), 1, CanaryBreak::PanicInHandler);
    let found = contract_violations(&outcome);
    assert!(
        found
            .iter()
            .any(|d| d.contains("panicked") && d.contains("index and row disagree")),
        "{:?}",
        outcome.violations
    );
    assert!(!outcome.passed());
}

#[test]
fn a_500_without_a_fault_fails_the_run_with_its_body() {
    let outcome = broken(&scenario("smoke.toml"), 1, CanaryBreak::ServerError);
    let found = contract_violations(&outcome);
    assert!(
        found.iter().any(|d| d.contains("answered 500")
            && d.contains("GET /v1/recordings")
            && d.contains("index and row disagree")),
        "{:?}",
        outcome.violations
    );
}

#[test]
fn a_deletion_answer_naming_a_foreign_recording_fails_the_run() {
    let scenario = scenario("deletion-vs-export.toml");
    for seed in 0..10 {
        let outcome = broken(&scenario, seed, CanaryBreak::ForeignDeletion);
        let foreign = outcome
            .violations
            .iter()
            .find(|v| v.invariant == Invariant::Isolation && v.detail.contains("named as deleted"));
        if let Some(v) = foreign {
            assert_ne!(v.true_owner, v.receiver, "{v:?}");
            return;
        }
    }
    panic!("a deletion answer naming a foreign recording went unnoticed for 10 seeds");
}

#[test]
fn the_correct_build_passes_and_counts_every_new_control() {
    let scenario = scenario("deletion-vs-export.toml");
    let mut deletions_judged = 0;
    for seed in 0..3 {
        let outcome = run_plan(&Plan::generate(&scenario, seed));
        assert!(outcome.passed(), "seed {seed}: {:?}", outcome.violations);
        let c = &outcome.controls;
        assert!(c.api_replies_judged > 0);
        assert_eq!(c.panic_hooks_installed, 1);
        assert_eq!(c.state_digests_taken, 2);
        assert!(
            c.foreign_statuses_judged > 0
                || c.guessed_audio_attempts + c.foreign_link_attempts == 0
        );
        deletions_judged += c.deletion_answers_judged;
    }
    assert!(deletions_judged > 0, "no deletion answer was judged");
}

fn digests(outcome: &RunOutcome) -> Vec<String> {
    outcome
        .trace_lines
        .iter()
        .filter(|l| l.contains("state digest:"))
        .cloned()
        .collect()
}

#[test]
fn the_services_final_state_is_in_the_trace_and_equal_for_one_seed() {
    let scenario = scenario("smoke.toml");
    let (a, b) = (
        run_plan(&Plan::generate(&scenario, 2)),
        run_plan(&Plan::generate(&scenario, 2)),
    );
    let (da, db) = (digests(&a), digests(&b));
    assert_eq!(da.len(), 2, "{da:?}");
    assert!(
        da[0].contains("store") && da[1].contains("export"),
        "{da:?}"
    );
    assert_eq!(da, db);
    assert_eq!(a.trace_hash, b.trace_hash);
    let other = run_plan(&Plan::generate(&scenario, 3));
    assert_ne!(digests(&other), da);
}

#[test]
fn a_guessed_id_refused_as_not_yours_rather_than_nonexistent_fails_the_run() {
    let scenario = scenario("smoke.toml");
    for seed in 0..10 {
        let outcome = broken(&scenario, seed, CanaryBreak::ExistenceLeak);
        if outcome.violations.iter().any(|v| {
            v.invariant == Invariant::Isolation
                && v.detail.contains("distinguishable from a nonexistent id")
        }) {
            return;
        }
    }
    panic!("a 403 for someone else's recording went unnoticed for 10 seeds");
}

#[test]
fn a_message_listed_as_delivered_before_its_sender_confirmed_fails_the_run() {
    let scenario = scenario("portland-message.toml");
    for seed in 0..10 {
        let outcome = broken(&scenario, seed, CanaryBreak::DeliveredUnconfirmed);
        if outcome.violations.iter().any(|v| {
            v.invariant == Invariant::RequestIntegrity
                && v.detail.contains("without its sender's confirmation")
        }) {
            return;
        }
    }
    panic!("a message delivered without confirmation went unnoticed for 10 seeds");
}

#[test]
fn a_message_playing_for_its_addressee_before_its_sender_confirmed_fails_the_run() {
    let scenario = scenario("portland-message.toml");
    for seed in 0..10 {
        let outcome = broken(&scenario, seed, CanaryBreak::PrestagedInbox);
        if outcome
            .violations
            .iter()
            .any(|v| v.invariant == Invariant::Isolation && v.detail.contains("asked for by id"))
        {
            return;
        }
    }
    panic!("an unconfirmed message playing for its addressee went unnoticed for 10 seeds");
}

#[test]
fn the_correct_build_asks_for_unconfirmed_messages_addressed_to_oneself() {
    let scenario = scenario("portland-message.toml");
    let mut refused = 0;
    for seed in 0..3 {
        let outcome = run_plan(&Plan::generate(&scenario, seed));
        assert!(outcome.passed(), "seed {seed}: {:?}", outcome.violations);
        refused += outcome.controls.addressed_messages_refused_by_id;
    }
    assert!(
        refused > 0,
        "no unconfirmed message was asked for by its addressee"
    );
}
