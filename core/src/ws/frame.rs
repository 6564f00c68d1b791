//! Frame codec (RFC 6455 §5.2): an incremental [`FrameDecoder`] and a
//! coalescing [`FrameEncoder`].
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! | Masking-key (continued)       |          Payload Data         |
//! +-------------------------------- - - - - - - - - - - - - - - - +
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::mask::apply_mask;
use super::{CloseCode, Role, Transmit};

/// Payloads at least this large leave the bytes after them in the input
/// buffer to a fresh allocation (a kept small message must not pin a large dropped one).
const OWN_ALLOCATION: usize = 64 * 1024;

/// Largest payload of a control frame.
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Longest possible frame header: 2 + 8 (length) + 4 (mask).
pub const MAX_HEADER_LEN: usize = 14;

/// A frame opcode (RFC 6455 §5.2). Reserved opcodes never decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Decodes the 4-bit opcode field.
    pub fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// The 4-bit opcode field.
    pub fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, ping and pong are control frames.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

/// One frame with its (unmasked) payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Final fragment of a message.
    pub fin: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The payload, already unmasked.
    pub payload: Bytes,
}

impl Frame {
    /// A single-frame message or a control frame.
    pub fn new(opcode: OpCode, payload: Bytes) -> Self {
        Self {
            fin: true,
            opcode,
            payload,
        }
    }
}

/// A frame the decoder refuses. Each maps to the close code to fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// RSV1–3 set while no extension was negotiated.
    #[error("reserved bits {0:#05b} set without a negotiated extension")]
    ReservedBits(u8),
    /// Opcode 0x3–0x7 or 0xB–0xF.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame with more than 125 payload bytes.
    #[error("control frame payload of {0} bytes (max 125)")]
    ControlTooLong(u64),
    /// A client sent an unmasked frame.
    #[error("unmasked frame from a client")]
    UnmaskedFrame,
    /// A server sent a masked frame.
    #[error("masked frame from a server")]
    MaskedFrame,
    /// A 64-bit length with its most significant bit set.
    #[error("payload length has its most significant bit set")]
    LengthOverflow,
    /// The frame is larger than the configured limit.
    #[error("frame payload of {len} bytes exceeds the limit of {max}")]
    TooBig {
        /// Announced payload length.
        len: u64,
        /// Configured maximum.
        max: u64,
    },
}

impl FrameError {
    /// The close code with which to fail the connection.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::TooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// Where the decoder is within the current frame.
#[derive(Debug, Clone)]
enum DecodeState {
    /// Waiting for a complete header.
    Header,
    /// Header consumed; `done` payload bytes at the front of the buffer are
    /// already unmasked and reported.
    Payload {
        header: FrameHeader,
        done: usize,
        announced: bool,
    },
    /// An error was returned; the stream cannot be resynchronised.
    Failed(FrameError),
}

/// Incremental frame decoder: any split of the input yields the same frames.
///
/// Input accumulates in a caller-owned [`BytesMut`]; the decoder consumes
/// headers as soon as they are complete, unmasks payload bytes in place as
/// they arrive, and splits the finished payload off as [`Bytes`] without
/// copying. After an error, it keeps returning that error.
///
/// ```
/// use bytes::BytesMut;
/// use gridmux_core::ws::{FrameDecoder, OpCode, Role};
///
/// let mut dec = FrameDecoder::new(Role::Client, 1 << 20);
/// let mut buf = BytesMut::from(&[0x81, 0x02, b'h'][..]);
/// assert!(dec.decode(&mut buf).unwrap().is_none()); // incomplete
/// buf.extend_from_slice(b"i");
/// let frame = dec.decode(&mut buf).unwrap().unwrap();
/// assert_eq!((frame.opcode, &frame.payload[..]), (OpCode::Text, &b"hi"[..]));
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    role: Role,
    max_frame_size: u64,
    state: DecodeState,
}

impl FrameDecoder {
    /// Changes the largest frame accepted from now on.
    pub fn set_max_frame_size(&mut self, max: usize) {
        self.max_frame_size = max as u64;
    }

