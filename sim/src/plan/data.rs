//! Real users' data, as plan data: awkward addresses and captures of real
//! lengths.
//!
//! The people of a plan are polite in their data unless this says
//! otherwise: every address `person{i}.s{seed}@example.test`, every capture
//! a fraction of a second of sound. A scenario's `[data]` section gives a
//! share of the people an awkward address (`addresses.rs`: plus-addressing,
//! apostrophes, mixed case, the characters a URL query must encode), and a
//! share of the planned captures (utterances and broadcasts heard) a
//! length a person really speaks: 5 to 15 s at 16 kHz, 16-bit mono (160 to
//! 480 KB), some exactly at the API's limit
//! ([`MAX_AUDIO_BYTES`](crosstalk_model::MAX_AUDIO_BYTES)) and some one
//! byte past it, which the store must refuse. Each is drawn from a stream
//! derived from the seed for this purpose alone, after everything else, so
//! every other draw of a plan stays as it was; swarm testing switches each
//! off in one seed of four.

use super::{AccountPlan, Action};
use crate::scenario::Scenario;
use crosstalk_model::MAX_AUDIO_BYTES;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The swarm names of awkward addresses and of captures of real lengths.
pub const ADDRESSES_SWARM_NAME: &str = "awkward_addresses";
pub const AUDIO_SIZES_SWARM_NAME: &str = "real_audio_sizes";

/// A realistic capture's length in bytes: 5 to 15 s at 16 kHz, 16-bit mono.
const LONG_CAPTURE_BYTES: (u32, u32) = (160_000, 480_000);

/// Give people awkward addresses and captures their lengths; returns the
/// swarm names switched off for this seed.
pub fn apply(scenario: &Scenario, seed: u64, accounts: &mut [AccountPlan]) -> Vec<String> {
    let mut off = Vec::new();
    off.extend(awkward_addresses(scenario, seed, accounts));
    off.extend(capture_lengths(scenario, seed, accounts));
    off
}

fn awkward_addresses(scenario: &Scenario, seed: u64, accounts: &mut [AccountPlan]) -> Vec<String> {
    let per_mille = scenario.data.awkward_address_per_mille.min(1000) as u32;
    if per_mille == 0 || accounts.is_empty() {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::from_seed(crate::streams::derive(seed, "plan/addresses"));
    if scenario.swarm && rng.random_ratio(1, 4) {
        return vec![ADDRESSES_SWARM_NAME.to_string()];
    }
    for (index, account) in accounts.iter_mut().enumerate() {
        if rng.random_ratio(per_mille, 1000) {
            let style = rng.random_range(0..crate::addresses::STYLES);
            account.email = crate::addresses::awkward(index, seed, style);
        }
    }
    Vec::new()
}

fn capture_lengths(scenario: &Scenario, seed: u64, accounts: &mut [AccountPlan]) -> Vec<String> {
    let d = &scenario.data;
    if !d.sized_captures() || accounts.is_empty() {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::from_seed(crate::streams::derive(seed, "plan/audio-sizes"));
    if scenario.swarm && rng.random_ratio(1, 4) {
        return vec![AUDIO_SIZES_SWARM_NAME.to_string()];
    }
    let over = d.capture_over_limit_per_mille;
    let at_limit = over + d.capture_at_limit_per_mille;
    let long = at_limit + d.long_capture_per_mille;
    for account in accounts.iter_mut() {
        for timed in &mut account.actions {
            let (Action::Speak { audio_bytes, .. } | Action::HearBroadcast { audio_bytes, .. }) =
                &mut timed.action
            else {
                continue;
            };
            let draw = rng.random_range(0..1000u64);
            *audio_bytes = if draw < over {
                Some(MAX_AUDIO_BYTES as u32 + 1)
            } else if draw < at_limit {
                Some(MAX_AUDIO_BYTES as u32)
            } else if draw < long {
                // An even length: whole 16-bit samples.
                Some(rng.random_range(LONG_CAPTURE_BYTES.0 / 2..=LONG_CAPTURE_BYTES.1 / 2) * 2)
            } else {
                None
            };
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use crate::plan::{Action, Plan};
    use crate::scenario::Scenario;

    fn smoke(data: &str) -> Scenario {
        let text =
            format!("name = \"data\"\nswarm = false\n[world]\naccounts = [30, 30]\n[data]\n{data}");
        Scenario::parse(&text).expect("a valid scenario")
    }

    #[test]
    fn awkward_addresses_and_sizes_change_nothing_else_of_the_plan() {
        let plain = Plan::generate(&smoke("awkward_address_per_mille = 0"), 3);
        let real = Plan::generate(
            &smoke(
                "awkward_address_per_mille = 500\nlong_capture_per_mille = 300\ncapture_at_limit_per_mille = 100\ncapture_over_limit_per_mille = 100",
            ),
            3,
        );
        let awkward = real
            .accounts
            .iter()
            .filter(|a| crate::addresses::is_awkward(&a.email))
            .count();
        assert!(awkward > 5 && awkward < 25, "{awkward}");
        let mut sizes = std::collections::BTreeSet::new();
        for (p, r) in plain.accounts.iter().zip(&real.accounts) {
            assert_eq!(p.actions.len(), r.actions.len());
            for (p, r) in p.actions.iter().zip(&r.actions) {
                let mut r = r.action.clone();
                if let Action::Speak { audio_bytes, .. }
                | Action::HearBroadcast { audio_bytes, .. } = &mut r
                {
                    sizes.extend(audio_bytes.take());
                }
                assert_eq!(p.action, r);
            }
        }
        let max = crosstalk_model::MAX_AUDIO_BYTES as u32;
        assert!(
            sizes.contains(&max) && sizes.contains(&(max + 1)),
            "{sizes:?}"
        );
        assert!(sizes.iter().any(|s| (160_000..=480_000).contains(s)));
    }
}
