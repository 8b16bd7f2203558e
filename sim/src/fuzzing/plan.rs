//! Whole-plan fuzzing: arbitrary bytes → a small plan of a shipped scenario
//! → the full deterministic simulation with the oracle. A violation panics,
//! which is what libFuzzer records as a crash; `crosstalk replay
//! --fuzz-artifact FILE` turns the crashing input back into the same plan.
//!
//! Input layout (missing bytes read as zero, so every input is valid):
//!
//! | bytes | meaning |
//! |---|---|
//! | 0 | scenario (index into [`SCENARIOS`], modulo) |
//! | 1 | planted bug (index into `Bug::ALL`, modulo) — used only when the build has the catalogue |
//! | 2 | accounts: 4 + (byte % 9) |
//! | 3 | active seconds: 40 + (byte % 81) |
//! | 4 | swarm testing on (even) or off (odd) |
//! | 5..13 | the seed (big-endian) |
//!
//! The short fields come first, so that even the fuzzer's first, shortest
//! inputs reach every scenario and every planted bug.
//!
//! The world is kept small (4 to 12 accounts, under two simulated minutes of
//! activity) so that one execution takes a fraction of a second; everything
//! else comes from the scenario and the seed, exactly as in `crosstalk run`.

use crate::plan::Plan;
use crate::scenario::{Range, Scenario};
use crate::world::run_plan;
use crosstalk_service::{Bug, Planted};

/// The shipped scenarios, compiled in so that a fuzz binary needs no files.
pub const SCENARIOS: &[(&str, &str)] = &[
    ("smoke", include_str!("../../../scenarios/smoke.toml")),
    (
        "gdpr-wrong-customer",
        include_str!("../../../scenarios/gdpr-wrong-customer.toml"),
    ),
    (
        "store-crash",
        include_str!("../../../scenarios/store-crash.toml"),
    ),
    (
        "device-resale",
        include_str!("../../../scenarios/device-resale.toml"),
    ),
    (
        "portland-message",
        include_str!("../../../scenarios/portland-message.toml"),
    ),
    (
        "broadcast-dollhouse",
        include_str!("../../../scenarios/broadcast-dollhouse.toml"),
    ),
    (
        "recycled-identity",
        include_str!("../../../scenarios/recycled-identity.toml"),
    ),
    (
        "deletion-vs-export",
        include_str!("../../../scenarios/deletion-vs-export.toml"),
    ),
    (
        "reconnect-storm",
        include_str!("../../../scenarios/reconnect-storm.toml"),
    ),
    ("chaos", include_str!("../../../scenarios/chaos.toml")),
    ("city", include_str!("../../../scenarios/city.toml")),
];

fn byte(data: &[u8], at: usize) -> u8 {
    data.get(at).copied().unwrap_or(0)
}

/// The plan an input stands for. With `catalogue` (a build with planted
/// bugs), byte 9 plants one bug of the catalogue.
pub fn plan_from_bytes(data: &[u8], catalogue: bool) -> Result<Plan, String> {
    let (name, text) = SCENARIOS[byte(data, 0) as usize % SCENARIOS.len()];
    let mut scenario = Scenario::parse(text).map_err(|e| format!("scenario {name}: {e}"))?;
    let mut seed = [0u8; 8];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = byte(data, 5 + i);
    }
    let seed = u64::from_be_bytes(seed);
    // A small world: at least four accounts, so that a broadcast is heard by
    // three homes (media, not one home's voice) as in every scenario.
    let accounts = 4 + u64::from(byte(data, 2) % 9);
    scenario.world.accounts = Range(accounts, accounts);
    scenario.world.active_seconds = 40 + u64::from(byte(data, 3) % 81);
    scenario.swarm = byte(data, 4).is_multiple_of(2);
    let mut plan = Plan::generate(&scenario, seed);
    if catalogue {
        let bug = Bug::ALL[byte(data, 1) as usize % Bug::ALL.len()];
        plan.planted = vec![bug.name().to_string()];
    }
    Ok(plan)
}

/// The `plan` fuzz target: run the input's plan and panic on any violation
/// or infrastructure error, naming the invariant and how to replay it.
pub fn run(data: &[u8]) {
    let plan = match plan_from_bytes(data, Planted::AVAILABLE) {
        Ok(plan) => plan,
        Err(e) => panic!("a shipped scenario does not load: {e}"),
    };
    let outcome = run_plan(&plan);
    if let Some(v) = outcome.violations.first() {
        panic!(
            "crosstalk plan fuzz: {} in {} seed {} (planted: {}): {}; replay the crashing input with \
             `cargo sim{} replay --fuzz-artifact <artifact>`",
            v.invariant.describe(),
            plan.scenario,
            plan.seed,
            if plan.planted.is_empty() {
                "nothing".to_string()
            } else {
                plan.planted.join(", ")
            },
            v.detail,
            if plan.planted.is_empty() {
                ""
            } else {
                "-planted"
            },
        );
    }
    if let Some(e) = outcome.infra_errors.first() {
        panic!(
            "crosstalk plan fuzz: infrastructure error in {} seed {}: {e}",
            plan.scenario, plan.seed
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_is_a_valid_small_plan_of_a_shipped_scenario() {
        for input in [
            &[][..],
            &[0xff; 3][..],
            &[7, 1, 2, 3, 4, 5, 6, 7, 8, 200, 255, 255, 1, 9, 9][..],
        ] {
            let plan = plan_from_bytes(input, false).unwrap();
            assert!(
                (4..=12).contains(&plan.accounts.len()),
                "{} accounts",
                plan.accounts.len()
            );
            assert!(plan.active_ms <= 120_000);
            assert!(plan.planted.is_empty());
            let again = plan_from_bytes(input, false).unwrap();
            assert_eq!(plan, again, "the same input is the same plan");
        }
        let planted = plan_from_bytes(&[0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], true).unwrap();
        assert_eq!(planted.planted, vec![Bug::ALL[7].name().to_string()]);
        assert_eq!(planted.seed, 1);
    }

    #[test]
    fn the_compiled_in_scenarios_are_the_shipped_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut shipped: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .filter(|p| {
                p.file_name()
                    .is_none_or(|n| n != crate::probe_gate::ALLOW_LIST_FILE)
            })
            // A threads scenario is not deterministic: no fuzz target for it.
            .filter(|p| crate::scenario::Scenario::load(p).map_or(true, |s| s.harness.is_sim()))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        shipped.sort();
        let mut compiled: Vec<String> = SCENARIOS.iter().map(|(n, _)| n.to_string()).collect();
        compiled.sort();
        assert_eq!(
            shipped, compiled,
            "a scenario file is missing from the plan fuzz target"
        );
    }
}
