//! The recording store against a model (docs/design.md, "How the
//! harness's code is written", item 7: "Fuzz against a model").
//!
//! Sequences of operations over a few accounts and devices — sign up,
//! register devices, uploads (with repeated upload keys), deletions of one,
//! a capture-time range or all, account closure, listings, audio fetches,
//! power losses between operations and in the middle of a commit — run
//! against the real [`Store`] on a [`SimDisk`] and against a `BTreeMap`
//! model. After every step the store is compared with the model: every
//! account's session and devices, every account's full listing (paged), and
//! every deleted recording's audio.
//!
//! What the model encodes:
//! - an operation that returned `Ok` is durable: it survives every later
//!   power loss;
//! - an operation that returned an error because the power went in the
//!   middle of its commit may or may not have happened: the check right
//!   after it accepts either outcome (all of it or none of it) and the model
//!   follows the one the store shows;
//! - ids (accounts, devices, recordings) are never reused: each new one is
//!   larger than every id seen before;
//! - an upload key repeated by the same device returns the first upload's id
//!   with `duplicate = true` (even after the recording was deleted, which
//!   stays deleted); reused for different content it is a conflict;
//! - a listing returns exactly the account's live recordings, in id order,
//!   across pages, with the right audio digests; audio of a recording that
//!   is deleted or belongs to another account is "not found";
//! - after an account is closed its session and devices stop working, its
//!   listing is empty, and its email signs up again with a new id.
//!
//! `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override the case count and the
//! (otherwise fixed) generator seed.

use crosstalk_model::api::RecordingView;
use crosstalk_model::{
    AccountId, Clock, DeviceId, Entropy, ManualClock, RecordingId, SeededEntropy, sha256_hex,
};
use crosstalk_service::ApiError;
use crosstalk_sim::faults::disk::SimDisk;
use crosstalk_store::{DeleteSelection, ListScope, NewRecording, Store, StoreConfig};
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError, TestRunner};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Account slots: each holds one email at a time (a closed account's email
/// signs up again into the same slot).
const SLOTS: usize = 3;
/// Devices registered per account, at most.
const MAX_DEVICES: usize = 2;
/// Milliseconds the store's clock moves per step.
const STEP_MS: u64 = 1_000;
/// A power loss armed mid-write strikes at one of the next this many disk
/// writes or syncs (a small commit makes a handful).
const MAX_ARMED_WRITES: u32 = 8;

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// Which upload key an ingest uses.
#[derive(Clone, Debug)]
enum Key {
    /// A key never used before.
    Fresh,
    /// A key stored before (by any device: `pick` indexes the stored keys);
    /// with the first upload's content, or with this op's own content.
    Repeat { pick: usize, same_content: bool },
}

/// Whose recording a delete or fetch aims at.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// One of the account's own live recordings.
    Own,
    /// A live recording of another account: must be "not found".
    Foreign,
    /// A deleted recording: must be "not found".
    Deleted,
}

#[derive(Clone, Debug)]
enum Op {
    SignUp {
        slot: usize,
    },
    RegisterDevice {
        slot: usize,
    },
    Ingest {
        slot: usize,
        device: usize,
        key: Key,
        audio: Vec<u8>,
        transcript: String,
        captured_at_ms: u64,
    },
    DeleteOne {
        slot: usize,
        pick: usize,
        target: Target,
    },
    /// Captured within `[from_ms, to_ms]`; with `snap`, the bounds are
    /// instead the capture times of two of the account's recordings
    /// (`from_ms` and `to_ms` index them), to hit the edges exactly.
    DeleteRange {
        slot: usize,
        from_ms: u64,
        to_ms: u64,
        snap: bool,
    },
    DeleteAll {
        slot: usize,
    },
    CloseAccount {
        slot: usize,
    },
    ListAll {
        slot: usize,
        limit: usize,
    },
    FetchAudio {
        slot: usize,
        pick: usize,
        target: Target,
    },
    /// Power loss between operations, then the store reopens.
    Crash,
    /// Power loss armed to strike at the `writes`-th next disk write or
    /// sync, then `op` (a mutating one), then power loss and reopen.
    CrashMidWrite {
        writes: u32,
        op: Box<Op>,
    },
}

fn target_strategy() -> impl Strategy<Value = Target> {
    prop_oneof![6 => Just(Target::Own), 2 => Just(Target::Foreign), 2 => Just(Target::Deleted)]
}

fn key_strategy() -> impl Strategy<Value = Key> {
    prop_oneof![
        3 => Just(Key::Fresh),
        2 => (any::<usize>(), prop::bool::weighted(0.8))
            .prop_map(|(pick, same_content)| Key::Repeat { pick, same_content }),
    ]
}

fn mutating_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..SLOTS).prop_map(|slot| Op::SignUp { slot }),
        3 => (0..SLOTS).prop_map(|slot| Op::RegisterDevice { slot }),
        24 => (
            0..SLOTS,
            0..MAX_DEVICES,
            key_strategy(),
            prop::collection::vec(any::<u8>(), 1..48),
            "[a-z ]{0,12}",
            0..1_000u64,
        )
            .prop_map(|(slot, device, key, audio, transcript, captured_at_ms)| Op::Ingest {
                slot,
                device,
                key,
                audio,
                transcript,
                captured_at_ms,
            }),
        5 => (0..SLOTS, any::<usize>(), target_strategy())
            .prop_map(|(slot, pick, target)| Op::DeleteOne { slot, pick, target }),
        2 => (0..SLOTS, 0..1_000u64, 0..1_000u64, any::<bool>()).prop_map(|(slot, a, b, snap)| Op::DeleteRange {
            slot,
            from_ms: a.min(b),
            to_ms: a.max(b),
            snap,
        }),
        1 => (0..SLOTS).prop_map(|slot| Op::DeleteAll { slot }),
        1 => (0..SLOTS).prop_map(|slot| Op::CloseAccount { slot }),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => mutating_strategy(),
        4 => (0..SLOTS, 1..5usize).prop_map(|(slot, limit)| Op::ListAll { slot, limit }),
        4 => (0..SLOTS, any::<usize>(), target_strategy())
            .prop_map(|(slot, pick, target)| Op::FetchAudio { slot, pick, target }),
        2 => Just(Op::Crash),
        5 => (1..MAX_ARMED_WRITES, mutating_strategy())
            .prop_map(|(writes, op)| Op::CrashMidWrite { writes, op: Box::new(op) }),
    ]
}

