//! Faults, as plan data: host crashes (with power lost mid-write on hosts
//! with a disk, and the store's failed syncs) and network faults on the
//! links the services use. Each falls inside the crash window (after
//! sign-up has settled, before the end of the active period).

use super::people::Window;
use super::{Crash, NetFault, NetFaultKind, draw};
use crate::scenario::{Range, Scenario};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Crashes never overlap on one host: each starts after the previous
/// restart. Only hosts with a disk can lose power mid-write.
pub(super) fn crashes(
    rng: &mut ChaCha8Rng,
    scenario: &Scenario,
    seed: u64,
    window: Window,
) -> Vec<Crash> {
    let faults = &scenario.faults;
    let mut hosts: Vec<(String, Range, Range, bool)> = vec![
        (
            "store".to_string(),
            faults.store_crashes,
            faults.store_downtime_ms,
            true,
        ),
        (
            "export".to_string(),
            faults.export_crashes,
            faults.export_downtime_ms,
            true,
        ),
    ];
    for worker in 0..scenario.world.worker_hosts {
        hosts.push((
            format!("worker-{worker}"),
            faults.worker_crashes,
            faults.worker_downtime_ms,
            false,
        ));
    }
    let mut crashes = Vec::new();
    for (host, count, downtime, has_disk) in hosts {
        let mut times: Vec<u64> = (0..draw(rng, count)).map(|_| window.draw(rng)).collect();
        times.sort_unstable();
        let mut busy_until = 0;
        for at_ms in times {
            let downtime_ms = draw(rng, downtime);
            let mid_write_ops = if has_disk && rng.random_bool(0.5) {
                Some(rng.random_range(1..=24u32))
            } else {
                None
            };
            let at_ms = at_ms.max(busy_until + 1);
            busy_until = at_ms + downtime_ms;
            crashes.push(Crash {
                host: host.clone(),
                at_ms,
                downtime_ms,
                mid_write_ops,
                sync_error: false,
            });
        }
    }
    let sync_failures = super::store_sync_failures(faults, seed, window.first_ms, window.active_ms);
    if !sync_failures.is_empty() {
        crashes.extend(sync_failures);
        crashes.sort_by_key(|c| c.at_ms);
    }
    crashes
}

/// Network faults on the links services use, never overlapping on one
/// link, all healed by the end of the active period.
pub(super) fn net_faults(
    rng: &mut ChaCha8Rng,
    scenario: &Scenario,
    window: Window,
) -> Vec<NetFault> {
    let faults = &scenario.faults;
    let mut links: Vec<(String, String)> = vec![("store".into(), "export".into())];
    for worker in 0..scenario.world.worker_hosts {
        links.push(("export".into(), format!("worker-{worker}")));
        links.push(("store".into(), format!("worker-{worker}")));
    }
    for client in 0..scenario.world.client_hosts {
        links.push((format!("client-{client}"), "store".into()));
        links.push((format!("client-{client}"), "export".into()));
    }
    let mut net_faults: Vec<NetFault> = Vec::new();
    let partitions = draw(rng, faults.partitions);
    let spikes = draw(rng, faults.latency_spikes);
    for n in 0..partitions + spikes {
        let (a, b) = links[rng.random_range(0..links.len())].clone();
        let (a, b) = if rng.random_bool(0.5) { (a, b) } else { (b, a) };
        let duration_ms = draw(rng, faults.net_fault_ms);
        let at_ms = window.draw(rng);
        let kind = if n < partitions {
            if rng.random_bool(0.5) {
                NetFaultKind::Partition
            } else {
                NetFaultKind::OneWay
            }
        } else {
            NetFaultKind::LatencySpike {
                latency_ms: draw(rng, faults.latency_spike_ms),
            }
        };
        let same_link = |f: &NetFault| (f.a == a && f.b == b) || (f.a == b && f.b == a);
        let overlaps = net_faults.iter().any(|f| {
            same_link(f) && at_ms < f.at_ms + f.duration_ms && f.at_ms < at_ms + duration_ms
        });
        if !overlaps && at_ms < window.active_ms {
            net_faults.push(NetFault {
                at_ms,
                duration_ms,
                a,
                b,
                kind,
            });
        }
    }
    net_faults.sort_by_key(|f| f.at_ms);
    net_faults
}

/// The faults drawn from streams of their own, after the people's plans
/// are complete (they pick among planned actions): the poisoned subject,
/// the store's power losses right after an acknowledged rare write, and the
/// export's inside publications.
pub(super) fn power_and_poison(
    scenario: &Scenario,
    seed: u64,
    accounts: &mut [super::AccountPlan],
) -> (
    Option<crate::faults::poison::PoisonPlan>,
    Vec<crate::faults::ack_crash::AckCrashPlan>,
    Vec<crate::faults::publish_crash::PublishCrashPlan>,
) {
    let faults = &scenario.faults;
    let world = &scenario.world;
    let active_ms = world.active_seconds * 1000;
    let poison = crate::faults::poison::draw(
        seed,
        faults.poisoned_subject_per_mille,
        (
            faults.poisoned_subject_window_ms.0,
            faults.poisoned_subject_window_ms.1,
        ),
        active_ms + world.drain_seconds * 1000 / 2,
        accounts,
    );
    let ack_crashes = crate::faults::ack_crash::draw(
        seed,
        (
            faults.store_crashes_after_ack.0,
            faults.store_crashes_after_ack.1,
        ),
        (faults.store_downtime_ms.0, faults.store_downtime_ms.1),
        &crate::faults::ack_crash::planned_kinds(accounts),
    );
    let publish_crashes = crate::faults::publish_crash::draw(
        seed,
        (
            faults.export_crashes_in_publication.0,
            faults.export_crashes_in_publication.1,
        ),
        (faults.export_downtime_ms.0, faults.export_downtime_ms.1),
    );
    (poison, ack_crashes, publish_crashes)
}
