//! (ext) Byte budgets (issue 11, item 19): what a flooding peer can make a
//! link hold is bounded in bytes, not only in counts. Each test measures
//! the bytes held from the events the application received (the payloads
//! it still holds), so it needs nothing of the link to say what it holds:
//! before the budgets, the first held 20 × 8 KiB, the second every
//! stream's whole window, and the third queued every answer.

use bytes::Bytes;
use gridmux_core::fuzzing::LinkPair;
use gridmux_core::link::{CallError, CommandError, Event, StreamOpts};
use gridmux_core::mux::MuxId;
use gridmux_core::wire::{ErrorCode, ErrorPayload};

use crate::*;

fn overloaded(result: &Result<Bytes, CallError>) -> bool {
    matches!(
        result,
        Err(CallError::Remote {
            code: ErrorCode::Overloaded,
            ..
        })
    )
}

/// Twenty 8 KiB requests against a 64 KiB budget, none answered: the
/// handler is given eight (64 KiB), the rest get `Overloaded`; an answer
/// frees room for the next.
#[test]
fn ext_review_19_served_requests_are_bounded_by_bytes() {
    let budget = 64 * 1024;
    let mut p = LinkPair::connected(origin(), |c| c.max_inbound_bytes = budget);
    for _ in 0..20 {
        request(&mut p, DIALER, 1, Bytes::from(vec![7; 8 * 1024]));
    }
    p.drive();
    let served: Vec<(MuxId, usize)> = p
        .take_events(ACCEPTOR)
        .into_iter()
        .filter_map(|e| match e {
            Event::Request { mux, payload, .. } => Some((mux, payload.len())),
            _ => None,
        })
        .collect();
    let held: usize = served.iter().map(|(_, n)| n).sum();
    assert!(held <= budget, "the handler holds {held} bytes");
    assert_eq!(served.len(), 8);
    assert_eq!(p.links[ACCEPTOR].inbound_bytes(), held);
    let answers = p.take_events(DIALER);
    assert_eq!(answers.len(), 12);
    assert!(answers
        .iter()
        .all(|e| matches!(e, Event::Response { result, .. } if overloaded(result))));
    // One answer frees 8 KiB: the next request is served.
    let now = p.now;
    p.links[ACCEPTOR]
        .respond(now, served[0].0, Ok(Bytes::new()))
        .unwrap();
    assert_eq!(p.links[ACCEPTOR].inbound_bytes(), held - 8 * 1024);
    request(&mut p, DIALER, 1, Bytes::from(vec![7; 8 * 1024]));
    p.drive();
    assert!(matches!(one_event(&mut p, ACCEPTOR), Event::Request { .. }));
}

/// Streams opened together are each admitted (nothing is held yet), then
/// each sends its whole window of 16 KiB messages to a handler that reads
/// none. Past twice the 64 KiB budget the stream whose message crosses
/// the line is shed (`Overloaded`), the others and the link go on, and a
/// stream opened while the budget is spent is refused.
#[test]
fn ext_review_19_served_streams_are_shed_past_twice_the_budget() {
    let budget = 64 * 1024;
    let mut p = LinkPair::connected(origin(), |c| c.max_inbound_bytes = budget);
    // Handler 10 takes 4 messages of input before granting more.
    let streams: Vec<MuxId> = (0..4)
        .map(|_| open(&mut p, 10, StreamOpts::default()))
        .collect();
    p.drive();
    assert_eq!(p.take_events(ACCEPTOR).len(), 4, "all four admitted");
    p.take_events(DIALER);
    let now = p.now;
    for mux in &streams {
        for _ in 0..4 {
            p.links[DIALER]
                .send(now, *mux, Bytes::from(vec![1; 16 * 1024]))
                .unwrap();
        }
    }
    p.drive();
    // What the handlers hold: messages of the streams still served (a shed
    // stream's handler is told, and drops its messages with it).
    let mut held: std::collections::BTreeMap<MuxId, usize> = std::collections::BTreeMap::new();
    for e in p.take_events(ACCEPTOR) {
        match e {
            Event::Message { mux, payload } => *held.entry(mux).or_default() += payload.len(),
            Event::Ended { mux, result } => {
                assert!(
                    matches!(result, Err(CallError::Overloaded(_))),
                    "{result:?}"
                );
                held.remove(&mux);
            }
            _ => {}
        }
    }
    let total: usize = held.values().sum();
    assert!(total <= 2 * budget, "the handlers hold {total} bytes");
    assert_eq!(
        held.len(),
        1,
        "the first stream's window fits; the others crossed the line"
    );
    let callers = p.take_events(DIALER);
    let shed = callers
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Ended {
                    result: Err(CallError::Remote {
                        code: ErrorCode::Overloaded,
                        ..
                    }),
                    ..
                }
            )
        })
        .count();
    assert_eq!(shed, 3, "{callers:?}");
    assert!(p.links[ACCEPTOR].served_inbound_bytes() <= 2 * budget);
    assert!(p.links[DIALER].is_connected() && p.links[ACCEPTOR].is_connected());
    // The budget is spent: a new stream is refused.
    let late = open(&mut p, 10, StreamOpts::default());
    p.drive();
    let ended = p.take_events(DIALER);
    assert!(
        ended
            .iter()
            .any(|e| matches!(e, Event::Ended { mux, result } if *mux == late
            && matches!(result, Err(CallError::Remote { code: ErrorCode::Overloaded, .. })))),
        "{ended:?}"
    );
}

