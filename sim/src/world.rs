//! One run: a plan executed in a turmoil world, judged by the oracle.
//!
//! The world has one host per service instance — `store` (the recording
//! store, database on a simulated in-memory disk) and `export` (the export
//! service and its worker) — and a few client hosts, each driving many
//! people as tasks. Turmoil's seed, epoch, tick, latency and duration all
//! come from the plan, so the plan alone determines the run.

use crate::canary::CanaryBreak;
use crate::check::contract::FiredPoints;
use crate::check::{Controls, Event, Oracle, Violation};
use crate::faults::ack_crash::AckCrash;
use crate::faults::disk::{DiskStats, SimDisk};
use crate::faults::points::SeededFaultPoints;
use crate::faults::publish_crash::PublishCrash;
use crate::net::{
    EPOCH_MS, EXPORT_HOST, EXPORT_PORT, STORE_HOST, STORE_PORT, SimClock, SimConnector, SimListener,
};
use crate::plan::Plan;
use crate::plan::{Crash, NetFault, NetFaultKind};
use crate::watermark::WatermarkKey;
use crate::workload::{World, person};
use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use crosstalk_export::worker::{Worker, WorkerConfig};
use crosstalk_export::{ExportConfig, ExportService, StoreClient};
use crosstalk_model::SeededEntropy;
use crosstalk_service::{HttpClient, Inject, Planted, Spawner};
use crosstalk_store::{Store, StoreConfig};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, UNIX_EPOCH};

/// Simulated time allowed past `active + drain` before turmoil gives up.
const SLACK_MS: u64 = 60_000;
/// How soon a supervisor restarts a service process that exited.
const SUPERVISOR_RESTART_MS: u64 = 1_000;
/// How often the store decides held orders.
const ORDER_SWEEP_MS: u64 = 1_000;
/// A restarted host runs at least this long before its next crash.
const SETTLE_MS: u64 = 1_000;
/// How often an idle worker asks for work, and its page size.
const WORKER_POLL_MS: u64 = 500;
const WORKER_PAGE_ITEMS: usize = 5;
/// Jobs one worker builds at once.
const WORKER_JOB_SLOTS: usize = 2;

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

/// A secret derived from the seed for one purpose.
pub fn derive(seed: u64, purpose: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"crosstalk/derive/v1");
    hasher.update(seed.to_be_bytes());
    hasher.update(purpose.as_bytes());
    hasher.finalize().into()
}

fn count_requests(router: Router, counter: Arc<AtomicU64>) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            counter.fetch_add(1, Ordering::Relaxed);
            next.run(request)
        },
    ))
}

/// Connections a client host may hold open per person (a pool of two to
/// each service).
const CONNECTIONS_PER_PERSON: usize = 4;
/// Connections each worker and the export service's store client may hold,
/// plus the agent's: a fixed allowance on top of the people's.
const CONNECTIONS_PER_WORKER: usize = 6;
const CONNECTIONS_FIXED: usize = 16;
/// Requests each service handles at once before it answers 503
/// `overloaded` (the clients back off and retry).
const SERVE_LIMITS: crosstalk_service::ServeLimits = crosstalk_service::ServeLimits {
    max_in_flight: 256,
    retry_after_s: 1,
};
/// Turmoil's default socket capacity, kept as the floor.
const TCP_CAPACITY_MIN: usize = 64;

/// Turmoil's per-socket capacity (its accept backlog and stream buffers),
/// sized from the world: every connection the world's clients may open at
/// the same instant — each person's pools, one per device for good
/// measure, the workers' and the services' own — fits in a server's
/// backlog, so a crowd connecting at once (sign-up, a reconnect storm)
/// waits to be accepted instead of overflowing it. A scenario may set it
/// (to test the harness's own limits).
pub fn tcp_capacity(plan: &Plan) -> usize {
    if let Some(capacity) = plan.tcp_capacity {
        return capacity as usize;
    }
    let people = plan.accounts.len();
    // An always-on speaker (`workload/devices.rs`) has a pool of its own.
    let devices: usize = plan
        .accounts
        .iter()
        .map(|a| a.devices as usize + if a.ambient.is_empty() { 0 } else { 2 })
        .sum();
    let workers = plan.worker_hosts as usize;
    (CONNECTIONS_PER_PERSON * people
        + devices
        + CONNECTIONS_PER_WORKER * workers
        + CONNECTIONS_FIXED)
        .max(TCP_CAPACITY_MIN)
}

