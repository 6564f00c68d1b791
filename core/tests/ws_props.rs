//! Property tests of the WebSocket codec and endpoint.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use gridmux_core::ws::{
    Config, Endpoint, Event, Frame, FrameDecoder, FrameEncoder, OpCode, Role, Transmit,
    MAX_HEADER_LEN,
};
use proptest::prelude::*;

fn opcode() -> impl Strategy<Value = OpCode> {
    prop_oneof![
        Just(OpCode::Continuation),
        Just(OpCode::Text),
        Just(OpCode::Binary),
        Just(OpCode::Close),
        Just(OpCode::Ping),
        Just(OpCode::Pong),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        opcode(),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..70_000),
    )
        .prop_map(|(opcode, fin, mut payload)| {
            if opcode.is_control() {
                payload.truncate(125);
            }
            Frame {
                fin: fin || opcode.is_control(),
                opcode,
                payload: Bytes::from(payload),
            }
        })
}

/// Feeds `wire` to a decoder in pieces of the given sizes (cycled).
fn decode_in_pieces(role: Role, wire: &[u8], sizes: &[usize]) -> Result<Vec<Frame>, String> {
    let mut dec = FrameDecoder::new(role, 1 << 20);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < wire.len() {
        let n = sizes[i % sizes.len()].min(wire.len() - pos);
        i += 1;
        buf.extend_from_slice(&wire[pos..pos + n]);
        pos += n;
        while let Some(f) = dec.decode(&mut buf).map_err(|e| e.to_string())? {
            frames.push(f);
        }
    }
    Ok(frames)
}

#[expect(
    clippy::disallowed_methods,
    reason = "arbitrary origin of the fake clock"
)]
fn t0() -> Instant {
    Instant::now()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// encode → decode is the identity, whatever the chunking and masking.
    #[test]
    fn encode_then_decode_is_identity(
        frames in prop::collection::vec(frame(), 1..6),
        masked in any::<bool>(),
        key in any::<[u8; 4]>(),
        sizes in prop::collection::vec(1usize..5000, 1..8),
    ) {
        let mut enc = FrameEncoder::new();
        let mut out = Transmit::new();
        for f in &frames {
            enc.encode(f, masked.then_some(key), &mut out);
        }
        enc.flush(&mut out);
        // A server decodes masked frames, a client unmasked ones.
        let role = if masked { Role::Server } else { Role::Client };
        prop_assert_eq!(decode_in_pieces(role, &out.to_vec(), &sizes), Ok(frames));
    }

    /// Arbitrary bytes decode to frames or an error, never a panic, and the
    /// same under any chunking.
    #[test]
    fn arbitrary_bytes_decode_or_fail_consistently(
        wire in prop::collection::vec(any::<u8>(), 0..2000),
        sizes in prop::collection::vec(1usize..64, 1..8),
        server in any::<bool>(),
    ) {
        let role = if server { Role::Server } else { Role::Client };
        let whole = decode_in_pieces(role, &wire, &[usize::MAX]);
        let pieces = decode_in_pieces(role, &wire, &sizes);
        prop_assert_eq!(whole, pieces);
    }

    /// A server endpoint fed arbitrary bytes after a valid handshake never
    /// panics, keeps its buffers within the configured limits, and reports
    /// `Closed` at most once.
    #[test]
    fn server_endpoint_survives_arbitrary_input(
        garbage in prop::collection::vec(any::<u8>(), 0..4000),
        sizes in prop::collection::vec(1usize..300, 1..8),
        handshake in any::<bool>(),
    ) {
        let cfg = Config { max_frame_size: 512, max_message_size: 2048, ..Config::default() };
        let now = t0();
        let mut ep = Endpoint::server(cfg.clone(), now);
        let mut buf = BytesMut::new();
        if handshake {
            buf.extend_from_slice(
                b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            );
        }
        let mut closed = 0;
        let mut pos = 0;
        let mut i = 0;
        let mut out = Transmit::new();
        loop {
            ep.handle_input(now, &mut buf);
            let limit = cfg.max_handshake_size.max(cfg.max_frame_size + MAX_HEADER_LEN);
            prop_assert!(buf.len() <= limit, "unconsumed input {} over {}", buf.len(), limit);
            prop_assert!(ep.reassembly_bytes() <= cfg.max_message_size);
            while ep.poll_transmit(now, &mut out) {}
            out.clear();
            while let Some(ev) = ep.poll_event() {
                if matches!(ev, Event::Closed(_)) {
                    closed += 1;
                }
            }
            if pos >= garbage.len() {
                break;
            }
            let n = sizes[i % sizes.len()].min(garbage.len() - pos);
            i += 1;
            buf.extend_from_slice(&garbage[pos..pos + n]);
            pos += n;
        }
        ep.handle_timeout(now + Duration::from_secs(3600));
        ep.handle_eof(now + Duration::from_secs(3600));
        while let Some(ev) = ep.poll_event() {
            if matches!(ev, Event::Closed(_)) {
                closed += 1;
            }
        }
        prop_assert_eq!(closed, 1);
    }
}
