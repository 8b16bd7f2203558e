//! Tests of the CLI's machine-readable results: shards split a run exactly
//! (`--shard`, `--json`, `report merge`), JUnit XML has the usual structure,
//! `--for` runs a budget of fresh seeds, and vacuity is judged per scenario
//! even across merged shards.

use crosstalk_sim::report::{RunReport, SeedRecord};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// A scratch directory for one test's CLI runs.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("crosstalk-results-{name}-{}", std::process::id()));
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
    (
        status.code().expect("exited normally"),
        format!(
            "{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    )
}

/// A scenario directory of two small worlds: smoke, and smoke renamed.
fn two_scenarios(cwd: &Path) -> PathBuf {
    let dir = cwd.join("scenarios");
    std::fs::create_dir_all(&dir).unwrap();
    let smoke = std::fs::read_to_string(repo_path("scenarios/smoke.toml")).unwrap();
    std::fs::write(dir.join("a-smoke.toml"), &smoke).unwrap();
    let renamed = smoke.replacen("name = \"smoke\"", "name = \"smoke-b\"", 1);
    assert_ne!(renamed, smoke, "smoke.toml names itself");
    std::fs::write(dir.join("b-smoke.toml"), renamed).unwrap();
    dir
}

fn hashes(report: &RunReport) -> Vec<(String, u64, String)> {
    report
        .seeds
        .iter()
        .map(|r| (r.scenario.clone(), r.seed, r.trace_hash.clone()))
        .collect()
}

#[test]
fn the_union_of_shards_is_the_unsharded_run_and_merges_to_its_totals() {
    let cwd = scratch("shards");
    let dir = two_scenarios(&cwd);
    let dir = dir.to_str().unwrap();
    let (code, out) = crosstalk(
        &cwd,
        &["run", dir, "--seeds", "0..5", "-q", "--json", "whole.json"],
    );
    assert_eq!(code, 0, "{out}");
    let whole = RunReport::load(&cwd.join("whole.json")).unwrap();
    assert_eq!(whole.seeds.len(), 10);
    let mut union = Vec::new();
    let mut files = Vec::new();
    for shard in ["0/3", "1/3", "2/3"] {
        let file = format!("shard-{}.json", &shard[..1]);
        let (code, out) = crosstalk(
            &cwd,
            &[
                "run", dir, "--seeds", "0..5", "-q", "--shard", shard, "--json", &file,
            ],
        );
        assert_eq!(code, 0, "{out}");
        let part = RunReport::load(&cwd.join(&file)).unwrap();
        let index: u64 = shard[..1].parse().unwrap();
        assert!(part.seeds.iter().all(|r| r.seed % 3 == index), "{shard}");
        union.extend(hashes(&part));
        files.push(file);
    }
    union.sort();
    let mut expected = hashes(&whole);
    expected.sort();
    assert_eq!(
        union, expected,
        "the shards ran exactly the unsharded seeds, with the same traces"
    );
    let mut args = vec!["report", "merge"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--json", "merged.json"]);
    let (code, out) = crosstalk(&cwd, &args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("seeds run 10, passed 10, failed 0"), "{out}");
    let merged = RunReport::load(&cwd.join("merged.json")).unwrap();
    assert_eq!(
        hashes(&merged),
        hashes(&whole),
        "merged seeds in the run's order"
    );
    assert_eq!(merged.counts, whole.counts);
    assert_eq!(merged.controls, whole.controls);
    assert_eq!(merged.scenarios, whole.scenarios);
    // A missing shard, or the same shard twice, is not a complete result.
    let (code, out) = crosstalk(&cwd, &["report", "merge", &files[0], &files[1]]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("shard(s) 2/3 of 3 missing"), "{out}");
    let (code, out) = crosstalk(
        &cwd,
        &[
            "report", "merge", &files[0], &files[0], &files[1], &files[2],
        ],
    );
    assert_eq!(code, 2, "{out}");
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
fn junit_has_a_case_per_scenario_and_seed_and_the_failure_with_its_replay() {
    let cwd = scratch("junit");
    let canary = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/canary-leak.toml");
    let smoke = repo_path("scenarios/smoke.toml");
    let (code, out) = crosstalk(
        &cwd,
        &[
            "run",
            smoke.to_str().unwrap(),
            "--seeds",
            "0..2",
            "-q",
            "--junit",
            "pass.xml",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = crosstalk(
        &cwd,
        &[
            "run",
            canary.to_str().unwrap(),
            "--seeds",
            "0..1",
            "-q",
            "--junit",
            "fail.xml",
            "--json",
            "fail.json",
        ],
    );
    assert_eq!(code, 1, "{out}");
    let text = std::fs::read_to_string(cwd.join("pass.xml")).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("failures"), Some("0"));
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    assert_eq!(suites[0].attribute("name"), Some("smoke"));
    let cases: Vec<_> = suites[0]
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    // Two seeds and the scenario's positive controls.
    assert_eq!(cases.len(), 3);
    assert_eq!(suites[0].attribute("tests"), Some("3"));
    assert_eq!(cases[0].attribute("classname"), Some("smoke"));
    assert_eq!(cases[1].attribute("name"), Some("seed 1"));
    assert!(cases.iter().all(|c| c.children().all(|n| !n.is_element())));

    let text = std::fs::read_to_string(cwd.join("fail.xml")).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.attribute("failures"), Some("1"));
    let case = root
        .descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some("seed 0"))
        .expect("the seed's test case");
    assert_eq!(case.attribute("classname"), Some("canary-leak"));
    let failure = case
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("a failure");
    assert!(
        failure
            .attribute("message")
            .is_some_and(|m| m.starts_with("isolation")),
        "{text}"
    );
    let body = failure.text().unwrap_or_default();
    assert!(
        body.contains("replay: cargo sim replay --scenario"),
        "{body}"
    );
    let report = RunReport::load(&cwd.join("fail.json")).unwrap();
    let record: &SeedRecord = &report.seeds[0];
    assert_eq!(record.verdict, "fail");
    assert!(record.violations.iter().any(|v| v.invariant == "isolation"));
    assert_eq!(report.exit_code, 1);
    assert!(report.controls["recordings_delivered"] > 0);
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
fn a_budget_runs_fresh_seeds_of_its_shard_from_the_base() {
    let cwd = scratch("budget");
    let smoke = repo_path("scenarios/smoke.toml");
    let (code, out) = crosstalk(
        &cwd,
        &[
            "run",
            smoke.to_str().unwrap(),
            "--for",
            "2s",
            "--seed-base",
            "100",
            "--shard",
            "1/2",
            "-j",
            "1",
            "-q",
            "--json",
            "budget.json",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("fresh seeds from 100 for 2s"), "{out}");
    let report = RunReport::load(&cwd.join("budget.json")).unwrap();
    let seeds: Vec<u64> = report.seeds.iter().map(|r| r.seed).collect();
    assert!(!seeds.is_empty());
    let expected: Vec<u64> = (0..seeds.len() as u64).map(|k| 101 + 2 * k).collect();
    assert_eq!(
        seeds, expected,
        "the shard's seeds from the base, none skipped"
    );
    let (code, out) = crosstalk(&cwd, &["run", smoke.to_str().unwrap(), "--for", "soon"]);
    assert_eq!(code, 2, "{out}");
    let _ = std::fs::remove_dir_all(&cwd);
}

/// `count` copies of `record` as seeds `0..count` of `scenario`, with the
/// given controls zeroed.
fn fabricate(record: &SeedRecord, scenario: &str, count: u64, zero: &[&str]) -> Vec<SeedRecord> {
    (0..count)
        .map(|seed| {
            let mut r = record.clone();
            r.scenario = scenario.into();
            r.seed = seed;
            for control in zero {
                r.controls.insert((*control).into(), 0);
            }
            r
        })
        .collect()
}

#[test]
fn a_scenario_whose_feature_never_happened_is_vacuous_though_another_saw_it() {
    let cwd = scratch("vacuity");
    let smoke = repo_path("scenarios/smoke.toml");
    let (code, out) = crosstalk(
        &cwd,
        &[
            "run",
            smoke.to_str().unwrap(),
            "--seeds",
            "0..1",
            "-q",
            "--json",
            "one.json",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let one = RunReport::load(&cwd.join("one.json")).unwrap();
    let chaos =
        crosstalk_sim::scenario::Scenario::load(&repo_path("scenarios/chaos.toml")).unwrap();
    let smoke_spec = one.scenarios[0].spec.clone();
    assert!(chaos.faults.store_crashes.1 > 0, "chaos crashes the store");
    // smoke saw store crashes in every seed; chaos, which enables them, in none.
    let mut seen = one.seeds[0].clone();
    for n in seen.controls.values_mut() {
        *n = (*n).max(1);
    }
    // Every control a vacuity rule reads, as if seed 0 had seen them all.
    for name in crosstalk_sim::vacuity::named_controls() {
        seen.controls.entry(name.to_string()).or_insert(1);
    }
    let mut seeds = fabricate(&seen, "smoke", 20, &[]);
    seeds.extend(fabricate(&seen, &chaos.name, 20, &["store_crashes"]));
    let report = RunReport::build(&[smoke_spec, chaos.clone()], seeds, vec!["0/1".into()]);
    report.write_json(&cwd.join("shard.json")).unwrap();
    let (code, out) = crosstalk(
        &cwd,
        &["report", "merge", "shard.json", "--junit", "merged.xml"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("vacuous run: no positive control for"),
        "{out}"
    );
    assert!(
        out.contains(&format!("store crashes in {}", chaos.name)),
        "{out}"
    );
    assert!(
        !out.contains("in smoke"),
        "smoke exercised everything: {out}"
    );
    let xml = std::fs::read_to_string(cwd.join("merged.xml")).unwrap();
    assert!(xml.contains("type=\"vacuity\""), "{xml}");
    // With fewer than 20 seeds of each, the feature controls are not judged, and the output says so.
    let mut few = one.seeds[0].clone();
    few.scenario = chaos.name.clone();
    few.controls.insert("store_crashes".into(), 0);
    let report = RunReport::build(std::slice::from_ref(&chaos), vec![few], vec![]);
    report.write_json(&cwd.join("few.json")).unwrap();
    let (code, out) = crosstalk(&cwd, &["report", "merge", "few.json"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("fewer ran of {} (1)", chaos.name)),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
fn the_sharded_gate_workflow_the_indexed_job_and_ci_use_flags_that_exist() {
    let read =
        |p: &str| std::fs::read_to_string(repo_path(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let workflow = read(".github/workflows/scenarios.yml");
    assert!(
        workflow.contains("--shard ${{ matrix.shard }}/"),
        "the gate runs as a matrix of shards"
    );
    assert!(
        workflow.contains("--seeds 0..200 --check-determinism"),
        "the shards run the gate"
    );
    assert!(
        workflow.contains("crosstalk report merge"),
        "a job merges the shards"
    );
    let job = read("deploy/k8s-indexed-job.yaml");
    assert!(job.contains("completionMode: Indexed"));
    assert!(job.contains("--shard \"${JOB_COMPLETION_INDEX}/${SHARDS}\""));
    let ci = read(".ci/run");
    assert!(
        ci.contains("--json target/crosstalk/ci/") && ci.contains("--junit target/crosstalk/ci/")
    );
    let cwd = scratch("help");
    let (code, help) = crosstalk(&cwd, &["run", "--help"]);
    assert_eq!(code, 0, "{help}");
    for flag in ["--shard", "--json", "--junit", "--for", "--seed-base"] {
        assert!(help.contains(flag), "run has {flag}: {help}");
    }
    let (code, help) = crosstalk(&cwd, &["report", "merge", "--help"]);
    assert_eq!(code, 0, "{help}");
    let _ = std::fs::remove_dir_all(&cwd);
}
