//! Fuzz target `silent_file`: see `harness::silent_file` for the input format and the properties checked.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::silent_file(data));
