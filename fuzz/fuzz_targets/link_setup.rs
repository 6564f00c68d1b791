#![no_main]
//! Body: `gridmux_core::fuzzing::link_setup`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gridmux_core::fuzzing::link_setup(data, std::time::Instant::now());
});
