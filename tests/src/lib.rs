//! Test support for gridmux: the deterministic cluster simulation, the
//! shared pieces of the WebSocket conformance harnesses, seeded corpora
//! for the fuzz bodies, and the rustls side of a peer that is not gridmux.
pub mod corpus;
pub mod harness;
pub mod peer_tls;
pub mod sim;
pub mod twin;
