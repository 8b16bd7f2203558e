//! People and households, as plan data: each account's devices (with
//! their clock skews), its timed actions and its contacts; then the homes
//! consecutive accounts share, where housemates talk near each other's
//! devices. Every draw comes from the plan's one stream, in the order
//! `Plan::generate` calls these functions: a change of order changes every
//! later draw (and every saved plan's meaning).

use super::{AccountPlan, Action, PHRASES, TimedAction, draw};
use crate::scenario::{ActionSpec, Scenario};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

/// A span of the active period that times are drawn in: a person's actions
/// from `first_ms` (sign-up and device registration have settled), crashes
/// and network faults from a second later, each up to the end of the
/// active period.
#[derive(Clone, Copy)]
pub(super) struct Window {
    pub(super) first_ms: u64,
    pub(super) active_ms: u64,
}

impl Window {
    /// A time drawn uniformly inside the window.
    pub(super) fn draw(self, rng: &mut ChaCha8Rng) -> u64 {
        rng.random_range(self.first_ms..self.active_ms.max(self.first_ms + 1))
    }
}

/// One person's actions as they are drawn, each at a time of the window.
struct Timeline {
    window: Window,
    actions: Vec<TimedAction>,
}

impl Timeline {
    fn push(&mut self, rng: &mut ChaCha8Rng, action: Action) {
        let at_ms = self.window.draw(rng);
        self.actions.push(TimedAction { at_ms, action });
    }
}

/// A nonce no utterance of the plan has yet.
pub(super) fn fresh_nonce(rng: &mut ChaCha8Rng, nonces: &mut BTreeSet<u64>) -> u64 {
    loop {
        let candidate: u64 = rng.random();
        if nonces.insert(candidate) {
            return candidate;
        }
    }
}

/// Account `index` of `account_count`: its devices, their clock skews, its
/// actions (sorted by time, ties in drawing order) and its contacts.
pub(super) fn account(
    rng: &mut ChaCha8Rng,
    scenario: &Scenario,
    seed: u64,
    index: usize,
    account_count: usize,
    window: Window,
    nonces: &mut BTreeSet<u64>,
) -> AccountPlan {
    let devices = draw(rng, scenario.world.devices_per_account) as u32;
    let skew_share = scenario.faults.device_clock_skew_per_mille;
    let device_clock_skew_ms: Vec<i64> = (0..devices)
        .map(|_| {
            if skew_share < 1000 && !rng.random_ratio(skew_share as u32, 1000) {
                return 0;
            }
            let magnitude = draw(rng, scenario.faults.device_clock_skew_ms) as i64;
            if rng.random_bool(0.5) {
                magnitude
            } else {
                -magnitude
            }
        })
        .collect();
    let a = &scenario.actions;
    let mut t = Timeline {
        window,
        actions: Vec::new(),
    };
    utterances(rng, a, devices, nonces, &mut t);
    for _ in 0..draw(rng, a.history_lists) {
        t.push(rng, Action::ListHistory);
    }
    for _ in 0..draw(rng, a.own_audio_fetches) {
        let pick = rng.random();
        t.push(rng, Action::FetchOwnAudio { pick });
    }
    export_requests(rng, a, account_count, &mut t);
    everyday(rng, a, devices, account_count, nonces, &mut t);
    close_and_return(rng, a, &mut t);
    let mut contacts = Vec::new();
    for _ in 0..draw(rng, a.contacts) {
        let other = rng.random_range(0..account_count as u32);
        if other as usize != index && !contacts.contains(&other) {
            contacts.push(other);
        }
    }
    // Stable order: by time, then by generation order.
    let mut actions = t.actions;
    actions.sort_by_key(|a| a.at_ms);
    AccountPlan {
        email: format!("person{index}.s{seed}@example.test"),
        devices,
        device_clock_skew_ms,
        contacts,
        actions,
        ambient: Vec::new(),
    }
}

