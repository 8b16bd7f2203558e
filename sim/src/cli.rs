//! The `crosstalk` command: run scenarios over seed ranges, replay a seed or
//! a saved plan, and report.
//!
//! Exit codes: 0 every seed passed; 1 an invariant was violated (or a run
//! was vacuous); 2 usage or infrastructure error; 3 nondeterminism detected.

use crate::check::Controls;
use crate::plan::Plan;
use crate::scenario::{Scenario, scenario_files};
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
    Run {
        /// A scenario file, or a directory whose *.toml files are all run.
        path: PathBuf,
        /// Seeds to run: `A..B` (B excluded) or a single seed.
        #[arg(long, default_value = "0..10")]
        seeds: String,
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
    },
}

/// The wall clock, read only to report speed (seeds per second and the
/// like); nothing it returns ever reaches a simulation.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> Instant {
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
fn report_failure(outcome: &RunOutcome, plan: &Plan, replay: &str) {
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
    match save_plan(plan) {
        Ok(path) => println!(
            "  plan saved: {} (replay: cargo sim replay --plan {})",
            path.display(),
            path.display()
        ),
        Err(e) => println!("  could not save the plan: {e}"),
    }
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

/// Controls that a scenario exercising the action must have seen.
fn vacuous_controls(totals: &Totals, scenarios: &[Scenario]) -> Vec<&'static str> {
    let c = &totals.controls;
    let mut missing = Vec::new();
    let any = |f: fn(&Scenario) -> bool| scenarios.iter().any(f);
    if c.recordings_delivered == 0 {
        missing.push("recordings delivered");
    }
    if totals.seeds >= 20 {
        if any(|s| s.actions.exports.1 > 0) && c.exports_completed == 0 {
            missing.push("exports completed");
        }
        if any(|s| s.actions.foreign_link_uses.1 > 0 && s.actions.exports.1 > 0)
            && c.foreign_link_refused == 0
        {
            missing.push("foreign links refused");
        }
        if any(|s| s.actions.guessed_audio_fetches.1 > 0) && c.guessed_audio_refused == 0 {
            missing.push("guessed recording ids refused");
        }
        if any(|s| s.faults.store_crashes.1 > 0) && c.store_crashes == 0 {
            missing.push("store crashes");
        }
        if any(|s| s.actions.deletions.1 > 0 || s.actions.range_deletions.1 > 0)
            && c.deletions_verified == 0
        {
            missing.push("deletions verified");
        }
        if c.audits_completed == 0 || c.recordings_verified_durable == 0 {
            missing.push("final audits");
        }
        if any(|s| s.actions.device_transfers.1 > 0)
            && (c.devices_transferred == 0 || c.pre_transfer_uploads == 0)
        {
            missing.push("device transfers with captures uploaded after the sale");
        }
        if any(|s| s.actions.messages.1 > 0 && s.actions.contacts.1 > 0)
            && (c.messages_delivered == 0 || c.inbox_items_checked == 0)
        {
            missing.push("messages delivered and read");
        }
        if any(|s| s.broadcasts.count.1 > 0) && c.broadcast_orders_suppressed == 0 {
            missing.push("broadcast orders suppressed");
        }
        if any(|s| s.broadcasts.count.1 > 0 && s.broadcasts.message_per_mille > 0)
            && c.broadcast_messages_suppressed == 0
        {
            missing.push("broadcast messages suppressed");
        }
        if any(|s| s.actions.spoken_message_per_mille > 0 && s.actions.contacts.1 > 0)
            && c.spoken_messages_delivered == 0
        {
            missing.push("spoken messages delivered");
        }
        if any(|s| s.world.household_size.1 > 1 && s.actions.housemate_speech_per_mille > 0)
            && c.housemate_captures == 0
        {
            missing.push("housemates' voices captured");
        }
        if any(|s| s.actions.purchase_per_mille > 0) && c.genuine_orders_placed == 0 {
            missing.push("genuine orders placed");
        }
        if any(|s| s.actions.close_account_per_mille > 0)
            && (c.accounts_closed == 0 || c.accounts_recycled == 0)
        {
            missing.push("accounts closed and recycled");
        }
        if any(|s| s.actions.curious_probes.1 > 0) {
            let with_exports = any(|s| s.actions.curious_probes.1 > 0 && s.actions.exports.1 > 0);
            missing.extend(c.vacuous_probes(with_exports));
        }
        if any(|s| s.actions.messages.1 > 0 && s.actions.contacts.1 > 0)
            && c.messages_verified_delivered == 0
        {
            missing.push("confirmed messages found in their recipient's inbox");
        }
        if any(|s| s.actions.ticket_exports.1 > 0) && c.tickets_verified == 0 {
            missing.push("tickets verified");
        }
        if any(|s| s.actions.impersonations.1 > 0) && c.impersonation_codes_refused == 0 {
            missing.push("impersonations refused");
        }
        if any(|s| s.actions.delete_before_download_per_mille > 0 && s.actions.exports.1 > 0)
            && c.archives_revoked == 0
        {
            missing.push("archives revoked after a deletion");
        }
        if any(|s| s.actions.redownloads.1 >= 3 && s.actions.exports.1 > 0)
            && c.download_limit_refusals == 0
        {
            missing.push("downloads refused past the limit");
        }
        if any(|s| s.agent.enabled && s.actions.ticket_exports.1 > 0)
            && (c.agent_errors_injected == 0 || c.notified_links_followed == 0)
        {
            missing.push("agent mistakes injected and notified links followed");
        }
        if any(|s| s.faults.worker_crashes.1 > 0) && c.worker_crashes == 0 {
            missing.push("worker crashes");
        }
        if any(|s| s.faults.sut_fault_points_per_mille.1 > 0) && c.sut_faults_fired == 0 {
            missing.push("fault points fired");
        }
        if any(|s| s.faults.partitions.1 > 0 || s.faults.latency_spikes.1 > 0) && c.net_faults == 0
        {
            missing.push("network faults");
        }
        if any(|s| s.faults.export_crashes.1 > 0) && c.export_crashes == 0 {
            missing.push("export crashes");
        }
    }
    missing
}

