//! A minimal HTTP/1.1 server side for the node's one port: request heads
//! (httparse, with size and header-count limits), responses, and a
//! keep-alive connection state machine with a head timeout that hands
//! WebSocket upgrades over to [`crate::link`]. Requests carry no bodies
//! (the grid's HTTP endpoints are `GET`/`HEAD`); one with a body is refused.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::BytesMut;
//! use gridmux_core::http::{Event, Limits, Response, ServerConnection};
//! use gridmux_core::ws::Transmit;
//!
//! let now = Instant::now();
//! let mut conn = ServerConnection::new(Limits::default(), Duration::from_secs(5), now);
//! conn.handle_input(now, &mut BytesMut::from(&b"GET /health HTTP/1.1\r\nHost: n\r\n\r\n"[..]));
//! let Some(Event::Request(head)) = conn.poll_event() else { panic!() };
//! assert_eq!(head.path(), "/health");
//! conn.respond(now, &Response::text(200, "ok"));
//! let mut out = Transmit::new();
//! conn.poll_transmit(&mut out);
//! assert!(out.to_vec().starts_with(b"HTTP/1.1 200 OK\r\n"));
//! ```

mod client;
mod connection;
pub mod files;
#[cfg(test)]
mod files_tests;
mod range;
mod request;
mod response;
#[cfg(test)]
mod tests;

pub use crate::ws::handshake::HeadScanner;
pub use client::{parse_response, ResponseHead};
pub use connection::{CloseReason, Event, ServerConnection};
pub use range::RangeRequest;
pub use request::{parse_request, Header, Limits, RequestHead};
pub use response::{reason, Response};

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Not a well-formed request.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The head exceeds the limits.
    #[error("request head larger than {max} bytes or {max_headers} headers")]
    HeadTooLarge {
        /// Byte limit.
        max: usize,
        /// Header-count limit.
        max_headers: usize,
    },
    /// Not HTTP/1.0 or 1.1.
    #[error("HTTP version not supported")]
    Version,
    /// The request has a body; none of our endpoints takes one.
    #[error("request bodies are not accepted")]
    BodyNotAccepted,
}

impl HttpError {
    /// The status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) => 400,
            Self::HeadTooLarge { .. } => 431,
            Self::Version => 505,
            Self::BodyNotAccepted => 413,
        }
    }
}
