//! A simulated disk for redb: durable only what was synced.
//!
//! The disk lives outside the host it belongs to, so it survives the host's
//! crash and restart. Writes go to a volatile image at once (reads see them)
//! and are queued; `sync_data` makes the queue durable. A crash throws the
//! volatile image away and rebuilds it from the durable image plus a random
//! subset of the unsynced writes — some whole, some torn (only a prefix
//! landed) — as a real disk with a write-back cache may. The generator is
//! seeded from the run's seed.
//!
//! Each open hands out a handle stamped with the disk's incarnation; after a
//! crash, the previous incarnation's handles fail every operation, so the
//! dying process's destructors cannot write anything "after" the crash.
//! The disk can also fail operations with I/O errors at a seeded rate.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use redb::StorageBackend;
use std::io;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug)]
struct State {
    incarnation: u64,
    durable: Vec<u8>,
    volatile: Vec<u8>,
    pending: Vec<Pending>,
    rng: ChaCha8Rng,
    /// I/O errors: `numerator` in `denominator` write/sync operations fail.
    io_error_numerator: u32,
    io_error_denominator: u32,
    /// Power loss armed to strike at the Nth next write or sync.
    armed_ops: Option<u32>,
    /// Set when an armed power loss struck; the world then crashes the host.
    tripped: bool,
    stats: DiskStats,
}

/// What the disk went through, for the run's summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub syncs: u64,
    pub crashes: u64,
    pub unsynced_writes_lost: u64,
    pub unsynced_writes_kept: u64,
    pub torn_writes: u64,
    pub io_errors_injected: u64,
}

/// A shared simulated disk. Clone it to keep a hold outside the host.
#[derive(Clone, Debug)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

/// One incarnation's view of a [`SimDisk`], handed to redb.
#[derive(Debug)]
pub struct SimDiskHandle {
    state: Arc<Mutex<State>>,
    incarnation: u64,
}

fn apply(image: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write { offset, data } => {
            let start = *offset as usize;
            let end = start + data.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[start..end].copy_from_slice(data);
        }
        Pending::SetLen(len) => image.resize(*len as usize, 0),
    }
}

/// The effect of a power loss on `state` (see [`SimDisk::crash`]).
fn power_loss(state: &mut State) {
    state.incarnation += 1;
    state.stats.crashes += 1;
    let mut image = state.durable.clone();
    let pending = std::mem::take(&mut state.pending);
    for op in &pending {
        // Each unsynced operation independently: lost, landed, or torn.
        match state.rng.random_range(0..4u32) {
            0 | 1 => state.stats.unsynced_writes_lost += 1,
            2 => {
                state.stats.unsynced_writes_kept += 1;
                apply(&mut image, op);
            }
            _ => match op {
                Pending::Write { offset, data } if data.len() > 1 => {
                    state.stats.torn_writes += 1;
                    let cut = state.rng.random_range(1..data.len());
                    apply(
                        &mut image,
                        &Pending::Write {
                            offset: *offset,
                            data: data[..cut].to_vec(),
                        },
                    );
                }
                _ => {
                    state.stats.unsynced_writes_kept += 1;
                    apply(&mut image, op);
                }
            },
        }
    }
    state.volatile = image.clone();
    state.durable = image;
}

impl SimDisk {
    /// A blank disk whose crash and error behaviour derives from `seed`.
    pub fn new(seed: u64, io_error_numerator: u32, io_error_denominator: u32) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                incarnation: 0,
                durable: Vec::new(),
                volatile: Vec::new(),
                pending: Vec::new(),
                rng: ChaCha8Rng::seed_from_u64(seed),
                io_error_numerator,
                io_error_denominator: io_error_denominator.max(1),
                armed_ops: None,
                tripped: false,
                stats: DiskStats::default(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle for the current incarnation (give it to redb on open).
    pub fn open(&self) -> SimDiskHandle {
        SimDiskHandle {
            state: self.state.clone(),
            incarnation: self.lock().incarnation,
        }
    }

    /// Power loss: unsynced writes survive only partly, old handles die.
    pub fn crash(&self) {
        let mut state = self.lock();
        state.armed_ops = None;
        power_loss(&mut state);
    }

    /// Arm a power loss that strikes in the middle of the `ops`-th next
    /// write or sync (so inside a commit, where a crash between simulation
    /// steps never lands). The op is torn or lost like any unsynced write.
    pub fn arm_power_loss(&self, ops: u32) {
        self.lock().armed_ops = Some(ops.max(1));
    }

    /// Whether an armed power loss struck since the last call.
    pub fn take_tripped(&self) -> bool {
        std::mem::take(&mut self.lock().tripped)
    }

    /// Whether a power loss is armed and has not struck yet.
    pub fn is_armed(&self) -> bool {
        self.lock().armed_ops.is_some()
    }

    /// Disarm a power loss that has not struck.
    pub fn disarm(&self) {
        self.lock().armed_ops = None;
    }

    /// Change the injected I/O error rate (0 turns errors off).
    pub fn set_io_error_rate(&self, numerator: u32, denominator: u32) {
        let mut state = self.lock();
        state.io_error_numerator = numerator;
        state.io_error_denominator = denominator.max(1);
    }

    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }
}

