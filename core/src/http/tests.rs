use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::*;
use crate::ws::Transmit;

#[expect(clippy::disallowed_methods, reason = "a fake clock needs an origin")]
fn t0() -> Instant {
    Instant::now()
}

fn conn() -> (ServerConnection, Instant) {
    let now = t0();
    (
        ServerConnection::new(Limits::default(), Duration::from_secs(5), now),
        now,
    )
}

fn written(c: &mut ServerConnection) -> String {
    let mut out = Transmit::new();
    c.poll_transmit(&mut out);
    String::from_utf8_lossy(&out.to_vec()).into_owned()
}

#[test]
fn keep_alive_serves_pipelined_requests_in_order() {
    let (mut c, now) = conn();
    let mut buf = BytesMut::from(
        &b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"[..],
    );
    c.handle_input(now, &mut buf);
    let Some(Event::Request(a)) = c.poll_event() else {
        panic!()
    };
    assert_eq!(a.path(), "/a");
    assert_eq!(c.poll_event(), None, "one request at a time");
    c.respond(now, &Response::text(200, "first"));
    c.handle_input(now, &mut buf);
    let Some(Event::Request(b)) = c.poll_event() else {
        panic!()
    };
    assert_eq!((b.method.as_str(), b.path()), ("HEAD", "/b"));
    c.respond(now, &Response::text(200, "second"));
    let text = written(&mut c);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(text.contains("Content-Length: 5\r\n\r\nfirst"));
    assert!(
        text.ends_with("Content-Length: 6\r\n\r\n"),
        "HEAD: no body: {text}"
    );
}

#[test]
fn close_and_http10_end_the_connection() {
    for req in [
        "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
    ] {
        let (mut c, now) = conn();
        c.handle_input(now, &mut BytesMut::from(req.as_bytes()));
        assert!(matches!(c.poll_event(), Some(Event::Request(_))));
        c.respond(now, &Response::new(204));
        assert_eq!(c.poll_event(), Some(Event::Closed(CloseReason::Done)));
        let text = written(&mut c);
        assert!(
            text.contains("Connection: close") && !text.contains("Content-Length"),
            "{text}"
        );
    }
}

#[test]
fn upgrades_are_handed_over_with_the_rest_of_the_input() {
    let (mut c, now) = conn();
    let mut buf = BytesMut::from(
        &b"GET /gridmux/v1 HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n\x82\x00"[..],
    );
    c.handle_input(now, &mut buf);
    assert!(matches!(c.poll_event(), Some(Event::Upgrade(h)) if h.path() == "/gridmux/v1"));
    assert_eq!(&buf[..], b"\x82\x00");
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn bad_requests_get_the_right_status_and_close() {
    let cases: [(&[u8], &str); 4] = [
        (b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", "413"),
        (
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "400",
        ),
        (b"\x00\x01garbage\r\n\r\n", "400"),
        (
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "413",
        ),
    ];
    for (input, status) in cases {
        let (mut c, now) = conn();
        c.handle_input(now, &mut BytesMut::from(input));
        assert!(matches!(
            c.poll_event(),
            Some(Event::Closed(CloseReason::Refused(_)))
        ));
        assert!(written(&mut c).starts_with(&format!("HTTP/1.1 {status} ")));
    }
    let (mut c, now) = conn();
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    c.handle_input(now, &mut BytesMut::from(huge.as_bytes()));
    assert!(written(&mut c).starts_with("HTTP/1.1 431 "));
}

#[test]
fn a_head_that_never_completes_times_out() {
    let (mut c, now) = conn();
    c.handle_input(now, &mut BytesMut::from(&b"GET / HT"[..]));
    assert_eq!(c.poll_timeout(), Some(now + Duration::from_secs(5)));
    c.handle_timeout(now + Duration::from_secs(4));
    assert_eq!(c.poll_event(), None);
    c.handle_timeout(now + Duration::from_secs(5));
    assert_eq!(c.poll_event(), Some(Event::Closed(CloseReason::Timeout)));
    assert!(written(&mut c).starts_with("HTTP/1.1 408 "));
    // An idle keep-alive connection closes silently.
    let (mut c, now) = conn();
    c.handle_timeout(now + Duration::from_secs(5));
    assert_eq!(c.poll_event(), Some(Event::Closed(CloseReason::Timeout)));
    assert!(written(&mut c).is_empty());
}

#[test]
fn response_headers_cannot_inject_lines() {
    let r = Response::new(200)
        .header("X-A", "v\r\nSet-Cookie: x")
        .body(Bytes::from_static(b"b"));
    let head = String::from_utf8_lossy(&r.encode(false, false)[0]).into_owned();
    assert!(!head.contains("Set-Cookie"));
}

/// Item 20 of issue 11: a head fed one byte per read is parsed a few
/// times, not once per byte (which cost O(length²)).
#[test]
fn a_head_fed_byte_by_byte_is_parsed_once_it_is_complete() {
    let (mut c, now) = conn();
    let mut head = b"GET /health HTTP/1.1\r\nHost: n\r\n".to_vec();
    for i in 0..60 {
        head.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(160)).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    assert!(head.len() > 10_000);
    let mut buf = BytesMut::new();
    for byte in &head {
        buf.extend_from_slice(&[*byte]);
        c.handle_input(now, &mut buf);
    }
    assert!(matches!(c.poll_event(), Some(Event::Request(_))));
    assert!(c.parses <= 3, "{} full parses", c.parses);
    // Garbage is still refused at once, not after the whole limit.
    let (mut c, now) = conn();
    c.handle_input(now, &mut BytesMut::from(&b"\x01\x02garbage"[..]));
    assert!(matches!(
        c.poll_event(),
        Some(Event::Closed(CloseReason::Refused(_)))
    ));
}
