//! Test support for gridmux: the deterministic cluster simulation, the
//! blocking socket loop of the WebSocket conformance harnesses, and seeded
//! corpora for the fuzz bodies.
pub mod corpus;
pub mod sim;
pub mod twin;
pub mod ws_loop;
