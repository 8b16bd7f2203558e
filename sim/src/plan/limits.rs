//! The export contract's limits as plan data, and the people who try past
//! them.
//!
//! Both are drawn from a stream derived from the seed for this purpose
//! alone (`world::derive(seed, "plan/limits")` and `"plan/limit-probes"`), after everything else, so
//! that adding them left every other draw of a plan as it was. A scenario
//! sets the ranges (`[limits]`); swarm testing switches the probes off in
//! one seed of four, as it does every other optional feature.

use super::{AccountPlan, Action, TimedAction};
use crate::scenario::{Range, Scenario};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The swarm name of the limit probes (listed in `Plan::swarm_off`).
pub const SWARM_NAME: &str = "limit_probes";

fn rng(seed: u64, purpose: &str) -> ChaCha8Rng {
    ChaCha8Rng::from_seed(crate::world::derive(seed, purpose))
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
