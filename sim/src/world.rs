//! One run: a plan executed in a turmoil world, judged by the oracle.
//!
//! The world has one host per service instance — `store` (the recording
//! store, database on a simulated in-memory disk) and `export` (the export
//! service and its worker) — and a few client hosts, each driving many
//! people as tasks. Turmoil's seed, epoch, tick, latency and duration all
//! come from the plan, so the plan alone determines the run.

use crate::check::{Controls, Invariant, Oracle, Violation};
use crate::faults::disk::{DiskStats, SimDisk};
use crate::net::{EPOCH_MS, EXPORT_HOST, EXPORT_PORT, STORE_HOST, STORE_PORT, SimClock, SimConnector, SimListener};
use crate::plan::Plan;
use crate::watermark::WatermarkKey;
use crate::workload::{World, person};
use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use crosstalk_export::{ExportConfig, ExportService};
use crosstalk_model::SeededEntropy;
use crosstalk_service::{HttpClient, Spawner};
use crosstalk_store::{Store, StoreConfig};
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

/// Simulated time allowed past `active + drain` before turmoil gives up.
const SLACK_MS: u64 = 60_000;
/// How soon a supervisor restarts a service process that exited.
const SUPERVISOR_RESTART_MS: u64 = 1_000;
/// How often the store decides held orders.
const ORDER_SWEEP_MS: u64 = 1_000;
/// A restarted store runs at least this long before the next crash.
const STORE_SETTLE_MS: u64 = 1_000;

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
    /// What the store's simulated disk went through.
    pub store_disk: DiskStats,
}

impl RunOutcome {
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.infra_errors.is_empty()
    }
}

/// A secret derived from the seed for one purpose.
pub fn derive(seed: u64, purpose: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"crosstalk/derive/v1");
    hasher.update(seed.to_be_bytes());
    hasher.update(purpose.as_bytes());
    hasher.finalize().into()
}

fn count_requests(router: Router, counter: Arc<AtomicU64>) -> Router {
    router.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        counter.fetch_add(1, Ordering::Relaxed);
        next.run(request)
    }))
}

