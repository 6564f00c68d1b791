//! Twin tests: see `main.rs`.

use bytes::Bytes;
use gridmux_core::fuzzing::LinkPair;
use gridmux_core::link::{CallError, CommandError, Event};
use gridmux_core::wire::ErrorCode;
use gridmux_tests::twin::bytes_of;

use crate::*;

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
