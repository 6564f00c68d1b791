//! (ext) Ordering and protocol defects found in review (issue 11, core
//! items): each test failed on the code before its fix.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gridmux_core::link::{CallError, Event, LinkError, StreamOpts};
use gridmux_core::wire::{Message, Op};
use gridmux_core::ws::apply_mask;
use gridmux_tests::twin::inject;

use crate::*;

/// Events of `side` as (messages, end) of stream `mux`.
fn stream_outcome(events: &[Event], mux: MuxId) -> (Vec<Bytes>, Option<Result<(), CallError>>) {
    let mut messages = Vec::new();
    let mut end = None;
    for e in events {
        match e {
            Event::Message { mux: m, payload } if *m == mux => {
                assert!(end.is_none(), "a message after the end: {events:?}");
                messages.push(payload.clone());
            }
            Event::Ended { mux: m, result } if *m == mux => {
                assert!(end.is_none(), "two ends: {events:?}");
                end = Some(result.clone());
            }
            _ => {}
        }
    }
    (messages, end)
}

/// The server sends 3 messages and ends its stream while its socket takes
/// nothing; the caller's periodic stream ping arrives meanwhile. The pong
/// ("not found": the served stream is gone from the table) must not
/// overtake the 3 messages and the EOF (item 15, first reproduction).
#[test]
fn ext_review_15_a_stream_pong_never_overtakes_the_streams_data() {
    let mut p = pair();
    let mux = open(&mut p, 11, one_way());
    p.transfer(DIALER);
    let (served, _, _) = opened(&mut p);
    p.transfer(ACCEPTOR); // AckMux
    p.take_events(DIALER);
    let now = p.now;
    for i in 0..3u8 {
        p.links[ACCEPTOR]
            .send(now, served, Bytes::from(vec![i]))
            .unwrap();
    }
    p.links[ACCEPTOR].finish(now, served).unwrap();
    // Only the caller's side moves: its stream ping goes out and arrives.
    p.now += Duration::from_secs(16);
    let now = p.now;
    p.links[DIALER].handle_timeout(now);
    p.transfer(DIALER);
    // The server's socket becomes writable again.
    p.drive();
    let (messages, end) = stream_outcome(&p.take_events(DIALER), mux);
    assert_eq!(messages.len(), 3);
    assert_eq!(end, Some(Ok(())));
}

/// A client message is in flight when the server finishes its stream:
/// the "unknown stream" answer must not overtake the server's messages and
/// EOF (item 15, second reproduction).
#[test]
fn ext_review_15_b_an_unknown_stream_answer_never_overtakes_its_data() {
    let mut p = pair();
    let mux = open(&mut p, 10, StreamOpts::default());
    p.transfer(DIALER);
    let (served, _, _) = opened(&mut p);
    p.transfer(ACCEPTOR); // AckMux: the caller has credits
    p.take_events(DIALER);
    let now = p.now;
    p.links[DIALER]
        .send(now, mux, Bytes::from_static(b"late"))
        .unwrap();
    for i in 0..3u8 {
        p.links[ACCEPTOR]
            .send(now, served, Bytes::from(vec![i]))
            .unwrap();
    }
    p.links[ACCEPTOR].finish(now, served).unwrap();
    p.transfer(DIALER); // the late message reaches a finished stream
    p.drive();
    let (messages, end) = stream_outcome(&p.take_events(DIALER), mux);
    assert_eq!(messages.len(), 3);
    assert_eq!(end, Some(Ok(())));
}

/// A request cancelled before it was written is never sent (item 16): the
/// cancel used to overtake it, be dropped as unknown, and the request was
/// then served.
#[test]
fn ext_review_16_a_cancel_never_overtakes_its_request() {
    let mut p = pair();
    let mux = request(&mut p, DIALER, 1, Bytes::from_static(b"x"));
    let now = p.now;
    p.links[DIALER].cancel(now, mux);
    p.drive();
    let served = p.take_events(ACCEPTOR);
    assert!(
        !served.iter().any(|e| matches!(e, Event::Request { .. })),
        "{served:?}"
    );
    assert_eq!(p.links[ACCEPTOR].open_exchanges(), 0);
    // One already written is cancelled at the server, not reordered.
    let mux = request(&mut p, DIALER, 1, Bytes::from_static(b"y"));
    p.transfer(DIALER);
    let Event::Request { mux: served, .. } = one_event(&mut p, ACCEPTOR) else {
        panic!("no request")
    };
    let now = p.now;
    p.links[DIALER].cancel(now, mux);
    p.drive();
    let events = p.take_events(ACCEPTOR);
    assert!(
        events.iter().any(|e| matches!(e, Event::Ended { mux, result: Err(CallError::Canceled) } if *mux == served)),
        "{events:?}"
    );
}

