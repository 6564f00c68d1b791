//! Endpoint tests, all on a fake clock.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::*;

/// Origin of the fake clock: tests only move it by explicit offsets.
#[expect(
    clippy::disallowed_methods,
    reason = "the one arbitrary origin of the fake clock"
)]
fn t0() -> Instant {
    Instant::now()
}

fn config() -> Config {
    Config {
        max_frame_size: 1024,
        max_message_size: 4096,
        ..Config::default()
    }
}

fn drain(ep: &mut Endpoint, now: Instant) -> Vec<u8> {
    let mut out = Transmit::new();
    while ep.poll_transmit(now, &mut out) {}
    out.to_vec()
}

fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

/// Moves everything `from` wants to send into `to`.
fn shuttle(from: &mut Endpoint, to: &mut Endpoint, now: Instant) {
    let bytes = drain(from, now);
    if !bytes.is_empty() {
        to.handle_input(now, &mut BytesMut::from(&bytes[..]));
    }
}

fn open_pair(now: Instant) -> (Endpoint, Endpoint) {
    let rng = Box::new(SmallRng::seed_from_u64(7));
    let mut client = Endpoint::client(config(), &ClientRequest::new("h", "/p"), rng, now);
    let mut server = Endpoint::server(config(), now);
    shuttle(&mut client, &mut server, now);
    shuttle(&mut server, &mut client, now);
    assert!(
        matches!(&events(&mut server)[..], [Event::Open(Handshake::Server(r))] if r.path == "/p")
    );
    assert!(matches!(
        &events(&mut client)[..],
        [Event::Open(Handshake::Client(_))]
    ));
    (client, server)
}

/// A masked client frame as raw bytes.
fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0xa1, 0xb2, 0xc3, 0xd4];
    let mut out = BytesMut::new();
    out.put_u8(u8::from(fin) << 7 | opcode);
    assert!(payload.len() < 126);
    out.put_u8(0x80 | payload.len() as u8);
    out.put_slice(&key);
    let start = out.len();
    out.put_slice(payload);
    apply_mask(&mut out[start..], key, 0);
    out.to_vec()
}

fn feed(ep: &mut Endpoint, now: Instant, bytes: &[u8]) {
    ep.handle_input(now, &mut BytesMut::from(bytes));
}

fn failed_with(ev: &[Event]) -> Option<CloseCode> {
    match ev.last() {
        Some(Event::Closed(CloseCause::Failed(e))) => Some(e.close_code()),
        _ => None,
    }
}

/// The close code in the last frame an endpoint sent (server side: unmasked).
fn sent_close_code(wire: &[u8]) -> Option<u16> {
    let mut dec = FrameDecoder::new(Role::Client, 1 << 20);
    let mut buf = BytesMut::from(wire);
    let mut last = None;
    while let Ok(Some(f)) = dec.decode(&mut buf) {
        if f.opcode == OpCode::Close {
            last = Some(u16::from_be_bytes([f.payload[0], f.payload[1]]));
        }
    }
    last
}

#[test]
fn messages_flow_both_ways_and_client_frames_are_masked() {
    let now = t0();
    let (mut client, mut server) = open_pair(now);
    client.send(Message::text("hello")).unwrap();
    let wire = drain(&mut client, now);
    assert_eq!(wire[1] & 0x80, 0x80, "client frames are masked");
    feed(&mut server, now, &wire);
    assert_eq!(
        events(&mut server),
        [Event::Message(Message::text("hello"))]
    );
    server.send(Message::binary(vec![1, 2, 3])).unwrap();
    let wire = drain(&mut server, now);
    assert_eq!(wire, [0x82, 0x03, 1, 2, 3], "server frames are not masked");
    feed(&mut client, now, &wire);
    assert_eq!(
        events(&mut client),
        [Event::Message(Message::binary(vec![1, 2, 3]))]
    );
}

#[test]
fn ping_is_answered_with_pong_ahead_of_data() {
    let now = t0();
    let (_, mut server) = open_pair(now);
    server.send(Message::binary(vec![9; 10])).unwrap();
    feed(&mut server, now, &client_frame(true, 0x9, b"abc"));
    assert_eq!(
        events(&mut server),
        [Event::Ping(Bytes::from_static(b"abc"))]
    );
    let wire = drain(&mut server, now);
    assert_eq!(&wire[..5], [0x8A, 0x03, b'a', b'b', b'c']);
    assert_eq!(&wire[5..7], [0x82, 10]);
}

#[test]
fn fragments_with_interleaved_control_frames_reassemble() {
    let now = t0();
    let (_, mut server) = open_pair(now);
    let mut wire = client_frame(false, 0x1, "κό".as_bytes());
    wire.extend(client_frame(true, 0x9, b"p"));
    wire.extend(client_frame(false, 0x0, "σμ".as_bytes()));
    wire.extend(client_frame(true, 0x0, "ε".as_bytes()));
    // Byte by byte: every split yields the same result.
    let mut buf = BytesMut::new();
    for b in &wire {
        buf.put_u8(*b);
        server.handle_input(now, &mut buf);
    }
    assert_eq!(
        events(&mut server),
        [
            Event::Ping(Bytes::from_static(b"p")),
            Event::Message(Message::text("κόσμε"))
        ]
    );
}

