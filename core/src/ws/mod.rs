//! RFC 6455 WebSocket, sans-IO.
//!
//! - [`handshake`]: the HTTP upgrade, both sides;
//! - [`FrameDecoder`] / [`FrameEncoder`]: the frame codec;
//! - [`Endpoint`]: one connection's state machine, client or server.
//!
//! Only what RFC 6455 defines is implemented: no extension or subprotocol is
//! negotiated, so frames with reserved bits fail the connection.

mod close;
mod config;
mod endpoint;
mod error;
mod event;
mod frame;
pub mod handshake;
mod mask;
mod message;
mod transmit;
mod utf8;

pub use close::{close_payload, parse_close_payload, CloseCode, ClosePayloadError};
pub use config::Config;
pub use endpoint::Endpoint;
pub use error::{ProtocolError, SendError};
pub use event::{CloseCause, Event, Handshake};
pub use frame::{
    encode_header, frame_len, Frame, FrameDecoder, FrameEncoder, FrameError, FrameHeader, OpCode,
    MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN,
};
pub use handshake::{accept_key, ClientRequest, HandshakeError};
pub use mask::apply_mask;
pub use message::{Message, MessageKind};
pub use transmit::Transmit;
pub use utf8::{InvalidUtf8, Utf8Validator};

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Opened the connection; masks its frames.
    Client,
    /// Accepted the connection; requires masked frames.
    Server,
}

#[cfg(test)]
mod endpoint_tests;
