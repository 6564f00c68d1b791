//! Test support for gridmux: the deterministic cluster simulation, the
//! shared pieces of the WebSocket conformance harnesses, and seeded
//! corpora for the fuzz bodies.
pub mod corpus;
pub mod harness;
pub mod sim;
pub mod twin;