/// Server data before `AckMux` ends that stream with a protocol error
/// (item 17; DESIGN §5.4: the ack is always the first message back).
#[test]
fn ext_review_17_server_data_before_the_ack_is_a_protocol_error() {
    let mut p = pair();
    let mux = open(&mut p, 10, StreamOpts::default());
    let _ = gridmux_tests::twin::swallow(&mut p, DIALER);
    let data = Message::new(Op::MUX_SERVER_MSG, mux.id).payload(Bytes::from_static(b"early"));
    inject(&mut p, DIALER, &data);
    let (messages, end) = stream_outcome(&p.take_events(DIALER), mux);
    assert!(messages.is_empty(), "{messages:?}");
    assert!(matches!(end, Some(Err(CallError::Protocol(_)))), "{end:?}");
    assert!(p.links[DIALER].is_connected(), "only the stream ends");
}

/// A text frame on a grid link is a protocol error (item 21): grid links
/// carry binary messages only. (A grid message is never valid UTF-8, so a
/// text frame carrying one already failed the UTF-8 check; valid text was
/// handed to the grid decoder.)
#[test]
fn ext_review_21_a_text_frame_fails_the_link() {
    let mut p = pair();
    // A masked text frame (0x81) of valid UTF-8, as the dialer would send it.
    let text = b"hello";
    let mut frame = vec![0x81, 0x80 | text.len() as u8];
    let key = [1, 2, 3, 4];
    frame.extend_from_slice(&key);
    let mut body = text.to_vec();
    apply_mask(&mut body, key, 0);
    frame.extend_from_slice(&body);
    let now = p.now;
    p.links[ACCEPTOR].handle_input(now, &mut BytesMut::from(&frame[..]));
    let events = p.take_events(ACCEPTOR);
    assert!(
        matches!(events.last(), Some(Event::Closed(LinkError::Malformed(why))) if why.contains("text")),
        "{events:?}"
    );
}

/// A served stream whose handler finished its output but still reads its
/// input stays open, delivers that input, and counts against
/// `max_served_streams` until the handler releases it (issue 11, item 4:
/// finishing removed it, so its input vanished and a peer could open
/// unbounded handler tasks).
#[test]
fn ext_review_04_a_finished_stream_still_reading_counts_and_gets_its_input() {
    let mut p = LinkPair::connected(origin(), |c| c.max_served_streams = 1);
    let (first, served) = finished_but_still_reading(&mut p);
    let second = open(&mut p, 10, StreamOpts::default());
    p.transfer(DIALER);
    p.transfer(ACCEPTOR);
    let (_, end) = stream_outcome(&p.take_events(DIALER), second);
    assert!(
        matches!(end, Some(Err(CallError::Remote { .. }))),
        "the finished stream still counts: {end:?}"
    );
    // Its input is still delivered, and the caller's end reaches it.
    let data = Message::new(Op::MUX_CLIENT_MSG, first.id)
        .seq(1)
        .payload(Bytes::from_static(b"late"));
    inject(&mut p, ACCEPTOR, &data);
    let eof = Message::new(Op::MUX_CLIENT_MSG, first.id)
        .seq(2)
        .flags(gridmux_core::wire::Flags::EOF);
    inject(&mut p, ACCEPTOR, &eof);
    let events = p.take_events(ACCEPTOR);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Message { mux, .. } if *mux == served)),
        "{events:?}"
    );
    assert!(
        events.contains(&Event::InputEnded { mux: served }),
        "{events:?}"
    );
    assert_eq!(
        p.links[ACCEPTOR].open_exchanges(),
        0,
        "both directions done"
    );
}

/// Found reviewing item 16's fix: a request whose deadline passes while it
/// still waits in the send queue is withdrawn too, as a cancel is (the
/// timer's cancel overtook it and the request was served anyway); and a
/// stream cancelled, or timed out, before its open was written is never
/// opened at the server.
#[test]
fn ext_review_16_an_exchange_abandoned_before_it_was_written_is_never_sent() {
    let mut p = pair();
    let now = p.now;
    let deadline = Some(now + Duration::from_millis(100));
    let timed_out = p.links[DIALER]
        .request(now, 1, None, Bytes::from_static(b"x"), deadline)
        .unwrap();
    let cancelled = open(&mut p, 10, StreamOpts::default());
    let stream_deadline = StreamOpts {
        deadline,
        ..StreamOpts::default()
    };
    let expired = open(&mut p, 10, stream_deadline);
    p.links[DIALER].cancel(now, cancelled);
    p.now += Duration::from_millis(200);
    let now = p.now;
    p.links[DIALER].handle_timeout(now);
    let caller = p.take_events(DIALER);
    assert!(caller.contains(&Event::Response {
        mux: timed_out,
        result: Err(CallError::Timeout)
    }));
    assert!(caller.contains(&Event::Ended {
        mux: expired,
        result: Err(CallError::Timeout)
    }));
    p.drive();
    let served = p.take_events(ACCEPTOR);
    assert!(
        served.is_empty(),
        "served after the caller gave up: {served:?}"
    );
    assert_eq!(p.links[ACCEPTOR].open_exchanges(), 0);
}
