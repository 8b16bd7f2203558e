//! The export contract's limits as plan data, and the people who try past
//! them.
//!
//! Some who delete a recording of their archive before downloading it
//! click its link just as the store loses power between the download's two
//! calls to it (`Action::RequestExport::store_down_ms`): the export
//! service's erasure check cannot reach the store and must refuse, never
//! assume the archive still whole.
//!
//! All are drawn from streams derived from the seed for this purpose
//! alone (`streams::derive(seed, "plan/limits")`, `"plan/limit-probes"` and
//! `"plan/store-down-downloads"`), after everything else, so
//! that adding them left every other draw of a plan as it was. A scenario
//! sets the ranges (`[limits]`); swarm testing switches the probes off in
//! one seed of four, as it does every other optional feature.

use super::{AccountPlan, Action, TimedAction};
use crate::scenario::{Range, Scenario};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The swarm name of the limit probes (listed in `Plan::swarm_off`).
pub const SWARM_NAME: &str = "limit_probes";
/// The swarm name of the downloads while the store is down.
pub const STORE_DOWN_SWARM_NAME: &str = "store_down_downloads";

/// The store's downtime in those downloads (ms): long enough that the
/// person clicks again (and is refused at the door) before it is back.
const STORE_DOWN_MS: (u64, u64) = (15_000, 25_000);
/// The latest such an export may be requested, before the run's active
/// period ends (the crash, like every fault, heals with it).
const STORE_DOWN_MARGIN_MS: u64 = 90_000;

fn rng(seed: u64, purpose: &str) -> ChaCha8Rng {
    ChaCha8Rng::from_seed(crate::streams::derive(seed, purpose))
}

fn draw(rng: &mut ChaCha8Rng, range: Range) -> u64 {
    rng.random_range(range.0..=range.1)
}

/// The link lifetime (ms) and downloads per archive for this seed.
pub fn draw_limits(scenario: &Scenario, seed: u64) -> (u64, u32) {
    let mut rng = rng(seed, "plan/limits");
    let ttl_ms = draw(&mut rng, scenario.limits.link_ttl_seconds) * 1000;
    let max = draw(&mut rng, scenario.limits.max_downloads) as u32;
    (ttl_ms, max.max(1))
}

/// Give some people who ask for an export a last action that tries their
/// latest link past the limits. Returns whether swarm testing switched the
/// probes off for this seed.
pub fn schedule_probes(
    scenario: &Scenario,
    seed: u64,
    active_ms: u64,
    accounts: &mut [AccountPlan],
) -> bool {
    let l = &scenario.limits;
    if l.past_limit_per_mille + l.past_expiry_per_mille + l.rebuild_per_mille == 0 {
        return false;
    }
    let mut rng = rng(seed, "plan/limit-probes");
    if scenario.swarm && rng.random_ratio(1, 4) {
        return true;
    }
    let at_ms = active_ms.saturating_sub(1);
    for account in accounts.iter_mut() {
        let exports = account.actions.iter().any(|a| {
            matches!(
                a.action,
                Action::RequestExport { .. } | Action::TicketExport
            )
        });
        let roll = rng.random_range(0..1000u64);
        if !exports {
            continue;
        }
        let probes = l.past_limit_per_mille + l.past_expiry_per_mille;
        let action = if roll < l.past_limit_per_mille {
            Action::ProbeLinkLimits { past_expiry: false }
        } else if roll < probes {
            Action::ProbeLinkLimits { past_expiry: true }
        } else if roll < probes + l.rebuild_per_mille {
            Action::RebuildOwnArchive
        } else {
            continue;
        };
        account.actions.push(TimedAction { at_ms, action });
        account.actions.sort_by_key(|a| a.at_ms);
    }
    false
}

/// Of the export requests followed by a deletion before the download, early
/// enough in the active period, some download while the store is down
/// (`[limits] store_down_download_per_mille`). Returns whether swarm
/// testing switched them off for this seed.
pub fn schedule_store_down_downloads(
    scenario: &Scenario,
    seed: u64,
    active_ms: u64,
    accounts: &mut [AccountPlan],
) -> bool {
    let per_mille = scenario.limits.store_down_download_per_mille;
    if per_mille == 0 {
        return false;
    }
    let mut rng = rng(seed, "plan/store-down-downloads");
    if scenario.swarm && rng.random_ratio(1, 4) {
        return true;
    }
    let latest_ms = active_ms.saturating_sub(STORE_DOWN_MARGIN_MS);
    for timed in accounts.iter_mut().flat_map(|a| a.actions.iter_mut()) {
        let Action::RequestExport {
            delete_first: true,
            store_down_ms,
            ..
        } = &mut timed.action
        else {
            continue;
        };
        let roll = rng.random_range(0..1000u64);
        let downtime_ms = rng.random_range(STORE_DOWN_MS.0..=STORE_DOWN_MS.1);
        if roll < per_mille && timed.at_ms < latest_ms {
            *store_down_ms = Some(downtime_ms);
        }
    }
    false
}
