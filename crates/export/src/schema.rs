//! The export service's schema: every redb table, the counters kept in
//! `META`, the `SECRETS` entry of the link key, and the opening that
//! creates them.
//!
//! This module depends on nothing else of the crate: the core (`service`)
//! and the features (`exports`, `jobs`, `tickets`, `agent`) read and write
//! these tables; none defines its own.

use crosstalk_model::Entropy;
use crosstalk_service::digest::StateDigest;
use redb::{Database, ReadTransaction, TableDefinition};

/// counter name -> the next id it hands out.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// export id -> JSON `jobs::Job`.
pub(crate) const JOBS: TableDefinition<u64, &str> = TableDefinition::new("jobs");
/// Jobs that need a worker (queued, or being rebuilt), by id.
pub(crate) const PENDING: TableDefinition<u64, ()> = TableDefinition::new("pending");
/// export id -> the published archive's bytes.
pub(crate) const ARCHIVES: TableDefinition<u64, &[u8]> = TableDefinition::new("archives");
/// (subject, request time, export id) -> (): recent direct requests, for
/// rate limiting. The export id keeps requests made in the same millisecond
/// apart (keyed by time alone, a burst collapsed into one entry).
pub(crate) const REQUESTS: TableDefinition<(u64, u64, u64), ()> = TableDefinition::new("requests");
/// seq -> JSON `crosstalk_model::api::AuditEntry`.
pub(crate) const AUDIT: TableDefinition<u64, &str> = TableDefinition::new("audit");
/// ticket id -> JSON `tickets::Ticket`.
pub(crate) const TICKETS: TableDefinition<u64, &str> = TableDefinition::new("tickets");
/// name -> key bytes (the download-link key): the services' shared table.
pub(crate) const SECRETS: TableDefinition<&str, &[u8]> = crosstalk_service::secrets::SECRETS;

/// The counters in `META`, and the `SECRETS` entry of the link key.
pub(crate) const NEXT_EXPORT: &str = "next_export_id";
pub(crate) const NEXT_AUDIT: &str = "next_audit_seq";
pub(crate) const NEXT_TICKET: &str = "next_ticket_id";
pub(crate) const LINK_KEY: &str = "link_mac_key";

/// Create every table and the link key on first open; return the link key.
pub(crate) fn create(db: &Database, entropy: &dyn Entropy) -> Result<Vec<u8>, String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    let key = crosstalk_service::secrets::load_or_create(&txn, LINK_KEY, entropy)?;
    txn.open_table(META).map_err(|e| e.to_string())?;
    txn.open_table(JOBS).map_err(|e| e.to_string())?;
    txn.open_table(PENDING).map_err(|e| e.to_string())?;
    txn.open_table(ARCHIVES).map_err(|e| e.to_string())?;
    txn.open_table(REQUESTS).map_err(|e| e.to_string())?;
    txn.open_table(TICKETS).map_err(|e| e.to_string())?;
    txn.open_table(AUDIT).map_err(|e| e.to_string())?;
    txn.commit().map_err(|e| e.to_string())?;
    Ok(key)
}

/// SHA-256 over every table, each in key order, in this fixed order (the
/// simulator's trace hashes depend on it; see `crosstalk_service::digest`).
pub(crate) fn digest(txn: &ReadTransaction) -> Result<String, redb::Error> {
    StateDigest::new(txn)
        .table(META)
        .and_then(|d| d.table(JOBS))
        .and_then(|d| d.table(PENDING))
        .and_then(|d| d.table(ARCHIVES))
        .and_then(|d| d.table(REQUESTS))
        .and_then(|d| d.table(AUDIT))
        .and_then(|d| d.table(SECRETS))
        .and_then(|d| d.table(TICKETS))
        .and_then(|d| d.finish())
}
