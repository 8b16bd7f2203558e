//! One run: a plan executed in a turmoil world, judged by the oracle.
//!
//! [`run_plan`] reads as its phases: build the world (the oracle told what
//! the plan configures, the turmoil simulation, the hosts of `hosts.rs`),
//! step it to the end with the fault schedule applied between steps
//! (`faults/schedule.rs`; the active period, then the drain in which the
//! faults have healed and everything acknowledged must come through), then
//! judge what the world recorded and collect the [`RunOutcome`].
//!
//! The world has one host per service instance — `store` (the recording
//! store, database on a simulated in-memory disk) and `export` (the export
//! service), the export workers — and a few client hosts, each driving many
//! people as tasks. Turmoil's seed, epoch, tick, latency and duration all
//! come from the plan, so the plan alone determines the run.

mod config;
mod hosts;

pub(crate) use config::export_config;
pub use config::tcp_capacity;

use crate::check::{Controls, Event, Oracle, Violation};
use crate::faults::disk::DiskStats;
use crate::faults::points::FaultPointSource;
use crate::faults::schedule::{FaultSchedule, ServiceFaults};
use crate::net::{EPOCH_MS, EXPORT_HOST, STORE_HOST};
use crate::plan::Plan;
use crate::streams::derive;
use crate::watermark::WatermarkKey;
use crate::workload::World;
use axum::Router;
use config::{SERVE_LIMITS, retry_contract};
use crosstalk_export::ExportService;
use crosstalk_service::Planted;
use crosstalk_store::Store;
use hosts::{Common, Doors};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, UNIX_EPOCH};

/// Simulated time allowed past `active + drain` before turmoil gives up.
const SLACK_MS: u64 = 60_000;

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub seed: u64,
    pub trace_hash: String,
    pub trace_events: u64,
    /// Every trace event, readable (see [`crate::trace::Trace::lines`]).
    pub trace_lines: Vec<String>,
    pub violations: Vec<Violation>,
    pub controls: Controls,
    pub simulated_ms: u64,
    /// HTTP requests the services handled (users' and service-to-service).
    pub sut_requests: u64,
    /// Problems that stopped the run from doing what it planned.
    pub infra_errors: Vec<String>,
    /// What the store's and the export service's simulated disks went through.
    pub store_disk: DiskStats,
    pub export_disk: DiskStats,
    /// How often each code probe inside the services was reached, by name
    /// (probes never reached are absent).
    pub probes: std::collections::BTreeMap<String, u64>,
}

impl RunOutcome {
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.infra_errors.is_empty()
    }

    /// An outcome with nothing in it (for tests of the reporting).
    #[cfg(test)]
    pub fn empty_for(plan: &Plan) -> RunOutcome {
        RunOutcome {
            seed: plan.seed,
            trace_hash: String::new(),
            trace_events: 0,
            trace_lines: Vec::new(),
            violations: Vec::new(),
            controls: Controls::default(),
            simulated_ms: 0,
            sut_requests: 0,
            infra_errors: Vec::new(),
            store_disk: DiskStats::default(),
            export_disk: DiskStats::default(),
            probes: Default::default(),
        }
    }
}

/// Layers put in front of the services' routers, for the harness's own
/// tests only: each plants a small defect (see `sim/tests/adversary.rs`), as
/// the canary does, to prove that a check sees it. Empty in every real run.
#[derive(Clone, Default)]
pub struct Wrappers {
    pub store: Option<Wrap>,
    pub export: Option<Wrap>,
}

/// One test-only layer in front of a service's router.
pub type Wrap = Rc<dyn Fn(Router) -> Router>;

/// Execute `plan` and judge it.
pub fn run_plan(plan: &Plan) -> RunOutcome {
    run_plan_with(plan, &Wrappers::default())
}

/// The bugs of the planted catalogue `plan` names (none normally), and
/// why any cannot be planted.
pub(crate) fn planted_bugs(plan: &Plan) -> (Planted, Vec<String>) {
    let mut plant_errors = Vec::new();
    let mut bugs = Vec::new();
    for name in &plan.planted {
        match name.parse::<crosstalk_service::Bug>() {
            Ok(bug) => bugs.push(bug),
            Err(e) => plant_errors.push(e),
        }
    }
    if !bugs.is_empty() && !Planted::AVAILABLE {
        plant_errors.push(format!(
            "the plan plants {} but this build has no planted bugs (build with --features planted-bugs)",
            plan.planted.join(", ")
        ));
    }
    (Planted::of(bugs), plant_errors)
}

