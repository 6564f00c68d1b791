//! The envelope: one grid message, and merged batches of them.

use bytes::{BufMut, Bytes, BytesMut};
use xxhash_rust::xxh3::xxh3_64;

use super::msgpack::{put_bin, put_bin_header, put_uint, Reader};
use super::{Flags, Op, SubrouteId, WireError};

/// Largest encoded envelope header: array marker, the five integers at
/// their widest and a bin32 header (MinIO's `Msgsize`).
pub const MAX_HEADER_LEN: usize = 1 + 9 + 5 + 5 + 2 + 2 + 2 + 5;
/// Bytes of the sub-route trailer.
pub const SUBROUTE_LEN: usize = 32;
/// Bytes of the CRC trailer.
pub const CRC_LEN: usize = 4;
/// The encoded header of a merged frame before its count: the 7-array
/// marker and `mux_id` 0. The count (`seq`) follows.
const MERGED_PREFIX: [u8; 2] = [0x97, 0x00];

/// One grid message.
///
/// On the wire: `[mux_id, seq, deadline_ms, handler, op, flags, payload]`
/// as a MessagePack array, then the sub-route id if `subroute` is set,
/// then the CRC if the link uses one.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The mux the message belongs to; 0 for link-level messages.
    pub mux_id: u64,
    /// Per-mux, per-direction sequence number.
    pub seq: u32,
    /// Milliseconds until the deadline; 0 for none.
    pub deadline_ms: u32,
    /// The handler to run (requests and stream opens).
    pub handler: u8,
    /// What the message does.
    pub op: Op,
    /// Flag bits. [`encode`](Self::encode) sets `CRC`, `SUBROUTE` and
    /// `PAYLOAD_IS_ZERO` itself from the other fields.
    pub flags: Flags,
    /// The payload: `None` is absent, `Some(empty)` is present and empty.
    pub payload: Option<Bytes>,
    /// The sub-route, for requests and stream opens.
    pub subroute: Option<SubrouteId>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Message");
        d.field("op", &self.op)
            .field("mux_id", &self.mux_id)
            .field("seq", &self.seq);
        if self.deadline_ms != 0 {
            d.field("deadline_ms", &self.deadline_ms);
        }
        if self.handler != 0 {
            d.field("handler", &self.handler);
        }
        d.field("flags", &self.flags)
            .field("payload_len", &self.payload.as_ref().map(Bytes::len));
        if let Some(sub) = &self.subroute {
            d.field("subroute", sub);
        }
        d.finish()
    }
}

impl Message {
    /// A message with `op` for `mux_id` and every other field empty.
    pub fn new(op: Op, mux_id: u64) -> Self {
        Self {
            mux_id,
            seq: 0,
            deadline_ms: 0,
            handler: 0,
            op,
            flags: Flags::NONE,
            payload: None,
            subroute: None,
        }
    }

