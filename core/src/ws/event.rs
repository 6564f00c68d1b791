//! What an endpoint reports: [`Event`], [`Handshake`] and [`CloseCause`].

use bytes::Bytes;

use super::handshake::{UpgradeRequest, UpgradeResponse};
use super::{CloseCode, Message, ProtocolError};

/// The completed opening handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// Server side: the client's request.
    Server(UpgradeRequest),
    /// Client side: the server's answer.
    Client(UpgradeResponse),
    /// The endpoint was created on an already upgraded connection.
    Preupgraded,
}

/// How the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseCause {
    /// The close handshake completed.
    Clean {
        /// The code in the peer's Close frame, if it had one.
        code: Option<CloseCode>,
        /// The reason in the peer's Close frame.
        reason: String,
        /// We sent the first Close frame.
        initiated_locally: bool,
    },
    /// We failed the connection because the peer broke the protocol.
    Failed(ProtocolError),
    /// The opening handshake did not finish in time.
    HandshakeTimeout,
    /// The peer did not answer our Close in time.
    CloseTimeout,
    /// The transport ended without a close handshake (close code 1006).
    Abnormal,
}

/// Something the application should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The opening handshake completed; messages may flow.
    Open(Handshake),
    /// A complete data message.
    Message(Message),
    /// A ping arrived (the pong is already queued).
    Ping(Bytes),
    /// A pong arrived.
    Pong(Bytes),
    /// The connection is over: write out what `poll_transmit` still yields,
    /// then close the socket. This is the last event.
    Closed(CloseCause),
}