/// Layers put in front of the services' routers, for the harness's own
/// tests only: each plants a small defect (see `sim/tests/adversary.rs`), as
/// the canary does, to prove that a check sees it. Empty in every real run.
#[derive(Clone, Default)]
pub struct Wrappers {
    pub store: Option<Rc<dyn Fn(Router) -> Router>>,
    pub export: Option<Rc<dyn Fn(Router) -> Router>>,
}

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
    let seed = plan.seed;
    // The services count their code probes on this thread, where the whole
    // simulation runs.
    crosstalk_service::probes::reset();
    let (planted, plant_errors) = planted_bugs(plan);
    // Panics inside the services become violations of this run.
    let collecting_panics = crate::check::panics::collect();
    let emails = plan.accounts.iter().map(|a| a.email.clone()).collect();
    let agent_token = hex::encode(derive(seed, "agent-token"));
    let mut oracle = Oracle::new(WatermarkKey::for_seed(seed), emails);
    oracle.learn_limits(crate::check::limits::ExportLimits {
        link_ttl_ms: plan.link_ttl_ms,
        max_downloads: plan.max_downloads,
    });
    oracle.learn_ticket_attempts(plan.ticket_attempts);
    let deadlines = export_config(plan);
    oracle.learn_deadlines(deadlines.deadline_ms, deadlines.max_extension_ms);
    if let Some(poison) = &plan.poison {
        let (request_ms, until_ms) = (poison.request_ms, poison.until_ms);
        let contract = retry_contract(plan);
        oracle.learn_poison(poison.principal as usize, request_ms, until_ms, contract);
    }
    let world = World::new(plan.clone(), oracle, agent_token.clone());
    let sut_requests = Arc::new(AtomicU64::new(0));
    let faults_fired = Arc::new(AtomicU64::new(0));
    let fired_points = FiredPoints::default();
    let hot_key = u64::from_le_bytes(
        derive(seed, "hot-fault-points")[..8]
            .try_into()
            .unwrap_or_else(|_| unreachable!("a 32-byte digest has 8 bytes")),
    );
    let fault_points = |name: String| -> Arc<dyn crosstalk_service::fault_points::FaultPoints> {
        Arc::new(
            SeededFaultPoints::new(
                derive(seed, &format!("fault-points/{name}")),
                hot_key,
                plan.sut_fault_points_per_mille,
                plan.active_ms,
                faults_fired.clone(),
            )
            .logging_into(name, fired_points.clone())
            .with_collection(world.collection_faults.clone()),
        )
    };
    let service_token = hex::encode(derive(seed, "service-token"));
    let worker_token = hex::encode(derive(seed, "worker-token"));
    let duration_ms = plan.active_ms + plan.drain_ms + SLACK_MS;

    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_MS))
        .simulation_duration(Duration::from_millis(duration_ms))
        .tick_duration(Duration::from_millis(plan.tick_ms))
        .min_message_latency(Duration::from_millis(plan.latency_ms_min))
        .max_message_latency(Duration::from_millis(plan.latency_ms_max))
        .enable_random_order()
        .tcp_capacity(tcp_capacity(plan))
        .build();

    // The store's disk outlives the store's process: it is what a restart
    // recovers from.
    let disk_seed = u64::from_be_bytes(
        derive(seed, "store-disk")[..8]
            .try_into()
            .unwrap_or_default(),
    );
    let store_disk = SimDisk::new(disk_seed, 0, 1);
    // Crashes right after the store acknowledges a rare write.
    let after_ack = (!plan.ack_crashes.is_empty())
        .then(|| AckCrash::new(plan.ack_crashes.clone(), plan.active_ms, store_disk.clone()));
    let contract_break = plan.canary_break;
    let contract_broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The export service's lookups of addresses, as the store's door saw them.
    let lookup_log = crate::lookup_watch::LookupLog::default();
    // The requests in flight inside each service, as the simulator counts
    // them (the services' overloaded refusals are judged against them).
    let store_load = crate::load_watch::LoadGauge::default();
    let export_load = crate::load_watch::LoadGauge::default();
    // The services' latest incarnations, whose state is digested at the end.
    // (Weak: a crashed incarnation must still be dropped with its host.)
    let last_store: Rc<RefCell<Weak<Store>>> = Rc::default();
    let last_export: Rc<RefCell<Weak<ExportService>>> = Rc::default();
    {
        let last_store = last_store.clone();
        let contract_broken = contract_broken.clone();
        let token = service_token.clone();
        let counter = sut_requests.clone();
        let restarts = Cell::new(0u64);
        let disk = store_disk.clone();
        let world = world.clone();
        let wrap = wrappers.store.clone();
        // When the store answered each upload, for the snapshot claims.
        let upload_door = crate::upload_watch::UploadDoor::default();
        world
            .oracle
            .borrow_mut()
            .learn_upload_door(upload_door.clone());
        let after_ack = after_ack.clone();
        let after_introspect = plan
            .downloads_while_store_down()
            .then(|| world.introspect_crash.clone());
        let lookups = lookup_log.clone();
        let load = store_load.clone();
        sim.host(STORE_HOST, move || {
            let load = load.clone();
            let wrap = wrap.clone();
            let door = upload_door.clone();
            let after_ack = after_ack.clone();
            let after_introspect = after_introspect
                .clone()
                .map(|crash| (crash, disk.clone()));
            let lookups = lookups.clone();
            let disk = disk.clone();
            let world = world.clone();
            let last_store = last_store.clone();
            let contract_broken = contract_broken.clone();
            let token = token.clone();
            let service_token_for_canary = token.clone();
            let counter = counter.clone();
            restarts.set(restarts.get() + 1);
            let entropy = SeededEntropy::from_seed_bytes(derive(seed, &format!("store/{}", restarts.get())));
            let handle = disk.open();
            let points = fault_points(format!("store/{}", restarts.get()));
            async move {
                let opened =
                    Store::open(handle, Arc::new(SimClock), Arc::new(entropy), StoreConfig { service_token: token, password_iterations: 1, limits: SERVE_LIMITS });
                let store = match opened {
                    Ok(store) => store.with_fault_points(points).with_planted(planted),
                    Err(e) => {
                        // The process exits; the world's supervisor restarts it.
                        world.trace.borrow_mut().record(crate::net::sim_now_ms(), &format!("store: exiting: {e}"));
                        return Ok(());
                    }
                };
                let store = Arc::new(store);
                *last_store.borrow_mut() = Arc::downgrade(&store);
                tokio::task::spawn_local(store.clone().run_order_sweeper(Duration::from_millis(ORDER_SWEEP_MS)));
                let listener = SimListener::bind(STORE_PORT).await?;
                let mut router =
                    crate::upload_watch::watch(crosstalk_store::router(store.clone()), door.clone());
                router = match contract_break {
                    Some(CanaryBreak::NotDurable { write }) => crate::canary::unsynced(router, write, disk),
                    Some(CanaryBreak::SyncErrorsSwallowed) => crate::canary::swallow_sync_errors(router, &disk),
                    Some(CanaryBreak::ServiceRoutesOpen) => crate::canary::open_service_routes(router, service_token_for_canary.clone()),
                    Some(how) => crate::canary::break_store(router, how, contract_broken),
                    None => router,
                };
                if let Some(wrap) = wrap {
                    router = wrap(router);
                }
                if let Some(after_ack) = after_ack {
                    router = crate::faults::ack_crash::layer(router, after_ack);
                }
                if let Some((crash, power)) = after_introspect {
                    router = crate::faults::live_check::layer(router, crash, power);
                }
                router = crate::lookup_watch::watch(router, lookups);
                let router = crate::load_watch::watch(count_requests(router, counter), load);
                tokio::select! {
                    biased;
                    _ = store.until_storage_fails() => {
                        // The process exits; the world's supervisor restarts it.
                        world.trace.borrow_mut().record(crate::net::sim_now_ms(), "store: disk failed, exiting");
                    }
                    _ = crosstalk_service::serve_limited(listener, router, Spawner::Local, SERVE_LIMITS) => {}
                }
                Ok(())
            }
        });
    }
    // The export service: its own disk, its own crashes.
    let export_disk_seed = u64::from_be_bytes(
        derive(seed, "export-disk")[..8]
            .try_into()
            .unwrap_or_default(),
    );
    let export_disk = SimDisk::new(export_disk_seed, 0, 1);
    // Power losses inside publications (`faults/publish_crash.rs`).
    let publish_crash = (!plan.publish_crashes.is_empty()).then(|| {
        PublishCrash::new(
            plan.publish_crashes.clone(),
            plan.active_ms,
            export_disk.clone(),
        )
    });
    // The workers' lease traffic as the export service's door saw it.
    let lease_log = crate::lease_watch::LeaseLog::default();
    {
        let token = service_token.clone();
        let worker_token = worker_token.clone();
        let agent_token = agent_token.clone();
        let counter = sut_requests.clone();
        let canary = plan.canary_leak_into_archives;
        let mut export_base = export_config(plan);
        if plan.canary_break == Some(crate::canary::CanaryBreak::NoRetryBackoff) {
            // Harness self-test: a service that retries a failing job at
            // once and forever (the oracle judges by `export_config`).
            export_base.retry_backoff_ms = 0;
            export_base.max_backoff_ms = 0;
            export_base.max_attempts = u32::MAX;
        }
        let restarts = Cell::new(0u64);
        let disk = export_disk.clone();
        let world = world.clone();
        let last_export = last_export.clone();
        let wrap = wrappers.export.clone();
        let leases = lease_log.clone();
        let publish_crash = publish_crash.clone();
        let load = export_load.clone();
        sim.host(EXPORT_HOST, move || {
            let load = load.clone();
            let wrap = wrap.clone();
            let leases = leases.clone();
            let publish_crash = publish_crash.clone();
            let world = world.clone();
            let last_export = last_export.clone();
            let token = token.clone();
            let config = ExportConfig {
                worker_token: worker_token.clone(),
                agent_tokens: vec![(
                    crate::check::books::AGENT_NAME.to_string(),
                    agent_token.clone(),
                )],
                ..export_base.clone()
            };
            let limits = config.limits;
            let counter = counter.clone();
            restarts.set(restarts.get() + 1);
            let entropy =
                SeededEntropy::from_seed_bytes(derive(seed, &format!("export/{}", restarts.get())));
            let handle = disk.open();
            let points = fault_points(format!("export/{}", restarts.get()));
            async move {
                let store = StoreClient::new(store_client(Duration::from_secs(10), planted), token);
                let opened = ExportService::open(
                    handle,
                    Arc::new(SimClock),
                    Arc::new(entropy),
                    store,
                    config,
                );
                let service = match opened {
                    Ok(service) => {
                        Arc::new(service.with_fault_points(points).with_planted(planted))
                    }
                    Err(e) => {
                        world
                            .trace
                            .borrow_mut()
                            .record(crate::net::sim_now_ms(), &format!("export: exiting: {e}"));
                        return Ok(());
                    }
                };
                *last_export.borrow_mut() = Arc::downgrade(&service);
                let listener = SimListener::bind(EXPORT_PORT).await?;
                let mut router = crosstalk_export::router(service);
                if canary {
                    router = crate::canary::wrap(router);
                }
                if let Some(wrap) = wrap {
                    router = wrap(router);
                }
                if let Some(crash) = publish_crash {
                    router = crate::faults::publish_crash::layer(router, crash);
                }
                // At the door: what the workers saw, test layers included.
                router = crate::lease_watch::watch(router, leases);
                crosstalk_service::serve_limited(
                    listener,
                    crate::load_watch::watch(count_requests(router, counter), load),
                    Spawner::Local,
                    limits,
                )
                .await;
                Ok(())
            }
        });
    }
    // Workers: stateless hosts that claim jobs from the export service.
    for worker in 0..plan.worker_hosts {
        let name = format!("worker-{worker}");
        let host_name = name.clone();
        let worker_token = worker_token.clone();
        let token = service_token.clone();
        let restarts = Cell::new(0u64);
        let fault_points = &fault_points;
        sim.host(host_name.as_str(), move || {
            restarts.set(restarts.get() + 1);
            let points = fault_points(format!("{name}/{}", restarts.get()));
            let config = WorkerConfig {
                name: name.clone(),
                worker_token: worker_token.clone(),
                poll_ms: WORKER_POLL_MS,
                page_items: WORKER_PAGE_ITEMS,
            };
            let token = token.clone();
            async move {
                let export = HttpClient::new(
                    Arc::new(SimConnector {
                        host: EXPORT_HOST,
                        port: EXPORT_PORT,
                    }),
                    Duration::from_secs(10),
                    2,
                )
                .with_spawner(Spawner::Local)
                .with_planted(planted);
                let store = StoreClient::new(store_client(Duration::from_secs(10), planted), token);
                Worker::new(config, export, store, Arc::new(SimClock))
                    .with_fault_points(points)
                    .with_planted(planted)
                    .with_concurrency(WORKER_JOB_SLOTS)
                    .run()
                    .await;
                Ok(())
            }
        });
    }
    let people = plan.accounts.len();
    let hosts = plan.client_hosts.max(1) as usize;
    for host in 0..hosts {
        let world = world.clone();
        sim.client(format!("client-{host}"), async move {
            let mut handles: Vec<_> = (host..people)
                .step_by(hosts)
                .map(|index| tokio::task::spawn_local(person(world.clone(), index)))
                .collect();
            if host == 0
                && let Some(agent_plan) = world.plan.agent.clone()
            {
                handles.push(tokio::task::spawn_local(crate::workload::agent(
                    world.clone(),
                    agent_plan,
                )));
            }
            for handle in handles {
                handle.await?;
            }
            Ok(())
        });
    }

    // Step the world, crashing and restarting hosts on schedule.
    let mut hosts: Vec<Crashable> = Vec::new();
    let mut store_host = Crashable::new(STORE_HOST, Some(store_disk.clone()), true);
    store_host.after_ack = after_ack.clone();
    store_host.after_introspect = plan
        .downloads_while_store_down()
        .then(|| world.introspect_crash.clone());
    hosts.push(store_host);
    let mut export_host = Crashable::new(EXPORT_HOST, Some(export_disk.clone()), true);
    export_host.in_publication = publish_crash.clone();
    hosts.push(export_host);
    for worker in 0..plan.worker_hosts {
        hosts.push(Crashable::new(&format!("worker-{worker}"), None, false));
    }
    for crash in &plan.crashes {
        if let Some(host) = hosts.iter_mut().find(|h| h.name == crash.host) {
            host.schedule.push_back(crash.clone());
        }
    }
    // Disk I/O errors, like crashes, begin once the world has settled
    // (an interrupted first initialization is a deploy problem, not ours).
    let io_errors_from_ms = plan.crashes_from_ms;
    let mut io_errors_on = false;
    let mut net_pending: std::collections::VecDeque<NetFault> =
        plan.net_faults.iter().cloned().collect();
    let mut net_active: Vec<(u64, NetFault)> = Vec::new();
    let result = loop {
        let now_ms = sim.elapsed().as_millis() as u64;
        // Network faults: start what is due, heal what is over (and
        // everything when the active period ends).
        while net_pending
            .front()
            .is_some_and(|f| f.at_ms <= now_ms && now_ms < plan.active_ms)
        {
            let Some(fault) = net_pending.pop_front() else {
                break;
            };
            apply_net_fault(&sim, &fault, true, plan);
            world.oracle.borrow_mut().on(Event::NetFault);
            world.trace.borrow_mut().record(
                now_ms,
                &format!(
                    "fault: {:?} {} -> {} for {} ms",
                    fault.kind, fault.a, fault.b, fault.duration_ms
                ),
            );
            let heals_ms = (fault.at_ms + fault.duration_ms)
                .min(plan.active_ms)
                .max(now_ms);
            world.fault_log.borrow_mut().push(
                format!("{:?} {} -> {}", fault.kind, fault.a, fault.b),
                &[fault.a.as_str(), fault.b.as_str()],
                now_ms,
                heals_ms,
            );
            net_active.push((fault.at_ms + fault.duration_ms, fault));
        }
        let (over, still): (Vec<_>, Vec<_>) = net_active
            .drain(..)
            .partition(|(end, _)| *end <= now_ms || now_ms >= plan.active_ms);
        net_active = still;
        for (_, fault) in over {
            apply_net_fault(&sim, &fault, false, plan);
            world.trace.borrow_mut().record(
                now_ms,
                &format!("fault healed: {:?} {} -> {}", fault.kind, fault.a, fault.b),
            );
        }
        if !io_errors_on
            && plan.store_io_errors_per_million > 0
            && now_ms >= io_errors_from_ms
            && now_ms < plan.active_ms
        {
            store_disk.set_io_error_rate(plan.store_io_errors_per_million, 1_000_000);
            io_errors_on = true;
            world.fault_log.borrow_mut().push(
                "disk I/O errors".to_string(),
                &[STORE_HOST],
                now_ms,
                plan.active_ms,
            );
        }
        for host in &mut hosts {
            host.tick(&mut sim, &world, now_ms, plan.active_ms);
        }
        if now_ms >= plan.active_ms && plan.store_io_errors_per_million > 0 {
            store_disk.set_io_error_rate(0, 1);
        }
        match sim.step() {
            Ok(true) => break Ok(()),
            Ok(false) => {}
            Err(e) => break Err(e),
        }
    };
    let simulated_ms = sim.elapsed().as_millis() as u64;
    record_state_digests(&world, simulated_ms, &last_store, &last_export);
    drop(sim);
    let probes = crosstalk_service::probes::take()
        .into_iter()
        .map(|(name, hits)| (name.to_string(), hits))
        .collect();

    let mut infra_errors = world.errors.borrow().clone();
    infra_errors.extend(plant_errors);
    if let Err(e) = result {
        let mut oracle = world.oracle.borrow_mut();
        let error = oracle.on_simulation_error(e.to_string(), duration_ms, simulated_ms);
        infra_errors.extend(error);
    }
    world
        .oracle
        .borrow_mut()
        .on_sut_faults_fired(faults_fired.load(Ordering::Relaxed));
    world.fault_log.borrow_mut().add_fired_points(&fired_points);
    world
        .oracle
        .borrow_mut()
        .judge_contract(&world.fault_log.borrow(), collecting_panics.finish());
    {
        let mut oracle = world.oracle.borrow_mut();
        oracle.judge_load_shedding(STORE_HOST, &store_load, SERVE_LIMITS);
        oracle.judge_load_shedding(EXPORT_HOST, &export_load, export_config(plan).limits);
    }
    world.oracle.borrow_mut().judge_limits();
    world.oracle.borrow_mut().judge_books();
    {
        let exchanges = lease_log.lock().unwrap_or_else(|p| p.into_inner());
        let lease_ms = export_config(plan).lease_ms;
        world.oracle.borrow_mut().judge_leases(&exchanges, lease_ms);
        let lookups = lookup_log.lock().unwrap_or_else(|p| p.into_inner());
        world
            .oracle
            .borrow_mut()
            .judge_ticket_lookups(&exchanges, &lookups);
        world.oracle.borrow_mut().judge_lookups(&lookups);
    }
    judge_collection_faults(&world);
    let oracle = world.oracle.borrow();
    let trace = world.trace.borrow();
    RunOutcome {
        seed,
        trace_hash: trace.hash(),
        trace_events: trace.events(),
        trace_lines: trace.lines().to_vec(),
        violations: oracle.violations().to_vec(),
        controls: oracle.controls().clone(),
        simulated_ms,
        sut_requests: sut_requests.load(Ordering::Relaxed),
        infra_errors,
        store_disk: store_disk.stats(),
        export_disk: export_disk.stats(),
        probes,
    }
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

