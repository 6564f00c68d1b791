//! Close codes (RFC 6455 §7.4) and close-frame payloads.

use bytes::{BufMut, Bytes, BytesMut};

/// A close status code as carried in a Close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away.
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: closed without a Close frame (never sent on the wire).
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: message data inconsistent with its type (e.g. invalid UTF-8 text).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: message too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1011: unexpected condition on the server.
    pub const INTERNAL_ERROR: Self = Self(1011);

    /// Whether this code may appear in a Close frame on the wire.
    ///
    /// Valid: 1000–1003, 1007–1014 (registered with IANA) and 3000–4999
    /// (libraries, frameworks and applications). 1004–1006 and 1015 are
    /// reserved or local-only; everything else is unassigned.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a received Close frame payload is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClosePayloadError {
    /// A one-byte payload cannot hold a status code.
    #[error("close payload of 1 byte")]
    Truncated,
    /// The status code may not be sent on the wire.
    #[error("close code {0} is not allowed on the wire")]
    InvalidCode(u16),
    /// The reason is not UTF-8.
    #[error("close reason is not valid UTF-8")]
    InvalidReason,
}

impl ClosePayloadError {
    /// The close code with which to fail the connection.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidReason => CloseCode::INVALID_PAYLOAD,
            Self::Truncated | Self::InvalidCode(_) => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// Parses a received Close payload into its code (if any) and reason.
pub fn parse_close_payload(
    payload: &[u8],
) -> Result<(Option<CloseCode>, String), ClosePayloadError> {
    match payload {
        [] => Ok((None, String::new())),
        [_] => Err(ClosePayloadError::Truncated),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_sendable() {
                return Err(ClosePayloadError::InvalidCode(code.0));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| ClosePayloadError::InvalidReason)?;
            Ok((Some(code), reason.to_owned()))
        }
    }
}

/// Builds a Close payload; the reason is cut at a character boundary so the
/// payload fits a control frame (125 bytes).
pub fn close_payload(code: CloseCode, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut buf = BytesMut::with_capacity(2 + end);
    buf.put_u16(code.0);
    buf.put_slice(&reason.as_bytes()[..end]);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_ranges_follow_rfc_and_iana() {
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(ok).is_sendable(), "{ok}");
        }
        for bad in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(bad).is_sendable(), "{bad}");
        }
    }

    #[test]
    fn parses_payloads() {
        assert_eq!(parse_close_payload(b""), Ok((None, String::new())));
        assert_eq!(
            parse_close_payload(b"\x03"),
            Err(ClosePayloadError::Truncated)
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8bye"),
            Ok((Some(CloseCode::NORMAL), "bye".to_owned()))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xed"),
            Err(ClosePayloadError::InvalidCode(1005))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8\xff"),
            Err(ClosePayloadError::InvalidReason)
        );
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let reason = "é".repeat(100);
        let p = close_payload(CloseCode::NORMAL, &reason);
        assert!(p.len() <= 125);
        assert!(parse_close_payload(&p).is_ok());
    }
}