#[test]
fn utf8_split_across_fragments_is_valid_but_invalid_fails_fast_with_1007() {
    let now = t0();
    let (_, mut server) = open_pair(now);
    let euro = "€".as_bytes();
    let mut wire = client_frame(false, 0x1, &euro[..1]);
    wire.extend(client_frame(true, 0x0, &euro[1..]));
    feed(&mut server, now, &wire);
    assert_eq!(events(&mut server), [Event::Message(Message::text("€"))]);

    // 0xF4 0x90 can never be valid: the connection fails before the frame ends.
    let frame = client_frame(true, 0x1, b"ok\xf4\x90\x80\x80 and more");
    feed(&mut server, now, &frame[..6 + 4]);
    let ev = events(&mut server);
    assert_eq!(failed_with(&ev), Some(CloseCode::INVALID_PAYLOAD));
    assert_eq!(sent_close_code(&drain(&mut server, now)), Some(1007));
}

#[test]
fn protocol_violations_close_with_the_right_code() {
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (client_frame(true, 0x3, b""), 1002),  // reserved opcode
        (client_frame(true, 0x0, b"x"), 1002), // continuation, no message
        (client_frame(false, 0x9, b""), 1002), // fragmented ping
        (
            [
                client_frame(false, 0x1, b"a"),
                client_frame(true, 0x1, b"b"),
            ]
            .concat(),
            1002,
        ),
        (client_frame(true, 0x8, b"\x03"), 1002), // 1-byte close
        (client_frame(true, 0x8, b"\x03\xed"), 1002), // close code 1005
        (client_frame(true, 0x8, b"\x03\xe8\xff"), 1007), // close reason not UTF-8
        (vec![0x82, 0x05, 1, 2, 3, 4, 5], 1002),  // unmasked client frame
        (
            {
                let mut f = client_frame(true, 0x2, b"");
                f[0] |= 0x40;
                f
            },
            1002,
        ), // RSV1
        (vec![0x82, 0xFE, 0x04, 0x01, 0, 0, 0, 0], 1009), // frame over 1024 bytes
    ];
    for (wire, code) in cases {
        let now = t0();
        let (_, mut server) = open_pair(now);
        feed(&mut server, now, &wire);
        let ev = events(&mut server);
        assert_eq!(
            failed_with(&ev).map(|c| c.0),
            Some(code),
            "{wire:x?}: {ev:?}"
        );
        assert!(server.is_closed());
        assert_eq!(
            sent_close_code(&drain(&mut server, now)),
            Some(code),
            "{wire:x?}"
        );
        // Further input is ignored.
        feed(&mut server, now, &client_frame(true, 0x1, b"late"));
        assert!(events(&mut server).is_empty());
    }
}

#[test]
fn message_over_the_limit_across_fragments_is_1009() {
    let now = t0();
    let (_, mut server) = open_pair(now);
    let chunk = [b'a'; 100];
    let mut closed = None;
    for i in 0..50 {
        let opcode = if i == 0 { 0x2 } else { 0x0 };
        feed(&mut server, now, &client_frame(false, opcode, &chunk));
        closed = failed_with(&events(&mut server));
        if closed.is_some() {
            break;
        }
    }
    assert_eq!(closed, Some(CloseCode::MESSAGE_TOO_BIG));
    assert!(server.reassembly_bytes() <= 4096);
}

#[test]
fn messages_before_an_error_can_still_be_answered() {
    let now = t0();
    let (_, mut server) = open_pair(now);
    let mut wire = client_frame(true, 0x1, b"first");
    wire.extend(client_frame(true, 0x3, b""));
    feed(&mut server, now, &wire);
    assert_eq!(
        server.poll_event(),
        Some(Event::Message(Message::text("first")))
    );
    server.send(Message::text("first")).unwrap();
    assert!(matches!(
        server.poll_event(),
        Some(Event::Closed(CloseCause::Failed(_)))
    ));
    let out = drain(&mut server, now);
    assert_eq!(&out[..7], b"\x81\x05first");
    assert_eq!(sent_close_code(&out), Some(1002));
}

#[test]
fn server_initiated_close_handshake() {
    let now = t0();
    let (mut client, mut server) = open_pair(now);
    server.close(now, CloseCode::GOING_AWAY, "bye").unwrap();
    assert_eq!(server.send(Message::text("x")), Err(SendError::NotOpen));
    shuttle(&mut server, &mut client, now);
    // The client answers and waits for the server to close TCP.
    assert!(events(&mut client).is_empty());
    shuttle(&mut client, &mut server, now);
    assert_eq!(
        events(&mut server),
        [Event::Closed(CloseCause::Clean {
            code: Some(CloseCode::GOING_AWAY),
            reason: String::new(),
            initiated_locally: true
        })]
    );
    client.handle_eof(now);
    assert_eq!(
        events(&mut client),
        [Event::Closed(CloseCause::Clean {
            code: Some(CloseCode::GOING_AWAY),
            reason: "bye".into(),
            initiated_locally: false
        })]
    );
}

