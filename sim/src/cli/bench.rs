//! `crosstalk bench`: speed as ratios, in one process. A scenario's seeds
//! on one thread, then the raw turmoil HTTP keep-alive round-trip rate
//! ([`crate::bench::baseline_round_trips`]), side by side; or, with
//! `--scale`, how cost grows with the world: each size in `--accounts` runs
//! one seed of a copy of the scenario, in a child process of its own unless
//! `--in-process` (then here, one after the other, printing each row's
//! line), as a table of per-account costs ([`crate::bench::scale_table`]).

use super::args::BenchArgs;
use super::{CliError, EXIT_PASS, EXIT_USAGE, parse_seeds, wall_clock};
use crate::bench::{MAX_SCALE_ACCOUNTS, run_scale_row, scale_row_in_child, scale_table};
use crate::plan::Plan;
use crate::scenario::Scenario;
use crate::world::run_plan;

/// What the world's seeds cost.
#[derive(Default)]
struct WorldCost {
    runs: u64,
    simulated_ms: u64,
    requests: u64,
    failed: u64,
    wall_seconds: f64,
}

pub(super) fn command(args: &BenchArgs) -> Result<i32, CliError> {
    if args.scale {
        return scale(args);
    }
    let seeds = parse_seeds(&args.seeds)?;
    let scenario = Scenario::load(&args.scenario)?;
    let round_trips = args.round_trips;
    println!(
        "crosstalk bench: {} seeds {}..{} on one thread, then {round_trips} baseline round trips",
        scenario.name, seeds.start, seeds.end
    );
    let world = run_world(&scenario, seeds);
    let started = wall_clock();
    let completed = crate::bench::baseline_round_trips(round_trips);
    let baseline_s = started.elapsed().as_secs_f64().max(1e-9);
    print_ratios(&world, completed, baseline_s);
    if world.failed > 0 || completed < round_trips {
        println!(
            "result: ERROR ({} seeds failed, {completed} of {round_trips} round trips)",
            world.failed
        );
        return Ok(EXIT_USAGE);
    }
    Ok(EXIT_PASS)
}

/// Run `seeds` of `scenario` one after the other on this thread.
fn run_world(scenario: &Scenario, seeds: std::ops::Range<u64>) -> WorldCost {
    let started = wall_clock();
    let mut cost = WorldCost::default();
    for seed in seeds {
        let outcome = run_plan(&Plan::generate(scenario, seed));
        cost.runs += 1;
        cost.simulated_ms += outcome.simulated_ms;
        cost.requests += outcome.sut_requests;
        cost.failed += u64::from(!outcome.passed());
    }
    cost.wall_seconds = started.elapsed().as_secs_f64().max(1e-9);
    cost
}

/// The world's rates, the baseline's, and their ratio.
fn print_ratios(world: &WorldCost, completed: u64, baseline_s: f64) {
    let (runs, requests, world_s) = (world.runs, world.requests, world.wall_seconds);
    let simulated_s = world.simulated_ms as f64 / 1000.0;
    let world_rps = requests as f64 / world_s;
    let baseline_rps = completed as f64 / baseline_s;
    println!(
        "world:    {runs} seeds in {world_s:.2} s = {:.2} seeds/s; {simulated_s:.0} simulated s = {:.1}x wall; {requests} SUT HTTP requests = {world_rps:.0} requests/s",
        runs as f64 / world_s,
        simulated_s / world_s
    );
    println!(
        "baseline: {completed} turmoil HTTP keep-alive round trips (zero latency, 1 ms tick) in {baseline_s:.2} s = {baseline_rps:.0} round trips/s"
    );
    println!(
        "ratio:    the full world serves {:.3} of raw turmoil HTTP throughput ({:.1}x slower per request)",
        world_rps / baseline_rps.max(1e-9),
        baseline_rps / world_rps.max(1e-9)
    );
}

/// `bench --scale`: one row per size, each from a child process (or, in the
/// child, from this one), then the table.
fn scale(args: &BenchArgs) -> Result<i32, CliError> {
    let (sizes, scenario) = scale_sizes(args)?;
    if args.in_process {
        for &n in &sizes {
            println!("{}", run_scale_row(&scenario, n, args.seed)?.line());
        }
        return Ok(EXIT_PASS);
    }
    println!(
        "crosstalk bench --scale: {} seed {}, accounts {}, each size in its own process on one thread",
        scenario.name, args.seed, args.accounts
    );
    let mut rows = Vec::new();
    for &n in &sizes {
        let row = scale_row_in_child(&args.scenario, n, args.seed)
            .map_err(|e| CliError::Refused(format!("{n} accounts: {e}")))?;
        println!("{}", row.line());
        rows.push(row);
    }
    print!("{}", scale_table(&rows));
    if rows.iter().all(|r| r.passed) {
        Ok(EXIT_PASS)
    } else {
        println!("result: ERROR (a size failed its run)");
        Ok(EXIT_USAGE)
    }
}

/// The sizes of `--accounts` (each within bounds) and the scenario.
fn scale_sizes(args: &BenchArgs) -> Result<(Vec<u64>, Scenario), CliError> {
    let bad = || {
        CliError::Flag(format!(
            "--accounts {:?}: expected sizes 2..={MAX_SCALE_ACCOUNTS}, comma-separated",
            args.accounts
        ))
    };
    let sizes: Vec<u64> = args
        .accounts
        .split(',')
        .map(|a| a.trim().parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let scenario = Scenario::load(&args.scenario)?;
    if !sizes.iter().all(|&n| (2..=MAX_SCALE_ACCOUNTS).contains(&n)) {
        return Err(bad());
    }
    Ok((sizes, scenario))
}
