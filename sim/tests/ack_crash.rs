//! A crash right after the store acknowledges a rare write
//! (`faults/ack_crash.rs`) and the probes of acknowledged state after it
//! (`workload/durable.rs`, `check/durable.rs`): a store whose disk drops
//! the syncs of one kind of request (`CanaryBreak::NotDurable`, the
//! close-no-fsync and transfer-no-fsync defects on the disk) fails the run
//! with durability once the power goes right after such an answer, and
//! passes without that crash (the window the fault opens); the correct
//! build passes with the crash, the probes counted.

use crosstalk_sim::canary::CanaryBreak;
use crosstalk_sim::check::Invariant;
use crosstalk_sim::check::durable::{CLOSED_SESSION, REPLACED_TOKEN};
use crosstalk_sim::faults::ack_crash::{AckCrashPlan, RareWrite};
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::{RunOutcome, run_plan};
use std::path::Path;

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    Scenario::load(&path).expect("scenario loads")
}

/// `seed` of `scenario` with the power going right after the first 2xx
/// answer to a `write` (or never, without `crash`), the store broken as
/// `how` says (or not).
fn run(
    scenario: &Scenario,
    seed: u64,
    write: RareWrite,
    crash: bool,
    how: Option<CanaryBreak>,
) -> RunOutcome {
    run_with(scenario, seed, write, crash.then_some(false), how)
}

/// [`run`], the answer lost with the crash if `reply_lost` says so (no
/// crash: `None`).
fn run_with(
    scenario: &Scenario,
    seed: u64,
    write: RareWrite,
    reply_lost: Option<bool>,
    how: Option<CanaryBreak>,
) -> RunOutcome {
    let mut plan = Plan::generate(scenario, seed);
    plan.ack_crashes = reply_lost
        .map(|reply_lost| AckCrashPlan {
            write,
            nth: 1,
            downtime_ms: 2_000,
            reply_lost,
        })
        .into_iter()
        .collect();
    plan.canary_break = how;
    run_plan(&plan)
}

fn lost_in_a_crash(outcome: &RunOutcome) -> bool {
    outcome
        .violations
        .iter()
        .any(|v| v.invariant == Invariant::Durability && v.detail.contains("lost in a crash"))
}

/// Over seeds 0..8, whether a store that does not sync `write` is caught
/// with the crash after it, and never without it.
fn caught_only_with_the_crash(name: &str, write: RareWrite) {
    let scenario = scenario(name);
    let how = Some(CanaryBreak::NotDurable { write });
    for seed in 0..8 {
        let outcome = run(&scenario, seed, write, true, how);
        if !lost_in_a_crash(&outcome) {
            continue;
        }
        let without = run(&scenario, seed, write, false, how);
        assert!(
            !lost_in_a_crash(&without),
            "seed {seed}: without the crash right after it the lost {write:?} was seen: {:?}",
            without.violations
        );
        return;
    }
    panic!("a {write:?} acknowledged before it was durable went unnoticed for 8 seeds of {name}");
}

#[test]
fn an_account_close_acknowledged_before_it_is_durable_fails_the_run() {
    caught_only_with_the_crash("recycled-identity.toml", RareWrite::Close);
}

#[test]
fn a_device_sale_acknowledged_before_it_is_durable_fails_the_run() {
    caught_only_with_the_crash("device-resale.toml", RareWrite::Transfer);
}

#[test]
fn the_correct_build_passes_a_crash_right_after_each_rare_write() {
    let cases = [
        ("recycled-identity.toml", RareWrite::Close, CLOSED_SESSION),
        ("device-resale.toml", RareWrite::Transfer, REPLACED_TOKEN),
        ("device-resale.toml", RareWrite::Reset, REPLACED_TOKEN),
    ];
    for (name, write, kind) in cases {
        let scenario = scenario(name);
        let (mut crashes, mut kept) = (0, 0);
        for seed in 0..3 {
            let outcome = run(&scenario, seed, write, true, None);
            assert!(
                outcome.passed(),
                "{name} seed {seed}: {:?} {:?}",
                outcome.violations,
                outcome.infra_errors
            );
            crashes += outcome.controls.store_crashes_after_ack;
            kept += outcome.controls.probes.get(kind).map_or(0, |a| a.refused);
        }
        assert!(crashes > 0, "{name}: no crash right after a {write:?}");
        assert!(kept > 0, "{name}: nothing probed after a crash ({kind})");
    }
}

#[test]
fn a_crash_that_loses_the_answer_leaves_the_outcome_unknown() {
    // The same non-durable writes, but the answer dies with the process:
    // nobody was told, so the change lost with it is no violation.
    let cases = [
        ("recycled-identity.toml", RareWrite::Close),
        ("device-resale.toml", RareWrite::Transfer),
    ];
    for (name, write) in cases {
        let scenario = scenario(name);
        let how = Some(CanaryBreak::NotDurable { write });
        let mut crashes = 0;
        for seed in 0..3 {
            let outcome = run_with(&scenario, seed, write, Some(true), how);
            assert!(
                outcome.passed(),
                "{name} seed {seed}: {:?} {:?}",
                outcome.violations,
                outcome.infra_errors
            );
            crashes += outcome.controls.store_crashes_after_ack;
        }
        assert!(crashes > 0, "{name}: no crash right after a {write:?}");
    }
}