/// The same distribution as [`op_strategy`], drawn from a seeded generator.
fn random_op(rng: &mut ChaCha8Rng, mutating_only: bool) -> Op {
    let slot = rng.random_range(0..SLOTS);
    let target = |rng: &mut ChaCha8Rng| match rng.random_range(0..10) {
        0..6 => Target::Own,
        6..8 => Target::Foreign,
        _ => Target::Deleted,
    };
    let roll = if mutating_only {
        rng.random_range(0..40)
    } else {
        rng.random_range(0..55)
    };
    match roll {
        0..4 => Op::SignUp { slot },
        4..7 => Op::RegisterDevice { slot },
        7..31 => {
            let key = if rng.random_range(0..5) < 3 {
                Key::Fresh
            } else {
                Key::Repeat {
                    pick: rng.random::<u32>() as usize,
                    same_content: rng.random_range(0..5) < 4,
                }
            };
            let len = rng.random_range(1..48);
            let audio = (0..len).map(|_| rng.random()).collect();
            let words = rng.random_range(0..4);
            let transcript = (0..words)
                .map(|_| ["hello", "lights off", "timer", "play"][rng.random_range(0..4)])
                .collect::<Vec<_>>();
            Op::Ingest {
                slot,
                device: rng.random_range(0..MAX_DEVICES),
                key,
                audio,
                transcript: transcript.join(" "),
                captured_at_ms: rng.random_range(0..1_000),
            }
        }
        31..36 => Op::DeleteOne {
            slot,
            pick: rng.random::<u32>() as usize,
            target: target(rng),
        },
        36 | 37 => {
            let (a, b) = (rng.random_range(0..1_000), rng.random_range(0..1_000));
            Op::DeleteRange {
                slot,
                from_ms: a.min(b),
                to_ms: a.max(b),
                snap: rng.random(),
            }
        }
        38 => Op::DeleteAll { slot },
        39 => Op::CloseAccount { slot },
        40..44 => Op::ListAll {
            slot,
            limit: rng.random_range(1..5),
        },
        44..48 => Op::FetchAudio {
            slot,
            pick: rng.random::<u32>() as usize,
            target: target(rng),
        },
        48 | 49 => Op::Crash,
        _ => Op::CrashMidWrite {
            writes: rng.random_range(1..MAX_ARMED_WRITES),
            op: Box::new(random_op(rng, true)),
        },
    }
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    owner: AccountId,
    device: DeviceId,
    captured_at_ms: u64,
    received_at_ms: u64,
    transcript: String,
    audio: Vec<u8>,
}

impl Rec {
    fn view(&self, id: RecordingId) -> RecordingView {
        RecordingView {
            id,
            device: self.device,
            captured_at_ms: self.captured_at_ms,
            received_at_ms: self.received_at_ms,
            transcript: self.transcript.clone(),
            audio_sha256: sha256_hex(&self.audio),
            audio_len: self.audio.len() as u64,
        }
    }
}

/// What a stored upload key answers.
#[derive(Clone, Debug)]
struct Upload {
    recording: RecordingId,
    captured_at_ms: u64,
    transcript: String,
    audio: Vec<u8>,
}

#[derive(Clone, Debug)]
struct Device {
    id: DeviceId,
    token: String,
}

#[derive(Clone, Debug)]
struct Account {
    id: AccountId,
    email: String,
    session: String,
    devices: Vec<Device>,
    closed: bool,
}

#[derive(Clone, Debug, Default)]
struct Slot {
    /// Bumped when a sign-up whose outcome was lost turns out to have taken
    /// the email (an account nobody holds a session for); the slot then
    /// moves on to a new email.
    epoch: u32,
    /// A sign-up for the current email failed in a power loss: it may have
    /// happened.
    email_maybe_taken: bool,
    /// The slot's most recent account (index into `Model::accounts`).
    latest: Option<usize>,
}

#[derive(Clone, Debug, Default)]
struct Model {
    /// Every account ever acknowledged, in creation order.
    accounts: Vec<Account>,
    slots: [Slot; SLOTS],
    live: BTreeMap<RecordingId, Rec>,
    /// Deleted recording -> its owner.
    deleted: BTreeMap<RecordingId, AccountId>,
    uploads: BTreeMap<(DeviceId, String), Upload>,
    max_account: u64,
    max_device: u64,
    max_recording: u64,
    next_key: u64,
}

impl Model {
    fn email(&self, slot: usize) -> String {
        format!("user{slot}.{}@example.com", self.slots[slot].epoch)
    }

    fn open_account(&self, slot: usize) -> Option<usize> {
        self.slots[slot]
            .latest
            .filter(|&a| !self.accounts[a].closed)
    }

