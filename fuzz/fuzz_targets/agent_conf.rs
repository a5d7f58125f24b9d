//! Fuzz target `agent_conf`: see `harness::agent_conf` for the input format and the properties checked.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::agent_conf(data));
