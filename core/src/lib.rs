//! The sans-IO core of gridmux.
//!
//! Nothing here touches a socket, a clock or a runtime: every input arrives
//! as a method call with an explicit `now`, every output leaves by polling.
//! Adapters (tokio, smol, or a plain blocking loop) move the bytes.
//!
//! - [`ws`]: a complete RFC 6455 WebSocket endpoint in both roles;
//! - [`wire`]: the grid envelope (MinIO's MessagePack layout) and payloads;
//! - [`mux`] and [`link`]: one peer link — the authenticated set-up, then
//!   requests and flow-controlled streams with deadlines, cancellation and
//!   keepalive ([`link::Link`] has a complete example);
//! - [`cluster`]: who dials whom, and when to retry;
//! - [`auth`]: per-purpose keys from the cluster secrets, link set-up proofs, signed HTTP requests;
//! - [`http`]: the HTTP/1.1 server side of the node's port (heads, responses,
//!   keep-alive, upgrade hand-off).
//!
//! ```
//! use std::time::Instant;
//! use bytes::BytesMut;
//! use gridmux_core::ws::{Config, Endpoint, Event, Transmit};
//!
//! let now = Instant::now();
//! let mut server = Endpoint::server(Config::default(), now);
//! let mut input = BytesMut::from(
//!     &b"GET /chat HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\n\
//!        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!        Sec-WebSocket-Version: 13\r\n\r\n"[..],
//! );
//! server.handle_input(now, &mut input);
//! let mut out = Transmit::new();
//! while server.poll_transmit(now, &mut out) {}
//! assert!(out.to_vec().starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! assert!(matches!(server.poll_event(), Some(Event::Open(_))));
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(fuzzing), deny(missing_docs))]
#![deny(missing_debug_implementations)]

pub mod auth;
pub mod cluster;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod link;
pub mod mux;
pub mod observe;
pub mod wire;
pub mod ws;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
