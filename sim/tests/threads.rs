//! The real-threads harness (`sim/src/threads/`): the correct store passes
//! the shipped threads scenario on many seeds with its positive controls
//! counted (requests that raced a deletion, quiescent probes); a store
//! whose playback answers never forget a deleted recording (a canary in
//! front of it) fails it by erasure; and, in a planted build, both race
//! bugs of the catalogue are caught within a few seeds.

use crosstalk_sim::canary::CanaryBreak;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::{Harness, Scenario};
use crosstalk_sim::world::{RunOutcome, run_plan};
use std::path::Path;

fn threads_scenario() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/threads.toml");
    Scenario::load(&path).expect("scenario loads")
}

fn describe(outcome: &RunOutcome) -> String {
    format!("{:?} {:?}", outcome.violations, outcome.infra_errors)
}

#[test]
fn the_shipped_threads_scenario_runs_under_real_threads() {
    let scenario = threads_scenario();
    assert_eq!(scenario.harness, Harness::Threads);
    let plan = Plan::generate(&scenario, 3);
    assert!(
        plan.threads.is_some(),
        "a threads plan carries its workload"
    );
    assert!(plan.accounts.is_empty(), "and no simulator plan");
    assert_eq!(
        Plan::generate(&scenario, 3),
        plan,
        "the seed alone fixes the workload"
    );
}

#[test]
fn the_correct_store_passes_with_races_and_quiescent_probes_counted() {
    let scenario = threads_scenario();
    for seed in 0..60 {
        let outcome = run_plan(&Plan::generate(&scenario, seed));
        assert!(outcome.passed(), "seed {seed}: {}", describe(&outcome));
        let c = &outcome.controls;
        assert!(c.requests_raced > 0, "seed {seed}: nothing raced");
        assert!(c.quiescent_probes > 0, "seed {seed}: no quiescent probe");
        assert!(
            c.deletions_verified > 0 || c.accounts_closed > 0,
            "seed {seed}"
        );
    }
}

#[test]
fn playback_that_never_forgets_a_deletion_fails_by_erasure() {
    let scenario = threads_scenario();
    let caught = (0..10).any(|seed| {
        let mut plan = Plan::generate(&scenario, seed);
        plan.canary_break = Some(CanaryBreak::StaleAudio);
        let outcome = run_plan(&plan);
        outcome
            .violations
            .iter()
            .any(|v| v.invariant == Invariant::Erasure)
    });
    assert!(caught, "a response cache that never evicts went unnoticed");
}

#[cfg(feature = "planted-bugs")]
#[test]
fn both_race_bugs_are_caught_within_a_few_seeds() {
    use crosstalk_service::Bug;
    let scenario = threads_scenario();
    for bug in [Bug::StaleCacheFill, Bug::CloseMissesLateUpload] {
        let caught = (0..20).find(|&seed| {
            let outcome = run_plan(&crosstalk_sim::hunt::planted_plan(&scenario, seed, bug));
            outcome
                .violations
                .iter()
                .any(|v| v.invariant == Invariant::Erasure)
        });
        assert!(caught.is_some(), "{bug} was not caught in 20 seeds");
    }
}
