//! Seed derivation: every random stream and secret of a run comes from the
//! run's seed and a purpose, and from nothing else.
//!
//! Each purpose (`"plan/heavy"`, `"store-disk"`, `"fault-points/store/1"`,
//! `"service-token"`, ...) gets its own 32 bytes, so adding a draw to one
//! stream never shifts another: a plan section, a host incarnation or a
//! token keeps its values when an unrelated part of the harness changes.

use sha2::{Digest, Sha256};

/// A secret derived from the seed for one purpose (SHA-256 of a domain
/// tag, the seed and the purpose).
pub fn derive(seed: u64, purpose: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"crosstalk/derive/v1");
    hasher.update(seed.to_be_bytes());
    hasher.update(purpose.as_bytes());
    hasher.finalize().into()
}
