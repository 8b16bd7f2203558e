//! Host crashes and restarts, on the plan's schedule and on what the other
//! faults arm: a scheduled crash (at once, or a power loss armed at a disk
//! write, or after a failed sync), a power loss right after an acknowledged
//! rare write (`ack_crash.rs`), as a download's live check arrives
//! (`live_check.rs`) or inside a publication (`publish_crash.rs`), and the
//! supervisor's restart of a service process that exited by itself.

use super::ack_crash::AckCrash;
use super::disk::SimDisk;
use super::live_check::IntrospectCrash;
use super::publish_crash::PublishCrash;
use crate::net::STORE_HOST;
use crate::plan::Crash;
use crate::workload::World;
use std::sync::Arc;

/// How soon a supervisor restarts a service process that exited.
const SUPERVISOR_RESTART_MS: u64 = 1_000;
/// A restarted host runs at least this long before its next crash.
const SETTLE_MS: u64 = 1_000;

/// A host the world may crash and restart: its schedule and its state.
pub(crate) struct Crashable {
    pub(super) name: String,
    disk: Option<SimDisk>,
    /// Whether its process may exit by itself (and a supervisor restarts it).
    supervised: bool,
    pub(super) schedule: std::collections::VecDeque<Crash>,
    restart_at_ms: Option<u64>,
    /// An armed mid-write power loss, with the downtime to apply.
    armed_downtime_ms: Option<u64>,
    /// Whether that power loss follows a failed sync (`Crash::sync_error`).
    armed_after_sync_error: bool,
    up_since_ms: u64,
    /// Power losses right after an acknowledged rare write (the store's).
    pub(super) after_ack: Option<Arc<AckCrash>>,
    /// Power losses as an armed download's live check arrives (the store's).
    pub(super) after_introspect: Option<Arc<IntrospectCrash>>,
    /// Power losses inside a publication (the export service's).
    pub(super) in_publication: Option<Arc<PublishCrash>>,
}

impl Crashable {
    pub(crate) fn new(name: &str, disk: Option<SimDisk>, supervised: bool) -> Self {
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
    pub(crate) fn tick(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        world: &World,
        now_ms: u64,
        active_ms: u64,
    ) {
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
