//! The scenario gate for mutation testing (`.cargo/mutants.toml`,
//! `.ci/mutants`): every shipped scenario on seeds 0..10 must pass. A mutant
//! of the services that still passes is a defect the scenarios alone do not
//! see. The ordinary test run checks seed 0 of every scenario (the gate's
//! full run is `.ci/run`'s job); cargo-mutants runs it with
//! `CROSSTALK_MUTATION_SEEDS=10` (set by `.ci/mutants`).

use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::{Scenario, scenario_files};
use crosstalk_sim::world::run_plan;
use std::path::Path;

/// Seeds per scenario: `CROSSTALK_MUTATION_SEEDS` (the seeds a mutant must
/// survive to count as missed), else one.
fn seeds() -> u64 {
    std::env::var("CROSSTALK_MUTATION_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

#[test]
fn every_shipped_scenario_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    // The same files `crosstalk run scenarios/` runs (not the probe allow-list).
    let files = scenario_files(&dir).expect("the scenarios directory lists");
    for file in files {
        let scenario = Scenario::load(&file).expect("a shipped scenario loads");
        for seed in 0..seeds() {
            let outcome = run_plan(&Plan::generate(&scenario, seed));
            assert!(
                outcome.passed(),
                "{} seed {seed}: {:?}",
                file.display(),
                outcome.violations.first().map(|v| (v.invariant, &v.detail))
            );
        }
    }
}
