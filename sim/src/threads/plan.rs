//! The threads harness's workload: a scenario's `[threads]` section, and
//! the concrete plan a seed draws from it (plain serde data, saved with a
//! failure like any plan).
//!
//! A plan is a few accounts, each with recordings uploaded before the races
//! begin, then rounds of operations that all start at once: per account,
//! several playbacks of the same few recordings, listings and new uploads,
//! while one deletion (of one of those recordings, a capture-time range, or
//! everything) runs beside them; in a round before the last an account may
//! sell its speaker to the next account while uploads of it are in flight.
//! In the last round some accounts close while uploads of theirs are in
//! flight. The seed fixes all of this; which
//! request wins each race is up to the operating system.

use crate::scenario::Range;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A threads scenario's workload, as ranges drawn per seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThreadsSpec {
    /// Tokio worker threads the services run on (at least 4, so that the
    /// operating system preempts them even on two cores).
    pub worker_threads: u64,
    pub accounts: Range,
    /// Recordings each account uploads before the races begin.
    pub recordings: Range,
    /// Rounds of racing operations.
    pub rounds: Range,
    /// Recordings of an account each round aims at (played back several
    /// times while one of them may be deleted).
    pub targets_per_round: Range,
    /// Playbacks of each target per round.
    pub plays_per_target: Range,
    /// Playback loops of a recording started with its one-recording
    /// deletion, each playing it back until a few plays after the deletion
    /// was acknowledged (0: none).
    pub deletion_storm: Range,
    /// Uploads of new recordings per account and round.
    pub uploads_per_round: Range,
    /// Uploads in flight while an account closes.
    pub uploads_during_close: Range,
    /// Chance per thousand that an account sells its speaker to the next
    /// account in a round before the last, while uploads of it are in flight.
    pub transfer_per_mille: u32,
    /// Chance per thousand that an account closes in the last round.
    pub close_per_mille: u32,
    /// Chance per thousand that an interleave point inside the store
    /// pauses the thread (yield or a few microseconds' sleep).
    pub interleave_per_mille: u32,
}

impl Default for ThreadsSpec {
    fn default() -> Self {
        Self {
            worker_threads: 4,
            accounts: Range(3, 5),
            recordings: Range(4, 8),
            rounds: Range(3, 5),
            targets_per_round: Range(1, 3),
            plays_per_target: Range(2, 4),
            deletion_storm: Range(0, 0),
            uploads_per_round: Range(0, 2),
            uploads_during_close: Range(2, 4),
            transfer_per_mille: 0,
            close_per_mille: 500,
            interleave_per_mille: 500,
        }
    }
}

impl ThreadsSpec {
    pub fn validate(&self) -> Result<(), String> {
        for (what, range) in [
            ("threads.accounts", self.accounts),
            ("threads.recordings", self.recordings),
            ("threads.rounds", self.rounds),
            ("threads.targets_per_round", self.targets_per_round),
            ("threads.plays_per_target", self.plays_per_target),
            ("threads.deletion_storm", self.deletion_storm),
            ("threads.uploads_per_round", self.uploads_per_round),
            ("threads.uploads_during_close", self.uploads_during_close),
        ] {
            range.validate(what)?;
        }
        if !(4..=64).contains(&self.worker_threads) {
            return Err("threads.worker_threads: between 4 and 64".into());
        }
        if self.accounts.0 < 2 || self.accounts.1 > 32 {
            return Err("threads.accounts: between 2 and 32".into());
        }
        if self.recordings.0 < 1 || self.recordings.1 > 40 {
            return Err("threads.recordings: between 1 and 40".into());
        }
        if self.rounds.0 < 1 || self.rounds.1 > 20 {
            return Err("threads.rounds: between 1 and 20".into());
        }
        if self.plays_per_target.1 > 16 || self.uploads_per_round.1 > 8 {
            return Err("threads: at most 16 plays per target and 8 uploads per round".into());
        }
        if self.deletion_storm.1 > 64 {
            return Err("threads.deletion_storm: at most 64 playback loops".into());
        }
        if self.uploads_during_close.1 > 16 {
            return Err("threads.uploads_during_close: at most 16".into());
        }
        if self.close_per_mille > 1000
            || self.interleave_per_mille > 1000
            || self.transfer_per_mille > 1000
        {
            return Err("threads: chances per thousand are at most 1000".into());
        }
        Ok(())
    }
}

