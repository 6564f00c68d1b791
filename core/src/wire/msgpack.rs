//! The MessagePack forms the envelope and its payloads use.
//!
//! Reading goes through `rmp::decode`, which accepts every valid encoding of
//! an integer that fits the target type. Writing is done here by hand: it is
//! infallible, allocation-free on a reserved `BytesMut`, and always picks the
//! smallest encoding (tests compare it byte for byte with `rmp::encode`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use rmp::decode::{self, NumValueReadError, ValueReadError};
use rmp::Marker;

use super::WireError;

/// MessagePack extension type of a msgp (Go) timestamp.
pub(crate) const TIME_EXT: i8 = 5;
/// How deep [`Reader::skip`] follows nested arrays and maps.
const MAX_SKIP_DEPTH: usize = 8;

/// Appends the smallest encoding of an unsigned integer.
pub(crate) fn put_uint(out: &mut BytesMut, v: u64) {
    if v < 128 {
        out.put_u8(v as u8);
    } else if v <= u8::MAX.into() {
        out.put_slice(&[0xcc, v as u8]);
    } else if v <= u16::MAX.into() {
        out.put_u8(0xcd);
        out.put_u16(v as u16);
    } else if v <= u32::MAX.into() {
        out.put_u8(0xce);
        out.put_u32(v as u32);
    } else {
        out.put_u8(0xcf);
        out.put_u64(v);
    }
}

/// Appends the header of a `bin` of `len` bytes.
pub(crate) fn put_bin_header(out: &mut BytesMut, len: usize) {
    if len <= u8::MAX.into() {
        out.put_slice(&[0xc4, len as u8]);
    } else if len <= u16::MAX.into() {
        out.put_u8(0xc5);
        out.put_u16(len as u16);
    } else {
        out.put_u8(0xc6);
        out.put_u32(len as u32);
    }
}

/// Appends a `bin`.
pub(crate) fn put_bin(out: &mut BytesMut, data: &[u8]) {
    put_bin_header(out, data.len());
    out.put_slice(data);
}

/// Appends a `str`.
pub(crate) fn put_str(out: &mut BytesMut, s: &str) {
    let len = s.len();
    if len < 32 {
        out.put_u8(0xa0 | len as u8);
    } else if len <= u8::MAX.into() {
        out.put_slice(&[0xd9, len as u8]);
    } else if len <= u16::MAX.into() {
        out.put_u8(0xda);
        out.put_u16(len as u16);
    } else {
        out.put_u8(0xdb);
        out.put_u32(len as u32);
    }
    out.put_slice(s.as_bytes());
}

/// Appends a map header (the maps written here have fewer than 16 keys).
pub(crate) fn put_map_header(out: &mut BytesMut, len: u8) {
    debug_assert!(len < 16);
    out.put_u8(0x80 | len);
}

/// Appends a `bool`.
pub(crate) fn put_bool(out: &mut BytesMut, v: bool) {
    out.put_u8(if v { 0xc3 } else { 0xc2 });
}

/// Appends `nil`.
pub(crate) fn put_nil(out: &mut BytesMut) {
    out.put_u8(0xc0);
}

/// Appends a time as msgp does: ext8, 12 bytes, type 5, then big-endian
/// seconds (i64) and nanoseconds (i32) since the Unix epoch.
pub(crate) fn put_time(out: &mut BytesMut, t: SystemTime) {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos() as i32),
        Err(e) => {
            let d = e.duration();
            // Before the epoch: floor the seconds, keep nanos positive.
            let mut secs = -(d.as_secs() as i64);
            let mut nanos = d.subsec_nanos() as i32;
            if nanos > 0 {
                secs -= 1;
                nanos = 1_000_000_000 - nanos;
            }
            (secs, nanos)
        }
    };
    out.put_slice(&[0xc7, 12, TIME_EXT as u8]);
    out.put_i64(secs);
    out.put_i32(nanos);
}

/// A cursor over an encoded buffer that hands out `bin` values as
/// zero-copy slices of the underlying [`Bytes`].
pub(crate) struct Reader<'a> {
    source: &'a Bytes,
    rd: decode::Bytes<'a>,
}

impl<'a> Reader<'a> {
    /// Reads `source` from offset `start`.
    pub(crate) fn new(source: &'a Bytes, start: usize) -> Self {
        Self {
            source,
            rd: decode::Bytes::new(&source[start..]),
        }
    }

    /// Offset of the next unread byte in the source.
    pub(crate) fn offset(&self) -> usize {
        self.source.len() - self.rd.remaining_slice().len()
    }