/// What the person says to their devices: captures, orders, spoken
/// messages, and words two of their speakers hear at once.
fn utterances(
    rng: &mut ChaCha8Rng,
    a: &ActionSpec,
    devices: u32,
    nonces: &mut BTreeSet<u64>,
    t: &mut Timeline,
) {
    for _ in 0..draw(rng, a.utterances) {
        let nonce = fresh_nonce(rng, nonces);
        let device = rng.random_range(0..devices);
        let content: u64 = rng.random();
        let phrase = rng.random_range(0..PHRASES.len() as u32);
        let purchase = if rng.random_ratio(a.purchase_per_mille.min(1000) as u32, 1000) {
            Some(rng.random_range(0..super::ITEMS.len() as u32))
        } else {
            None
        };
        let message = if purchase.is_none()
            && a.spoken_message_per_mille > 0
            && rng.random_ratio(a.spoken_message_per_mille.min(1000) as u32, 1000)
        {
            Some(rng.random())
        } else {
            None
        };
        // Drawn only when the scenario asks for it, so that other
        // scenarios' plans stay as they were.
        let also_heard = (devices > 1
            && purchase.is_none()
            && message.is_none()
            && a.two_speakers_per_mille > 0
            && rng.random_ratio(a.two_speakers_per_mille.min(1000) as u32, 1000))
        .then(|| fresh_nonce(rng, nonces));
        t.push(
            rng,
            Action::Speak {
                device,
                nonce,
                content,
                phrase,
                purchase,
                message,
                speaker: None,
                also_heard,
                audio_bytes: None,
            },
        );
    }
}

/// Exports asked for directly (some impatiently, some also by a ticket),
/// by a ticket alone, and impersonations of someone else's address.
fn export_requests(rng: &mut ChaCha8Rng, a: &ActionSpec, account_count: usize, t: &mut Timeline) {
    for _ in 0..draw(rng, a.exports) {
        let delete_first =
            rng.random_ratio(a.delete_before_download_per_mille.min(1000) as u32, 1000);
        let redownloads = draw(rng, a.redownloads) as u32;
        // Drawn only when the scenario asks for it, so that other
        // scenarios' plans stay as they were.
        let repeats = if a.impatient_export_per_mille > 0
            && rng.random_ratio(a.impatient_export_per_mille.min(1000) as u32, 1000)
        {
            rng.random_range(1..=2)
        } else {
            0
        };
        // Half the impatient also write to support.
        let by_ticket = repeats > 0 && rng.random_ratio(1, 2);
        t.push(
            rng,
            Action::RequestExport {
                delete_first,
                redownloads,
                repeats,
                by_ticket,
                store_down_ms: None,
            },
        );
    }
    for _ in 0..draw(rng, a.ticket_exports) {
        t.push(rng, Action::TicketExport);
    }
    for _ in 0..draw(rng, a.impersonations) {
        let victim = rng.random_range(0..account_count as u32);
        let (low, high) = (a.impersonation_guesses.0, a.impersonation_guesses.1);
        let guesses = rng.random_range(low as u32..=high as u32);
        t.push(rng, Action::Impersonate { victim, guesses });
    }
}

/// Reading the feed and the inbox, links and ids that are not one's own,
/// devices sold, offline or reset, messages, the curious user's probes and
/// deletions.
fn everyday(
    rng: &mut ChaCha8Rng,
    a: &ActionSpec,
    devices: u32,
    account_count: usize,
    nonces: &mut BTreeSet<u64>,
    t: &mut Timeline,
) {
    for _ in 0..draw(rng, a.notification_reads) {
        t.push(rng, Action::ReadNotifications);
    }
    for _ in 0..draw(rng, a.foreign_link_uses) {
        let pick = rng.random();
        t.push(rng, Action::UseForeignLink { pick });
    }
    for _ in 0..draw(rng, a.guessed_audio_fetches) {
        let pick = rng.random();
        t.push(rng, Action::GuessAudio { pick });
    }
    for _ in 0..draw(rng, a.device_transfers) {
        let pick = rng.random();
        let to = rng.random_range(0..account_count as u32);
        t.push(rng, Action::TransferDevice { pick, to });
    }
    for _ in 0..draw(rng, a.device_outages) {
        let device = rng.random_range(0..devices);
        let for_ms = draw(rng, a.device_outage_ms);
        t.push(rng, Action::DeviceOutage { device, for_ms });
    }
    for _ in 0..draw(rng, a.device_resets) {
        let pick = rng.random();
        t.push(rng, Action::ResetDevice { pick });
    }
    for _ in 0..draw(rng, a.messages) {
        let (pick, contact) = (rng.random(), rng.random());
        let misheard = a.misheard_contact_per_mille > 0
            && rng.random_ratio(a.misheard_contact_per_mille.min(1000) as u32, 1000);
        t.push(
            rng,
            Action::SendMessage {
                pick,
                contact,
                misheard,
            },
        );
    }
    for _ in 0..draw(rng, a.inbox_reads) {
        let pick = rng.random();
        t.push(rng, Action::ReadInbox { pick });
    }
    // Drawn only when enabled, so that other scenarios' plans stay as they were.
    if a.curious_probes.1 > 0 {
        for _ in 0..draw(rng, a.curious_probes) {
            let pick = rng.random();
            let nonce = fresh_nonce(rng, nonces);
            t.push(rng, Action::Probe { pick, nonce });
        }
    }
    for _ in 0..draw(rng, a.deletions) {
        let pick = rng.random();
        t.push(rng, Action::DeleteOne { pick });
    }
    for _ in 0..draw(rng, a.range_deletions) {
        let (first, second) = (rng.random(), rng.random());
        t.push(rng, Action::DeleteRange { first, second });
    }
}

