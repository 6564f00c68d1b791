//! Twin tests: see `main.rs`.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use gridmux_core::cluster::should_dial;
use gridmux_core::fuzzing::LinkPair;
use gridmux_core::link::{CallError, CommandError, Event, Link, LinkError, StreamOpts};
use gridmux_core::ws::Transmit;
use gridmux_tests::twin::{bytes_of, run_one_way, swallow};

use crate::*;

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
    let mut rng = gridmux_core::fuzzing::CountingRng(9);
    let mut acceptor = Link::accept(
        configs[1].clone(),
        origin(),
        std::time::SystemTime::now(),
        &mut rng,
    );
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
    // Our path is /gridmux/v1 (MinIO: /minio/grid/v1). No token or a bad
    // one: the same 401 (ext: MinIO answers 403 for a bad token, which
    // tells a prober what failed); not an upgrade: 426; wrong path: 404.
    let base =
        "GET /gridmux/v1 HTTP/1.1\r\nHost: b:1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    let (answer, events) = upgrade_answer(&format!("{base}\r\n"));
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(matches!(
        events.last(),
        Some(Event::Closed(LinkError::Unauthenticated(_)))
    ));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let bad = format!(
        "{base}Authorization: Bearer {}\r\nX-Gridmux-Host: a:1\r\nX-Gridmux-Time: {nanos}\r\n\r\n",
        "0".repeat(64)
    );
    assert_eq!(
        upgrade_answer(&bad).0,
        answer,
        "one answer, whatever failed"
    );
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
    use gridmux_core::auth::Keyring;
    let accepted = connect_with(|_| {});
    assert!(matches!(accepted[0], Event::Connected { .. }));
    // Bad token: a different secret (the upgrade filter already fails).
    let events = connect_with(|c| c.keys = std::sync::Arc::new(Keyring::new(["other"]).unwrap()));
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
    let mut acceptor = Link::accept(a.clone(), now, wall, &mut rng_for_acceptor());
    handshake(&mut dialer, &mut acceptor, now);
    // Checked once the dialer proved itself, so it may learn why.
    assert_rejected(&mut dialer, "clock skew");
    // The wrong side dials: the designated acceptor dials the dialer.
    let rng = Box::new(gridmux_core::fuzzing::CountingRng(2));
    let mut wrong = Link::dial(a, d.local.clone(), now, wall, rng);
    let mut acceptor = Link::accept(d, now, wall, &mut rng_for_acceptor());
    handshake(&mut wrong, &mut acceptor, now);
    assert_rejected(&mut wrong, "expected to be client side");
}

fn rng_for_acceptor() -> gridmux_core::fuzzing::CountingRng {
    gridmux_core::fuzzing::CountingRng(1000)
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
    let start = p.elapsed();
    let closed = run_one_way(
        &mut p,
        DIALER,
        Duration::from_millis(100),
        300,
        DIALER,
        |e| matches!(e, Event::Closed(_)),
    )
    .map(|(at, e)| match e {
        Event::Closed(reason) => (at - start, reason),
        _ => unreachable!(),
    });
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
