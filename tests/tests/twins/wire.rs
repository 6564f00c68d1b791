//! Twin tests: see `main.rs`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gridmux_core::link::{Event, LinkError};
use gridmux_core::mux::MuxId;
use gridmux_core::wire::{Flags, Message, Op, SubrouteId, WireError};
use gridmux_core::ws::Transmit;
use gridmux_tests::twin::{bytes_of, deliver_observed};

use crate::*;

#[test]
fn checklist_01_message_is_a_7_array_in_field_order() {
    let msg = Message {
        deadline_ms: 3,
        handler: 4,
        ..Message::new(Op::REQUEST, 1)
            .seq(2)
            .payload(Bytes::from_static(b"p"))
    };
    let mut out = BytesMut::new();
    msg.encode(false, &mut out);
    assert_eq!(&out[..], [0x97, 1, 2, 3, 4, 14, 0, 0xc4, 1, b'p']);
    for len in [0x96u8, 0x98] {
        let mut bad = out.to_vec();
        bad[0] = len;
        assert!(matches!(
            Message::decode(&Bytes::from(bad)),
            Err(WireError::ArrayLength(_)) | Err(_)
        ));
    }
}

#[test]
fn checklist_02_smallest_uint_on_write_any_int_in_range_on_read() {
    let msg = Message {
        deadline_ms: 70_000,
        ..Message::new(Op::RESPONSE, 300).seq(128)
    };
    let mut out = BytesMut::new();
    msg.encode(false, &mut out);
    assert_eq!(
        &out[..9],
        [0x97, 0xcd, 0x01, 0x2c, 0xcc, 0x80, 0xce, 0x00, 0x01]
    );
    // mux_id as int64, seq as int8: accepted.
    let wide = [
        0x97, 0xd3, 0, 0, 0, 0, 0, 0, 0, 5, 0xd0, 1, 0, 0, 15, 0, 0xc4, 0,
    ];
    let back = Message::decode(&Bytes::copy_from_slice(&wide)).unwrap();
    assert_eq!((back.mux_id, back.seq), (5, 1));
}

#[test]
fn checklist_03_golden_request_bytes() {
    let msg = Message {
        deadline_ms: 60_000,
        handler: 78,
        ..Message::new(Op::REQUEST, 1)
            .flags(Flags::EOF)
            .payload(Bytes::from_static(b"hi"))
    };
    let mut out = BytesMut::new();
    msg.encode(true, &mut out);
    assert_eq!(
        &out[..],
        [
            0x97, 0x01, 0x00, 0xcd, 0xea, 0x60, 0x4e, 0x0e, 0x03, 0xc4, 0x02, 0x68, 0x69, 0xea,
            0xbe, 0x91, 0xc7
        ]
    );
}

#[test]
fn checklist_04_corrupted_crc_drops_the_connection() {
    let mut p = pair();
    request(&mut p, DIALER, 1, bytes_of(64, b'x'));
    let mut out = Transmit::new();
    while p.links[DIALER].poll_transmit(p.now, &mut out) {}
    let mut bytes = out.to_vec();
    let last = bytes.len() - 3; // inside the CRC trailer (masked, but a flip is a flip)
    bytes[last] ^= 0x10;
    p.links[ACCEPTOR].handle_input(p.now, &mut BytesMut::from(&bytes[..]));
    let events = p.take_events(ACCEPTOR);
    assert!(
        matches!(events.last(), Some(Event::Closed(LinkError::Malformed(m))) if m.contains("crc")),
        "{events:?}"
    );
    // The dialer gets the Close frame (1002), then the TCP close.
    p.transfer(ACCEPTOR);
    let now = p.now;
    p.links[DIALER].handle_eof(now);
    let events = p.take_events(DIALER);
    assert!(
        matches!(events.last(), Some(Event::Closed(LinkError::WebSocket(_)))),
        "{events:?}"
    );
}