    fn ids_of(&self, owner: AccountId) -> Vec<RecordingId> {
        self.live
            .iter()
            .filter(|(_, r)| r.owner == owner)
            .map(|(id, _)| *id)
            .collect()
    }

    fn views(&self, owner: AccountId) -> Vec<RecordingView> {
        self.live
            .iter()
            .filter(|(_, r)| r.owner == owner)
            .map(|(id, r)| r.view(*id))
            .collect()
    }

    fn delete(&mut self, ids: &[RecordingId]) {
        for id in ids {
            let rec = self
                .live
                .remove(id)
                .unwrap_or_else(|| panic!("model: deleting {id}, which is not live"));
            self.deleted.insert(*id, rec.owner);
        }
    }

    fn close(&mut self, account: usize) {
        let ids = self.ids_of(self.accounts[account].id);
        self.delete(&ids);
        self.accounts[account].closed = true;
    }
}

/// An operation whose commit the power loss interrupted: the check right
/// after it decides, from what the store shows, whether it happened.
#[derive(Debug)]
enum Pending {
    Ingest {
        account: usize,
        key: (DeviceId, String),
        rec: Rec,
    },
    Delete {
        account: usize,
        ids: Vec<RecordingId>,
    },
    Close {
        account: usize,
    },
}

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

/// What a run went through: positive controls for the checks.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    ops: u64,
    skipped: u64,
    signups: u64,
    devices: u64,
    ingests_new: u64,
    ingests_duplicate: u64,
    ingests_conflict: u64,
    deleted: u64,
    delete_not_found: u64,
    closes: u64,
    listings: u64,
    audio_checked: u64,
    audio_refused: u64,
    crashes: u64,
    mid_write_crashes: u64,
    power_lost_mid_op: u64,
    maybe_happened: u64,
    maybe_not_happened: u64,
    ghost_signups: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.ops += o.ops;
        self.skipped += o.skipped;
        self.signups += o.signups;
        self.devices += o.devices;
        self.ingests_new += o.ingests_new;
        self.ingests_duplicate += o.ingests_duplicate;
        self.ingests_conflict += o.ingests_conflict;
        self.deleted += o.deleted;
        self.delete_not_found += o.delete_not_found;
        self.closes += o.closes;
        self.listings += o.listings;
        self.audio_checked += o.audio_checked;
        self.audio_refused += o.audio_refused;
        self.crashes += o.crashes;
        self.mid_write_crashes += o.mid_write_crashes;
        self.power_lost_mid_op += o.power_lost_mid_op;
        self.maybe_happened += o.maybe_happened;
        self.maybe_not_happened += o.maybe_not_happened;
        self.ghost_signups += o.ghost_signups;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ops ({} skipped): {} sign-ups, {} devices, {} new uploads, {} duplicate, {} conflicting; \
             {} recordings deleted, {} deletes refused, {} accounts closed; {} full listings, \
             {} audio fetches matched, {} refused; {} crashes between ops, {} armed mid-write \
             ({} struck mid-op: {} turned out done, {} not done, {} lost sign-ups found taken)",
            self.ops,
            self.skipped,
            self.signups,
            self.devices,
            self.ingests_new,
            self.ingests_duplicate,
            self.ingests_conflict,
            self.deleted,
            self.delete_not_found,
            self.closes,
            self.listings,
            self.audio_checked,
            self.audio_refused,
            self.crashes,
            self.mid_write_crashes,
            self.power_lost_mid_op,
            self.maybe_happened,
            self.maybe_not_happened,
            self.ghost_signups,
        )
    }
}

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

/// A store call's result, with whether the armed power loss struck in it.
enum Outcome<T> {
    Ok(T),
    Err(ApiError),
    /// Failed (with a storage error) while the power went: may or may not
    /// have happened.
    PowerLost,
}

struct Harness {
    disk: SimDisk,
    clock: Arc<ManualClock>,
    entropy: Arc<SeededEntropy>,
    store: Option<Store>,
    model: Model,
    stats: Stats,
    step: u64,
}

fn open_store(
    disk: &SimDisk,
    clock: &Arc<ManualClock>,
    entropy: &Arc<SeededEntropy>,
) -> Result<Store, String> {
    let clock: Arc<dyn Clock> = clock.clone();
    let entropy: Arc<dyn Entropy> = entropy.clone();
    Store::open(
        disk.open(),
        clock,
        entropy,
        StoreConfig {
            service_token: "service-token".into(),
            password_iterations: 1,
            limits: Default::default(),
            hold_ms: crosstalk_sim::plan::STORE_HOLD_MS,
        },
    )
}

fn is(e: &ApiError, code: &str) -> bool {
    e.code == code
}

impl Harness {
    fn new(seed: u64) -> Result<Self, String> {
        let disk = SimDisk::new(seed, 0, 1);
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let entropy = Arc::new(SeededEntropy::from_seed_u64(seed ^ 0x5eed_5eed));
        let store = open_store(&disk, &clock, &entropy)?;
        Ok(Self {
            disk,
            clock,
            entropy,
            store: Some(store),
            model: Model::default(),
            stats: Stats::default(),
            step: 0,
        })
    }

    fn store(&self) -> &Store {
        self.store
            .as_ref()
            .expect("the store is open between steps")
    }

    /// Power loss, then the store reopens on what the disk kept.
    fn crash_and_reopen(&mut self) -> Result<(), String> {
        // Power first, so the dying store cannot write after the crash.
        self.disk.crash();
        self.store = None;
        self.store = Some(
            open_store(&self.disk, &self.clock, &self.entropy)
                .map_err(|e| format!("reopen: {e}"))?,
        );
        Ok(())
    }

