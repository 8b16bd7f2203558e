//! Every committed input of the `plan` fuzz target replays as an ordinary
//! test (no libFuzzer): each is a small plan of a shipped scenario, and on
//! the correct build every one passes the oracle.

use crosstalk_sim::fuzzing::plan::{SCENARIOS, plan_from_bytes, run};
use std::collections::BTreeSet;
use std::path::Path;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/plan");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    inputs.sort();
    inputs
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("corpus input reads"),
            )
        })
        .collect()
}

#[test]
fn plan_corpus_replays_and_passes_on_the_correct_build() {
    let inputs = corpus();
    assert!(
        inputs.len() >= SCENARIOS.len(),
        "one input per shipped scenario at least"
    );
    let mut scenarios = BTreeSet::new();
    for (name, bytes) in &inputs {
        let plan = plan_from_bytes(bytes, false).unwrap_or_else(|e| panic!("{name}: {e}"));
        scenarios.insert(plan.scenario.clone());
        if crosstalk_service::Planted::AVAILABLE {
            continue; // The planted build plants a bug per input: see below.
        }
        run(bytes);
    }
    assert_eq!(
        scenarios.len(),
        SCENARIOS.len(),
        "the corpus reaches every scenario"
    );
}

/// The same inputs with the catalogue built in plant one bug each: the
/// target must see at least one of them (the harness sees, as in `hunt`).
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_plan_inputs_crash() {
    let crashed = corpus()
        .iter()
        .filter(|(_, bytes)| std::panic::catch_unwind(|| run(bytes)).is_err())
        .count();
    assert!(crashed > 0, "no planted bug was caught by the plan corpus");
}
