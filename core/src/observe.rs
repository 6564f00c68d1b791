//! Timing records of what a node serves and calls, and the [`Observer`]
//! that receives them (metrics, logs). The core makes the records from
//! the `now` it is given and reads no clock.
//!
//! **Time to first byte** is one definition on every plane: from the
//! moment the request is complete on the serving side to the moment the
//! first byte of its response is handed to the transport (for a link,
//! when [`Link::poll_transmit`](crate::link::Link::poll_transmit) yields
//! it). A response without a body has its status as its first byte (an
//! error answer, a `HEAD`). A request that ends without any response
//! (cancelled, past its deadline, the link lost) has an outcome and a
//! duration, and no TTFB.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use gridmux_core::observe::{Observer, Outcome, RequestServed};
//!
//! #[derive(Debug, Default)]
//! struct Count(AtomicUsize);
//!
//! impl Observer for Count {
//!     fn request_served(&self, r: &RequestServed<'_>) {
//!         if r.outcome == Outcome::Ok {
//!             self.0.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//! }
//! ```

use std::fmt::Debug;
use std::time::Duration;

use crate::wire::SubrouteId;

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Answered (or the stream ended) without error.
    Ok,
    /// The handler answered with an error.
    HandlerError,
    /// Refused before a handler ran: overloaded, or the inbound budget.
    Overloaded,
    /// No handler of that id and sub-route.
    UnknownHandler,
    /// The other side cancelled.
    Canceled,
    /// The deadline passed.
    Timeout,
    /// The link went down first.
    Disconnected,
    /// The peer broke the protocol on this exchange.
    ProtocolError,
}

impl Outcome {
    /// Every outcome, for pre-creating label sets.
    pub const ALL: [Self; 8] = [
        Self::Ok,
        Self::HandlerError,
        Self::Overloaded,
        Self::UnknownHandler,
        Self::Canceled,
        Self::Timeout,
        Self::Disconnected,
        Self::ProtocolError,
    ];

    /// A label value: `ok`, `handler_error`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::HandlerError => "handler_error",
            Self::Overloaded => "overloaded",
            Self::UnknownHandler => "unknown_handler",
            Self::Canceled => "canceled",
            Self::Timeout => "timeout",
            Self::Disconnected => "disconnected",
            Self::ProtocolError => "protocol_error",
        }
    }

    /// Its index in [`ALL`](Self::ALL).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A single request served for a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestServed<'a> {
    /// The peer that asked.
    pub peer: &'a str,
    /// The handler id.
    pub handler: u8,
    /// Its sub-route, if any.
    pub subroute: Option<SubrouteId>,
    /// How it ended.
    pub outcome: Outcome,
    /// Time to first byte; `None` when no response went out.
    pub ttfb: Option<Duration>,
    /// From the request complete to its end (its response handed over,
    /// or the end without one).
    pub duration: Duration,
    /// Payload bytes of the request.
    pub bytes_in: u64,
    /// Payload bytes of the response.
    pub bytes_out: u64,
}

/// A stream served for a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamServed<'a> {
    /// The peer that opened it.
    pub peer: &'a str,
    /// The handler id.
    pub handler: u8,
    /// Its sub-route, if any.
    pub subroute: Option<SubrouteId>,
    /// How it ended.
    pub outcome: Outcome,
    /// From the open complete to the handler's first message (or its
    /// EOF, for a stream that sends none) handed over; `None` if none was.
    pub ttfb: Option<Duration>,
    /// From the open to the end.
    pub duration: Duration,
    /// Messages received, after the open.
    pub msgs_in: u64,
    /// Messages sent.
    pub msgs_out: u64,
    /// Payload bytes received, the open's included.
    pub bytes_in: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
}

/// A single request made to a peer, seen by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallMade<'a> {
    /// The peer called.
    pub peer: &'a str,
    /// The handler id.
    pub handler: u8,
    /// How it ended.
    pub outcome: Outcome,
    /// From the request queued to its answer (or its end).
    pub latency: Duration,
}

