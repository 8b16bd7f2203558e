//! The `crosstalk` command: run scenarios over seed ranges, replay a seed or
//! a saved plan, hunt planted bugs, replay the regressions, and report.
//!
//! [`args`] is the command line as clap reads it; each subcommand has its
//! own file ([`run`], [`replay`], [`regressions`], [`hunt`], [`bench`],
//! [`plan`], [`merge`], [`shrink`]), and returns an exit code or a
//! [`CliError`], which [`main`] alone prints. `run`, `hunt` and
//! `regressions` run their seeds on the one parallel runner,
//! [`crate::runner`]. What they print is shared: [`banner`] (the seed and
//! everything it derived), [`failure`] (a failed run's report, the saved
//! plan, `--shrink` and `--report`), [`summary`] (totals and the summary's
//! lines) and [`verdict`] (the vacuity note, result files, the result line
//! and the exit code of `run` and `report merge`). The vacuity policy
//! itself is [`crate::vacuity`], the result files' format
//! [`crate::report`].
//!
//! Exit codes: 0 every seed passed; 1 an invariant was violated (or a run
//! was vacuous); 2 usage or infrastructure error; 3 nondeterminism detected.

mod args;
pub mod banner;
mod bench;
pub mod error;
pub mod failure;
mod hunt;
mod merge;
mod plan;
mod regressions;
mod replay;
mod run;
pub mod saved_plans;
mod shrink;
mod summary;
pub mod verdict;

use args::{Cli, Command, ReportCommand};
use clap::Parser;
use std::time::Instant;

pub use banner::banner;
pub use error::CliError;
pub use saved_plans::FAILURES_DIR;

pub const EXIT_PASS: i32 = 0;
pub const EXIT_VIOLATION: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_NONDETERMINISM: i32 = 3;

/// The wall clock, read only to report speed (seeds per second and the
/// like); nothing it returns ever reaches a simulation.
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_clock() -> Instant {
    Instant::now()
}

/// Parse `A..B` or `N`.
pub fn parse_seeds(text: &str) -> Result<std::ops::Range<u64>, CliError> {
    let bad = || CliError::Flag(format!("--seeds {text:?}: expected A..B or a single seed"));
    match text.split_once("..") {
        Some((a, b)) => {
            let a: u64 = a.trim().parse().map_err(|_| bad())?;
            let b: u64 = b.trim().parse().map_err(|_| bad())?;
            if a >= b {
                return Err(CliError::Flag(format!(
                    "--seeds {text:?}: the range is empty"
                )));
            }
            Ok(a..b)
        }
        None => {
            let n: u64 = text.trim().parse().map_err(|_| bad())?;
            Ok(n..n.checked_add(1).ok_or_else(bad)?)
        }
    }
}

/// Entry point; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_PASS
            };
            let _ = e.print();
            return code;
        }
    };
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            if e.is_bare() {
                eprintln!("{e}");
            } else {
                eprintln!("error: {e}");
            }
            EXIT_USAGE
        }
    }
}

/// Hand the command to its subcommand.
fn dispatch(command: Command) -> Result<i32, CliError> {
    match command {
        Command::Run(args) => run::command(args),
        Command::Report {
            action: ReportCommand::Merge(args),
        } => merge::command(&args),
        Command::Replay(args) => replay::command(args),
        Command::Shrink(args) => shrink::command(&args),
        Command::Hunt(args) => hunt::command(args),
        Command::Regressions(args) => regressions::command(&args),
        Command::Bench(args) => bench::command(&args),
        Command::Plan(args) => plan::command(&args),
    }
}
