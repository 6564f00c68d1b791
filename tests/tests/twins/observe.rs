//! Timing records (`core::observe`) with a fake clock: the TTFB of a
//! served request is exactly the time from the request complete to its
//! answer handed to `poll_transmit`; requests that end without an answer
//! have none; calls and link events are recorded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gridmux_core::cluster::should_dial;
use gridmux_core::fuzzing::LinkPair;
use gridmux_core::link::Event;
use gridmux_core::link::StreamOpts;
use gridmux_core::observe::{
    CallMade, HttpServed, LinkEvent, Observer, Outcome, RequestServed, StreamServed,
};
use gridmux_core::wire::{ErrorCode, ErrorPayload};

use crate::*;

/// A stream record: handler, outcome, TTFB, duration, messages in and
/// out, bytes in and out.
type StreamRow = (u8, Outcome, Option<Duration>, Duration, u64, u64, u64, u64);

/// An HTTP record: route, method, status, TTFB, duration, body bytes.
type HttpRow = (String, &'static str, u16, Option<Duration>, Duration, u64);

/// What a side recorded, owned.
#[derive(Debug, Default)]
struct Recorded {
    streams: Vec<StreamRow>,
    served: Vec<(u8, Outcome, Option<Duration>, Duration, u64, u64)>,
    calls: Vec<(u8, Outcome, Duration)>,
    links: Vec<String>,
    http: Vec<HttpRow>,
}

#[derive(Debug, Default)]
struct Recorder(Mutex<Recorded>);

impl Observer for Recorder {
    fn batch_sent(&self, _peer: &str, messages: usize) {
        self.0
            .lock()
            .unwrap()
            .links
            .push(format!("sent {messages}"));
    }
    fn http_served(&self, r: &HttpServed<'_>) {
        let row = (
            r.route.to_owned(),
            r.method,
            r.status,
            r.ttfb,
            r.duration,
            r.bytes_out,
        );
        self.0.lock().unwrap().http.push(row);
    }
    fn stream_served(&self, r: &StreamServed<'_>) {
        let row = (
            r.handler,
            r.outcome,
            r.ttfb,
            r.duration,
            r.msgs_in,
            r.msgs_out,
            r.bytes_in,
            r.bytes_out,
        );
        self.0.lock().unwrap().streams.push(row);
    }
    fn request_served(&self, r: &RequestServed<'_>) {
        let row = (
            r.handler,
            r.outcome,
            r.ttfb,
            r.duration,
            r.bytes_in,
            r.bytes_out,
        );
        self.0.lock().unwrap().served.push(row);
    }
    fn call_made(&self, r: &CallMade<'_>) {
        self.0
            .lock()
            .unwrap()
            .calls
            .push((r.handler, r.outcome, r.latency));
    }
    fn link_event(&self, e: &LinkEvent<'_>) {
        let text = match e {
            LinkEvent::Connected { peer } => format!("connected {peer}"),
            LinkEvent::Lost { peer, reason } => format!("lost {peer} {reason}"),
            LinkEvent::PingRtt { .. } => "ping".to_owned(),
            LinkEvent::DialFailed { peer } => format!("dial failed {peer}"),
            LinkEvent::Load {
                open_streams,
                open_requests,
                inbound_bytes,
                ..
            } => format!("load {open_streams} {open_requests} {inbound_bytes}"),
        };
        self.0.lock().unwrap().links.push(text);
    }
}

/// A connected pair whose sides record into `[dialer, acceptor]`.
fn observed_pair() -> (LinkPair, [Arc<Recorder>; 2]) {
    observed_pair_with(|_| {})
}

/// [`observed_pair`] with `tweak`ed configurations.
fn observed_pair_with(
    tweak: impl Fn(&mut gridmux_core::link::LinkConfig) + 'static,
) -> (LinkPair, [Arc<Recorder>; 2]) {
    let recorders = [Arc::new(Recorder::default()), Arc::new(Recorder::default())];
    let all = recorders.clone();
    let dialer = if should_dial("a:1", "b:1") {
        "a:1"
    } else {
        "b:1"
    };
    let pair = LinkPair::connected(origin(), move |c| {
        let side = if c.local == dialer { DIALER } else { ACCEPTOR };
        c.observer = all[side].clone();
        tweak(c);
    });
    (pair, recorders)
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn ext_observe_the_ttfb_of_a_served_request_is_exact_under_a_fake_clock() {
    let (mut p, rec) = observed_pair();
    let (caller, server) = (DIALER, ACCEPTOR);
    let (c_rec, s_rec) = (&rec[DIALER], &rec[ACCEPTOR]);
    // Both sides saw the link come up.
    assert_eq!(c_rec.0.lock().unwrap().links.len(), 1);
    assert_eq!(s_rec.0.lock().unwrap().links.len(), 1);
    p.links[caller]
        .request(p.now, 1, None, Bytes::from_static(b"12345"), None)
        .unwrap();
    p.drive();
    let Event::Request { mux, .. } = one_event(&mut p, server) else {
        panic!("no request")
    };
    // The handler takes 5 ms; the answer waits 3 ms more for the writer.
    p.now += 5 * MS;
    p.links[server]
        .respond(p.now, mux, Ok(Bytes::from_static(b"abc")))
        .unwrap();
    assert!(
        s_rec.0.lock().unwrap().served.is_empty(),
        "recorded before it went out"
    );
    p.now += 3 * MS;
    p.drive();
    let served = std::mem::take(&mut s_rec.0.lock().unwrap().served);
    assert_eq!(served, vec![(1, Outcome::Ok, Some(8 * MS), 8 * MS, 5, 3)]);
    let calls = std::mem::take(&mut c_rec.0.lock().unwrap().calls);
    assert_eq!(calls, vec![(1, Outcome::Ok, 8 * MS)]);
    one_event(&mut p, caller);

    // A handler error is an answer: it has a TTFB.
    p.links[caller]
        .request(p.now, 2, None, Bytes::new(), None)
        .unwrap();
    p.drive();
    let Event::Request { mux, .. } = one_event(&mut p, server) else {
        panic!()
    };
    p.now += 2 * MS;
    let e = ErrorPayload::new(ErrorCode::Application, "no");
    p.links[server].respond(p.now, mux, Err(e)).unwrap();
    p.drive();
    let served = std::mem::take(&mut s_rec.0.lock().unwrap().served);
    assert_eq!(served[0].1, Outcome::HandlerError);
    assert_eq!(served[0].2, Some(2 * MS));
    let calls = std::mem::take(&mut c_rec.0.lock().unwrap().calls);
    assert_eq!(calls, vec![(2, Outcome::HandlerError, 2 * MS)]);
    one_event(&mut p, caller);

    // An unknown handler is refused at once: outcome and a zero TTFB.
    p.links[caller]
        .request(p.now, 99, None, Bytes::new(), None)
        .unwrap();
    p.drive();
    let served = std::mem::take(&mut s_rec.0.lock().unwrap().served);
    assert_eq!(served.len(), 1);
    assert_eq!(
        (served[0].0, served[0].1, served[0].2),
        (99, Outcome::UnknownHandler, Some(Duration::ZERO))
    );
    let calls = std::mem::take(&mut c_rec.0.lock().unwrap().calls);
    assert_eq!(calls[0].1, Outcome::UnknownHandler);
    one_event(&mut p, caller);
}

#[test]
fn ext_observe_requests_without_an_answer_have_no_ttfb() {
    let (mut p, rec) = observed_pair();
    let (caller, server) = (DIALER, ACCEPTOR);
    let s_rec = rec[ACCEPTOR].clone();
    // Past its deadline.
    let deadline = p.now + 50 * MS;
    p.links[caller]
        .request(p.now, 1, None, Bytes::new(), Some(deadline))
        .unwrap();
    p.drive();
    one_event(&mut p, server);
    p.advance(60 * MS);
    p.take_events(server);
    p.take_events(caller);
    // Cancelled by the caller.
    let mux = p.links[caller]
        .request(p.now, 1, None, Bytes::new(), None)
        .unwrap();
    p.drive();
    one_event(&mut p, server);
    p.now += 7 * MS;
    p.links[caller].cancel(p.now, mux);
    p.drive();
    // Answered, but the link dies before the answer goes out.
    p.links[caller]
        .request(p.now, 1, None, Bytes::new(), None)
        .unwrap();
    p.drive();
    let Event::Request { mux, .. } = p.take_events(server).pop().unwrap() else {
        panic!()
    };
    p.links[server]
        .respond(p.now, mux, Ok(Bytes::new()))
        .unwrap();
    // And one still with its handler when the link dies.
    p.links[caller]
        .request(p.now, 1, None, Bytes::new(), None)
        .unwrap();
    p.transfer(caller);
    p.kill();
    let served = std::mem::take(&mut s_rec.0.lock().unwrap().served);
    let outcomes: Vec<_> = served.iter().map(|r| (r.1, r.2)).collect();
    assert!(outcomes.contains(&(Outcome::Timeout, None)), "{outcomes:?}");
    assert!(
        outcomes.contains(&(Outcome::Canceled, None)),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == (Outcome::Disconnected, None))
            .count(),
        2,
        "{outcomes:?}"
    );
    assert!(
        served.iter().all(|r| r.2.is_none()),
        "no TTFB of zero for what got no answer"
    );
    let timeout = served.iter().find(|r| r.1 == Outcome::Timeout).unwrap();
    assert_eq!(timeout.3, 50 * MS);
    let canceled = served.iter().find(|r| r.1 == Outcome::Canceled).unwrap();
    assert_eq!(canceled.3, 7 * MS);
    assert!(s_rec
        .0
        .lock()
        .unwrap()
        .links
        .iter()
        .any(|l| l.starts_with("lost")));
}

#[test]
fn ext_observe_an_answer_never_sent_after_the_peer_closed_has_no_ttfb() {
    let (mut p, rec) = observed_pair();
    p.links[ACCEPTOR]
        .request(p.now, 1, None, Bytes::from_static(b"q"), None)
        .unwrap();
    p.drive();
    let Some(Event::Request { mux, .. }) = p.take_events(DIALER).pop() else {
        panic!("no request")
    };
    // The acceptor closes; the dialer (the WebSocket client) waits for the
    // end of the connection, and its handler answers meanwhile.
    p.links[ACCEPTOR].close(p.now);
    p.transfer(ACCEPTOR);
    p.now += 4 * MS;
    let _ = p.links[DIALER].respond(p.now, mux, Ok(Bytes::from_static(b"abc")));
    p.transfer(DIALER);
    let served = std::mem::take(&mut rec[DIALER].0.lock().unwrap().served);
    assert!(
        served
            .iter()
            .all(|r| r.2.is_none() && r.1 == Outcome::Disconnected),
        "{served:?}"
    );
}

#[test]
fn ext_observe_a_refusal_that_overflowed_the_link_is_not_an_answer() {
    let (mut p, rec) = observed_pair_with(|c| c.max_queued_bytes = 4096);
    // A peer floods requests for a handler nobody serves and never reads
    // the refusals: the acceptor's control lane overflows and it closes.
    for _ in 0..2000 {
        if p.links[DIALER]
            .request(p.now, 99, None, Bytes::new(), None)
            .is_err()
        {
            break;
        }
        p.transfer(DIALER);
        if p.take_events(ACCEPTOR)
            .iter()
            .any(|e| matches!(e, Event::Closed(_)))
        {
            break;
        }
    }
    p.now += 3 * MS;
    p.transfer(ACCEPTOR);
    let served = std::mem::take(&mut rec[ACCEPTOR].0.lock().unwrap().served);
    assert!(!served.is_empty());
    assert!(
        served.iter().all(|r| r.2.is_none()),
        "the acceptor wrote nothing, yet: {:?}",
        served.iter().filter(|r| r.2.is_some()).collect::<Vec<_>>()
    );
}

#[test]
fn ext_observe_a_served_stream_has_its_ttfb_at_its_first_message() {
    let (mut p, rec) = observed_pair();
    let opts = StreamOpts {
        input: true,
        ..StreamOpts::default()
    };
    let mux = p.links[DIALER]
        .open_stream(p.now, 10, None, Bytes::from_static(b"open"), opts)
        .unwrap();
    p.drive();
    let served = p
        .take_events(ACCEPTOR)
        .into_iter()
        .find_map(|e| match e {
            Event::StreamOpened { mux, .. } => Some(mux),
            _ => None,
        })
        .expect("opened");
    // Input arrives; the handler answers 6 ms after the open, and the
    // writer takes it 1 ms later.
    p.links[DIALER]
        .send(p.now, mux, Bytes::from_static(b"in"))
        .unwrap();
    p.drive();
    p.now += 6 * MS;
    p.links[ACCEPTOR]
        .send(p.now, served, Bytes::from_static(b"out!"))
        .unwrap();
    p.now += MS;
    p.drive();
    p.links[DIALER].finish(p.now, mux).unwrap();
    p.drive();
    p.now += 3 * MS;
    p.links[ACCEPTOR].finish(p.now, served).unwrap();
    p.links[ACCEPTOR].release(p.now, served);
    p.drive();
    let streams = std::mem::take(&mut rec[ACCEPTOR].0.lock().unwrap().streams);
    assert_eq!(
        streams,
        vec![(10, Outcome::Ok, Some(7 * MS), 10 * MS, 1, 1, 6, 4)],
        "handler, outcome, ttfb, duration, messages in/out, bytes in/out"
    );
    assert_eq!(rec[ACCEPTOR].0.lock().unwrap().served.len(), 0);
}

#[test]
fn ext_observe_a_stream_whose_first_message_never_left_has_no_ttfb() {
    let (mut p, rec) = observed_pair();
    let mux = p.links[DIALER]
        .open_stream(p.now, 11, None, Bytes::new(), StreamOpts::default())
        .unwrap();
    p.drive();
    let served = p
        .take_events(ACCEPTOR)
        .into_iter()
        .find_map(|e| match e {
            Event::StreamOpened { mux, .. } => Some(mux),
            _ => None,
        })
        .expect("opened");
    let _ = mux;
    p.now += 2 * MS;
    p.links[ACCEPTOR]
        .send(p.now, served, Bytes::from_static(b"x"))
        .unwrap();
    // The connection dies before the writer takes the message.
    p.kill();
    let streams = std::mem::take(&mut rec[ACCEPTOR].0.lock().unwrap().streams);
    assert_eq!(streams.len(), 1, "{streams:?}");
    assert_eq!((streams[0].1, streams[0].2), (Outcome::Disconnected, None));
}

#[test]
fn ext_observe_a_stream_that_failed_keeps_its_outcome_when_the_link_dies() {
    let (mut p, rec) = observed_pair();
    p.links[DIALER]
        .open_stream(p.now, 11, None, Bytes::new(), StreamOpts::default())
        .unwrap();
    p.drive();
    let served = p
        .take_events(ACCEPTOR)
        .into_iter()
        .find_map(|e| match e {
            Event::StreamOpened { mux, .. } => Some(mux),
            _ => None,
        })
        .expect("opened");
    // The handler fails; its error is queued when the connection dies.
    let e = ErrorPayload::new(ErrorCode::Application, "no");
    p.links[ACCEPTOR].fail_stream(p.now, served, e).unwrap();
    p.kill();
    let streams = std::mem::take(&mut rec[ACCEPTOR].0.lock().unwrap().streams);
    assert_eq!(streams.len(), 1, "{streams:?}");
    assert_eq!((streams[0].1, streams[0].2), (Outcome::HandlerError, None));
}

#[test]
fn ext_observe_each_link_ping_samples_the_links_load() {
    let (mut p, rec) = observed_pair();
    // A request the acceptor's handler holds (5 bytes of input).
    p.links[DIALER]
        .request(p.now, 1, None, Bytes::from_static(b"12345"), None)
        .unwrap();
    p.drive();
    one_event(&mut p, ACCEPTOR);
    // Past a ping interval (10 s by default) the acceptor samples its load.
    p.advance(Duration::from_secs(11));
    let links = rec[ACCEPTOR].0.lock().unwrap().links.clone();
    let loads: Vec<&String> = links.iter().filter(|l| l.starts_with("load")).collect();
    assert!(!loads.is_empty(), "{links:?}");
    assert_eq!(loads[0], "load 0 1 5", "{links:?}");
}

#[test]
fn ext_observe_each_websocket_message_sent_records_its_batch_size() {
    let (mut p, rec) = observed_pair();
    // Nothing of the set-up is counted: its frames bypass the grid's
    // send queue.
    let before = rec[DIALER].0.lock().unwrap().links.clone();
    assert!(!before.iter().any(|l| l.starts_with("sent")), "{before:?}");
    // Five requests queued before the link transmits go as one merged
    // WebSocket message; then one request goes alone.
    for _ in 0..5 {
        (p.links[DIALER])
            .request(p.now, 1, None, Bytes::from_static(b"x"), None)
            .unwrap();
    }
    p.drive();
    (p.links[DIALER])
        .request(p.now, 1, None, Bytes::from_static(b"y"), None)
        .unwrap();
    p.drive();
    let links = rec[DIALER].0.lock().unwrap().links.clone();
    let sent: Vec<&String> = links.iter().filter(|l| l.starts_with("sent")).collect();
    assert_eq!(sent, ["sent 5", "sent 1"], "{links:?}");
}

/// A pair not yet connected whose sides record into `[dialer, acceptor]`;
/// the dialer's configuration is `tweak`ed.
fn observed_pair_before_setup(
    tweak_dialer: impl Fn(&mut gridmux_core::link::LinkConfig),
) -> (LinkPair, [Arc<Recorder>; 2]) {
    let recorders = [Arc::new(Recorder::default()), Arc::new(Recorder::default())];
    let mut configs = LinkPair::configs("a:1", "b:1", |_| {});
    for (side, config) in configs.iter_mut().enumerate() {
        let c = Arc::make_mut(config);
        c.observer = recorders[side].clone();
        if side == DIALER {
            tweak_dialer(c);
        }
    }
    (LinkPair::new(configs, origin(), 1), recorders)
}

#[test]
fn ext_observe_the_upgrade_answer_is_an_http_record_with_its_ttfb() {
    let (mut p, rec) = observed_pair_before_setup(|_| {});
    // The upgrade request reaches the acceptor; its answer leaves 2 ms on.
    let mut out = gridmux_core::ws::Transmit::new();
    while p.links[DIALER].poll_transmit(p.now, &mut out) {}
    let mut input = bytes::BytesMut::new();
    for chunk in out.chunks() {
        input.extend_from_slice(chunk);
    }
    p.links[ACCEPTOR].handle_input(p.now, &mut input);
    p.now += 2 * MS;
    p.drive();
    assert!(p.links.iter().all(|l| l.is_connected()));
    let http = rec[ACCEPTOR].0.lock().unwrap().http.clone();
    assert_eq!(
        http,
        vec![("upgrade".to_owned(), "GET", 101, Some(2 * MS), 2 * MS, 0)]
    );
    // The dialer serves no HTTP.
    assert!(rec[DIALER].0.lock().unwrap().http.is_empty());
}

#[test]
fn ext_observe_a_refused_upgrade_is_recorded_with_its_status_and_body() {
    let (mut p, rec) = observed_pair_before_setup(|c| {
        c.keys = Arc::new(gridmux_core::auth::Keyring::new(["a guess"]).unwrap());
    });
    p.drive();
    assert!(!p.links.iter().any(|l| l.is_connected()));
    let http = rec[ACCEPTOR].0.lock().unwrap().http.clone();
    assert_eq!(http.len(), 1, "{http:?}");
    let (route, method, status, ttfb, _, body) = &http[0];
    assert_eq!((route.as_str(), *method, *status), ("upgrade", "GET", 401));
    assert_eq!(*ttfb, Some(Duration::ZERO));
    assert_eq!(*body, "unauthorized\n".len() as u64);
}

#[test]
fn ext_observe_an_upgrade_that_does_not_parse_keeps_its_method_label() {
    let (mut p, rec) = observed_pair_before_setup(|_| {});
    // Not an upgrade at all: 426, and still a GET.
    let mut input = bytes::BytesMut::from(&b"GET /gridmux/v1 HTTP/1.1\r\nHost: b:1\r\n\r\n"[..]);
    p.links[ACCEPTOR].handle_input(p.now, &mut input);
    let mut out = gridmux_core::ws::Transmit::new();
    while p.links[ACCEPTOR].poll_transmit(p.now, &mut out) {}
    assert!(out.to_vec().starts_with(b"HTTP/1.1 426"));
    let http = rec[ACCEPTOR].0.lock().unwrap().http.clone();
    assert_eq!(http.len(), 1, "{http:?}");
    assert_eq!(
        (http[0].0.as_str(), http[0].1, http[0].2),
        ("upgrade", "GET", 426)
    );
}