/// One utterance a device captures: its watermark nonce, what it says, and
/// the capture time the device stamps on it (what a range deletion
/// selects by).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    pub nonce: u64,
    pub content: u64,
    pub captured_at_ms: u64,
}

/// One account and what it uploads before the races begin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadAccount {
    pub email: String,
    pub initial: Vec<Capture>,
}

/// One operation of a round; all of a round's operations start at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaceOp {
    /// The owner plays back the recording of `nonce`.
    Play { account: usize, nonce: u64 },
    /// The owner lists their history.
    List { account: usize },
    /// The account's device uploads a new capture.
    Upload { account: usize, capture: Capture },
    /// The owner deletes the recording of `nonce`.
    DeleteOne { account: usize, nonce: u64 },
    /// The owner deletes every recording captured in `from_ms..=to_ms`.
    DeleteRange {
        account: usize,
        from_ms: u64,
        to_ms: u64,
    },
    /// The owner deletes everything.
    DeleteAll { account: usize },
    /// The owner closes the account.
    Close { account: usize },
    /// The owner sells their speaker to account `to` (its uploads in flight
    /// stay the seller's: they were captured in the seller's epoch).
    Transfer { account: usize, to: usize },
}

impl RaceOp {
    pub fn account(&self) -> usize {
        match self {
            RaceOp::Play { account, .. }
            | RaceOp::List { account }
            | RaceOp::Upload { account, .. }
            | RaceOp::DeleteOne { account, .. }
            | RaceOp::DeleteRange { account, .. }
            | RaceOp::DeleteAll { account }
            | RaceOp::Close { account }
            | RaceOp::Transfer { account, .. } => *account,
        }
    }
}

/// A seed's concrete threads workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadsPlan {
    pub worker_threads: u64,
    pub interleave_per_mille: u32,
    /// Seed of the interleave points' choices.
    pub interleave_seed: u64,
    pub accounts: Vec<ThreadAccount>,
    pub rounds: Vec<Vec<RaceOp>>,
    /// Playback loops started with each one-recording deletion (drawn from
    /// a stream of its own, so that the rest of the plan is as it was).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deletion_storm: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The first capture time; captures are a second apart per account.
const FIRST_CAPTURE_MS: u64 = crate::net::EPOCH_MS - 3_600_000;

fn draw(rng: &mut ChaCha8Rng, range: Range) -> u64 {
    rng.random_range(range.0..=range.1)
}

/// Draws fresh captures for one account (nonces unique in the plan).
struct Captures {
    next_nonce_salt: u64,
    next_capture_ms: u64,
}

impl Captures {
    fn next(&mut self, rng: &mut ChaCha8Rng) -> Capture {
        // Unique: a random high half and a counter low half.
        self.next_nonce_salt += 1;
        let nonce = (rng.random::<u64>() & !0xffff) | self.next_nonce_salt;
        self.next_capture_ms += 1_000;
        Capture {
            nonce,
            content: rng.random(),
            captured_at_ms: self.next_capture_ms,
        }
    }
}

