//! What happens to a failure once it is reported: `--shrink` reduces its
//! plan (see [`crate::shrink`]) and saves the minimal plan beside the saved
//! one, `--report DIR` writes the run's HTML page (see
//! [`crate::report_html`]), also for the shrunk run. The `shrink` command
//! lives here too, so the CLI module only wires flags to these functions.

use crate::cli::{EXIT_PASS, EXIT_USAGE, FAILURES_DIR};
use crate::plan::{Plan, Regression};
use crate::shrink::{DEFAULT_MAX_REPLAYS, Progress, Shrunk, shrink, shrunk_path};
use crate::world::RunOutcome;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The flags `run`, `replay` and `hunt` share for their failures.
#[derive(clap::Args, Debug, Clone)]
pub struct FailureOptions {
    /// Shrink each failure it saves to a minimal plan that still fails with
    /// the same invariant, saved beside it as `<name>-shrunk.json`.
    #[arg(long)]
    pub shrink: bool,
    /// Replays one shrink may use.
    #[arg(long, default_value_t = DEFAULT_MAX_REPLAYS)]
    pub max_replays: u32,
    /// Write one self-contained HTML report per failing seed (and per
    /// shrunk plan) into this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

impl Default for FailureOptions {
    fn default() -> Self {
        FailureOptions {
            shrink: false,
            max_replays: DEFAULT_MAX_REPLAYS,
            report: None,
        }
    }
}

/// The wall clock, read only to say how long a shrink took; nothing it
/// returns reaches a simulation.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> Instant {
    Instant::now()
}

/// After a failure of `plan` was reported (and saved at `saved`, if it
/// was): write its report and shrink it, as `options` ask.
pub fn after_failure(
    options: &FailureOptions,
    plan: &Plan,
    outcome: &RunOutcome,
    saved: Option<&Path>,
) {
    let saved = saved.map(Path::to_path_buf).unwrap_or_else(|| {
        Path::new(FAILURES_DIR).join(format!("{}-{}.json", plan.scenario, plan.seed))
    });
    let name = stem(&saved);
    if let Some(dir) = &options.report {
        print_written(
            "report",
            crate::report_html::write_report(dir, &name, plan, outcome),
        );
    }
    if !options.shrink || outcome.violations.is_empty() {
        return;
    }
    let started = wall_clock();
    match shrink(plan, options.max_replays, &mut progress_line()) {
        Ok(shrunk) => {
            finish_progress();
            print_sizes(&shrunk, started.elapsed().as_secs_f64());
            let path = shrunk_path(&saved);
            print_written(
                "shrunk plan",
                write_json(&path, &shrunk.plan).map(|()| path),
            );
            if let Some(dir) = &options.report {
                let report = crate::report_html::write_report(
                    dir,
                    &format!("{name}-shrunk"),
                    &shrunk.plan,
                    &shrunk.outcome,
                );
                print_written("shrunk report", report);
            }
        }
        Err(e) => {
            finish_progress();
            println!("  could not shrink: {e}");
        }
    }
}

/// `crosstalk shrink --plan FILE`: shrink a saved plan or a regression (a
/// regression that `catches` a planted bug is shrunk with the bug planted,
/// and saved as a regression again, with the bug in `catches`).
pub fn shrink_command(
    path: &Path,
    plant: &[String],
    max_replays: u32,
    report: Option<&Path>,
) -> i32 {
    let regression = match std::fs::read_to_string(path)
        .map_err(|e| format!("reading {}: {e}", path.display()))
        .and_then(|text| {
            crate::plan::load_regression_file(&text)
                .map_err(|e| format!("{} is not a plan: {e}", path.display()))
        }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let mut plan = regression.plan.clone();
    for name in plant.iter().chain(regression.catches.iter()) {
        if let Err(e) = name.parse::<crosstalk_service::Bug>() {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
        if !plan.planted.contains(name) {
            plan.planted.push(name.clone());
        }
    }
    if !plan.planted.is_empty()
        && let Err(e) = crate::hunt::require_planted_build()
    {
        eprintln!(
            "error: shrinking this plan plants {}; {e}",
            plan.planted.join(", ")
        );
        return EXIT_USAGE;
    }
    println!("crosstalk shrink {}", path.display());
    println!("{}", crate::cli::banner(&plan));
    let started = wall_clock();
    let shrunk = match shrink(&plan, max_replays, &mut progress_line()) {
        Ok(s) => s,
        Err(e) => {
            finish_progress();
            eprintln!("error: {}: {e}", path.display());
            return EXIT_USAGE;
        }
    };
    finish_progress();
    print_sizes(&shrunk, started.elapsed().as_secs_f64());
    let out = shrunk_path(path);
    let written = if regression.postmortem.is_empty() && regression.catches.is_none() {
        write_json(&out, &shrunk.plan)
    } else {
        write_json(&out, &shrunk_regression(&regression, &shrunk, path))
    };
    let failed = written.is_err();
    print_written("shrunk plan", written.map(|()| out.clone()));
    if let Some(dir) = report {
        let name = stem(path);
        print_written(
            "report",
            crate::report_html::write_report(dir, &name, &plan, &shrunk.original_outcome),
        );
        let shrunk_report = crate::report_html::write_report(
            dir,
            &format!("{name}-shrunk"),
            &shrunk.plan,
            &shrunk.outcome,
        );
        print_written("shrunk report", shrunk_report);
    }
    if failed {
        return EXIT_USAGE;
    }
    println!("replay: cargo sim replay --plan {}", out.display());
    EXIT_PASS
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

fn print_sizes(shrunk: &Shrunk, seconds: f64) {
    println!(
        "shrunk in {} replays, {seconds:.1} s wall; still fails with {} first",
        shrunk.replays,
        shrunk.invariant.short()
    );
    println!("  before: {}", shrunk.before);
    println!("  after:  {}", shrunk.after);
}

fn print_written(what: &str, result: Result<PathBuf, String>) {
    match result {
        Ok(path) => println!("  {what} written: {}", path.display()),
        Err(e) => println!("  could not write the {what}: {e}"),
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), String> {
    let json = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::write(path, json + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plan".to_string())
}

/// A progress line on stderr: rewritten in place on a terminal, one line
/// every 25 replays otherwise.
fn progress_line() -> impl FnMut(&Progress) {
    let terminal = std::io::stderr().is_terminal();
    move |p: &Progress| {
        let line = format!(
            "shrinking: {}/{} replays; now {} people, {} actions, {} faults",
            p.replays, p.max_replays, p.people, p.actions, p.faults
        );
        if terminal {
            eprint!("\r{line}   ");
            let _ = std::io::stderr().flush();
        } else if p.replays % 25 == 1 {
            eprintln!("{line}");
        }
    }
}

fn finish_progress() {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}
