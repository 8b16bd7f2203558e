//! Faults on the export worker's collection reads: the store refusing a
//! listing page or an audio file with a transient 503, now and then
//! (`store.service.unavailable`, drawn like every fault point), and a
//! *poisoned subject*: one person whose collection reads the store refuses
//! every time for a long window (`store.service.subject_unavailable`), as
//! when the shard holding their recordings is down.
//!
//! The poisoned subject is plan data ([`PoisonPlan`]): a person whose only
//! export job is the one their single export request creates (no ticket,
//! no deletion, no account closing, nobody opening tickets in their name),
//! so every refused read the store answers for them belongs to that one
//! job, at most one per attempt (the worker gives up an attempt at its
//! first refused read). Where the plan has no such person, one who asks
//! for an export is made one: their other requests, tickets, deletions and
//! probes are left out (never anyone's account closing, address handover
//! or move, which other people's actions count on). The window opens at or before the request, so the
//! job cannot be ready (and revoked, which resets its attempts) inside it.
//! [`CollectionFaults`] is the ground truth the oracle judges the export
//! service's retries by (`check/poison.rs`): when each refused read came.

use crate::plan::{AccountPlan, Action};
use crate::streams::derive;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The fault point that refuses one subject's collection reads.
pub const SUBJECT_POINT: &str = "store.service.subject_unavailable";
/// The fault point that refuses any collection read now and then.
pub const TRANSIENT_POINT: &str = "store.service.unavailable";

/// One subject's collection reads refused from `from_ms` until `until_ms`
/// (simulated ms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoisonPlan {
    /// The person (principal index) whose reads are refused.
    pub principal: u32,
    /// When their export request is planned (it is sent then or later).
    pub request_ms: u64,
    pub from_ms: u64,
    pub until_ms: u64,
}

/// The shortest window worth scheduling, in ms.
const MIN_WINDOW_MS: u64 = 45_000;

/// Whether `account`'s actions keep them to one export job: exactly one
/// export request (no deletion before its download, no ticket beside it),
/// and nothing else that creates a job, revokes an archive or closes the
/// account.
fn has_one_job(account: &AccountPlan) -> bool {
    let mut requests = 0;
    for timed in &account.actions {
        match &timed.action {
            Action::RequestExport {
                delete_first,
                by_ticket,
                ..
            } => {
                requests += 1;
                // A ticket beside the request may get a job of its own.
                if *delete_first || *by_ticket {
                    return false;
                }
            }
            Action::TicketExport
            | Action::DeleteOne { .. }
            | Action::DeleteRange { .. }
            | Action::DeleteAll
            | Action::Probe { .. }
            | Action::ProbeLinkLimits { .. }
            | Action::RebuildOwnArchive
            | Action::CloseAccount
            | Action::SignUpAgain
            | Action::ConfirmAfterRecycle { .. }
            | Action::TicketAcrossHandover { .. }
            | Action::MoveOut { .. } => return false,
            _ => {}
        }
    }
    requests == 1
}

/// Whether `account` can be left with one export job by leaving out what
/// would give it another or revoke it: it asks for an export, and takes
/// no part in a closing, an address handover, a move or a "delete all".
fn can_keep_one_job(account: &AccountPlan) -> bool {
    let mut requests = false;
    for timed in &account.actions {
        match &timed.action {
            Action::RequestExport { .. } => requests = true,
            Action::CloseAccount
            | Action::SignUpAgain
            | Action::ConfirmAfterRecycle { .. }
            | Action::TicketAcrossHandover { .. }
            | Action::MoveOut { .. }
            | Action::DeleteAll => return false,
            _ => {}
        }
    }
    requests
}

/// Leave `account` one export job: its first request stays (with no
/// deletion before its download and no ticket beside it); its other
/// requests, tickets, deletions and probes go.
fn keep_one_job(account: &mut AccountPlan) {
    let mut first = true;
    account.actions.retain_mut(|timed| match &mut timed.action {
        Action::RequestExport {
            delete_first,
            by_ticket,
            store_down_ms,
            ..
        } => {
            *delete_first = false;
            *by_ticket = false;
            *store_down_ms = None;
            std::mem::replace(&mut first, false)
        }
        Action::TicketExport
        | Action::DeleteOne { .. }
        | Action::DeleteRange { .. }
        | Action::Probe { .. }
        | Action::ProbeLinkLimits { .. }
        | Action::RebuildOwnArchive => false,
        _ => true,
    });
    debug_assert!(has_one_job(account));
}