#[test]
fn checklist_05_subroute_id_is_sha256_with_handler_and_zero() {
    let id = SubrouteId::new(78, "subroute/1");
    assert_eq!((id.0[0], id.0[1]), (78, 0));
    let msg = Message {
        handler: 78,
        subroute: Some(id),
        ..Message::new(Op::REQUEST, 1)
    };
    let mut out = BytesMut::new();
    msg.encode(true, &mut out);
    let n = out.len();
    assert_eq!(&out[n - 36..n - 4], &id.0);
    let mut short = out[..n - 4 - 10].to_vec();
    short[6] &= !Flags::CRC.bits();
    assert!(Message::decode(&Bytes::from(short)).is_err());
}

#[test]
fn checklist_06_nil_and_empty_payloads_round_trip() {
    for payload in [None, Some(Bytes::new())] {
        let mut msg = Message::new(Op::MUX_SERVER_MSG, 1);
        msg.payload = payload.clone();
        let mut out = BytesMut::new();
        msg.encode(true, &mut out);
        assert_eq!(Message::decode(&out.freeze()).unwrap().payload, payload);
    }
    // Over a link: an empty answer arrives as an empty answer.
    let mut p = pair();
    request(&mut p, DIALER, 1, Bytes::new());
    p.drive();
    serve(&mut p, ACCEPTOR, Ok(Bytes::new()));
    p.drive();
    assert_eq!(response(&mut p, DIALER).1, Ok(Bytes::new()));
}

#[test]
fn checklist_07_op_and_flag_values() {
    assert_eq!(
        [Op::CONNECT, Op::REQUEST, Op::RESPONSE, Op::MERGED].map(Op::get),
        [1, 14, 15, 17]
    );
    assert_eq!(Op::CANCEL_REQUEST.get(), 18, "(ext) CancelRequest");
    assert_eq!(
        [
            Flags::CRC,
            Flags::EOF,
            Flags::STATELESS,
            Flags::PAYLOAD_IS_ERR,
            Flags::PAYLOAD_IS_ZERO,
            Flags::SUBROUTE
        ]
        .map(Flags::bits),
        [0x01, 0x02, 0x04, 0x08, 0x10, 0x20]
    );
}

#[test]
fn checklist_08_merged_only_on_backlog_at_most_50_in_order() {
    let mut p = pair();
    // No backlog: one request goes alone.
    request(&mut p, DIALER, 1, bytes_of(8, 1));
    let seen = deliver_observed(&mut p, DIALER);
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].merged);
    p.take_events(ACCEPTOR);
    // A backlog of 120 requests: merged batches of at most 50, in order.
    let ids: Vec<MuxId> = (0..120)
        .map(|i| request(&mut p, DIALER, 1, bytes_of(8, i as u8)))
        .collect();
    let seen = deliver_observed(&mut p, DIALER);
    assert_eq!(seen.len(), 120);
    assert!(seen.iter().all(|s| s.merged));
    let batches = seen.last().unwrap().ws_message + 1;
    assert_eq!(batches, 3);
    for b in 0..batches {
        assert!(seen.iter().filter(|s| s.ws_message == b).count() <= 50);
    }
    let got: Vec<u64> = seen.iter().map(|s| s.msg.mux_id).collect();
    assert_eq!(got, ids.iter().map(|m| m.id).collect::<Vec<_>>());
    let served = p.take_events(ACCEPTOR);
    assert_eq!(served.len(), 120, "each merged message is dispatched");
}

#[test]
fn checklist_09_handshake_maps_use_minio_keys_and_msgp_time() {
    use gridmux_core::wire::{Connect, PongMsg};
    let c = Connect {
        id: [7; 16],
        host: "h".into(),
        time: std::time::UNIX_EPOCH + Duration::from_secs(1),
        nonce: [1; 32],
        proof: [2; 32],
        client: false,
    }
    .encode();
    for key in [
        &b"\xa2ID"[..],
        b"\xa4Host",
        b"\xa4Time",
        b"\xa5Nonce",
        b"\xa5Proof",
        b"\xc7\x0c\x05",
    ] {
        assert!(c.windows(key.len()).any(|w| w == key), "{key:?}");
    }
    let pong = PongMsg {
        not_found: true,
        err: None,
        t: None,
    }
    .encode();
    for key in [&b"\xa2nf"[..], b"\xa1e", b"\xa1t"] {
        assert!(pong.windows(key.len()).any(|w| w == key));
    }
}
