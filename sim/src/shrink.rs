//! Shrinking: make a failing plan as small as it can be while the same
//! invariant still fails first.
//!
//! The order follows proptest-state-machine: trailing actions first (the
//! shortest prefix in time that still fails, then a shorter active period),
//! then actions one chunk at a time from back to front (halving the chunk
//! size down to single actions), then actors (people, removed with every
//! reference to them and the rest re-indexed), then the rest of the world:
//! devices, broadcasts, faults, the support agent, the drain period and
//! numbers inside actions. Every candidate is checked by replaying it with
//! [`run_plan`]; it is kept only if its first violation is of the same
//! invariant as the original's. Rounds repeat until one changes nothing or
//! the replay budget is spent. Candidates are built and tried in a fixed
//! order, so the result depends on the plan and the budget alone.

use crate::check::Invariant;
use crate::plan::{Action, Plan, TimedAction};
use crate::world::{RunOutcome, run_plan};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Replays a shrink may use unless told otherwise.
pub const DEFAULT_MAX_REPLAYS: u32 = 500;

/// What a plan and its run amount to, for "before → after" lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Size {
    pub people: usize,
    pub actions: usize,
    /// Crashes, network faults, and the I/O-error and fault-point rates
    /// when they are on.
    pub faults: usize,
    pub broadcasts: usize,
    pub trace_events: u64,
    pub simulated_ms: u64,
}

impl Size {
    pub fn of(plan: &Plan, outcome: &RunOutcome) -> Size {
        let broadcasts: BTreeSet<u32> = plan
            .accounts
            .iter()
            .flat_map(|a| &a.actions)
            .filter_map(|t| match t.action {
                Action::HearBroadcast { broadcast, .. } => Some(broadcast),
                _ => None,
            })
            .collect();
        Size {
            people: plan.accounts.len(),
            actions: action_count(plan),
            faults: fault_count(plan),
            broadcasts: broadcasts.len(),
            trace_events: outcome.trace_events,
            simulated_ms: outcome.simulated_ms,
        }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} people, {} actions, {} faults, {} broadcasts, {} trace events, {:.1} simulated s",
            self.people,
            self.actions,
            self.faults,
            self.broadcasts,
            self.trace_events,
            self.simulated_ms as f64 / 1000.0
        )
    }
}

fn action_count(plan: &Plan) -> usize {
    plan.accounts.iter().map(|a| a.actions.len()).sum()
}

fn fault_count(plan: &Plan) -> usize {
    plan.crashes.len()
        + plan.net_faults.len()
        + usize::from(plan.store_io_errors_per_million > 0)
        + usize::from(plan.sut_fault_points_per_mille > 0)
}

/// One step of a shrink, for a progress line.
pub struct Progress {
    pub replays: u32,
    pub max_replays: u32,
    pub people: usize,
    pub actions: usize,
    pub faults: usize,
}

/// The result of a shrink.
pub struct Shrunk {
    pub invariant: Invariant,
    pub plan: Plan,
    /// The run of the shrunk plan (it fails with `invariant` first).
    pub outcome: RunOutcome,
    /// The run of the plan as it was given.
    pub original_outcome: RunOutcome,
    pub before: Size,
    pub after: Size,
    /// Replays used, the original's included.
    pub replays: u32,
}

/// Shrink `plan`, which must fail with a violation, using at most
/// `max_replays` replays (the first one runs the original).
pub fn shrink(
    plan: &Plan,
    max_replays: u32,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Shrunk, String> {
    let outcome = run_plan(plan);
    let Some(first) = outcome.violations.first() else {
        return Err(if outcome.infra_errors.is_empty() {
            "the plan passes: there is no failure to shrink".to_string()
        } else {
            format!(
                "the plan does not run as planned: {}",
                outcome.infra_errors.join("; ")
            )
        });
    };
    let before = Size::of(plan, &outcome);
    let mut shrinker = Shrinker {
        invariant: first.invariant,
        best: plan.clone(),
        outcome: outcome.clone(),
        replays: 1,
        max_replays: max_replays.max(1),
        progress,
    };
    shrinker.report();
    while shrinker.round() && shrinker.budget_left() {}
    let after = Size::of(&shrinker.best, &shrinker.outcome);
    Ok(Shrunk {
        invariant: shrinker.invariant,
        plan: shrinker.best,
        outcome: shrinker.outcome,
        original_outcome: outcome,
        before,
        after,
        replays: shrinker.replays,
    })
}

/// Where the shrunk version of the plan file `original` is saved: beside
/// it, as `<stem>-shrunk.json`.
pub fn shrunk_path(original: &Path) -> PathBuf {
    let stem = original
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plan".to_string());
    original.with_file_name(format!("{stem}-shrunk.json"))
}

struct Shrinker<'a> {
    invariant: Invariant,
    /// The smallest plan found so far that fails with `invariant` first.
    best: Plan,
    outcome: RunOutcome,
    replays: u32,
    max_replays: u32,
    progress: &'a mut dyn FnMut(&Progress),
}