/// A host the world may crash and restart: its schedule and its state.
struct Crashable {
    name: String,
    disk: Option<SimDisk>,
    /// Whether its process may exit by itself (and a supervisor restarts it).
    supervised: bool,
    schedule: std::collections::VecDeque<Crash>,
    restart_at_ms: Option<u64>,
    /// An armed mid-write power loss, with the downtime to apply.
    armed_downtime_ms: Option<u64>,
    /// Whether that power loss follows a failed sync (`Crash::sync_error`).
    armed_after_sync_error: bool,
    up_since_ms: u64,
    /// Power losses right after an acknowledged rare write (the store's).
    after_ack: Option<Arc<AckCrash>>,
    /// Power losses as an armed download's live check arrives (the store's).
    after_introspect: Option<Arc<crate::faults::live_check::IntrospectCrash>>,
    /// Power losses inside a publication (the export service's).
    in_publication: Option<Arc<PublishCrash>>,
}

impl Crashable {
    fn new(name: &str, disk: Option<SimDisk>, supervised: bool) -> Self {
        Self {
            name: name.to_string(),
            disk,
            supervised,
            schedule: Default::default(),
            restart_at_ms: None,
            armed_downtime_ms: None,
            armed_after_sync_error: false,
            up_since_ms: 0,
            after_ack: None,
            after_introspect: None,
            in_publication: None,
        }
    }

