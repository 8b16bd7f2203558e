//! How the world configures the services and turmoil for one plan: the
//! export service's settings scaled to simulated time, the services' bound
//! on requests in flight, turmoil's socket capacity sized from the world,
//! and the services' pooled clients to the store.

use crate::net::{STORE_HOST, STORE_PORT, SimConnector};
use crate::plan::{NetFaultKind, Plan};
use crosstalk_export::ExportConfig;
use crosstalk_service::{HttpClient, Planted, Spawner};
use std::sync::Arc;
use std::time::Duration;

/// How often the store decides held orders.
pub(super) const ORDER_SWEEP_MS: u64 = 1_000;
/// How often an idle worker asks for work, and its page size.
pub(super) const WORKER_POLL_MS: u64 = 500;
pub(super) const WORKER_PAGE_ITEMS: usize = 5;
/// Jobs one worker builds at once.
pub(super) const WORKER_JOB_SLOTS: usize = 2;

/// Connections a client host may hold open per person (a pool of two to
/// each service).
const CONNECTIONS_PER_PERSON: usize = 4;
/// Connections each worker and the export service's store client may hold,
/// plus the agent's: a fixed allowance on top of the people's.
const CONNECTIONS_PER_WORKER: usize = 6;
const CONNECTIONS_FIXED: usize = 16;
/// Requests each service handles at once before it answers 503
/// `overloaded` (the clients back off and retry).
pub(super) const SERVE_LIMITS: crosstalk_service::ServeLimits = crosstalk_service::ServeLimits {
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

/// The export service's retry contract as this run configures it (see
/// [`export_config`]), for the oracle.
pub(super) fn retry_contract(plan: &Plan) -> crate::check::poison::RetryContract {
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

/// The export service's settings, scaled to simulated time: a "month" to
/// answer is ten simulated minutes, three direct requests an hour per
/// subject (so that persistent askers meet the limit); a link's lifetime
/// and its downloads are the plan's (the oracle judges by the same).
pub(crate) fn export_config(plan: &Plan) -> ExportConfig {
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
pub(super) fn store_client(timeout: Duration, planted: Planted) -> HttpClient {
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
