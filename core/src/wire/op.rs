//! Operation codes and flag bits of the envelope.

use std::fmt;

/// The operation of a grid message (envelope field 4).
///
/// A newtype rather than an enum so that unknown values survive decoding:
/// the receiver logs and ignores them instead of dropping the link.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Op(u8);

impl Op {
    /// First message of the dialer: a `Connect` map.
    pub const CONNECT: Self = Self(1);
    /// The acceptor's answer: a `ConnectResponse` map.
    pub const CONNECT_RESPONSE: Self = Self(2);
    /// Link ping (mux 0) or stream ping (mux ≠ 0).
    pub const PING: Self = Self(3);
    /// Answer to a ping.
    pub const PONG: Self = Self(4);
    /// Opens a stream.
    pub const CONNECT_MUX: Self = Self(5);
    /// A request or stream could not be started.
    pub const MUX_CONNECT_ERROR: Self = Self(6);
    /// Server → client: the stream ended on the serving side.
    pub const DISCONNECT_CLIENT_MUX: Self = Self(7);
    /// Client → server: the caller cancelled the stream.
    pub const DISCONNECT_SERVER_MUX: Self = Self(8);
    /// A stream message sent by the client (the opener).
    pub const MUX_CLIENT_MSG: Self = Self(9);
    /// A stream message sent by the server.
    pub const MUX_SERVER_MSG: Self = Self(10);
    /// Client → server: credits for the server's messages.
    pub const UNBLOCK_SRV_MUX: Self = Self(11);
    /// Server → client: credits for the client's messages.
    pub const UNBLOCK_CL_MUX: Self = Self(12);
    /// Server → client: the stream exists; always its first message.
    pub const ACK_MUX: Self = Self(13);
    /// A single request.
    pub const REQUEST: Self = Self(14);
    /// The answer to a single request.
    pub const RESPONSE: Self = Self(15);
    /// The peer is going away (defined by MinIO, unused).
    pub const DISCONNECT: Self = Self(16);
    /// A batch of complete frames in one WebSocket message.
    pub const MERGED: Self = Self(17);
    /// **(ext)** Client → server: cancel a single request.
    pub const CANCEL_REQUEST: Self = Self(18);

    /// The op with this numeric value (known or not).
    pub const fn from_u8(value: u8) -> Self {
        Self(value)
    }

    /// The numeric value.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The name of a known op.
    pub const fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 18] = [
            "Connect",
            "ConnectResponse",
            "Ping",
            "Pong",
            "ConnectMux",
            "MuxConnectError",
            "DisconnectClientMux",
            "DisconnectServerMux",
            "MuxClientMsg",
            "MuxServerMsg",
            "UnblockSrvMux",
            "UnblockClMux",
            "AckMux",
            "Request",
            "Response",
            "Disconnect",
            "Merged",
            "CancelRequest",
        ];
        match self.0 {
            1..=18 => Some(NAMES[self.0 as usize - 1]),
            _ => None,
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Op({})", self.0),
        }
    }
}

/// The flag bits of a grid message (envelope field 5).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u8);

impl Flags {
    /// No flag.
    pub const NONE: Self = Self(0);
    /// A 4-byte xxh3 checksum follows the message.
    pub const CRC: Self = Self(0x01);
    /// The sender's direction of the stream ends here.
    pub const EOF: Self = Self(0x02);
    /// Stateless stream (MinIO never implemented them; refused).
    pub const STATELESS: Self = Self(0x04);
    /// The payload is an error.
    pub const PAYLOAD_IS_ERR: Self = Self(0x08);
    /// The payload is present and empty (as opposed to absent).
    pub const PAYLOAD_IS_ZERO: Self = Self(0x10);
    /// A 32-byte sub-route id follows the message (before the CRC).
    pub const SUBROUTE: Self = Self(0x20);

    /// Flags from their byte.
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits)
    }

    /// The byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with the bits of `other` set.
    #[must_use]
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// `self` with the bits of `other` cleared.
    #[must_use]
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.with(rhs)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 6] = ["CRC", "EOF", "SL", "ERR", "ZERO", "SUB"];
        let mut first = true;
        f.write_str("Flags(")?;
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if self.0 & 0xc0 != 0 {
            write!(f, "{}{:#04x}", if first { "" } else { "|" }, self.0 & 0xc0)?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_values_match_minio() {
        let ops = [
            Op::CONNECT,
            Op::CONNECT_RESPONSE,
            Op::PING,
            Op::PONG,
            Op::CONNECT_MUX,
            Op::MUX_CONNECT_ERROR,
            Op::DISCONNECT_CLIENT_MUX,
            Op::DISCONNECT_SERVER_MUX,
            Op::MUX_CLIENT_MSG,
            Op::MUX_SERVER_MSG,
            Op::UNBLOCK_SRV_MUX,
            Op::UNBLOCK_CL_MUX,
            Op::ACK_MUX,
            Op::REQUEST,
            Op::RESPONSE,
            Op::DISCONNECT,
            Op::MERGED,
            Op::CANCEL_REQUEST,
        ];
        for (i, op) in ops.iter().enumerate() {
            assert_eq!(op.get() as usize, i + 1);
        }
        assert_eq!(format!("{:?}", Op::from_u8(99)), "Op(99)");
        assert_eq!(format!("{:?}", Op::REQUEST), "Request");
    }

    #[test]
    fn flag_bits_match_minio() {
        assert_eq!(Flags::CRC.bits(), 0x01);
        assert_eq!(Flags::EOF.bits(), 0x02);
        assert_eq!(Flags::STATELESS.bits(), 0x04);
        assert_eq!(Flags::PAYLOAD_IS_ERR.bits(), 0x08);
        assert_eq!(Flags::PAYLOAD_IS_ZERO.bits(), 0x10);
        assert_eq!(Flags::SUBROUTE.bits(), 0x20);
        assert_eq!(format!("{:?}", Flags::CRC | Flags::EOF), "Flags(CRC|EOF)");
    }
}