    /// A decoder for `role`: a server requires masked frames from clients,
    /// a client refuses them. Frames over `max_frame_size` bytes are refused.
    pub fn new(role: Role, max_frame_size: usize) -> Self {
        Self {
            role,
            max_frame_size: max_frame_size as u64,
            state: DecodeState::Header,
        }
    }

    /// Payload bytes of the frame in progress that were not in the buffer
    /// at the last decode: 0 between frames, or before a header is whole.
    /// Bounded by the largest frame accepted (the header was checked).
    /// A reader may size its next buffer for the frame from it.
    pub fn payload_wanted(&self) -> usize {
        match &self.state {
            DecodeState::Payload { header, done, .. } => {
                usize::try_from(header.payload_len).map_or(0, |len| len.saturating_sub(*done))
            }
            DecodeState::Header | DecodeState::Failed(_) => 0,
        }
    }

    /// Decodes the next complete frame from the front of `buf`, if any.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        self.decode_with(buf, |_, _| Ok::<(), FrameError>(()))
    }

    /// Like [`decode`](Self::decode), and calls `on_payload` with every
    /// payload byte exactly once, in order, as soon as it has arrived and been
    /// unmasked — also with an empty slice right after a header completes. An
    /// error from `on_payload` stops decoding and is returned (fail fast).
    pub fn decode_with<E: From<FrameError>>(
        &mut self,
        buf: &mut BytesMut,
        mut on_payload: impl FnMut(&FrameHeader, &[u8]) -> Result<(), E>,
    ) -> Result<Option<Frame>, E> {
        if let DecodeState::Header = self.state {
            match self.parse_header(buf) {
                Ok(None) => return Ok(None),
                Ok(Some((header, len))) => {
                    buf.advance(len);
                    self.state = DecodeState::Payload {
                        header,
                        done: 0,
                        announced: false,
                    };
                }
                Err(e) => {
                    self.state = DecodeState::Failed(e.clone());
                    return Err(e.into());
                }
            }
        }
        let (header, done, announced) = match &mut self.state {
            DecodeState::Payload {
                header,
                done,
                announced,
            } => (*header, done, announced),
            DecodeState::Failed(e) => return Err(e.clone().into()),
            // Replaced above: a header was just parsed or we returned.
            DecodeState::Header => return Ok(None),
        };
        // The header check bounds payload_len by max_frame_size, a usize.
        let len = usize::try_from(header.payload_len).unwrap_or(usize::MAX);
        let avail = buf.len().min(len);
        if avail > *done || !*announced {
            let fresh = &mut buf[*done..avail];
            if let Some(key) = header.mask {
                apply_mask(fresh, key, *done);
            }
            *done = avail;
            *announced = true;
            on_payload(&header, fresh)?;
        }
        if *done < len {
            return Ok(None);
        }
        let payload = buf.split_to(len).freeze();
        if len >= OWN_ALLOCATION && !buf.is_empty() && buf.len() <= len {
            // What follows a large payload moves to an allocation of its
            // own: a message kept after a large one was dropped must not
            // keep the large one's memory alive. (Only when it is no
            // larger than the payload: at most one extra copy per byte,
            // never one per frame of a long run of large frames.)
            *buf = BytesMut::from(&buf[..]);
        }
        self.state = DecodeState::Header;
        Ok(Some(Frame {
            fin: header.fin,
            opcode: header.opcode,
            payload,
        }))
    }

    /// Parses and validates a header at the front of `buf`.
    fn parse_header(&self, buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, FrameError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let rsv = (b0 >> 4) & 0x7;
        if rsv != 0 {
            return Err(FrameError::ReservedBits(rsv));
        }
        let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(FrameError::ReservedOpcode(b0 & 0x0F))?;
        let fin = b0 & 0x80 != 0;
        if opcode.is_control() && !fin {
            return Err(FrameError::FragmentedControl);
        }
        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        let masked = b1 & 0x80 != 0;
        match (self.role, masked) {
            (Role::Server, false) => return Err(FrameError::UnmaskedFrame),
            (Role::Client, true) => return Err(FrameError::MaskedFrame),
            _ => {}
        }
        let Some((payload_len, mut pos)) = payload_len(b1, buf) else {
            return Ok(None);
        };
        if payload_len >> 63 != 0 {
            return Err(FrameError::LengthOverflow);
        }
        if opcode.is_control() && payload_len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(FrameError::ControlTooLong(payload_len));
        }
        if payload_len > self.max_frame_size {
            return Err(FrameError::TooBig {
                len: payload_len,
                max: self.max_frame_size,
            });
        }
        let mask = if masked {
            let Some(k) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            Some([k[0], k[1], k[2], k[3]])
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin,
                opcode,
                mask,
                payload_len,
            },
            pos,
        )))
    }
}

