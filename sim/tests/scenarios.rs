//! The scenario files: every one is valid and run by CI, and each has a
//! reviewed snapshot of its deterministic summary for a fixed seed, so any
//! change of behaviour shows up as a diff to review.

use crosstalk_sim::check::Controls;
use crosstalk_sim::plan::Plan;
use crosstalk_sim::scenario::{Scenario, scenario_files};
use crosstalk_sim::world::run_plan;
use serde::Serialize;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `*.toml` anywhere under `scenarios/`.
fn all_toml(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("scenarios/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            all_toml(&path, out);
        } else if path.extension().is_some_and(|x| x == "toml")
            && path
                .file_name()
                .is_none_or(|n| n != crosstalk_sim::probe_gate::ALLOW_LIST_FILE)
        {
            out.push(path);
        }
    }
}

#[test]
fn ci_runs_every_scenario_file_and_every_regression() {
    let ci = std::fs::read_to_string(repo().join(".ci/run")).expect(".ci/run exists");
    assert!(
        ci.lines()
            .any(|l| l.trim_start().starts_with("cargo sim run scenarios/ ")
                && l.contains("--check-determinism")),
        ".ci/run must run the whole scenarios/ directory with --check-determinism"
    );
    assert!(
        ci.lines().any(|l| l
            .trim_start()
            .starts_with("cargo sim regressions scenarios/regressions")),
        ".ci/run must replay scenarios/regressions/"
    );
    // `run scenarios/` runs exactly the *.toml directly inside it: a
    // scenario file anywhere else would never run.
    let mut everywhere = Vec::new();
    all_toml(&repo().join("scenarios"), &mut everywhere);
    everywhere.sort();
    let run = scenario_files(&repo().join("scenarios")).expect("scenarios/ lists");
    assert_eq!(
        run, everywhere,
        "a scenario file exists that CI does not run"
    );
    let names: Vec<String> = run
        .iter()
        .map(|f| {
            f.file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for named in [
        "smoke",
        "gdpr-wrong-customer",
        "broadcast-dollhouse",
        "portland-message",
        "device-resale",
        "reconnect-storm",
        "recycled-identity",
        "deletion-vs-export",
        "chaos",
        "store-crash",
        "threads",
    ] {
        assert!(
            names.iter().any(|n| n == named),
            "scenarios/{named}.toml is missing"
        );
    }
    for file in &run {
        Scenario::load(file).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[derive(Serialize)]
struct Summary {
    scenario: String,
    seed: u64,
    passed: bool,
    violations: Vec<String>,
    trace_hash: String,
    trace_events: u64,
    simulated_ms: u64,
    sut_requests: u64,
    controls: Controls,
}

#[test]
fn scenario_summaries_for_seed_1() {
    let files = scenario_files(&repo().join("scenarios")).expect("scenarios/ lists");
    for file in files {
        let scenario = Scenario::load(&file).expect("scenario loads");
        let outcome = run_plan(&Plan::generate(&scenario, 1));
        // Under real threads only the plan is the seed's: what the OS
        // interleaved (controls, requests) is not snapshotted.
        let threads = !scenario.harness.is_sim();
        let summary = Summary {
            scenario: scenario.name.clone(),
            seed: 1,
            passed: outcome.passed(),
            violations: outcome
                .violations
                .iter()
                .map(|v| format!("{:?}: {}", v.invariant, v.detail))
                .collect(),
            trace_hash: outcome.trace_hash.clone(),
            trace_events: outcome.trace_events,
            simulated_ms: outcome.simulated_ms,
            sut_requests: if threads { 0 } else { outcome.sut_requests },
            controls: if threads {
                Controls::default()
            } else {
                outcome.controls.clone()
            },
        };
        assert!(
            summary.passed,
            "{} seed 1 failed: {:?} {:?}",
            scenario.name, summary.violations, outcome.infra_errors
        );
        insta::assert_json_snapshot!(format!("summary-{}", scenario.name), summary);
    }
}
