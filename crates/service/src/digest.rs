//! A digest of a service's whole database, for the simulator's
//! determinism check.
//!
//! [`StateDigest`] hashes (SHA-256) every table a service names, in the
//! order it names them, each as its name, then every key and value in key
//! order, each length-prefixed as the table's own encoding stores it. A
//! table that was never created hashes as absent. Then it hashes the list
//! of every table the database actually holds, so a table the service
//! forgot to name still changes the digest (by its name and row count).
//! Nothing here reads a clock; two databases with equal contents give equal
//! digests.

use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, TableError,
    TableHandle, Value,
};
use sha2::{Digest, Sha256};

/// A running digest over one read transaction.
pub struct StateDigest<'t> {
    txn: &'t ReadTransaction,
    hasher: Sha256,
}

fn put(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

impl<'t> StateDigest<'t> {
    pub fn new(txn: &'t ReadTransaction) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"crosstalk/state-digest/v1");
        Self { txn, hasher }
    }

    /// Hash every row of `table`, in key order.
    pub fn table<K: redb::Key + 'static, V: Value + 'static>(
        mut self,
        table: TableDefinition<K, V>,
    ) -> Result<Self, redb::Error> {
        put(&mut self.hasher, table.name().as_bytes());
        let opened = match self.txn.open_table(table) {
            Ok(opened) => opened,
            Err(TableError::TableDoesNotExist(_)) => {
                put(&mut self.hasher, b"absent");
                return Ok(self);
            }
            Err(e) => return Err(e.into()),
        };
        for row in opened.iter()? {
            let (key, value) = row?;
            put(&mut self.hasher, K::as_bytes(&key.value()).as_ref());
            put(&mut self.hasher, V::as_bytes(&value.value()).as_ref());
        }
        Ok(self)
    }

    /// Hash the names and sizes of every table the database holds, and
    /// return the hex digest.
    pub fn finish(mut self) -> Result<String, redb::Error> {
        let mut tables: Vec<(String, u64)> = Vec::new();
        for handle in self.txn.list_tables()? {
            let name = handle.name().to_string();
            let rows = self.txn.open_untyped_table(handle)?.len()?;
            tables.push((name, rows));
        }
        tables.sort();
        for (name, rows) in tables {
            put(&mut self.hasher, name.as_bytes());
            self.hasher.update(rows.to_be_bytes());
        }
        let digest: [u8; 32] = self.hasher.finalize().into();
        Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}
