//! Twins of the protocol items of MinIO's grid conformance checklist
//! (`shared/reference/minio-grid.md`, last section), written against
//! `gridmux_core` on an in-memory link pair with a fake clock. Each test
//! is named after the item it proves. Where gridmux deliberately differs
//! (the extensions), the test proves our behaviour and says so.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use gridmux_core::cluster::should_dial;
use gridmux_core::fuzzing::LinkPair;
use gridmux_core::link::{
    CallError, CommandError, Event, HandlerKind, HandlerTable, Link, LinkError, RegisterError,
    StreamOpts,
};
use gridmux_core::mux::MuxId;
use gridmux_core::wire::{ErrorCode, ErrorPayload, Flags, Message, Op, SubrouteId, WireError};
use gridmux_core::ws::Transmit;
use gridmux_tests::twin::{bytes_of, deliver_observed, inject, swallow};

const DIALER: usize = 0;
const ACCEPTOR: usize = 1;

fn origin() -> Instant {
    Instant::now()
}

fn pair() -> LinkPair {
    LinkPair::connected(origin(), |_| {})
}

/// The only event of `side`, asserting there is exactly one.
fn one_event(p: &mut LinkPair, side: usize) -> Event {
    let mut events = p.take_events(side);
    assert_eq!(events.len(), 1, "side {side}: {events:?}");
    events.remove(0)
}

/// Serves the next request event on `side` with `result`.
fn serve(p: &mut LinkPair, side: usize, result: Result<Bytes, ErrorPayload>) {
    let Event::Request { mux, .. } = one_event(p, side) else {
        panic!("no request")
    };
    let now = p.now;
    p.links[side].respond(now, mux, result).unwrap();
}

fn request(p: &mut LinkPair, side: usize, handler: u8, payload: Bytes) -> MuxId {
    let now = p.now;
    p.links[side]
        .request(now, handler, None, payload, None)
        .unwrap()
}

fn response(p: &mut LinkPair, side: usize) -> (MuxId, Result<Bytes, CallError>) {
    match one_event(p, side) {
        Event::Response { mux, result } => (mux, result),
        other => panic!("expected a response, got {other:?}"),
    }
}

fn open(p: &mut LinkPair, handler: u8, opts: StreamOpts) -> MuxId {
    let now = p.now;
    p.links[DIALER]
        .open_stream(now, handler, None, Bytes::from_static(b"init"), opts)
        .unwrap()
}

fn opened(p: &mut LinkPair) -> (MuxId, bool, Option<Instant>) {
    match one_event(p, ACCEPTOR) {
        Event::StreamOpened {
            mux,
            has_input,
            deadline,
            ..
        } => (mux, has_input, deadline),
        other => panic!("expected StreamOpened, got {other:?}"),
    }
}

// ---- wire ---------------------------------------------------------------

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
        token: "t".into(),
    }
    .encode();
    for key in [
        &b"\xa2ID"[..],
        b"\xa4Host",
        b"\xa4Time",
        b"\xa5Token",
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

// ---- link set-up ----------------------------------------------------------

#[test]
fn checklist_10_one_dialer_per_pair() {
    let hosts: Vec<String> = ('a'..='z')
        .filter(|c| *c != 'w')
        .chain('0'..='9')
        .map(String::from)
        .collect();
    for x in &hosts {
        let dials = hosts
            .iter()
            .filter(|y| *y != x && should_dial(x, y))
            .count();
        assert!(dials >= 10);
        for y in hosts.iter().filter(|y| *y != x) {
            assert_ne!(should_dial(x, y), should_dial(y, x));
        }
    }
}

fn upgrade_answer(request: &str) -> (String, Vec<Event>) {
    let configs = LinkPair::configs("a:1", "b:1", |_| {});
    let mut acceptor = Link::accept(configs[1].clone(), origin(), std::time::SystemTime::now());
    acceptor.handle_input(origin(), &mut BytesMut::from(request.as_bytes()));
    let mut out = Transmit::new();
    while acceptor.poll_transmit(origin(), &mut out) {}
    let mut events = Vec::new();
    while let Some(e) = acceptor.poll_event() {
        events.push(e);
    }
    (String::from_utf8_lossy(&out.to_vec()).into_owned(), events)
}

#[test]
fn checklist_11_upgrade_needs_path_token_and_websocket() {
    // Our path is /gridmux/v1 (MinIO: /minio/grid/v1). No token: 401;
    // bad token: 403; not an upgrade: 426; wrong path: 404.
    let base =
        "GET /gridmux/v1 HTTP/1.1\r\nHost: b:1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    let (answer, events) = upgrade_answer(&format!("{base}\r\n"));
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(matches!(
        events.last(),
        Some(Event::Closed(LinkError::Refused(_)))
    ));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let bad = format!(
        "{base}Authorization: Bearer {}\r\nX-Gridmux-Host: a:1\r\nX-Gridmux-Time: {nanos}\r\n\r\n",
        "0".repeat(64)
    );
    assert!(upgrade_answer(&bad).0.starts_with("HTTP/1.1 403"));
    let plain = "GET /gridmux/v1 HTTP/1.1\r\nHost: b:1\r\n\r\n";
    assert!(upgrade_answer(plain).0.starts_with("HTTP/1.1 426"));
    let wrong = base.replace("/gridmux/v1", "/minio/grid/v1");
    assert!(upgrade_answer(&format!("{wrong}\r\n"))
        .0
        .starts_with("HTTP/1.1 404"));
}

/// Builds a pair where the acceptor's checks differ: `tweak` changes the
/// acceptor's view (peers, clock, secret, …). Returns the dialer's events.
fn connect_with(tweak_acceptor: impl Fn(&mut gridmux_core::link::LinkConfig)) -> Vec<Event> {
    let [d, a] = LinkPair::configs("a:1", "b:1", |_| {});
    let mut a2 = (*a).clone();
    tweak_acceptor(&mut a2);
    let mut p = LinkPair::new([d, std::sync::Arc::new(a2)], origin(), 3);
    p.drive();
    p.take_events(DIALER)
}

#[test]
fn checklist_12_acceptor_rejects_unknown_host_bad_token_and_wrong_dialer() {
    use gridmux_core::auth::SharedSecret;
    let accepted = connect_with(|_| {});
    assert!(matches!(accepted[0], Event::Connected { .. }));
    // Bad token: a different secret (the upgrade already fails with 403).
    let events =
        connect_with(|c| c.authenticator = std::sync::Arc::new(SharedSecret::new(*b"other")));
    assert!(
        matches!(events.last(), Some(Event::Closed(_))),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Connected { .. })));
    // Unknown host: the acceptor's peer list lacks the dialer.
    let events = connect_with(|c| c.peers.retain(|p| *p == c.local));
    assert!(!events.iter().any(|e| matches!(e, Event::Connected { .. })));
    // Clock skew over 5 minutes in Connect (the upgrade allows 15).
    let [d, a] = LinkPair::configs("a:1", "b:1", |_| {});
    let now = origin();
    let wall = std::time::SystemTime::now();
    let rng = Box::new(gridmux_core::fuzzing::CountingRng(1));
    let mut dialer = Link::dial(
        d.clone(),
        a.local.clone(),
        now,
        wall + Duration::from_secs(360),
        rng,
    );
    let mut acceptor = Link::accept(a.clone(), now, wall);
    handshake(&mut dialer, &mut acceptor, now);
    assert_rejected(&mut dialer, "time difference too large");
    // The wrong side dials: the designated acceptor dials the dialer.
    let rng = Box::new(gridmux_core::fuzzing::CountingRng(2));
    let mut wrong = Link::dial(a, d.local.clone(), now, wall, rng);
    let mut acceptor = Link::accept(d, now, wall);
    handshake(&mut wrong, &mut acceptor, now);
    assert_rejected(&mut wrong, "expected to be client side");
}

