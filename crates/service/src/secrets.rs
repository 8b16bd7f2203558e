//! The secret-key bootstrap both services share.
//!
//! Each service keeps the keys it signs with (the store's list-cursor key,
//! the export's download-link key) in a `secrets` table of its own
//! database. The first open draws a key from the injected
//! [`Entropy`]; every later open reads the same key back, so cursors and
//! links minted before a crash still verify after it.

use crosstalk_model::Entropy;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

/// name -> key bytes.
pub const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");

/// Bytes in a key this module creates.
pub const KEY_BYTES: usize = 32;

/// The key stored under `name`, created from `entropy` (and stored, inside
/// `txn`) if there is none yet. The caller commits `txn`.
pub fn load_or_create(
    txn: &WriteTransaction,
    name: &str,
    entropy: &dyn Entropy,
) -> Result<Vec<u8>, String> {
    let mut secrets = txn.open_table(SECRETS).map_err(|e| e.to_string())?;
    let existing = secrets
        .get(name)
        .map_err(|e| e.to_string())?
        .map(|v| v.value().to_vec());
    match existing {
        Some(key) => Ok(key),
        None => {
            let mut key = vec![0u8; KEY_BYTES];
            entropy.fill(&mut key);
            secrets
                .insert(name, key.as_slice())
                .map_err(|e| e.to_string())?;
            Ok(key)
        }
    }
}
