//! A failed run, reported: [`report_failure`] prints the invariant, the
//! leaked item's provenance, the last events and the exact replay command,
//! and saves the plan; then [`after_failure`] does what the flags `run`,
//! `replay` and `hunt` share ask: `--shrink` reduces the plan (see
//! [`crate::shrink`]) and saves the minimal plan beside the saved one,
//! `--report DIR` writes the run's HTML page (see [`crate::report_html`]),
//! also for the shrunk run.

use super::saved_plans::{FAILURES_DIR, save_plan, write_json};
use crate::plan::Plan;
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
pub(super) fn wall_clock() -> Instant {
    Instant::now()
}

/// Print a failed run: the invariant, the leaked item's provenance, the
/// seed and the exact replay commands; save its plan and hand it on.
pub(super) fn report_failure(
    outcome: &RunOutcome,
    plan: &Plan,
    replay: &str,
    options: &FailureOptions,
) {
    println!("FAIL seed {} [{}]", outcome.seed, plan.scenario);
    print_violations(outcome);
    for e in &outcome.infra_errors {
        println!("  infrastructure error: {e}");
    }
    println!(
        "  trace hash {} ({} events); last events:",
        outcome.trace_hash, outcome.trace_events
    );
    for line in outcome.trace_lines.iter().rev().take(8).rev() {
        println!("    {line}");
    }
    println!("  replay: {replay}");
    let saved = save_plan(plan);
    match &saved {
        Ok(path) => println!(
            "  plan saved: {} (replay: cargo sim replay --plan {})",
            path.display(),
            path.display()
        ),
        Err(e) => println!("  could not save the plan: {e}"),
    }
    after_failure(options, plan, outcome, saved.as_deref().ok());
}

/// The first five violations, each with what ground truth knows of it.
fn print_violations(outcome: &RunOutcome) {
    for (i, v) in outcome.violations.iter().enumerate().take(5) {
        println!("  violation {}: {}", i + 1, v.invariant.describe());
        println!("    at simulated {} ms", v.at_ms);
        if let Some(nonce) = v.nonce {
            println!("    recording: utterance {nonce:016x}");
        }
        if let Some(owner) = &v.true_owner {
            println!("    true owner: {owner}");
        }
        if let Some(receiver) = &v.receiver {
            println!("    received by: {receiver}");
        }
        println!("    provenance: {}", v.detail);
    }
    if outcome.violations.len() > 5 {
        println!("  ... and {} more violations", outcome.violations.len() - 5);
    }
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

pub(super) fn print_sizes(shrunk: &Shrunk, seconds: f64) {
    println!(
        "shrunk in {} replays, {seconds:.1} s wall; still fails with {} first",
        shrunk.replays,
        shrunk.invariant.short()
    );
    println!("  before: {}", shrunk.before);
    println!("  after:  {}", shrunk.after);
}

pub(super) fn print_written(what: &str, result: Result<PathBuf, impl std::fmt::Display>) {
    match result {
        Ok(path) => println!("  {what} written: {}", path.display()),
        Err(e) => println!("  could not write the {what}: {e}"),
    }
}

pub(super) fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plan".to_string())
}

/// A progress line on stderr: rewritten in place on a terminal, one line
/// every 25 replays otherwise.
pub(super) fn progress_line() -> impl FnMut(&Progress) {
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

pub(super) fn finish_progress() {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}
