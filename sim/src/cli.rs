//! The `crosstalk` command: run scenarios over seed ranges, replay a seed or
//! a saved plan, and report.
//!
//! Exit codes: 0 every seed passed; 1 an invariant was violated (or a run
//! was vacuous); 2 usage or infrastructure error; 3 nondeterminism detected.

use crate::check::Controls;
use crate::plan::Plan;
use crate::report::{RunReport, SeedRecord, Tally, result_line};
use crate::runner::{self, Flow, Progress};
use crate::scenario::{Scenario, scenario_files};
use crate::seeds::{Selection, Shard, parse_duration};
use crate::world::{RunOutcome, run_plan};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const EXIT_PASS: i32 = 0;
pub const EXIT_VIOLATION: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_NONDETERMINISM: i32 = 3;

/// Where failing plans are saved.
pub const FAILURES_DIR: &str = "target/crosstalk/failures";

#[derive(Parser, Debug)]
#[command(
    name = "crosstalk",
    version,
    about = "Deterministic simulation of voice-recording services: no user ever gets another user's recordings."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run scenario files over a range of seeds.
    Run(RunArgs),
    /// Work with the results `run --json` wrote.
    Report {
        #[command(subcommand)]
        action: ReportCommand,
    },
    /// Measure speed: a scenario's seeds on one thread beside the raw turmoil
    /// HTTP round-trip rate, in one process, as ratios.
    Bench {
        #[arg(long, default_value = "scenarios/smoke.toml")]
        scenario: PathBuf,
        #[arg(long, default_value = "0..10")]
        seeds: String,
        /// Baseline round trips to time.
        #[arg(long, default_value_t = 20_000)]
        round_trips: u64,
        /// Instead: how cost grows with the world. One seed of a copy of the
        /// scenario per size in --accounts, each in its own process (a clean
        /// peak memory), as a table of per-account costs.
        #[arg(long)]
        scale: bool,
        /// The sizes for --scale, smallest first.
        #[arg(long, default_value = "100,1000,5000", requires = "scale")]
        accounts: String,
        /// The seed each size of --scale runs.
        #[arg(long, default_value_t = 1, requires = "scale")]
        seed: u64,
        /// Run the sizes of --scale in this process (used by each child).
        #[arg(long, hide = true, requires = "scale")]
        in_process: bool,
    },
    /// Print the plan a scenario and seed generate (JSON), e.g. to keep it as
    /// a regression or to edit it by hand before `replay --plan`.
    Plan {
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long)]
        seed: u64,
        /// Wrap it as a regression with this one-line postmortem.
        #[arg(long)]
        postmortem: Option<String>,
    },
    /// Replay every saved regression in a directory, each twice: every one
    /// must pass and be deterministic.
    Regressions {
        #[arg(default_value = "scenarios/regressions")]
        dir: PathBuf,
        /// Regressions replayed in parallel (default: the number of cores).
        #[arg(long, short)]
        jobs: Option<usize>,
    },
    /// Plant a bug of the catalogue and run a scenario's seeds from 0 until
    /// the oracle catches it (needs a build with the planted-bugs feature:
    /// `cargo sim-planted hunt ...`).
    Hunt {
        /// The bug to plant (see --list).
        #[arg(long, conflicts_with_all = ["all", "list"], required_unless_present_any = ["all", "list"])]
        plant: Option<String>,
        /// Hunt every bug of the catalogue, each in its default scenario, and
        /// check the budget (median within --median-budget seeds, none past
        /// --max-seeds).
        #[arg(long)]
        all: bool,
        /// List the catalogue.
        #[arg(long)]
        list: bool,
        /// Scenario file (default: the bug's own, see --list).
        #[arg(long, conflicts_with = "all")]
        scenario: Option<PathBuf>,
        #[arg(long, default_value_t = 200)]
        max_seeds: u64,
        #[arg(long, default_value_t = 20)]
        median_budget: u64,
        /// Go on past the first catch until this many seeds ran, to measure
        /// the share of seeds that catch each bug.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Seeds run in parallel (default: the number of cores).
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Write each caught bug's plan as a regression here
        /// (`planted-<bug>.json`).
        #[arg(long)]
        save_regressions: Option<PathBuf>,
        #[command(flatten)]
        failure: crate::failure::FailureOptions,
    },
    /// Replay one seed of a scenario, or a saved plan, exactly.
    Replay {
        #[arg(
            long,
            required_unless_present_any = ["plan", "fuzz_artifact"],
            conflicts_with_all = ["plan", "fuzz_artifact"],
            requires = "seed"
        )]
        scenario: Option<PathBuf>,
        #[arg(long)]
        seed: Option<u64>,
        /// A plan saved under target/crosstalk/failures/.
        #[arg(long, conflicts_with = "fuzz_artifact")]
        plan: Option<PathBuf>,
        /// A crashing input of the `plan` fuzz target (fuzz/artifacts/plan/…):
        /// it is turned into its plan, saved under target/crosstalk/failures/,
        /// and replayed.
        #[arg(long)]
        fuzz_artifact: Option<PathBuf>,
        /// Write the whole trace (every event, one per line) to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Plant this bug of the catalogue (repeatable; needs a build with
        /// the planted-bugs feature).
        #[arg(long)]
        plant: Vec<String>,
        #[command(flatten)]
        failure: crate::failure::FailureOptions,
    },
    /// Shrink a failing plan (a saved plan or a regression) to a minimal one
    /// that still fails with the same invariant; saved beside it as
    /// `<name>-shrunk.json`.
    Shrink {
        #[arg(long)]
        plan: PathBuf,
        /// Plant this bug of the catalogue (repeatable; a regression's
        /// `catches` bug is planted without asking).
        #[arg(long)]
        plant: Vec<String>,
        /// Replays the shrink may use.
        #[arg(long, default_value_t = crate::shrink::DEFAULT_MAX_REPLAYS)]
        max_replays: u32,
        /// Write the HTML reports of the original and the shrunk run here.
        #[arg(long, value_name = "DIR")]
        report: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum ReportCommand {
    /// Merge the `--json` results of shards into one summary, judged like a
    /// run (per-scenario vacuity, the same exit codes).
    Merge {
        /// The shards' result files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write the merged result here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write the merged JUnit XML here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
}

/// The wall clock, read only to report speed (seeds per second and the
/// like); nothing it returns ever reaches a simulation.
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_clock() -> Instant {
    Instant::now()
}

/// Parse `A..B` or `N`.
pub fn parse_seeds(text: &str) -> Result<std::ops::Range<u64>, String> {
    let bad = || format!("--seeds {text:?}: expected A..B or a single seed");
    match text.split_once("..") {
        Some((a, b)) => {
            let a: u64 = a.trim().parse().map_err(|_| bad())?;
            let b: u64 = b.trim().parse().map_err(|_| bad())?;
            if a >= b {
                return Err(format!("--seeds {text:?}: the range is empty"));
            }
            Ok(a..b)
        }
        None => {
            let n: u64 = text.trim().parse().map_err(|_| bad())?;
            Ok(n..n.checked_add(1).ok_or_else(bad)?)
        }
    }
}

/// The seed banner: the seed and everything it derived.
pub fn banner(plan: &Plan) -> String {
    if let Some(threads) = &plan.threads {
        let planted = if plan.planted.is_empty() {
            String::new()
        } else {
            format!("; PLANTED BUGS: {}", plan.planted.join(", "))
        };
        return format!(
            "seed {} [{}]: {}{planted}",
            plan.seed,
            plan.scenario,
            threads.describe()
        );
    }
    let devices: u64 = plan.accounts.iter().map(|a| a.devices as u64).sum();
    let actions: Vec<String> = plan
        .action_counts()
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    format!(
        "seed {} [{}]: {} accounts, {} devices, {} client hosts; actions: {}; tick {} ms, latency {}..{} ms, active {} s, drain {} s{}",
        plan.seed,
        plan.scenario,
        plan.accounts.len(),
        devices,
        plan.client_hosts,
        actions.join(", "),
        plan.tick_ms,
        plan.latency_ms_min,
        plan.latency_ms_max,
        plan.active_ms / 1000,
        plan.drain_ms / 1000,
        if plan.canary_leak_into_archives {
            "; CANARY: archives leak on purpose"
        } else {
            ""
        },
    ) + &if plan.planted.is_empty() {
        String::new()
    } else {
        format!("; PLANTED BUGS: {}", plan.planted.join(", "))
    } + &if plan.swarm_off.is_empty() {
        String::new()
    } else {
        format!("; swarm off: {}", plan.swarm_off.join(", "))
    } + &{
        let mut crashes: Vec<String> = plan
            .crashes
            .iter()
            .map(|c| format!("{}@{}s", c.host, c.at_ms / 1000))
            .collect();
        crashes.dedup();
        if crashes.is_empty() {
            String::new()
        } else {
            format!("; crashes: {}", crashes.join(" "))
        }
    }
}

fn save_plan(plan: &Plan) -> Result<PathBuf, String> {
    save_plan_as(plan, &format!("{}-{}.json", plan.scenario, plan.seed))
}

fn save_plan_as(plan: &Plan, name: &str) -> Result<PathBuf, String> {
    std::fs::create_dir_all(FAILURES_DIR).map_err(|e| format!("creating {FAILURES_DIR}: {e}"))?;
    let path = Path::new(FAILURES_DIR).join(name);
    let json = serde_json::to_string_pretty(plan).map_err(|e| e.to_string())?;
    std::fs::write(&path, json).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// Print a failed run: the invariant, the leaked item's provenance, the
/// seed and the exact replay commands.
fn report_failure(
    outcome: &RunOutcome,
    plan: &Plan,
    replay: &str,
    failure: &crate::failure::FailureOptions,
) {
    println!("FAIL seed {} [{}]", outcome.seed, plan.scenario);
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
    crate::failure::after_failure(failure, plan, outcome, saved.as_deref().ok());
}

#[derive(Default)]
struct Totals {
    seeds: u64,
    passed: u64,
    failed: u64,
    nondeterministic: u64,
    infra: u64,
    controls: Controls,
    simulated_ms: u64,
    sut_requests: u64,
    runs: u64,
    disk: crate::faults::disk::DiskStats,
}

impl Totals {
    /// Count one run's cost (every run, including determinism re-runs).
    fn record(&mut self, outcome: &RunOutcome) {
        self.runs += 1;
        self.simulated_ms += outcome.simulated_ms;
        self.sut_requests += outcome.sut_requests;
    }

    /// Count one seed's evidence (once per seed, like the positive controls).
    fn evidence(&mut self, outcome: &RunOutcome) {
        self.seeds += 1;
        self.controls.add(&outcome.controls);
        for d in [&outcome.store_disk, &outcome.export_disk] {
            self.disk.crashes += d.crashes;
            self.disk.unsynced_writes_lost += d.unsynced_writes_lost;
            self.disk.unsynced_writes_kept += d.unsynced_writes_kept;
            self.disk.torn_writes += d.torn_writes;
            self.disk.io_errors_injected += d.io_errors_injected;
            self.disk.syncs += d.syncs;
        }
    }
}

fn print_summary(totals: &Totals, wall_seconds: f64) {
    let c = &totals.controls;
    let wall = wall_seconds.max(1e-9);
    println!("== summary ==");
    println!(
        "seeds run {}, passed {}, failed {}{}{}",
        totals.seeds,
        totals.passed,
        totals.failed,
        if totals.nondeterministic > 0 {
            format!(", NONDETERMINISTIC {}", totals.nondeterministic)
        } else {
            String::new()
        },
        if totals.infra > 0 {
            format!(", infrastructure errors {}", totals.infra)
        } else {
            String::new()
        },
    );
    println!(
        "positive controls: exports completed {} of {} requested; recordings delivered and judged {} (history {}, playback {}, in archives {}); uploads acknowledged {}; racy recordings allowed {}",
        c.exports_completed,
        c.exports_requested,
        c.recordings_delivered,
        c.history_items_checked,
        c.own_audio_checked,
        c.archive_recordings_checked,
        c.utterances_uploaded,
        c.racy_recordings_allowed,
    );
    if c.requests_raced > 0 || c.quiescent_probes > 0 {
        println!(
            "real threads: playbacks that raced a deletion of the same recording {}, quiescent probes {} (the seed fixes the workload, the OS the interleaving)",
            c.requests_raced, c.quiescent_probes
        );
    }
    println!(
        "foreign downloads: forwarded links refused {} of {} attempted, anonymous link uses refused {}; guessed recording ids refused {} of {} attempted",
        c.foreign_link_refused,
        c.foreign_link_attempts,
        c.anonymous_link_refused,
        c.guessed_audio_refused,
        c.guessed_audio_attempts,
    );
    println!(
        "durability: store crashes {} (unsynced writes lost {}, torn {}, on the store's and the export's disks), disk I/O errors {}, uploads buffered while the store was down {}; final audits {}: acknowledged recordings found again {}, deletions acknowledged {} and verified gone {}",
        c.store_crashes,
        totals.disk.unsynced_writes_lost,
        totals.disk.torn_writes,
        totals.disk.io_errors_injected,
        c.uploads_buffered,
        c.audits_completed,
        c.recordings_verified_durable,
        c.deletions_acknowledged,
        c.deletions_verified,
    );
    println!(
        "devices: transferred {} (captures uploaded after their device changed hands {}), factory resets {}; messages: delivered {}, refused by their sender {}, inbox items checked {}",
        c.devices_transferred,
        c.pre_transfer_uploads,
        c.device_resets,
        c.messages_delivered,
        c.messages_refused_by_sender,
        c.inbox_items_checked,
    );
    println!(
        "broadcasts: captures {}, their orders suppressed {}, their messages suppressed {}; genuine spoken orders placed {}, spoken messages delivered {}; housemates' voices captured {}; accounts closed {}, emails signed up again {}",
        c.broadcast_captures,
        c.broadcast_orders_suppressed,
        c.broadcast_messages_suppressed,
        c.genuine_orders_placed,
        c.spoken_messages_delivered,
        c.housemate_captures,
        c.accounts_closed,
        c.accounts_recycled,
    );
    println!(
        "export pipeline: tickets verified {}, impersonation codes refused {}, duplicate requests joined {}, rate-limited {}, archives revoked after a deletion {}, downloads refused past the limit {}, notified links followed {}; export crashes {}, worker crashes {}, network faults {}, fault points fired inside the services {}",
        c.tickets_verified,
        c.impersonation_codes_refused,
        c.duplicate_requests_joined,
        c.exports_rate_limited,
        c.archives_revoked,
        c.download_limit_refusals,
        c.notified_links_followed,
        c.export_crashes,
        c.worker_crashes,
        c.net_faults,
        c.sut_faults_fired,
    );
    println!(
        "export limits: successful downloads judged against the link's limits {}, refusals (410) judged for a cause {}: downloads refused past limit {}, downloads refused after expiry {}; archive entries judged whole {}; own devices' resets answered 404 judged {}",
        c.downloads_judged_against_limits,
        c.gone_answers_judged,
        c.downloads_refused_past_limit,
        c.downloads_refused_after_expiry,
        c.archive_entries_judged_whole,
        c.refusals_of_own_things_judged,
    );
    println!(
        "api contract: replies judged {}, server errors excused by a fault near them {}, runs with the panic hook {}; deletion answers judged {} (ids of uploads still in flight {}); foreign-access statuses judged {}; service state digests {}",
        c.api_replies_judged,
        c.server_errors_excused,
        c.panic_hooks_installed,
        c.deletion_answers_judged,
        c.deleted_ids_unknown_owner,
        c.foreign_statuses_judged,
        c.state_digests_taken,
    );
    println!(
        "support agent: actions {}, mistakes injected {} (all contained unless a violation says otherwise), manual identity proofs refused {}, archives attached to a resend refused {}",
        c.agent_actions,
        c.agent_errors_injected,
        c.manual_verifications_refused,
        c.archive_attachments_refused,
    );
    println!("{}", c.probe_summary());
    println!(
        "speed: {} runs in {:.2} s wall = {:.2} seeds/s; {:.0} simulated s = {:.1}x wall; {} SUT HTTP requests = {:.0} requests/s",
        totals.runs,
        wall_seconds,
        totals.seeds as f64 / wall,
        totals.simulated_ms as f64 / 1000.0,
        totals.simulated_ms as f64 / 1000.0 / wall,
        totals.sut_requests,
        totals.sut_requests as f64 / wall,
    );
}

/// What `run` was asked for.
#[derive(clap::Args, Debug)]
struct RunArgs {
    /// A scenario file, or a directory whose *.toml files are all run.
    path: PathBuf,
    /// Seeds to run: `A..B` (B excluded) or a single seed.
    #[arg(long, default_value = "0..10")]
    seeds: String,
    /// Instead of a range, run fresh seeds from --seed-base until this
    /// much wall time is spent (`30s`, `10m`, `8h`, `1h30m`); every
    /// scenario runs each seed.
    #[arg(long = "for", value_name = "DURATION", conflicts_with = "seeds")]
    budget: Option<String>,
    /// The first seed of a --for run.
    #[arg(long, default_value_t = 0, requires = "budget")]
    seed_base: u64,
    /// Run only shard I of N: the seeds s with s % N == I.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Write the machine-readable result here (see `report merge`).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write JUnit XML here (a test case per scenario and seed).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Run every seed twice and compare the trace hashes.
    #[arg(long)]
    check_determinism: bool,
    /// Print only failures and the summary.
    #[arg(long, short)]
    quiet: bool,
    /// Seeds run in parallel (default: the number of cores). Results are
    /// reported in seed order whatever finishes first.
    #[arg(long, short)]
    jobs: Option<usize>,
    #[command(flatten)]
    failure: crate::failure::FailureOptions,
}

/// The run's scenario files, their scenarios and the seeds to run.
fn prepare_run(args: &RunArgs) -> Result<(Vec<PathBuf>, Vec<Scenario>, Selection), String> {
    let shard = match &args.shard {
        Some(text) => Shard::parse(text)?,
        None => Shard::ALL,
    };
    let files = scenario_files(&args.path)?;
    let scenarios = files
        .iter()
        .map(|f| Scenario::load(f))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, s) in scenarios.iter().enumerate() {
        if scenarios[..i].iter().any(|t| t.name == s.name) {
            return Err(format!("two scenario files are named {:?}", s.name));
        }
    }
    let selection = match &args.budget {
        Some(text) => Selection::Budget {
            budget: parse_duration(text)?,
            text: text.clone(),
            base: args.seed_base,
            shard,
            scenarios: scenarios.len(),
        },
        None => {
            let caps: Vec<Option<u64>> = scenarios.iter().map(|s| s.max_seeds).collect();
            Selection::range_capped(parse_seeds(&args.seeds)?, shard, &caps)
        }
    };
    Ok((files, scenarios, selection))
}

fn run_command(args: RunArgs) -> i32 {
    let (files, scenarios, selection) = match prepare_run(&args) {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let (check_determinism, quiet) = (args.check_determinism, args.quiet);
    let jobs = runner::default_jobs(args.jobs);
    println!(
        "crosstalk run: {} scenario(s) [{}], {}, determinism check {}, {jobs} job(s)",
        files.len(),
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        selection.describe(),
        if check_determinism {
            "on (every seed runs twice)"
        } else {
            "off"
        },
    );
    if check_determinism && scenarios.iter().any(|s| !s.harness.is_sim()) {
        println!(
            "  (threads scenarios run under real parallelism: their check compares only the plan hash, not what happened)"
        );
    }
    let mut totals = Totals::default();
    let mut probe_tally = crate::probe_gate::ProbeTally::default();
    let mut harness_failures = Vec::new();
    let (mut tally, mut records) = (Tally::default(), Vec::new());
    let keep_records = args.json.is_some() || args.junit.is_some();
    let started = wall_clock();
    let progress = match &selection {
        Selection::Range { pairs, .. } => Progress::Bounded(pairs.len() as u64),
        Selection::Budget { .. } => Progress::Open,
    };
    let budget = selection.budget();
    runner::run_ordered(
        jobs,
        progress,
        |index| selection.pair(index),
        || budget.is_none_or(|b| started.elapsed() < b),
        |&(file, seed)| {
            let plan = Plan::generate(&scenarios[file], seed);
            let runs = crate::guard::run_guarded(&plan).and_then(|outcome| {
                let again = check_determinism
                    .then(|| crate::guard::run_guarded(&plan))
                    .transpose()?;
                Ok((outcome, again))
            });
            (plan, runs)
        },
        |_, (file, _), (plan, runs)| {
            let (outcome, again) = match runs {
                Ok(runs) => runs,
                Err(failure) => {
                    // The harness itself failed: stop taking seeds.
                    harness_failures.push(failure);
                    return Flow::Stop;
                }
            };
            let seed = plan.seed;
            if !quiet {
                println!("{}", banner(&plan));
            }
            totals.record(&outcome);
            totals.evidence(&outcome);
            if scenarios[file].max_seeds.is_some() {
                // A capped world's few seeds count its probe hits but do not
                // hold the gate back for the other scenarios.
                probe_tally.record_hits(&outcome.probes);
            } else {
                probe_tally.record(&plan.scenario, &outcome.probes);
            }
            let replay = format!(
                "cargo sim replay --scenario {} --seed {seed}",
                files[file].display()
            );
            let mut nondeterministic = false;
            if let Some(again) = &again {
                totals.record(again);
                if again.trace_hash != outcome.trace_hash {
                    nondeterministic = true;
                    println!(
                        "NONDETERMINISM seed {seed} [{}]: trace {} ({} events) then {} ({} events); replay: {replay}",
                        plan.scenario,
                        outcome.trace_hash,
                        outcome.trace_events,
                        again.trace_hash,
                        again.trace_events
                    );
                    if let Some((index, first, second)) =
                        crate::trace::first_divergence(&outcome.trace_lines, &again.trace_lines)
                    {
                        println!("  first divergence at event {index}:");
                        println!("    first run:  {first}");
                        println!("    second run: {second}");
                        if index > 0 {
                            println!("    after:      {}", outcome.trace_lines[index - 1]);
                        }
                    }
                }
            }
            if nondeterministic {
                totals.nondeterministic += 1;
            }
            if outcome.passed() {
                if !nondeterministic {
                    totals.passed += 1;
                }
                if !quiet && plan.threads.is_some() {
                    println!(
                        "  ok: plan {} ({} racing operations; real threads: the interleaving is the OS's, no trace to compare), {} SUT requests",
                        &outcome.trace_hash[..16],
                        outcome.trace_events,
                        outcome.sut_requests
                    );
                } else if !quiet {
                    println!(
                        "  ok: trace {} ({} events), {:.1} simulated s, {} SUT requests",
                        &outcome.trace_hash[..16],
                        outcome.trace_events,
                        outcome.simulated_ms as f64 / 1000.0,
                        outcome.sut_requests
                    );
                }
            } else {
                totals.failed += 1;
                if !outcome.infra_errors.is_empty() && outcome.violations.is_empty() {
                    totals.infra += 1;
                }
                if quiet {
                    println!("{}", banner(&plan));
                }
                report_failure(&outcome, &plan, &replay, &args.failure);
            }
            let record = SeedRecord::of(&plan.scenario, &outcome, again.as_ref(), replay);
            tally.add(&record);
            let failed = record.verdict != "pass";
            if keep_records {
                records.push(record);
            }
            Flow::Continue { failed }
        },
    );
    if !harness_failures.is_empty() {
        for failure in harness_failures {
            eprintln!("{failure}");
        }
        return EXIT_USAGE;
    }
    print_summary(&totals, started.elapsed().as_secs_f64());
    let probes = crate::probe_gate::finish_run(&args.path, &probe_tally);
    let shards = match selection.shard() {
        Shard::ALL => Vec::new(),
        shard => vec![shard.describe()],
    };
    let result = RunReport::from_tally(&scenarios, &tally, records, shards);
    finish_run(
        &result,
        args.json.as_deref(),
        args.junit.as_deref(),
        probes.err(),
    )
}

/// Print the vacuity note and the result line, write the result files, and
/// return the exit code (a file that cannot be written is an error).
/// `probe_failure`: the code-probe gate's verdict when it failed (a run that
/// otherwise passed then fails with it).
pub(crate) fn finish_run(
    result: &RunReport,
    json: Option<&Path>,
    junit: Option<&Path>,
    probe_failure: Option<String>,
) -> i32 {
    let vacuity = result.vacuity();
    if let Some(note) = vacuity.note() {
        println!("{note}");
    }
    let mut code = result.exit_code;
    for (path, write) in [
        (
            json,
            RunReport::write_json as fn(&RunReport, &Path) -> Result<(), String>,
        ),
        (junit, crate::report::write_junit),
    ] {
        if let Some(path) = path {
            match write(result, path) {
                Ok(()) => println!("written: {}", path.display()),
                Err(e) => {
                    eprintln!("error: {e}");
                    code = code.max(EXIT_USAGE);
                }
            }
        }
    }
    match probe_failure {
        Some(failure) if code == EXIT_PASS => {
            println!("result: {failure}");
            EXIT_VIOLATION
        }
        _ => {
            println!("{}", result_line(&result.counts, &vacuity));
            code
        }
    }
}

/// `replay --fuzz-artifact`: decode a `plan` fuzz input into its plan,
/// save the plan, and replay it like any saved plan.
fn fuzz_artifact_command(
    artifact: &Path,
    plant: Vec<String>,
    trace: Option<PathBuf>,
    failure: &crate::failure::FailureOptions,
) -> i32 {
    let bytes = match std::fs::read(artifact) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("error: reading {}: {e}", artifact.display());
            return EXIT_USAGE;
        }
    };
    let plan = match crate::fuzzing::plan::plan_from_bytes(
        &bytes,
        crosstalk_service::Planted::AVAILABLE,
    ) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
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
    let saved = match save_plan_as(&plan, &format!("fuzz-{name}.json")) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
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
    replay_command(None, None, Some(saved), plant, trace, failure)
}

fn replay_command(
    scenario: Option<PathBuf>,
    seed: Option<u64>,
    plan_path: Option<PathBuf>,
    plant: Vec<String>,
    trace: Option<PathBuf>,
    failure: &crate::failure::FailureOptions,
) -> i32 {
    let (mut plan, mut replay) = match (scenario, seed, plan_path) {
        (_, _, Some(path)) => {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: reading {}: {e}", path.display());
                    return EXIT_USAGE;
                }
            };
            match crate::plan::load_plan_file(&text) {
                Ok((plan, postmortem)) => {
                    if let Some(postmortem) = postmortem {
                        println!("regression: {postmortem}");
                    }
                    (plan, format!("cargo sim replay --plan {}", path.display()))
                }
                Err(e) => {
                    eprintln!("error: {} is not a plan: {e}", path.display());
                    return EXIT_USAGE;
                }
            }
        }
        (Some(file), Some(seed), None) => match Scenario::load(&file) {
            Ok(s) => (
                Plan::generate(&s, seed),
                format!(
                    "cargo sim replay --scenario {} --seed {seed}",
                    file.display()
                ),
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        },
        _ => {
            eprintln!("error: replay needs --scenario FILE --seed N, or --plan FILE");
            return EXIT_USAGE;
        }
    };
    for name in &plant {
        if let Err(e) = name.parse::<crosstalk_service::Bug>() {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
        if !plan.planted.contains(name) {
            plan.planted.push(name.clone());
            replay.push_str(&format!(" --plant {name}"));
        }
    }
    if !plan.planted.is_empty()
        && let Err(e) = crate::hunt::require_planted_build()
    {
        eprintln!("error: the plan plants {}; {e}", plan.planted.join(", "));
        return EXIT_USAGE;
    }
    println!("crosstalk replay");
    println!("{}", banner(&plan));
    let started = wall_clock();
    let outcome = match crate::guard::run_guarded(&plan) {
        Ok(outcome) => outcome,
        Err(failure) => {
            eprintln!("{failure}");
            return EXIT_USAGE;
        }
    };
    if let Some(path) = &trace {
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
    let mut totals = Totals::default();
    totals.record(&outcome);
    totals.evidence(&outcome);
    println!(
        "trace hash {} ({} events)",
        outcome.trace_hash, outcome.trace_events
    );
    if outcome.passed() {
        totals.passed = 1;
        print_summary(&totals, started.elapsed().as_secs_f64());
        println!("result: PASS");
        EXIT_PASS
    } else {
        totals.failed = 1;
        report_failure(&outcome, &plan, &replay, failure);
        print_summary(&totals, started.elapsed().as_secs_f64());
        if outcome.violations.is_empty() {
            println!("result: ERROR");
            EXIT_USAGE
        } else {
            println!("result: FAIL");
            EXIT_VIOLATION
        }
    }
}

fn bench_command(path: &Path, seeds: &str, round_trips: u64) -> i32 {
    let (seeds, scenario) = match (parse_seeds(seeds), Scenario::load(path)) {
        (Ok(seeds), Ok(scenario)) => (seeds, scenario),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    println!(
        "crosstalk bench: {} seeds {}..{} on one thread, then {round_trips} baseline round trips",
        scenario.name, seeds.start, seeds.end
    );
    let started = wall_clock();
    let (mut runs, mut simulated_ms, mut requests, mut failed) = (0u64, 0u64, 0u64, 0u64);
    for seed in seeds {
        let outcome = run_plan(&Plan::generate(&scenario, seed));
        runs += 1;
        simulated_ms += outcome.simulated_ms;
        requests += outcome.sut_requests;
        failed += u64::from(!outcome.passed());
    }
    let world_s = started.elapsed().as_secs_f64().max(1e-9);
    let started = wall_clock();
    let completed = crate::bench::baseline_round_trips(round_trips);
    let baseline_s = started.elapsed().as_secs_f64().max(1e-9);
    let world_rps = requests as f64 / world_s;
    let baseline_rps = completed as f64 / baseline_s;
    println!(
        "world:    {runs} seeds in {world_s:.2} s = {:.2} seeds/s; {:.0} simulated s = {:.1}x wall; {requests} SUT HTTP requests = {world_rps:.0} requests/s",
        runs as f64 / world_s,
        simulated_ms as f64 / 1000.0,
        simulated_ms as f64 / 1000.0 / world_s
    );
    println!(
        "baseline: {completed} turmoil HTTP keep-alive round trips (zero latency, 1 ms tick) in {baseline_s:.2} s = {baseline_rps:.0} round trips/s"
    );
    println!(
        "ratio:    the full world serves {:.3} of raw turmoil HTTP throughput ({:.1}x slower per request)",
        world_rps / baseline_rps.max(1e-9),
        baseline_rps / world_rps.max(1e-9)
    );
    if failed > 0 || completed < round_trips {
        println!("result: ERROR ({failed} seeds failed, {completed} of {round_trips} round trips)");
        return EXIT_USAGE;
    }
    EXIT_PASS
}

struct HuntArgs {
    plant: Option<String>,
    all: bool,
    list: bool,
    scenario: Option<PathBuf>,
    max_seeds: u64,
    median_budget: u64,
    rate: u64,
    jobs: usize,
    save_regressions: Option<PathBuf>,
    failure: crate::failure::FailureOptions,
}

fn scenario_path_for(bug: crosstalk_service::Bug) -> PathBuf {
    PathBuf::from(format!(
        "scenarios/{}.toml",
        crate::hunt::default_scenario(bug)
    ))
}

fn hunt_command(args: HuntArgs) -> i32 {
    use crate::hunt;
    use crosstalk_service::Bug;
    if args.list {
        for bug in Bug::ALL {
            println!(
                "{:<26} {:<32} [{}] {}",
                bug.name(),
                bug.incident(),
                hunt::default_scenario(bug),
                bug.defect()
            );
        }
        return EXIT_PASS;
    }
    if let Err(e) = hunt::require_planted_build() {
        eprintln!("error: {e}");
        return EXIT_USAGE;
    }
    let targets: Vec<(Bug, PathBuf)> = if args.all {
        Bug::ALL
            .into_iter()
            .map(|b| (b, scenario_path_for(b)))
            .collect()
    } else {
        let name = args.plant.clone().unwrap_or_default();
        match name.parse::<Bug>() {
            Ok(bug) => vec![(
                bug,
                args.scenario
                    .clone()
                    .unwrap_or_else(|| scenario_path_for(bug)),
            )],
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        }
    };
    println!(
        "crosstalk hunt: {} planted bug(s), up to {} seeds each, {} job(s)",
        targets.len(),
        args.max_seeds,
        args.jobs
    );
    let started = wall_clock();
    let mut hunts = Vec::new();
    for (bug, path) in targets {
        let found = hunt::hunt(bug, &path, args.max_seeds, args.rate, args.jobs, || {
            started.elapsed().as_secs_f64()
        });
        let found = match found {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        };
        match &found.caught {
            Some((seed, outcome)) => {
                println!(
                    "caught   {:<26} in {:>3} seed(s), {:>6.1} s, by {} ({}): seed {seed}; {} of {} seeds run catch it",
                    bug.name(),
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
                hunt_after_failure(&args.failure, &path, bug, *seed, outcome);
            }
            None => println!(
                "MISSED   {:<26} in {} seed(s), {:.1} s ({}){}",
                bug.name(),
                found.seeds_run,
                found.wall_seconds,
                path.display(),
                if found.errors > 0 {
                    format!("; {} seed(s) ended in infrastructure errors", found.errors)
                } else {
                    String::new()
                }
            ),
        }
        if let Some(dir) = &args.save_regressions
            && let Some(regression) = hunt::regression_for(&found)
        {
            let file = dir.join(format!("planted-{}.json", bug.name()));
            let written = std::fs::create_dir_all(dir)
                .map_err(|e| e.to_string())
                .and_then(|()| serde_json::to_string_pretty(&regression).map_err(|e| e.to_string()))
                .and_then(|json| std::fs::write(&file, json + "\n").map_err(|e| e.to_string()));
            match written {
                Ok(()) => println!("         regression saved: {}", file.display()),
                Err(e) => {
                    eprintln!("error: writing {}: {e}", file.display());
                    return EXIT_USAGE;
                }
            }
        }
        hunts.push(found);
    }
    println!();
    println!("{}", hunt::TABLE_HEADER);
    for h in &hunts {
        println!("{}", hunt::table_row(h));
    }
    let caught = hunts.iter().filter(|h| h.caught.is_some()).count();
    let median = hunt::median_seeds(&hunts);
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
        "caught {caught} of {}; seeds to detect: median {}, worst {}; budget: median <= {}, none above {}; {:.1} s wall",
        hunts.len(),
        shown(median),
        shown(worst),
        args.median_budget,
        args.max_seeds,
        started.elapsed().as_secs_f64()
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
    failure: &crate::failure::FailureOptions,
    scenario: &Path,
    bug: crosstalk_service::Bug,
    seed: u64,
    outcome: &RunOutcome,
) {
    if !failure.shrink && failure.report.is_none() {
        return;
    }
    let plan = match Scenario::load(scenario) {
        Ok(s) => crate::hunt::planted_plan(&s, seed, bug),
        Err(e) => return println!("         could not load {}: {e}", scenario.display()),
    };
    let saved = save_plan_as(&plan, &format!("planted-{}-{seed}.json", bug.name()));
    if let Ok(path) = &saved {
        println!("         plan saved: {}", path.display());
    }
    crate::failure::after_failure(failure, &plan, outcome, saved.as_deref().ok());
}

/// Every saved regression of `dir`, in name order, read and parsed.
fn load_regressions(dir: &Path) -> Result<Vec<(PathBuf, crate::plan::Regression)>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{} holds no regression (*.json)", dir.display()));
    }
    files
        .into_iter()
        .map(|file| {
            std::fs::read_to_string(&file)
                .map_err(|e| e.to_string())
                .and_then(|t| crate::plan::load_regression_file(&t))
                .map(|r| (file.clone(), r))
                .map_err(|e| format!("{}: {e}", file.display()))
        })
        .collect()
}

/// A regression's runs: twice as saved, and once with its bug planted (when
/// it names one and this build can plant it).
fn replay_regression(
    regression: &crate::plan::Regression,
) -> (RunOutcome, RunOutcome, Option<RunOutcome>) {
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

fn regressions_command(dir: &Path, jobs: usize) -> i32 {
    let regressions = match load_regressions(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    println!(
        "crosstalk regressions: {} saved failure(s) in {}",
        regressions.len(),
        dir.display()
    );
    let (mut failed, mut nondeterministic) = (0, 0);
    runner::run_ordered(
        jobs,
        Progress::Hidden,
        |i| regressions.get(usize::try_from(i).ok()?),
        || true,
        |(_, regression)| replay_regression(regression),
        |_, (file, regression), (first, second, planted)| {
            let verdict = if first.trace_hash != second.trace_hash {
                nondeterministic += 1;
                "NONDETERMINISTIC"
            } else if !first.passed() {
                failed += 1;
                "FAIL"
            } else {
                "ok"
            };
            println!(
                "{verdict:>16}  {}  ({})",
                file.display(),
                regression.postmortem
            );
            if verdict == "FAIL" {
                report_failure(
                    &first,
                    &regression.plan,
                    &format!("cargo sim replay --plan {}", file.display()),
                    &crate::failure::FailureOptions::default(),
                );
            }
            // A plan kept for a planted bug must also fail with the bug planted.
            if let Some(bug) = &regression.catches {
                match planted {
                    None => println!(
                        "{:>16}  with {bug} planted: needs the planted-bugs build (cargo sim-planted regressions)",
                        "skipped"
                    ),
                    Some(outcome) if outcome.violations.is_empty() => {
                        failed += 1;
                        println!(
                            "{:>16}  with {bug} planted: NOT caught (the plan no longer sees the bug)",
                            "FAIL"
                        );
                    }
                    Some(outcome) => {
                        let first = outcome.violations[0].invariant.short();
                        let pinned = regression.caught_by.as_deref();
                        if pinned.is_some_and(|pinned| pinned != first) {
                            failed += 1;
                            println!(
                                "{:>16}  with {bug} planted: caught by {first}, not by {} as the file pins",
                                "FAIL",
                                pinned.unwrap_or_default()
                            );
                        } else {
                            println!("{:>16}  with {bug} planted: caught ({first})", "ok");
                        }
                    }
                }
            }
            Flow::Continue {
                failed: verdict != "ok",
            }
        },
    );
    if nondeterministic > 0 {
        EXIT_NONDETERMINISM
    } else if failed > 0 {
        EXIT_VIOLATION
    } else {
        println!("result: PASS");
        EXIT_PASS
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
    match cli.command {
        Command::Run(args) => run_command(args),
        Command::Report {
            action: ReportCommand::Merge { files, json, junit },
        } => crate::report::merge_command(&files, json.as_deref(), junit.as_deref()),
        Command::Replay {
            scenario,
            seed,
            plan,
            fuzz_artifact: Some(artifact),
            plant,
            trace,
            failure,
        } if scenario.is_none() && seed.is_none() && plan.is_none() => {
            fuzz_artifact_command(&artifact, plant, trace, &failure)
        }
        Command::Replay {
            scenario,
            seed,
            plan,
            plant,
            trace,
            failure,
            ..
        } => replay_command(scenario, seed, plan, plant, trace, &failure),
        Command::Shrink {
            plan,
            plant,
            max_replays,
            report,
        } => crate::failure::shrink_command(&plan, &plant, max_replays, report.as_deref()),
        Command::Hunt {
            plant,
            all,
            list,
            scenario,
            max_seeds,
            median_budget,
            rate,
            jobs,
            save_regressions,
            failure,
        } => {
            let jobs = runner::default_jobs(jobs);
            hunt_command(HuntArgs {
                plant,
                all,
                list,
                scenario,
                max_seeds,
                median_budget,
                rate,
                jobs,
                save_regressions,
                failure,
            })
        }
        Command::Regressions { dir, jobs } => regressions_command(&dir, runner::default_jobs(jobs)),
        Command::Bench {
            scale: true,
            scenario,
            accounts,
            seed,
            in_process,
            ..
        } => crate::bench::scale_command(&scenario, &accounts, seed, in_process),
        Command::Bench {
            scenario,
            seeds,
            round_trips,
            ..
        } => bench_command(&scenario, &seeds, round_trips),
        Command::Plan {
            scenario,
            seed,
            postmortem,
        } => match Scenario::load(&scenario) {
            Ok(s) => {
                let plan = Plan::generate(&s, seed);
                let json = match postmortem {
                    Some(postmortem) => serde_json::to_string_pretty(&crate::plan::Regression {
                        postmortem,
                        plan,
                        catches: None,
                        caught_by: None,
                    }),
                    None => serde_json::to_string_pretty(&plan),
                };
                match json {
                    Ok(json) => {
                        println!("{json}");
                        EXIT_PASS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        EXIT_USAGE
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_USAGE
            }
        },
    }
}
