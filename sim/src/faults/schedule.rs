//! Every fault schedule of one run, applied between turmoil's steps.
//!
//! [`ServiceFaults`] is what strikes the services' processes from inside
//! (their simulated disks, and the power losses armed at a write); the
//! service hosts are built with it. [`FaultSchedule`] applies, before
//! each step, whatever is due: network faults (`net.rs`), the window of
//! disk I/O errors, and each host's crashes and restarts (`crashes.rs`).

use super::ack_crash::AckCrash;
use super::crashes::Crashable;
use super::disk::SimDisk;
use super::net::NetFaults;
use super::publish_crash::PublishCrash;
use crate::net::{EXPORT_HOST, STORE_HOST};
use crate::plan::Plan;
use crate::streams::derive;
use crate::workload::World;
use std::sync::Arc;

/// The services' disks and the power losses armed inside the services.
pub struct ServiceFaults {
    /// The store's disk outlives the store's process: it is what a restart
    /// recovers from.
    pub store_disk: SimDisk,
    /// Crashes right after the store acknowledges a rare write.
    pub after_ack: Option<Arc<AckCrash>>,
    /// The export service's disk: its own, with its own crashes.
    pub export_disk: SimDisk,
    /// Power losses inside publications (`publish_crash.rs`).
    pub publish_crash: Option<Arc<PublishCrash>>,
}

impl ServiceFaults {
    pub fn new(plan: &Plan) -> Self {
        let store_disk = SimDisk::new(disk_seed(plan.seed, "store-disk"), 0, 1);
        let after_ack = (!plan.ack_crashes.is_empty())
            .then(|| AckCrash::new(plan.ack_crashes.clone(), plan.active_ms, store_disk.clone()));
        let export_disk = SimDisk::new(disk_seed(plan.seed, "export-disk"), 0, 1);
        let publish_crash = (!plan.publish_crashes.is_empty()).then(|| {
            PublishCrash::new(
                plan.publish_crashes.clone(),
                plan.active_ms,
                export_disk.clone(),
            )
        });
        Self {
            store_disk,
            after_ack,
            export_disk,
            publish_crash,
        }
    }
}

/// A disk's own seed, derived for its purpose.
fn disk_seed(seed: u64, purpose: &str) -> u64 {
    u64::from_be_bytes(derive(seed, purpose)[..8].try_into().unwrap_or_default())
}

/// What the world applies between steps.
pub struct FaultSchedule {
    net: NetFaults,
    hosts: Vec<Crashable>,
    store_disk: SimDisk,
    io_errors_on: bool,
}

impl FaultSchedule {
    /// The schedule of `plan`: its network faults, and a crashable host for
    /// the store, the export service and each worker, with the plan's
    /// crashes of each.
    pub fn new(plan: &Plan, world: &World, services: &ServiceFaults) -> Self {
        let mut hosts: Vec<Crashable> = Vec::new();
        let mut store_host = Crashable::new(STORE_HOST, Some(services.store_disk.clone()), true);
        store_host.after_ack = services.after_ack.clone();
        store_host.after_introspect = plan
            .downloads_while_store_down()
            .then(|| world.introspect_crash.clone());
        hosts.push(store_host);
        let mut export_host = Crashable::new(EXPORT_HOST, Some(services.export_disk.clone()), true);
        export_host.in_publication = services.publish_crash.clone();
        hosts.push(export_host);
        for worker in 0..plan.worker_hosts {
            hosts.push(Crashable::new(&format!("worker-{worker}"), None, false));
        }
        for crash in &plan.crashes {
            if let Some(host) = hosts.iter_mut().find(|h| h.name == crash.host) {
                host.schedule.push_back(crash.clone());
            }
        }
        Self {
            net: NetFaults::new(plan),
            hosts,
            store_disk: services.store_disk.clone(),
            io_errors_on: false,
        }
    }

    /// Apply whatever is due at `now_ms`, before the world's next step.
    pub fn tick(&mut self, sim: &mut turmoil::Sim<'_>, world: &World, now_ms: u64) {
        let plan = &world.plan;
        self.net.tick(sim, world, now_ms);
        self.start_io_errors(world, now_ms);
        for host in &mut self.hosts {
            host.tick(sim, world, now_ms, plan.active_ms);
        }
        if now_ms >= plan.active_ms && plan.store_io_errors_per_million > 0 {
            self.store_disk.set_io_error_rate(0, 1);
        }
    }

    /// Disk I/O errors, like crashes, begin once the world has settled (an
    /// interrupted first initialization is a deploy problem, not ours) and
    /// end with the active period.
    fn start_io_errors(&mut self, world: &World, now_ms: u64) {
        let plan = &world.plan;
        if !self.io_errors_on
            && plan.store_io_errors_per_million > 0
            && now_ms >= plan.crashes_from_ms
            && now_ms < plan.active_ms
        {
            self.store_disk
                .set_io_error_rate(plan.store_io_errors_per_million, 1_000_000);
            self.io_errors_on = true;
            world.fault_log.borrow_mut().push(
                "disk I/O errors".to_string(),
                &[STORE_HOST],
                now_ms,
                plan.active_ms,
            );
        }
    }
}
