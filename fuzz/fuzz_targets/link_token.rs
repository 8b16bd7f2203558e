//! Link tokens: never a panic, never a token accepted that was not minted
//! for that subject and export. Logic: `crosstalk_export::fuzzing::link_token`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| crosstalk_export::fuzzing::link_token(data));