/// One seed's result: its plan, its run, and its second run when checking
/// determinism.
struct SeedResult {
    file: usize,
    plan: Plan,
    outcome: RunOutcome,
    again: Option<RunOutcome>,
}

/// Run every (scenario, seed) on `jobs` threads, handing each result to
/// `report` in order. Each simulation is single-threaded and owns all its
/// state, so seeds are independent; results are re-ordered so the output is
/// the same whatever the thread scheduling.
fn run_parallel(
    work: Vec<(usize, Plan)>,
    jobs: usize,
    check_determinism: bool,
    mut report: impl FnMut(SeedResult),
) {
    let total = work.len();
    let progress = indicatif::ProgressBar::new(total as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} seeds ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = &work;
    let (sender, receiver) = std::sync::mpsc::channel::<(usize, SeedResult)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(total.max(1)) {
            let sender = sender.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some((file, plan)) = work.get(index) else {
                        break;
                    };
                    let outcome = run_plan(plan);
                    let again = check_determinism.then(|| run_plan(plan));
                    let result = SeedResult {
                        file: *file,
                        plan: plan.clone(),
                        outcome,
                        again,
                    };
                    if sender.send((index, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let mut waiting = std::collections::BTreeMap::new();
        let mut expected = 0;
        for (index, result) in receiver {
            progress.inc(1);
            waiting.insert(index, result);
            while let Some(result) = waiting.remove(&expected) {
                progress.suspend(|| report(result));
                expected += 1;
            }
        }
    });
    progress.finish_and_clear();
}

fn run_command(path: &Path, seeds: &str, check_determinism: bool, quiet: bool, jobs: usize) -> i32 {
    let seeds = match parse_seeds(seeds) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let files = match scenario_files(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let mut scenarios = Vec::new();
    for file in &files {
        match Scenario::load(file) {
            Ok(s) => scenarios.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        }
    }
    println!(
        "crosstalk run: {} scenario(s) [{}], seeds {}..{}, determinism check {}, {jobs} job(s)",
        files.len(),
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        seeds.start,
        seeds.end,
        if check_determinism {
            "on (every seed runs twice)"
        } else {
            "off"
        },
    );
    let mut totals = Totals::default();
    let started = wall_clock();
    let mut work = Vec::new();
    for (index, scenario) in scenarios.iter().enumerate() {
        for seed in seeds.clone() {
            work.push((index, Plan::generate(scenario, seed)));
        }
    }
    run_parallel(
        work,
        jobs,
        check_determinism,
        |SeedResult {
             file,
             plan,
             outcome,
             again,
         }| {
            let seed = plan.seed;
            if !quiet {
                println!("{}", banner(&plan));
            }
            totals.record(&outcome);
            totals.evidence(&outcome);
            let replay = format!(
                "cargo sim replay --scenario {} --seed {seed}",
                files[file].display()
            );
            let mut nondeterministic = false;
            if let Some(again) = again {
                totals.record(&again);
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
                if !quiet {
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
                report_failure(&outcome, &plan, &replay);
            }
        },
    );
    print_summary(&totals, started.elapsed().as_secs_f64());
    let vacuous = vacuous_controls(&totals, &scenarios);
    if totals.nondeterministic > 0 {
        println!(
            "result: NONDETERMINISM in {} seed(s)",
            totals.nondeterministic
        );
        return EXIT_NONDETERMINISM;
    }
    if totals.failed > totals.infra {
        println!(
            "result: FAIL, invariant violated in {} seed(s)",
            totals.failed - totals.infra
        );
        return EXIT_VIOLATION;
    }
    if totals.infra > 0 {
        println!(
            "result: ERROR, {} seed(s) could not run as planned",
            totals.infra
        );
        return EXIT_USAGE;
    }
    if !vacuous.is_empty() {
        println!(
            "result: FAIL, vacuous run: no positive control for {}",
            vacuous.join(", ")
        );
        return EXIT_VIOLATION;
    }
    println!("result: PASS");
    EXIT_PASS
}

/// `replay --fuzz-artifact`: decode a `plan` fuzz input into its plan,
/// save the plan, and replay it like any saved plan.
fn fuzz_artifact_command(artifact: &Path, plant: Vec<String>, trace: Option<PathBuf>) -> i32 {
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
    replay_command(None, None, Some(saved), plant, trace)
}

fn replay_command(
    scenario: Option<PathBuf>,
    seed: Option<u64>,
    plan_path: Option<PathBuf>,
    plant: Vec<String>,
    trace: Option<PathBuf>,
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
    let outcome = run_plan(&plan);
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
        report_failure(&outcome, &plan, &replay);
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

fn regressions_command(dir: &Path) -> i32 {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) => {
            eprintln!("error: reading {}: {e}", dir.display());
            return EXIT_USAGE;
        }
    };
    files.sort();
    if files.is_empty() {
        eprintln!("error: {} holds no regression (*.json)", dir.display());
        return EXIT_USAGE;
    }
    println!(
        "crosstalk regressions: {} saved failure(s) in {}",
        files.len(),
        dir.display()
    );
    let (mut failed, mut nondeterministic) = (0, 0);
    for file in &files {
        let loaded = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|t| crate::plan::load_regression_file(&t));
        let crate::plan::Regression {
            plan,
            postmortem,
            catches,
        } = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                eprintln!("error: {}: {e}", file.display());
                return EXIT_USAGE;
            }
        };
        let first = run_plan(&plan);
        let second = run_plan(&plan);
        let verdict = if first.trace_hash != second.trace_hash {
            nondeterministic += 1;
            "NONDETERMINISTIC"
        } else if !first.passed() {
            failed += 1;
            "FAIL"
        } else {
            "ok"
        };
        println!("{verdict:>16}  {}  ({postmortem})", file.display());
        if verdict == "FAIL" {
            report_failure(
                &first,
                &plan,
                &format!("cargo sim replay --plan {}", file.display()),
            );
        }
        // A plan kept for a planted bug must also fail with the bug planted.
        if let Some(bug) = catches {
            if !crosstalk_service::Planted::AVAILABLE {
                println!(
                    "{:>16}  with {bug} planted: needs the planted-bugs build (cargo sim-planted regressions)",
                    "skipped"
                );
                continue;
            }
            let mut planted = plan.clone();
            planted.planted = vec![bug.clone()];
            let outcome = run_plan(&planted);
            if outcome.violations.is_empty() {
                failed += 1;
                println!(
                    "{:>16}  with {bug} planted: NOT caught (the plan no longer sees the bug)",
                    "FAIL"
                );
            } else {
                let first = outcome.violations[0].invariant.short();
                println!("{:>16}  with {bug} planted: caught ({first})", "ok");
            }
        }
    }
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
        Command::Run {
            path,
            seeds,
            check_determinism,
            quiet,
            jobs,
        } => {
            let jobs = jobs
                .unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(1)
                })
                .max(1);
            run_command(&path, &seeds, check_determinism, quiet, jobs)
        }
        Command::Replay {
            scenario,
            seed,
            plan,
            fuzz_artifact: Some(artifact),
            plant,
            trace,
        } if scenario.is_none() && seed.is_none() && plan.is_none() => {
            fuzz_artifact_command(&artifact, plant, trace)
        }
        Command::Replay {
            scenario,
            seed,
            plan,
            plant,
            trace,
            ..
        } => replay_command(scenario, seed, plan, plant, trace),
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
        } => {
            let jobs = jobs
                .unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(1)
                })
                .max(1);
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
            })
        }
        Command::Regressions { dir } => regressions_command(&dir),
        Command::Bench {
            scenario,
            seeds,
            round_trips,
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
