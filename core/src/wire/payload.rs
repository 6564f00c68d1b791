//! Payloads with a structure: the link handshake, pings, errors, and the
//! credit and window counts of our extensions.
//!
//! The MinIO payloads are MessagePack maps keyed by field name; unknown
//! keys are skipped so that either side may add fields.

use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use super::msgpack::{
    put_bin, put_bool, put_map_header, put_nil, put_str, put_time, put_uint, Reader,
};
use super::WireError;
use crate::auth::link::{Nonce, NONCE_LEN};
use crate::auth::{Tag, TAG_LEN};

/// Reads a map, calling `field` for each key; unknown keys are skipped by
/// `field` returning `Ok(false)`.
fn read_map(
    data: &Bytes,
    what: &'static str,
    mut field: impl FnMut(&str, &mut Reader<'_>) -> Result<bool, WireError>,
) -> Result<(), WireError> {
    let mut rd = Reader::new(data, 0);
    let len = rd.map_len(what)?;
    for _ in 0..len {
        let key = rd.str("map key")?;
        if !field(key, &mut rd)? {
            rd.skip()?;
        }
    }
    if !rd.remaining().is_empty() {
        return Err(WireError::Trailer("bytes after the payload map"));
    }
    Ok(())
}

/// The dialer's first message (`Op::CONNECT`) **(ext)**: map `ID`, `Host`,
/// `Time`, `Nonce`, `Proof`, and `Client` when the dialer is a client.
/// MinIO's `Token` (a JWT over sender, receiver and time) is replaced by a
/// proof over both sides' nonces (see [`crate::auth::link`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Random id of the dialing process (changes on restart).
    pub id: [u8; 16],
    /// The dialer's own name, as the acceptor knows it.
    pub host: String,
    /// The dialer's wall-clock time.
    pub time: SystemTime,
    /// The dialer's fresh randomness, which the acceptor's proof covers.
    pub nonce: Nonce,
    /// The dialer's proof over the set-up transcript.
    pub proof: Tag,
    /// Whether the dialer is a client rather than a member.
    pub client: bool,
}

