#![no_main]
//! Body: `gridmux_core::fuzzing::mux_ops`, on a fake clock starting now.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gridmux_core::fuzzing::mux_ops(data, std::time::Instant::now())
});