    fn crashed(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        world: &World,
        now_ms: u64,
        downtime_ms: u64,
        how: &str,
    ) {
        self.crashed_since(sim, world, now_ms, now_ms, downtime_ms, how);
    }

    /// [`Self::crashed`], its power gone since `since_ms` (a crash right
    /// after an acknowledgement struck inside the last step).
    fn crashed_since(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        world: &World,
        since_ms: u64,
        now_ms: u64,
        downtime_ms: u64,
        how: &str,
    ) {
        sim.crash(self.name.as_str());
        self.restart_at_ms = Some(now_ms + downtime_ms);
        world.fault_log.borrow_mut().push(
            format!("{} {how}", self.name),
            &[self.name.as_str()],
            since_ms,
            now_ms + downtime_ms,
        );
        world.oracle.borrow_mut().on_crash(&self.name);
        if self.name == STORE_HOST {
            world.store_power_lost_ms.set(Some(since_ms));
        }
        world.trace.borrow_mut().record(
            now_ms,
            &format!("fault: {} {how}, down for {downtime_ms} ms", self.name),
        );
    }

    /// Apply whatever is due at `now_ms`: restarts, armed power losses that
    /// struck, supervisor restarts, and the next scheduled crash.
    fn tick(&mut self, sim: &mut turmoil::Sim<'_>, world: &World, now_ms: u64, active_ms: u64) {
        self.crash_after_ack(sim, world, now_ms);
        self.crash_after_introspect(sim, world, now_ms);
        self.take_publication_power_loss(world, now_ms);
        if let Some(at) = self.restart_at_ms
            && now_ms >= at
        {
            sim.bounce(self.name.as_str());
            self.restart_at_ms = None;
            self.up_since_ms = now_ms;
            if self.name == STORE_HOST {
                world.store_back_ms.set(Some(now_ms));
            }
            world
                .trace
                .borrow_mut()
                .record(now_ms, &format!("fault: {} restarted", self.name));
        }
        if self.supervised
            && self.restart_at_ms.is_none()
            && !sim.is_host_running(self.name.as_str())
        {
            // The process exited by itself (it could not open its database,
            // or its disk failed); a supervisor starts it again shortly.
            self.restart_at_ms = Some(now_ms + SUPERVISOR_RESTART_MS);
            world.fault_log.borrow_mut().push(
                format!("{} exited by itself", self.name),
                &[self.name.as_str()],
                now_ms,
                now_ms + SUPERVISOR_RESTART_MS,
            );
            world.trace.borrow_mut().record(
                now_ms,
                &format!("supervisor: {} exited, restarting", self.name),
            );
        }
        if let (Some(downtime_ms), Some(disk)) = (self.armed_downtime_ms, self.disk.clone()) {
            if disk.take_tripped() {
                // The power went mid-write during the last step; the process
                // dies with it.
                self.armed_downtime_ms = None;
                let how = if std::mem::take(&mut self.armed_after_sync_error) {
                    world.oracle.borrow_mut().on_power_loss_after_failed_sync();
                    "lost power after a failed sync"
                } else {
                    "lost power mid-write"
                };
                self.crashed(sim, world, now_ms, downtime_ms, how);
            } else if now_ms >= active_ms {
                // Faults heal with the active period.
                disk.disarm();
                self.armed_downtime_ms = None;
                self.armed_after_sync_error = false;
            }
        }
        if self.restart_at_ms.is_none()
            && self.armed_downtime_ms.is_none()
            && now_ms < active_ms
            && now_ms >= self.up_since_ms + SETTLE_MS
            && self.schedule.front().is_some_and(|c| c.at_ms <= now_ms)
        {
            let Some(crash) = self.schedule.pop_front() else {
                return;
            };
            match (crash.mid_write_ops, &self.disk) {
                (_, Some(disk)) if crash.sync_error => {
                    disk.arm_sync_failure();
                    self.armed_downtime_ms = Some(crash.downtime_ms);
                    self.armed_after_sync_error = true;
                    world.trace.borrow_mut().record(
                        now_ms,
                        &format!("fault: {} next sync fails, then the power goes", self.name),
                    );
                }
                (Some(ops), Some(disk)) => {
                    disk.arm_power_loss(ops);
                    self.armed_downtime_ms = Some(crash.downtime_ms);
                    world.trace.borrow_mut().record(
                        now_ms,
                        &format!("fault: {} power loss armed at write {ops}", self.name),
                    );
                }
                _ => {
                    // Power first, so the dying process cannot write after the crash.
                    if let Some(disk) = &self.disk {
                        disk.crash();
                    }
                    self.crashed(sim, world, now_ms, crash.downtime_ms, "crashed");
                }
            }
        }
    }
}

