//! Heavy users and "delete all my history" (`plan/heavy.rs`,
//! `workload/delete_all.rs`, `check/history.rs`): the correct build pages
//! through histories past the store's clamp, deletes everything on request
//! and passes with the controls counted; a store whose "delete all" stops
//! after one page, or whose full history page loses its cursor, fails the
//! run with the right invariant.

use crosstalk_sim::canary::CanaryBreak;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::{Action, Plan};
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::{RunOutcome, run_plan};
use std::path::Path;

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    Scenario::load(&path).expect("scenario loads")
}

/// The first seed from `seeds` whose plan has a heavy user who presses
/// "delete all", as a plan.
fn plan_with_heavy_delete_all(scenario: &Scenario, seeds: std::ops::Range<u64>) -> Plan {
    seeds
        .map(|seed| Plan::generate(scenario, seed))
        .find(|plan| {
            plan.accounts
                .iter()
                .any(|a| a.is_heavy() && a.actions.iter().any(|t| t.action == Action::DeleteAll))
        })
        .expect("some seed has a heavy user who deletes everything")
}

fn broken(plan: &Plan, how: CanaryBreak) -> RunOutcome {
    let mut plan = plan.clone();
    plan.canary_break = Some(how);
    run_plan(&plan)
}

#[test]
fn heavy_users_are_planned_only_where_a_scenario_asks() {
    let with = scenario("deletion-vs-export.toml");
    let heavy = (0..8)
        .map(|seed| Plan::generate(&with, seed))
        .filter(|p| p.accounts.iter().any(|a| a.is_heavy()))
        .count();
    assert!(heavy >= 4, "only {heavy} of 8 seeds have a heavy user");
    let without = scenario("device-resale.toml");
    for seed in 0..8 {
        let plan = Plan::generate(&without, seed);
        assert!(plan.accounts.iter().all(|a| !a.is_heavy()));
        let delete_all = plan
            .accounts
            .iter()
            .flat_map(|a| &a.actions)
            .any(|t| t.action == Action::DeleteAll);
        assert!(!delete_all, "seed {seed}");
    }
}

#[test]
fn the_correct_build_pages_past_the_clamp_and_deletes_everything() {
    let plan = plan_with_heavy_delete_all(&scenario("deletion-vs-export.toml"), 0..20);
    let outcome = run_plan(&plan);
    assert!(
        outcome.passed(),
        "seed {}: {:?}",
        plan.seed,
        outcome.violations
    );
    let c = &outcome.controls;
    assert!(c.history_walks_past_page_clamp > 0, "{c:?}");
    assert!(c.delete_all_requests > 0, "{c:?}");
    assert!(
        c.delete_all_recordings_covered > crosstalk_store::MAX_PAGE_ITEMS as u64,
        "{c:?}"
    );
    assert!(c.delete_all_forgotten_by_history > 0, "{c:?}");
}

#[test]
fn a_delete_all_that_stops_after_one_page_fails_with_erasure() {
    let plan = plan_with_heavy_delete_all(&scenario("deletion-vs-export.toml"), 0..20);
    let outcome = broken(&plan, CanaryBreak::DeleteAllFirstPage);
    assert!(
        outcome
            .violations
            .iter()
            .any(|v| v.invariant == Invariant::Erasure),
        "seed {}: {:?}",
        plan.seed,
        outcome.violations
    );
}

#[test]
fn a_full_history_page_without_its_cursor_fails_with_durability() {
    let plan = plan_with_heavy_delete_all(&scenario("deletion-vs-export.toml"), 0..20);
    let outcome = broken(&plan, CanaryBreak::ListingFirstPageOnly);
    assert!(
        outcome
            .violations
            .iter()
            .any(|v| v.invariant == Invariant::Durability && v.detail.contains("missing from")),
        "seed {}: {:?}",
        plan.seed,
        outcome.violations
    );
}
