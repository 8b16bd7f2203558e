//! `crosstalk shrink --plan FILE`: shrink a saved plan or a regression to a
//! minimal plan that still fails with the same invariant (see
//! [`crate::shrink`]), saved beside it as `<name>-shrunk.json`. A regression
//! that `catches` a planted bug is shrunk with the bug planted, and saved as
//! a regression again, with the bug in `catches`.

use super::args::ShrinkArgs;
use super::error::require_planted_build;
use super::failure::{
    finish_progress, print_sizes, print_written, progress_line, stem, wall_clock,
};
use super::saved_plans::{load_regression, plant_bugs, write_json};
use super::{CliError, EXIT_PASS, EXIT_USAGE};
use crate::plan::{Plan, Regression};
use crate::shrink::{Shrunk, shrink, shrunk_path};
use std::path::Path;

pub(super) fn command(args: &ShrinkArgs) -> Result<i32, CliError> {
    let path = args.plan.as_path();
    let regression = load_regression(path)?;
    let mut plan = regression.plan.clone();
    plant_bugs(
        &mut plan,
        args.plant.iter().chain(regression.catches.iter()),
    )?;
    if !plan.planted.is_empty() {
        let needed_by = format!("shrinking this plan plants {}", plan.planted.join(", "));
        require_planted_build(Some(needed_by))?;
    }
    println!("crosstalk shrink {}", path.display());
    println!("{}", super::banner(&plan));
    let started = wall_clock();
    let shrunk = shrink(&plan, args.max_replays, &mut progress_line());
    finish_progress();
    let shrunk = shrunk.map_err(|e| CliError::Refused(format!("{}: {e}", path.display())))?;
    print_sizes(&shrunk, started.elapsed().as_secs_f64());
    let out = shrunk_path(path);
    let written = if regression.postmortem.is_empty() && regression.catches.is_none() {
        write_json(&out, &shrunk.plan)
    } else {
        write_json(&out, &shrunk_regression(&regression, &shrunk, path))
    };
    let failed = written.is_err();
    print_written("shrunk plan", written.map(|()| out.clone()));
    if let Some(dir) = &args.report {
        write_reports(dir, path, &plan, &shrunk);
    }
    if failed {
        return Ok(EXIT_USAGE);
    }
    println!("replay: cargo sim replay --plan {}", out.display());
    Ok(EXIT_PASS)
}

/// The HTML reports of the original run and of the shrunk one.
fn write_reports(dir: &Path, path: &Path, plan: &Plan, shrunk: &Shrunk) {
    let name = stem(path);
    print_written(
        "report",
        crate::report_html::write_report(dir, &name, plan, &shrunk.original_outcome),
    );
    let shrunk_report = crate::report_html::write_report(
        dir,
        &format!("{name}-shrunk"),
        &shrunk.plan,
        &shrunk.outcome,
    );
    print_written("shrunk report", shrunk_report);
}

/// The shrunk plan as a regression: planted bugs it `catches` are taken out
/// of the plan again (a regression passes as it is).
fn shrunk_regression(original: &Regression, shrunk: &Shrunk, from: &Path) -> Regression {
    let mut plan = shrunk.plan.clone();
    if let Some(bug) = &original.catches {
        plan.planted.retain(|p| p != bug);
    }
    Regression {
        postmortem: format!(
            "{} [shrunk from {} by `crosstalk shrink`: {} people and {} actions, was {} and {}; still fails with {}]",
            original.postmortem,
            from.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            shrunk.after.people,
            shrunk.after.actions,
            shrunk.before.people,
            shrunk.before.actions,
            shrunk.invariant.short()
        ),
        plan,
        catches: original.catches.clone(),
        caught_by: original
            .catches
            .as_ref()
            .map(|_| shrunk.invariant.short().to_string()),
    }
}