    fn call<T>(&mut self, f: impl FnOnce(&Store) -> Result<T, ApiError>) -> Outcome<T> {
        let result = f(self.store());
        let tripped = self.disk.take_tripped();
        if tripped {
            self.stats.power_lost_mid_op += 1;
        }
        match result {
            // Even if the power went during it: acknowledged means durable.
            Ok(v) => Outcome::Ok(v),
            Err(e) if tripped && is(&e, "internal") => Outcome::PowerLost,
            Err(e) => Outcome::Err(e),
        }
    }

    fn run(&mut self, ops: &[Op]) -> Result<(), String> {
        self.check(None)
            .map_err(|e| format!("on a fresh store: {e}"))?;
        // Every slot starts with an account and a device, so that most
        // operations have something to act on.
        for slot in 0..SLOTS {
            for op in [Op::SignUp { slot }, Op::RegisterDevice { slot }] {
                self.step(&op)
                    .map_err(|e| format!("setting up {op:?}: {e}"))?;
            }
        }
        for (i, op) in ops.iter().enumerate() {
            self.step(op).map_err(|e| format!("step {i} {op:?}: {e}"))?;
        }
        // Whatever was acknowledged survives one more power loss.
        self.crash_and_reopen()?;
        self.stats.crashes += 1;
        self.check(None)
            .map_err(|e| format!("after the final crash: {e}"))
    }

    fn step(&mut self, op: &Op) -> Result<(), String> {
        self.step += 1;
        self.stats.ops += 1;
        self.clock.advance(STEP_MS);
        let pending = match op {
            Op::Crash => {
                self.crash_and_reopen()?;
                self.stats.crashes += 1;
                None
            }
            Op::CrashMidWrite { writes, op } => {
                self.stats.mid_write_crashes += 1;
                self.disk.arm_power_loss(*writes);
                let pending = self.apply(op);
                // Whether or not the power went inside `op`, it goes now
                // (this also disarms a loss that did not strike).
                self.crash_and_reopen()?;
                pending?
            }
            op => self.apply(op)?,
        };
        self.check(pending)
    }

    /// Run `op` against the store and the model.
    fn apply(&mut self, op: &Op) -> Result<Option<Pending>, String> {
        match op {
            Op::SignUp { slot } => self.sign_up(*slot),
            Op::RegisterDevice { slot } => self.register_device(*slot),
            Op::Ingest {
                slot,
                device,
                key,
                audio,
                transcript,
                captured_at_ms,
            } => self.ingest(*slot, *device, key, audio, transcript, *captured_at_ms),
            Op::DeleteOne { slot, pick, target } => self.delete_one(*slot, *pick, *target),
            Op::DeleteRange {
                slot,
                from_ms,
                to_ms,
                snap,
            } => {
                let (mut from_ms, mut to_ms) = (*from_ms, *to_ms);
                let captured: Vec<u64> = match self.model.slots[*slot].latest {
                    Some(a) => {
                        let owner = self.model.accounts[a].id;
                        self.model
                            .live
                            .values()
                            .filter(|r| r.owner == owner)
                            .map(|r| r.captured_at_ms)
                            .collect()
                    }
                    None => Vec::new(),
                };
                if *snap && !captured.is_empty() {
                    let (a, b) = (
                        captured[from_ms as usize % captured.len()],
                        captured[to_ms as usize % captured.len()],
                    );
                    (from_ms, to_ms) = (a.min(b), a.max(b));
                }
                self.delete_many(*slot, DeleteSelection::CapturedBetween { from_ms, to_ms })
            }
            Op::DeleteAll { slot } => self.delete_many(*slot, DeleteSelection::All),
            Op::CloseAccount { slot } => self.close_account(*slot),
            Op::ListAll { slot, limit } => self.list_and_fetch(*slot, *limit).map(|()| None),
            Op::FetchAudio { slot, pick, target } => {
                self.fetch_audio(*slot, *pick, *target).map(|()| None)
            }
            Op::Crash | Op::CrashMidWrite { .. } => Err(format!("{op:?} cannot nest")),
        }
    }

    fn skip(&mut self) -> Result<Option<Pending>, String> {
        self.stats.skipped += 1;
        Ok(None)
    }

    fn sign_up(&mut self, slot: usize) -> Result<Option<Pending>, String> {
        let email = self.model.email(slot);
        let holder = self.model.open_account(slot);
        match self.call(|s| s.signup(&email, "correct horse battery")) {
            Outcome::Ok((id, session)) => {
                ensure!(
                    holder.is_none(),
                    "sign-up of {email} succeeded while account {holder:?} holds it"
                );
                ensure!(
                    id.0 > self.model.max_account,
                    "new account {id} is not above every earlier account id (max {})",
                    self.model.max_account
                );
                ensure!(
                    self.store().authenticate_session(&session) == Ok(id),
                    "a new session does not authenticate"
                );
                self.model.max_account = id.0;
                self.model.accounts.push(Account {
                    id,
                    email,
                    session,
                    devices: Vec::new(),
                    closed: false,
                });
                let s = &mut self.model.slots[slot];
                s.latest = Some(self.model.accounts.len() - 1);
                s.email_maybe_taken = false;
                self.stats.signups += 1;
                Ok(None)
            }
            Outcome::Err(e) if is(&e, "conflict") && holder.is_some() => Ok(None),
            Outcome::Err(e) if is(&e, "conflict") && self.model.slots[slot].email_maybe_taken => {
                // The sign-up the power interrupted did happen: its account
                // has no session anyone knows. Move on to a new email.
                let s = &mut self.model.slots[slot];
                s.epoch += 1;
                s.email_maybe_taken = false;
                self.stats.ghost_signups += 1;
                Ok(None)
            }
            Outcome::Err(e) => Err(format!("sign-up of {email}: unexpected {e}")),
            Outcome::PowerLost => {
                if holder.is_none() {
                    self.model.slots[slot].email_maybe_taken = true;
                }
                Ok(None)
            }
        }
    }

