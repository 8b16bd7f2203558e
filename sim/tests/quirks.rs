//! The clients' quirks (`sim/src/workload/quirks.rs`) reach the services'
//! refusals and judge them: on the correct build every quirk's attempt is
//! refused as the contract says (and counted: the positive control); on a
//! store that answers a refused sign-up or confirmation as accepted, the
//! run fails with the quirk's violation.

use crosstalk_sim::canary::CanaryBreak;
use crosstalk_sim::check::Invariant;
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

/// Attempts of `kind` over seeds 0..`seeds` of `scenario`, each run
/// passing: (attempted, refused as the contract says).
fn counted(scenario: &Scenario, seeds: u64, kind: &str) -> (u64, u64) {
    let mut total = (0, 0);
    for seed in 0..seeds {
        let outcome = run_plan(&Plan::generate(scenario, seed));
        assert!(outcome.passed(), "seed {seed}: {:?}", outcome.violations);
        if let Some(a) = outcome.controls.probes.get(kind) {
            total.0 += a.attempted;
            total.1 += a.refused;
        }
    }
    total
}

#[test]
fn the_correct_build_refuses_every_quirk_and_counts_it() {
    let portland = scenario("portland-message.toml");
    for kind in [
        "quirk: a message to a name in no contact list",
        "quirk: a confirmation naming the contact meant, not the one resolved",
        "quirk: a spoken message confirmed during its hold",
    ] {
        let (attempted, refused) = counted(&portland, 3, kind);
        assert!(attempted > 0, "{kind}: never attempted");
        assert_eq!(attempted, refused, "{kind}");
    }
    let smoke = scenario("smoke.toml");
    for kind in [
        "quirk: sign-up with one's own open account's email",
        "quirk: a session the store never issued",
        "quirk: signing in again with one's own password",
    ] {
        let (attempted, refused) = counted(&smoke, 4, kind);
        assert!(attempted > 0, "{kind}: never attempted");
        assert_eq!(attempted, refused, "{kind}");
    }
    let (attempted, kept) = counted(
        &scenario("gdpr-wrong-customer.toml"),
        3,
        "quirk: the right ticket code sent twice",
    );
    assert!(attempted > 0 && attempted == kept);
}

fn fails_with(scenario: &Scenario, seeds: u64, kind: &str) -> bool {
    (0..seeds).any(|seed| {
        let mut plan = Plan::generate(scenario, seed);
        plan.canary_break = Some(CanaryBreak::RefusalsAccepted);
        let outcome: RunOutcome = run_plan(&plan);
        outcome
            .violations
            .iter()
            .any(|v| v.invariant == Invariant::RequestIntegrity && v.detail.contains(kind))
    })
}

#[test]
fn a_confirmation_accepted_against_the_contract_fails_the_run() {
    let portland = scenario("portland-message.toml");
    assert!(fails_with(
        &portland,
        5,
        "quirk: a confirmation naming the contact meant, not the one resolved"
    ));
    assert!(fails_with(
        &portland,
        5,
        "quirk: a spoken message confirmed during its hold"
    ));
}

#[test]
fn a_second_sign_up_with_a_taken_email_accepted_fails_the_run() {
    assert!(fails_with(
        &scenario("smoke.toml"),
        8,
        "quirk: sign-up with one's own open account's email"
    ));
}
