#![no_main]
//! Body: `gridmux_core::fuzzing::ws_endpoint`, on a fake clock starting now.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gridmux_core::fuzzing::ws_endpoint(data, std::time::Instant::now())
});
