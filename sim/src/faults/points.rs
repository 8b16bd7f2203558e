//! Seeded fault points for the services (see
//! `crosstalk_service::fault_points`): each named point fires with the
//! plan's probability, drawn from a generator derived from the seed and the
//! host's incarnation. The simulation is single threaded, so the order of
//! draws — and so every firing — is fixed by the seed.

use crate::check::contract::FiredPoints;
use crosstalk_service::fault_points::FaultPoints;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub struct SeededFaultPoints {
    rng: Mutex<ChaCha8Rng>,
    per_mille: u32,
    /// Faults heal with the active period: nothing fires from then on.
    until_ms: u64,
    fired: Arc<AtomicU64>,
    /// Where each firing is logged (the host incarnation's name and the
    /// simulated ms), for the oracle's fault windows.
    log: Option<(String, FiredPoints)>,
}

impl SeededFaultPoints {
    pub fn new(seed: [u8; 32], per_mille: u32, until_ms: u64, fired: Arc<AtomicU64>) -> Self {
        Self {
            rng: Mutex::new(ChaCha8Rng::from_seed(seed)),
            per_mille: per_mille.min(1000),
            until_ms,
            fired,
            log: None,
        }
    }

    /// Log every firing under `name` (`host/incarnation`) into `log`.
    pub fn logging_into(mut self, name: String, log: FiredPoints) -> Self {
        self.log = Some((name, log));
        self
    }
}

impl FaultPoints for SeededFaultPoints {
    fn fire(&self, _point: &'static str) -> bool {
        if self.per_mille == 0 || crate::net::sim_now_ms() >= self.until_ms {
            return false;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let fires = rng.random_ratio(self.per_mille, 1000);
        if fires {
            self.fired.fetch_add(1, Ordering::Relaxed);
            if let Some((name, log)) = &self.log {
                let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                log.push((name.clone(), crate::net::sim_now_ms()));
            }
        }
        fires
    }
}
