//! The world's hosts: the store, the export service, the workers (each a
//! turmoil host the fault schedule may crash and restart, a new process
//! incarnation on each start) and the client hosts that run the people and
//! the support agent as tasks.
//!
//! Each service is served behind the harness's watches (`*_watch.rs`): at
//! its door the world records what the oracle judges beside the clients'
//! observations (the store's answer to each upload, the export service's
//! lookups, the workers' lease traffic, the requests in flight).

use super::Wrap;
use super::config::{
    ORDER_SWEEP_MS, SERVE_LIMITS, WORKER_JOB_SLOTS, WORKER_PAGE_ITEMS, WORKER_POLL_MS, store_client,
};
use crate::canary::CanaryBreak;
use crate::faults::points::FaultPointSource;
use crate::faults::schedule::ServiceFaults;
use crate::net::{
    EXPORT_HOST, EXPORT_PORT, STORE_HOST, STORE_PORT, SimClock, SimConnector, SimListener,
};
use crate::streams::derive;
use crate::workload::{World, person};
use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use crosstalk_export::worker::{Worker, WorkerConfig};
use crosstalk_export::{ExportConfig, ExportService, StoreClient};
use crosstalk_model::SeededEntropy;
use crosstalk_service::{HttpClient, Inject, Planted, Spawner};
use crosstalk_store::{Store, StoreConfig};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// What every host of one world shares.
pub(super) struct Common {
    pub world: Rc<World>,
    pub planted: Planted,
    /// The bearer token the services use with the store, and the workers'
    /// with the export service.
    pub service_token: String,
    pub worker_token: String,
    /// HTTP requests the services handled (users' and service-to-service).
    pub sut_requests: Arc<AtomicU64>,
    pub fault_points: FaultPointSource,
}

/// What the world records at the services' doors, and the services' latest
/// incarnations (whose state is digested at the end; weak, so that a
/// crashed incarnation is still dropped with its host).
#[derive(Default)]
pub(super) struct Doors {
    /// The export service's lookups of addresses, as the store's door saw them.
    pub lookups: crate::lookup_watch::LookupLog,
    /// The workers' lease traffic as the export service's door saw it.
    pub leases: crate::lease_watch::LeaseLog,
    /// The requests in flight inside each service, as the simulator counts
    /// them (the services' overloaded refusals are judged against them).
    pub store_load: crate::load_watch::LoadGauge,
    pub export_load: crate::load_watch::LoadGauge,
    pub last_store: Rc<RefCell<Weak<Store>>>,
    pub last_export: Rc<RefCell<Weak<ExportService>>>,
}

fn count_requests(router: Router, counter: Arc<AtomicU64>) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            counter.fetch_add(1, Ordering::Relaxed);
            next.run(request)
        },
    ))
}