/// Whom anyone opens a ticket for (impersonators, brute-forcers).
fn ticket_victims(accounts: &[AccountPlan]) -> std::collections::BTreeSet<u32> {
    let mut victims = std::collections::BTreeSet::new();
    for timed in accounts.iter().flat_map(|a| &a.actions) {
        match &timed.action {
            Action::Impersonate { victim, .. } => {
                victims.insert(*victim);
            }
            Action::BruteForceTicket { victim, .. } => {
                victims.insert(*victim);
            }
            _ => {}
        }
    }
    victims
}

/// Draw the poisoned subject of seed `seed`, with chance `per_mille`: a
/// person with one export job (made one if nobody is), their reads refused
/// from up to 5 s before the request for `window_ms` (drawn from the
/// range), healed at the latest half-way through the drain (`ends_by_ms`),
/// so that a job that gave up can be asked for again. From its own
/// generator, so the rest of the plan is what it was without it.
pub fn draw(
    seed: u64,
    per_mille: u64,
    window_ms: (u64, u64),
    ends_by_ms: u64,
    accounts: &mut [AccountPlan],
) -> Option<PoisonPlan> {
    if per_mille == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::from_seed(derive(seed, "poisoned-subject"));
    if !rng.random_ratio(per_mille.min(1000) as u32, 1000) {
        return None;
    }
    let victims = ticket_victims(accounts);
    let free = |i: &usize| !victims.contains(&(*i as u32));
    let mut eligible: Vec<usize> = (0..accounts.len())
        .filter(|i| has_one_job(&accounts[*i]) && free(i))
        .collect();
    if eligible.is_empty() {
        let candidates: Vec<usize> = (0..accounts.len())
            .filter(|i| can_keep_one_job(&accounts[*i]) && free(i))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let made = candidates[rng.random_range(0..candidates.len())];
        keep_one_job(&mut accounts[made]);
        eligible.push(made);
    }
    let principal = eligible[rng.random_range(0..eligible.len())];
    let request_ms = accounts[principal]
        .actions
        .iter()
        .find(|t| matches!(t.action, Action::RequestExport { .. }))?
        .at_ms;
    let principal = principal as u32;
    let from_ms = request_ms.saturating_sub(rng.random_range(0..=5_000));
    let length = rng.random_range(window_ms.0..=window_ms.1.max(window_ms.0));
    let until_ms = from_ms.saturating_add(length).min(ends_by_ms);
    (until_ms.saturating_sub(from_ms) >= MIN_WINDOW_MS).then_some(PoisonPlan {
        principal,
        request_ms,
        from_ms,
        until_ms,
    })
}

/// What the collection-read fault points did in one run, shared by every
/// store incarnation's fault points (which must be `Send + Sync`) and read
/// by the oracle at the end.
#[derive(Debug, Default)]
pub struct CollectionFaults {
    plan: Option<PoisonPlan>,
    /// The poisoned subject's account, once their sign-up was answered.
    account: Mutex<Option<u64>>,
    /// When the store refused each of the poisoned subject's reads.
    refused_ms: Mutex<Vec<u64>>,
    /// Transient refusals of anyone's collection reads.
    transient: AtomicU64,
}

impl CollectionFaults {
    pub fn new(plan: Option<PoisonPlan>) -> Self {
        Self {
            plan,
            ..Self::default()
        }
    }

    pub fn plan(&self) -> Option<&PoisonPlan> {
        self.plan.as_ref()
    }

    /// Person `principal` signed up as `account`.
    pub fn learn_account(&self, principal: usize, account: u64) {
        if self.plan.as_ref().map(|p| p.principal as usize) == Some(principal) {
            *self.account.lock().unwrap_or_else(|p| p.into_inner()) = Some(account);
        }
    }