/// How an HTTP response's body went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyPath {
    /// No body (a `HEAD`, an empty body, or a status without one).
    None,
    /// From memory.
    Memory,
    /// A file region by `sendfile`.
    Sendfile,
    /// A file region by the copy (`pread` + `write`).
    Copy,
}

impl BodyPath {
    /// A label value: `none`, `memory`, `sendfile`, `copy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Memory => "memory",
            Self::Sendfile => "sendfile",
            Self::Copy => "copy",
        }
    }
}

/// An HTTP request served on the node's port (health, file plane,
/// metrics, refusals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpServed<'a> {
    /// What was asked for, from a bounded set: `health`, `metrics`,
    /// `upgrade`, `files/<route>` for a registered route, `files` for any
    /// other, `other`.
    pub route: &'a str,
    /// `GET`, `HEAD`, or `other`.
    pub method: &'static str,
    /// The status answered.
    pub status: u16,
    /// From the request head received to the first byte of the answer
    /// (its status line) handed to the socket; `None` if nothing went out.
    pub ttfb: Option<Duration>,
    /// From the request head received to the last byte handed over (or
    /// the end).
    pub duration: Duration,
    /// Body bytes sent.
    pub bytes_out: u64,
    /// How the body went out.
    pub body: BodyPath,
}

/// An HTTP method as a bounded label: `GET`, `HEAD` or `other`.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        _ => "other",
    }
}

/// What happened to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent<'a> {
    /// It came up (authenticated both ways).
    Connected {
        /// The peer.
        peer: &'a str,
    },
    /// It went down after being up.
    Lost {
        /// The peer.
        peer: &'a str,
        /// Why, as a label value (`closed`, `timeout`, `protocol`, …).
        reason: &'static str,
    },
    /// An attempt to dial the peer failed (or its link lived too briefly
    /// to count); the dialer waits before the next one.
    DialFailed {
        /// The peer.
        peer: &'a str,
    },
    /// The link's load, sampled at each link ping (every ping interval).
    Load {
        /// The peer.
        peer: &'a str,
        /// Streams open, served and ours.
        open_streams: usize,
        /// Requests open, served and ours.
        open_requests: usize,
        /// Bytes queued for sending.
        queued_bytes: usize,
        /// Payload bytes of the peer's exchanges the application holds
        /// (counted against `LinkConfig::max_inbound_bytes`).
        inbound_bytes: usize,
    },
    /// A link ping came back.
    PingRtt {
        /// The peer.
        peer: &'a str,
        /// The round trip.
        rtt: Duration,
    },
}

/// Receives records as things end. Every method has a no-op default.
/// Called with the link's state locked, on the hot path: keep it cheap
/// (no allocation, no global lock).
pub trait Observer: Send + Sync + Debug {
    /// Whether it wants records at all; when `false` the core keeps no
    /// bookkeeping for it (the default is `true`).
    fn enabled(&self) -> bool {
        true
    }
    /// A request served for a peer ended.
    fn request_served(&self, record: &RequestServed<'_>) {
        let _ = record;
    }
    /// A stream served for a peer ended.
    fn stream_served(&self, record: &StreamServed<'_>) {
        let _ = record;
    }
    /// A request to a peer ended.
    fn call_made(&self, record: &CallMade<'_>) {
        let _ = record;
    }
    /// A link event (rare: connections, losses, pings).
    fn link_event(&self, event: &LinkEvent<'_>) {
        let _ = event;
    }
    /// A WebSocket message went to `peer` carrying `messages` grid
    /// messages (more than one: a merged batch). Called for every message
    /// sent: the hottest of these methods.
    fn batch_sent(&self, peer: &str, messages: usize) {
        let _ = (peer, messages);
    }
    /// An HTTP request on the node's port ended.
    fn http_served(&self, record: &HttpServed<'_>) {
        let _ = record;
    }
}

/// The observer that wants nothing (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn enabled(&self) -> bool {
        false
    }
}