/// Execute `plan` with `wrappers` in front of the services, and judge it.
pub fn run_plan_with(plan: &Plan, wrappers: &Wrappers) -> RunOutcome {
    if let Some(threads) = &plan.threads {
        // A threads scenario runs under real parallelism, not in turmoil.
        return crate::threads::run(plan, threads);
    }
    // The services count their code probes on this thread, where the whole
    // simulation runs.
    crosstalk_service::probes::reset();
    let (planted, plant_errors) = planted_bugs(plan);
    // Panics inside the services become violations of this run.
    let collecting_panics = crate::check::panics::collect();
    let world = World::new(
        plan.clone(),
        oracle_for(plan),
        hex::encode(derive(plan.seed, "agent-token")),
    );
    let common = Common {
        planted,
        service_token: hex::encode(derive(plan.seed, "service-token")),
        worker_token: hex::encode(derive(plan.seed, "worker-token")),
        sut_requests: Arc::default(),
        fault_points: FaultPointSource::new(plan, world.collection_faults.clone()),
        world,
    };
    let world = &common.world;
    let mut sim = simulation(plan);
    let faults = ServiceFaults::new(plan);
    let doors = Doors::default();
    hosts::add_store(&mut sim, &common, &doors, &faults, wrappers.store.clone());
    hosts::add_export(
        &mut sim,
        &common,
        &doors,
        &faults,
        export_config_of_run(plan),
        wrappers.export.clone(),
    );
    hosts::add_workers(&mut sim, &common);
    hosts::add_clients(&mut sim, world);

    let mut schedule = FaultSchedule::new(plan, world, &faults);
    let result = step_to_the_end(&mut sim, &mut schedule, world);
    let simulated_ms = sim.elapsed().as_millis() as u64;
    record_state_digests(world, simulated_ms, &doors.last_store, &doors.last_export);
    drop(sim);
    let probes = crosstalk_service::probes::take()
        .into_iter()
        .map(|(name, hits)| (name.to_string(), hits))
        .collect();

    let mut infra_errors = world.errors.borrow().clone();
    infra_errors.extend(plant_errors);
    if let Err(e) = result {
        let mut oracle = world.oracle.borrow_mut();
        let error = oracle.on_simulation_error(e.to_string(), duration_ms(plan), simulated_ms);
        infra_errors.extend(error);
    }
    judge_at_the_end(&common, &doors, collecting_panics.finish());
    let oracle = world.oracle.borrow();
    let trace = world.trace.borrow();
    RunOutcome {
        seed: plan.seed,
        trace_hash: trace.hash(),
        trace_events: trace.events(),
        trace_lines: trace.lines().to_vec(),
        violations: oracle.violations().to_vec(),
        controls: oracle.controls().clone(),
        simulated_ms,
        sut_requests: common.sut_requests.load(Ordering::Relaxed),
        infra_errors,
        store_disk: faults.store_disk.stats(),
        export_disk: faults.export_disk.stats(),
        probes,
    }
}

/// The oracle of one run, told what the plan configures: the accounts'
/// addresses, the export's limits, deadlines and ticket attempts, and the
/// poisoned subject's window (if any).
fn oracle_for(plan: &Plan) -> Oracle {
    let emails = plan.accounts.iter().map(|a| a.email.clone()).collect();
    let mut oracle = Oracle::new(WatermarkKey::for_seed(plan.seed), emails);
    oracle.learn_limits(crate::check::limits::ExportLimits {
        link_ttl_ms: plan.link_ttl_ms,
        max_downloads: plan.max_downloads,
    });
    oracle.learn_ticket_attempts(plan.ticket_attempts);
    oracle.learn_hold(plan.hold_ms);
    let deadlines = export_config(plan);
    oracle.learn_deadlines(deadlines.deadline_ms, deadlines.max_extension_ms);
    if let Some(poison) = &plan.poison {
        let (request_ms, until_ms) = (poison.request_ms, poison.until_ms);
        let contract = retry_contract(plan);
        oracle.learn_poison(poison.principal as usize, request_ms, until_ms, contract);
    }
    oracle
}

/// How long turmoil may run: the active period, the drain and some slack.
fn duration_ms(plan: &Plan) -> u64 {
    plan.active_ms + plan.drain_ms + SLACK_MS
}

/// The turmoil simulation of `plan`: its seed, epoch, duration, tick,
/// latency model and socket capacity.
fn simulation<'a>(plan: &Plan) -> turmoil::Sim<'a> {
    turmoil::Builder::new()
        .rng_seed(plan.seed)
        .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_MS))
        .simulation_duration(Duration::from_millis(duration_ms(plan)))
        .tick_duration(Duration::from_millis(plan.tick_ms))
        .min_message_latency(Duration::from_millis(plan.latency_ms_min))
        .max_message_latency(Duration::from_millis(plan.latency_ms_max))
        .enable_random_order()
        .tcp_capacity(tcp_capacity(plan))
        .build()
}

