//! Tests of the harness itself: it is deterministic, it sees a planted leak,
//! and a printed replay command reproduces the failure exactly.

use crosstalk_sim::check::Invariant;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::Scenario;
use crosstalk_sim::world::{RunOutcome, run_plan};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn smoke() -> Scenario {
    Scenario::load(&repo_path("scenarios/smoke.toml")).expect("smoke scenario loads")
}

fn canary_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/canary-leak.toml")
}

/// A scratch directory for one test's CLI runs (failures are saved under
/// the working directory).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crosstalk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn crosstalk(cwd: &Path, args: &[&str]) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_crosstalk"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the crosstalk binary runs");
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    (
        status.code().expect("exited normally"),
        format!("{stdout}{stderr}"),
    )
}

#[test]
fn same_seed_same_trace_and_different_seed_different_trace() {
    let scenario = smoke();
    let first = run_plan(&Plan::generate(&scenario, 11));
    let again = run_plan(&Plan::generate(&scenario, 11));
    let other = run_plan(&Plan::generate(&scenario, 12));
    assert!(
        first.trace_events > 100,
        "a smoke run records hundreds of events, got {}",
        first.trace_events
    );
    assert_eq!(
        first.trace_hash, again.trace_hash,
        "same seed must give the same trace"
    );
    assert_eq!(first.controls, again.controls);
    assert_ne!(
        first.trace_hash, other.trace_hash,
        "a different seed must give a different trace"
    );
}

#[test]
fn correct_build_passes_with_positive_controls() {
    let scenario = smoke();
    let mut exports = 0;
    let mut delivered = 0;
    let mut refused = 0;
    for seed in 0..3 {
        let outcome = run_plan(&Plan::generate(&scenario, seed));
        assert!(
            outcome.passed(),
            "seed {seed}: {:?} {:?}",
            outcome.violations,
            outcome.infra_errors
        );
        exports += outcome.controls.exports_completed;
        delivered += outcome.controls.recordings_delivered;
        refused += outcome.controls.foreign_link_refused + outcome.controls.guessed_audio_refused;
        // Every export completes, but a poisoned subject's, which ends
        // failed once its attempts are spent (and is asked for again).
        assert_eq!(
            outcome.controls.exports_completed + outcome.controls.poison_give_ups_seen,
            outcome.controls.exports_requested,
            "seed {seed}"
        );
        assert_eq!(
            outcome.controls.foreign_link_refused,
            outcome.controls.foreign_link_attempts
        );
        assert_eq!(
            outcome.controls.guessed_audio_refused,
            outcome.controls.guessed_audio_attempts
        );
    }
    assert!(
        exports > 0 && delivered > 0 && refused > 0,
        "vacuous: {exports} {delivered} {refused}"
    );
}

fn first_failing_seed(scenario: &Scenario) -> (u64, RunOutcome) {
    for seed in 0..10 {
        let outcome = run_plan(&Plan::generate(scenario, seed));
        if !outcome.violations.is_empty() {
            return (seed, outcome);
        }
    }
    panic!("the canary leak went unnoticed for 10 seeds");
}

