//! Entry points for the fuzz targets in `fuzz/` that need the whole system
//! (and for the ordinary tests that replay their committed corpora). Each
//! takes raw bytes and panics only when it finds a real defect.
//!
//! - [`export_api`]: arbitrary request sequences against the store and
//!   export routers in process, across several accounts.
//! - [`seed`]: writes seed inputs for `export_api` as the bytes
//!   `Arbitrary` decodes back to the same operations.
//! - [`plan`]: arbitrary bytes → a small plan → the full deterministic
//!   simulation with the oracle.

pub mod export_api;
pub mod plan;
pub mod seed;
