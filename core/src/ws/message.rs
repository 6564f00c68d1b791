//! Complete data messages.

use bytes::Bytes;

use super::{InvalidUtf8, Utf8Validator};

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Binary,
}

/// A complete data message. A text message's payload is always valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    kind: MessageKind,
    payload: Bytes,
}

impl Message {
    /// A binary message.
    pub fn binary(payload: impl Into<Bytes>) -> Self {
        Self {
            kind: MessageKind::Binary,
            payload: payload.into(),
        }
    }

    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            kind: MessageKind::Text,
            payload: Bytes::from(text.into()),
        }
    }

    /// A text message from bytes, which must be valid UTF-8.
    pub fn text_from_bytes(payload: Bytes) -> Result<Self, InvalidUtf8> {
        let mut v = Utf8Validator::new();
        v.feed(&payload)?;
        v.finish()?;
        Ok(Self {
            kind: MessageKind::Text,
            payload,
        })
    }

    /// Built from a payload the caller has already validated.
    pub(crate) fn validated(kind: MessageKind, payload: Bytes) -> Self {
        Self { kind, payload }
    }

    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// The payload bytes.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The payload, consuming the message.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// The text of a text message (`None` for binary).
    pub fn as_text(&self) -> Option<&str> {
        match self.kind {
            MessageKind::Text => std::str::from_utf8(&self.payload).ok(),
            MessageKind::Binary => None,
        }
    }
}
