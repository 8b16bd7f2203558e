//! Two speakers in one room (`Action::Speak` with `also_heard`): a second
//! device of the same account captures the same words at the same instant.
//! Planned only where a scenario asks and the person has two devices; the
//! correct services pass with both recordings judged. (An archive that
//! named its entries by capture time could not hold both: its export would
//! end failed, which the liveness check catches.)

use crosstalk_sim::plan::{Action, Plan};
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::run_plan;
use std::path::Path;

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    Scenario::load(&path).expect("scenario loads")
}

fn echoes(plan: &Plan) -> usize {
    plan.accounts
        .iter()
        .flat_map(|a| a.actions.iter().map(move |t| (a.devices, &t.action)))
        .filter(|(devices, action)| {
            let echoed = matches!(
                action,
                Action::Speak {
                    also_heard: Some(_),
                    ..
                }
            );
            assert!(!echoed || *devices > 1, "an echo needs a second device");
            echoed
        })
        .count()
}

#[test]
fn two_speakers_are_planned_only_where_a_scenario_asks() {
    let with = scenario("smoke.toml");
    let planned: usize = (0..4)
        .map(|seed| echoes(&Plan::generate(&with, seed)))
        .sum();
    assert!(planned > 0);
    let without = scenario("device-resale.toml");
    for seed in 0..4 {
        assert_eq!(echoes(&Plan::generate(&without, seed)), 0, "seed {seed}");
    }
}

#[test]
fn the_correct_services_pass_with_both_captures_judged() {
    let plan = Plan::generate(&scenario("deletion-vs-export.toml"), 0);
    assert!(echoes(&plan) > 0);
    let outcome = run_plan(&plan);
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(outcome.controls.captures_by_two_speakers > 0);
}

/// The hold of spoken commands is plan data: the world configures the
/// store with it and the people and the oracle learn it (nothing in the
/// harness reads the store's default). A world whose store holds commands
/// for half a minute instead of two runs clean, its broadcast orders still
/// suppressed and its genuine ones placed.
#[test]
fn a_shorter_hold_is_the_one_everyone_learns() {
    let mut plan = Plan::generate(&scenario("broadcast-dollhouse.toml"), 1);
    assert_eq!(plan.hold_ms, crosstalk_sim::plan::STORE_HOLD_MS);
    plan.hold_ms = 30_000;
    let outcome = run_plan(&plan);
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
    assert!(
        outcome.infra_errors.is_empty(),
        "{:?}",
        outcome.infra_errors
    );
    assert!(
        outcome.controls.broadcast_orders_suppressed > 0,
        "{:#?}",
        outcome.controls
    );
    assert!(outcome.controls.genuine_orders_placed > 0);
}
