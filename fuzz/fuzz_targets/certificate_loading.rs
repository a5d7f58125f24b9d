//! Fuzz target `certificate_loading`: see `harness::certificate_loading` for the input format and the properties checked.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::certificate_loading(data));
