#![no_main]
//! Body: `gridmux_core::fuzzing::ws_endpoint`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| gridmux_core::fuzzing::ws_endpoint(data));
