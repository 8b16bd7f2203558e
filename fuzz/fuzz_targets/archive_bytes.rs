//! Archive reader: arbitrary bytes never panic it, and what it accepts is
//! consistent. Logic: `crosstalk_export::fuzzing::archive_bytes`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| crosstalk_export::fuzzing::archive_bytes(data));
