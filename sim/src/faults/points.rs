//! Seeded fault points for the services (see
//! `crosstalk_service::fault_points`): each named point fires with the
//! plan's probability, drawn from a generator derived from the seed and the
//! host's incarnation. The simulation is single threaded, so the order of
//! draws — and so every firing — is fixed by the seed.
//!
//! Swarm testing of the points themselves: in each run about one point in
//! four is *hot* (chosen from the run's seed and the point's name, the same
//! on every host and incarnation) and fires ten times as often, up to a
//! quarter of the time. A rare path — a store call failing exactly when a
//! download checks its archive against the store — then happens in some
//! seeds often enough to matter, instead of almost never in every seed.

use super::poison::{CollectionFaults, SUBJECT_POINT, TRANSIENT_POINT};
use crate::check::contract::FiredPoints;
use crate::streams::derive;
use crosstalk_service::fault_points::FaultPoints;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How much more often a hot point fires, and the most it may.
const HOT_FACTOR: u32 = 10;
const HOT_MAX_PER_MILLE: u32 = 250;

pub struct SeededFaultPoints {
    rng: Mutex<ChaCha8Rng>,
    per_mille: u32,
    /// Which points are hot in this run (see the module comment).
    hot_key: u64,
    /// Faults heal with the active period: nothing fires from then on.
    until_ms: u64,
    fired: Arc<AtomicU64>,
    /// Where each firing is logged (the host incarnation's name and the
    /// simulated ms), for the oracle's fault windows.
    log: Option<(String, FiredPoints)>,
    /// The collection-read faults of the run (`faults/poison.rs`): the
    /// poisoned subject, and the count of transient refusals.
    collection: Option<Arc<CollectionFaults>>,
}

impl SeededFaultPoints {
    /// `hot_key` is the same for every host of one run: it picks the hot
    /// points.
    pub fn new(
        seed: [u8; 32],
        hot_key: u64,
        per_mille: u32,
        until_ms: u64,
        fired: Arc<AtomicU64>,
    ) -> Self {
        Self {
            rng: Mutex::new(ChaCha8Rng::from_seed(seed)),
            per_mille: per_mille.min(1000),
            hot_key,
            until_ms,
            fired,
            log: None,
            collection: None,
        }
    }

    /// Refuse the poisoned subject's collection reads, and count transient
    /// refusals, into `collection`.
    pub fn with_collection(mut self, collection: Arc<CollectionFaults>) -> Self {
        self.collection = Some(collection);
        self
    }

    /// Count and log one firing.
    fn record(&self) {
        self.fired.fetch_add(1, Ordering::Relaxed);
        if let Some((name, log)) = &self.log {
            let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
            log.push((name.clone(), crate::net::sim_now_ms()));
        }
    }

    /// Log every firing under `name` (`host/incarnation`) into `log`.
    pub fn logging_into(mut self, name: String, log: FiredPoints) -> Self {
        self.log = Some((name, log));
        self
    }
}

/// The fault points of every service process of one run: each process
/// incarnation (`store/2`, `worker-0/1`, ...) gets its own seeded
/// generator, all of them share the run's hot points, count their firings
/// together and log them for the oracle's fault windows.
#[derive(Clone)]
pub struct FaultPointSource {
    seed: u64,
    hot_key: u64,
    per_mille: u32,
    until_ms: u64,
    fired: Arc<AtomicU64>,
    log: FiredPoints,
    collection: Arc<CollectionFaults>,
}

impl FaultPointSource {
    /// The plan's fault points, refusing collection reads into `collection`.
    pub fn new(plan: &crate::plan::Plan, collection: Arc<CollectionFaults>) -> Self {
        let hot_key = u64::from_le_bytes(
            derive(plan.seed, "hot-fault-points")[..8]
                .try_into()
                .unwrap_or_else(|_| unreachable!("a 32-byte digest has 8 bytes")),
        );
        Self {
            seed: plan.seed,
            hot_key,
            per_mille: plan.sut_fault_points_per_mille,
            until_ms: plan.active_ms,
            fired: Arc::default(),
            log: FiredPoints::default(),
            collection,
        }
    }