    fn register_device(&mut self, slot: usize) -> Result<Option<Pending>, String> {
        let Some(a) = self.model.open_account(slot) else {
            return self.skip();
        };
        if self.model.accounts[a].devices.len() >= MAX_DEVICES {
            return self.skip();
        }
        let (account_id, session) = (
            self.model.accounts[a].id,
            self.model.accounts[a].session.clone(),
        );
        // As the HTTP handler does: the session names the owner.
        let owner = self
            .store()
            .authenticate_session(&session)
            .map_err(|e| format!("session of {account_id}: {e}"))?;
        ensure!(
            owner == account_id,
            "session of {account_id} authenticates as {owner}"
        );
        let name = format!("device {}", self.step);
        match self.call(|s| s.register_device(owner, &name)) {
            Outcome::Ok((id, token)) => {
                ensure!(
                    id.0 > self.model.max_device,
                    "new device {id} is not above every earlier device id (max {})",
                    self.model.max_device
                );
                self.model.max_device = id.0;
                self.model.accounts[a].devices.push(Device { id, token });
                self.stats.devices += 1;
                Ok(None)
            }
            Outcome::Err(e) => Err(format!("register device: unexpected {e}")),
            // A device that may exist but whose token nobody holds.
            Outcome::PowerLost => Ok(None),
        }
    }

    fn ingest(
        &mut self,
        slot: usize,
        device: usize,
        key: &Key,
        audio: &[u8],
        transcript: &str,
        captured_at_ms: u64,
    ) -> Result<Option<Pending>, String> {
        let Some(a) = self.model.slots[slot].latest else {
            return self.skip();
        };
        let account = self.model.accounts[a].clone();
        if account.devices.is_empty() {
            return self.skip();
        }
        let dev = account.devices[device % account.devices.len()].clone();
        let authenticated = self.store().authenticate_device(&dev.token);
        if account.closed {
            match authenticated {
                Err(e) if is(&e, "unauthorized") => return Ok(None),
                other => {
                    return Err(format!(
                        "device {} of closed {}: {other:?}",
                        dev.id, account.id
                    ));
                }
            }
        }
        let record =
            authenticated.map_err(|e| format!("device {} of {}: {e}", dev.id, account.id))?;
        ensure!(
            record.id == dev.id && record.owner == account.id,
            "device {} authenticates as {} owned by {}",
            dev.id,
            record.id,
            record.owner
        );

        let mut upload = NewRecording {
            upload_key: String::new(),
            captured_at_ms,
            transcript: transcript.to_string(),
            audio: audio.to_vec(),
            ownership_epoch: None,
            intent: None,
        };
        match key {
            Key::Repeat { pick, same_content } if !self.model.uploads.is_empty() => {
                let n = pick % self.model.uploads.len();
                let ((_, k), first) = self.model.uploads.iter().nth(n).expect("n < len");
                upload.upload_key = k.clone();
                if *same_content {
                    upload.captured_at_ms = first.captured_at_ms;
                    upload.transcript = first.transcript.clone();
                    upload.audio = first.audio.clone();
                }
            }
            _ => {
                self.model.next_key += 1;
                upload.upload_key = format!("key-{}", self.model.next_key);
            }
        }
        let model_key = (dev.id, upload.upload_key.clone());
        // What the model expects: Some((id, same content)) for a stored key.
        let stored = self.model.uploads.get(&model_key).map(|first| {
            let same = sha256_hex(&first.audio) == sha256_hex(&upload.audio)
                && first.transcript == upload.transcript;
            (first.recording, same)
        });
        let rec = Rec {
            owner: account.id,
            device: dev.id,
            captured_at_ms: upload.captured_at_ms,
            received_at_ms: self.clock.now_ms(),
            transcript: upload.transcript.clone(),
            audio: upload.audio.clone(),
        };
        let shown_key = upload.upload_key.clone();
        match (self.call(|s| s.ingest(&record, upload)), stored) {
            (Outcome::Ok((id, duplicate)), None) => {
                ensure!(
                    !duplicate,
                    "fresh key {shown_key:?} reported as a duplicate of {id}"
                );
                ensure!(
                    id.0 > self.model.max_recording,
                    "new recording {id} is not above every earlier recording id (max {})",
                    self.model.max_recording
                );
                self.model.max_recording = id.0;
                self.model.uploads.insert(
                    model_key,
                    Upload {
                        recording: id,
                        captured_at_ms: rec.captured_at_ms,
                        transcript: rec.transcript.clone(),
                        audio: rec.audio.clone(),
                    },
                );
                self.model.live.insert(id, rec);
                self.stats.ingests_new += 1;
                Ok(None)
            }
            (Outcome::Ok((id, duplicate)), Some((first, true))) => {
                ensure!(
                    duplicate && id == first,
                    "repeated key {shown_key:?} returned ({id}, duplicate={duplicate}), expected ({first}, true)"
                );
                self.stats.ingests_duplicate += 1;
                Ok(None)
            }
            (Outcome::Ok(got), Some((first, false))) => Err(format!(
                "key {shown_key:?} of {first} reused for other content was accepted: {got:?}"
            )),
            (Outcome::Err(e), Some((_, false))) if is(&e, "conflict") => {
                self.stats.ingests_conflict += 1;
                Ok(None)
            }
            (Outcome::Err(e), stored) => Err(format!(
                "ingest {shown_key:?} (stored: {stored:?}): unexpected {e}"
            )),
            (Outcome::PowerLost, None) => Ok(Some(Pending::Ingest {
                account: a,
                key: model_key,
                rec,
            })),
            // A stored key writes nothing: nothing to lose.
            (Outcome::PowerLost, Some(_)) => Ok(None),
        }
    }