#[test]
fn client_closes_tcp_itself_if_the_server_lingers() {
    let now = t0();
    let (mut client, mut server) = open_pair(now);
    client.close(now, CloseCode::NORMAL, "").unwrap();
    let deadline = client.poll_timeout().unwrap();
    assert_eq!(deadline, now + config().close_timeout);
    shuttle(&mut client, &mut server, now);
    assert!(matches!(
        &events(&mut server)[..],
        [Event::Closed(CloseCause::Clean { .. })]
    ));
    shuttle(&mut server, &mut client, now);
    assert!(
        events(&mut client).is_empty(),
        "waiting for the server's TCP close"
    );
    client.handle_timeout(deadline - Duration::from_millis(1));
    assert!(events(&mut client).is_empty(), "early timeouts do nothing");
    client.handle_timeout(deadline);
    assert!(matches!(
        &events(&mut client)[..],
        [Event::Closed(CloseCause::Clean {
            initiated_locally: true,
            ..
        })]
    ));
}

#[test]
fn unanswered_close_times_out() {
    let now = t0();
    let (_, mut server) = open_pair(now);
    server.close(now, CloseCode::NORMAL, "").unwrap();
    let _ = drain(&mut server, now);
    let at = server.poll_timeout().unwrap();
    server.handle_timeout(at);
    assert_eq!(
        events(&mut server),
        [Event::Closed(CloseCause::CloseTimeout)]
    );
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn handshake_times_out_and_bad_handshakes_get_http_errors() {
    let now = t0();
    let mut server = Endpoint::server(config(), now);
    feed(&mut server, now, b"GET / HTTP/1.1\r\n");
    let at = server.poll_timeout().unwrap();
    assert_eq!(at, now + config().handshake_timeout);
    server.handle_timeout(at);
    assert_eq!(
        events(&mut server),
        [Event::Closed(CloseCause::HandshakeTimeout)]
    );

    let mut server = Endpoint::server(config(), now);
    feed(&mut server, now, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = String::from_utf8(drain(&mut server, now)).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{out}"
    );
    assert!(matches!(
        &events(&mut server)[..],
        [Event::Closed(CloseCause::Failed(ProtocolError::Handshake(
            _
        )))]
    ));
}

#[test]
fn eof_without_close_is_abnormal() {
    let now = t0();
    let (mut client, _) = open_pair(now);
    client.handle_eof(now);
    assert_eq!(events(&mut client), [Event::Closed(CloseCause::Abnormal)]);
    client.handle_eof(now);
    assert!(events(&mut client).is_empty(), "Closed is reported once");
}

#[test]
fn send_queue_is_bounded() {
    let now = t0();
    let mut cfg = config();
    cfg.max_send_queue = 100;
    let mut server = Endpoint::upgraded(cfg, Role::Server, None);
    server.send(Message::binary(vec![0; 80])).unwrap();
    assert_eq!(
        server.send(Message::binary(vec![0; 80])),
        Err(SendError::QueueFull {
            queued: 80,
            max: 100
        })
    );
    let _ = drain(&mut server, now);
    assert_eq!(server.queued_bytes(), 0);
    server.send(Message::binary(vec![0; 80])).unwrap();
}

#[test]
fn pongs_are_bounded_under_a_ping_flood() {
    let now = t0();
    let (_, mut server) = open_pair(now);
    let wire: Vec<u8> = (0..1000)
        .flat_map(|_| client_frame(true, 0x9, &[7; 125]))
        .collect();
    feed(&mut server, now, &wire);
    assert_eq!(events(&mut server).len(), 1000);
    let out = drain(&mut server, now);
    assert_eq!(out.len(), 16 * 127);
}

#[test]
fn our_pings_are_bounded_and_not_displaced_by_pongs() {
    let now = t0();
    let (_, mut server) = open_pair(now);
    for _ in 0..16 {
        server.ping(Bytes::from_static(b"me")).unwrap();
    }
    assert!(matches!(
        server.ping(Bytes::new()),
        Err(SendError::QueueFull { .. })
    ));
    let flood: Vec<u8> = (0..40)
        .flat_map(|_| client_frame(true, 0x9, b"peer"))
        .collect();
    feed(&mut server, now, &flood);
    let out = drain(&mut server, now);
    // 16 pongs of 6 bytes, then all 16 of our pings of 4 bytes.
    assert_eq!(out.len(), 16 * 6 + 16 * 4);
    assert_eq!(&out[16 * 6..16 * 6 + 4], [0x89, 0x02, b'm', b'e']);
}