/// Answers are bounded where they are queued: with the send queue full,
/// a large answer is refused with `QueueFull` and the request stays
/// served (the answer goes once the queue drained); a small one (an
/// error) always goes.
#[test]
fn ext_review_19_answers_wait_for_room_in_the_send_queue() {
    let mut p = LinkPair::connected(origin(), |c| c.max_queued_bytes = 64 * 1024);
    for _ in 0..3 {
        request(&mut p, DIALER, 1, Bytes::new());
    }
    p.drive();
    let served: Vec<MuxId> = p
        .take_events(ACCEPTOR)
        .into_iter()
        .filter_map(|e| match e {
            Event::Request { mux, .. } => Some(mux),
            _ => None,
        })
        .collect();
    assert_eq!(served.len(), 3);
    let now = p.now;
    let big = Bytes::from(vec![9; 100 * 1024]);
    p.links[ACCEPTOR]
        .respond(now, served[0], Ok(big.clone()))
        .unwrap();
    let queued = p.links[ACCEPTOR].queued_bytes();
    assert!(matches!(
        p.links[ACCEPTOR].respond(now, served[1], Ok(big.clone())),
        Err(CommandError::QueueFull(_))
    ));
    assert_eq!(p.links[ACCEPTOR].queued_bytes(), queued, "nothing queued");
    let e = ErrorPayload::new(ErrorCode::Application, "no");
    p.links[ACCEPTOR].respond(now, served[2], Err(e)).unwrap();
    p.drive();
    p.links[ACCEPTOR].respond(now, served[1], Ok(big)).unwrap();
    p.drive();
    let answers = p.take_events(DIALER);
    assert_eq!(answers.len(), 3, "{answers:?}");
}

/// Found in review: a served stream whose handler finished its output but
/// still reads its input, shed by a message carrying the caller's EOF, must
/// still tell its handler (it waited forever), and the caller is told to
/// stop sending, not sent a second end.
#[test]
fn ext_review_19_a_shed_stream_always_tells_its_handler() {
    let budget = 16 * 1024;
    let mut p = LinkPair::connected(origin(), |c| c.max_inbound_bytes = budget);
    let (mux, served) = finished_but_still_reading(&mut p);
    let eof = gridmux_core::wire::Message::new(gridmux_core::wire::Op::MUX_CLIENT_MSG, mux.id)
        .seq(1)
        .flags(gridmux_core::wire::Flags::EOF)
        .payload(Bytes::from(vec![3; 40 * 1024]));
    gridmux_tests::twin::inject(&mut p, ACCEPTOR, &eof);
    let events = p.take_events(ACCEPTOR);
    assert!(
        matches!(&events[..], [Event::Ended { mux: m, result: Err(CallError::Overloaded(_)) }] if *m == served),
        "{events:?}"
    );
    assert_eq!(p.links[ACCEPTOR].open_exchanges(), 0);
    assert_eq!(p.links[ACCEPTOR].inbound_bytes(), 0);
}

/// Found in review: a budget of `usize::MAX` (no budget) must not
/// overflow, and a budget smaller than one message still admits one
/// request when nothing else is held.
#[test]
fn ext_review_19_extreme_budgets_neither_panic_nor_refuse_everything() {
    let mut p = LinkPair::connected(origin(), |c| c.max_inbound_bytes = usize::MAX);
    let mux = open(&mut p, 10, StreamOpts::default());
    p.drive();
    let now = p.now;
    p.links[DIALER]
        .send(now, mux, Bytes::from(vec![1; 1000]))
        .unwrap();
    p.drive();
    assert!(p
        .take_events(ACCEPTOR)
        .iter()
        .any(|e| matches!(e, Event::Message { .. })));

    let mut p = LinkPair::connected(origin(), |c| c.max_inbound_bytes = 1024);
    request(&mut p, DIALER, 1, Bytes::from(vec![7; 100 * 1024]));
    request(&mut p, DIALER, 1, Bytes::from(vec![7; 10]));
    p.drive();
    let served = p.take_events(ACCEPTOR);
    assert_eq!(
        served.len(),
        1,
        "the first is admitted on an idle link: {served:?}"
    );
    let (_, second) = response(&mut p, DIALER);
    assert!(overloaded(&second), "{second:?}");
}
