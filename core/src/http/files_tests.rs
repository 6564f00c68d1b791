use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;

use super::files::{self, FileMeta, FileRefusal};
use super::*;
use crate::auth::request::{self, RequestToSign};
use crate::auth::Keyring;
use crate::ws::Transmit;

const NOW: u64 = 1_700_000_000;

fn keys() -> Keyring {
    Keyring::new(["files secret"]).unwrap()
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

/// A request head for `method target` with these extra headers.
fn head(method: &str, target: &str, headers: &[(&str, &str)]) -> RequestHead {
    let mut text = format!("{method} {target} HTTP/1.1\r\nHost: n\r\n");
    for (n, v) in headers {
        text.push_str(&format!("{n}: {v}\r\n"));
    }
    text.push_str("\r\n");
    parse_request(text.as_bytes(), Limits::default())
        .unwrap()
        .unwrap()
        .0
}

/// A presigned target for `key` on `route`.
fn signed(keys: &Keyring, method: &str, route: &str, key: &str, range: Option<&str>) -> String {
    let (path, query) = files::target(route, key);
    let signed = request::sign(
        keys,
        &RequestToSign {
            method,
            path: &path,
            query: &query,
            range,
            signer: "node-a:1",
            expires: NOW + 30,
        },
    )
    .unwrap();
    signed.presigned_target()
}

fn check(head: &RequestHead) -> Result<files::FileRequest, FileRefusal> {
    files::check(head, &keys(), now(), Duration::from_secs(60))
}

#[test]
fn a_signed_request_names_its_route_key_and_signer() {
    let target = signed(&keys(), "GET", "data", "a/b c%.bin", None);
    let req = check(&head("GET", &target, &[])).unwrap();
    assert_eq!(
        (req.route.as_str(), req.key.as_str(), req.signer.as_str()),
        ("data", "a/b c%.bin", "node-a:1")
    );
    assert!(!req.head_only);
    let target = signed(&keys(), "HEAD", "data", "k", None);
    assert!(check(&head("HEAD", &target, &[])).unwrap().head_only);
}

#[test]
fn unsigned_forged_tampered_and_expired_requests_are_refused() {
    let unsigned = head("GET", "/gridmux/v1/files/data?key=k", &[]);
    assert_eq!(check(&unsigned), Err(FileRefusal::Unsigned));
    assert_eq!(FileRefusal::Unsigned.response().status, 401);
    // Another secret.
    let other = Keyring::new(["another secret"]).unwrap();
    let forged = signed(&other, "GET", "data", "k", None);
    let refused = check(&head("GET", &forged, &[])).unwrap_err();
    assert_eq!(refused.status(), 403);
    // Signed for a range, sent with another, or with none.
    let ranged = signed(&keys(), "GET", "data", "k", Some("bytes=0-9"));
    let tampered = head("GET", &ranged, &[("Range", "bytes=0-99999")]);
    assert_eq!(check(&tampered).unwrap_err().status(), 403);
    assert_eq!(check(&head("GET", &ranged, &[])).unwrap_err().status(), 403);
    assert!(check(&head("GET", &ranged, &[("Range", "bytes=0-9")])).is_ok());
    // Another key in the same signed URL.
    let moved = signed(&keys(), "GET", "data", "k", None).replace("key=k", "key=secret");
    assert_eq!(check(&head("GET", &moved, &[])).unwrap_err().status(), 403);
    // A GET signature does not serve a HEAD.
    let get = signed(&keys(), "GET", "data", "k", None);
    assert_eq!(check(&head("HEAD", &get, &[])).unwrap_err().status(), 403);
    // Expired.
    let late = files::check(
        &head("GET", &get, &[]),
        &keys(),
        now() + Duration::from_secs(31),
        Duration::from_secs(60),
    );
    assert!(matches!(late, Err(FileRefusal::Forbidden(_))));
    // The answer says nothing of why.
    let body = refused.response().body;
    assert_eq!(&body[..], b"request signature refused\n");
}

#[test]
fn methods_routes_and_keys_are_checked() {
    let put = head("PUT", "/gridmux/v1/files/data?key=k", &[]);
    assert_eq!(check(&put), Err(FileRefusal::Method));
    for route in ["", "a/b", "..", &"r".repeat(65)] {
        let target = format!("{}?key=k", files::FILES_PREFIX.to_owned() + route);
        let signed = request::sign(
            &keys(),
            &RequestToSign {
                method: "GET",
                path: target.split('?').next().unwrap(),
                query: "key=k",
                range: None,
                signer: "n",
                expires: NOW + 30,
            },
        )
        .unwrap();
        let refusal = check(&head("GET", &signed.presigned_target(), &[]));
        // ".." passes the route check only to be an unknown route; the
        // others are malformed.
        if route == ".." {
            assert!(refusal.is_ok());
        } else {
            assert_eq!(refusal, Err(FileRefusal::BadRequest("route")), "{route:?}");
        }
    }
    for (query, why) in [
        ("other=1", "no key"),
        ("key=a&key=b", "more than one key"),
        ("key=%zz", "key encoding"),
        ("key=%ff", "key encoding"),
        ("key=a%00b", "key"),
        ("key=", "key"),
    ] {
        let signed = request::sign(
            &keys(),
            &RequestToSign {
                method: "GET",
                path: "/gridmux/v1/files/data",
                query,
                range: None,
                signer: "n",
                expires: NOW + 30,
            },
        )
        .unwrap();
        let refusal = check(&head("GET", &signed.presigned_target(), &[]));
        assert_eq!(refusal, Err(FileRefusal::BadRequest(why)), "{query}");
    }
}

#[test]
fn answers_carry_length_ranges_and_validators() {
    let meta = FileMeta {
        len: 100,
        modified: Some(UNIX_EPOCH + Duration::new(1_600_000_000, 5)),
    };
    let full = files::answer(None, &meta);
    assert_eq!((full.response.status, full.body), (200, 0..100));
    let etag = meta.etag();
    assert!(full
        .response
        .headers
        .contains(&("ETag".into(), etag.clone())));
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let last = files::answer(Some(b"bytes=-1"), &meta);
    assert_eq!((last.response.status, last.body), (206, 99..100));
    let out = files::answer(Some(b"bytes=100-"), &meta);
    assert_eq!((out.response.status, out.body), (416, 0..0));
    assert!(out
        .response
        .headers
        .contains(&("Content-Range".into(), "bytes */100".into())));
    // Another modification time, another tag.
    let touched = FileMeta {
        modified: Some(UNIX_EPOCH + Duration::new(1_600_000_000, 6)),
        ..meta
    };
    assert_ne!(touched.etag(), etag);
}

#[test]
fn http_dates_follow_imf_fixdate() {
    let at = |s| files::http_date(UNIX_EPOCH + Duration::from_secs(s));
    assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
    assert_eq!(at(4_107_542_399), "Sun, 28 Feb 2100 23:59:59 GMT");
}

#[expect(clippy::disallowed_methods, reason = "a fake clock needs an origin")]
fn t0() -> Instant {
    Instant::now()
}

#[test]
fn a_body_sent_out_of_band_holds_pipelined_requests_until_it_is_done() {
    let now = t0();
    let mut c = ServerConnection::new(Limits::default(), Duration::from_secs(5), now);
    let mut buf = BytesMut::from(&b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"[..]);
    c.handle_input(now, &mut buf);
    assert!(matches!(c.poll_event(), Some(Event::Request(_))));
    assert!(c.respond_with_body(now, &Response::new(200), 10));
    let mut out = Transmit::new();
    c.poll_transmit(&mut out);
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert!(text.contains("Content-Length: 10\r\n") && text.ends_with("\r\n\r\n"));
    // While the body goes out, the next request waits in the buffer.
    c.handle_input(now, &mut buf);
    assert!(c.poll_event().is_none());
    assert_eq!(c.poll_timeout(), None);
    c.body_sent(now);
    c.handle_input(now, &mut buf);
    assert!(matches!(c.poll_event(), Some(Event::Request(h)) if h.target == "/b"));
    // An aborted body closes the connection without another byte.
    assert!(c.respond_with_body(now, &Response::new(200), 10));
    c.poll_transmit(&mut Transmit::new());
    c.body_aborted();
    assert_eq!(
        c.poll_event(),
        Some(Event::Closed(CloseReason::BodyAborted))
    );
    assert!(!c.poll_transmit(&mut Transmit::new()));
}

#[test]
fn head_requests_and_empty_bodies_need_no_body() {
    let now = t0();
    let mut c = ServerConnection::new(Limits::default(), Duration::from_secs(5), now);
    let mut buf = BytesMut::from(&b"HEAD /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"[..]);
    c.handle_input(now, &mut buf);
    c.poll_event();
    // A HEAD answer announces the GET's length and sends nothing more.
    assert!(!c.respond_with_body(now, &Response::new(200), 4096));
    let mut out = Transmit::new();
    c.poll_transmit(&mut out);
    assert!(String::from_utf8(out.to_vec())
        .unwrap()
        .contains("Content-Length: 4096\r\n"));
    c.handle_input(now, &mut buf);
    c.poll_event();
    assert!(!c.respond_with_body(now, &Response::new(200), 0));
    c.handle_input(now, &mut buf);
    assert!(c.poll_event().is_none());
}

#[test]
fn response_heads_frame_bodies_by_content_length_only() {
    let parse = |text: &str| parse_response(text.as_bytes(), Limits::default());
    let (head, len) = parse("HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap()
        .unwrap();
    assert_eq!((head.status, len, head.body_len(false)), (206, 51, Ok(5)));
    assert_eq!(head.body_len(true), Ok(0));
    assert!(head.keep_alive());
    assert_eq!(parse("HTTP/1.1 200 OK\r\nContent-Le"), Ok(None));
    let chunked = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert!(chunked.unwrap().unwrap().0.body_len(false).is_err());
    let unframed = parse("HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap().0;
    assert!(unframed.body_len(false).is_err());
    let twice = parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    assert!(twice.unwrap().unwrap().0.body_len(false).is_err());
    let signed = parse("HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n");
    assert!(signed.unwrap().unwrap().0.body_len(false).is_err());
    let closing = parse("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    let closing = closing.unwrap().unwrap().0;
    assert_eq!(
        (closing.keep_alive(), closing.body_len(false)),
        (false, Ok(0))
    );
    assert!(parse("NOT HTTP\r\n\r\n").is_err());
}
