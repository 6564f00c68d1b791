//! Twin tests: see `main.rs`.

use std::time::Duration;

use bytes::Bytes;
use gridmux_core::link::{CallError, CommandError, Event, StreamOpts};
use gridmux_core::wire::{ErrorCode, ErrorPayload, Flags, Message, Op};
use gridmux_tests::twin::{bytes_of, deliver_observed, inject, swallow};

use crate::*;

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
