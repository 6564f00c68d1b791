//! The grid wire format: MinIO's envelope, its trailers, merged batches and
//! the structured payloads.
//!
//! # Layout
//!
//! Every WebSocket binary message holds one frame:
//!
//! ```text
//! 0x97 mux_id seq deadline_ms handler op flags payload   MessagePack array of 7
//! [32-byte sub-route id]                                  if flags & SUBROUTE
//! [4-byte CRC, little-endian]                             if flags & CRC
//! ```
//!
//! Integers use the smallest MessagePack encoding on write and any encoding
//! in range on read. The payload is a `bin`; an absent payload is an empty
//! `bin` without `PAYLOAD_IS_ZERO`. The CRC is the low 32 bits of xxh3-64
//! (seed 0) over every byte before it, sub-route included. A sub-route id
//! is SHA-256 of the route with byte 0 set to the handler id and byte 1 to
//! zero ([`SubrouteId`]).
//!
//! A merged frame is the header `[0, N, 0, 0, Merged, 0, nil]` followed by
//! N `bin` values, each a complete inner frame with its own trailers
//! ([`Frame::Merged`], [`MergedWriter`]).
//!
//! The handshake payloads are MessagePack maps keyed by MinIO's field
//! names; unknown keys are skipped ([`Connect`], [`ConnectResponse`],
//! [`PingMsg`], [`PongMsg`]). Times are msgp's extension type 5: 8 bytes of
//! seconds and 4 of nanoseconds, big-endian.
//!
//! # Extensions (gridmux only; a MinIO peer would not understand them)
//!
//! | what | MinIO | gridmux |
//! |---|---|---|
//! | cancel a single request | not propagated | [`Op::CANCEL_REQUEST`] (18), mux id of the request |
//! | `UnblockSrvMux` / `UnblockClMux` payload | none: one credit each | optional uint: the credit count (absent = 1) |
//! | `ConnectMux` payload | application bytes | uint receive window of the opener, then the application bytes |
//! | `AckMux` payload | none | uint receive window of the server (0 for no input) |
//! | error payloads | plain string | map `{"Error": text, "Code": uint}` ([`ErrorPayload`]); a plain string still decodes |
//! | per-mux `seq` | every mux message takes the next number | only ordered messages (open, ack, data, EOF) take one and are checked; credits, pings and disconnects carry the current number unchecked, because they overtake queued data |
//! | upgrade request | `Authorization: Bearer <JWT over sender, receiver, time>` | `Authorization: Bearer <hex HMAC>` over standing, sender, receiver, time and `Sec-WebSocket-Key` (a filter only), `X-Gridmux-Host`, `X-Gridmux-Time` (ns), `X-Gridmux-Role: client` for clients |
//! | `101` answer | plain | `X-Gridmux-Nonce` (32 random bytes, hex) and `X-Gridmux-Node` (the acceptor's name) |
//! | `Connect` map | `ID`, `Host`, `Time`, `Token` | `ID`, `Host`, `Time`, `Nonce` (bin 32), `Proof` (bin 32), `Client` (bool, only when true); see [`crate::auth::link`] |
//! | `ConnectResponse` map | `ID`, `Accepted`, `RejectedReason` | the same plus `Proof` (bin 32) over the set-up and the verdict; an unauthenticated dialer gets only a Close frame |
//!
//! Golden vectors of both set-up maps are in this module's tests
//! (`golden_connect`, `golden_connect_response`).
//!
//! Each receiver announces its own window, so a caller needs no local copy
//! of a remote handler's capacities.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use gridmux_core::wire::{Flags, Message, Op};
//!
//! let msg = Message {
//!     deadline_ms: 60_000,
//!     handler: 78,
//!     ..Message::new(Op::REQUEST, 1).flags(Flags::EOF).payload(Bytes::from_static(b"hi"))
//! };
//! let mut out = BytesMut::new();
//! msg.encode(true, &mut out);
//! assert_eq!(
//!     &out[..],
//!     [0x97, 0x01, 0x00, 0xcd, 0xea, 0x60, 0x4e, 0x0e, 0x03, 0xc4, 0x02, b'h', b'i',
//!      0xea, 0xbe, 0x91, 0xc7]
//! );
//! let back = Message::decode(&out.freeze()).unwrap();
//! assert_eq!(back.payload.as_deref(), Some(&b"hi"[..]));
//! ```

mod error;
mod message;
mod msgpack;
mod op;
mod payload;
mod subroute;
#[cfg(test)]
mod tests;

pub use error::WireError;
pub use message::{
    Frame, MergedFrames, MergedWriter, Message, CRC_LEN, MAX_HEADER_LEN, SUBROUTE_LEN,
};
pub use op::{Flags, Op};
pub use payload::{
    decode_count, decode_stream_open, encode_count, encode_stream_open, Connect, ConnectResponse,
    ErrorCode, ErrorPayload, PingMsg, PongMsg,
};
pub use subroute::SubrouteId;
