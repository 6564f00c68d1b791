#![no_main]
//! Body: `gridmux_core::fuzzing::link_input`, on a fake clock starting now.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gridmux_core::fuzzing::link_input(data, std::time::Instant::now())
});
