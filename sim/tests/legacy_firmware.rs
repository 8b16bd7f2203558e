//! Older firmware, the weakest client the ingest contract allows, sends no
//! ownership epoch with a capture of its device's current epoch. A store
//! that reads "absent" as the device's first epoch files a buyer's
//! captures under the seller after a sale: the run fails. The correct
//! build passes with the same devices.

use crosstalk_sim::canary::CanaryBreak;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::run_plan;
use std::path::Path;

fn device_resale() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/device-resale.toml");
    Scenario::load(&path).expect("scenario loads")
}

#[test]
fn the_correct_build_files_epochless_captures_in_the_current_epoch() {
    let outcome = run_plan(&Plan::generate(&device_resale(), 0));
    assert!(outcome.passed(), "{:?}", outcome.violations);
    assert!(outcome.controls.devices_transferred > 0);
}

#[test]
fn a_store_that_files_epochless_captures_in_the_first_epoch_fails_the_run() {
    let caught = (0..4).find_map(|seed| {
        let mut plan = Plan::generate(&device_resale(), seed);
        plan.canary_break = Some(CanaryBreak::EpochlessAsFirst);
        let outcome = run_plan(&plan);
        outcome
            .violations
            .iter()
            .find(|v| v.invariant == Invariant::Isolation)
            .map(|v| (seed, v.detail.clone()))
    });
    assert!(caught.is_some(), "no seed of 0..4 caught it");
}
