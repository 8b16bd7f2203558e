//! A support ticket across an address handover, as plan data: a person
//! opens a ticket for their own address and reads its code, closes their
//! account, and verifies the ticket only after someone else signed up with
//! the released address (Yahoo 2013 recycled identities meet the Alexa
//! DSAR 2018 misdelivery). One newcomer in three is an attacker who
//! watches for released addresses and then asks for "their" data.
//!
//! Drawn from a stream derived from the seed for this purpose alone
//! (`streams::derive(seed, "plan/handover")`), after everything else, so
//! that every other draw of a plan stays as it was. Scheduled only where
//! the scenario already closes accounts or takes tickets, on one person per
//! seed who never signs up again (their address is released for good), and
//! switched off by swarm testing in one seed of four.

use super::{AccountPlan, Action, TimedAction};
use crate::scenario::Scenario;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

/// The swarm name of the tickets verified across an address handover.
pub const SWARM_NAME: &str = "ticket_handover";

/// Schedule the handover; returns the swarm names switched off.
pub fn schedule(
    scenario: &Scenario,
    seed: u64,
    active_ms: u64,
    accounts: &mut [AccountPlan],
) -> Vec<String> {
    let a = &scenario.actions;
    if a.close_account_per_mille == 0 && a.ticket_exports.1 == 0 {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::from_seed(crate::streams::derive(seed, "plan/handover"));
    if scenario.swarm && rng.random_ratio(1, 4) {
        return vec![SWARM_NAME.to_string()];
    }
    // Early enough that the old holder's verification, the newcomer's
    // feed reads and the attacker's own ticket fit in the active period.
    let (earliest, latest) = (active_ms / 5, active_ms / 2);
    let candidates: Vec<usize> = (0..accounts.len())
        .filter(|&p| leaves_for_good(&accounts[p], earliest))
        .collect();
    if candidates.is_empty() || latest <= earliest {
        return Vec::new();
    }
    let person = candidates[rng.random_range(0..candidates.len())];
    let mut at_ms = rng.random_range(earliest..latest);
    if let Some(closed) = close_time(&accounts[person]) {
        // The ticket comes first; the account's planned closing is this.
        at_ms = at_ms.min(closed - 1);
    }
    let mut used = nonces_in(accounts);
    let mut fresh = || loop {
        let candidate: u64 = rng.random();
        if used.insert(candidate) {
            break candidate;
        }
    };
    let nonces = [fresh(), fresh()];
    let attacker = rng.random_ratio(1, 3);
    let account = &mut accounts[person];
    account.actions.push(TimedAction {
        at_ms,
        action: Action::TicketAcrossHandover { attacker, nonces },
    });
    account.actions.sort_by_key(|a| a.at_ms);
    Vec::new()
}

/// Whether `account` never signs up again and, if it closes, not before
/// `earliest`.
fn leaves_for_good(account: &AccountPlan, earliest: u64) -> bool {
    !account
        .actions
        .iter()
        .any(|a| a.action == Action::SignUpAgain)
        && close_time(account).is_none_or(|closed| closed > earliest + 1)
}

fn close_time(account: &AccountPlan) -> Option<u64> {
    account
        .actions
        .iter()
        .find(|a| a.action == Action::CloseAccount)
        .map(|a| a.at_ms)
}

/// Every nonce the plan's actions already carry.
fn nonces_in(accounts: &[AccountPlan]) -> BTreeSet<u64> {
    let mut used = BTreeSet::new();
    for timed in accounts.iter().flat_map(|a| &a.actions) {
        match &timed.action {
            Action::Speak {
                also_heard: Some(echo),
                ..
            } => {
                used.insert(*echo);
                if let Action::Speak { nonce, .. } = &timed.action {
                    used.insert(*nonce);
                }
            }
            Action::Speak { nonce, .. }
            | Action::HearBroadcast { nonce, .. }
            | Action::Probe { nonce, .. } => {
                used.insert(*nonce);
            }
            Action::TicketAcrossHandover { nonces, .. } => used.extend(nonces.iter().copied()),
            Action::MoveOut { nonces, .. } => used.extend(nonces.iter().copied()),
            _ => {}
        }
    }
    used
}

/// The swarm name of the devices sold unplugged before their seller moved out.
pub const MOVE_OUT_SWARM_NAME: &str = "moving_out";

/// At most this many people move out in one run.
const MOVE_OUTS_PER_RUN: usize = 2;

/// "Moving out": each person who neither closes nor leaves otherwise
/// (chance `move_out_per_mille`, at most [`MOVE_OUTS_PER_RUN`] a run) sells
/// an unplugged device still holding three of their captures (a plain one,
/// a spoken order, and "send this to" a contact, one the buyer has too
/// when there is one) to someone who stays, then closes the account.
/// Drawn from a stream of its own (`streams::derive(seed, "plan/move_out")`)
/// after everything else, so that every other draw stays as it was;
/// switched off by swarm testing in one seed of four. Returns the swarm
/// names switched off.
pub fn schedule_move_outs(
    scenario: &Scenario,
    seed: u64,
    active_ms: u64,
    accounts: &mut [AccountPlan],
    nonces: &mut BTreeSet<u64>,
) -> Vec<String> {
    let share = scenario.actions.move_out_per_mille.min(1000) as u32;
    if share == 0 || accounts.len() < 2 {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::from_seed(crate::streams::derive(seed, "plan/move_out"));
    if scenario.swarm && rng.random_ratio(1, 4) {
        return vec![MOVE_OUT_SWARM_NAME.to_string()];
    }
    let stays: Vec<usize> = (0..accounts.len())
        .filter(|&p| stays_open(&accounts[p]))
        .collect();
    nonces.extend(nonces_in(accounts));
    let (earliest, latest) = (active_ms / 5, active_ms / 2);
    let mut sellers = BTreeSet::new();
    for &seller in &stays {
        if sellers.len() == MOVE_OUTS_PER_RUN || latest <= earliest {
            break;
        }
        if accounts[seller].devices == 0 || !rng.random_ratio(share, 1000) {
            continue;
        }
        let buyers: Vec<usize> = stays
            .iter()
            .copied()
            .filter(|&b| b != seller && !sellers.contains(&b))
            .collect();
        if buyers.is_empty() {
            continue;
        }
        let to = buyers[rng.random_range(0..buyers.len())];
        let action = draw_move_out(&mut rng, &accounts[seller], &accounts[to], to, nonces);
        let at_ms = rng.random_range(earliest..latest);
        sellers.insert(seller);
        let account = &mut accounts[seller];
        account.actions.push(TimedAction { at_ms, action });
        account.actions.sort_by_key(|a| a.at_ms);
    }
    Vec::new()
}

/// One person's move-out to buyer `to`.
fn draw_move_out(
    rng: &mut ChaCha8Rng,
    seller: &AccountPlan,
    buyer: &AccountPlan,
    to: usize,
    nonces: &mut BTreeSet<u64>,
) -> Action {
    let mut fresh = || loop {
        let candidate: u64 = rng.random();
        if nonces.insert(candidate) {
            break candidate;
        }
    };
    let nonces = [fresh(), fresh(), fresh()];
    let shared: Vec<u32> = seller
        .contacts
        .iter()
        .copied()
        .filter(|c| buyer.contacts.contains(c))
        .collect();
    let contact = shared.first().or(seller.contacts.first()).copied();
    Action::MoveOut {
        to: to as u32,
        device: rng.random_range(0..seller.devices),
        nonces,
        item: rng.random_range(0..super::ITEMS.len() as u32),
        contact,
        buyer_first: rng.random_bool(0.5),
    }
}

/// Whether `account` keeps its account open all run (no closing, no
/// handover ticket, no move-out of its own).
fn stays_open(account: &AccountPlan) -> bool {
    !account.actions.iter().any(|a| {
        matches!(
            a.action,
            Action::CloseAccount
                | Action::SignUpAgain
                | Action::TicketAcrossHandover { .. }
                | Action::MoveOut { .. }
        )
    })
}