fn move_bytes(from: &mut Link, to: &mut Link, now: Instant) {
    let mut out = Transmit::new();
    while from.poll_transmit(now, &mut out) {}
    to.handle_input(now, &mut BytesMut::from(&out.to_vec()[..]));
}

fn handshake(dialer: &mut Link, acceptor: &mut Link, now: Instant) {
    for _ in 0..4 {
        move_bytes(dialer, acceptor, now);
        move_bytes(acceptor, dialer, now);
    }
}

fn assert_rejected(dialer: &mut Link, reason: &str) {
    let mut events = Vec::new();
    while let Some(e) = dialer.poll_event() {
        events.push(e);
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Closed(LinkError::Rejected(r)) if r.contains(reason))),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Connected { .. })));
}

#[test]
fn checklist_13_calls_fail_fast_while_not_connected() {
    let configs = LinkPair::configs("a:1", "b:1", |_| {});
    let mut p = LinkPair::new(configs, origin(), 1);
    let now = p.now;
    let r = p.links[DIALER].request(now, 1, None, Bytes::new(), None);
    assert_eq!(r, Err(CommandError::NotConnected));
    let s = p.links[DIALER].open_stream(now, 10, None, Bytes::new(), StreamOpts::default());
    assert_eq!(s, Err(CommandError::NotConnected));
    assert!(
        swallow(&mut p, DIALER).is_empty(),
        "nothing but the upgrade is written"
    );
}

#[test]
fn checklist_16_link_pings_every_10s_and_closes_after_20s_without_pong() {
    let mut p = pair();
    p.advance(Duration::from_secs(10));
    assert!(p
        .take_events(DIALER)
        .iter()
        .any(|e| matches!(e, Event::Pong { .. })));
    assert!(p
        .take_events(ACCEPTOR)
        .iter()
        .any(|e| matches!(e, Event::Pong { .. })));
    // The acceptor goes silent: nothing it writes arrives any more.
    let start = p.now;
    let mut closed = None;
    for _ in 0..300 {
        p.now += Duration::from_millis(100);
        for side in [DIALER, ACCEPTOR] {
            if p.links[side].poll_timeout().is_some_and(|t| t <= p.now) {
                let now = p.now;
                p.links[side].handle_timeout(now);
            }
        }
        p.transfer(DIALER);
        swallow(&mut p, ACCEPTOR);
        if let Some(Event::Closed(reason)) = p
            .take_events(DIALER)
            .into_iter()
            .find(|e| matches!(e, Event::Closed(_)))
        {
            closed = Some((p.now - start, reason));
            break;
        }
    }
    let (after, reason) = closed.expect("the dialer closed the link");
    assert!(matches!(reason, LinkError::PongTimeout(_)), "{reason:?}");
    assert!(
        after >= Duration::from_secs(20) && after <= Duration::from_secs(21),
        "{after:?}"
    );
}

