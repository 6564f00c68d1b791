#![no_main]
//! Body: `gridmux_core::fuzzing::wire_decode`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| gridmux_core::fuzzing::wire_decode(data));