    /// The unread bytes.
    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.rd.remaining_slice()
    }

    /// An unsigned or signed integer that fits `T`.
    pub(crate) fn uint<T: TryFrom<u64>>(&mut self, field: &'static str) -> Result<T, WireError> {
        let v = decode::read_int::<u64, _>(&mut self.rd).map_err(|e| match e {
            NumValueReadError::OutOfRange => WireError::OutOfRange(field),
            NumValueReadError::TypeMismatch(m) => WireError::Type(field, m),
            _ => WireError::Truncated(field),
        })?;
        T::try_from(v).map_err(|_| WireError::OutOfRange(field))
    }

    /// An array header.
    pub(crate) fn array_len(&mut self, field: &'static str) -> Result<u32, WireError> {
        decode::read_array_len(&mut self.rd).map_err(|e| value_error(field, e))
    }

    /// A map header.
    pub(crate) fn map_len(&mut self, field: &'static str) -> Result<u32, WireError> {
        decode::read_map_len(&mut self.rd).map_err(|e| value_error(field, e))
    }

    /// A `bin` (zero-copy) or `nil` (empty).
    pub(crate) fn bin(&mut self, field: &'static str) -> Result<Bytes, WireError> {
        if self.peek() == Some(0xc0) {
            self.take(1, field)?;
            return Ok(Bytes::new());
        }
        let len = decode::read_bin_len(&mut self.rd).map_err(|e| value_error(field, e))?;
        let start = self.offset();
        self.take(len as usize, field)?;
        Ok(self.source.slice(start..start + len as usize))
    }

    /// A `str`, or `nil` read as empty.
    pub(crate) fn str(&mut self, field: &'static str) -> Result<&'a str, WireError> {
        if self.peek() == Some(0xc0) {
            self.take(1, field)?;
            return Ok("");
        }
        let len = decode::read_str_len(&mut self.rd).map_err(|e| value_error(field, e))?;
        let raw = self.take(len as usize, field)?;
        std::str::from_utf8(raw).map_err(|_| WireError::Utf8(field))
    }

    /// A `bool`.
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, WireError> {
        decode::read_bool(&mut self.rd).map_err(|e| value_error(field, e))
    }

    /// A msgp timestamp (ext type 5, 12 bytes).
    pub(crate) fn time(&mut self, field: &'static str) -> Result<SystemTime, WireError> {
        let meta = decode::read_ext_meta(&mut self.rd).map_err(|e| value_error(field, e))?;
        if meta.typeid != TIME_EXT || meta.size != 12 {
            return Err(WireError::Invalid(field, "not a msgp time"));
        }
        let raw = self.take(12, field)?;
        let secs = i64::from_be_bytes(raw[..8].try_into().unwrap_or_default());
        let nanos = i32::from_be_bytes(raw[8..].try_into().unwrap_or_default());
        if !(0..1_000_000_000).contains(&nanos) {
            return Err(WireError::Invalid(field, "nanoseconds out of range"));
        }
        let t = if secs >= 0 {
            UNIX_EPOCH.checked_add(Duration::new(secs as u64, nanos as u32))
        } else {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(secs.unsigned_abs()))
                .and_then(|t| t.checked_add(Duration::from_nanos(nanos as u64)))
        };
        t.ok_or(WireError::Invalid(field, "time out of range"))
    }

    /// Skips one value of any type (unknown map keys' values).
    pub(crate) fn skip(&mut self) -> Result<(), WireError> {
        self.skip_depth(0)
    }

    fn skip_depth(&mut self, depth: usize) -> Result<(), WireError> {
        const FIELD: &str = "unknown value";
        if depth > MAX_SKIP_DEPTH {
            return Err(WireError::Invalid(FIELD, "nested too deep"));
        }
        let marker = decode::read_marker(&mut self.rd).map_err(|_| WireError::Truncated(FIELD))?;
        let (skip, items) = match marker {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                (0, 0)
            }
            Marker::U8 | Marker::I8 => (1, 0),
            Marker::U16 | Marker::I16 => (2, 0),
            Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
            Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
            Marker::FixStr(n) => (n as usize, 0),
            Marker::FixArray(n) => (0, n as usize),
            Marker::FixMap(n) => (0, 2 * n as usize),
            Marker::Str8 | Marker::Bin8 => (self.be_len(1)?, 0),
            Marker::Str16 | Marker::Bin16 => (self.be_len(2)?, 0),
            Marker::Str32 | Marker::Bin32 => (self.be_len(4)?, 0),
            Marker::Array16 => (0, self.be_len(2)?),
            Marker::Array32 => (0, self.be_len(4)?),
            Marker::Map16 => (0, 2 * self.be_len(2)?),
            Marker::Map32 => (0, 2 * self.be_len(4)?),
            Marker::FixExt1 => (2, 0),
            Marker::FixExt2 => (3, 0),
            Marker::FixExt4 => (5, 0),
            Marker::FixExt8 => (9, 0),
            Marker::FixExt16 => (17, 0),
            Marker::Ext8 => (self.be_len(1)? + 1, 0),
            Marker::Ext16 => (self.be_len(2)? + 1, 0),
            Marker::Ext32 => (self.be_len(4)? + 1, 0),
            Marker::Reserved => return Err(WireError::Invalid(FIELD, "reserved marker 0xc1")),
        };
        self.take(skip, FIELD)?;
        // Each nested item is at least one byte: refuse counts the input
        // cannot hold before looping over them.
        if items > self.remaining().len() {
            return Err(WireError::Truncated(FIELD));
        }
        for _ in 0..items {
            self.skip_depth(depth + 1)?;
        }
        Ok(())
    }

    fn be_len(&mut self, width: usize) -> Result<usize, WireError> {
        let raw = self.take(width, "length")?;
        Ok(raw.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize))
    }

    fn peek(&self) -> Option<u8> {
        self.remaining().first().copied()
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        let rest = self.remaining();
        if rest.len() < n {
            return Err(WireError::Truncated(field));
        }
        let (head, tail) = rest.split_at(n);
        self.rd = decode::Bytes::new(tail);
        Ok(head)
    }
}

fn value_error<E: decode::RmpReadErr>(field: &'static str, e: ValueReadError<E>) -> WireError {
    match e {
        ValueReadError::TypeMismatch(m) => WireError::Type(field, m),
        _ => WireError::Truncated(field),
    }
}