impl ThreadsPlan {
    pub fn generate(spec: &ThreadsSpec, seed: u64) -> ThreadsPlan {
        let mut rng = ChaCha8Rng::from_seed(crate::streams::derive(seed, "threads/plan"));
        let mut captures = Captures {
            next_nonce_salt: 0,
            next_capture_ms: FIRST_CAPTURE_MS,
        };
        let count = draw(&mut rng, spec.accounts) as usize;
        let accounts: Vec<ThreadAccount> = (0..count)
            .map(|index| ThreadAccount {
                email: format!("racer{index}.s{seed}@example.test"),
                initial: (0..draw(&mut rng, spec.recordings))
                    .map(|_| captures.next(&mut rng))
                    .collect(),
            })
            .collect();
        // Every account's captures so far, to aim at.
        let mut held: Vec<Vec<Capture>> = accounts.iter().map(|a| a.initial.clone()).collect();
        let rounds = draw(&mut rng, spec.rounds) as usize;
        let mut sold = vec![false; count];
        let mut plan_rounds = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let last = round + 1 == rounds;
            let mut ops = Vec::new();
            for (account, captures_held) in held.iter_mut().enumerate() {
                let closes = last && rng.random_ratio(spec.close_per_mille, 1000);
                // Each speaker is sold at most once (its seller keeps no other).
                if !last && !sold[account] && rng.random_ratio(spec.transfer_per_mille, 1000) {
                    sold[account] = true;
                    ops.push(RaceOp::Transfer {
                        account,
                        to: (account + 1) % count,
                    });
                }
                round_for_account(
                    spec,
                    &mut rng,
                    &mut captures,
                    account,
                    captures_held,
                    closes,
                    &mut ops,
                );
            }
            plan_rounds.push(ops);
        }
        ThreadsPlan {
            worker_threads: spec.worker_threads,
            interleave_per_mille: spec.interleave_per_mille,
            interleave_seed: rng.random(),
            accounts,
            rounds: plan_rounds,
            deletion_storm: draw(
                &mut ChaCha8Rng::from_seed(crate::streams::derive(seed, "threads/storm")),
                spec.deletion_storm,
            ) as u32,
        }
    }

    /// One line for the seed banner.
    pub fn describe(&self) -> String {
        let ops: usize = self.rounds.iter().map(Vec::len).sum();
        let count =
            |f: fn(&RaceOp) -> bool| self.rounds.iter().flatten().filter(|op| f(op)).count();
        let closes = count(|op| matches!(op, RaceOp::Close { .. }));
        let sales = count(|op| matches!(op, RaceOp::Transfer { .. }));
        format!(
            "real threads ({} workers): {} accounts, {} rounds, {ops} racing operations, {closes} closing(s), {sales} sale(s); interleaving up to the OS",
            self.worker_threads,
            self.accounts.len(),
            self.rounds.len()
        )
    }
}

/// One account's operations in one round: playbacks of a few targets, a
/// listing, uploads, and one deletion racing them (or, when `closes`, the
/// account's closing racing uploads).
fn round_for_account(
    spec: &ThreadsSpec,
    rng: &mut ChaCha8Rng,
    captures: &mut Captures,
    account: usize,
    held: &mut Vec<Capture>,
    closes: bool,
    ops: &mut Vec<RaceOp>,
) {
    let mut targets = Vec::new();
    if !held.is_empty() {
        for _ in 0..draw(rng, spec.targets_per_round) {
            targets.push(held[rng.random_range(0..held.len())]);
        }
    }
    for target in &targets {
        for _ in 0..draw(rng, spec.plays_per_target) {
            ops.push(RaceOp::Play {
                account,
                nonce: target.nonce,
            });
        }
    }
    ops.push(RaceOp::List { account });
    // A closing starts before the uploads racing it, so that they land
    // while it runs rather than before it.
    if closes {
        ops.push(RaceOp::Close { account });
    }
    let uploads = if closes {
        spec.uploads_during_close
    } else {
        spec.uploads_per_round
    };
    for _ in 0..draw(rng, uploads) {
        let capture = captures.next(rng);
        held.push(capture);
        ops.push(RaceOp::Upload { account, capture });
    }
    if closes {
        return;
    }
    let deletion = match (targets.first(), rng.random_range(0..10)) {
        (Some(target), 0..=5) => RaceOp::DeleteOne {
            account,
            nonce: target.nonce,
        },
        (Some(target), 6..=8) => RaceOp::DeleteRange {
            account,
            from_ms: target.captured_at_ms.saturating_sub(1_000),
            to_ms: target.captured_at_ms + 1_000,
        },
        (Some(_), _) => RaceOp::DeleteAll { account },
        (None, _) => return,
    };
    ops.push(deletion);
}
