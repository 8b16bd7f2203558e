//! How a service starts its background tasks.
//!
//! In production, tasks go to the tokio runtime (`tokio::spawn`). Inside a
//! deterministic simulation they must go to the host's `LocalSet`
//! (`spawn_local`): when a simulated host crashes, the runtime's own task
//! list drops its tasks in an order that depends on process-global task ids
//! (so it differs between two runs of one seed), while a `LocalSet` drops
//! them in the order they were spawned. Every dropped connection sends
//! something on the simulated network, so that order is observable.

use std::future::Future;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Spawner {
    /// `tokio::spawn`: a real server on a (multi-threaded) runtime.
    #[default]
    Tokio,
    /// `tokio::task::spawn_local`: inside a `LocalSet`, as turmoil hosts are.
    Local,
}

impl Spawner {
    pub fn spawn<F>(self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match self {
            #[allow(clippy::disallowed_methods)] // The one sanctioned use, for real servers.
            Spawner::Tokio => drop(tokio::spawn(task)),
            Spawner::Local => drop(tokio::task::spawn_local(task)),
        }
    }
}
