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
    events: u64,
    /// The last events, kept readable for failure reports.
    tail: std::collections::VecDeque<String>,
}

const TAIL_EVENTS: usize = 40;

impl Trace {
    pub fn record(&mut self, at_ms: u64, event: &str) {
        self.hasher.update(at_ms.to_be_bytes());
        self.hasher.update((event.len() as u64).to_be_bytes());
        self.hasher.update(event.as_bytes());
        self.events += 1;
        if self.tail.len() == TAIL_EVENTS {
            self.tail.pop_front();
        }
        self.tail.push_back(format!("{at_ms:>9} ms  {event}"));
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    /// Hex SHA-256 over every event so far.
    pub fn hash(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }
}
