//! crosstalk's simulator: a seeded turmoil world of people, devices, a
//! recording store and an export service, judged by a watermark oracle.
//!
//! - [`scenario`]: declarative TOML describing a world and its action mix.
//! - [`addresses`]: email addresses as real people have and type them.
//! - [`plan`]: seed + scenario → every action of one run, as plain data.
//! - [`world`]: executes a plan on turmoil hosts ([`net`] is the glue).
//! - [`workload`]: the people and devices, as tasks on client hosts.
//! - [`check`]: the oracle; [`watermark`]: the ground truth it reads.
//! - [`trace`]: the hashed event trace that proves determinism.
//! - [`canary`]: a deliberately leaky wrapper for the harness's self-tests.
//! - [`probe_gate`]: the services' code probes that no seed reached.
//! - [`bench`]: speed as ratios against raw turmoil HTTP, in one process.
//! - [`shrink`]: a failing plan made minimal, same invariant, by replay.
//! - [`report_html`]: a failing run as one self-contained HTML page.
//! - [`cli`]: the `crosstalk` command, one file per subcommand, typed
//!   errors printed only at its edge; [`runner`] runs the seeds of `run`,
//!   `hunt` and `regressions` in parallel, reported in seed order;
//!   [`seeds`] picks them (ranges, budgets, shards), [`vacuity`] judges each
//!   scenario's positive controls, [`report`] writes and merges results;
//!   [`hunt`]: the planted-bug detection benchmark;
//!   [`guard`]: a harness failure as one line (exit 2), never a backtrace.

pub mod addresses;
pub mod bench;
pub mod canary;
pub mod check;
pub mod cli;
pub mod faults;
pub mod fuzzing;
pub mod guard;
pub mod hunt;
pub mod lease_watch;
pub mod load_watch;
pub mod lookup_watch;
pub mod net;
pub mod plan;
pub mod probe_gate;
pub mod report;
pub mod report_html;
pub mod runner;
pub mod scenario;
pub mod seeds;
pub mod shrink;
pub mod streams;
pub mod threads;
pub mod trace;
pub mod upload_watch;
pub mod vacuity;
pub mod watermark;
pub mod workload;
pub mod world;