/// The store: its database on `faults.store_disk`, its order sweeper, its
/// router behind the layers of [`StoreLayers`].
pub(super) fn add_store(
    sim: &mut turmoil::Sim<'_>,
    common: &Common,
    doors: &Doors,
    faults: &ServiceFaults,
    wrap: Option<Wrap>,
) {
    let world = common.world.clone();
    let plan = &world.plan;
    let (seed, hold_ms, planted) = (plan.seed, plan.hold_ms, common.planted);
    let last_store = doors.last_store.clone();
    let token = common.service_token.clone();
    let restarts = Cell::new(0u64);
    let disk = faults.store_disk.clone();
    // When the store answered each upload, for the snapshot claims.
    let upload_door = crate::upload_watch::UploadDoor::default();
    world
        .oracle
        .borrow_mut()
        .learn_upload_door(upload_door.clone());
    let layers = StoreLayers {
        door: upload_door,
        contract_break: plan.canary_break,
        contract_broken: Arc::default(),
        service_token: token.clone(),
        wrap,
        after_ack: faults.after_ack.clone(),
        after_introspect: plan
            .downloads_while_store_down()
            .then(|| world.introspect_crash.clone()),
        lookups: doors.lookups.clone(),
        counter: common.sut_requests.clone(),
        load: doors.store_load.clone(),
    };
    let fault_points = common.fault_points.clone();
    sim.host(STORE_HOST, move || {
        let layers = layers.clone();
        let disk = disk.clone();
        let world = world.clone();
        let last_store = last_store.clone();
        let config = StoreConfig {
            service_token: token.clone(),
            password_iterations: 1,
            limits: SERVE_LIMITS,
            hold_ms,
        };
        restarts.set(restarts.get() + 1);
        let entropy =
            SeededEntropy::from_seed_bytes(derive(seed, &format!("store/{}", restarts.get())));
        let handle = disk.open();
        let points = fault_points.for_process(format!("store/{}", restarts.get()));
        async move {
            let opened = Store::open(handle, Arc::new(SimClock), Arc::new(entropy), config);
            let store = match opened {
                Ok(store) => store.with_fault_points(points).with_planted(planted),
                Err(e) => {
                    // The process exits; the world's supervisor restarts it.
                    world
                        .trace
                        .borrow_mut()
                        .record(crate::net::sim_now_ms(), &format!("store: exiting: {e}"));
                    return Ok(());
                }
            };
            let store = Arc::new(store);
            *last_store.borrow_mut() = Arc::downgrade(&store);
            tokio::task::spawn_local(
                store
                    .clone()
                    .run_order_sweeper(Duration::from_millis(ORDER_SWEEP_MS)),
            );
            let listener = SimListener::bind(STORE_PORT).await?;
            let router = layers.around(crosstalk_store::router(store.clone()), disk);
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

/// What the store's router is served behind, innermost first: the upload
/// door, the canary's break (if the plan has one), the test layer, the
/// armed power losses, the lookups' door, the request counter and the load
/// gauge.
#[derive(Clone)]
struct StoreLayers {
    door: crate::upload_watch::UploadDoor,
    contract_break: Option<CanaryBreak>,
    contract_broken: Arc<std::sync::atomic::AtomicBool>,
    service_token: String,
    wrap: Option<Wrap>,
    after_ack: Option<Arc<crate::faults::ack_crash::AckCrash>>,
    /// The power loss as an armed download's live check arrives (on the
    /// store's disk).
    after_introspect: Option<Arc<crate::faults::live_check::IntrospectCrash>>,
    lookups: crate::lookup_watch::LookupLog,
    counter: Arc<AtomicU64>,
    load: crate::load_watch::LoadGauge,
}

impl StoreLayers {
    fn around(self, router: Router, disk: crate::faults::disk::SimDisk) -> Router {
        let mut router = crate::upload_watch::watch(router, self.door);
        router = match self.contract_break {
            Some(CanaryBreak::NotDurable { write }) => {
                crate::canary::unsynced(router, write, disk.clone())
            }
            Some(CanaryBreak::SyncErrorsSwallowed) => {
                crate::canary::swallow_sync_errors(router, &disk)
            }
            Some(CanaryBreak::ServiceRoutesOpen) => {
                crate::canary::open_service_routes(router, self.service_token)
            }
            Some(how) => crate::canary::break_store(router, how, self.contract_broken),
            None => router,
        };
        if let Some(wrap) = self.wrap {
            router = wrap(router);
        }
        if let Some(after_ack) = self.after_ack {
            router = crate::faults::ack_crash::layer(router, after_ack);
        }
        if let Some(crash) = self.after_introspect {
            router = crate::faults::live_check::layer(router, crash, disk);
        }
        router = crate::lookup_watch::watch(router, self.lookups);
        crate::load_watch::watch(count_requests(router, self.counter), self.load)
    }
}

/// The export service: its database on `faults.export_disk`, configured by
/// `config` (the plan's, see `config.rs`), its router behind the archive
/// canary (if the plan leaks), the test layer, the publication's power
/// losses and the watches.
pub(super) fn add_export(
    sim: &mut turmoil::Sim<'_>,
    common: &Common,
    doors: &Doors,
    faults: &ServiceFaults,
    config: ExportConfig,
    wrap: Option<Wrap>,
) {
    let world = common.world.clone();
    let seed = world.plan.seed;
    let planted = common.planted;
    let token = common.service_token.clone();
    let worker_token = common.worker_token.clone();
    let agent_token = world.agent_token.clone();
    let counter = common.sut_requests.clone();
    let canary = world.plan.canary_leak_into_archives;
    let restarts = Cell::new(0u64);
    let disk = faults.export_disk.clone();
    let last_export = doors.last_export.clone();
    let leases = doors.leases.clone();
    let publish_crash = faults.publish_crash.clone();
    let load = doors.export_load.clone();
    let fault_points = common.fault_points.clone();
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
            ..config.clone()
        };
        let limits = config.limits;
        let counter = counter.clone();
        restarts.set(restarts.get() + 1);
        let entropy =
            SeededEntropy::from_seed_bytes(derive(seed, &format!("export/{}", restarts.get())));
        let handle = disk.open();
        let points = fault_points.for_process(format!("export/{}", restarts.get()));
        async move {
            let store = StoreClient::new(store_client(Duration::from_secs(10), planted), token);
            let opened =
                ExportService::open(handle, Arc::new(SimClock), Arc::new(entropy), store, config);
            let service = match opened {
                Ok(service) => Arc::new(service.with_fault_points(points).with_planted(planted)),
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

/// Workers: stateless hosts that claim jobs from the export service.
pub(super) fn add_workers(sim: &mut turmoil::Sim<'_>, common: &Common) {
    let planted = common.planted;
    for worker in 0..common.world.plan.worker_hosts {
        let name = format!("worker-{worker}");
        let host_name = name.clone();
        let worker_token = common.worker_token.clone();
        let token = common.service_token.clone();
        let restarts = Cell::new(0u64);
        let fault_points = common.fault_points.clone();
        sim.host(host_name.as_str(), move || {
            restarts.set(restarts.get() + 1);
            let points = fault_points.for_process(format!("{name}/{}", restarts.get()));
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
}

/// The client hosts: the people dealt round-robin over them, each a task,
/// and the support agent (if the plan has one) on the first.
pub(super) fn add_clients(sim: &mut turmoil::Sim<'_>, world: &Rc<World>) {
    let people = world.plan.accounts.len();
    let hosts = world.plan.client_hosts.max(1) as usize;
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
}
