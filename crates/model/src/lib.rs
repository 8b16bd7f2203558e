//! Domain types shared by the recording store and the export service.
//!
//! This crate holds the vocabulary both services speak: typed identifiers,
//! the recording record, principals, the wire types of their HTTP APIs, and
//! the two injected capabilities every service takes at construction — a
//! [`Clock`] and an [`Entropy`] source. It performs no I/O and never reads the
//! OS clock or OS randomness, so the same types serve a production server and
//! a deterministic simulation.

pub mod api;
mod ids;
mod time;

pub use ids::{AccountId, DeviceId, ExportId, RecordingId};
pub use time::{Clock, Entropy, ManualClock, SeededEntropy};

use serde::{Deserialize, Serialize};

/// Largest audio payload, in bytes, that the store accepts for one recording.
pub const MAX_AUDIO_BYTES: usize = 512 * 1024;

/// Largest transcript, in bytes, that the store accepts for one recording.
pub const MAX_TRANSCRIPT_BYTES: usize = 8 * 1024;

/// Who is making a request, as established by authentication.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Principal {
    /// A person holding a session for their own account.
    Account(AccountId),
    /// A device acting for the account that owns it at this moment.
    Device { device: DeviceId, owner: AccountId },
    /// An internal service (for example the export worker), named.
    Service(String),
}

/// One stored recording's metadata as the store keeps it.
///
/// `captured_at_ms` is the device's own clock at capture (it may be skewed);
/// `received_at_ms` is the store's clock when the upload was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    pub id: RecordingId,
    pub owner: AccountId,
    pub device: DeviceId,
    pub captured_at_ms: u64,
    pub received_at_ms: u64,
    pub transcript: String,
    /// Lower-case hex SHA-256 of the audio bytes.
    pub audio_sha256: String,
    pub audio_len: u64,
}

/// Lower-case hex SHA-256 of `bytes`: the digest format of manifests and
/// recording records.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}
