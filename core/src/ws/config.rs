//! [`Config`]: limits and timeouts of an endpoint.

use std::time::Duration;

/// Limits and timeouts of an [`Endpoint`](super::Endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest frame payload accepted (larger: close 1009).
    pub max_frame_size: usize,
    /// Largest message accepted, over all its fragments (larger: close 1009).
    pub max_message_size: usize,
    /// Largest handshake head accepted (larger: HTTP 431 / failure).
    pub max_handshake_size: usize,
    /// Most bytes of data messages queued for sending; past it
    /// [`Endpoint::send`](super::Endpoint::send) returns [`SendError::QueueFull`](super::SendError::QueueFull). An empty queue
    /// always takes one message, so a message larger than this can be sent.
    pub max_send_queue: usize,
    /// Time allowed for the opening handshake.
    pub handshake_timeout: Duration,
    /// Time allowed for the peer to answer our Close (and, for a client, for
    /// the server to close the TCP connection afterwards).
    pub close_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            max_handshake_size: 16 << 10,
            max_send_queue: 64 << 20,
            handshake_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(5),
        }
    }
}
