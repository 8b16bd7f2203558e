//! crosstalk's simulator: a seeded turmoil world of people, devices, a
//! recording store and an export service, judged by a watermark oracle.
//!
//! - [`scenario`]: declarative TOML describing a world and its action mix.
//! - [`plan`]: seed + scenario → every action of one run, as plain data.
//! - [`world`]: executes a plan on turmoil hosts ([`net`] is the glue).
//! - [`workload`]: the people and devices, as tasks on client hosts.
//! - [`check`]: the oracle; [`watermark`]: the ground truth it reads.
//! - [`trace`]: the hashed event trace that proves determinism.
//! - [`canary`]: a deliberately leaky wrapper for the harness's self-tests.
//! - [`probe_gate`]: the services' code probes that no seed reached.
//! - [`bench`]: speed as ratios against raw turmoil HTTP, in one process.
//! - [`cli`]: the `crosstalk` command; [`guard`]: a harness failure as one
//!   line (exit 2), never a backtrace.

pub mod bench;
pub mod canary;
pub mod check;
pub mod cli;
pub mod faults;
pub mod fuzzing;
pub mod guard;
pub mod hunt;
pub mod net;
pub mod plan;
pub mod probe_gate;
pub mod scenario;
pub mod trace;
pub mod watermark;
pub mod workload;
pub mod world;