#[test]
fn checklist_17_write_stalled_for_4s_tears_the_link_down() {
    let mut p = pair();
    request(&mut p, DIALER, 1, bytes_of(10, 0));
    // The socket never becomes writable: nobody calls poll_transmit.
    let deadline = p.links[DIALER].poll_timeout().unwrap();
    assert_eq!(deadline - p.now, Duration::from_secs(4));
    p.now = deadline;
    let now = p.now;
    p.links[DIALER].handle_timeout(now);
    let events = p.take_events(DIALER);
    assert!(matches!(
        events[0],
        Event::Response {
            result: Err(CallError::Disconnected),
            ..
        }
    ));
    assert!(matches!(
        events.last(),
        Some(Event::Closed(LinkError::WriteStall(_)))
    ));
}

#[test]
fn checklist_18_connection_loss_ends_every_exchange_with_disconnected() {
    let mut p = pair();
    let req = request(&mut p, DIALER, 3, Bytes::new());
    let stream = open(&mut p, 10, StreamOpts::default());
    let back = request(&mut p, ACCEPTOR, 3, Bytes::new());
    p.drive();
    let served = p.take_events(ACCEPTOR);
    assert_eq!(served.len(), 2);
    p.take_events(DIALER);
    p.kill();
    let d = p.take_events(DIALER);
    let a = p.take_events(ACCEPTOR);
    assert!(d.contains(&Event::Response {
        mux: req,
        result: Err(CallError::Disconnected)
    }));
    assert!(d.contains(&Event::Ended {
        mux: stream,
        result: Err(CallError::Disconnected)
    }));
    assert!(a.contains(&Event::Response {
        mux: back,
        result: Err(CallError::Disconnected)
    }));
    let served_ends = a
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Ended {
                    result: Err(CallError::Disconnected),
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        served_ends, 2,
        "the served request and stream are cancelled: {a:?}"
    );
    for events in [&d, &a] {
        assert!(matches!(events.last(), Some(Event::Closed(_))));
    }
    assert_eq!(
        p.links[DIALER].open_exchanges() + p.links[ACCEPTOR].open_exchanges(),
        0
    );
}

// ---- requests ---------------------------------------------------------------

#[test]
fn checklist_20_invalid_handler_is_local_unregistered_is_remote() {
    let mut p = pair();
    let now = p.now;
    assert_eq!(
        p.links[DIALER].request(now, 0, None, Bytes::new(), None),
        Err(CommandError::InvalidHandler)
    );
    request(&mut p, DIALER, 99, Bytes::new());
    p.drive();
    let (_, result) = response(&mut p, DIALER);
    assert!(
        matches!(&result, Err(CallError::Remote { code: ErrorCode::UnknownHandler, message }) if message.contains("Invalid Handler")),
        "{result:?}"
    );
}

#[test]
fn checklist_21_deadlines_on_the_wire_default_60s_and_under_1ms_fails_locally() {
    let mut p = pair();
    let now = p.now;
    request(&mut p, DIALER, 1, Bytes::new());
    let seen = deliver_observed(&mut p, DIALER);
    assert_eq!(seen[0].msg.deadline_ms, 60_000);
    let Event::Request { deadline, .. } = one_event(&mut p, ACCEPTOR) else {
        panic!()
    };
    assert_eq!(deadline - now, Duration::from_secs(60));
    let far = now + Duration::from_secs(60 * 24 * 3600);
    p.links[DIALER]
        .request(now, 1, None, Bytes::new(), Some(far))
        .unwrap();
    assert_eq!(
        deliver_observed(&mut p, DIALER)[0].msg.deadline_ms,
        u32::MAX
    );
    p.take_events(ACCEPTOR);
    let soon = now + Duration::from_micros(900);
    assert_eq!(
        p.links[DIALER].request(now, 1, None, Bytes::new(), Some(soon)),
        Err(CommandError::DeadlinePassed)
    );
    // Without an answer the caller times out after exactly 60 s.
    let fresh = request(&mut p, DIALER, 3, Bytes::new());
    p.drive();
    p.advance(Duration::from_millis(59_999));
    assert!(!p
        .take_events(DIALER)
        .iter()
        .any(|e| matches!(e, Event::Response { .. })));
    p.advance(Duration::from_millis(1));
    assert!(p.take_events(DIALER).contains(&Event::Response {
        mux: fresh,
        result: Err(CallError::Timeout)
    }));
}

#[test]
fn checklist_22_handler_error_and_panic_reach_the_caller_typed() {
    let mut p = pair();
    request(&mut p, DIALER, 2, Bytes::new());
    p.drive();
    serve(
        &mut p,
        ACCEPTOR,
        Err(ErrorPayload::new(ErrorCode::Application, "exact text")),
    );
    p.drive();
    assert_eq!(
        response(&mut p, DIALER).1,
        Err(CallError::Remote {
            code: ErrorCode::Application,
            message: "exact text".into()
        })
    );
    request(&mut p, DIALER, 4, Bytes::new());
    p.drive();
    serve(
        &mut p,
        ACCEPTOR,
        Err(ErrorPayload::new(
            ErrorCode::HandlerPanicked,
            "handler panic: boom",
        )),
    );
    p.drive();
    let (_, r) = response(&mut p, DIALER);
    assert!(
        matches!(r, Err(CallError::Remote { code: ErrorCode::HandlerPanicked, ref message }) if message.contains("panic"))
    );
}

