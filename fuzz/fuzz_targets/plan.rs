//! Whole-plan fuzzing: arbitrary bytes → a small plan of a shipped scenario
//! → the full deterministic simulation with the oracle; a violation is a
//! crash. Built with `--features planted-bugs`, the input also plants one
//! bug of the catalogue. Replay a crash with
//! `cargo sim replay --fuzz-artifact fuzz/artifacts/plan/crash-…` (or
//! `cargo sim-planted …` for the planted build). Logic:
//! `crosstalk_sim::fuzzing::plan`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| crosstalk_sim::fuzzing::plan::run(data));
