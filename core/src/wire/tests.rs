//! Golden vectors (one per op) and codec properties.

use std::time::{Duration, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn encoded(msg: &Message, crc: bool) -> Vec<u8> {
    let mut out = BytesMut::new();
    msg.encode(crc, &mut out);
    out.to_vec()
}

fn payload(b: &'static [u8]) -> Bytes {
    Bytes::from_static(b)
}

/// Checks the encoding and that decoding gives the message back.
#[track_caller]
fn golden(msg: Message, crc: bool, want: &str) {
    let got = encoded(&msg, crc);
    assert_eq!(got, hex(want), "encoding of {msg:?}");
    let back = Message::decode(&Bytes::from(got)).unwrap();
    let mut expect = msg;
    expect.flags = back.flags; // decode reports the wire flags
    assert_eq!(back, expect);
}

#[test]
fn golden_request_is_the_reference_worked_example() {
    let msg = Message {
        deadline_ms: 60_000,
        handler: 78,
        ..Message::new(Op::REQUEST, 1)
            .flags(Flags::EOF)
            .payload(payload(b"hi"))
    };
    golden(
        msg,
        true,
        "97 01 00 cd ea 60 4e 0e 03 c4 02 68 69 ea be 91 c7",
    );
}

#[test]
fn golden_connect() {
    let connect = Connect {
        id: [0x11; 16],
        host: "a".into(),
        time: UNIX_EPOCH + Duration::new(1, 2),
        nonce: [0x22; 32],
        proof: [0x33; 32],
        client: false,
    };
    let msg = Message::new(Op::CONNECT, 0).payload(connect.encode());
    golden(
        msg,
        false,
        "97 00 00 00 00 01 00 c4 81
         85 a2 4944 c4 10 11111111111111111111111111111111
         a4 486f7374 a1 61
         a4 54696d65 c7 0c 05 0000000000000001 00000002
         a5 4e6f6e6365 c4 20 2222222222222222222222222222222222222222222222222222222222222222
         a5 50726f6f66 c4 20 3333333333333333333333333333333333333333333333333333333333333333",
    );
    assert_eq!(Connect::decode(&connect.encode()).unwrap(), connect);
    let client = Connect {
        client: true,
        ..connect
    };
    let encoded = client.encode();
    assert_eq!(encoded[0], 0x86);
    assert!(encoded.ends_with(&[0xa6, b'C', b'l', b'i', b'e', b'n', b't', 0xc3]));
    assert_eq!(Connect::decode(&encoded).unwrap(), client);
}

#[test]
fn golden_connect_response() {
    let response = ConnectResponse {
        id: [0x11; 16],
        accepted: true,
        rejected_reason: String::new(),
        proof: Some([0x44; 32]),
    };
    let msg = Message::new(Op::CONNECT_RESPONSE, 0).payload(response.encode());
    golden(
        msg,
        false,
        "97 00 00 00 00 02 00 c4 58
         84 a2 4944 c4 10 11111111111111111111111111111111
         a8 4163636570746564 c3
         ae 52656a6563746564526561736f6e a0
         a5 50726f6f66 c4 20 4444444444444444444444444444444444444444444444444444444444444444",
    );
    assert_eq!(
        ConnectResponse::decode(&response.encode()).unwrap(),
        response
    );
    // MinIO's three fields alone still decode (no proof: unauthenticated).
    let bare = ConnectResponse {
        proof: None,
        accepted: false,
        ..response
    };
    assert_eq!(ConnectResponse::decode(&bare.encode()).unwrap(), bare);
}

#[test]
fn golden_connect_response_without_proof() {
    // MinIO's layout: what a party without the secret could answer.
    let resp = ConnectResponse {
        id: [0x22; 16],
        accepted: true,
        rejected_reason: String::new(),
        proof: None,
    };
    let msg = Message::new(Op::CONNECT_RESPONSE, 0).payload(resp.encode());
    golden(
        msg,
        false,
        "97 00 00 00 00 02 00 c4 30
         83 a2 4944 c4 10 22222222222222222222222222222222
         a8 4163636570746564 c3
         ae 52656a6563746564526561736f6e a0",
    );
    assert_eq!(ConnectResponse::decode(&resp.encode()).unwrap(), resp);
}

#[test]
fn golden_ping_and_pong() {
    let t = UNIX_EPOCH + Duration::from_secs(1);
    let ping = Message::new(Op::PING, 0).payload(PingMsg { t }.encode());
    golden(
        ping,
        false,
        "97 00 00 00 00 03 00 c4 12 81 a1 74 c7 0c 05 0000000000000001 00000000",
    );
    let pong = PongMsg {
        not_found: false,
        err: None,
        t: Some(t),
    };
    let msg = Message::new(Op::PONG, 0).payload(pong.encode());
    golden(
        msg,
        false,
        "97 00 00 00 00 04 00 c4 19 83 a2 6e66 c2 a1 65 c0 a1 74 c7 0c 05 0000000000000001 00000000",
    );
    assert_eq!(PongMsg::decode(&pong.encode()).unwrap(), pong);
}

#[test]
fn golden_stream_ops() {
    let open = Message {
        handler: 5,
        ..Message::new(Op::CONNECT_MUX, 7)
            .flags(Flags::EOF)
            .payload(encode_stream_open(4, b"x"))
    };
    golden(open, false, "97 07 00 00 05 05 02 c4 02 04 78");
    let err = ErrorPayload::new(ErrorCode::UnknownHandler, "no");
    let msg = Message::new(Op::MUX_CONNECT_ERROR, 7).payload(err.encode());
    golden(
        msg,
        false,
        "97 07 00 00 00 06 00 c4 10 82 a5 4572726f72 a2 6e6f a4 436f6465 01",
    );
    golden(
        Message::new(Op::DISCONNECT_CLIENT_MUX, 7).seq(3),
        false,
        "97 07 03 00 00 07 00 c4 00",
    );
    golden(
        Message::new(Op::DISCONNECT_SERVER_MUX, 7).seq(2),
        false,
        "97 07 02 00 00 08 00 c4 00",
    );
    golden(
        Message::new(Op::MUX_CLIENT_MSG, 7)
            .seq(1)
            .payload(payload(b"ab")),
        false,
        "97 07 01 00 00 09 00 c4 02 61 62",
    );
    golden(
        Message::new(Op::MUX_SERVER_MSG, 7)
            .seq(1)
            .flags(Flags::EOF)
            .payload(Bytes::new()),
        false,
        "97 07 01 00 00 0a 12 c4 00",
    );
    golden(
        Message::new(Op::UNBLOCK_SRV_MUX, 7)
            .seq(2)
            .payload(encode_count(3)),
        false,
        "97 07 02 00 00 0b 00 c4 01 03",
    );
    golden(
        Message::new(Op::UNBLOCK_CL_MUX, 200)
            .seq(300)
            .payload(encode_count(1)),
        false,
        "97 cc c8 cd 01 2c 00 00 0c 00 c4 01 01",
    );
    golden(
        Message::new(Op::ACK_MUX, 7).payload(encode_count(16)),
        false,
        "97 07 00 00 00 0d 00 c4 01 10",
    );
}

#[test]
fn golden_response_disconnect_cancel() {
    let err = ErrorPayload::new(ErrorCode::Application, "x");
    golden(
        Message::new(Op::RESPONSE, 1)
            .flags(Flags::EOF | Flags::PAYLOAD_IS_ERR)
            .payload(err.encode()),
        false,
        "97 01 00 00 00 0f 0a c4 0f 82 a5 4572726f72 a1 78 a4 436f6465 00",
    );
    golden(
        Message::new(Op::DISCONNECT, 0),
        false,
        "97 00 00 00 00 10 00 c4 00",
    );
    golden(
        Message {
            deadline_ms: u32::MAX,
            ..Message::new(Op::CANCEL_REQUEST, u64::MAX)
        },
        false,
        "97 cf ffffffffffffffff 00 ce ffffffff 00 12 00 c4 00",
    );
}

#[test]
fn golden_merged() {
    let a = encoded(&Message::new(Op::DISCONNECT_CLIENT_MUX, 7).seq(3), false);
    let b = encoded(
        &Message::new(Op::UNBLOCK_SRV_MUX, 7)
            .seq(2)
            .payload(encode_count(3)),
        false,
    );
    let mut w = MergedWriter::new();
    w.push(&a);
    w.push(&b);
    let mut out = BytesMut::new();
    w.finish(&mut out);
    assert!(w.is_empty());
    let want = hex("97 00 02 00 00 11 00 c4 00
         c4 09 97 07 03 00 00 07 00 c4 00
         c4 0a 97 07 02 00 00 0b 00 c4 01 03");
    assert_eq!(out.to_vec(), want);
    let Frame::Merged(frames) = Frame::decode(out.freeze()).unwrap() else {
        panic!("not merged")
    };
    let inner: Vec<Message> = frames.map(Result::unwrap).collect();
    assert_eq!(inner.len(), 2);
    assert_eq!(inner[0].op, Op::DISCONNECT_CLIENT_MUX);
    assert_eq!(inner[1].op, Op::UNBLOCK_SRV_MUX);
    assert_eq!(decode_count(inner[1].payload.as_ref(), 1).unwrap(), 3);
}

#[test]
fn merged_rejects_nesting_truncation_and_extra_bytes() {
    let inner = encoded(&Message::new(Op::MERGED, 0).seq(0), false);
    let mut w = MergedWriter::new();
    w.push(&inner);
    let mut out = BytesMut::new();
    w.finish(&mut out);
    let Frame::Merged(mut frames) = Frame::decode(out.freeze()).unwrap() else {
        panic!()
    };
    assert_eq!(frames.next(), Some(Err(WireError::NestedMerge)));
    assert_eq!(frames.next(), None);

    // Announces 3, holds 1.
    let Frame::Merged(frames) = Frame::decode(Bytes::from(hex(
        "97 00 03 00 00 11 00 c4 00 c4 09 97 07 03 00 00 07 00 c4 00",
    )))
    .unwrap() else {
        panic!()
    };
    let results: Vec<_> = frames.collect();
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok());
    assert!(results[1].is_err());

    // Announces 0, carries a byte.
    let Frame::Merged(mut frames) =
        Frame::decode(Bytes::from(hex("97 00 00 00 00 11 00 c4 00 ff"))).unwrap()
    else {
        panic!()
    };
    assert!(matches!(frames.next(), Some(Err(WireError::Trailer(_)))));
    assert_eq!(frames.next(), None);
}

#[test]
fn subroute_precedes_crc_and_both_are_checked() {
    let sub = SubrouteId::new(9, "a/b");
    let msg = Message {
        handler: 9,
        subroute: Some(sub),
        ..Message::new(Op::REQUEST, 3).payload(payload(b"p"))
    };
    let bytes = encoded(&msg, true);
    let n = bytes.len();
    assert_eq!(&bytes[n - 36..n - 4], &sub.0);
    let back = Message::decode(&Bytes::from(bytes.clone())).unwrap();
    assert_eq!(back.subroute, Some(sub));
    assert!(back.flags.contains(Flags::SUBROUTE | Flags::CRC));
    // Any flipped bit is caught.
    for i in 0..n {
        for bit in 0..8 {
            let mut bad = bytes.clone();
            bad[i] ^= 1 << bit;
            assert!(
                Message::decode(&Bytes::from(bad)).is_err(),
                "flip of bit {bit} in byte {i} went unnoticed"
            );
        }
    }
    // Missing sub-route bytes.
    let no_sub = encoded(&Message::new(Op::REQUEST, 3), false);
    let mut lying = no_sub;
    lying[6] |= Flags::SUBROUTE.bits();
    assert!(matches!(
        Message::decode(&Bytes::from(lying)),
        Err(WireError::Trailer(_))
    ));
}

#[test]
fn nil_and_empty_payloads_stay_distinct() {
    let none =
        Message::decode(&Bytes::from(encoded(&Message::new(Op::RESPONSE, 1), true))).unwrap();
    assert_eq!(none.payload, None);
    let empty = Message::new(Op::RESPONSE, 1).payload(Bytes::new());
    let back = Message::decode(&Bytes::from(encoded(&empty, true))).unwrap();
    assert_eq!(back.payload, Some(Bytes::new()));
}

#[test]
fn any_integer_encoding_in_range_is_accepted() {
    // mux_id 1 as u64, seq 0 as i8, deadline as u32, handler as u16.
    let wide = hex("97 cf 0000000000000001 d0 00 ce 0000ea60 cd 004e 0e 02 c4 00");
    let msg = Message::decode(&Bytes::from(wide)).unwrap();
    assert_eq!(
        (msg.mux_id, msg.seq, msg.deadline_ms, msg.handler),
        (1, 0, 60_000, 78)
    );
    // Out of range: handler 256, negative seq, wrong array length.
    for bad in [
        "97 01 00 00 cd 0100 0e 00 c4 00",
        "97 01 ff 00 4e 0e 00 c4 00",
        "96 01 00 00 4e 0e 00",
        "98 01 00 00 4e 0e 00 c4 00 00",
    ] {
        assert!(Message::decode(&Bytes::from(hex(bad))).is_err(), "{bad}");
    }
}

#[test]
fn maps_skip_unknown_keys() {
    // {"x": [1, {"y": "z"}], "nf": true, "t": nil}
    let data = Bytes::from(hex("83 a1 78 92 01 81 a1 79 a1 7a a2 6e66 c3 a1 74 c0"));
    let pong = PongMsg::decode(&data).unwrap();
    assert!(pong.not_found);
    assert_eq!(pong.t, None);
    // A plain string error, as MinIO sends it.
    let err = ErrorPayload::decode(&payload(b"Invalid Handler")).unwrap();
    assert_eq!(
        err,
        ErrorPayload::new(ErrorCode::Application, "Invalid Handler")
    );
}

fn arb_message() -> impl Strategy<Value = Message> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        proptest::option::of(any::<[u8; 32]>()),
    )
        .prop_map(
            |(mux_id, seq, deadline_ms, handler, op, flags, payload, sub)| Message {
                mux_id,
                seq,
                deadline_ms,
                handler,
                op: Op::from_u8(op),
                flags: Flags::from_bits(flags),
                payload: payload.map(Bytes::from),
                subroute: sub.map(SubrouteId),
            },
        )
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(msg in arb_message(), crc in any::<bool>()) {
        let bytes = encoded(&msg, crc);
        let back = Message::decode(&Bytes::from(bytes)).unwrap();
        let mut want = msg.flags.without(Flags::CRC | Flags::SUBROUTE | Flags::PAYLOAD_IS_ZERO);
        if crc { want = want | Flags::CRC; }
        if msg.subroute.is_some() { want = want | Flags::SUBROUTE; }
        if msg.payload.as_ref().is_some_and(Bytes::is_empty) { want = want | Flags::PAYLOAD_IS_ZERO; }
        prop_assert_eq!(back.flags, want);
        prop_assert_eq!((back.mux_id, back.seq, back.deadline_ms, back.handler, back.op),
            (msg.mux_id, msg.seq, msg.deadline_ms, msg.handler, msg.op));
        prop_assert_eq!(back.payload, msg.payload);
        prop_assert_eq!(back.subroute, msg.subroute);
    }

    #[test]
    fn integers_match_rmp_smallest_encoding(v in any::<u64>()) {
        let mut ours = BytesMut::new();
        msgpack::put_uint(&mut ours, v);
        let mut theirs = Vec::new();
        rmp::encode::write_uint(&mut theirs, v).unwrap();
        prop_assert_eq!(&ours[..], &theirs[..]);
    }

    #[test]
    fn strings_and_bins_match_rmp(len in 0usize..70_000) {
        let s = "x".repeat(len);
        let mut ours = BytesMut::new();
        msgpack::put_str(&mut ours, &s);
        let mut theirs = Vec::new();
        rmp::encode::write_str(&mut theirs, &s).unwrap();
        prop_assert_eq!(&ours[..], &theirs[..]);
        let mut ours = BytesMut::new();
        msgpack::put_bin(&mut ours, s.as_bytes());
        let mut theirs = Vec::new();
        rmp::encode::write_bin(&mut theirs, s.as_bytes()).unwrap();
        prop_assert_eq!(&ours[..], &theirs[..]);
    }

    #[test]
    fn arbitrary_bytes_decode_or_fail_cleanly(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let data = Bytes::from(data);
        if let Ok(Frame::Merged(frames)) = Frame::decode(data.clone()) {
            for _ in frames {}
        }
        let _ = Connect::decode(&data);
        let _ = PongMsg::decode(&data);
        let _ = ErrorPayload::decode(&data);
    }

    #[test]
    fn times_round_trip(secs in -1_000_000_000i64..4_000_000_000, nanos in 0u32..1_000_000_000) {
        let t = if secs >= 0 {
            UNIX_EPOCH + Duration::new(secs as u64, nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nanos.into())
        };
        let ping = PingMsg { t };
        prop_assert_eq!(PingMsg::decode(&ping.encode()).unwrap(), ping);
    }
}

#[test]
fn merged_writer_handles_wide_counts() {
    let frame = encoded(&Message::new(Op::PING, 0), false);
    for n in [0u32, 1, 127, 128, 300] {
        let mut w = MergedWriter::new();
        for _ in 0..n {
            w.push(&frame);
        }
        let Frame::Merged(frames) = Frame::decode(w.finish_bytes()).unwrap() else {
            panic!("not merged")
        };
        assert_eq!(frames.remaining(), n);
        assert_eq!(frames.map(Result::unwrap).count(), n as usize);
        assert!(w.is_empty());
    }
}
