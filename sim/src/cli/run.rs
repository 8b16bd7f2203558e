//! `crosstalk run`: scenario files over a range of seeds (or fresh seeds
//! for a wall-time budget, `--for`), optionally one shard of them, each seed
//! run once or twice (`--check-determinism`) on the shared parallel
//! [`runner`] and reported in seed order; then the summary, the code-probe
//! gate, the result files and the verdict.
//!
//! The phases: [`prepare`] (scenarios and seeds), the header line, the
//! seeds (each run by [`run_seed`], reported by [`SeedReporter::report`]),
//! the summary, and [`super::verdict::finish_run`].

use super::args::RunArgs;
use super::failure::report_failure;
use super::summary::{Totals, print_summary};
use super::{CliError, banner, parse_seeds, wall_clock};
use crate::guard::HarnessFailure;
use crate::plan::Plan;
use crate::probe_gate::ProbeTally;
use crate::report::{RunReport, SeedRecord, Tally};
use crate::runner::{self, Flow, Progress};
use crate::scenario::{Scenario, scenario_files};
use crate::seeds::{Selection, Shard, parse_duration};
use crate::world::RunOutcome;
use std::path::PathBuf;

/// The run's scenario files, their scenarios and the seeds to run.
struct Prepared {
    files: Vec<PathBuf>,
    scenarios: Vec<Scenario>,
    selection: Selection,
}

/// A seed's runs: the first, and the second when determinism is checked.
type Runs = Result<(RunOutcome, Option<RunOutcome>), HarnessFailure>;

pub(super) fn command(args: RunArgs) -> Result<i32, CliError> {
    let prepared = prepare(&args)?;
    let jobs = runner::default_jobs(args.jobs);
    print_header(&prepared, args.check_determinism, jobs);
    let started = wall_clock();
    let budget = prepared.selection.budget();
    let progress = match &prepared.selection {
        Selection::Range { pairs, .. } => Progress::Bounded(pairs.len() as u64),
        Selection::Budget { .. } => Progress::Open,
    };
    let mut reporter = SeedReporter::new(&args, &prepared);
    runner::run_ordered(
        jobs,
        progress,
        |index| prepared.selection.pair(index),
        || budget.is_none_or(|b| started.elapsed() < b),
        |&(file, seed)| run_seed(&prepared.scenarios[file], seed, args.check_determinism),
        |_, (file, _), (plan, runs)| reporter.report(file, plan, runs),
    );
    if let Some(failure) = reporter.harness_failure {
        return Err(CliError::Harness(failure));
    }
    print_summary(&reporter.totals, started.elapsed().as_secs_f64());
    let probes = crate::probe_gate::finish_run(&args.path, &reporter.probe_tally);
    let shards = match prepared.selection.shard() {
        Shard::ALL => Vec::new(),
        shard => vec![shard.describe()],
    };
    let result = RunReport::from_tally(
        &prepared.scenarios,
        &reporter.tally,
        reporter.records,
        shards,
    );
    Ok(super::verdict::finish_run(
        &result,
        args.json.as_deref(),
        args.junit.as_deref(),
        probes.err(),
    ))
}

/// The run's scenario files, their scenarios and the seeds to run.
fn prepare(args: &RunArgs) -> Result<Prepared, CliError> {
    let shard = match &args.shard {
        Some(text) => Shard::parse(text).map_err(CliError::Flag)?,
        None => Shard::ALL,
    };
    let files = scenario_files(&args.path)?;
    let scenarios = files
        .iter()
        .map(|f| Scenario::load(f))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, s) in scenarios.iter().enumerate() {
        if scenarios[..i].iter().any(|t| t.name == s.name) {
            return Err(CliError::DuplicateScenario(s.name.clone()));
        }
    }
    let selection = match &args.budget {
        Some(text) => Selection::Budget {
            budget: parse_duration(text).map_err(CliError::Flag)?,
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
    Ok(Prepared {
        files,
        scenarios,
        selection,
    })
}

/// The line that opens a run: its files, seeds, determinism check and jobs.
fn print_header(prepared: &Prepared, check_determinism: bool, jobs: usize) {
    println!(
        "crosstalk run: {} scenario(s) [{}], {}, determinism check {}, {jobs} job(s)",
        prepared.files.len(),
        prepared
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        prepared.selection.describe(),
        if check_determinism {
            "on (every seed runs twice)"
        } else {
            "off"
        },
    );
    if check_determinism && prepared.scenarios.iter().any(|s| !s.harness.is_sim()) {
        println!(
            "  (threads scenarios run under real parallelism: their check compares only the plan hash, not what happened)"
        );
    }
}

/// One seed of a scenario: its plan and its guarded runs.
fn run_seed(scenario: &Scenario, seed: u64, check_determinism: bool) -> (Plan, Runs) {
    let plan = Plan::generate(scenario, seed);
    let runs = crate::guard::run_guarded(&plan).and_then(|outcome| {
        let again = check_determinism
            .then(|| crate::guard::run_guarded(&plan))
            .transpose()?;
        Ok((outcome, again))
    });
    (plan, runs)
}

/// What the run learns from its seeds, one report at a time, in seed order.
struct SeedReporter<'a> {
    args: &'a RunArgs,
    prepared: &'a Prepared,
    totals: Totals,
    probe_tally: ProbeTally,
    tally: Tally,
    /// Every seed's record, kept only for `--json` and `--junit`.
    records: Vec<SeedRecord>,
    /// The harness's own failure that stopped the run, if any.
    harness_failure: Option<HarnessFailure>,
}

