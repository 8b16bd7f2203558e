//! Storage health: the first I/O error ends the process.
//!
//! After an I/O error redb refuses further work until the database is closed
//! and reopened, and an error in the middle of a commit leaves no way to
//! know what reached the disk. So the store watches its backend: the first
//! failed read, write or sync marks it failed, the serving loop stops
//! (`Store::until_storage_fails`), and a supervisor (systemd, Kubernetes,
//! the simulator's world) starts a new process, which reopens the database
//! and recovers from what was durable.

use redb::StorageBackend;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Health {
    failed: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Health {
    pub(crate) fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    pub(crate) async fn until_failed(&self) {
        loop {
            let notified = self.notify.notified();
            if self.failed() {
                return;
            }
            notified.await;
        }
    }
}

/// A backend that reports every I/O error to [`Health`].
#[derive(Debug)]
pub(crate) struct WatchedBackend<B> {
    pub(crate) inner: B,
    pub(crate) health: Arc<Health>,
}

impl<B: StorageBackend> WatchedBackend<B> {
    fn watch<T>(&self, result: io::Result<T>) -> io::Result<T> {
        if result.is_err() {
            self.health.fail();
        }
        result
    }
}

impl<B: StorageBackend> StorageBackend for WatchedBackend<B> {
    fn len(&self) -> io::Result<u64> {
        self.watch(self.inner.len())
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.watch(self.inner.read(offset, out))
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.watch(self.inner.set_len(len))
    }
    fn sync_data(&self) -> io::Result<()> {
        self.watch(self.inner.sync_data())
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.watch(self.inner.write(offset, data))
    }
    fn close(&self) -> io::Result<()> {
        self.watch(self.inner.close())
    }
}
