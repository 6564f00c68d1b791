//! Decoding errors of the wire format.

use rmp::Marker;

/// Why bytes could not be decoded as a grid message or payload.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    /// The input ended inside `field`.
    #[error("truncated input in {0}")]
    Truncated(&'static str),
    /// `field` had a MessagePack type it cannot have.
    #[error("unexpected MessagePack type {1:?} for {0}")]
    Type(&'static str, Marker),
    /// `field` holds an integer that does not fit its type.
    #[error("integer out of range for {0}")]
    OutOfRange(&'static str),
    /// `field` is not valid UTF-8.
    #[error("{0} is not valid UTF-8")]
    Utf8(&'static str),
    /// The envelope is not an array of 7 elements.
    #[error("envelope is an array of {0} elements, want 7")]
    ArrayLength(u32),
    /// The CRC trailer does not match the bytes before it.
    #[error("crc mismatch: {given:#010x} (given) != {computed:#010x} (bytes)")]
    CrcMismatch {
        /// The CRC in the trailer.
        given: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// A flag announces a trailer that is missing, or bytes follow the
    /// trailers.
    #[error("trailer: {0}")]
    Trailer(&'static str),
    /// A merged frame inside a merged frame.
    #[error("nested merged frame")]
    NestedMerge,
    /// `field` has a value the protocol does not allow.
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, &'static str),
}
