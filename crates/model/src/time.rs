//! Injected time and randomness.
//!
//! Services never read the OS clock or OS randomness themselves: they are
//! handed a [`Clock`] and an [`Entropy`] source. A production binary wires in
//! the system clock and an OS-seeded generator; the simulator wires in its
//! simulated clock and a generator derived from the run's seed.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds since the Unix epoch, as the service should believe them.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// A source of unpredictable bytes for tokens, nonces and secrets.
pub trait Entropy: Send + Sync + 'static {
    fn fill(&self, out: &mut [u8]);

    /// 32 random bytes as lower-case hex: the shape of every bearer token.
    fn token_hex(&self) -> String {
        let mut bytes = [0u8; 32];
        self.fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A clock that only moves when told to. Used by tests and as a building
/// block for simulated clocks.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    pub fn new(now_ms: u64) -> Self {
        Self {
            now_ms: AtomicU64::new(now_ms),
        }
    }

    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, delta_ms: u64) {
        self.now_ms.fetch_add(delta_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// ChaCha8 seeded from a `u64` (or from 32 bytes the caller obtained).
#[derive(Debug)]
pub struct SeededEntropy {
    rng: Mutex<ChaCha8Rng>,
}

impl SeededEntropy {
    pub fn from_seed_u64(seed: u64) -> Self {
        Self {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    pub fn from_seed_bytes(seed: [u8; 32]) -> Self {
        Self {
            rng: Mutex::new(ChaCha8Rng::from_seed(seed)),
        }
    }
}

impl Entropy for SeededEntropy {
    fn fill(&self, out: &mut [u8]) {
        // A poisoned lock only means another thread panicked mid-fill; the
        // generator state is still a valid ChaCha state.
        let mut rng = self.rng.lock().unwrap_or_else(|poison| poison.into_inner());
        rng.fill_bytes(out);
    }
}