    fn pick_target(&self, account: AccountId, pick: usize, target: Target) -> Option<RecordingId> {
        let candidates: Vec<RecordingId> = match target {
            Target::Own => self.model.ids_of(account),
            Target::Foreign => self
                .model
                .live
                .iter()
                .filter(|(_, r)| r.owner != account)
                .map(|(id, _)| *id)
                .collect(),
            Target::Deleted => self.model.deleted.keys().copied().collect(),
        };
        (!candidates.is_empty()).then(|| candidates[pick % candidates.len()])
    }

    fn delete_one(
        &mut self,
        slot: usize,
        pick: usize,
        target: Target,
    ) -> Result<Option<Pending>, String> {
        let Some(a) = self.model.open_account(slot) else {
            return self.skip();
        };
        let account = self.model.accounts[a].id;
        // Nothing to aim at: an id no one was ever given.
        let id = self
            .pick_target(account, pick, target)
            .unwrap_or(RecordingId(self.model.max_recording + 1_000));
        let own = self.model.live.get(&id).is_some_and(|r| r.owner == account);
        match self.call(|s| s.delete(account, DeleteSelection::One(id))) {
            Outcome::Ok(ids) => {
                ensure!(
                    own,
                    "{account} deleted {id}, which it does not own (target {target:?})"
                );
                ensure!(ids == vec![id], "deleting {id} reported {ids:?}");
                self.model.delete(&ids);
                self.stats.deleted += 1;
                Ok(None)
            }
            Outcome::Err(e) if is(&e, "not_found") && !own => {
                self.stats.delete_not_found += 1;
                Ok(None)
            }
            Outcome::Err(e) => Err(format!("delete {id} (own: {own}): unexpected {e}")),
            Outcome::PowerLost if own => Ok(Some(Pending::Delete {
                account: a,
                ids: vec![id],
            })),
            Outcome::PowerLost => Ok(None),
        }
    }

    fn delete_many(
        &mut self,
        slot: usize,
        selection: DeleteSelection,
    ) -> Result<Option<Pending>, String> {
        let Some(a) = self.model.open_account(slot) else {
            return self.skip();
        };
        let account = self.model.accounts[a].id;
        let expected: Vec<RecordingId> = self
            .model
            .live
            .iter()
            .filter(|(_, r)| {
                r.owner == account
                    && match selection {
                        DeleteSelection::CapturedBetween { from_ms, to_ms } => {
                            (from_ms..=to_ms).contains(&r.captured_at_ms)
                        }
                        _ => true,
                    }
            })
            .map(|(id, _)| *id)
            .collect();
        match self.call(|s| s.delete(account, selection)) {
            Outcome::Ok(mut ids) => {
                ids.sort();
                ensure!(
                    ids == expected,
                    "{selection:?} of {account} deleted {ids:?}, expected {expected:?}"
                );
                self.model.delete(&ids);
                self.stats.deleted += ids.len() as u64;
                Ok(None)
            }
            Outcome::Err(e) => Err(format!("{selection:?}: unexpected {e}")),
            Outcome::PowerLost => Ok(Some(Pending::Delete {
                account: a,
                ids: expected,
            })),
        }
    }

    fn close_account(&mut self, slot: usize) -> Result<Option<Pending>, String> {
        let Some(a) = self.model.open_account(slot) else {
            return self.skip();
        };
        let account = self.model.accounts[a].id;
        let owner = self
            .store()
            .authenticate_session(&self.model.accounts[a].session)
            .map_err(|e| format!("session of {account}: {e}"))?;
        ensure!(
            owner == account,
            "session of {account} authenticates as {owner}"
        );
        let expected = self.model.ids_of(account);
        match self.call(|s| s.close_account(account)) {
            Outcome::Ok(mut ids) => {
                ids.sort();
                ensure!(
                    ids == expected,
                    "closing {account} deleted {ids:?}, expected {expected:?}"
                );
                self.model.close(a);
                self.stats.closes += 1;
                self.stats.deleted += ids.len() as u64;
                Ok(None)
            }
            Outcome::Err(e) => Err(format!("close {account}: unexpected {e}")),
            Outcome::PowerLost => Ok(Some(Pending::Close { account: a })),
        }
    }

    fn list_and_fetch(&mut self, slot: usize, limit: usize) -> Result<(), String> {
        let Some(a) = self.model.slots[slot].latest else {
            self.stats.skipped += 1;
            return Ok(());
        };
        let account = self.model.accounts[a].id;
        let listed = self.list_all(ListScope::Owner, account, limit)?;
        let expected = self.model.views(account);
        ensure!(
            listed == expected,
            "{account} lists\n{listed:#?}\nexpected\n{expected:#?}"
        );
        for view in &listed {
            let audio = self
                .store()
                .audio(account, view.id)
                .map_err(|e| format!("audio of {}: {e}", view.id))?;
            ensure!(
                audio == self.model.live[&view.id].audio,
                "audio of {} differs from what was uploaded",
                view.id
            );
            self.stats.audio_checked += 1;
        }
        Ok(())
    }

