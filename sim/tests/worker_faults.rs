//! The export worker's failure paths: the store refusing its collection
//! reads (503) now and then, and one poisoned subject whose reads it refuses
//! for a long window (`faults/poison.rs`, `check/poison.rs`).
//!
//! Each check is shown to see: a worker that takes a refused audio read for
//! a deletion (a canary on the wire) fails exactness, and an export service
//! that retries a failing job at once and forever fails liveness; the
//! correct build passes the same seeds with the controls counted.

use crosstalk_sim::canary::CanaryBreak;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::{RunOutcome, run_plan};
use std::path::Path;

fn plan(name: &str, seed: u64) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    let scenario = Scenario::load(&path).expect("scenario loads");
    Plan::generate(&scenario, seed)
}

fn run(mut plan: Plan, how: Option<CanaryBreak>) -> RunOutcome {
    plan.canary_break = how;
    run_plan(&plan)
}

fn invariants(outcome: &RunOutcome) -> Vec<Invariant> {
    outcome.violations.iter().map(|v| v.invariant).collect()
}

#[test]
fn a_refused_audio_read_taken_for_a_deletion_fails_exactness() {
    // A refused read must fall on a recording the archive needs, which
    // takes a few seeds: the first seed where it does is the witness.
    let mut refused = 0;
    for seed in 1..12 {
        let plan = plan("gdpr-wrong-customer.toml", seed);
        let correct = run(plan.clone(), None);
        assert!(
            correct.violations.is_empty(),
            "correct build, seed {seed}: {:?}",
            correct.violations
        );
        refused += correct.controls.collection_reads_refused;
        if correct.controls.collection_reads_refused == 0 {
            continue;
        }
        let broken = run(plan, Some(CanaryBreak::UnavailableAsDeleted));
        if invariants(&broken).contains(&Invariant::Exactness) {
            return;
        }
    }
    assert!(
        refused > 0,
        "the store never refused a collection read: nothing was tested"
    );
    panic!("an archive missing a refused recording was never caught in seeds 1..12");
}

#[test]
fn a_poison_job_retried_at_once_and_forever_fails_liveness() {
    let plan = plan("gdpr-wrong-customer.toml", 3);
    assert!(plan.poison.is_some(), "seed 3 has no poisoned subject");
    let correct = run(plan.clone(), None);
    assert!(
        correct.violations.is_empty(),
        "correct build: {:?}",
        correct.violations
    );
    assert_eq!(correct.controls.poison_retries_judged, 1);
    assert!(correct.controls.poisoned_reads_refused >= 2);
    let broken = run(plan, Some(CanaryBreak::NoRetryBackoff));
    let retries: Vec<&str> = broken
        .violations
        .iter()
        .filter(|v| v.invariant == Invariant::Liveness)
        .map(|v| v.detail.as_str())
        .filter(|d| d.contains("never gave up") || d.contains("without backing off"))
        .collect();
    assert!(
        !retries.is_empty(),
        "a job retried without backoff was not caught: {:?}",
        broken.violations
    );
}
