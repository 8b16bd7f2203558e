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
//!
//! Both images are kept in 4 KiB pages shared copy-on-write: the durable
//! image and the volatile one differ only in the pages written since the
//! last sync, and pages never written (a file grown by `set_len`) take no
//! memory. So a disk costs about its file's size, not twice that plus a
//! growing `Vec`'s slack.

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

/// Bytes per page of an [`Image`].
const PAGE: usize = 4096;

/// A disk image: `len` bytes in pages; a missing page reads as zeros, and
/// the bytes of the last page beyond `len` are zero.
#[derive(Clone, Debug, Default)]
struct Image {
    len: usize,
    pages: Vec<Option<Arc<[u8; PAGE]>>>,
}

impl PartialEq for Image {
    fn eq(&self, other: &Image) -> bool {
        let zero = [0u8; PAGE];
        let page = |p: Option<&Option<Arc<[u8; PAGE]>>>| -> [u8; PAGE] {
            p.and_then(|p| p.as_deref().copied()).unwrap_or(zero)
        };
        self.len == other.len
            && (0..self.pages.len().max(other.pages.len()))
                .all(|i| page(self.pages.get(i)) == page(other.pages.get(i)))
    }
}

impl Image {
    /// Resize to `len` bytes (new bytes are zero).
    fn resize(&mut self, len: usize) {
        if len < self.len {
            let (last, cut) = (len / PAGE, len % PAGE);
            if cut > 0
                && let Some(Some(page)) = self.pages.get_mut(last)
            {
                Arc::make_mut(page)[cut..].fill(0);
            }
        }
        self.pages.resize(len.div_ceil(PAGE), None);
        self.len = len;
    }

    fn write(&mut self, offset: usize, data: &[u8]) {
        let end = offset + data.len();
        if self.len < end {
            self.resize(end);
        }
        let (mut at, mut rest) = (offset, data);
        while !rest.is_empty() {
            let (index, within) = (at / PAGE, at % PAGE);
            let n = rest.len().min(PAGE - within);
            let page = self.pages[index].get_or_insert_with(|| Arc::new([0u8; PAGE]));
            Arc::make_mut(page)[within..within + n].copy_from_slice(&rest[..n]);
            (at, rest) = (at + n, &rest[n..]);
        }
    }

    fn read(&self, offset: usize, out: &mut [u8]) {
        let mut at = offset;
        let mut rest = &mut out[..];
        while !rest.is_empty() {
            let (index, within) = (at / PAGE, at % PAGE);
            let n = rest.len().min(PAGE - within);
            let (head, tail) = rest.split_at_mut(n);
            match &self.pages[index] {
                Some(page) => head.copy_from_slice(&page[within..within + n]),
                None => head.fill(0),
            }
            (at, rest) = (at + n, tail);
        }
    }

    /// Make this (durable) image equal to `volatile` after `ops` were
    /// applied to `volatile` alone: share its pages that they touched.
    fn catch_up(&mut self, volatile: &Image, ops: &[Pending]) {
        let pages = self.pages.len().max(volatile.pages.len());
        self.pages.resize(volatile.pages.len(), None);
        for op in ops {
            let touched = match op {
                Pending::Write { offset, data } => {
                    let start = *offset as usize / PAGE;
                    start..(*offset as usize + data.len()).div_ceil(PAGE)
                }
                Pending::SetLen(len) => *len as usize / PAGE..pages,
            };
            for index in touched.take_while(|&i| i < volatile.pages.len()) {
                self.pages[index] = volatile.pages[index].clone();
            }
        }
        self.len = volatile.len;
    }
}

