//! Heavy users and "delete all my history", as plan data.
//!
//! Real accounts hold years of history: far more recordings than one page
//! of the store's listing (it clamps pages at
//! [`MAX_PAGE_ITEMS`](crosstalk_store::MAX_PAGE_ITEMS)) or any
//! batch the store or the export worker reads at a time. A scenario's
//! `[heavy]` section picks a few accounts per seed whose always-on speaker
//! (`workload/devices.rs`) uploads `heavy.recordings` small captures spread
//! over the run; each such account lists its whole history twice and asks
//! for its data late in the run, and with `delete_all_per_mille` presses
//! "delete all my history" somewhere in the middle, then asks for its data
//! again while its speaker goes on uploading (what it uploads afterwards
//! must survive). Other accounts press it with
//! `others_delete_all_per_mille`. Drawn from a stream derived from the seed
//! for this purpose alone (`streams::derive(seed, "plan/heavy")`), after
//! everything else, so that every other draw of a plan stays as it was;
//! swarm testing switches it off in one seed of four.

use super::{AccountPlan, Action, TimedAction, chatter};
use crate::scenario::Scenario;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

/// The swarm name of heavy users and "delete all".
pub const SWARM_NAME: &str = "heavy_users";

/// Schedule heavy users' captures and everyone's "delete all"; returns the
/// swarm names switched off for this seed. `nonces` holds every nonce the
/// plan already uses.
pub fn schedule(
    scenario: &Scenario,
    seed: u64,
    first_action_ms: u64,
    active_ms: u64,
    accounts: &mut [AccountPlan],
    nonces: &mut BTreeSet<u64>,
) -> Vec<String> {
    let h = &scenario.heavy;
    if h.is_off() || accounts.is_empty() {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::from_seed(crate::streams::derive(seed, "plan/heavy"));
    if scenario.swarm && rng.random_ratio(1, 4) {
        return vec![SWARM_NAME.to_string()];
    }
    let commands = chatter::command_shapes(accounts);
    let span = Span {
        from_ms: first_action_ms,
        to_ms: active_ms.max(first_action_ms + 10),
    };
    let wanted = (rng.random_range(h.accounts.0..=h.accounts.1) as usize).min(accounts.len());
    let mut heavy = BTreeSet::new();
    while heavy.len() < wanted {
        heavy.insert(rng.random_range(0..accounts.len()));
    }
    for (index, account) in accounts.iter_mut().enumerate() {
        if heavy.contains(&index) {
            let count = rng.random_range(h.recordings.0..=h.recordings.1);
            add_history(account, count, span, &commands, nonces, &mut rng);
            add_heavy_actions(account, h.delete_all_per_mille, span, &mut rng);
        } else if h.others_delete_all_per_mille > 0
            && rng.random_ratio(h.others_delete_all_per_mille.min(1000) as u32, 1000)
        {
            add_delete_all(account, span, &mut rng);
        }
        account.actions.sort_by_key(|t| t.at_ms);
    }
    Vec::new()
}

/// The part of the run actions are planned in (ms).
#[derive(Clone, Copy)]
struct Span {
    from_ms: u64,
    to_ms: u64,
}

impl Span {
    /// The time `per_mille` thousandths of the way through.
    fn at(self, per_mille: u64) -> u64 {
        self.from_ms + (self.to_ms - self.from_ms) * per_mille / 1000
    }
}

/// `count` captures for the account's always-on speaker, evenly spread over
/// the first nine tenths of the span with a little jitter. None sounds like
/// a spoken command of the plan (see `chatter::command_shapes`).
fn add_history(
    account: &mut AccountPlan,
    count: u64,
    span: Span,
    commands: &BTreeSet<(usize, usize)>,
    nonces: &mut BTreeSet<u64>,
    rng: &mut ChaCha8Rng,
) {
    let (start, end) = (span.from_ms, span.at(900));
    let step = ((end - start) / count.max(1)).max(1);
    for n in 0..count {
        let at_ms = start + n * step + rng.random_range(0..step);
        account
            .ambient
            .push(chatter::ambient_capture(at_ms, commands, nonces, rng));
    }
    account.ambient.sort_by_key(|c| c.at_ms);
}

/// Two walks of the whole history and an export late in the run, and
/// maybe "delete all" in the middle.
fn add_heavy_actions(
    account: &mut AccountPlan,
    delete_all_per_mille: u64,
    span: Span,
    rng: &mut ChaCha8Rng,
) {
    for _ in 0..2 {
        let at_ms = span.at(rng.random_range(300..=950));
        account.actions.push(TimedAction {
            at_ms,
            action: Action::ListHistory,
        });
    }
    account.actions.push(TimedAction {
        at_ms: span.at(rng.random_range(600..=900)),
        action: export(),
    });
    if rng.random_ratio(delete_all_per_mille.min(1000) as u32, 1000) {
        add_delete_all(account, span, rng);
    }
}

/// "Delete all my history" in the middle of the run, then an export (which
/// must hold none of it, and whatever was uploaded since).
fn add_delete_all(account: &mut AccountPlan, span: Span, rng: &mut ChaCha8Rng) {
    let at_ms = span.at(rng.random_range(350..=700));
    account.actions.push(TimedAction {
        at_ms,
        action: Action::DeleteAll,
    });
    let export_at_ms = at_ms + (span.to_ms - at_ms) * rng.random_range(200..=800) / 1000;
    account.actions.push(TimedAction {
        at_ms: export_at_ms,
        action: export(),
    });
}

fn export() -> Action {
    Action::RequestExport {
        delete_first: false,
        redownloads: 0,
        repeats: 0,
        by_ticket: false,
        store_down_ms: None,
    }
}