impl Shrinker<'_> {
    fn budget_left(&self) -> bool {
        self.replays < self.max_replays
    }

    fn report(&mut self) {
        let progress = Progress {
            replays: self.replays,
            max_replays: self.max_replays,
            people: self.best.accounts.len(),
            actions: action_count(&self.best),
            faults: fault_count(&self.best),
        };
        (self.progress)(&progress);
    }

    /// Replay `candidate`; keep it if it fails with the same invariant first.
    fn attempt(&mut self, candidate: Plan) -> bool {
        if !self.budget_left() || candidate == self.best {
            return false;
        }
        self.replays += 1;
        let outcome = run_plan(&candidate);
        let same = outcome.violations.first().map(|v| v.invariant) == Some(self.invariant);
        if same {
            self.best = candidate;
            self.outcome = outcome;
        }
        self.report();
        same
    }

    /// One round of every pass, in order; whether anything got smaller.
    fn round(&mut self) -> bool {
        let start = self.best.clone();
        self.trailing_actions();
        self.shorter_active_period();
        self.chunks(action_count, |plan, range| {
            let doomed: BTreeSet<usize> = range.collect();
            keep_actions(plan, |global| !doomed.contains(&global))
        });
        self.chunks(|plan| plan.accounts.len(), remove_people);
        self.fewer_devices();
        self.fewer_broadcasts();
        self.fewer_faults();
        self.simpler_agent();
        self.simpler_world();
        self.simpler_actions();
        self.best != start
    }

    /// The shortest prefix of the actions in time order that still fails
    /// (a binary search; it assumes, as every shrinker does, that a prefix
    /// failing means longer ones fail too).
    fn trailing_actions(&mut self) {
        let (mut low, mut high) = (0, action_count(&self.best));
        while low < high && self.budget_left() {
            let middle = low + (high - low) / 2;
            if self.attempt(keep_actions(&self.best, |global| global < middle)) {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
    }

    /// End the active period a second after the last action or fault.
    fn shorter_active_period(&mut self) {
        let plan = &self.best;
        let last_action = plan
            .accounts
            .iter()
            .flat_map(|a| &a.actions)
            .map(|t| t.at_ms)
            .max()
            .unwrap_or(0);
        let last_fault = plan
            .crashes
            .iter()
            .map(|c| c.at_ms + c.downtime_ms)
            .chain(plan.net_faults.iter().map(|f| f.at_ms + f.duration_ms))
            .max()
            .unwrap_or(0);
        let end = (last_action.max(last_fault) / 1000 + 2) * 1000;
        if end < plan.active_ms {
            let mut candidate = plan.clone();
            candidate.active_ms = end;
            self.attempt(candidate);
        }
        // Without the faults that kept it long.
        let mut candidate = self.best.clone();
        candidate.active_ms = ((last_action / 1000 + 2) * 1000).min(candidate.active_ms);
        candidate.crashes.retain(|c| c.at_ms < candidate.active_ms);
        candidate
            .net_faults
            .retain(|f| f.at_ms < candidate.active_ms);
        self.attempt(candidate);
    }

    /// Remove items in chunks from back to front, halving the chunk size
    /// down to one (delta debugging). `count` numbers the items; `remove`
    /// takes a range of them out. Removing items must leave the numbers of
    /// the items before them unchanged.
    fn chunks(
        &mut self,
        count: impl Fn(&Plan) -> usize,
        remove: impl Fn(&Plan, std::ops::Range<usize>) -> Plan,
    ) {
        let mut chunk = count(&self.best).div_ceil(2).max(1);
        loop {
            let mut end = count(&self.best);
            while end > 0 && self.budget_left() {
                let start = end.saturating_sub(chunk);
                self.attempt(remove(&self.best, start..end));
                end = start;
            }
            if chunk == 1 || !self.budget_left() {
                return;
            }
            chunk = chunk.div_ceil(2);
        }
    }

    /// Each person's last device away, while they have more than one.
    fn fewer_devices(&mut self) {
        for person in (0..self.best.accounts.len()).rev() {
            while self.best.accounts[person].devices > 1 && self.budget_left() {
                if !self.attempt(remove_last_device(&self.best, person)) {
                    break;
                }
            }
        }
    }

    /// Each broadcast away with every capture of it, last first.
    fn fewer_broadcasts(&mut self) {
        let broadcasts: BTreeSet<u32> = self
            .best
            .accounts
            .iter()
            .flat_map(|a| &a.actions)
            .filter_map(|t| match t.action {
                Action::HearBroadcast { broadcast, .. } => Some(broadcast),
                _ => None,
            })
            .collect();
        for broadcast in broadcasts.into_iter().rev() {
            let mut candidate = self.best.clone();
            for account in &mut candidate.accounts {
                account.actions.retain(|t| {
                    !matches!(t.action, Action::HearBroadcast { broadcast: b, .. } if b == broadcast)
                });
            }
            self.attempt(candidate);
        }
    }

    /// Every fault away at once, then each crash and network fault (last
    /// first), then the I/O-error and fault-point rates.
    fn fewer_faults(&mut self) {
        if fault_count(&self.best) == 0 {
            return;
        }
        let mut none = self.best.clone();
        none.crashes.clear();
        none.net_faults.clear();
        none.store_io_errors_per_million = 0;
        none.sut_fault_points_per_mille = 0;
        if self.attempt(none) {
            return;
        }
        for index in (0..self.best.crashes.len()).rev() {
            let mut candidate = self.best.clone();
            candidate.crashes.remove(index);
            self.attempt(candidate);
        }
        for index in (0..self.best.net_faults.len()).rev() {
            let mut candidate = self.best.clone();
            candidate.net_faults.remove(index);
            self.attempt(candidate);
        }
        let mut candidate = self.best.clone();
        candidate.store_io_errors_per_million = 0;
        self.attempt(candidate);
        let mut candidate = self.best.clone();
        candidate.sut_fault_points_per_mille = 0;
        self.attempt(candidate);
    }

    /// No agent; else none of the agent's mistakes, then each kept alone.
    fn simpler_agent(&mut self) {
        let Some(agent) = self.best.agent.clone() else {
            return;
        };
        let mut candidate = self.best.clone();
        candidate.agent = None;
        if self.attempt(candidate) {
            return;
        }
        let mut careful = agent.clone();
        careful.typo_per_mille = 0;
        careful.stale_clipboard_per_mille = 0;
        careful.swap_per_mille = 0;
        careful.weak_proof_per_mille = 0;
        careful.duplicate_per_mille = 0;
        careful.bad_reason_per_mille = 0;
        if careful == agent {
            return;
        }
        let mut candidate = self.best.clone();
        candidate.agent = Some(careful);
        if self.attempt(candidate) {
            return;
        }
        type Rate = fn(&mut crate::plan::AgentPlan) -> &mut u32;
        let rates: [Rate; 6] = [
            |a| &mut a.typo_per_mille,
            |a| &mut a.stale_clipboard_per_mille,
            |a| &mut a.swap_per_mille,
            |a| &mut a.weak_proof_per_mille,
            |a| &mut a.duplicate_per_mille,
            |a| &mut a.bad_reason_per_mille,
        ];
        for rate in rates {
            let mut candidate = self.best.clone();
            if let Some(agent) = candidate.agent.as_mut()
                && *rate(agent) > 0
            {
                *rate(agent) = 0;
                self.attempt(candidate);
            }
        }
    }

    /// One client host, fewer workers, fixed latency, a shorter drain, no
    /// contacts nobody needs.
    fn simpler_world(&mut self) {
        if self.best.client_hosts > 1 {
            let mut candidate = self.best.clone();
            candidate.client_hosts = 1;
            candidate
                .net_faults
                .retain(|f| !f.a.starts_with("client-") && !f.b.starts_with("client-"));
            self.attempt(candidate);
        }
        while self.best.worker_hosts > 1 && self.budget_left() {
            let gone = format!("worker-{}", self.best.worker_hosts - 1);
            let mut candidate = self.best.clone();
            candidate.worker_hosts -= 1;
            candidate.crashes.retain(|c| c.host != gone);
            candidate.net_faults.retain(|f| f.a != gone && f.b != gone);
            if !self.attempt(candidate) {
                break;
            }
        }
        if self.best.latency_ms_max > self.best.latency_ms_min {
            let mut candidate = self.best.clone();
            candidate.latency_ms_max = candidate.latency_ms_min;
            self.attempt(candidate);
        }
        while self.best.drain_ms > 30_000 && self.budget_left() {
            let mut candidate = self.best.clone();
            candidate.drain_ms = (candidate.drain_ms / 2).max(30_000);
            if !self.attempt(candidate) {
                break;
            }
        }
        for person in (0..self.best.accounts.len()).rev() {
            if !self.best.accounts[person].contacts.is_empty() {
                let mut candidate = self.best.clone();
                candidate.accounts[person].contacts.clear();
                self.attempt(candidate);
            }
        }
    }

    /// Numbers inside actions made simpler: all at once, else one action at
    /// a time from back to front.
    fn simpler_actions(&mut self) {
        let mut all = self.best.clone();
        let mut changed = false;
        for timed in all.accounts.iter_mut().flat_map(|a| a.actions.iter_mut()) {
            changed |= simplify(&mut timed.action);
        }
        if !changed || self.attempt(all) {
            return;
        }
        for (person, index) in global_order(&self.best).into_iter().rev() {
            let mut candidate = self.best.clone();
            if simplify(&mut candidate.accounts[person].actions[index].action) {
                self.attempt(candidate);
            }
        }
    }
}

/// Make one action's numbers simpler; whether anything changed.
fn simplify(action: &mut Action) -> bool {
    let before = action.clone();
    match action {
        Action::RequestExport {
            delete_first,
            redownloads,
            repeats,
            by_ticket,
            store_down_ms,
        } => {
            *delete_first = false;
            *redownloads = 0;
            *repeats = 0;
            *by_ticket = false;
            *store_down_ms = None;
        }
        Action::Impersonate { guesses, .. } => *guesses = 1,
        Action::DeviceOutage { for_ms, .. } => *for_ms = (*for_ms / 2).max(1_000),
        Action::Speak {
            purchase,
            message,
            speaker,
            audio_bytes,
            ..
        } => {
            *purchase = None;
            *message = None;
            *speaker = None;
            *audio_bytes = None;
        }
        _ => {}
    }
    *action != before
}

/// Every action as (person, index), in time order (ties by person, then
/// by position): the order "trailing" and "back to front" refer to.
fn global_order(plan: &Plan) -> Vec<(usize, usize)> {
    let mut order: Vec<(u64, usize, usize)> = plan
        .accounts
        .iter()
        .enumerate()
        .flat_map(|(person, a)| {
            a.actions
                .iter()
                .enumerate()
                .map(move |(index, t)| (t.at_ms, person, index))
        })
        .collect();
    order.sort_unstable();
    order.into_iter().map(|(_, p, i)| (p, i)).collect()
}

/// The plan with only the actions whose position in time order `keep`
/// accepts.
fn keep_actions(plan: &Plan, keep: impl Fn(usize) -> bool) -> Plan {
    let mut kept: BTreeSet<(usize, usize)> = BTreeSet::new();
    for (global, at) in global_order(plan).into_iter().enumerate() {
        if keep(global) {
            kept.insert(at);
        }
    }
    let mut candidate = plan.clone();
    for (person, account) in candidate.accounts.iter_mut().enumerate() {
        let actions = std::mem::take(&mut account.actions);
        account.actions = actions
            .into_iter()
            .enumerate()
            .filter(|(index, _)| kept.contains(&(person, *index)))
            .map(|(_, t)| t)
            .collect();
    }
    candidate
}

/// The plan without people `gone` (a range of indices): their actions go,
/// actions aimed at them go (impersonations, sales) or lose the reference
/// (a housemate's voice, a name on television), contacts drop them, and
/// everyone after them moves down.
pub fn remove_people(plan: &Plan, gone: std::ops::Range<usize>) -> Plan {
    let shift = |index: u32| -> Option<u32> {
        let i = index as usize;
        if gone.contains(&i) {
            None
        } else if i >= gone.end {
            Some((i - gone.len()) as u32)
        } else {
            Some(index)
        }
    };
    let mut candidate = plan.clone();
    let mut index = 0;
    candidate.accounts.retain(|_| {
        index += 1;
        !gone.contains(&(index - 1))
    });
    for account in &mut candidate.accounts {
        account.contacts = account.contacts.iter().filter_map(|&c| shift(c)).collect();
        let actions = std::mem::take(&mut account.actions);
        account.actions = actions
            .into_iter()
            .filter_map(|t| reindex(t, &shift))
            .collect();
    }
    candidate
}

/// One action with its person references moved by `shift`; `None` when it
/// is aimed at someone who is gone.
fn reindex(mut timed: TimedAction, shift: &impl Fn(u32) -> Option<u32>) -> Option<TimedAction> {
    match &mut timed.action {
        Action::Impersonate { victim: who, .. }
        | Action::BruteForceTicket { victim: who, .. }
        | Action::ConfirmAfterRecycle { contact: who, .. }
        | Action::TransferDevice { to: who, .. }
        | Action::MoveOut { to: who, .. } => {
            *who = shift(*who)?;
        }
        Action::Speak { speaker, .. } => *speaker = speaker.and_then(shift),
        Action::HearBroadcast { message_to, .. } => *message_to = message_to.and_then(shift),
        _ => {}
    }
    Some(timed)
}

/// The plan with `person`'s last device gone, with the actions on it.
fn remove_last_device(plan: &Plan, person: usize) -> Plan {
    let mut candidate = plan.clone();
    let account = &mut candidate.accounts[person];
    account.devices -= 1;
    let gone = account.devices;
    account.device_clock_skew_ms.truncate(gone as usize);
    account.actions.retain(|t| match t.action {
        Action::Speak { device, .. }
        | Action::HearBroadcast { device, .. }
        | Action::DeviceOutage { device, .. } => device != gone,
        _ => true,
    });
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn plan_of(toml_name: &str, seed: u64) -> Plan {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("scenarios")
            .join(toml_name);
        Plan::generate(&Scenario::load(&path).expect("scenario loads"), seed)
    }

    #[test]
    fn removing_people_keeps_every_reference_in_range() {
        let plan = plan_of("gdpr-wrong-customer.toml", 3);
        let people = plan.accounts.len();
        let smaller = remove_people(&plan, 2..5);
        assert_eq!(smaller.accounts.len(), people - 3);
        assert_eq!(smaller.accounts[2].email, plan.accounts[5].email);
        let within = |i: u32| (i as usize) < smaller.accounts.len();
        for account in &smaller.accounts {
            assert!(account.contacts.iter().all(|&c| within(c)));
            for t in &account.actions {
                match t.action {
                    Action::Impersonate { victim: w, .. }
                    | Action::TransferDevice { to: w, .. } => {
                        assert!(within(w))
                    }
                    Action::Speak {
                        speaker: Some(w), ..
                    } => assert!(within(w)),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn keeping_a_prefix_keeps_the_earliest_actions() {
        let plan = plan_of("smoke.toml", 1);
        let prefix = keep_actions(&plan, |global| global < 10);
        assert_eq!(action_count(&prefix), 10);
        let last_kept = prefix
            .accounts
            .iter()
            .flat_map(|a| &a.actions)
            .map(|t| t.at_ms)
            .max()
            .unwrap_or(0);
        let dropped_earlier = plan
            .accounts
            .iter()
            .flat_map(|a| &a.actions)
            .filter(|t| t.at_ms < last_kept)
            .count();
        assert!(dropped_earlier <= 10);
    }

    #[test]
    fn the_shrunk_file_sits_beside_the_original() {
        assert_eq!(
            shrunk_path(Path::new("a/b/planted-x.json")),
            PathBuf::from("a/b/planted-x-shrunk.json")
        );
    }
}
