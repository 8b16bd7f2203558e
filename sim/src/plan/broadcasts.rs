//! Broadcasts, as plan data: one content aired at one moment and heard by
//! a share of homes (and by at least the store's media threshold, so that
//! it is media and not one home's voice), each hearing a capture of its own
//! device with its own nonce, within a second of the others.

use super::people::{Window, fresh_nonce};
use super::{AccountPlan, Action, ITEMS, NAMES, TimedAction, draw};
use crate::scenario::Scenario;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

/// The scenario's broadcasts, added to their hearers' actions (kept in
/// time order).
pub(super) fn schedule(
    rng: &mut ChaCha8Rng,
    scenario: &Scenario,
    window: Window,
    accounts: &mut [AccountPlan],
    nonces: &mut BTreeSet<u64>,
) {
    let broadcasts = draw(rng, scenario.broadcasts.count);
    for broadcast in 0..broadcasts as u32 {
        let at_ms = window.draw(rng);
        let content: u64 = rng.random();
        let item = rng.random_range(0..ITEMS.len() as u32);
        let message_to = (scenario.broadcasts.message_per_mille > 0
            && rng.random_ratio(scenario.broadcasts.message_per_mille.min(1000) as u32, 1000))
        .then(|| rng.random_range(0..accounts.len().min(NAMES.len()) as u32));
        let share = scenario.broadcasts.heard_per_mille.min(1000) as u32;
        let mut hearers: Vec<usize> = (0..accounts.len())
            .filter(|_| rng.random_ratio(share, 1000))
            .collect();
        let least = crosstalk_store::media::MEDIA_EVENT_HOUSEHOLDS.min(accounts.len());
        while share > 0 && hearers.len() < least {
            let extra = rng.random_range(0..accounts.len());
            if !hearers.contains(&extra) {
                hearers.push(extra);
            }
        }
        let boundary = scenario.broadcasts.boundary_per_mille.min(1000) as u32;
        if boundary > 0 && rng.random_ratio(boundary, 1000) {
            // Heard by exactly the fewest homes that make it media.
            while hearers.len() > least {
                hearers.swap_remove(rng.random_range(0..hearers.len()));
            }
        }
        hearers.sort_unstable();
        for index in hearers {
            let account = &mut accounts[index];
            let nonce = fresh_nonce(rng, nonces);
            let device = rng.random_range(0..account.devices.max(1));
            // Devices hear it within a second of each other.
            let heard_at = at_ms + rng.random_range(0..1_000);
            if let Some(named) = message_to
                && named as usize != index
                && !account.contacts.contains(&named)
                && rng.random_bool(0.5)
            {
                // The name on television is a name half the homes know.
                account.contacts.push(named);
            }
            let action = Action::HearBroadcast {
                broadcast,
                device,
                nonce,
                content,
                item,
                message_to,
                audio_bytes: None,
            };
            account.actions.push(TimedAction {
                at_ms: heard_at,
                action,
            });
            account.actions.sort_by_key(|a| a.at_ms);
        }
    }
}