    /// Whether the store refuses `account`'s collection read at `now_ms`
    /// (and if so, remember when).
    pub fn refuses(&self, account: u64, now_ms: u64) -> bool {
        let Some(plan) = &self.plan else {
            return false;
        };
        let poisoned = *self.account.lock().unwrap_or_else(|p| p.into_inner());
        let refused = poisoned == Some(account) && (plan.from_ms..plan.until_ms).contains(&now_ms);
        if refused {
            self.refused_ms
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(now_ms);
        }
        refused
    }

    /// A transient refusal fired.
    pub fn count_transient(&self) {
        self.transient.fetch_add(1, Ordering::Relaxed);
    }

    pub fn transient_refusals(&self) -> u64 {
        self.transient.load(Ordering::Relaxed)
    }

    /// When the store refused the poisoned subject's reads, in order.
    pub fn refused_ms(&self) -> Vec<u64> {
        self.refused_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::TimedAction;

    fn account(actions: Vec<Action>) -> AccountPlan {
        AccountPlan {
            email: "a@x".into(),
            devices: 1,
            device_clock_skew_ms: Vec::new(),
            contacts: Vec::new(),
            actions: actions
                .into_iter()
                .map(|action| TimedAction {
                    at_ms: 30_000,
                    action,
                })
                .collect(),
            ambient: Vec::new(),
        }
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

    #[test]
    fn only_a_person_with_one_export_job_is_poisoned() {
        let accounts = vec![
            account(vec![export(), Action::DeleteOne { pick: 1 }]),
            account(vec![export(), export()]),
            account(vec![Action::ListHistory, export()]),
        ];
        for seed in 0..20 {
            let mut accounts = accounts.clone();
            let plan = draw(seed, 1000, (60_000, 90_000), 180_000, &mut accounts).unwrap();
            assert_eq!(plan.principal, 2);
            assert!(plan.from_ms <= 30_000 && plan.from_ms >= 25_000);
            assert!(plan.until_ms - plan.from_ms >= 60_000);
        }
        let mut unchanged = accounts.clone();
        assert_eq!(draw(1, 0, (60_000, 90_000), 180_000, &mut unchanged), None);
    }

    #[test]
    fn where_nobody_has_one_export_job_someone_is_left_with_one() {
        let closes = account(vec![export(), Action::CloseAccount]);
        let probes = account(vec![
            Action::Probe { pick: 1, nonce: 2 },
            export(),
            Action::TicketExport,
            export(),
            Action::DeleteOne { pick: 1 },
            Action::ListHistory,
        ]);
        for seed in 0..20 {
            let mut accounts = vec![closes.clone(), probes.clone()];
            let plan = draw(seed, 1000, (60_000, 90_000), 180_000, &mut accounts).unwrap();
            assert_eq!(plan.principal, 1);
            assert_eq!(accounts[0], closes, "an account closing stays as it was");
            assert!(has_one_job(&accounts[1]));
            let kept: Vec<&str> = accounts[1]
                .actions
                .iter()
                .map(|t| t.action.name())
                .collect();
            assert_eq!(kept, ["request_export", "list_history"]);
        }
        let mut nobody = vec![closes.clone()];
        assert_eq!(draw(1, 1000, (60_000, 90_000), 180_000, &mut nobody), None);
    }

    #[test]
    fn reads_are_refused_for_the_subject_inside_the_window_only() {
        let plan = PoisonPlan {
            principal: 3,
            request_ms: 100,
            from_ms: 100,
            until_ms: 200,
        };
        let faults = CollectionFaults::new(Some(plan));
        assert!(
            !faults.refuses(7, 150),
            "refused before the account was known"
        );
        faults.learn_account(2, 9);
        faults.learn_account(3, 7);
        assert!(!faults.refuses(9, 150));
        assert!(!faults.refuses(7, 99));
        assert!(faults.refuses(7, 100));
        assert!(faults.refuses(7, 199));
        assert!(!faults.refuses(7, 200));
        assert_eq!(faults.refused_ms(), [100, 199]);
    }
}