#[derive(Debug)]
struct State {
    incarnation: u64,
    durable: Image,
    volatile: Image,
    pending: Vec<Pending>,
    rng: ChaCha8Rng,
    /// I/O errors: `numerator` in `denominator` write/sync operations fail.
    io_error_numerator: u32,
    io_error_denominator: u32,
    /// Power loss armed to strike at the Nth next write or sync.
    armed_ops: Option<u32>,
    /// The next sync fails with an I/O error, and the power goes at the
    /// write or sync after it (see [`SimDisk::arm_sync_failure`]).
    sync_failure_armed: bool,
    /// Set when an armed power loss struck; the world then crashes the host.
    tripped: bool,
    /// Syncs are acknowledged but not performed (a harness self-test's way
    /// to make one kind of write non-durable: `canary::unsynced`).
    syncs_dropped: bool,
    /// A failed sync is answered as a success (a harness self-test's
    /// fsyncgate: `canary::swallow_sync_errors`).
    sync_errors_swallowed: bool,
    /// A sync was dropped since the last real one: a power loss then loses
    /// every unsynced write, none torn or kept, so that the database is
    /// back at its last real sync (as a commit that never asked for a sync
    /// leaves it) rather than torn in a way no real commit risks.
    dropped_since_sync: bool,
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

fn apply(image: &mut Image, op: &Pending) {
    match op {
        Pending::Write { offset, data } => image.write(*offset as usize, data),
        Pending::SetLen(len) => image.resize(*len as usize),
    }
}

/// The effect of a power loss on `state` (see [`SimDisk::crash`]).
fn power_loss(state: &mut State) {
    state.incarnation += 1;
    state.stats.crashes += 1;
    let mut image = state.durable.clone();
    let mut pending = std::mem::take(&mut state.pending);
    if std::mem::take(&mut state.dropped_since_sync) {
        state.stats.unsynced_writes_lost += pending.len() as u64;
        pending.clear();
    }
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
                durable: Image::default(),
                volatile: Image::default(),
                pending: Vec::new(),
                rng: ChaCha8Rng::seed_from_u64(seed),
                io_error_numerator,
                io_error_denominator: io_error_denominator.max(1),
                armed_ops: None,
                sync_failure_armed: false,
                tripped: false,
                syncs_dropped: false,
                sync_errors_swallowed: false,
                dropped_since_sync: false,
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
        state.sync_failure_armed = false;
        power_loss(&mut state);
    }

    /// Arm a power loss that strikes in the middle of the `ops`-th next
    /// write or sync (so inside a commit, where a crash between simulation
    /// steps never lands). The op is torn or lost like any unsynced write.
    pub fn arm_power_loss(&self, ops: u32) {
        self.lock().armed_ops = Some(ops.max(1));
    }

    /// Arm a failing sync (fsyncgate): the next sync fails with an I/O
    /// error, and what was written since the last good sync will never be
    /// durable (the kernel dropped it); the power goes at the next write or
    /// sync after it, so that everything written since the last good sync
    /// is lost, none of it torn or kept. A store that takes the error for
    /// success acknowledges writes that the power loss then takes away.
    pub fn arm_sync_failure(&self) {
        self.lock().sync_failure_armed = true;
    }

    /// Whether an armed power loss struck since the last call.
    pub fn take_tripped(&self) -> bool {
        std::mem::take(&mut self.lock().tripped)
    }

    /// Whether a power loss is armed and has not struck yet.
    pub fn is_armed(&self) -> bool {
        let state = self.lock();
        state.armed_ops.is_some() || state.sync_failure_armed
    }

    /// Disarm a power loss (or a failing sync) that has not struck.
    pub fn disarm(&self) {
        let mut state = self.lock();
        state.armed_ops = None;
        state.sync_failure_armed = false;
    }

    /// Harness self-tests only: while `dropped`, a sync succeeds without
    /// making anything durable (a write cache that lies), so the writes of
    /// that while stay unsynced until the next real sync.
    pub fn set_syncs_dropped(&self, dropped: bool) {
        self.lock().syncs_dropped = dropped;
    }