    fn fetch_audio(&mut self, slot: usize, pick: usize, target: Target) -> Result<(), String> {
        let Some(a) = self.model.slots[slot].latest else {
            self.stats.skipped += 1;
            return Ok(());
        };
        let account = self.model.accounts[a].id;
        let Some(id) = self.pick_target(account, pick, target) else {
            self.stats.skipped += 1;
            return Ok(());
        };
        match (self.store().audio(account, id), self.model.live.get(&id)) {
            (Ok(audio), Some(rec)) if rec.owner == account => {
                ensure!(
                    audio == rec.audio,
                    "audio of {id} differs from what was uploaded"
                );
                self.stats.audio_checked += 1;
            }
            (Err(e), rec) if is(&e, "not_found") && rec.is_none_or(|r| r.owner != account) => {
                self.stats.audio_refused += 1;
            }
            (got, rec) => {
                return Err(format!(
                    "{account} fetching audio of {id} (owner {:?}): {:?}",
                    rec.map(|r| r.owner),
                    got.map(|b| b.len())
                ));
            }
        }
        Ok(())
    }

    /// Every page of `account`'s listing, checking the paging contract.
    fn list_all(
        &mut self,
        scope: ListScope,
        account: AccountId,
        limit: usize,
    ) -> Result<Vec<RecordingView>, String> {
        self.stats.listings += 1;
        let mut items: Vec<RecordingView> = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let page = self
                .store()
                .list(scope, account, cursor.as_deref(), limit)
                .map_err(|e| format!("listing {account} ({scope:?}, limit {limit}): {e}"))?;
            ensure!(
                page.account_id == account,
                "listing {account} answered for {}",
                page.account_id
            );
            ensure!(
                page.items.len() <= limit,
                "a page of {} items over limit {limit}",
                page.items.len()
            );
            ensure!(
                page.next_cursor.is_none() || page.items.len() == limit,
                "a short page ({} of {limit}) with a next cursor",
                page.items.len()
            );
            items.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => {
                    ensure!(
                        items.windows(2).all(|w| w[0].id < w[1].id),
                        "listing of {account} not in strictly increasing id order: {:?}",
                        items.iter().map(|v| v.id).collect::<Vec<_>>()
                    );
                    return Ok(items);
                }
            }
        }
        Err(format!("listing {account} does not end"))
    }

    /// Decide what an interrupted operation did, from what the store shows.
    fn resolve(&mut self, pending: Pending) -> Result<(), String> {
        match pending {
            Pending::Ingest {
                account: a,
                key,
                rec,
            } => {
                let account = self.model.accounts[a].id;
                let listed = self.list_all(ListScope::Owner, account, 100)?;
                let expected = self.model.views(account);
                if listed == expected {
                    self.stats.maybe_not_happened += 1;
                    return Ok(());
                }
                let extra: Vec<&RecordingView> = listed
                    .iter()
                    .filter(|v| !expected.iter().any(|e| e.id == v.id))
                    .collect();
                let back: Vec<RecordingId> = extra
                    .iter()
                    .map(|v| v.id)
                    .filter(|id| self.model.deleted.contains_key(id))
                    .collect();
                ensure!(
                    back.is_empty(),
                    "deleted recordings {back:?} of {account} are listed again"
                );
                ensure!(
                    extra.len() == 1 && listed.len() == expected.len() + 1,
                    "after an interrupted upload {account} lists\n{listed:#?}\nexpected that plus at most the upload:\n{expected:#?}"
                );
                let id = extra[0].id;
                ensure!(
                    id.0 > self.model.max_recording && *extra[0] == rec.view(id),
                    "after an interrupted upload {account} lists {:#?}, expected {:#?} with a new id (above {})",
                    extra[0],
                    rec.view(id),
                    self.model.max_recording
                );
                self.model.max_recording = id.0;
                let upload = Upload {
                    recording: id,
                    captured_at_ms: rec.captured_at_ms,
                    transcript: rec.transcript.clone(),
                    audio: rec.audio.clone(),
                };
                self.model.uploads.insert(key, upload);
                self.model.live.insert(id, rec);
                self.stats.maybe_happened += 1;
            }
            Pending::Delete { account: a, ids } => {
                let account = self.model.accounts[a].id;
                let listed = self.list_all(ListScope::Owner, account, 100)?;
                let before = self.model.views(account);
                let after: Vec<RecordingView> = before
                    .iter()
                    .filter(|v| !ids.contains(&v.id))
                    .cloned()
                    .collect();
                if listed == before && listed != after {
                    self.stats.maybe_not_happened += 1;
                } else if listed == after {
                    self.model.delete(&ids);
                    self.stats.maybe_happened += 1;
                } else {
                    return Err(format!(
                        "after an interrupted deletion of {ids:?} {account} lists {:?}, expected all of {:?} or none",
                        listed.iter().map(|v| v.id).collect::<Vec<_>>(),
                        before.iter().map(|v| v.id).collect::<Vec<_>>()
                    ));
                }
            }
            Pending::Close { account: a } => {
                let account = self.model.accounts[a].id;
                let session = self
                    .store()
                    .authenticate_session(&self.model.accounts[a].session);
                let listed = self.list_all(ListScope::Owner, account, 100)?;
                let before = self.model.views(account);
                match session {
                    Ok(id) if id == account => {
                        // Not closed; its first transaction (delete all)
                        // may have committed.
                        if listed.is_empty() {
                            let ids = self.model.ids_of(account);
                            self.model.delete(&ids);
                        } else {
                            ensure!(
                                listed == before,
                                "after an interrupted close, open {account} lists {listed:#?}, expected all of {before:#?} or none"
                            );
                        }
                        self.stats.maybe_not_happened += 1;
                    }
                    Err(e) if is(&e, "unauthorized") => {
                        ensure!(
                            listed.is_empty(),
                            "closed {account} still lists {listed:#?}"
                        );
                        self.model.close(a);
                        self.stats.maybe_happened += 1;
                    }
                    other => {
                        return Err(format!(
                            "after an interrupted close, session of {account}: {other:?}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Compare the store with the model: every account's session, devices
    /// and listing (both scopes), every deleted recording's audio.
    fn check(&mut self, pending: Option<Pending>) -> Result<(), String> {
        if let Some(pending) = pending {
            self.resolve(pending)?;
        }
        let limit = 1 + (self.step % 5) as usize * 3;
        for account in self.model.accounts.clone() {
            let session = self.store().authenticate_session(&account.session);
            match (&session, account.closed) {
                (Ok(id), false) if *id == account.id => {}
                (Err(e), true) if is(e, "unauthorized") => {}
                _ => {
                    return Err(format!(
                        "session of {} <{}> (closed: {}): {session:?}",
                        account.id, account.email, account.closed
                    ));
                }
            }
            for dev in &account.devices {
                let device = self.store().authenticate_device(&dev.token);
                match (&device, account.closed) {
                    (Ok(d), false) if d.id == dev.id && d.owner == account.id => {}
                    (Err(e), true) if is(e, "unauthorized") => {}
                    _ => {
                        return Err(format!(
                            "device {} of {} (closed: {}): {device:?}",
                            dev.id, account.id, account.closed
                        ));
                    }
                }
            }
            let expected = self.model.views(account.id);
            for scope in [ListScope::Owner, ListScope::Service] {
                let listed = self.list_all(scope, account.id, limit)?;
                if listed != expected {
                    let got: Vec<u64> = listed.iter().map(|v| v.id.0).collect();
                    let want: Vec<u64> = expected.iter().map(|v| v.id.0).collect();
                    let lost: Vec<u64> = want
                        .iter()
                        .filter(|id| !got.contains(id))
                        .copied()
                        .collect();
                    let extra: Vec<u64> = got
                        .iter()
                        .filter(|id| !want.contains(id))
                        .copied()
                        .collect();
                    return Err(format!(
                        "{} ({scope:?}, limit {limit}) lists ids {got:?}, model has {want:?}: \
                         lost {lost:?}, extra {extra:?} (of which deleted: {:?})\nlisted {listed:#?}\nexpected {expected:#?}",
                        account.id,
                        extra
                            .iter()
                            .filter(|id| self.model.deleted.contains_key(&RecordingId(**id)))
                            .collect::<Vec<_>>(),
                    ));
                }
            }
        }
        for (id, owner) in &self.model.deleted {
            match self.store().audio(*owner, *id) {
                Err(e) if is(&e, "not_found") => {}
                other => {
                    return Err(format!(
                        "audio of deleted {id} (owner {owner}): {:?}",
                        other.map(|b| b.len())
                    ));
                }
            }
        }
        Ok(())
    }
}

fn run(seed: u64, ops: &[Op]) -> Result<Stats, String> {
    let mut harness = Harness::new(seed)?;
    harness.run(ops)?;
    Ok(harness.stats)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

fn config() -> ProptestConfig {
    let defaults = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            defaults.cases
        } else {
            256
        },
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            defaults.rng_seed
        } else {
            RngSeed::Fixed(0x0c05_57a1)
        },
        // Write nothing into the repository.
        failure_persistence: None,
        ..defaults
    }
}

#[test]
fn store_matches_model_across_crashes() {
    let mut runner = TestRunner::new(config());
    let totals = RefCell::new((0u64, Stats::default()));
    let strategy = (any::<u64>(), prop::collection::vec(op_strategy(), 1..60));
    let result = runner.run(&strategy, |(seed, ops)| {
        let stats =
            run(seed, &ops).map_err(|e| TestCaseError::fail(format!("disk seed {seed}: {e}")))?;
        let mut totals = totals.borrow_mut();
        totals.0 += 1;
        totals.1.add(&stats);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (cases, stats) = *totals.borrow();
    println!("store_model: {cases} cases, {stats}");
}

#[test]
fn a_long_seeded_sequence_matches_the_model() {
    let mut totals = Stats::default();
    for seed in [1u64, 2, 3] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ops: Vec<Op> = (0..500).map(|_| random_op(&mut rng, false)).collect();
        let stats = run(seed, &ops).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        println!("store_model seed {seed}: {stats}");
        totals.add(&stats);
    }
    // Positive controls: the runs did what they are meant to check.
    let t = totals;
    assert!(
        t.crashes >= 20 && t.mid_write_crashes >= 60,
        "too few crashes: {t}"
    );
    assert!(
        t.power_lost_mid_op >= 30,
        "the power rarely went inside a commit: {t}"
    );
    assert!(
        t.maybe_happened >= 1 && t.maybe_not_happened >= 20,
        "interrupted commits not both ways: {t}"
    );
    assert!(
        t.ingests_new >= 200 && t.ingests_duplicate >= 20 && t.ingests_conflict >= 5,
        "too few uploads: {t}"
    );
    assert!(
        t.deleted >= 100 && t.closes >= 10 && t.delete_not_found >= 20,
        "too few deletions: {t}"
    );
    assert!(
        t.audio_checked >= 100 && t.audio_refused >= 20,
        "too few audio checks: {t}"
    );
}