/// The payload length a header starting `buf` announces and where its
/// length field ends (`b1`: the header's second byte); `None` until the
/// field is whole.
fn payload_len(b1: u8, buf: &[u8]) -> Option<(u64, usize)> {
    Some(match b1 & 0x7F {
        126 => {
            let b = buf.get(2..4)?;
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let mut be = [0u8; 8];
            be.copy_from_slice(buf.get(2..10)?);
            (u64::from_be_bytes(be), 10)
        }
        n => (u64::from(n), 2),
    })
}

/// The length on the wire (header and payload) of the frame whose header
/// starts `buf`, once the header's length field is whole (its mask key
/// need not be); nothing is checked (the decoder does that). An adapter can size the frame's buffer from it
/// before its payload arrives.
///
/// ```
/// use gridmux_core::ws::frame_len;
///
/// assert_eq!(frame_len(&[0x82, 126, 0x01]), None); // length not whole
/// assert_eq!(frame_len(&[0x82, 126, 0x01, 0x00]), Some(4 + 256));
/// assert_eq!(frame_len(&[0x82, 0x80 | 5, 1, 2, 3, 4]), Some(2 + 4 + 5));
/// ```
pub fn frame_len(buf: &[u8]) -> Option<u64> {
    let &b1 = buf.get(1)?;
    let (payload, end) = payload_len(b1, buf)?;
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    payload.checked_add((end + mask) as u64)
}

/// Writes a frame header into `out`.
pub fn encode_header(
    out: &mut BytesMut,
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
) {
    out.put_u8(u8::from(fin) << 7 | opcode.bits());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.put_u8(mask_bit | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(mask_bit | 126);
        out.put_u16(len);
    } else {
        out.put_u8(mask_bit | 127);
        out.put_u64(len as u64);
    }
    if let Some(key) = mask {
        out.put_slice(&key);
    }
}

/// Encodes frames into a [`Transmit`], coalescing headers and small payloads
/// into one buffer and passing large unmasked payloads by reference.
#[derive(Debug)]
pub struct FrameEncoder {
    scratch: BytesMut,
    copy_threshold: usize,
}

impl Default for FrameEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameEncoder {
    /// Unmasked payloads up to this size are copied next to their header; larger
    /// ones are handed to the writer by reference.
    pub const DEFAULT_COPY_THRESHOLD: usize = 1024;

    /// A new encoder.
    pub fn new() -> Self {
        Self {
            scratch: BytesMut::new(),
            copy_threshold: Self::DEFAULT_COPY_THRESHOLD,
        }
    }

    /// Appends one frame to `out`, masked with `mask` if given (client role).
    /// Call [`flush`](Self::flush) before handing `out` to the writer.
    pub fn encode(&mut self, frame: &Frame, mask: Option<[u8; 4]>, out: &mut Transmit) {
        let len = frame.payload.len();
        let inline = mask.is_some() || len <= self.copy_threshold;
        self.scratch
            .reserve(MAX_HEADER_LEN + if inline { len } else { 0 });
        encode_header(&mut self.scratch, frame.fin, frame.opcode, mask, len);
        if inline {
            let start = self.scratch.len();
            self.scratch.extend_from_slice(&frame.payload);
            if let Some(key) = mask {
                apply_mask(&mut self.scratch[start..], key, 0);
            }
        } else {
            self.flush(out);
            out.push(frame.payload.clone());
        }
    }

