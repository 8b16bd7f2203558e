//! `crosstalk regressions DIR`: every saved regression of a folder, in name
//! order, replayed twice on the shared parallel runner (each must pass with
//! the same trace hash both times); a regression that `catches` a planted
//! bug is also run with the bug planted, in a build that has it, and must
//! fail with it (with the invariant it pins, if it pins one).

use super::args::RegressionsArgs;
use super::failure::{FailureOptions, report_failure};
use super::saved_plans::load_regression;
use super::{CliError, EXIT_NONDETERMINISM, EXIT_PASS, EXIT_VIOLATION};
use crate::plan::Regression;
use crate::runner::{self, Flow, Progress};
use crate::world::{RunOutcome, run_plan};
use std::path::{Path, PathBuf};

/// A regression's runs: twice as saved, and once with its bug planted.
type Replays = (RunOutcome, RunOutcome, Option<RunOutcome>);

pub(super) fn command(args: &RegressionsArgs) -> Result<i32, CliError> {
    let regressions = load_regressions(&args.dir)?;
    println!(
        "crosstalk regressions: {} saved failure(s) in {}",
        regressions.len(),
        args.dir.display()
    );
    let (mut failed, mut nondeterministic) = (0, 0);
    runner::run_ordered(
        runner::default_jobs(args.jobs),
        Progress::Hidden,
        |i| regressions.get(usize::try_from(i).ok()?),
        || true,
        |(_, regression)| replay_regression(regression),
        |_, (file, regression), replays| {
            let verdict = judge(file, regression, replays);
            failed += u64::from(verdict.failed) + u64::from(verdict.planted_failed);
            nondeterministic += u64::from(verdict.nondeterministic);
            Flow::Continue {
                failed: verdict.failed || verdict.nondeterministic,
            }
        },
    );
    Ok(if nondeterministic > 0 {
        EXIT_NONDETERMINISM
    } else if failed > 0 {
        EXIT_VIOLATION
    } else {
        println!("result: PASS");
        EXIT_PASS
    })
}

/// Every saved regression of `dir`, in name order, read and parsed.
fn load_regressions(dir: &Path) -> Result<Vec<(PathBuf, Regression)>, CliError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| CliError::Read {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(CliError::NoRegressions(dir.to_path_buf()));
    }
    files
        .into_iter()
        .map(|file| match load_regression(&file) {
            Ok(r) => Ok((file, r)),
            Err(CliError::Read { source, .. }) => Err(CliError::Regression {
                path: file,
                reason: source.to_string(),
            }),
            Err(CliError::NotAPlan { reason, .. }) => {
                Err(CliError::Regression { path: file, reason })
            }
            Err(other) => Err(other),
        })
        .collect()
}

/// A regression's runs: twice as saved, and once with its bug planted (when
/// it names one and this build can plant it).
fn replay_regression(regression: &Regression) -> Replays {
    let first = run_plan(&regression.plan);
    let second = run_plan(&regression.plan);
    let planted = regression
        .catches
        .as_ref()
        .filter(|_| crosstalk_service::Planted::AVAILABLE)
        .map(|bug| {
            let mut planted = regression.plan.clone();
            planted.planted = vec![bug.clone()];
            run_plan(&planted)
        });
    (first, second, planted)
}

/// What one regression's replays showed.
struct Verdict {
    /// The plan as saved failed.
    failed: bool,
    /// With its bug planted, it did not fail as it should.
    planted_failed: bool,
    /// Its two runs' traces differ.
    nondeterministic: bool,
}

/// Print one regression's line (and its failure's report) and judge it.
fn judge(file: &Path, regression: &Regression, (first, second, planted): Replays) -> Verdict {
    let nondeterministic = first.trace_hash != second.trace_hash;
    let failed = !nondeterministic && !first.passed();
    let verdict = if nondeterministic {
        "NONDETERMINISTIC"
    } else if failed {
        "FAIL"
    } else {
        "ok"
    };
    println!(
        "{verdict:>16}  {}  ({})",
        file.display(),
        regression.postmortem
    );
    if failed {
        report_failure(
            &first,
            &regression.plan,
            &format!("cargo sim replay --plan {}", file.display()),
            &FailureOptions::default(),
        );
    }
    // A plan kept for a planted bug must also fail with the bug planted.
    let planted_failed = match &regression.catches {
        Some(bug) => !judge_planted(bug, regression, planted.as_ref()),
        None => false,
    };
    Verdict {
        failed,
        planted_failed,
        nondeterministic,
    }
}

/// Print whether the plan, with `bug` planted, failed with it; returns
/// whether that is as it should be (skipped counts as fine).
fn judge_planted(bug: &str, regression: &Regression, planted: Option<&RunOutcome>) -> bool {
    let Some(outcome) = planted else {
        println!(
            "{:>16}  with {bug} planted: needs the planted-bugs build (cargo sim-planted regressions)",
            "skipped"
        );
        return true;
    };
    let Some(first) = outcome.violations.first().map(|v| v.invariant.short()) else {
        println!(
            "{:>16}  with {bug} planted: NOT caught (the plan no longer sees the bug)",
            "FAIL"
        );
        return false;
    };
    match regression.caught_by.as_deref() {
        Some(pinned) if pinned != first => {
            println!(
                "{:>16}  with {bug} planted: caught by {first}, not by {pinned} as the file pins",
                "FAIL"
            );
            false
        }
        _ => {
            println!("{:>16}  with {bug} planted: caught ({first})", "ok");
            true
        }
    }
}