impl Crashable {
    /// A publication reached the export service and its fault armed a
    /// power loss of the disk: apply it like an armed mid-write power loss.
    fn take_publication_power_loss(&mut self, world: &World, now_ms: u64) {
        let Some((write, downtime_ms)) = self.in_publication.as_ref().and_then(|c| c.take_armed())
        else {
            return;
        };
        self.armed_downtime_ms = Some(downtime_ms);
        world.oracle.borrow_mut().on_publication_power_loss_armed();
        world.trace.borrow_mut().record(
            now_ms,
            &format!(
                "fault: {} power loss armed at write {write} of a publication",
                self.name
            ),
        );
    }

    /// The power went right after an acknowledged rare write, inside the
    /// last step: the process dies with it (an armed mid-write power loss
    /// is moot).
    fn crash_after_ack(&mut self, sim: &mut turmoil::Sim<'_>, world: &World, now_ms: u64) {
        let Some(struck) = self.after_ack.as_ref().and_then(|a| a.take_struck()) else {
            return;
        };
        if let Some(disk) = &self.disk {
            disk.disarm();
        }
        self.armed_downtime_ms = None;
        self.armed_after_sync_error = false;
        let how = format!(
            "crashed right after acknowledging a {}",
            struck.write.name()
        );
        world.oracle.borrow_mut().on_crash_after_ack();
        self.crashed_since(sim, world, struck.at_ms, now_ms, struck.downtime_ms, &how);
    }