/// Close the account somewhere in the run; maybe come back later.
fn close_and_return(rng: &mut ChaCha8Rng, a: &ActionSpec, t: &mut Timeline) {
    if !rng.random_ratio(a.close_account_per_mille.min(1000) as u32, 1000) {
        return;
    }
    let close_at = t.window.draw(rng);
    t.actions.push(TimedAction {
        at_ms: close_at,
        action: Action::CloseAccount,
    });
    let active_ms = t.window.active_ms;
    if rng.random_bool(0.5) && close_at + 1 < active_ms {
        let again_at = rng.random_range(close_at + 1..active_ms);
        t.actions.push(TimedAction {
            at_ms: again_at,
            action: Action::SignUpAgain,
        });
    }
}

/// Households: consecutive accounts share a home. Housemates know each
/// other, talk near each other's devices, and one voice can reach several
/// of the home's devices; each capture is its device owner's.
pub(super) fn households(
    rng: &mut ChaCha8Rng,
    scenario: &Scenario,
    accounts: &mut [AccountPlan],
    nonces: &mut BTreeSet<u64>,
) {
    let mut homes: Vec<std::ops::Range<usize>> = Vec::new();
    if scenario.world.household_size.1 > 1 {
        let mut start = 0;
        while start < accounts.len() {
            let size = (draw(rng, scenario.world.household_size) as usize).max(1);
            let end = (start + size).min(accounts.len());
            homes.push(start..end);
            start = end;
        }
    }
    let a = &scenario.actions;
    for home in homes.iter().filter(|h| h.len() > 1) {
        for owner in home.clone() {
            for other in home.clone().filter(|o| *o != owner) {
                if !accounts[owner].contacts.contains(&(other as u32)) {
                    accounts[owner].contacts.push(other as u32);
                }
            }
            let mut overheard = Vec::new();
            for timed in accounts[owner].actions.iter_mut() {
                let Action::Speak {
                    speaker,
                    content,
                    purchase: None,
                    message: None,
                    ..
                } = &mut timed.action
                else {
                    continue;
                };
                if a.housemate_speech_per_mille == 0
                    || !rng.random_ratio(a.housemate_speech_per_mille.min(1000) as u32, 1000)
                {
                    continue;
                }
                let housemates: Vec<usize> = home.clone().filter(|o| *o != owner).collect();
                let who = housemates[rng.random_range(0..housemates.len())];
                *speaker = Some(who as u32);
                if a.overheard_per_mille > 0
                    && rng.random_ratio(a.overheard_per_mille.min(1000) as u32, 1000)
                {
                    // Another device in the home (maybe the speaker's own)
                    // hears the same words at the same moment.
                    let hearer = housemates[rng.random_range(0..housemates.len())];
                    overheard.push((hearer, who, timed.at_ms, *content));
                }
            }
            for (hearer, who, at_ms, content) in overheard {
                let nonce = fresh_nonce(rng, nonces);
                let device = rng.random_range(0..accounts[hearer].devices.max(1));
                let phrase = rng.random_range(0..PHRASES.len() as u32);
                let speaker = (who != hearer).then_some(who as u32);
                let action = Action::Speak {
                    device,
                    nonce,
                    content,
                    phrase,
                    purchase: None,
                    message: None,
                    speaker,
                    also_heard: None,
                    audio_bytes: None,
                };
                accounts[hearer].actions.push(TimedAction { at_ms, action });
            }
        }
    }
    for home in &homes {
        for member in home.clone() {
            accounts[member].actions.sort_by_key(|a| a.at_ms);
        }
    }
}