    /// Harness self-tests only: while `swallowed`, a failed sync
    /// ([`Self::arm_sync_failure`]) is answered as a success.
    pub fn set_sync_errors_swallowed(&self, swallowed: bool) {
        self.lock().sync_errors_swallowed = swallowed;
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
        self.with(false, |s| Ok(s.volatile.len as u64))
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.with(false, |s| {
            let start = offset as usize;
            let end = start
                .checked_add(out.len())
                .ok_or_else(|| io::Error::other("read overflows"))?;
            if end > s.volatile.len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the end of the disk",
                ));
            }
            s.volatile.read(start, out);
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
            if std::mem::take(&mut s.sync_failure_armed) {
                s.stats.io_errors_injected += 1;
                s.dropped_since_sync = true;
                s.armed_ops = Some(1);
                if s.sync_errors_swallowed {
                    return Ok(());
                }
                return Err(io::Error::other("simulated disk: sync failed (I/O error)"));
            }
            if s.syncs_dropped {
                s.dropped_since_sync = true;
                return Ok(());
            }
            s.dropped_since_sync = false;
            let pending = std::mem::take(&mut s.pending);
            let State {
                durable, volatile, ..
            } = s;
            durable.catch_up(volatile, &pending);
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
    fn paged_images_read_back_what_was_written_and_share_after_a_sync() {
        let mut flat = vec![0u8; 0];
        let mut image = Image::default();
        let mut durable = Image::default();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut pending = Vec::new();
        for step in 0..400 {
            let op = if rng.random_range(0..5u32) == 0 {
                Pending::SetLen(rng.random_range(0..5 * PAGE as u64))
            } else {
                let offset = rng.random_range(0..4 * PAGE as u64);
                let len = rng.random_range(1..2 * PAGE);
                Pending::Write {
                    offset,
                    data: (0..len).map(|i| (i + step) as u8 | 1).collect(),
                }
            };
            match &op {
                Pending::Write { offset, data } => {
                    let end = *offset as usize + data.len();
                    if flat.len() < end {
                        flat.resize(end, 0);
                    }
                    flat[*offset as usize..end].copy_from_slice(data);
                }
                Pending::SetLen(len) => flat.resize(*len as usize, 0),
            }
            apply(&mut image, &op);
            pending.push(op);
            let mut out = vec![0u8; flat.len()];
            image.read(0, &mut out);
            assert_eq!(out, flat, "step {step}");
            if step % 7 == 0 {
                durable.catch_up(&image, &std::mem::take(&mut pending));
                assert_eq!(durable, image, "step {step}");
            }
        }
    }

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

    /// A backend that takes every sync error for success (fsyncgate).
    #[derive(Debug)]
    struct SwallowsSyncErrors(SimDiskHandle);

    impl StorageBackend for SwallowsSyncErrors {
        fn len(&self) -> Result<u64, io::Error> {
            self.0.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
            self.0.read(offset, out)
        }
        fn set_len(&self, len: u64) -> Result<(), io::Error> {
            self.0.set_len(len)
        }
        fn sync_data(&self) -> Result<(), io::Error> {
            let _ = self.0.sync_data();
            Ok(())
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
            self.0.write(offset, data)
        }
    }

    /// Commit `key` on `db`; whether the commit said it succeeded.
    fn commit(db: &Database, key: u64) -> bool {
        let Ok(txn) = db.begin_write() else {
            return false;
        };
        let inserted = txn
            .open_table(T)
            .map(|mut t| t.insert(key, key).is_ok())
            .unwrap_or(false);
        inserted && txn.commit().is_ok()
    }

    /// After a crash, the keys of `disk` among `keys`.
    fn surviving(disk: &SimDisk, keys: &[u64]) -> Vec<u64> {
        let db = Database::builder()
            .create_with_backend(disk.open())
            .unwrap();
        let read = db.begin_read().unwrap();
        let table = read.open_table(T).unwrap();
        keys.iter()
            .copied()
            .filter(|k| table.get(*k).unwrap().is_some())
            .collect()
    }

    #[test]
    fn a_failed_sync_loses_its_writes_at_the_next_power_loss() {
        for seed in 0..10 {
            // A store that heeds the error: the commit fails, nothing after.
            let disk = SimDisk::new(seed, 0, 1);
            let db = Database::builder()
                .create_with_backend(disk.open())
                .unwrap();
            assert!(commit(&db, 1));
            disk.arm_sync_failure();
            assert!(!commit(&db, 2), "the failed sync fails the commit");
            // (redb may refuse work after the failed commit; the power
            // goes at its next write, or now.)
            let _ = commit(&db, 3);
            if !disk.take_tripped() {
                disk.crash();
            }
            drop(db);
            assert_eq!(surviving(&disk, &[1, 2, 3]), vec![1], "seed {seed}");
            // A store that swallows it: the commit is acknowledged, and lost.
            let disk = SimDisk::new(seed, 0, 1);
            let db = Database::builder()
                .create_with_backend(SwallowsSyncErrors(disk.open()))
                .unwrap();
            assert!(commit(&db, 1));
            disk.arm_sync_failure();
            assert!(commit(&db, 2), "acknowledged all the same");
            let _ = commit(&db, 3);
            assert!(disk.take_tripped());
            drop(db);
            assert_eq!(surviving(&disk, &[1, 2, 3]), vec![1], "seed {seed}: 2 lost");
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
