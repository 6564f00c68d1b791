//! The errors of the async API.

use std::io;

use gridmux_core::link::{CallError, CommandError};
use gridmux_core::wire::ErrorCode;

/// Why a request, call or stream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer is not connected, or its link went down.
    #[error("remote disconnected")]
    Disconnected,
    /// The deadline passed.
    #[error("deadline exceeded")]
    Timeout,
    /// The exchange was cancelled (by the remote, or by shutdown).
    #[error("canceled")]
    Canceled,
    /// The remote has no handler with that id and sub-route.
    #[error("unknown handler")]
    UnknownHandler,
    /// The remote serves too many requests at once; try again later.
    #[error("remote overloaded")]
    Overloaded,
    /// The handler failed; `message` is its error text.
    #[error("remote error ({code:?}): {message}")]
    Remote {
        /// What kind of error.
        code: ErrorCode,
        /// The text the remote sent.
        message: String,
    },
    /// The name is not one of the grid's peers.
    #[error("unknown peer {0:?}")]
    UnknownPeer(String),
    /// The payload is larger than the configured maximum.
    #[error("payload of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Too many exchanges or queued bytes on the link; retry later.
    #[error("local limit reached: {0}")]
    Busy(String),
    /// Our direction of the stream is finished.
    #[error("stream finished")]
    Finished,
    /// A typed payload did not encode or decode.
    #[error("codec: {0}")]
    Codec(String),
    /// The peer broke the protocol on this exchange.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The grid is shutting down.
    #[error("grid shut down")]
    Shutdown,
}

impl Error {
    /// The variant's name (`"Timeout"`, `"UnknownHandler"`, …), for
    /// scripts and exit messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Disconnected => "Disconnected",
            Self::Timeout => "Timeout",
            Self::Canceled => "Canceled",
            Self::UnknownHandler => "UnknownHandler",
            Self::Overloaded => "Overloaded",
            Self::Remote { .. } => "Remote",
            Self::UnknownPeer(_) => "UnknownPeer",
            Self::TooLarge { .. } => "TooLarge",
            Self::Busy(_) => "Busy",
            Self::Finished => "Finished",
            Self::Codec(_) => "Codec",
            Self::Protocol(_) => "Protocol",
            Self::Shutdown => "Shutdown",
        }
    }
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Disconnected => Self::Disconnected,
            CallError::Timeout => Self::Timeout,
            CallError::Canceled => Self::Canceled,
            CallError::Protocol(m) => Self::Protocol(m),
            CallError::Overloaded(_) => Self::Overloaded,
            CallError::Remote { code, message } => match code {
                ErrorCode::UnknownHandler => Self::UnknownHandler,
                ErrorCode::Overloaded => Self::Overloaded,
                ErrorCode::Timeout => Self::Timeout,
                ErrorCode::Canceled => Self::Canceled,
                ErrorCode::Disconnected => Self::Disconnected,
                code => Self::Remote { code, message },
            },
        }
    }
}

impl From<CommandError> for Error {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::NotConnected | CommandError::UnknownMux => Self::Disconnected,
            CommandError::DeadlinePassed => Self::Timeout,
            CommandError::TooLarge { size, max } => Self::TooLarge { size, max },
            CommandError::Finished => Self::Finished,
            CommandError::InvalidHandler => Self::UnknownHandler,
            e @ (CommandError::TooManyMuxes(_)
            | CommandError::QueueFull(_)
            | CommandError::NoCredit) => Self::Busy(e.to_string()),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Disconnected => io::ErrorKind::NotConnected,
            Error::Timeout => io::ErrorKind::TimedOut,
            Error::Canceled | Error::Shutdown => io::ErrorKind::Interrupted,
            Error::UnknownHandler | Error::UnknownPeer(_) => io::ErrorKind::NotFound,
            Error::Overloaded | Error::Busy(_) => io::ErrorKind::WouldBlock,
            Error::TooLarge { .. } | Error::Codec(_) => io::ErrorKind::InvalidData,
            Error::Finished => io::ErrorKind::BrokenPipe,
            Error::Remote { .. } | Error::Protocol(_) => io::ErrorKind::Other,
        };
        Self::new(kind, e)
    }
}

/// What a handler returns when it fails: the text goes to the caller as
/// [`Error::Remote`] with [`ErrorCode::Application`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl HandlerError {
    /// An error with this text.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl From<String> for HandlerError {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for HandlerError {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}