    /// Sets the sequence number.
    #[must_use]
    pub fn seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }

    /// Adds flag bits.
    #[must_use]
    pub fn flags(mut self, flags: Flags) -> Self {
        self.flags = self.flags.with(flags);
        self
    }

    /// Sets the payload.
    #[must_use]
    pub fn payload(mut self, payload: Bytes) -> Self {
        self.payload = Some(payload);
        self
    }

    /// Encoded size, exact up to the integer widths (an upper bound).
    pub fn max_encoded_len(&self) -> usize {
        MAX_HEADER_LEN
            + self.payload.as_ref().map_or(0, Bytes::len)
            + if self.subroute.is_some() {
                SUBROUTE_LEN
            } else {
                0
            }
            + CRC_LEN
    }

    /// The flags as they go on the wire.
    fn wire_flags(&self, crc: bool) -> Flags {
        let mut flags = self
            .flags
            .without(Flags::CRC | Flags::SUBROUTE | Flags::PAYLOAD_IS_ZERO);
        if crc {
            flags = flags.with(Flags::CRC);
        }
        if self.subroute.is_some() {
            flags = flags.with(Flags::SUBROUTE);
        }
        if self.payload.as_ref().is_some_and(Bytes::is_empty) {
            flags = flags.with(Flags::PAYLOAD_IS_ZERO);
        }
        flags
    }

    /// Appends the encoded message (with trailers) to `out`.
    pub fn encode(&self, crc: bool, out: &mut BytesMut) {
        let start = out.len();
        out.reserve(self.max_encoded_len());
        out.put_u8(0x97);
        put_uint(out, self.mux_id);
        put_uint(out, self.seq.into());
        put_uint(out, self.deadline_ms.into());
        put_uint(out, self.handler.into());
        put_uint(out, self.op.get().into());
        put_uint(out, self.wire_flags(crc).bits().into());
        put_bin(out, self.payload.as_deref().unwrap_or_default());
        if let Some(sub) = &self.subroute {
            out.put_slice(&sub.0);
        }
        if crc {
            let sum = xxh3_64(&out[start..]) as u32;
            out.put_u32_le(sum);
        }
    }

    /// Decodes one frame (a whole WebSocket message, or one inner frame of
    /// a merged batch). Payload bytes are slices of `frame`, not copies.
    pub fn decode(frame: &Bytes) -> Result<Self, WireError> {
        let mut rd = Reader::new(frame, 0);
        let len = rd.array_len("envelope")?;
        if len != 7 {
            return Err(WireError::ArrayLength(len));
        }
        let mux_id = rd.uint("mux_id")?;
        let seq = rd.uint("seq")?;
        let deadline_ms = rd.uint("deadline_ms")?;
        let handler = rd.uint("handler")?;
        let op = Op::from_u8(rd.uint("op")?);
        let flags = Flags::from_bits(rd.uint("flags")?);
        let payload = rd.bin("payload")?;
        let body_end = rd.offset();
        let mut end = frame.len();
        if flags.contains(Flags::CRC) {
            if end - body_end < CRC_LEN {
                return Err(WireError::Trailer("CRC flag without 4 CRC bytes"));
            }
            end -= CRC_LEN;
            let given = u32::from_le_bytes(frame[end..].try_into().unwrap_or_default());
            let computed = xxh3_64(&frame[..end]) as u32;
            if given != computed {
                return Err(WireError::CrcMismatch { given, computed });
            }
        }
        let subroute = if flags.contains(Flags::SUBROUTE) {
            if end - body_end < SUBROUTE_LEN {
                return Err(WireError::Trailer(
                    "SUBROUTE flag without 32 sub-route bytes",
                ));
            }
            end -= SUBROUTE_LEN;
            let mut id = [0u8; SUBROUTE_LEN];
            id.copy_from_slice(&frame[end..end + SUBROUTE_LEN]);
            Some(SubrouteId(id))
        } else {
            None
        };
        if end != body_end {
            return Err(WireError::Trailer("unexpected bytes after the message"));
        }
        let payload = if payload.is_empty() && !flags.contains(Flags::PAYLOAD_IS_ZERO) {
            None
        } else {
            Some(payload)
        };
        Ok(Self {
            mux_id,
            seq,
            deadline_ms,
            handler,
            op,
            flags,
            payload,
            subroute,
        })
    }
}

/// A decoded WebSocket message: one grid message or a merged batch.
#[derive(Debug)]
pub enum Frame {
    /// A single message.
    Single(Message),
    /// A batch; iterate to get its messages in order.
    Merged(MergedFrames),
}

impl Frame {
    /// Decodes a whole WebSocket message.
    pub fn decode(data: Bytes) -> Result<Self, WireError> {
        // A merged header is `97 00 <count> 00 00 11 00 c4 00` with `count`
        // in any integer encoding; decode it like any other header.
        if !data.starts_with(&MERGED_PREFIX) {
            return Message::decode(&data).map(Frame::Single);
        }
        let head = Message::decode_header_only(&data)?;
        match head {
            (msg, _) if msg.op != Op::MERGED => Message::decode(&data).map(Frame::Single),
            (msg, offset) => Ok(Self::Merged(MergedFrames {
                source: data,
                offset,
                remaining: msg.seq,
            })),
        }
    }
}