    /// The power went as a download's live check reached the store
    /// (`faults/live_check.rs`), inside the last step.
    fn crash_after_introspect(&mut self, sim: &mut turmoil::Sim<'_>, world: &World, now_ms: u64) {
        let Some(struck) = self.after_introspect.as_ref().and_then(|a| a.take_struck()) else {
            return;
        };
        if let Some(disk) = &self.disk {
            disk.disarm();
        }
        self.armed_downtime_ms = None;
        self.armed_after_sync_error = false;
        let how = "lost power as a download's live check arrived";
        world
            .oracle
            .borrow_mut()
            .on_live_check_cut_off(struck.at_ms);
        self.crashed_since(sim, world, struck.at_ms, now_ms, struck.downtime_ms, how);
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

/// The export service's retry contract as this run configures it (see
/// [`export_config`]), for the oracle.
fn retry_contract(plan: &Plan) -> crate::check::poison::RetryContract {
    let config = export_config(plan);
    let spikes = plan.net_faults.iter().filter_map(|f| match f.kind {
        NetFaultKind::LatencySpike { latency_ms } => Some(latency_ms),
        _ => None,
    });
    let latency_ms = spikes.fold(plan.latency_ms_max, u64::max);
    crate::check::poison::RetryContract {
        max_attempts: config.max_attempts,
        retry_backoff_ms: config.retry_backoff_ms,
        max_backoff_ms: config.max_backoff_ms,
        // A read reaches the store after the claim's reply and its own
        // trip (each at most the worst latency, plus a connection's
        // handshake), or after a lapsed lease.
        slack_ms: config.lease_ms + 4 * latency_ms + 4 * plan.tick_ms,
    }
}

/// Start (`on`) or heal a network fault.
fn apply_net_fault(sim: &turmoil::Sim<'_>, fault: &NetFault, on: bool, plan: &Plan) {
    let (a, b) = (fault.a.as_str(), fault.b.as_str());
    match (&fault.kind, on) {
        (NetFaultKind::Partition, true) => sim.partition(a, b),
        (NetFaultKind::Partition, false) => sim.repair(a, b),
        (NetFaultKind::OneWay, true) => sim.partition_oneway(a, b),
        (NetFaultKind::OneWay, false) => sim.repair_oneway(a, b),
        (NetFaultKind::LatencySpike { latency_ms }, true) => {
            sim.set_link_latency(a, b, Duration::from_millis(*latency_ms))
        }
        (NetFaultKind::LatencySpike { .. }, false) => {
            // Back to the plan's model: the minimum, then the maximum.
            sim.set_link_latency(a, b, Duration::from_millis(plan.latency_ms_min));
            sim.set_link_max_message_latency(a, b, Duration::from_millis(plan.latency_ms_max));
        }
    }
}

/// The export service's settings, scaled to simulated time: a "month" to
/// answer is ten simulated minutes, three direct requests an hour per
/// subject (so that persistent askers meet the limit); a link's lifetime
/// and its downloads are the plan's (the oracle judges by the same).
fn export_config(plan: &Plan) -> ExportConfig {
    ExportConfig {
        link_ttl_ms: plan.link_ttl_ms,
        max_downloads: plan.max_downloads,
        max_verify_attempts: plan.ticket_attempts,
        lease_ms: 8_000,
        max_attempts: 40,
        retry_backoff_ms: 500,
        max_backoff_ms: 8_000,
        deadline_ms: 600_000,
        max_extension_ms: 1_200_000,
        rate_limit_max: 3,
        rate_limit_window_ms: 3_600_000,
        limits: SERVE_LIMITS,
        ..ExportConfig::default()
    }
}

/// A service's pooled client to the store (the services' own pools carry
/// the planted bugs; the people's clients are the harness's instruments and
/// never do).
fn store_client(timeout: Duration, planted: Planted) -> HttpClient {
    HttpClient::new(
        Arc::new(SimConnector {
            host: STORE_HOST,
            port: STORE_PORT,
        }),
        timeout,
        4,
    )
    .with_spawner(Spawner::Local)
    .with_planted(planted)
}
