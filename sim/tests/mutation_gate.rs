//! The scenario gate for mutation testing (`.cargo/mutants.toml`,
//! `.ci/mutants`): every shipped scenario on seeds 0..10 must pass. A mutant
//! of the services that still passes is a defect the scenarios alone do not
//! see. Ignored in the ordinary test run (it is the scenario gate's job
//! there); cargo-mutants runs it with `--ignored`.

use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::run_plan;
use std::path::Path;

/// Seeds per scenario a mutant must survive to count as missed.
const SEEDS: u64 = 10;

#[test]
#[ignore = "run by cargo-mutants through .ci/mutants"]
fn every_shipped_scenario_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the scenarios directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for file in files {
        let scenario = Scenario::load(&file).expect("a shipped scenario loads");
        for seed in 0..SEEDS {
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
