//! `crosstalk hunt`: the detection benchmark's command. `--list` prints the
//! planted-bug catalogue; `--plant BUG` or `--all` hunts each bug in its
//! scenario with [`crate::hunt::hunt`] (seeds on the shared parallel
//! runner, the lowest violating seed counts), prints each catch or miss,
//! saves regressions on request, and judges the budget: every bug caught,
//! the median within `--median-budget` seeds, none past `--max-seeds`.

use super::args::HuntArgs;
use super::error::require_planted_build;
use super::failure::{FailureOptions, after_failure};
use super::saved_plans::{save_plan_as, write_json};
use super::{CliError, EXIT_PASS, EXIT_VIOLATION, wall_clock};
use crate::hunt::{self, Hunt};
use crate::scenario::Scenario;
use crate::world::RunOutcome;
use crosstalk_service::Bug;
use std::path::{Path, PathBuf};

pub(super) fn command(args: HuntArgs) -> Result<i32, CliError> {
    if args.list {
        print_catalogue();
        return Ok(EXIT_PASS);
    }
    require_planted_build(None)?;
    let targets = targets(&args)?;
    let jobs = crate::runner::default_jobs(args.jobs);
    println!(
        "crosstalk hunt: {} planted bug(s), up to {} seeds each, {jobs} job(s)",
        targets.len(),
        args.max_seeds,
    );
    let started = wall_clock();
    let mut hunts = Vec::new();
    for (bug, path) in targets {
        let found = hunt::hunt(bug, &path, args.max_seeds, args.rate, jobs, || {
            started.elapsed().as_secs_f64()
        })?;
        match &found.caught {
            Some((seed, outcome)) => {
                print_caught(&found, &path, *seed, outcome);
                hunt_after_failure(&args.failure, &path, bug, *seed, outcome);
            }
            None => print_missed(&found, &path),
        }
        if let Some(dir) = &args.save_regressions {
            save_regression(dir, &found)?;
        }
        hunts.push(found);
    }
    Ok(judge_budget(&hunts, &args, started.elapsed().as_secs_f64()))
}

/// `--list`: every bug, its incident, its default scenario and its defect.
fn print_catalogue() {
    for bug in Bug::ALL {
        println!(
            "{:<26} {:<32} [{}] {}",
            bug.name(),
            bug.incident(),
            hunt::default_scenario(bug),
            bug.defect()
        );
    }
}

/// The bugs to hunt, each with its scenario file.
fn targets(args: &HuntArgs) -> Result<Vec<(Bug, PathBuf)>, CliError> {
    if args.all {
        return Ok(Bug::ALL
            .into_iter()
            .map(|b| (b, scenario_path_for(b)))
            .collect());
    }
    let name = args.plant.clone().unwrap_or_default();
    let bug = name.parse::<Bug>().map_err(CliError::Flag)?;
    let path = args
        .scenario
        .clone()
        .unwrap_or_else(|| scenario_path_for(bug));
    Ok(vec![(bug, path)])
}

fn scenario_path_for(bug: Bug) -> PathBuf {
    PathBuf::from(format!("scenarios/{}.toml", hunt::default_scenario(bug)))
}

fn print_caught(found: &Hunt, path: &Path, seed: u64, outcome: &RunOutcome) {
    println!(
        "caught   {:<26} in {:>3} seed(s), {:>6.1} s, by {} ({}): seed {seed}; {} of {} seeds run catch it",
        found.bug.name(),
        seed + 1,
        found.wall_seconds,
        found.invariant(),
        path.display(),
        found.seeds_caught,
        found.seeds_run
    );
    if let Some(v) = outcome.violations.first() {
        println!("         first violation: {}", v.invariant.describe());
        println!("         provenance: {}", v.detail);
    }
    if let Some(replay) = found.replay() {
        println!("         replay: {replay}");
    }
}

fn print_missed(found: &Hunt, path: &Path) {
    println!(
        "MISSED   {:<26} in {} seed(s), {:.1} s ({}){}",
        found.bug.name(),
        found.seeds_run,
        found.wall_seconds,
        path.display(),
        if found.errors > 0 {
            format!("; {} seed(s) ended in infrastructure errors", found.errors)
        } else {
            String::new()
        }
    );
}

/// `--save-regressions DIR`: a caught bug's plan as `planted-<bug>.json`.
fn save_regression(dir: &Path, found: &Hunt) -> Result<(), CliError> {
    let Some(regression) = hunt::regression_for(found) else {
        return Ok(());
    };
    let file = dir.join(format!("planted-{}.json", found.bug.name()));
    write_json(&file, &regression).map_err(|e| CliError::Write {
        path: file.clone(),
        reason: match e {
            CliError::Create { source, .. } => source.to_string(),
            CliError::Write { reason, .. } => reason,
            other => other.to_string(),
        },
    })?;
    println!("         regression saved: {}", file.display());
    Ok(())
}

/// The table of every hunt, the medians and the budget's verdict.
fn judge_budget(hunts: &[Hunt], args: &HuntArgs, wall_seconds: f64) -> i32 {
    println!();
    println!("{}", hunt::TABLE_HEADER);
    for h in hunts {
        println!("{}", hunt::table_row(h));
    }
    let caught = hunts.iter().filter(|h| h.caught.is_some()).count();
    let median = hunt::median_seeds(hunts);
    let worst = hunts
        .iter()
        .map(|h| h.seeds_to_detect().unwrap_or(u64::MAX))
        .max()
        .unwrap_or(0);
    let shown = |n: u64| {
        if n == u64::MAX {
            "not caught".to_string()
        } else {
            n.to_string()
        }
    };
    println!();
    println!(
        "caught {caught} of {}; seeds to detect: median {}, worst {}; budget: median <= {}, none above {}; {wall_seconds:.1} s wall",
        hunts.len(),
        shown(median),
        shown(worst),
        args.median_budget,
        args.max_seeds,
    );
    if caught == hunts.len() && median <= args.median_budget && worst <= args.max_seeds {
        println!("result: PASS");
        EXIT_PASS
    } else {
        println!("result: FAIL");
        EXIT_VIOLATION
    }
}

/// `hunt --shrink/--report`: save the caught plan (bug planted) under
/// target/crosstalk/failures/ and hand it on.
fn hunt_after_failure(
    failure: &FailureOptions,
    scenario: &Path,
    bug: Bug,
    seed: u64,
    outcome: &RunOutcome,
) {
    if !failure.shrink && failure.report.is_none() {
        return;
    }
    let plan = match Scenario::load(scenario) {
        Ok(s) => hunt::planted_plan(&s, seed, bug),
        Err(e) => return println!("         could not load {}: {e}", scenario.display()),
    };
    let saved = save_plan_as(&plan, &format!("planted-{}-{seed}.json", bug.name()));
    if let Ok(path) = &saved {
        println!("         plan saved: {}", path.display());
    }
    after_failure(failure, &plan, outcome, saved.as_deref().ok());
}
