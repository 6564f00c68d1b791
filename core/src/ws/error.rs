//! Errors of the WebSocket endpoint.

use super::{CloseCode, ClosePayloadError, FrameError, HandshakeError, InvalidUtf8};

/// Why the endpoint failed the connection (RFC 6455 §7.1.7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The opening handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// A frame violates the framing rules.
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    /// A text message is not valid UTF-8.
    #[error("text message: {0}")]
    Utf8(#[from] InvalidUtf8),
    /// A received Close frame is invalid.
    #[error("close frame: {0}")]
    Close(#[from] ClosePayloadError),
    /// A continuation frame arrived with no message in progress.
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new data message started before the previous one ended.
    #[error("new message started while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A message exceeds the configured size.
    #[error("message of at least {len} bytes exceeds the limit of {max}")]
    MessageTooBig {
        /// Bytes of the message announced so far.
        len: u64,
        /// Configured maximum.
        max: usize,
    },
}

impl ProtocolError {
    /// The close code with which to fail the connection.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::Handshake(_) => CloseCode::PROTOCOL_ERROR,
            Self::Frame(e) => e.close_code(),
            Self::Utf8(_) => CloseCode::INVALID_PAYLOAD,
            Self::Close(e) => e.close_code(),
            Self::UnexpectedContinuation | Self::ExpectedContinuation => CloseCode::PROTOCOL_ERROR,
            Self::MessageTooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
        }
    }
}

/// Why a message, ping or close could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The connection is not open (handshake pending, closing or closed).
    #[error("the connection is not open")]
    NotOpen,
    /// The send queue is full; drain `poll_transmit` first.
    #[error("send queue full: {queued} queued, limit {max}")]
    QueueFull {
        /// Bytes (for messages) or pings already queued.
        queued: usize,
        /// Configured maximum.
        max: usize,
    },
    /// A ping or close payload over 125 bytes.
    #[error("control payload of {0} bytes (max 125)")]
    ControlTooLong(usize),
    /// A close code that may not be sent.
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(CloseCode),
}
