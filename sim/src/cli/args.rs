//! The `crosstalk` command line as clap reads it: one `Args` struct per
//! subcommand, each handed whole to its subcommand's file. Nothing here runs
//! anything; defaults and conflicts between flags are declared, not checked
//! by hand.

use super::failure::FailureOptions;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "crosstalk",
    version,
    about = "Deterministic simulation of voice-recording services: no user ever gets another user's recordings."
)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub(super) enum Command {
    /// Run scenario files over a range of seeds.
    Run(RunArgs),
    /// Work with the results `run --json` wrote.
    Report {
        #[command(subcommand)]
        action: ReportCommand,
    },
    /// Measure speed: a scenario's seeds on one thread beside the raw turmoil
    /// HTTP round-trip rate, in one process, as ratios.
    Bench(BenchArgs),
    /// Print the plan a scenario and seed generate (JSON), e.g. to keep it as
    /// a regression or to edit it by hand before `replay --plan`.
    Plan(PlanArgs),
    /// Replay every saved regression in a directory, each twice: every one
    /// must pass and be deterministic.
    Regressions(RegressionsArgs),
    /// Plant a bug of the catalogue and run a scenario's seeds from 0 until
    /// the oracle catches it (needs a build with the planted-bugs feature:
    /// `cargo sim-planted hunt ...`).
    Hunt(HuntArgs),
    /// Replay one seed of a scenario, or a saved plan, exactly.
    Replay(ReplayArgs),
    /// Shrink a failing plan (a saved plan or a regression) to a minimal one
    /// that still fails with the same invariant; saved beside it as
    /// `<name>-shrunk.json`.
    Shrink(ShrinkArgs),
}

/// What `run` was asked for.
#[derive(clap::Args, Debug)]
pub(super) struct RunArgs {
    /// A scenario file, or a directory whose *.toml files are all run.
    pub path: PathBuf,
    /// Seeds to run: `A..B` (B excluded) or a single seed.
    #[arg(long, default_value = "0..10")]
    pub seeds: String,
    /// Instead of a range, run fresh seeds from --seed-base until this
    /// much wall time is spent (`30s`, `10m`, `8h`, `1h30m`); every
    /// scenario runs each seed.
    #[arg(long = "for", value_name = "DURATION", conflicts_with = "seeds")]
    pub budget: Option<String>,
    /// The first seed of a --for run.
    #[arg(long, default_value_t = 0, requires = "budget")]
    pub seed_base: u64,
    /// Run only shard I of N: the seeds s with s % N == I.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Write the machine-readable result here (see `report merge`).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML here (a test case per scenario and seed).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Run every seed twice and compare the trace hashes.
    #[arg(long)]
    pub check_determinism: bool,
    /// Print only failures and the summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Seeds run in parallel (default: the number of cores). Results are
    /// reported in seed order whatever finishes first.
    #[arg(long, short)]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub failure: FailureOptions,
}

#[derive(clap::Args, Debug)]
pub(super) struct BenchArgs {
    #[arg(long, default_value = "scenarios/smoke.toml")]
    pub scenario: PathBuf,
    #[arg(long, default_value = "0..10")]
    pub seeds: String,
    /// Baseline round trips to time.
    #[arg(long, default_value_t = 20_000)]
    pub round_trips: u64,
    /// Instead: how cost grows with the world. One seed of a copy of the
    /// scenario per size in --accounts, each in its own process (a clean
    /// peak memory), as a table of per-account costs.
    #[arg(long)]
    pub scale: bool,
    /// The sizes for --scale, smallest first.
    #[arg(long, default_value = "100,1000,5000", requires = "scale")]
    pub accounts: String,
    /// The seed each size of --scale runs.
    #[arg(long, default_value_t = 1, requires = "scale")]
    pub seed: u64,
    /// Run the sizes of --scale in this process (used by each child).
    #[arg(long, hide = true, requires = "scale")]
    pub in_process: bool,
}

#[derive(clap::Args, Debug)]
pub(super) struct PlanArgs {
    #[arg(long)]
    pub scenario: PathBuf,
    #[arg(long)]
    pub seed: u64,
    /// Wrap it as a regression with this one-line postmortem.
    #[arg(long)]
    pub postmortem: Option<String>,
}

#[derive(clap::Args, Debug)]
pub(super) struct RegressionsArgs {
    #[arg(default_value = "scenarios/regressions")]
    pub dir: PathBuf,
    /// Regressions replayed in parallel (default: the number of cores).
    #[arg(long, short)]
    pub jobs: Option<usize>,
}

#[derive(clap::Args, Debug)]
pub(super) struct HuntArgs {
    /// The bug to plant (see --list).
    #[arg(long, conflicts_with_all = ["all", "list"], required_unless_present_any = ["all", "list"])]
    pub plant: Option<String>,
    /// Hunt every bug of the catalogue, each in its default scenario, and
    /// check the budget (median within --median-budget seeds, none past
    /// --max-seeds).
    #[arg(long)]
    pub all: bool,
    /// List the catalogue.
    #[arg(long)]
    pub list: bool,
    /// Scenario file (default: the bug's own, see --list).
    #[arg(long, conflicts_with = "all")]
    pub scenario: Option<PathBuf>,
    #[arg(long, default_value_t = 200)]
    pub max_seeds: u64,
    #[arg(long, default_value_t = 20)]
    pub median_budget: u64,
    /// Go on past the first catch until this many seeds ran, to measure
    /// the share of seeds that catch each bug.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seeds run in parallel (default: the number of cores).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Write each caught bug's plan as a regression here
    /// (`planted-<bug>.json`).
    #[arg(long)]
    pub save_regressions: Option<PathBuf>,
    #[command(flatten)]
    pub failure: FailureOptions,
}

#[derive(clap::Args, Debug)]
pub(super) struct ReplayArgs {
    #[arg(
        long,
        required_unless_present_any = ["plan", "fuzz_artifact"],
        conflicts_with_all = ["plan", "fuzz_artifact"],
        requires = "seed"
    )]
    pub scenario: Option<PathBuf>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// A plan saved under target/crosstalk/failures/.
    #[arg(long, conflicts_with = "fuzz_artifact")]
    pub plan: Option<PathBuf>,
    /// A crashing input of the `plan` fuzz target (fuzz/artifacts/plan/…):
    /// it is turned into its plan, saved under target/crosstalk/failures/,
    /// and replayed.
    #[arg(long)]
    pub fuzz_artifact: Option<PathBuf>,
    /// Write the whole trace (every event, one per line) to this file.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Plant this bug of the catalogue (repeatable; needs a build with
    /// the planted-bugs feature).
    #[arg(long)]
    pub plant: Vec<String>,
    #[command(flatten)]
    pub failure: FailureOptions,
}

#[derive(clap::Args, Debug)]
pub(super) struct ShrinkArgs {
    #[arg(long)]
    pub plan: PathBuf,
    /// Plant this bug of the catalogue (repeatable; a regression's
    /// `catches` bug is planted without asking).
    #[arg(long)]
    pub plant: Vec<String>,
    /// Replays the shrink may use.
    #[arg(long, default_value_t = crate::shrink::DEFAULT_MAX_REPLAYS)]
    pub max_replays: u32,
    /// Write the HTML reports of the original and the shrunk run here.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(super) enum ReportCommand {
    /// Merge the `--json` results of shards into one summary, judged like a
    /// run (per-scenario vacuity, the same exit codes).
    Merge(MergeArgs),
}

#[derive(clap::Args, Debug)]
pub(super) struct MergeArgs {
    /// The shards' result files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Write the merged result here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the merged JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}