    /// Moves coalesced bytes into `out`.
    pub fn flush(&mut self, out: &mut Transmit) {
        if !self.scratch.is_empty() {
            out.push(self.scratch.split().freeze());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_all(frames: &[Frame], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut enc = FrameEncoder::new();
        let mut out = Transmit::default();
        for f in frames {
            enc.encode(f, mask, &mut out);
        }
        enc.flush(&mut out);
        out.to_vec()
    }

    /// `frame_len` agrees with what the encoder writes for every length
    /// form (7-bit, 16-bit, 64-bit; masked or not), and says nothing until
    /// the length field is whole.
    #[test]
    fn frame_len_is_the_encoded_frame_s_length() {
        for len in [0, 125, 126, 65_535, 65_536, 300_000] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut head = BytesMut::new();
                encode_header(&mut head, true, OpCode::Binary, mask, len);
                let whole = (head.len() + len) as u64;
                assert_eq!(frame_len(&head), Some(whole), "{len} {mask:?}");
                let field_end = head.len() - if mask.is_some() { 4 } else { 0 };
                assert_eq!(frame_len(&head[..field_end - 1]), None, "{len}");
            }
        }
    }

    /// Issue 11, item 19 (review): the bytes after a large payload move to
    /// an allocation of their own, so a small message kept from them does
    /// not keep the large one's buffer alive.
    #[test]
    fn bytes_after_a_large_payload_leave_its_buffer() {
        let big = Frame::new(OpCode::Binary, Bytes::from(vec![1u8; 70 * 1024]));
        let small = Frame::new(OpCode::Binary, Bytes::from_static(b"tiny"));
        let wire = encode_all(&[big, small], None);
        let mut buf = BytesMut::with_capacity(wire.len() + 64 * 1024);
        buf.extend_from_slice(&wire);
        let mut dec = FrameDecoder::new(Role::Client, 1 << 20);
        let first = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(first.payload.len(), 70 * 1024);
        let (start, end) = (first.payload.as_ptr() as usize, first.payload.len());
        let tail = buf.as_ptr() as usize;
        assert!(
            !(start..start + end + 64 * 1024 + 16).contains(&tail),
            "the rest still shares the large payload's buffer"
        );
        assert!(buf.capacity() < 1024);
        let second = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&second.payload[..], b"tiny");
    }

    /// A run of large frames in one buffer is not copied frame by frame
    /// (what follows moves only when it is no larger than the payload).
    #[test]
    fn a_run_of_large_frames_stays_in_its_buffer() {
        let frames: Vec<Frame> = (0..5)
            .map(|i| Frame::new(OpCode::Binary, Bytes::from(vec![i as u8; 70 * 1024])))
            .collect();
        let wire = encode_all(&frames, None);
        let mut buf = BytesMut::from(&wire[..]);
        let base = buf.as_ptr() as usize;
        let mut dec = FrameDecoder::new(Role::Client, 1 << 20);
        for i in 0..3u8 {
            let f = dec.decode(&mut buf).unwrap().unwrap();
            assert_eq!(f.payload[0], i);
            let at = buf.as_ptr() as usize;
            assert!((base..base + wire.len()).contains(&at), "frame {i}: copied");
        }
    }

    /// What a reader may size its buffer by: the payload still to come of
    /// the frame in progress, 0 between frames and inside a header.
    #[test]
    fn payload_wanted_counts_down_to_the_frame_s_end() {
        let frame = Frame::new(OpCode::Binary, Bytes::from(vec![7u8; 70_000]));
        let wire = encode_all(&[frame], Some([1, 2, 3, 4]));
        let mut dec = FrameDecoder::new(Role::Server, 1 << 20);
        let mut buf = BytesMut::new();
        assert_eq!(dec.payload_wanted(), 0);
        buf.extend_from_slice(&wire[..5]);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        assert_eq!(dec.payload_wanted(), 0, "the header is not whole");
        buf.extend_from_slice(&wire[5..14 + 1000]);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        assert_eq!(dec.payload_wanted(), 69_000);
        buf.extend_from_slice(&wire[14 + 1000..wire.len() - 1]);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        assert_eq!(dec.payload_wanted(), 1);
        buf.extend_from_slice(&wire[wire.len() - 1..]);
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap().payload.len(), 70_000);
        assert_eq!(dec.payload_wanted(), 0);
    }

    #[test]
    fn rfc_examples_decode() {
        // RFC 6455 §5.7: unmasked and masked "Hello".
        let mut dec = FrameDecoder::new(Role::Client, 1 << 20);
        let mut buf = BytesMut::from(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f][..]);
        let f = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(f, Frame::new(OpCode::Text, Bytes::from_static(b"Hello")));

        let mut dec = FrameDecoder::new(Role::Server, 1 << 20);
        let mut buf = BytesMut::from(
            &[
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ][..],
        );
        let f = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&f.payload[..], b"Hello");
        assert!(buf.is_empty());
    }

    #[test]
    fn rfc_masked_example_encodes() {
        let f = Frame::new(OpCode::Text, Bytes::from_static(b"Hello"));
        assert_eq!(
            encode_all(&[f], Some([0x37, 0xfa, 0x21, 0x3d])),
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn length_encodings() {
        for (len, header_len) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let f = Frame::new(OpCode::Binary, Bytes::from(vec![7u8; len]));
            let wire = encode_all(std::slice::from_ref(&f), None);
            assert_eq!(wire.len(), header_len + len);
            let mut dec = FrameDecoder::new(Role::Client, 1 << 20);
            let mut buf = BytesMut::from(&wire[..]);
            assert_eq!(dec.decode(&mut buf).unwrap(), Some(f));
        }
    }

    #[test]
    fn large_payloads_are_passed_by_reference() {
        let payload = Bytes::from(vec![1u8; 4096]);
        let mut enc = FrameEncoder::new();
        let mut out = Transmit::default();
        enc.encode(&Frame::new(OpCode::Binary, payload.clone()), None, &mut out);
        enc.flush(&mut out);
        assert_eq!(out.chunks().count(), 2);
        assert_eq!(out.chunks().nth(1).unwrap().as_ptr(), payload.as_ptr());
    }

    #[test]
    fn rejects_protocol_violations() {
        let cases: &[(Role, &[u8], FrameError)] = &[
            (Role::Client, &[0xC1, 0x00], FrameError::ReservedBits(4)),
            (Role::Client, &[0x83, 0x00], FrameError::ReservedOpcode(3)),
            (Role::Client, &[0x0B, 0x00], FrameError::ReservedOpcode(0xB)),
            (Role::Client, &[0x09, 0x00], FrameError::FragmentedControl),
            (
                Role::Client,
                &[0x89, 0x7E, 0x00, 0x7E],
                FrameError::ControlTooLong(126),
            ),
            (Role::Server, &[0x82, 0x00], FrameError::UnmaskedFrame),
            (
                Role::Client,
                &[0x82, 0x80, 0, 0, 0, 0],
                FrameError::MaskedFrame,
            ),
            (
                Role::Client,
                &[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0],
                FrameError::LengthOverflow,
            ),
            (
                Role::Client,
                &[0x82, 0x7F, 0, 0, 0, 0, 0, 0x10, 0, 1],
                FrameError::TooBig {
                    len: 0x100001,
                    max: 0x100000,
                },
            ),
        ];
        for (role, wire, err) in cases {
            let mut dec = FrameDecoder::new(*role, 1 << 20);
            let mut buf = BytesMut::from(*wire);
            assert_eq!(dec.decode(&mut buf).as_ref(), Err(err), "{wire:x?}");
            // The decoder stays failed.
            assert_eq!(dec.decode(&mut BytesMut::new()).as_ref(), Err(err));
        }
    }

    #[test]
    fn payload_callback_sees_every_byte_once() {
        let f = Frame::new(OpCode::Text, Bytes::from_static(b"split across reads"));
        let wire = encode_all(std::slice::from_ref(&f), Some([9, 8, 7, 6]));
        let mut dec = FrameDecoder::new(Role::Server, 1 << 20);
        let mut buf = BytesMut::new();
        let mut seen = Vec::new();
        let mut calls = 0;
        let mut got = None;
        for b in wire {
            buf.put_u8(b);
            got = dec
                .decode_with(&mut buf, |_, p| {
                    calls += 1;
                    seen.extend_from_slice(p);
                    Ok::<_, FrameError>(())
                })
                .unwrap();
        }
        assert_eq!(got, Some(f));
        assert_eq!(seen, b"split across reads");
        assert_eq!(calls, 1 + b"split across reads".len());
    }
}
