//! Twins of the protocol items of MinIO's grid conformance checklist
//! (`shared/reference/minio-grid.md`, last section), written against
//! `gridmux_core` on an in-memory link pair with a fake clock. Each test
//! is named after the item it proves. Where gridmux deliberately differs
//! (the extensions), the test proves our behaviour and says so.

mod auth;
mod budget;
mod ext;
mod observe;
mod requests;
mod review;
mod setup;
mod streams;
mod wire;

use std::time::Instant;

use bytes::Bytes;
use gridmux_core::fuzzing::LinkPair;
use gridmux_core::link::{CallError, Event, StreamOpts};
use gridmux_core::mux::MuxId;
use gridmux_core::wire::ErrorPayload;

pub(crate) const DIALER: usize = 0;
pub(crate) const ACCEPTOR: usize = 1;

pub(crate) fn origin() -> Instant {
    Instant::now()
}

pub(crate) fn pair() -> LinkPair {
    LinkPair::connected(origin(), |_| {})
}

/// The only event of `side`, asserting there is exactly one.
pub(crate) fn one_event(p: &mut LinkPair, side: usize) -> Event {
    let mut events = p.take_events(side);
    assert_eq!(events.len(), 1, "side {side}: {events:?}");
    events.remove(0)
}

/// Serves the next request event on `side` with `result`.
pub(crate) fn serve(p: &mut LinkPair, side: usize, result: Result<Bytes, ErrorPayload>) {
    let Event::Request { mux, .. } = one_event(p, side) else {
        panic!("no request")
    };
    let now = p.now;
    p.links[side].respond(now, mux, result).unwrap();
}

pub(crate) fn request(p: &mut LinkPair, side: usize, handler: u8, payload: Bytes) -> MuxId {
    let now = p.now;
    p.links[side]
        .request(now, handler, None, payload, None)
        .unwrap()
}

pub(crate) fn response(p: &mut LinkPair, side: usize) -> (MuxId, Result<Bytes, CallError>) {
    match one_event(p, side) {
        Event::Response { mux, result } => (mux, result),
        other => panic!("expected a response, got {other:?}"),
    }
}

pub(crate) fn open(p: &mut LinkPair, handler: u8, opts: StreamOpts) -> MuxId {
    let now = p.now;
    p.links[DIALER]
        .open_stream(now, handler, None, Bytes::from_static(b"init"), opts)
        .unwrap()
}

pub(crate) fn opened(p: &mut LinkPair) -> (MuxId, bool, Option<Instant>) {
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

/// Options of a stream without input (the open carries EOF).
pub(crate) fn one_way() -> StreamOpts {
    StreamOpts {
        input: false,
        ..StreamOpts::default()
    }
}

/// A stream to handler 10 whose server finished its output at once, while
/// the caller's answer to that EOF (ending its input) is held back: a peer
/// that keeps its input open. Returns the caller's and the server's mux.
pub(crate) fn finished_but_still_reading(p: &mut LinkPair) -> (MuxId, MuxId) {
    let mux = open(p, 10, StreamOpts::default());
    p.transfer(DIALER);
    let (served, _, _) = opened(p);
    let now = p.now;
    p.links[ACCEPTOR].finish(now, served).unwrap();
    p.transfer(ACCEPTOR);
    p.take_events(DIALER);
    let _ = gridmux_tests::twin::swallow(p, DIALER);
    (mux, served)
}