#[test]
fn checklist_23_a_handler_past_its_deadline_sends_nothing() {
    let mut p = pair();
    let now = p.now;
    let mux = p.links[DIALER]
        .request(
            now,
            3,
            None,
            Bytes::new(),
            Some(now + Duration::from_millis(500)),
        )
        .unwrap();
    p.drive();
    let Event::Request { mux: served, .. } = one_event(&mut p, ACCEPTOR) else {
        panic!()
    };
    p.advance(Duration::from_millis(500));
    assert!(p.take_events(ACCEPTOR).contains(&Event::Ended {
        mux: served,
        result: Err(CallError::Timeout)
    }));
    assert!(p.take_events(DIALER).contains(&Event::Response {
        mux,
        result: Err(CallError::Timeout)
    }));
    let now = p.now;
    assert_eq!(
        p.links[ACCEPTOR].respond(now, served, Ok(Bytes::new())),
        Err(CommandError::UnknownMux)
    );
    assert!(swallow(&mut p, ACCEPTOR)
        .iter()
        .all(|s| s.msg.op != Op::RESPONSE));
}

#[test]
fn checklist_24_cancel_returns_at_once_and_ext_reaches_the_handler() {
    let mut p = pair();
    let mux = request(&mut p, DIALER, 3, Bytes::new());
    p.drive();
    let Event::Request { mux: served, .. } = one_event(&mut p, ACCEPTOR) else {
        panic!()
    };
    let now = p.now;
    p.links[DIALER].cancel(now, mux);
    assert!(
        p.take_events(DIALER).is_empty(),
        "the caller returned already"
    );
    // (ext) MinIO does not tell the handler; we send CancelRequest.
    let seen = deliver_observed(&mut p, DIALER);
    assert_eq!(seen[0].msg.op, Op::CANCEL_REQUEST);
    assert_eq!(
        one_event(&mut p, ACCEPTOR),
        Event::Ended {
            mux: served,
            result: Err(CallError::Canceled)
        }
    );
    // A late answer is discarded.
    inject(
        &mut p,
        DIALER,
        &Message::new(Op::RESPONSE, mux.id)
            .flags(Flags::EOF)
            .payload(Bytes::new()),
    );
    assert!(p.take_events(DIALER).is_empty());
}

