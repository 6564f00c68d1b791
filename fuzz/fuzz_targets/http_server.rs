#![no_main]
//! Body: `gridmux_core::fuzzing::http_server`, on a fake clock starting now.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gridmux_core::fuzzing::http_server(data, std::time::Instant::now())
});