impl Connect {
    /// Encodes the map (`Client` only when set).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(128 + self.host.len());
        put_map_header(&mut out, if self.client { 6 } else { 5 });
        put_str(&mut out, "ID");
        put_bin(&mut out, &self.id);
        put_str(&mut out, "Host");
        put_str(&mut out, &self.host);
        put_str(&mut out, "Time");
        put_time(&mut out, self.time);
        put_str(&mut out, "Nonce");
        put_bin(&mut out, &self.nonce);
        put_str(&mut out, "Proof");
        put_bin(&mut out, &self.proof);
        if self.client {
            put_str(&mut out, "Client");
            put_bool(&mut out, true);
        }
        out.freeze()
    }

    /// Decodes the map; all fields but `Client` are required.
    pub fn decode(data: &Bytes) -> Result<Self, WireError> {
        let (mut id, mut host, mut time) = (None, None, None);
        let (mut nonce, mut proof, mut client) = (None, None, false);
        read_map(data, "Connect", |key, rd| {
            match key {
                "ID" => id = Some(read_fixed::<16>(rd, "ID")?),
                "Host" => host = Some(rd.str("Host")?.to_owned()),
                "Time" => time = Some(rd.time("Time")?),
                "Nonce" => nonce = Some(read_fixed::<NONCE_LEN>(rd, "Nonce")?),
                "Proof" => proof = Some(read_fixed::<TAG_LEN>(rd, "Proof")?),
                "Client" => client = rd.bool("Client")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let missing = |what| WireError::Invalid("Connect", what);
        Ok(Self {
            id: id.ok_or(missing("no ID"))?,
            host: host.ok_or(missing("no Host"))?,
            time: time.ok_or(missing("no Time"))?,
            nonce: nonce.ok_or(missing("no Nonce"))?,
            proof: proof.ok_or(missing("no Proof"))?,
            client,
        })
    }
}

fn read_fixed<const N: usize>(
    rd: &mut Reader<'_>,
    field: &'static str,
) -> Result<[u8; N], WireError> {
    let raw = rd.bin(field)?;
    raw.as_ref()
        .try_into()
        .map_err(|_| WireError::Invalid(field, "wrong length"))
}

/// The acceptor's answer (`Op::CONNECT_RESPONSE`): map `ID`, `Accepted`,
/// `RejectedReason`, and **(ext)** `Proof`, the acceptor's proof over the
/// set-up transcript and this verdict. An unauthenticated dialer gets no
/// answer at all, only a Close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    /// Random id of the accepting process.
    pub id: [u8; 16],
    /// Whether the link is accepted.
    pub accepted: bool,
    /// Why not, when refused.
    pub rejected_reason: String,
    /// The acceptor's proof; `None` only in answers from peers that could
    /// not prove anything (a dialer treats them as unauthenticated).
    pub proof: Option<Tag>,
}

impl ConnectResponse {
    /// Encodes the map (`Proof` only when present).
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(96 + self.rejected_reason.len());
        put_map_header(&mut out, if self.proof.is_some() { 4 } else { 3 });
        put_str(&mut out, "ID");
        put_bin(&mut out, &self.id);
        put_str(&mut out, "Accepted");
        put_bool(&mut out, self.accepted);
        put_str(&mut out, "RejectedReason");
        put_str(&mut out, &self.rejected_reason);
        if let Some(proof) = &self.proof {
            put_str(&mut out, "Proof");
            put_bin(&mut out, proof);
        }
        out.freeze()
    }

    /// Decodes the map; `ID` and `Accepted` are required.
    pub fn decode(data: &Bytes) -> Result<Self, WireError> {
        let (mut id, mut accepted, mut reason, mut proof) = (None, None, String::new(), None);
        read_map(data, "ConnectResponse", |key, rd| {
            match key {
                "ID" => id = Some(read_fixed::<16>(rd, "ID")?),
                "Accepted" => accepted = Some(rd.bool("Accepted")?),
                "RejectedReason" => reason = rd.str("RejectedReason")?.to_owned(),
                "Proof" => proof = Some(read_fixed::<TAG_LEN>(rd, "Proof")?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(Self {
            id: id.ok_or(WireError::Invalid("ConnectResponse", "no ID"))?,
            accepted: accepted.ok_or(WireError::Invalid("ConnectResponse", "no Accepted"))?,
            rejected_reason: reason,
            proof,
        })
    }
}

/// A link ping (`Op::PING`, mux 0): map `t`, the sender's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingMsg {
    /// When the ping was sent.
    pub t: SystemTime,
}

impl PingMsg {
    /// Encodes the map.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(20);
        put_map_header(&mut out, 1);
        put_str(&mut out, "t");
        put_time(&mut out, self.t);
        out.freeze()
    }

    /// Decodes the map.
    pub fn decode(data: &Bytes) -> Result<Self, WireError> {
        let mut t = None;
        read_map(data, "Ping", |key, rd| {
            if key != "t" {
                return Ok(false);
            }
            t = Some(rd.time("t")?);
            Ok(true)
        })?;
        Ok(Self {
            t: t.ok_or(WireError::Invalid("Ping", "no t"))?,
        })
    }
}

/// Answer to a ping (`Op::PONG`): map `nf` (the pinged mux is unknown),
/// `e` (error text or nil) and `t` (the ping's time, echoed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PongMsg {
    /// The pinged mux does not exist.
    pub not_found: bool,
    /// The pinged mux failed.
    pub err: Option<String>,
    /// The time from the ping.
    pub t: Option<SystemTime>,
}

impl PongMsg {
    /// Encodes the map.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(32);
        put_map_header(&mut out, 3);
        put_str(&mut out, "nf");
        put_bool(&mut out, self.not_found);
        put_str(&mut out, "e");
        match &self.err {
            Some(e) => put_str(&mut out, e),
            None => put_nil(&mut out),
        }
        put_str(&mut out, "t");
        match self.t {
            Some(t) => put_time(&mut out, t),
            None => put_nil(&mut out),
        }
        out.freeze()
    }

    /// Decodes the map; every key is optional. An empty payload is an
    /// empty pong.
    pub fn decode(data: &Bytes) -> Result<Self, WireError> {
        let mut pong = Self {
            not_found: false,
            err: None,
            t: None,
        };
        if data.is_empty() {
            return Ok(pong);
        }
        read_map(data, "Pong", |key, rd| {
            match key {
                "nf" => pong.not_found = rd.bool("nf")?,
                "e" => {
                    let e = rd.str("e")?;
                    pong.err = (!e.is_empty()).then(|| e.to_owned());
                }
                "t" if rd.remaining().first() == Some(&0xc0) => return Ok(false),
                "t" => pong.t = Some(rd.time("t")?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(pong)
    }
}

/// **(ext)** Error payload: map `Error` (text, as MinIO's
/// `muxConnectError`) plus `Code` (our [`ErrorCode`] number). Used by
/// `MuxConnectError` and by responses and stream ends with
/// `PAYLOAD_IS_ERR`. A payload that is not a map is read as MinIO's plain
/// error string with code [`ErrorCode::Application`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPayload {
    /// What kind of error.
    pub code: ErrorCode,
    /// Human-readable text.
    pub message: String,
}

/// **(ext)** Error kinds that survive the trip across the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The handler returned an error.
    Application,
    /// No handler is registered under that id and sub-route.
    UnknownHandler,
    /// The deadline passed on the serving side.
    Timeout,
    /// The serving side cancelled.
    Canceled,
    /// The handler panicked.
    HandlerPanicked,
    /// Too many concurrent requests on the link.
    Overloaded,
    /// The peer broke the mux protocol (sequence, credits).
    Protocol,
    /// The exchange was torn down with its link.
    Disconnected,
    /// A code this version does not know.
    Other(u32),
}

impl ErrorCode {
    /// The number on the wire.
    pub fn to_u32(self) -> u32 {
        match self {
            Self::Application => 0,
            Self::UnknownHandler => 1,
            Self::Timeout => 2,
            Self::Canceled => 3,
            Self::HandlerPanicked => 4,
            Self::Overloaded => 5,
            Self::Protocol => 6,
            Self::Disconnected => 7,
            Self::Other(n) => n,
        }
    }

    /// The code for a number on the wire.
    pub fn from_u32(n: u32) -> Self {
        match n {
            0 => Self::Application,
            1 => Self::UnknownHandler,
            2 => Self::Timeout,
            3 => Self::Canceled,
            4 => Self::HandlerPanicked,
            5 => Self::Overloaded,
            6 => Self::Protocol,
            7 => Self::Disconnected,
            n => Self::Other(n),
        }
    }
}

impl ErrorPayload {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Encodes the map.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(24 + self.message.len());
        put_map_header(&mut out, 2);
        put_str(&mut out, "Error");
        put_str(&mut out, &self.message);
        put_str(&mut out, "Code");
        put_uint(&mut out, self.code.to_u32().into());
        out.freeze()
    }

    /// Decodes the map, or a plain error string as MinIO sends it.
    pub fn decode(data: &Bytes) -> Result<Self, WireError> {
        let is_map = matches!(data.first(), Some(0x80..=0x8f | 0xde | 0xdf));
        if !is_map {
            let text = std::str::from_utf8(data).map_err(|_| WireError::Utf8("Error"))?;
            return Ok(Self::new(ErrorCode::Application, text));
        }
        let mut err = Self::new(ErrorCode::Application, "");
        read_map(data, "Error", |key, rd| {
            match key {
                "Error" => err.message = rd.str("Error")?.to_owned(),
                "Code" => err.code = ErrorCode::from_u32(rd.uint("Code")?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(err)
    }
}

/// **(ext)** A single MessagePack uint payload: the credit count of
/// `UnblockSrvMux`/`UnblockClMux` and the receive window of `AckMux`.
/// An absent payload reads as `absent`.
pub fn decode_count(payload: Option<&Bytes>, absent: u32) -> Result<u32, WireError> {
    match payload {
        None => Ok(absent),
        Some(data) => {
            let mut rd = Reader::new(data, 0);
            let n = rd.uint("count")?;
            if !rd.remaining().is_empty() {
                return Err(WireError::Trailer("bytes after the count"));
            }
            Ok(n)
        }
    }
}

/// Encodes a count payload.
pub fn encode_count(n: u32) -> Bytes {
    let mut out = BytesMut::with_capacity(5);
    put_uint(&mut out, n.into());
    out.freeze()
}

/// **(ext)** The payload of `ConnectMux`: a MessagePack uint (the opener's
/// receive window, i.e. how many server messages it accepts before it
/// grants more credits) followed by the application's bytes, unframed.
pub fn encode_stream_open(window: u32, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    put_uint(&mut out, window.into());
    out.extend_from_slice(payload);
    out.freeze()
}

/// Splits a `ConnectMux` payload into the window and the application's
/// bytes (a zero-copy slice).
pub fn decode_stream_open(payload: Option<&Bytes>) -> Result<(u32, Bytes), WireError> {
    let data = payload.ok_or(WireError::Invalid("ConnectMux", "no window"))?;
    let mut rd = Reader::new(data, 0);
    let window = rd.uint("window")?;
    let rest = data.slice(rd.offset()..);
    Ok((window, rest))
}