#[test]
fn checklist_25_1mib_payload_and_1kib_error_round_trip() {
    let mut p = pair();
    let big = Bytes::from((0..1 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    request(&mut p, DIALER, 1, big.clone());
    p.drive();
    let Event::Request { mux, payload, .. } = one_event(&mut p, ACCEPTOR) else {
        panic!()
    };
    assert_eq!(payload, big);
    let now = p.now;
    p.links[ACCEPTOR].respond(now, mux, Ok(payload)).unwrap();
    p.drive();
    assert_eq!(response(&mut p, DIALER).1, Ok(big));
    let text = "e".repeat(1024);
    request(&mut p, DIALER, 2, Bytes::new());
    p.drive();
    serve(
        &mut p,
        ACCEPTOR,
        Err(ErrorPayload::new(ErrorCode::Application, text.clone())),
    );
    p.drive();
    assert_eq!(
        response(&mut p, DIALER).1,
        Err(CallError::Remote {
            code: ErrorCode::Application,
            message: text
        })
    );
}

#[test]
fn checklist_26_backpressured_streams_never_block_requests() {
    let mut p = pair();
    // Out congestion: the caller does not consume; the server has sent all
    // its credits.
    let out = open(
        &mut p,
        11,
        StreamOpts {
            window: 1,
            input: false,
            ..StreamOpts::default()
        },
    );
    p.drive();
    let (served_out, _, _) = opened(&mut p);
    let now = p.now;
    p.links[ACCEPTOR]
        .send(now, served_out, bytes_of(1, 0))
        .unwrap();
    assert_eq!(
        p.links[ACCEPTOR].send(now, served_out, bytes_of(1, 1)),
        Err(CommandError::NoCredit)
    );
    // In congestion: the handler does not consume the caller's messages.
    let inn = open(&mut p, 10, StreamOpts::default());
    p.drive();
    opened(&mut p);
    for i in 0..4 {
        let now = p.now;
        p.links[DIALER].send(now, inn, bytes_of(1, i)).unwrap();
    }
    p.drive();
    assert_eq!(p.links[DIALER].credits(inn), 0);
    p.take_events(DIALER);
    p.take_events(ACCEPTOR);
    // 100 requests still go through.
    for i in 0..100u8 {
        request(&mut p, DIALER, 1, bytes_of(3, i));
    }
    p.drive();
    let served: Vec<Event> = p.take_events(ACCEPTOR);
    assert_eq!(served.len(), 100);
    for e in served {
        let Event::Request { mux, payload, .. } = e else {
            panic!("{e:?}")
        };
        let now = p.now;
        p.links[ACCEPTOR].respond(now, mux, Ok(payload)).unwrap();
    }
    p.drive();
    let answers = p.take_events(DIALER);
    assert_eq!(
        answers
            .iter()
            .filter(|e| matches!(e, Event::Response { result: Ok(_), .. }))
            .count(),
        100
    );
    assert!(
        p.links[DIALER].open_exchanges() >= 2,
        "{out:?} and {inn:?} still open"
    );
}

// ---- streams ------------------------------------------------------------

#[test]
fn checklist_27_ext_streams_need_no_local_registration() {
    // MinIO: NewStream to a handler not registered locally fails with
    // ErrUnknownHandler. gridmux: the caller announces its window and the
    // server answers with its own, so only the server registers.
    let dialer = if should_dial("a:1", "b:1") {
        "a:1"
    } else {
        "b:1"
    };
    let mut p = LinkPair::connected(origin(), |c| {
        if c.local == dialer {
            c.handlers = HandlerTable::new();
        }
    });
    let mux = open(&mut p, 10, StreamOpts::default());
    p.drive();
    let (_, has_input, _) = opened(&mut p);
    assert!(has_input);
    assert_eq!(
        p.links[DIALER].credits(mux),
        4,
        "the server's window, learned from AckMux"
    );
    // Unregistered on the server: a remote UnknownHandler.
    let missing = open(&mut p, 99, StreamOpts::default());
    p.drive();
    let ended = p
        .take_events(DIALER)
        .into_iter()
        .find(|e| matches!(e, Event::Ended { mux, .. } if *mux == missing));
    assert!(matches!(
        ended,
        Some(Event::Ended {
            result: Err(CallError::Remote {
                code: ErrorCode::UnknownHandler,
                ..
            }),
            ..
        })
    ));
}

#[test]
fn checklist_28_ack_comes_first_with_seq_0_and_grants_the_window() {
    let mut p = pair();
    let mux = open(&mut p, 10, StreamOpts::default());
    let now = p.now;
    assert_eq!(
        p.links[DIALER].send(now, mux, bytes_of(1, 0)),
        Err(CommandError::NoCredit)
    );
    deliver_observed(&mut p, DIALER);
    let (served, _, _) = opened(&mut p);
    let now = p.now;
    p.links[ACCEPTOR].send(now, served, bytes_of(1, 9)).unwrap();
    let seen = deliver_observed(&mut p, ACCEPTOR);
    assert_eq!((seen[0].msg.op, seen[0].msg.seq), (Op::ACK_MUX, 0));
    assert_eq!((seen[1].msg.op, seen[1].msg.seq), (Op::MUX_SERVER_MSG, 1));
    assert_eq!(p.links[DIALER].credits(mux), 4);
}

#[test]
fn checklist_29_server_stays_within_credits_which_come_back_batched() {
    let mut p = pair();
    let mux = open(
        &mut p,
        11,
        StreamOpts {
            window: 8,
            input: false,
            ..StreamOpts::default()
        },
    );
    p.drive();
    let (served, has_input, _) = opened(&mut p);
    assert!(!has_input);
    let mut sent = 0;
    loop {
        let now = p.now;
        match p.links[ACCEPTOR].send(now, served, bytes_of(1, sent)) {
            Ok(()) => sent += 1,
            Err(CommandError::NoCredit) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(sent, 8, "exactly the caller's window");
    p.drive();
    assert_eq!(p.take_events(DIALER).len(), 8);
    // (ext) Credits return in batches of half the window, as a count.
    let now = p.now;
    p.links[DIALER].consumed(now, mux, 3);
    assert!(swallow(&mut p, DIALER).is_empty(), "3 < 4: no grant yet");
    p.links[DIALER].consumed(now, mux, 1);
    let seen = deliver_observed(&mut p, DIALER);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].msg.op, Op::UNBLOCK_SRV_MUX);
    assert_eq!(
        gridmux_core::wire::decode_count(seen[0].msg.payload.as_ref(), 1),
        Ok(4)
    );
    assert_eq!(one_event(&mut p, ACCEPTOR), Event::Writable { mux: served });
    assert_eq!(p.links[ACCEPTOR].credits(served), 4);
}

#[test]
fn checklist_30_a_sequence_gap_ends_only_that_mux() {
    let mut p = pair();
    let victim = open(
        &mut p,
        11,
        StreamOpts {
            input: false,
            ..StreamOpts::default()
        },
    );
    let other = open(
        &mut p,
        11,
        StreamOpts {
            input: false,
            ..StreamOpts::default()
        },
    );
    p.drive();
    p.take_events(ACCEPTOR);
    p.take_events(DIALER);
    // seq 0 was the ack; 5 is a gap.
    inject(
        &mut p,
        DIALER,
        &Message::new(Op::MUX_SERVER_MSG, victim.id)
            .seq(5)
            .payload(bytes_of(1, 0)),
    );
    let ended = one_event(&mut p, DIALER);
    assert!(
        matches!(
            &ended,
            Event::Ended { mux, result: Err(CallError::Protocol(m)) } if *mux == victim && m.contains("want 1, got 5")
        ),
        "{ended:?}"
    );
    p.drive();
    assert!(matches!(
        one_event(&mut p, ACCEPTOR),
        Event::Ended {
            result: Err(CallError::Canceled),
            ..
        }
    ));
    assert!(p.links[DIALER].is_connected());
    assert_eq!(p.links[DIALER].open_exchanges(), 1, "{other:?} lives on");
}

#[test]
fn checklist_31_stream_echo_of_11_messages_then_clean_end() {
    let mut p = pair();
    let mux = open(
        &mut p,
        12,
        StreamOpts {
            window: 1,
            ..StreamOpts::default()
        },
    );
    p.drive();
    let (served, _, _) = opened(&mut p);
    p.take_events(DIALER); // Writable
    for i in 0..=10u8 {
        let now = p.now;
        p.links[DIALER]
            .send(now, mux, Bytes::from(i.to_string()))
            .unwrap();
        p.drive();
        let Event::Message { payload, .. } = one_event(&mut p, ACCEPTOR) else {
            panic!()
        };
        let now = p.now;
        p.links[ACCEPTOR]
            .send(
                now,
                served,
                Bytes::from(format!("init{}", String::from_utf8_lossy(&payload))),
            )
            .unwrap();
        p.links[ACCEPTOR].consumed(now, served, 1);
        p.drive();
        let events = p.take_events(DIALER);
        assert!(
            events.contains(&Event::Message {
                mux,
                payload: Bytes::from(format!("init{i}"))
            }),
            "{events:?}"
        );
        let now = p.now;
        p.links[DIALER].consumed(now, mux, 1);
        p.drive();
        p.take_events(ACCEPTOR);
    }
    let now = p.now;
    p.links[DIALER].finish(now, mux).unwrap();
    p.drive();
    assert_eq!(
        one_event(&mut p, ACCEPTOR),
        Event::InputEnded { mux: served }
    );
    let now = p.now;
    p.links[ACCEPTOR].finish(now, served).unwrap();
    p.drive();
    assert_eq!(
        one_event(&mut p, DIALER),
        Event::Ended {
            mux,
            result: Ok(())
        }
    );
    assert_eq!(
        p.links[DIALER].open_exchanges() + p.links[ACCEPTOR].open_exchanges(),
        0
    );
}

#[test]
fn checklist_32_client_eof_is_a_payloadless_eof_message() {
    let mut p = pair();
    let mux = open(&mut p, 10, StreamOpts::default());
    p.drive();
    let (served, _, _) = opened(&mut p);
    let now = p.now;
    p.links[DIALER].finish(now, mux).unwrap();
    let seen = deliver_observed(&mut p, DIALER);
    assert_eq!(seen[0].msg.op, Op::MUX_CLIENT_MSG);
    assert!(seen[0].msg.flags.contains(Flags::EOF));
    assert_eq!(seen[0].msg.payload, None);
    assert_eq!(
        one_event(&mut p, ACCEPTOR),
        Event::InputEnded { mux: served }
    );
}

#[test]
fn checklist_33_one_way_streams_set_eof_on_open_and_refuse_input() {
    let mut p = pair();
    let mux = open(
        &mut p,
        10,
        StreamOpts {
            input: false,
            ..StreamOpts::default()
        },
    );
    let seen = deliver_observed(&mut p, DIALER);
    assert!(seen[0].msg.flags.contains(Flags::EOF));
    let (served, has_input, _) = opened(&mut p);
    assert!(!has_input);
    let now = p.now;
    assert_eq!(
        p.links[DIALER].send(now, mux, Bytes::new()),
        Err(CommandError::Finished)
    );
    inject(
        &mut p,
        ACCEPTOR,
        &Message::new(Op::MUX_CLIENT_MSG, mux.id)
            .seq(1)
            .payload(bytes_of(1, 0)),
    );
    let ended = one_event(&mut p, ACCEPTOR);
    assert!(
        matches!(&ended, Event::Ended { mux, result: Err(CallError::Protocol(m)) }
        if *mux == served && m.contains("did not expect inbound message")),
        "{ended:?}"
    );
}

#[test]
fn checklist_34_handler_end_is_eof_or_error() {
    let mut p = pair();
    let ok = open(
        &mut p,
        11,
        StreamOpts {
            input: false,
            ..StreamOpts::default()
        },
    );
    let bad = open(
        &mut p,
        11,
        StreamOpts {
            input: false,
            ..StreamOpts::default()
        },
    );
    p.drive();
    let served: Vec<MuxId> = p
        .take_events(ACCEPTOR)
        .into_iter()
        .map(|e| match e {
            Event::StreamOpened { mux, .. } => mux,
            e => panic!("{e:?}"),
        })
        .collect();
    let now = p.now;
    p.links[ACCEPTOR].finish(now, served[0]).unwrap();
    p.links[ACCEPTOR]
        .fail_stream(
            now,
            served[1],
            ErrorPayload::new(ErrorCode::Application, "nope"),
        )
        .unwrap();
    let seen = deliver_observed(&mut p, ACCEPTOR);
    let ends: Vec<&Message> = seen
        .iter()
        .map(|s| &s.msg)
        .filter(|m| m.op == Op::MUX_SERVER_MSG)
        .collect();
    assert!(ends[0].flags.contains(Flags::EOF) && ends[0].payload.is_none());
    assert!(ends[1].flags.contains(Flags::EOF | Flags::PAYLOAD_IS_ERR));
    let events = p.take_events(DIALER);
    assert!(events.contains(&Event::Ended {
        mux: ok,
        result: Ok(())
    }));
    assert!(events.contains(&Event::Ended {
        mux: bad,
        result: Err(CallError::Remote {
            code: ErrorCode::Application,
            message: "nope".into()
        })
    }));
}

#[test]
fn checklist_35_cancelling_a_stream_cancels_the_handler() {
    let mut p = pair();
    let mux = open(&mut p, 10, StreamOpts::default());
    p.drive();
    let (served, _, _) = opened(&mut p);
    let now = p.now;
    p.links[DIALER].cancel(now, mux);
    let seen = deliver_observed(&mut p, DIALER);
    assert_eq!(seen[0].msg.op, Op::DISCONNECT_SERVER_MUX);
    assert_eq!(
        one_event(&mut p, ACCEPTOR),
        Event::Ended {
            mux: served,
            result: Err(CallError::Canceled)
        }
    );
    assert_eq!(
        p.links[DIALER].open_exchanges() + p.links[ACCEPTOR].open_exchanges(),
        0
    );
}

#[test]
fn checklist_36_stream_deadline_cancels_both_sides() {
    let mut p = pair();
    let now = p.now;
    let opts = StreamOpts {
        deadline: Some(now + Duration::from_millis(50)),
        ..StreamOpts::default()
    };
    let mux = open(&mut p, 10, opts);
    p.drive();
    let (served, _, deadline) = opened(&mut p);
    assert_eq!(deadline, Some(now + Duration::from_millis(50)));
    p.advance(Duration::from_millis(50));
    assert!(p.take_events(DIALER).contains(&Event::Ended {
        mux,
        result: Err(CallError::Timeout)
    }));
    let ends: Vec<Event> = p.take_events(ACCEPTOR);
    assert!(
        ends.iter()
            .any(|e| matches!(e, Event::Ended { mux, result: Err(_) } if *mux == served)),
        "{ends:?}"
    );
    assert_eq!(
        p.links[DIALER].open_exchanges() + p.links[ACCEPTOR].open_exchanges(),
        0
    );
}

#[test]
fn checklist_37_subroutes_route_statically() {
    let mut p = pair();
    let now = p.now;
    let sub = SubrouteId::new(78, "subroute/1");
    p.links[DIALER]
        .request(now, 78, Some(sub), Bytes::from_static(b"x"), None)
        .unwrap();
    p.drive();
    let Event::Request { subroute, .. } = one_event(&mut p, ACCEPTOR) else {
        panic!()
    };
    assert_eq!(subroute, Some(sub));
    let other = SubrouteId::new(78, "subroute/2");
    p.links[DIALER]
        .request(now, 78, Some(other), Bytes::new(), None)
        .unwrap();
    p.drive();
    assert!(p.take_events(ACCEPTOR).is_empty());
    assert!(matches!(
        response(&mut p, DIALER).1,
        Err(CallError::Remote {
            code: ErrorCode::UnknownHandler,
            ..
        })
    ));
}

fn ping_config(c: &mut gridmux_core::link::LinkConfig) {
    c.stream_ping_interval = Duration::from_millis(100);
    c.stream_ping_timeout = Duration::from_millis(200);
    c.stream_idle_timeout = Duration::from_millis(400);
}

#[test]
fn checklist_38_stream_without_pongs_fails_and_cancels_the_handler() {
    let mut p = LinkPair::connected(origin(), ping_config);
    let mux = open(
        &mut p,
        11,
        StreamOpts {
            input: false,
            ..StreamOpts::default()
        },
    );
    p.drive();
    let (served, _, _) = opened(&mut p);
    // Server → client is blocked (the client's inbound processing hangs).
    let mut ended = None;
    for _ in 0..10 {
        p.now += Duration::from_millis(50);
        for side in [DIALER, ACCEPTOR] {
            if p.links[side].poll_timeout().is_some_and(|t| t <= p.now) {
                let now = p.now;
                p.links[side].handle_timeout(now);
            }
        }
        p.transfer(DIALER);
        swallow(&mut p, ACCEPTOR);
        if let Some(e) = p
            .take_events(DIALER)
            .into_iter()
            .find(|e| matches!(e, Event::Ended { .. }))
        {
            ended = Some((p.elapsed(), e));
            break;
        }
    }
    let (when, e) = ended.expect("the stream failed");
    assert_eq!(
        e,
        Event::Ended {
            mux,
            result: Err(CallError::Disconnected)
        }
    );
    assert!(
        when > Duration::from_millis(200) && when <= Duration::from_millis(350),
        "{when:?}"
    );
    assert!(p.take_events(ACCEPTOR).contains(&Event::Ended {
        mux: served,
        result: Err(CallError::Canceled)
    }));
}

#[test]
fn checklist_38_pings_keep_a_blocked_stream_alive() {
    let mut p = LinkPair::connected(origin(), ping_config);
    let mux = open(
        &mut p,
        11,
        StreamOpts {
            input: false,
            window: 1,
            ..StreamOpts::default()
        },
    );
    p.drive();
    let (served, _, _) = opened(&mut p);
    let now = p.now;
    p.links[ACCEPTOR].send(now, served, bytes_of(1, 0)).unwrap();
    // The consumer blocks (never consumes) for 1 s; pings keep flowing.
    p.advance(Duration::from_secs(1));
    assert!(!p
        .take_events(DIALER)
        .iter()
        .any(|e| matches!(e, Event::Ended { .. })));
    assert!(!p
        .take_events(ACCEPTOR)
        .iter()
        .any(|e| matches!(e, Event::Ended { .. })));
    assert_eq!(p.links[DIALER].open_exchanges(), 1, "{mux:?} alive");
}

#[test]
fn checklist_39_server_cancels_a_mux_not_pinged_for_4_intervals() {
    let mut p = LinkPair::connected(origin(), ping_config);
    open(
        &mut p,
        11,
        StreamOpts {
            input: false,
            ..StreamOpts::default()
        },
    );
    p.drive();
    let (served, _, _) = opened(&mut p);
    // Client → server is blocked: no pings arrive.
    let mut ended = None;
    for _ in 0..20 {
        p.now += Duration::from_millis(50);
        for side in [DIALER, ACCEPTOR] {
            if p.links[side].poll_timeout().is_some_and(|t| t <= p.now) {
                let now = p.now;
                p.links[side].handle_timeout(now);
            }
        }
        swallow(&mut p, DIALER);
        p.transfer(ACCEPTOR);
        if let Some(e) = p
            .take_events(ACCEPTOR)
            .into_iter()
            .find(|e| matches!(e, Event::Ended { .. }))
        {
            ended = Some((p.elapsed(), e));
            break;
        }
    }
    let (when, e) = ended.expect("the server gave up");
    assert_eq!(
        e,
        Event::Ended {
            mux: served,
            result: Err(CallError::Disconnected)
        }
    );
    assert!(
        when > Duration::from_millis(400) && when <= Duration::from_millis(550),
        "{when:?}"
    );
}

#[test]
fn checklist_40_ping_for_an_unknown_mux_gets_not_found() {
    let mut p = LinkPair::connected(origin(), ping_config);
    let mux = open(
        &mut p,
        11,
        StreamOpts {
            input: false,
            ..StreamOpts::default()
        },
    );
    p.drive();
    opened(&mut p);
    // The server forgets the stream without telling the caller.
    inject(
        &mut p,
        ACCEPTOR,
        &Message::new(Op::DISCONNECT_SERVER_MUX, mux.id),
    );
    p.take_events(ACCEPTOR);
    swallow(&mut p, ACCEPTOR);
    p.advance(Duration::from_millis(100));
    assert!(p.take_events(DIALER).contains(&Event::Ended {
        mux,
        result: Err(CallError::Disconnected)
    }));
}

#[test]
fn checklist_41_stateless_streams_are_refused() {
    let mut p = pair();
    let open_msg = Message {
        handler: 10,
        ..Message::new(Op::CONNECT_MUX, 42)
            .flags(Flags::STATELESS)
            .payload(gridmux_core::wire::encode_stream_open(1, b""))
    };
    inject(&mut p, ACCEPTOR, &open_msg);
    assert!(p.take_events(ACCEPTOR).is_empty());
    let seen = swallow(&mut p, ACCEPTOR);
    assert_eq!(seen[0].msg.op, Op::MUX_CONNECT_ERROR);
    let e = ErrorPayload::decode(seen[0].msg.payload.as_ref().unwrap()).unwrap();
    assert_eq!(e.message, "Stateless streams not supported");
}

#[test]
fn checklist_42_duplicate_registration_fails() {
    let mut t = HandlerTable::new();
    t.register(5, None, HandlerKind::Request).unwrap();
    assert_eq!(
        t.register(5, None, HandlerKind::Request),
        Err(RegisterError::AlreadyExists(5))
    );
    t.register(5, Some("a"), HandlerKind::Request).unwrap();
    assert_eq!(
        t.register(5, Some("a"), HandlerKind::Request),
        Err(RegisterError::AlreadyExists(5))
    );
    t.register(5, None, HandlerKind::Stream { in_capacity: 1 })
        .unwrap();
    assert_eq!(
        t.register(0, None, HandlerKind::Request),
        Err(RegisterError::ReservedId)
    );
}

#[test]
fn checklist_46_crc_only_when_configured() {
    let mut p = LinkPair::connected(origin(), |c| c.crc = false);
    request(&mut p, DIALER, 1, Bytes::new());
    let seen = deliver_observed(&mut p, DIALER);
    assert!(!seen[0].msg.flags.contains(Flags::CRC));
    let mut p = pair();
    request(&mut p, DIALER, 1, Bytes::new());
    assert!(deliver_observed(&mut p, DIALER)[0]
        .msg
        .flags
        .contains(Flags::CRC));
}

#[test]
fn checklist_47_unknown_ops_and_muxes_are_handled_quietly() {
    let mut p = pair();
    inject(&mut p, ACCEPTOR, &Message::new(Op::from_u8(99), 0));
    inject(&mut p, ACCEPTOR, &Message::new(Op::UNBLOCK_SRV_MUX, 77));
    assert!(p.take_events(ACCEPTOR).is_empty());
    assert!(swallow(&mut p, ACCEPTOR).is_empty(), "no answer to either");
    assert!(p.links[ACCEPTOR].is_connected());
    inject(
        &mut p,
        ACCEPTOR,
        &Message::new(Op::MUX_CLIENT_MSG, 77)
            .seq(1)
            .payload(bytes_of(1, 0)),
    );
    let seen = swallow(&mut p, ACCEPTOR);
    assert_eq!(
        (seen[0].msg.op, seen[0].msg.mux_id),
        (Op::DISCONNECT_CLIENT_MUX, 77)
    );
}

// ---- extensions -------------------------------------------------------------

#[test]
fn ext_overloaded_past_the_concurrent_request_cap() {
    let mut p = LinkPair::connected(origin(), |c| c.max_served_requests = 2);
    for _ in 0..3 {
        request(&mut p, DIALER, 3, Bytes::new());
    }
    p.drive();
    assert_eq!(p.take_events(ACCEPTOR).len(), 2);
    let (_, r) = response(&mut p, DIALER);
    assert!(matches!(
        r,
        Err(CallError::Remote {
            code: ErrorCode::Overloaded,
            ..
        })
    ));
}

#[test]
fn ext_message_size_limit_is_enforced_both_ways() {
    let mut p = LinkPair::connected(origin(), |c| {
        c.max_message_size = 1000;
        c.sync_ws_limits();
    });
    let now = p.now;
    assert!(matches!(
        p.links[DIALER].request(now, 1, None, bytes_of(1001, 0), None),
        Err(CommandError::TooLarge {
            size: 1001,
            max: 1000
        })
    ));
    request(&mut p, DIALER, 1, bytes_of(10, 0));
    p.drive();
    let Event::Request { mux, .. } = one_event(&mut p, ACCEPTOR) else {
        panic!()
    };
    let now = p.now;
    assert!(matches!(
        p.links[ACCEPTOR].respond(now, mux, Ok(bytes_of(5000, 0))),
        Err(CommandError::TooLarge { .. })
    ));
    p.drive();
    assert!(matches!(
        response(&mut p, DIALER).1,
        Err(CallError::Remote {
            code: ErrorCode::Application,
            ..
        })
    ));
}

#[test]
fn ext_open_exchange_cap_refuses_new_calls() {
    let mut p = LinkPair::connected(origin(), |c| c.max_open_muxes = 3);
    for _ in 0..3 {
        request(&mut p, DIALER, 3, Bytes::new());
    }
    let now = p.now;
    assert_eq!(
        p.links[DIALER].request(now, 3, None, Bytes::new(), None),
        Err(CommandError::TooManyMuxes(3))
    );
}
