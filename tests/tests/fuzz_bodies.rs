//! Runs every cargo-fuzz body of `gridmux_core::fuzzing` over a seeded random
//! corpus on stable (at least 10,000 inputs each). Set `GRIDMUX_FUZZ_INPUTS`
//! for more and `GRIDMUX_FUZZ_SEED` to explore another corpus.

use gridmux_core::fuzzing;
use gridmux_tests::corpus::{self, Target};

fn inputs() -> u64 {
    std::env::var("GRIDMUX_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn seed() -> u64 {
    std::env::var("GRIDMUX_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6772_6964)
}

fn run(name: &str, target: Target, body: fn(&[u8])) {
    let (seed, n) = (seed(), inputs());
    for index in 0..n {
        let input = corpus::input(target, seed, index);
        let outcome = std::panic::catch_unwind(|| body(&input));
        assert!(
            outcome.is_ok(),
            "{name} panicked on input {index} of seed {seed}: {input:02x?}\n\
             replay: GRIDMUX_FUZZ_SEED={seed} cargo test -p gridmux-tests --test fuzz_bodies {name}"
        );
    }
}

#[test]
fn ws_frame_decode() {
    run(
        "ws_frame_decode",
        Target::FrameDecode,
        fuzzing::ws_frame_decode,
    );
}

#[test]
fn ws_handshake() {
    run("ws_handshake", Target::Handshake, fuzzing::ws_handshake);
}

#[test]
fn ws_endpoint() {
    run("ws_endpoint", Target::Endpoint, |data| {
        fuzzing::ws_endpoint(data, std::time::Instant::now());
    });
}

#[test]
fn wire_decode() {
    run("wire_decode", Target::WireDecode, fuzzing::wire_decode);
}

#[test]
fn link_input() {
    run("link_input", Target::LinkInput, |data| {
        fuzzing::link_input(data, std::time::Instant::now());
    });
}

#[test]
fn mux_ops() {
    run("mux_ops", Target::MuxOps, |data| {
        fuzzing::mux_ops(data, std::time::Instant::now());
    });
}

#[test]
fn link_setup() {
    run("link_setup", Target::LinkSetup, |data| {
        fuzzing::link_setup(data, std::time::Instant::now());
    });
}

#[test]
fn http_server() {
    run("http_server", Target::HttpServer, |data| {
        fuzzing::http_server(data, std::time::Instant::now());
    });
}

/// Replays every input that once crashed a body (`tests/fuzz-regressions/<target>/`).
#[test]
fn regressions() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-regressions");
    type Body = fn(&[u8]);
    let bodies: [(&str, Body); 8] = [
        ("ws_frame_decode", fuzzing::ws_frame_decode),
        ("ws_handshake", fuzzing::ws_handshake),
        ("ws_endpoint", |d| {
            fuzzing::ws_endpoint(d, std::time::Instant::now());
        }),
        ("wire_decode", fuzzing::wire_decode),
        ("link_input", |d| {
            fuzzing::link_input(d, std::time::Instant::now());
        }),
        ("mux_ops", |d| {
            fuzzing::mux_ops(d, std::time::Instant::now());
        }),
        ("http_server", |d| {
            fuzzing::http_server(d, std::time::Instant::now());
        }),
        ("link_setup", |d| {
            fuzzing::link_setup(d, std::time::Instant::now());
        }),
    ];
    for (name, body) in bodies {
        let Ok(dir) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in dir.flatten() {
            let input = std::fs::read(entry.path()).unwrap_or_default();
            let outcome = std::panic::catch_unwind(|| body(&input));
            assert!(
                outcome.is_ok(),
                "{name} regression {:?} fails",
                entry.path()
            );
        }
    }
}
