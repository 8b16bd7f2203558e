//! Probes a real attacker and real bad timing would try, as plan data: the
//! brute force on a support ticket that finally hits the right code, and
//! the confirmation of a message that arrives after its recipient's
//! address changed hands.
//!
//! Everything is drawn from streams derived from the seed for these
//! purposes alone (`streams::derive(seed, "plan/ticket-attempts")` and
//! `"plan/probes"`), after everything else, so that adding them left every
//! other draw of a plan as it was. A probe is only scheduled where the
//! scenario already has what it builds on (impersonations; accounts closed
//! and signed up again whose owner is someone's contact), and swarm testing
//! switches each kind off in one seed of four.

use super::{AccountPlan, Action, TimedAction};
use crate::scenario::Scenario;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The swarm name of the ticket lockout probes.
pub const LOCKOUT_SWARM_NAME: &str = "ticket_lockout";
/// The swarm name of the confirmations after a recipient's address was
/// recycled.
pub const RECYCLED_SWARM_NAME: &str = "recycled_recipient";

/// How long before the recipient closes their account the sender sends the
/// message it will confirm late (ms).
const SEND_BEFORE_CLOSE_MS: u64 = 5_000;
/// How long after the address is signed up again its new holder reads the
/// inbox (ms).
const INBOX_AFTER_SIGN_UP_MS: u64 = 20_000;

fn rng(seed: u64, purpose: &str) -> ChaCha8Rng {
    ChaCha8Rng::from_seed(crate::streams::derive(seed, purpose))
}

/// The wrong codes a ticket takes before it is rejected, for this seed:
/// 2 to 6, so that an off-by-one in the service's count shows on some seeds.
pub fn draw_ticket_attempts(seed: u64) -> u32 {
    rng(seed, "plan/ticket-attempts").random_range(2..=6)
}

/// Schedule the probes; returns the swarm names switched off for this seed.
pub fn schedule(
    scenario: &Scenario,
    seed: u64,
    active_ms: u64,
    accounts: &mut [AccountPlan],
) -> Vec<String> {
    let mut rng = rng(seed, "plan/probes");
    let mut off = Vec::new();
    let lockout_off = scenario.swarm && rng.random_ratio(1, 4);
    let recycled_off = scenario.swarm && rng.random_ratio(1, 4);
    if lockout_off {
        off.push(LOCKOUT_SWARM_NAME.to_string());
    } else {
        schedule_lockouts(&mut rng, accounts);
    }
    if recycled_off {
        off.push(RECYCLED_SWARM_NAME.to_string());
    } else {
        schedule_recycled(&mut rng, active_ms, accounts);
    }
    for account in accounts.iter_mut() {
        account.actions.sort_by_key(|a| a.at_ms);
    }
    off
}

/// Three impersonations in four go on to a lockout probe right after
/// their guesses: the attacker sends the right code, or the victim does,
/// or the attacker tries an address one letter short of the victim's.
fn schedule_lockouts(rng: &mut ChaCha8Rng, accounts: &mut [AccountPlan]) {
    for account in accounts.iter_mut() {
        let mut added = Vec::new();
        for timed in &account.actions {
            let Action::Impersonate { victim, .. } = timed.action else {
                continue;
            };
            let (by_victim, near_miss) = match rng.random_range(0..4u32) {
                0 => continue,
                1 => (false, false),
                2 => (true, false),
                _ => (false, true),
            };
            added.push(TimedAction {
                at_ms: timed.at_ms + 1,
                action: Action::BruteForceTicket {
                    victim,
                    by_victim,
                    near_miss,
                },
            });
        }
        account.actions.extend(added);
    }
}

/// Every account closed and signed up again whose owner is someone's
/// contact gets one such someone who sends them a message just before the
/// close and confirms it only after the address is signed up again; the
/// address's new holder reads the inbox a little later.
fn schedule_recycled(rng: &mut ChaCha8Rng, active_ms: u64, accounts: &mut [AccountPlan]) {
    for recipient in 0..accounts.len() {
        let Some((closed_ms, again_ms)) = close_and_return(&accounts[recipient]) else {
            continue;
        };
        let senders: Vec<usize> = (0..accounts.len())
            .filter(|&s| s != recipient && accounts[s].contacts.contains(&(recipient as u32)))
            .collect();
        if senders.is_empty() {
            continue;
        }
        let sender = senders[rng.random_range(0..senders.len())];
        accounts[sender].actions.push(TimedAction {
            at_ms: closed_ms.saturating_sub(SEND_BEFORE_CLOSE_MS),
            action: Action::ConfirmAfterRecycle {
                contact: recipient as u32,
                pick: rng.random(),
            },
        });
        let read_ms = again_ms + INBOX_AFTER_SIGN_UP_MS;
        if read_ms < active_ms {
            accounts[recipient].actions.push(TimedAction {
                at_ms: read_ms,
                action: Action::ReadInbox { pick: rng.random() },
            });
        }
    }
}

/// When the account is closed and when it is signed up again, if both are
/// planned.
fn close_and_return(account: &AccountPlan) -> Option<(u64, u64)> {
    let closed = account
        .actions
        .iter()
        .find(|a| a.action == Action::CloseAccount)?
        .at_ms;
    let again = account
        .actions
        .iter()
        .find(|a| a.action == Action::SignUpAgain)?
        .at_ms;
    Some((closed, again))
}