impl SimDiskHandle {
    fn with<T>(
        &self,
        mutating: bool,
        f: impl FnOnce(&mut State) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.incarnation != self.incarnation {
            return Err(io::Error::other("simulated disk: this process crashed"));
        }
        if mutating && let Some(left) = state.armed_ops {
            if left <= 1 {
                // The power goes out in the middle of this operation.
                state.armed_ops = None;
                state.tripped = true;
                power_loss(&mut state);
                return Err(io::Error::other("simulated disk: power lost"));
            }
            state.armed_ops = Some(left - 1);
        }
        if mutating && state.io_error_numerator > 0 {
            let denominator = state.io_error_denominator;
            if state.rng.random_range(0..denominator) < state.io_error_numerator {
                state.stats.io_errors_injected += 1;
                return Err(io::Error::other("simulated disk: injected I/O error"));
            }
        }
        f(&mut state)
    }
}

impl StorageBackend for SimDiskHandle {
    fn len(&self) -> Result<u64, io::Error> {
        self.with(false, |s| Ok(s.volatile.len() as u64))
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.with(false, |s| {
            let start = offset as usize;
            let end = start
                .checked_add(out.len())
                .ok_or_else(|| io::Error::other("read overflows"))?;
            if end > s.volatile.len() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the end of the disk",
                ));
            }
            out.copy_from_slice(&s.volatile[start..end]);
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.with(true, |s| {
            let op = Pending::SetLen(len);
            apply(&mut s.volatile, &op);
            s.pending.push(op);
            Ok(())
        })
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.with(true, |s| {
            for op in std::mem::take(&mut s.pending) {
                apply(&mut s.durable, &op);
            }
            s.stats.syncs += 1;
            debug_assert_eq!(
                s.durable, s.volatile,
                "after a sync the durable image is the volatile one"
            );
            Ok(())
        })
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.with(true, |s| {
            let op = Pending::Write {
                offset,
                data: data.to_vec(),
            };
            apply(&mut s.volatile, &op);
            s.pending.push(op);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase, TableDefinition};

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    #[test]
    fn committed_data_survives_crashes_and_old_handles_die() {
        for seed in 0..20 {
            let disk = SimDisk::new(seed, 0, 1);
            let db = Database::builder()
                .create_with_backend(disk.open())
                .unwrap();
            for i in 0..20u64 {
                let txn = db.begin_write().unwrap();
                txn.open_table(T).unwrap().insert(i, i * 10).unwrap();
                txn.commit().unwrap();
            }
            // Unsynced: a transaction left uncommitted when the power goes.
            let txn = db.begin_write().unwrap();
            txn.open_table(T).unwrap().insert(999, 1).unwrap();
            disk.crash();
            drop(txn);
            drop(db);
            let db = Database::builder()
                .create_with_backend(disk.open())
                .unwrap();
            let read = db.begin_read().unwrap();
            let table = read.open_table(T).unwrap();
            for i in 0..20u64 {
                assert_eq!(
                    table.get(i).unwrap().map(|v| v.value()),
                    Some(i * 10),
                    "seed {seed} key {i}"
                );
            }
            assert!(table.get(999).unwrap().is_none());
        }
    }

    #[test]
    fn injected_io_errors_fail_commits_without_losing_earlier_ones() {
        let disk = SimDisk::new(3, 0, 1);
        let db = Database::builder()
            .create_with_backend(disk.open())
            .unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(T).unwrap().insert(1, 1).unwrap();
        txn.commit().unwrap();
        disk.set_io_error_rate(1, 1);
        let txn = db.begin_write().unwrap();
        txn.open_table(T).unwrap().insert(2, 2).unwrap();
        assert!(txn.commit().is_err());
        assert!(disk.stats().io_errors_injected > 0);
        disk.set_io_error_rate(0, 1);
        disk.crash();
        drop(db);
        let db = Database::builder()
            .create_with_backend(disk.open())
            .unwrap();
        let read = db.begin_read().unwrap();
        let table = read.open_table(T).unwrap();
        assert_eq!(table.get(1).unwrap().map(|v| v.value()), Some(1));
        assert!(table.get(2).unwrap().is_none());
    }
}