impl Message {
    /// Decodes the 7-array and returns it with the offset just past it,
    /// without looking at trailers (used for merged headers, which have
    /// none: their inner frames follow).
    fn decode_header_only(frame: &Bytes) -> Result<(Self, usize), WireError> {
        let mut rd = Reader::new(frame, 0);
        let len = rd.array_len("envelope")?;
        if len != 7 {
            return Err(WireError::ArrayLength(len));
        }
        let msg = Self {
            mux_id: rd.uint("mux_id")?,
            seq: rd.uint("seq")?,
            deadline_ms: rd.uint("deadline_ms")?,
            handler: rd.uint("handler")?,
            op: Op::from_u8(rd.uint("op")?),
            flags: Flags::from_bits(rd.uint("flags")?),
            payload: None,
            subroute: None,
        };
        rd.bin("payload")?;
        Ok((msg, rd.offset()))
    }
}

/// The messages of a merged frame, decoded lazily and in order.
#[derive(Debug)]
pub struct MergedFrames {
    source: Bytes,
    offset: usize,
    remaining: u32,
}

impl MergedFrames {
    /// How many inner frames are left.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }
}

impl Iterator for MergedFrames {
    type Item = Result<Message, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return (self.offset != self.source.len())
                .then_some(Err(WireError::Trailer("bytes after the last merged frame")))
                .inspect(|_| self.offset = self.source.len());
        }
        self.remaining -= 1;
        let mut rd = Reader::new(&self.source, self.offset);
        let inner = match rd.bin("merged frame") {
            Ok(inner) => inner,
            Err(e) => {
                self.remaining = 0;
                self.offset = self.source.len();
                return Some(Err(e));
            }
        };
        self.offset = rd.offset();
        let result = Message::decode(&inner).and_then(|m| {
            if m.op == Op::MERGED {
                Err(WireError::NestedMerge)
            } else {
                Ok(m)
            }
        });
        if result.is_err() {
            self.remaining = 0;
            self.offset = self.source.len();
        }
        Some(result)
    }
}

/// Builds a merged frame from already encoded messages, in one buffer: the
/// header is written first with room for the count, so finishing copies
/// nothing (unless more than 127 frames were added).
#[derive(Debug, Default)]
pub struct MergedWriter {
    count: u32,
    buf: BytesMut,
}

/// `[0x97, mux_id 0, seq (count), deadline 0, handler 0, op Merged, flags
/// 0, bin8 0]`; the count at [`MERGED_COUNT_AT`] is patched on finish.
const MERGED_HEADER: [u8; 9] = [0x97, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0xc4, 0x00];
const MERGED_COUNT_AT: usize = 2;

impl MergedWriter {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one encoded frame.
    pub fn push(&mut self, frame: &[u8]) {
        if self.buf.is_empty() {
            self.buf.reserve(MERGED_HEADER.len() + 5 + frame.len());
            self.buf.put_slice(&MERGED_HEADER);
        }
        put_bin_header(&mut self.buf, frame.len());
        self.buf.put_slice(frame);
        self.count += 1;
    }

    /// Frames added so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether no frame was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded bytes so far (inner frames and their bin headers).
    pub fn body_len(&self) -> usize {
        self.buf.len().saturating_sub(MERGED_HEADER.len())
    }

    /// The complete merged frame; the writer is empty again afterwards.
    pub fn finish_bytes(&mut self) -> Bytes {
        let count = std::mem::take(&mut self.count);
        if self.buf.is_empty() {
            self.buf.put_slice(&MERGED_HEADER);
        }
        if count < 128 {
            self.buf[MERGED_COUNT_AT] = count as u8;
            return self.buf.split().freeze();
        }
        // The count needs a wider integer: rebuild the header.
        let body = self.buf.split().freeze();
        let mut out = BytesMut::with_capacity(body.len() + 8);
        Message::new(Op::MERGED, 0)
            .seq(count)
            .encode(false, &mut out);
        out.put_slice(&body[MERGED_HEADER.len()..]);
        out.freeze()
    }

    /// Appends the complete merged frame to `out`; the writer is empty
    /// again afterwards.
    pub fn finish(&mut self, out: &mut BytesMut) {
        let frame = self.finish_bytes();
        out.put_slice(&frame);
    }
}
