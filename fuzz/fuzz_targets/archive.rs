//! The packager end to end: arbitrary recordings and an export request →
//! packager → parse → exactly the model's set for that subject. Logic:
//! `crosstalk_export::fuzzing::archive`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| crosstalk_export::fuzzing::archive(data));