impl<'a> SeedReporter<'a> {
    fn new(args: &'a RunArgs, prepared: &'a Prepared) -> Self {
        SeedReporter {
            args,
            prepared,
            totals: Totals::default(),
            probe_tally: ProbeTally::default(),
            tally: Tally::default(),
            records: Vec::new(),
            harness_failure: None,
        }
    }

    /// Report one seed of scenario `file`: print and count it.
    fn report(&mut self, file: usize, plan: Plan, runs: Runs) -> Flow {
        let (outcome, again) = match runs {
            Ok(runs) => runs,
            Err(failure) => {
                // The harness itself failed: stop taking seeds.
                self.harness_failure = Some(failure);
                return Flow::Stop;
            }
        };
        if !self.args.quiet {
            println!("{}", banner(&plan));
        }
        self.count(file, &plan, &outcome);
        let replay = format!(
            "cargo sim replay --scenario {} --seed {}",
            self.prepared.files[file].display(),
            plan.seed
        );
        let nondeterministic = again
            .as_ref()
            .is_some_and(|again| self.compare(&plan, &outcome, again, &replay));
        self.print_verdict(&plan, &outcome, nondeterministic, &replay);
        let record = SeedRecord::of(&plan.scenario, &outcome, again.as_ref(), replay);
        self.tally.add(&record);
        let failed = record.verdict != "pass";
        if self.args.json.is_some() || self.args.junit.is_some() {
            self.records.push(record);
        }
        Flow::Continue { failed }
    }

    /// Count a seed's cost, evidence and code probes.
    fn count(&mut self, file: usize, plan: &Plan, outcome: &RunOutcome) {
        self.totals.record(outcome);
        self.totals.evidence(outcome);
        if self.prepared.scenarios[file].max_seeds.is_some() {
            // A capped world's few seeds count its probe hits but do not
            // hold the gate back for the other scenarios.
            self.probe_tally.record_hits(&outcome.probes);
        } else {
            self.probe_tally.record(&plan.scenario, &outcome.probes);
        }
    }

    /// Count the second run and compare its trace with the first; print
    /// where they diverge. Returns whether they did.
    fn compare(
        &mut self,
        plan: &Plan,
        first: &RunOutcome,
        again: &RunOutcome,
        replay: &str,
    ) -> bool {
        self.totals.record(again);
        if again.trace_hash == first.trace_hash {
            return false;
        }
        println!(
            "NONDETERMINISM seed {} [{}]: trace {} ({} events) then {} ({} events); replay: {replay}",
            plan.seed,
            plan.scenario,
            first.trace_hash,
            first.trace_events,
            again.trace_hash,
            again.trace_events
        );
        if let Some((index, one, two)) =
            crate::trace::first_divergence(&first.trace_lines, &again.trace_lines)
        {
            println!("  first divergence at event {index}:");
            println!("    first run:  {one}");
            println!("    second run: {two}");
            if index > 0 {
                println!("    after:      {}", first.trace_lines[index - 1]);
            }
        }
        self.totals.nondeterministic += 1;
        true
    }

    /// Count the seed's verdict; print `ok` or the failure's report.
    fn print_verdict(
        &mut self,
        plan: &Plan,
        outcome: &RunOutcome,
        nondeterministic: bool,
        replay: &str,
    ) {
        if outcome.passed() {
            if !nondeterministic {
                self.totals.passed += 1;
            }
            if !self.args.quiet && plan.threads.is_some() {
                println!(
                    "  ok: plan {} ({} racing operations; real threads: the interleaving is the OS's, no trace to compare), {} SUT requests",
                    &outcome.trace_hash[..16],
                    outcome.trace_events,
                    outcome.sut_requests
                );
            } else if !self.args.quiet {
                println!(
                    "  ok: trace {} ({} events), {:.1} simulated s, {} SUT requests",
                    &outcome.trace_hash[..16],
                    outcome.trace_events,
                    outcome.simulated_ms as f64 / 1000.0,
                    outcome.sut_requests
                );
            }
            return;
        }
        self.totals.failed += 1;
        if !outcome.infra_errors.is_empty() && outcome.violations.is_empty() {
            self.totals.infra += 1;
        }
        if self.args.quiet {
            println!("{}", banner(plan));
        }
        report_failure(outcome, plan, replay, &self.args.failure);
    }
}
