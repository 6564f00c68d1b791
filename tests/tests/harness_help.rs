//! The harness binaries answer `--help` with their usage and exit at once,
//! instead of starting (a server, a client loop, a simulation).

use std::process::Command;
use std::time::{Duration, Instant};

fn help_of(bin: &str, expected: &str) {
    let start = Instant::now();
    let out = Command::new(bin).arg("--help").output().unwrap();
    assert!(out.status.success(), "{bin}: {:?}", out.status);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(expected), "{bin} printed {text:?}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{bin} started instead"
    );
}

#[test]
fn harness_binaries_print_their_usage() {
    help_of(env!("CARGO_BIN_EXE_sim"), "sim --seeds N");
    help_of(env!("CARGO_BIN_EXE_ws-echo"), "ws-echo --listen");
    help_of(
        env!("CARGO_BIN_EXE_ws-autobahn-client"),
        "ws-autobahn-client --server",
    );
}
