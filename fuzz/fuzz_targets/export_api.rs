//! Store and export routers in process, driven by arbitrary request
//! sequences across several accounts: never a panic, a 5xx without a fault,
//! an error without a JSON body, nor a response carrying another account's
//! recording. Logic: `crosstalk_sim::fuzzing::export_api`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| crosstalk_sim::fuzzing::export_api::run(data));
