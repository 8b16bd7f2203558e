//! The seed banner: the seed first, with everything it derived (world size,
//! actions, network model, planted bugs, swarm, crashes), so that the line
//! that introduces a run is also the line that explains it.

use crate::plan::Plan;

/// The seed banner: the seed and everything it derived.
pub fn banner(plan: &Plan) -> String {
    if let Some(threads) = &plan.threads {
        return threads_banner(plan, threads);
    }
    let devices: u64 = plan.accounts.iter().map(|a| a.devices as u64).sum();
    let actions: Vec<String> = plan
        .action_counts()
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    format!(
        "seed {} [{}]: {} accounts, {} devices, {} client hosts; actions: {}; tick {} ms, latency {}..{} ms, active {} s, drain {} s{}",
        plan.seed,
        plan.scenario,
        plan.accounts.len(),
        devices,
        plan.client_hosts,
        actions.join(", "),
        plan.tick_ms,
        plan.latency_ms_min,
        plan.latency_ms_max,
        plan.active_ms / 1000,
        plan.drain_ms / 1000,
        if plan.canary_leak_into_archives {
            "; CANARY: archives leak on purpose"
        } else {
            ""
        },
    ) + &planted(plan)
        + &swarm_off(plan)
        + &crashes(plan)
}

fn planted(plan: &Plan) -> String {
    if plan.planted.is_empty() {
        String::new()
    } else {
        format!("; PLANTED BUGS: {}", plan.planted.join(", "))
    }
}

fn swarm_off(plan: &Plan) -> String {
    if plan.swarm_off.is_empty() {
        String::new()
    } else {
        format!("; swarm off: {}", plan.swarm_off.join(", "))
    }
}

/// The planned crashes, one per host and second.
fn crashes(plan: &Plan) -> String {
    let mut crashes: Vec<String> = plan
        .crashes
        .iter()
        .map(|c| format!("{}@{}s", c.host, c.at_ms / 1000))
        .collect();
    crashes.dedup();
    crashes.extend(
        plan.ack_crashes
            .iter()
            .map(|c| format!("store@ack{}:{}", c.nth, c.write.name().replace(' ', "-"))),
    );
    if crashes.is_empty() {
        String::new()
    } else {
        format!("; crashes: {}", crashes.join(" "))
    }
}

/// The banner of a threads seed: its workload (the OS decides the rest).
fn threads_banner(plan: &Plan, threads: &crate::threads::ThreadsPlan) -> String {
    let planted = if plan.planted.is_empty() {
        String::new()
    } else {
        format!("; PLANTED BUGS: {}", plan.planted.join(", "))
    };
    format!(
        "seed {} [{}]: {}{planted}",
        plan.seed,
        plan.scenario,
        threads.describe()
    )
}
