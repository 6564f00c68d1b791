//! Test support for gridmux: the blocking socket loop of the WebSocket
//! conformance harnesses, and helpers shared by the integration tests.
pub mod ws_loop;