/// Execute `plan` and judge it.
pub fn run_plan(plan: &Plan) -> RunOutcome {
    let seed = plan.seed;
    let emails = plan.accounts.iter().map(|a| a.email.clone()).collect();
    let world = World::new(plan.clone(), Oracle::new(WatermarkKey::for_seed(seed), emails));
    let sut_requests = Arc::new(AtomicU64::new(0));
    let service_token = hex::encode(derive(seed, "service-token"));
    let duration_ms = plan.active_ms + plan.drain_ms + SLACK_MS;

    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_MS))
        .simulation_duration(Duration::from_millis(duration_ms))
        .tick_duration(Duration::from_millis(plan.tick_ms))
        .min_message_latency(Duration::from_millis(plan.latency_ms_min))
        .max_message_latency(Duration::from_millis(plan.latency_ms_max))
        .enable_random_order()
        .build();

    // The store's disk outlives the store's process: it is what a restart
    // recovers from.
    let disk_seed = u64::from_be_bytes(derive(seed, "store-disk")[..8].try_into().unwrap_or_default());
    let store_disk = SimDisk::new(disk_seed, plan.store_io_errors_per_million, 1_000_000);
    {
        let token = service_token.clone();
        let counter = sut_requests.clone();
        let restarts = Cell::new(0u64);
        let disk = store_disk.clone();
        let world = world.clone();
        sim.host(STORE_HOST, move || {
            let world = world.clone();
            let token = token.clone();
            let counter = counter.clone();
            restarts.set(restarts.get() + 1);
            let entropy = SeededEntropy::from_seed_bytes(derive(seed, &format!("store/{}", restarts.get())));
            let handle = disk.open();
            async move {
                let opened =
                    Store::open(handle, Arc::new(SimClock), Arc::new(entropy), StoreConfig { service_token: token, password_iterations: 1 });
                let store = match opened {
                    Ok(store) => store,
                    Err(e) => {
                        // The process exits; the world's supervisor restarts it.
                        world.trace.borrow_mut().record(crate::net::sim_now_ms(), &format!("store: exiting: {e}"));
                        return Ok(());
                    }
                };
                let store = Arc::new(store);
                tokio::task::spawn_local(store.clone().run_order_sweeper(Duration::from_millis(ORDER_SWEEP_MS)));
                let listener = SimListener::bind(STORE_PORT).await?;
                let router = count_requests(crosstalk_store::router(store.clone()), counter);
                tokio::select! {
                    biased;
                    _ = store.until_storage_fails() => {
                        // The process exits; the world's supervisor restarts it.
                        world.trace.borrow_mut().record(crate::net::sim_now_ms(), "store: disk failed, exiting");
                    }
                    _ = crosstalk_service::serve_with(listener, router, Spawner::Local) => {}
                }
                Ok(())
            }
        });
    }
    {
        let token = service_token.clone();
        let counter = sut_requests.clone();
        let canary = plan.canary_leak_into_archives;
        let restarts = Cell::new(0u64);
        sim.host(EXPORT_HOST, move || {
            let token = token.clone();
            let counter = counter.clone();
            restarts.set(restarts.get() + 1);
            let entropy = SeededEntropy::from_seed_bytes(derive(seed, &format!("export/{}", restarts.get())));
            async move {
                let store_client = HttpClient::new(
                    Arc::new(SimConnector { host: STORE_HOST, port: STORE_PORT }),
                    Duration::from_secs(10),
                    4,
                )
                .with_spawner(Spawner::Local);
                let config = ExportConfig { store_service_token: token, ..ExportConfig::default() };
                let service = Arc::new(ExportService::open(
                    redb::backends::InMemoryBackend::new(),
                    Arc::new(SimClock),
                    Arc::new(entropy),
                    store_client,
                    config,
                )?);
                tokio::task::spawn_local(service.clone().run_worker());
                let listener = SimListener::bind(EXPORT_PORT).await?;
                let mut router = crosstalk_export::router(service);
                if canary {
                    router = crate::canary::wrap(router);
                }
                crosstalk_service::serve_with(listener, count_requests(router, counter), Spawner::Local).await;
                Ok(())
            }
        });
    }
    let people = plan.accounts.len();
    let hosts = plan.client_hosts.max(1) as usize;
    for host in 0..hosts {
        let world = world.clone();
        sim.client(format!("client-{host}"), async move {
            let handles: Vec<_> = (host..people)
                .step_by(hosts)
                .map(|index| tokio::task::spawn_local(person(world.clone(), index)))
                .collect();
            for handle in handles {
                handle.await?;
            }
            Ok(())
        });
    }

    // Step the world, crashing and restarting the store on schedule.
    let mut crashes = plan.store_crashes.iter().peekable();
    let mut restart_at_ms: Option<u64> = None;
    // An armed power loss waiting for the store's next writes, and its downtime.
    let mut armed_downtime_ms: Option<u64> = None;
    let mut store_up_since_ms = 0;
    let result = loop {
        let now_ms = sim.elapsed().as_millis() as u64;
        if let Some(at) = restart_at_ms
            && now_ms >= at
        {
            sim.bounce(STORE_HOST);
            restart_at_ms = None;
            store_up_since_ms = now_ms;
            world.trace.borrow_mut().record(now_ms, "fault: store restarted");
        }
        if restart_at_ms.is_none() && !sim.is_host_running(STORE_HOST) {
            // The store process exited by itself (it could not open its
            // database); a supervisor starts it again shortly.
            restart_at_ms = Some(now_ms + SUPERVISOR_RESTART_MS);
            world.trace.borrow_mut().record(now_ms, "supervisor: store exited, restarting");
        }
        if let Some(downtime_ms) = armed_downtime_ms {
            if store_disk.take_tripped() {
                // The power went mid-write during the last step; the process
                // dies with it.
                sim.crash(STORE_HOST);
                armed_downtime_ms = None;
                restart_at_ms = Some(now_ms + downtime_ms);
                world.oracle.borrow_mut().controls.store_crashes += 1;
                let event = format!("fault: store lost power mid-write, down for {downtime_ms} ms");
                world.trace.borrow_mut().record(now_ms, &event);
            } else if now_ms >= plan.active_ms {
                // Faults heal with the active period.
                store_disk.disarm();
                armed_downtime_ms = None;
            }
        }
        if now_ms >= plan.active_ms && plan.store_io_errors_per_million > 0 {
            store_disk.set_io_error_rate(0, 1);
        }
        if restart_at_ms.is_none()
            && armed_downtime_ms.is_none()
            && now_ms < plan.active_ms
            && now_ms >= store_up_since_ms + STORE_SETTLE_MS
            && let Some(crash) = crashes.next_if(|c| c.at_ms <= now_ms)
        {
            match crash.mid_write_ops {
                Some(ops) => {
                    store_disk.arm_power_loss(ops);
                    armed_downtime_ms = Some(crash.downtime_ms);
                    world.trace.borrow_mut().record(now_ms, &format!("fault: store power loss armed at write {ops}"));
                }
                None => {
                    // Power first, so the dying process cannot write after the crash.
                    store_disk.crash();
                    sim.crash(STORE_HOST);
                    restart_at_ms = Some(now_ms + crash.downtime_ms);
                    world.oracle.borrow_mut().controls.store_crashes += 1;
                    let event = format!("fault: store crashed for {} ms", crash.downtime_ms);
                    world.trace.borrow_mut().record(now_ms, &event);
                }
            }
        }
        match sim.step() {
            Ok(true) => break Ok(()),
            Ok(false) => {}
            Err(e) => break Err(e),
        }
    };
    let simulated_ms = sim.elapsed().as_millis() as u64;
    drop(sim);

    let mut infra_errors = world.errors.borrow().clone();
    {
        let mut oracle = world.oracle.borrow_mut();
        if let Err(e) = result {
            let message = e.to_string();
            if message.contains("Ran for duration") {
                let detail = format!("the world was still busy after {duration_ms} simulated ms: {message}");
                oracle.violate(Invariant::Liveness, simulated_ms, None, None, detail);
            } else {
                infra_errors.push(format!("simulation error: {message}"));
            }
        }
    }
    let oracle = world.oracle.borrow();
    let trace = world.trace.borrow();
    RunOutcome {
        seed,
        trace_hash: trace.hash(),
        trace_events: trace.events(),
        trace_lines: trace.lines().to_vec(),
        violations: oracle.violations.clone(),
        controls: oracle.controls.clone(),
        simulated_ms,
        sut_requests: sut_requests.load(Ordering::Relaxed),
        infra_errors,
        store_disk: store_disk.stats(),
    }
}
