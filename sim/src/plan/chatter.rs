//! Always-on devices, as plan data: a household keeps talking to its smart
//! speaker whatever its account holder is doing, including while the
//! holder waits for their own export to be built.
//!
//! Around each export a person asks for (directly or by ticket), a share of
//! households (`chatter_per_mille`) speaks a burst of `chatter_captures`
//! utterances to the account's always-on speaker, `chatter_gap_ms` apart,
//! beginning up to a second after the request is planned. The speaker
//! uploads them on its own (`workload/devices.rs`), so some reach the store
//! while the export worker is collecting: the uploads that race a snapshot,
//! which the exactness invariant allows either way and the oracle judges by
//! the snapshot each archive claims. Drawn from a stream derived from the
//! seed for this purpose alone (`streams::derive(seed, "plan/chatter")`),
//! after everything else, so that every other draw of a plan stays as it
//! was; swarm testing switches it off in one seed of four.

use super::{AccountPlan, Action, PHRASES};
use crate::scenario::Scenario;
use crate::watermark::speech_shape;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The swarm name of the always-on speakers' bursts.
pub const SWARM_NAME: &str = "chatter";

/// How late after its export's planned request a burst may begin (ms).
const BURST_START_SPREAD_MS: u64 = 1_000;

/// One utterance an account's always-on speaker captures at `at_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmbientCapture {
    pub at_ms: u64,
    pub nonce: u64,
    pub content: u64,
    pub phrase: u32,
}

/// Schedule the bursts; returns the swarm names switched off for this seed.
/// One ambient capture at `at_ms`: a nonce the plan does not use yet, and
/// a sound whose shape is none of the plan's spoken commands (`commands`).
pub(super) fn ambient_capture(
    at_ms: u64,
    commands: &BTreeSet<(usize, usize)>,
    nonces: &mut BTreeSet<u64>,
    rng: &mut ChaCha8Rng,
) -> AmbientCapture {
    let nonce = loop {
        let candidate: u64 = rng.random();
        if nonces.insert(candidate) {
            break candidate;
        }
    };
    let content = loop {
        let candidate: u64 = rng.random();
        if !commands.contains(&speech_shape(candidate)) {
            break candidate;
        }
    };
    AmbientCapture {
        at_ms,
        nonce,
        content,
        phrase: rng.random_range(0..PHRASES.len() as u32),
    }
}

/// `nonces` holds every nonce the plan already uses.
pub fn schedule(
    scenario: &Scenario,
    seed: u64,
    active_ms: u64,
    accounts: &mut [AccountPlan],
    nonces: &mut BTreeSet<u64>,
) -> Vec<String> {
    let a = &scenario.actions;
    if a.chatter_per_mille == 0 || a.chatter_captures.1 == 0 {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::from_seed(crate::streams::derive(seed, "plan/chatter"));
    let commands = command_shapes(accounts);
    if scenario.swarm && rng.random_ratio(1, 4) {
        return vec![SWARM_NAME.to_string()];
    }
    for account in accounts.iter_mut() {
        let exports: Vec<u64> = account
            .actions
            .iter()
            .filter(|t| {
                matches!(
                    t.action,
                    Action::RequestExport { .. } | Action::TicketExport
                )
            })
            .map(|t| t.at_ms)
            .collect();
        for export_at_ms in exports {
            if !rng.random_ratio(a.chatter_per_mille.min(1000) as u32, 1000) {
                continue;
            }
            let mut at_ms = export_at_ms + rng.random_range(0..=BURST_START_SPREAD_MS);
            for _ in 0..rng.random_range(a.chatter_captures.0..=a.chatter_captures.1) {
                if at_ms >= active_ms {
                    break;
                }
                account
                    .ambient
                    .push(ambient_capture(at_ms, &commands, nonces, &mut rng));
                at_ms += rng
                    .random_range(a.chatter_gap_ms.0..=a.chatter_gap_ms.1.max(a.chatter_gap_ms.0));
            }
        }
        account.ambient.sort_by_key(|c| c.at_ms);
    }
    Vec::new()
}

/// The sounds of every spoken command in the plan (a purchase or a message
/// someone says at home). Chatter never sounds like one of them: the
/// synthetic speech has only about a thousand sounds, and three homes'
/// captures of one sound are a media event whose commands the store must
/// never carry out, so chatter that echoed a genuine command would silence
/// it.
pub(super) fn command_shapes(accounts: &[AccountPlan]) -> BTreeSet<(usize, usize)> {
    accounts
        .iter()
        .flat_map(|a| &a.actions)
        .filter_map(|t| match t.action {
            Action::Speak {
                content,
                purchase,
                message,
                ..
            } if purchase.is_some() || message.is_some() => Some(speech_shape(content)),
            _ => None,
        })
        .collect()
}
