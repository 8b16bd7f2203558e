//! The plan's network faults, applied to the turmoil world on schedule:
//! partitions (both ways or one way) and latency spikes between two hosts,
//! each started when due and healed when its duration is over, and every
//! one healed when the active period ends.

use crate::plan::{NetFault, NetFaultKind, Plan};
use crate::workload::World;
use std::collections::VecDeque;
use std::time::Duration;

/// The network faults still to start and those in force.
pub struct NetFaults {
    pending: VecDeque<NetFault>,
    /// Each fault in force, with the simulated ms it heals at.
    active: Vec<(u64, NetFault)>,
}

impl NetFaults {
    pub fn new(plan: &Plan) -> Self {
        Self {
            pending: plan.net_faults.iter().cloned().collect(),
            active: Vec::new(),
        }
    }

    /// Start what is due at `now_ms`, heal what is over (everything once
    /// the active period ends), and log each for the oracle and the trace.
    pub fn tick(&mut self, sim: &turmoil::Sim<'_>, world: &World, now_ms: u64) {
        let plan = &world.plan;
        while self
            .pending
            .front()
            .is_some_and(|f| f.at_ms <= now_ms && now_ms < plan.active_ms)
        {
            let Some(fault) = self.pending.pop_front() else {
                break;
            };
            self.start(sim, world, fault, now_ms);
        }
        let (over, still): (Vec<_>, Vec<_>) = self
            .active
            .drain(..)
            .partition(|(end, _)| *end <= now_ms || now_ms >= plan.active_ms);
        self.active = still;
        for (_, fault) in over {
            apply(sim, &fault, false, plan);
            world.trace.borrow_mut().record(
                now_ms,
                &format!("fault healed: {:?} {} -> {}", fault.kind, fault.a, fault.b),
            );
        }
    }

    fn start(&mut self, sim: &turmoil::Sim<'_>, world: &World, fault: NetFault, now_ms: u64) {
        let plan = &world.plan;
        apply(sim, &fault, true, plan);
        world.oracle.borrow_mut().on(crate::check::Event::NetFault);
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
        self.active.push((fault.at_ms + fault.duration_ms, fault));
    }
}

/// Start (`on`) or heal a network fault.
fn apply(sim: &turmoil::Sim<'_>, fault: &NetFault, on: bool, plan: &Plan) {
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
