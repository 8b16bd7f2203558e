//! `crosstalk replay`: one seed of a scenario, a saved plan, or a crashing
//! input of the `plan` fuzz target, run exactly again, with bugs planted on
//! request, the whole trace written out on request, the summary and the
//! verdict (exit 0 pass, 1 violation, 2 infrastructure error).
//!
//! The phases: [`load`] (the plan and its replay command), planting, the
//! run, the trace file, and [`conclude`].

use super::args::ReplayArgs;
use super::error::require_planted_build;
use super::failure::{FailureOptions, report_failure};
use super::saved_plans::{load_plan, plant_bugs, save_plan_as};
use super::summary::{Totals, print_summary};
use super::{CliError, EXIT_PASS, EXIT_USAGE, EXIT_VIOLATION, banner, wall_clock};
use crate::plan::Plan;
use crate::scenario::Scenario;
use crate::world::RunOutcome;
use std::path::{Path, PathBuf};

pub(super) fn command(mut args: ReplayArgs) -> Result<i32, CliError> {
    if let Some(artifact) = args.fuzz_artifact.take()
        && args.scenario.is_none()
        && args.seed.is_none()
        && args.plan.is_none()
    {
        args.plan = Some(fuzz_artifact_plan(&artifact)?);
    }
    let (mut plan, mut replay) = load(&args)?;
    for name in plant_bugs(&mut plan, &args.plant)? {
        replay.push_str(&format!(" --plant {name}"));
    }
    if !plan.planted.is_empty() {
        let needed_by = format!("the plan plants {}", plan.planted.join(", "));
        require_planted_build(Some(needed_by))?;
    }
    println!("crosstalk replay");
    println!("{}", banner(&plan));
    let started = wall_clock();
    let outcome = crate::guard::run_guarded(&plan)?;
    if let Some(path) = &args.trace {
        write_trace(path, &outcome);
    }
    println!(
        "trace hash {} ({} events)",
        outcome.trace_hash, outcome.trace_events
    );
    let code = conclude(&plan, &outcome, &replay, &args.failure, || {
        started.elapsed().as_secs_f64()
    });
    Ok(code)
}

/// The plan to replay and the command that replays it again.
fn load(args: &ReplayArgs) -> Result<(Plan, String), CliError> {
    match (&args.scenario, args.seed, &args.plan) {
        (_, _, Some(path)) => {
            let (plan, postmortem) = load_plan(path)?;
            if let Some(postmortem) = postmortem {
                println!("regression: {postmortem}");
            }
            Ok((plan, format!("cargo sim replay --plan {}", path.display())))
        }
        (Some(file), Some(seed), None) => {
            let scenario = Scenario::load(file)?;
            let replay = format!(
                "cargo sim replay --scenario {} --seed {seed}",
                file.display()
            );
            Ok((Plan::generate(&scenario, seed), replay))
        }
        _ => Err(CliError::NothingToReplay),
    }
}

/// `replay --fuzz-artifact`: decode a `plan` fuzz input into its plan and
/// save it like any failing plan; returns where.
fn fuzz_artifact_plan(artifact: &Path) -> Result<PathBuf, CliError> {
    let bytes = std::fs::read(artifact).map_err(|source| CliError::Read {
        path: artifact.to_path_buf(),
        source,
    })?;
    let plan = crate::fuzzing::plan::plan_from_bytes(&bytes, crosstalk_service::Planted::AVAILABLE)
        .map_err(CliError::Refused)?;
    if !crosstalk_service::Planted::AVAILABLE {
        println!(
            "note: this build has no planted bugs; an artifact of the planted fuzz build \
             (cargo fuzz run --features planted-bugs plan) replays with `cargo sim-planted replay --fuzz-artifact`"
        );
    }
    let name = artifact
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let saved = save_plan_as(&plan, &format!("fuzz-{name}.json"))?;
    println!(
        "fuzz artifact {} is plan {} seed {}{}; saved as {}",
        artifact.display(),
        plan.scenario,
        plan.seed,
        if plan.planted.is_empty() {
            String::new()
        } else {
            format!(" with {} planted", plan.planted.join(", "))
        },
        saved.display()
    );
    Ok(saved)
}

/// `--trace FILE`: every event of the run, one per line.
fn write_trace(path: &Path, outcome: &RunOutcome) {
    let text: String = outcome
        .trace_lines
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    match std::fs::write(path, text) {
        Ok(()) => println!(
            "trace written: {} ({} events)",
            path.display(),
            outcome.trace_lines.len()
        ),
        Err(e) => eprintln!("error: writing {}: {e}", path.display()),
    }
}

/// The failure's report if it failed, the summary, the result line and the
/// exit code.
fn conclude(
    plan: &Plan,
    outcome: &RunOutcome,
    replay: &str,
    failure: &FailureOptions,
    wall_seconds: impl Fn() -> f64,
) -> i32 {
    let mut totals = Totals::default();
    totals.record(outcome);
    totals.evidence(outcome);
    if outcome.passed() {
        totals.passed = 1;
        print_summary(&totals, wall_seconds());
        println!("result: PASS");
        return EXIT_PASS;
    }
    totals.failed = 1;
    report_failure(outcome, plan, replay, failure);
    print_summary(&totals, wall_seconds());
    if outcome.violations.is_empty() {
        println!("result: ERROR");
        EXIT_USAGE
    } else {
        println!("result: FAIL");
        EXIT_VIOLATION
    }
}
