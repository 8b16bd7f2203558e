//! Seeded fault points for the services (see
//! `crosstalk_service::fault_points`): each named point fires with the
//! plan's probability, drawn from a generator derived from the seed and the
//! host's incarnation. The simulation is single threaded, so the order of
//! draws — and so every firing — is fixed by the seed.

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
}

impl SeededFaultPoints {
    pub fn new(seed: [u8; 32], per_mille: u32, until_ms: u64, fired: Arc<AtomicU64>) -> Self {
        Self {
            rng: Mutex::new(ChaCha8Rng::from_seed(seed)),
            per_mille: per_mille.min(1000),
            until_ms,
            fired,
        }
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
        }
        fires
    }
}
