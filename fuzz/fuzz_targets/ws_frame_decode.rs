#![no_main]
//! Body: `gridmux_core::fuzzing::ws_frame_decode`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| gridmux_core::fuzzing::ws_frame_decode(data));
