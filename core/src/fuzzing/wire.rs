//! Body of the `wire_decode` target.

use bytes::{Bytes, BytesMut};

use crate::wire::{
    decode_count, decode_stream_open, Connect, ConnectResponse, ErrorPayload, Flags, Frame,
    Message, PingMsg, PongMsg,
};

/// `wire_decode`: any bytes decode as a grid frame or fail cleanly; what
/// decodes re-encodes to something that decodes to the same message; the
/// structured payload decoders never panic and round-trip what they accept.
pub fn wire_decode(data: &[u8]) {
    let data = Bytes::copy_from_slice(data);
    match Frame::decode(data.clone()) {
        Ok(Frame::Single(msg)) => check_round_trip(&msg),
        Ok(Frame::Merged(frames)) => {
            let announced = frames.remaining();
            let mut seen = 0u32;
            for msg in frames {
                seen += 1;
                assert!(seen <= announced + 1, "more frames than announced");
                if let Ok(msg) = msg {
                    check_round_trip(&msg);
                }
            }
        }
        Err(_) => {}
    }
    if let Ok(c) = Connect::decode(&data) {
        assert_eq!(Connect::decode(&c.encode()), Ok(c));
    }
    if let Ok(r) = ConnectResponse::decode(&data) {
        assert_eq!(ConnectResponse::decode(&r.encode()), Ok(r));
    }
    if let Ok(p) = PingMsg::decode(&data) {
        assert_eq!(PingMsg::decode(&p.encode()), Ok(p));
    }
    if let Ok(p) = PongMsg::decode(&data) {
        assert_eq!(PongMsg::decode(&p.encode()), Ok(p));
    }
    if let Ok(e) = ErrorPayload::decode(&data) {
        assert_eq!(ErrorPayload::decode(&e.encode()), Ok(e));
    }
    let _ = decode_count(Some(&data), 1);
    if let Ok((_, rest)) = decode_stream_open(Some(&data)) {
        assert!(rest.len() <= data.len());
    }
}

fn check_round_trip(msg: &Message) {
    let crc = msg.flags.contains(Flags::CRC);
    let mut out = BytesMut::new();
    msg.encode(crc, &mut out);
    let back = Message::decode(&out.freeze()).expect("a decoded message re-encodes validly");
    // `PAYLOAD_IS_ZERO` on a non-empty payload means nothing; encoding
    // drops it.
    let mut want = msg.clone();
    if want.payload.as_ref().is_some_and(|p| !p.is_empty()) {
        want.flags = want.flags.without(Flags::PAYLOAD_IS_ZERO);
    }
    assert_eq!(back, want, "re-encoding changed the message");
}
