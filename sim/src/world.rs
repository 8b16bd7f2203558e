//! One run: a plan executed in a turmoil world, judged by the oracle.
//!
//! The world has one host per service instance — `store` (the recording
//! store, database on a simulated in-memory disk) and `export` (the export
//! service and its worker) — and a few client hosts, each driving many
//! people as tasks. Turmoil's seed, epoch, tick, latency and duration all
//! come from the plan, so the plan alone determines the run.

use crate::check::{Controls, Invariant, Oracle, Violation};
use crate::net::{EPOCH_MS, EXPORT_HOST, EXPORT_PORT, STORE_HOST, STORE_PORT, SimClock, SimConnector, SimListener};
use crate::plan::Plan;
use crate::trace::Trace;
use crate::watermark::WatermarkKey;
use crate::workload::{Board, World, person};
use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use crosstalk_export::{ExportConfig, ExportService};
use crosstalk_model::SeededEntropy;
use crosstalk_service::HttpClient;
use crosstalk_store::{Store, StoreConfig};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

/// Simulated time allowed past `active + drain` before turmoil gives up.
const SLACK_MS: u64 = 60_000;

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub seed: u64,
    pub trace_hash: String,
    pub trace_events: u64,
    pub trace_tail: Vec<String>,
    pub violations: Vec<Violation>,
    pub controls: Controls,
    pub simulated_ms: u64,
    /// HTTP requests the services handled (users' and service-to-service).
    pub sut_requests: u64,
    /// Problems that stopped the run from doing what it planned.
    pub infra_errors: Vec<String>,
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
    let world = Rc::new(World {
        plan: plan.clone(),
        oracle: RefCell::new(Oracle::new(WatermarkKey::for_seed(seed), emails)),
        trace: RefCell::new(Trace::default()),
        board: RefCell::new(Board::default()),
        client_requests: Cell::new(0),
        errors: RefCell::new(Vec::new()),
    });
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

    {
        let token = service_token.clone();
        let counter = sut_requests.clone();
        let restarts = Cell::new(0u64);
        sim.host(STORE_HOST, move || {
            let token = token.clone();
            let counter = counter.clone();
            restarts.set(restarts.get() + 1);
            let entropy = SeededEntropy::from_seed_bytes(derive(seed, &format!("store/{}", restarts.get())));
            async move {
                let store = Store::open(
                    redb::backends::InMemoryBackend::new(),
                    Arc::new(SimClock),
                    Arc::new(entropy),
                    StoreConfig { service_token: token },
                )?;
                let listener = SimListener::bind(STORE_PORT).await?;
                let router = count_requests(crosstalk_store::router(Arc::new(store)), counter);
                crosstalk_service::serve(listener, router).await;
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
                );
                let config = ExportConfig { store_service_token: token, ..ExportConfig::default() };
                let service = Arc::new(ExportService::open(
                    redb::backends::InMemoryBackend::new(),
                    Arc::new(SimClock),
                    Arc::new(entropy),
                    store_client,
                    config,
                )?);
                tokio::spawn(service.clone().run_worker());
                let listener = SimListener::bind(EXPORT_PORT).await?;
                let mut router = crosstalk_export::router(service);
                if canary {
                    router = crate::canary::wrap(router);
                }
                crosstalk_service::serve(listener, count_requests(router, counter)).await;
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

    let result = sim.run();
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
        trace_tail: trace.tail(),
        violations: oracle.violations.clone(),
        controls: oracle.controls.clone(),
        simulated_ms,
        sut_requests: sut_requests.load(Ordering::Relaxed),
        infra_errors,
    }
}
