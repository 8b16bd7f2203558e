//! The event trace: every observable event of a run, hashed in order.
//!
//! Two runs of the same plan must produce the same trace hash; CI checks it
//! with `--check-determinism`. Events carry simulated time, the actor, and
//! what it saw (status codes, body digests), so any divergence in behaviour
//! changes the hash.

use sha2::{Digest, Sha256};

#[derive(Default)]
pub struct Trace {
    hasher: Sha256,
    /// Every event, readable: for failure reports and for finding where
    /// two runs of one plan diverged.
    lines: Vec<String>,
}

impl Trace {
    pub fn record(&mut self, at_ms: u64, event: &str) {
        self.hasher.update(at_ms.to_be_bytes());
        self.hasher.update((event.len() as u64).to_be_bytes());
        self.hasher.update(event.as_bytes());
        self.lines.push(format!("{at_ms:>9} ms  {event}"));
    }

    pub fn events(&self) -> u64 {
        self.lines.len() as u64
    }

    /// Hex SHA-256 over every event so far.
    pub fn hash(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }
}

/// The first event at which two traces differ: its index and both sides.
pub fn first_divergence(a: &[String], b: &[String]) -> Option<(usize, String, String)> {
    let missing = || "(no event)".to_string();
    (0..a.len().max(b.len())).find_map(|i| {
        let (x, y) = (a.get(i), b.get(i));
        (x != y).then(|| {
            (
                i,
                x.cloned().unwrap_or_else(missing),
                y.cloned().unwrap_or_else(missing),
            )
        })
    })
}
