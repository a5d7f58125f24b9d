//! Fuzz target `manager_response`: see `harness::manager_response` for the input format and the properties checked.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::manager_response(data));