#[test]
fn planted_leak_fails_with_isolation_and_its_replay_reproduces_it() {
    let path = canary_path();
    let scenario = Scenario::load(&path).expect("canary scenario loads");
    assert!(scenario.canary.leak_into_archives);
    let (seed, outcome) = first_failing_seed(&scenario);
    let first = &outcome.violations[0];
    assert_eq!(first.invariant, Invariant::Isolation, "{first:?}");
    assert!(first.nonce.is_some());
    let (owner, receiver) = (
        first.true_owner.clone().unwrap(),
        first.receiver.clone().unwrap(),
    );
    assert_ne!(owner, receiver);

    // The run command reports the failure and prints a replay command.
    let cwd = scratch("canary");
    let path_text = path.to_str().unwrap();
    let seeds = format!("{seed}..{}", seed + 1);
    let (code, output) = crosstalk(&cwd, &["run", path_text, "--seeds", &seeds]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("isolation (invariant 1)"), "{output}");
    assert!(output.contains(&format!("true owner: {owner}")), "{output}");
    assert!(
        output.contains(&format!("received by: {receiver}")),
        "{output}"
    );
    let replay_line = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay: cargo sim "))
        .expect("a replay command is printed");
    let replay_args: Vec<&str> = replay_line.split_whitespace().collect();
    assert_eq!(
        replay_args,
        [
            "replay",
            "--scenario",
            path_text,
            "--seed",
            &seed.to_string()
        ]
    );

    // Capture → replay: the printed command reproduces the same failure
    // with the same trace hash.
    let (code, replayed) = crosstalk(&cwd, &replay_args);
    assert_eq!(code, 1, "{replayed}");
    assert!(
        replayed.contains(&format!("trace hash {}", outcome.trace_hash)),
        "{replayed}"
    );
    assert!(replayed.contains("isolation (invariant 1)"), "{replayed}");

    // The saved plan replays to the same trace too.
    let saved = cwd.join(format!("target/crosstalk/failures/canary-leak-{seed}.json"));
    assert!(saved.is_file(), "plan saved at {}", saved.display());
    let (code, from_plan) = crosstalk(&cwd, &["replay", "--plan", saved.to_str().unwrap()]);
    assert_eq!(code, 1, "{from_plan}");
    assert!(
        from_plan.contains(&format!("trace hash {}", outcome.trace_hash)),
        "{from_plan}"
    );
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
fn cli_exit_codes() {
    let cwd = scratch("exit-codes");
    let smoke_path = repo_path("scenarios/smoke.toml");
    let smoke_text = smoke_path.to_str().unwrap();
    let (code, output) = crosstalk(&cwd, &["run", smoke_text, "--seeds", "5..4"]);
    assert_eq!(code, 2, "empty seed range is a usage error: {output}");
    let (code, output) = crosstalk(&cwd, &["run", "/no/such/scenario.toml"]);
    assert_eq!(code, 2, "{output}");
    let (code, output) = crosstalk(&cwd, &["replay", "--scenario", smoke_text]);
    assert_eq!(code, 2, "replay without a seed: {output}");
    let (code, output) = crosstalk(
        &cwd,
        &["run", smoke_text, "--seeds", "3", "--check-determinism"],
    );
    assert_eq!(code, 0, "{output}");
    assert!(output.starts_with("crosstalk run:"), "{output}");
    assert!(
        output.contains("seed 3 [smoke]:"),
        "the seed banner is printed: {output}"
    );
    assert!(output.contains("result: PASS"), "{output}");
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
fn scenario_files_refuse_unknown_fields_and_bad_ranges() {
    let base = std::fs::read_to_string(repo_path("scenarios/smoke.toml")).unwrap();
    assert!(Scenario::parse(&base).is_ok());
    let typo = base.replace("utterances =", "utterance =");
    assert!(
        Scenario::parse(&typo)
            .unwrap_err()
            .to_string()
            .contains("utterance")
    );
    let inverted = base.replace("accounts = [20, 40]", "accounts = [40, 20]");
    assert!(
        Scenario::parse(&inverted)
            .unwrap_err()
            .to_string()
            .contains("world.accounts")
    );
    let lonely = base.replace("accounts = [20, 40]", "accounts = [1, 1]");
    assert!(
        Scenario::parse(&lonely)
            .unwrap_err()
            .to_string()
            .contains("at least 2")
    );
}

#[test]
fn bench_baseline_completes_every_round_trip() {
    // Correctness only: speed is reported by `crosstalk bench`, never asserted.
    assert_eq!(crosstalk_sim::bench::baseline_round_trips(200), 200);
}

/// How many homes heard each broadcast of `plan`, by broadcast number.
fn homes_per_broadcast(plan: &Plan) -> std::collections::BTreeMap<u32, usize> {
    let mut homes = std::collections::BTreeMap::new();
    for account in &plan.accounts {
        let mut heard = std::collections::BTreeSet::new();
        for timed in &account.actions {
            if let crosstalk_sim::plan::Action::HearBroadcast { broadcast, .. } = timed.action {
                heard.insert(broadcast);
            }
        }
        for broadcast in heard {
            *homes.entry(broadcast).or_insert(0) += 1;
        }
    }
    homes
}

#[test]
fn boundary_broadcasts_reach_exactly_the_fewest_homes_of_a_media_event_and_pass() {
    let fewest = crosstalk_store::media::MEDIA_EVENT_HOUSEHOLDS;
    let mut scenario = Scenario::load(&repo_path("scenarios/broadcast-dollhouse.toml"))
        .expect("broadcast-dollhouse loads");
    let ordinary: Vec<usize> = (0..5)
        .flat_map(|seed| homes_per_broadcast(&Plan::generate(&scenario, seed)).into_values())
        .collect();
    assert!(
        ordinary.iter().any(|&homes| homes > fewest),
        "without the boundary knob broadcasts reach more homes: {ordinary:?}"
    );
    scenario.broadcasts.boundary_per_mille = 1000;
    let mut seen = 0;
    for seed in 0..5 {
        let plan = Plan::generate(&scenario, seed);
        let homes = homes_per_broadcast(&plan);
        assert!(
            homes.values().all(|&n| n == fewest),
            "seed {seed}: {homes:?}"
        );
        seen += homes.len();
        if !homes.is_empty() && seen < 4 {
            let outcome = run_plan(&plan);
            assert!(
                outcome.violations.is_empty(),
                "seed {seed}: {:?}",
                outcome.violations
            );
        }
    }
    assert!(seen > 0, "some seed has broadcasts");
}