/// The export service's settings in this run: the plan's, except under the
/// canary's `NoRetryBackoff` (a harness self-test: a service that retries
/// a failing job at once and forever, while the oracle judges by
/// [`export_config`]).
fn export_config_of_run(plan: &Plan) -> crosstalk_export::ExportConfig {
    let mut config = export_config(plan);
    if plan.canary_break == Some(crate::canary::CanaryBreak::NoRetryBackoff) {
        config.retry_backoff_ms = 0;
        config.max_backoff_ms = 0;
        config.max_attempts = u32::MAX;
    }
    config
}

/// Step the world until every client is done (or turmoil gives up),
/// applying the fault schedule before each step.
fn step_to_the_end(
    sim: &mut turmoil::Sim<'_>,
    schedule: &mut FaultSchedule,
    world: &World,
) -> turmoil::Result<()> {
    loop {
        let now_ms = sim.elapsed().as_millis() as u64;
        schedule.tick(sim, world, now_ms);
        match sim.step() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Hand the oracle what the world recorded beside the clients'
/// observations, and let it judge: the fault points that fired and the
/// panics against the API contract, the load the services shed, the
/// export's limits and books, the workers' leases, the lookups at the
/// store's door, and the collection-read faults.
fn judge_at_the_end(
    common: &Common,
    doors: &Doors,
    panics: Vec<crate::check::panics::ServicePanic>,
) {
    let world = &common.world;
    let plan = &world.plan;
    world
        .oracle
        .borrow_mut()
        .on_sut_faults_fired(common.fault_points.fired());
    world
        .fault_log
        .borrow_mut()
        .add_fired_points(common.fault_points.log());
    world
        .oracle
        .borrow_mut()
        .judge_contract(&world.fault_log.borrow(), panics);
    {
        let mut oracle = world.oracle.borrow_mut();
        oracle.judge_load_shedding(STORE_HOST, &doors.store_load, SERVE_LIMITS);
        oracle.judge_load_shedding(EXPORT_HOST, &doors.export_load, export_config(plan).limits);
    }
    world.oracle.borrow_mut().judge_limits();
    world.oracle.borrow_mut().judge_books();
    {
        let exchanges = doors.leases.lock().unwrap_or_else(|p| p.into_inner());
        let lease_ms = export_config(plan).lease_ms;
        world.oracle.borrow_mut().judge_leases(&exchanges, lease_ms);
        let lookups = doors.lookups.lock().unwrap_or_else(|p| p.into_inner());
        world
            .oracle
            .borrow_mut()
            .judge_ticket_lookups(&exchanges, &lookups);
        world.oracle.borrow_mut().judge_lookups(&lookups);
    }
    judge_collection_faults(world);
}

/// Fold each service's final state digest (every table of its database,
/// in key order) into the trace, so that the determinism check sees a
/// divergence inside a service that no reply showed.
fn record_state_digests(
    world: &World,
    at_ms: u64,
    store: &RefCell<Weak<Store>>,
    export: &RefCell<Weak<ExportService>>,
) {
    let digests = [
        ("store", store.borrow().upgrade().map(|s| s.state_digest())),
        (
            "export",
            export.borrow().upgrade().map(|e| e.state_digest()),
        ),
    ];
    for (service, digest) in digests {
        let line = match digest {
            Some(Ok(digest)) => {
                world.oracle.borrow_mut().on(Event::StateDigestTaken);
                format!("state digest: {service} {digest}")
            }
            Some(Err(e)) => format!("state digest: {service} unreadable: {e}"),
            None => format!("state digest: {service} not running at the end"),
        };
        world.trace.borrow_mut().record(at_ms, &line);
    }
}

/// Hand the oracle what the collection-read faults did: the count of
/// transient refusals, and the poisoned subject's refused reads to judge
/// against the export service's retry contract (`check/poison.rs`).
fn judge_collection_faults(world: &World) {
    let faults = &world.collection_faults;
    let mut oracle = world.oracle.borrow_mut();
    oracle.on_collection_reads_refused(faults.transient_refusals());
    let Some(poison) = faults.plan() else {
        return;
    };
    let refused = faults.refused_ms();
    let contract = retry_contract(&world.plan);
    oracle.judge_poisoned_retries(poison.principal as usize, &refused, contract);
    oracle.judge_poison_give_up();
}
