//! Bodies of the cargo-fuzz targets in `fuzz/`, as plain functions, and the
//! in-memory [`LinkPair`] they (and the twin tests) drive.
//!
//! Each body takes arbitrary bytes and panics only if an invariant breaks,
//! so the same bodies run under libFuzzer and, on stable, over seeded
//! random inputs in `tests/`. Enabled by the `fuzzing` feature.

mod http;
mod link;
mod pair;
mod setup;
mod wire;
mod ws;

pub use http::http_server;
pub use link::{link_input, mux_ops, run_program, ws_frame, MuxOp, MuxProgram};
pub use pair::LinkPair;
pub use setup::link_setup;
pub use wire::wire_decode;
pub use ws::{ws_endpoint, ws_frame_decode, ws_handshake, CountingRng};
