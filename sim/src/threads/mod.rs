//! The second harness: the real recording store under real parallelism,
//! judged by the one oracle ([`crate::check::Oracle`]).
//!
//! The turmoil simulator runs every host on one thread, so two requests
//! never interleave between two steps that have no `.await` between them
//! (a database read and the cache fill after it; the two transactions of an
//! account closing). In production the store serves on a multi-thread
//! runtime, where exactly those steps race. A scenario with
//! `harness = "threads"` runs here instead: the store (the same code, on
//! redb's in-memory backend, with a manual clock and seeded entropy) on a
//! tokio multi-thread runtime with at least four workers, so the operating
//! system preempts them even on two cores, called in process through its
//! axum router by one spawned task per request.
//!
//! **The seed fixes the workload, the OS the interleaving.** The seed draws
//! the accounts, the watermarked captures, and which requests start
//! together ([`plan::ThreadsPlan`]); which of them wins each race is not
//! reproducible. So a threads seed's "trace hash" is the hash of its plan
//! (what `--check-determinism` compares), not of what happened, and a
//! failing seed may pass when replayed; its saved plan still replays the
//! same workload. Interleave points inside the store
//! (`crosstalk_service::fault_points::interleave`, inert in production and
//! in the simulator) pause a seeded share of the racing steps for a yield or
//! a few microseconds, to widen the windows.
//!
//! The harness never judges: every answer goes to the oracle with the
//! harness's monotonic counter at its send and at its answer, so an answer
//! is held only to the acknowledgements that came back before it was sent
//! (raced ones go either way, as in the simulator). After every writer
//! stopped, every claim is probed again (history, playback twice of every
//! recording ever acknowledged, and for a closed account the store's
//! service listing and reads): a stale cache fill or a recording a closing
//! forgot shows there. Positive controls: `requests_raced` (playbacks
//! answered while a deletion of the same recording was in flight) and
//! `quiescent_probes`; the vacuity rules fail a threads scenario without
//! either.
//!
//! Speakers are sold while their uploads are in flight; a capture stays its
//! seller's whichever commits first. Out of scope so far: the export
//! service and its workers (exports racing deletions are the simulator's).

mod driver;
mod judge;
pub mod plan;

pub use plan::{ThreadsPlan, ThreadsSpec};

use crate::check::Controls;
use crate::plan::Plan;
use crate::world::RunOutcome;
use driver::{Interleaver, Shared};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What people say; the content picks the words.
const WORDS: [&str; 5] = [
    "what's the weather",
    "play the news",
    "order more coffee",
    "set a timer",
    "turn off the lights",
];

/// How long the runtime may take to stop its worker threads.
const SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(10);

/// Every capture of `account` in `plan`: the initial ones, then those
/// uploaded during the rounds.
fn captures_of(plan: &ThreadsPlan, account: usize) -> impl Iterator<Item = plan::Capture> + '_ {
    let initial = plan.accounts[account].initial.iter().copied();
    let later = plan.rounds.iter().flatten().filter_map(move |op| match op {
        plan::RaceOp::Upload {
            account: a,
            capture,
        } if *a == account => Some(*capture),
        _ => None,
    });
    initial.chain(later)
}

/// Run `plan`'s threads workload and judge it.
pub fn run(plan: &Plan, threads: &ThreadsPlan) -> RunOutcome {
    let (planted, mut infra_errors) = crate::world::planted_bugs(plan);
    let plan_hash = hex::encode(Sha256::digest(
        serde_json::to_vec(threads).unwrap_or_default(),
    ));
    let mut outcome = RunOutcome {
        seed: plan.seed,
        trace_hash: plan_hash,
        trace_events: threads.rounds.iter().map(|r| r.len() as u64).sum(),
        trace_lines: vec![format!(
            "{} (the hash is the plan's: the interleaving is not reproducible)",
            threads.describe()
        )],
        violations: Vec::new(),
        controls: Controls::default(),
        simulated_ms: 0,
        sut_requests: 0,
        infra_errors: Vec::new(),
        store_disk: Default::default(),
        export_disk: Default::default(),
        probes: BTreeMap::new(),
    };
    let points = Arc::new(Interleaver::new(threads));
    let store = match driver::open_store(plan.seed, planted, points.clone()) {
        Ok(store) => store,
        Err(e) => {
            infra_errors.push(e);
            outcome.infra_errors = infra_errors;
            return outcome;
        }
    };
    let probes: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let runtime = match runtime(threads.worker_threads as usize, probes.clone()) {
        Ok(runtime) => runtime,
        Err(e) => {
            infra_errors.push(format!("the multi-thread runtime did not start: {e}"));
            outcome.infra_errors = infra_errors;
            return outcome;
        }
    };
    let shared = Arc::new(Shared::new(store, plan.seed, plan.canary_break));
    runtime.block_on(driver::drive(shared.clone(), threads.clone()));
    runtime.shutdown_timeout(SHUTDOWN);
    let oracle = judge::judge(&shared, threads, plan.seed);
    outcome.violations = oracle.violations().to_vec();
    outcome.controls = oracle.controls().clone();
    outcome.sut_requests = judge::requests(&shared);
    outcome.probes = std::mem::take(&mut *probes.lock().unwrap_or_else(|p| p.into_inner()));
    infra_errors.extend(judge::set_up_failures(&shared, threads));
    outcome.infra_errors = infra_errors;
    outcome
}

/// The multi-thread runtime; each worker thread hands its code-probe
/// counts to `probes` when it stops.
fn runtime(
    workers: usize,
    probes: Arc<Mutex<BTreeMap<String, u64>>>,
) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .on_thread_start(crosstalk_service::probes::reset)
        .on_thread_stop(move || {
            let mut all = probes.lock().unwrap_or_else(|p| p.into_inner());
            for (name, hits) in crosstalk_service::probes::take() {
                *all.entry(name.to_string()).or_default() += hits;
            }
        })
        .enable_time()
        .build()
}