    /// The points of one process incarnation, `name` as `host/incarnation`.
    pub fn for_process(&self, name: String) -> Arc<dyn FaultPoints> {
        Arc::new(
            SeededFaultPoints::new(
                derive(self.seed, &format!("fault-points/{name}")),
                self.hot_key,
                self.per_mille,
                self.until_ms,
                self.fired.clone(),
            )
            .logging_into(name, self.log.clone())
            .with_collection(self.collection.clone()),
        )
    }

    /// How many points fired in the whole run.
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::Relaxed)
    }

    /// Every firing, by process incarnation and simulated ms.
    pub fn log(&self) -> &FiredPoints {
        &self.log
    }
}

/// Whether `point` is hot under `hot_key`: one point in four, by an FNV-1a
/// hash of the key and the name (stable across builds and platforms).
pub fn is_hot(hot_key: u64, point: &str) -> bool {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ hot_key;
    for byte in point.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash.is_multiple_of(4)
}

impl FaultPoints for SeededFaultPoints {
    fn fire(&self, point: &'static str) -> bool {
        if self.per_mille == 0 || crate::net::sim_now_ms() >= self.until_ms {
            return false;
        }
        let per_mille = if is_hot(self.hot_key, point) {
            (self.per_mille * HOT_FACTOR).min(HOT_MAX_PER_MILLE.max(self.per_mille))
        } else {
            self.per_mille
        };
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let fires = rng.random_ratio(per_mille, 1000);
        if fires {
            drop(rng);
            self.record();
            if point == TRANSIENT_POINT
                && let Some(collection) = &self.collection
            {
                collection.count_transient();
            }
        }
        fires
    }

    /// Only the poisoned subject's collection reads fire, inside the
    /// plan's window (which heals by the end of the active period).
    fn fire_for(&self, point: &'static str, key: u64) -> bool {
        let Some(collection) = &self.collection else {
            return false;
        };
        let fires = point == SUBJECT_POINT && collection.refuses(key, crate::net::sim_now_ms());
        if fires {
            self.record();
        }
        fires
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POINTS: &[&str] = &[
        "export.store_call.fails",
        "export.announce.dropped",
        "worker.collect.page_fails",
        "worker.publish.stalls",
        "store.reply.stall",
        "store.service.unavailable",
        "store.reply.lost_after_commit",
        "store.disk.io_error",
        "export.reply.lost_after_commit",
    ];

    fn hot_points(key: u64) -> Vec<&'static str> {
        POINTS.iter().copied().filter(|p| is_hot(key, p)).collect()
    }

    #[test]
    fn about_one_point_in_four_is_hot_and_which_ones_change_with_the_run() {
        let hot: usize = (0..200).map(|key| hot_points(key).len()).sum();
        let share = hot as f64 / (200 * POINTS.len()) as f64;
        assert!((0.18..0.32).contains(&share), "hot share {share}");
        assert_ne!(hot_points(1), hot_points(2));
        assert_eq!(hot_points(7), hot_points(7));
    }

    #[test]
    fn a_hot_point_fires_ten_times_as_often_as_a_cold_one() {
        let key = (0..)
            .find(|&k| is_hot(k, POINTS[0]) && !is_hot(k, POINTS[1]))
            .unwrap();
        let points = SeededFaultPoints::new([3; 32], key, 10, u64::MAX, Arc::default());
        let count = |point: &'static str| (0..20_000).filter(|_| points.fire(point)).count();
        let (hot, cold) = (count(POINTS[0]), count(POINTS[1]));
        assert!(
            (150..250).contains(&cold),
            "cold point fired {cold} of 20000 at 10‰"
        );
        assert!(
            (1_700..2_300).contains(&hot),
            "hot point fired {hot} of 20000 at 100‰"
        );
    }
}
