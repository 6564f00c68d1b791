//! What a link reports, and why things fail.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::auth::link::Membership;
use crate::mux::MuxId;
use crate::wire::{ErrorCode, ErrorPayload, SubrouteId};
use crate::ws::CloseCause;

/// How an exchange ended, when not with a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The link went down (or the peer vanished from a stream).
    #[error("remote disconnected")]
    Disconnected,
    /// The deadline passed.
    #[error("deadline exceeded")]
    Timeout,
    /// The peer cancelled (a served exchange).
    #[error("canceled by the remote")]
    Canceled,
    /// The serving side answered with an error.
    #[error("remote error ({code:?}): {message}")]
    Remote {
        /// What kind of error.
        code: ErrorCode,
        /// Its text.
        message: String,
    },
    /// The peer broke the mux protocol (sequence or credits); only this
    /// exchange ended.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A stream we serve was shed: the application held too much of the
    /// peer's input (see `LinkConfig::max_inbound_bytes`).
    #[error("shed: {0}")]
    Overloaded(String),
}

impl From<ErrorPayload> for CallError {
    fn from(e: ErrorPayload) -> Self {
        Self::Remote {
            code: e.code,
            message: e.message,
        }
    }
}

/// Why an application command was refused. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The link is not connected.
    #[error("link not connected")]
    NotConnected,
    /// Handler id 0 is reserved.
    #[error("invalid handler id 0")]
    InvalidHandler,
    /// The deadline is less than a millisecond away (or past).
    #[error("deadline already passed")]
    DeadlinePassed,
    /// Too many exchanges are open.
    #[error("too many open exchanges ({0})")]
    TooManyMuxes(usize),
    /// Too many bytes are queued for sending.
    #[error("send queue full ({0} bytes)")]
    QueueFull(usize),
    /// The payload exceeds the configured maximum.
    #[error("payload of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// Configured limit.
        max: usize,
    },
    /// No open exchange with that id (it may have ended already).
    #[error("no such exchange")]
    UnknownMux,
    /// The stream has no credit: wait for [`Event::Writable`].
    #[error("no credit to send")]
    NoCredit,
    /// Our direction of the stream is already finished.
    #[error("stream already finished")]
    Finished,
}

/// Why a link closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The application closed it.
    #[error("closed locally")]
    Local,
    /// The WebSocket layer ended (peer close, protocol error, EOF).
    #[error("websocket: {0:?}")]
    WebSocket(CloseCause),
    /// The peer sent bytes that are not a valid grid message.
    #[error("malformed grid message: {0}")]
    Malformed(String),
    /// Upgrade and `Connect` did not complete in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The acceptor refused our upgrade (HTTP status) or `Connect`.
    #[error("rejected by the remote: {0}")]
    Rejected(String),
    /// We refused an authenticated peer's `Connect` (clock skew, dialer
    /// rule), and told it why.
    #[error("refused the remote: {0}")]
    Refused(String),
    /// The other side did not prove that it holds a cluster secret (or
    /// sent a malformed set-up). The peer is told only "unauthorized";
    /// the reason is for our log.
    #[error("authentication failed: {0}")]
    Unauthenticated(String),
    /// No pong within the pong timeout.
    #[error("no pong for {0:?}")]
    PongTimeout(Duration),
    /// The peer kept sending while not reading our answers: the control
    /// queue outgrew `max_queued_bytes`.
    #[error("control queue overflow ({0} bytes): the peer does not read")]
    Overflow(usize),
    /// Output waited longer than the write-stall timeout.
    #[error("write stalled for {0:?}")]
    WriteStall(Duration),
}

impl LinkError {
    /// A short label of the kind (for metrics): `local`, `websocket`,
    /// `malformed`, `handshake_timeout`, `rejected`, `refused`,
    /// `unauthenticated`, `pong_timeout`, `overflow`, `write_stall`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::WebSocket(_) => "websocket",
            Self::Malformed(_) => "malformed",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::Rejected(_) => "rejected",
            Self::Refused(_) => "refused",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::PongTimeout(_) => "pong_timeout",
            Self::Overflow(_) => "overflow",
            Self::WriteStall(_) => "write_stall",
        }
    }
}

/// Something the application should act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The link is up.
    Connected {
        /// The peer's name.
        remote: String,
        /// The peer's process id (changes when it restarts).
        remote_id: [u8; 16],
        /// Whether the peer is a member of the cluster or a client (a
        /// client is served but never called).
        membership: Membership,
    },
    /// Serve a request; answer with [`Link::respond`](super::Link::respond).
    Request {
        /// The exchange.
        mux: MuxId,
        /// The handler to run.
        handler: u8,
        /// Its sub-route, if any.
        subroute: Option<SubrouteId>,
        /// The request's bytes.
        payload: Bytes,
        /// When the caller stops waiting.
        deadline: Instant,
    },
    /// The answer to one of our requests; the exchange is over.
    Response {
        /// The exchange.
        mux: MuxId,
        /// The answer.
        result: Result<Bytes, CallError>,
    },
    /// Serve a stream.
    StreamOpened {
        /// The exchange.
        mux: MuxId,
        /// The handler to run.
        handler: u8,
        /// Its sub-route, if any.
        subroute: Option<SubrouteId>,
        /// The initial payload.
        payload: Bytes,
        /// When the stream times out, if ever.
        deadline: Option<Instant>,
        /// Whether the caller will send messages.
        has_input: bool,
    },
    /// A stream message; report it with
    /// [`Link::consumed`](super::Link::consumed) once the consumer took it.
    Message {
        /// The stream.
        mux: MuxId,
        /// The message.
        payload: Bytes,
    },
    /// The caller finished its input to a stream we serve.
    InputEnded {
        /// The stream.
        mux: MuxId,
    },
    /// A stream that had no credit can send again; or it learned that the
    /// handler takes no input, and sends now fail with
    /// [`CommandError::Finished`].
    Writable {
        /// The stream.
        mux: MuxId,
    },
    /// A stream ended, or a request we serve was cancelled. For our own
    /// streams `Ok(())` is the server's clean end. Not reported for ends
    /// the application caused (cancel, finish of a served stream).
    Ended {
        /// The exchange.
        mux: MuxId,
        /// How.
        result: Result<(), CallError>,
    },
    /// A link pong arrived.
    Pong {
        /// Round-trip time.
        rtt: Duration,
    },
    /// The link is over; every exchange has ended. Last event.
    Closed(LinkError),
}
