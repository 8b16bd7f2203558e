//! The curious user's reused upload key: a store that answers other content
//! under a used key as a duplicate (the new capture silently dropped) fails
//! the run; the correct build refuses every such upload with 409, counted.
//! And a deleted upload retried with its key: a store that stores it again
//! (a new recording) fails the run.

use crosstalk_sim::canary::CanaryBreak;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::run_plan;
use std::path::Path;

const KIND: &str = "upload key reused for other content";

fn smoke() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.toml");
    Scenario::load(&path).expect("scenario loads")
}

#[test]
fn the_correct_build_refuses_every_reused_key_and_counts_it() {
    let outcome = run_plan(&Plan::generate(&smoke(), 1));
    assert!(outcome.passed(), "{:?}", outcome.violations);
    let counted = outcome.controls.probes.get(KIND).expect("the probe ran");
    assert!(counted.attempted > 0);
    assert_eq!(counted.refused, counted.attempted);
    assert!(
        outcome
            .probes
            .contains_key("store.ingest.upload_key_conflict")
    );
}

#[test]
fn a_reused_key_answered_as_a_duplicate_fails_the_run() {
    let mut plan = Plan::generate(&smoke(), 1);
    plan.canary_break = Some(CanaryBreak::UploadConflictsAsDuplicates);
    let outcome = run_plan(&plan);
    let caught = outcome.violations.iter().any(|v| {
        v.invariant == Invariant::RequestIntegrity
            && v.detail.contains("reused the upload key")
            && v.detail.contains("answered 200")
    });
    assert!(caught, "{:?}", outcome.violations);
}

#[test]
fn a_deleted_upload_retried_and_answered_as_new_fails_the_run() {
    let caught = (0..4).any(|seed| {
        let mut plan = Plan::generate(&smoke(), seed);
        plan.canary_break = Some(CanaryBreak::RetryAfterDeletionStoredAgain);
        run_plan(&plan).violations.iter().any(|v| {
            v.invariant == Invariant::Erasure
                && v.detail
                    .contains("again with the same key after deleting it")
        })
    });
    assert!(
        caught,
        "no seed of 0..4 caught a deleted upload stored again"
    );
}
