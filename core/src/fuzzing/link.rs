//! Bodies of the `link_input` and `mux_ops` targets.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::{BufMut, Bytes, BytesMut};

use super::LinkPair;
use crate::link::{CallError, Event, Link, LinkConfig, StreamOpts};
use crate::mux::{MuxId, Origin};
use crate::wire::{ErrorCode, ErrorPayload, Flags, Message, Op};
use crate::ws::{apply_mask, Transmit};

/// Limits small enough that fuzz inputs reach them.
fn small_limits(c: &mut LinkConfig) {
    c.max_message_size = 1024;
    c.sync_ws_limits();
    c.max_open_muxes = 8;
    c.max_served_requests = 4;
    c.max_served_streams = 4;
    c.max_queued_bytes = 16 * 1024;
    c.ws.max_send_queue = 64 * 1024;
}

/// Wraps `payload` (at most 65,535 bytes are kept) in one binary
/// WebSocket frame, masked when it goes to the acceptor (a client's frames
/// are masked): how tests deliver messages no real peer would send.
pub fn ws_frame(payload: &[u8], to_acceptor: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x82);
    let mask_bit = if to_acceptor { 0x80 } else { 0 };
    if payload.len() < 126 {
        out.push(mask_bit | payload.len() as u8);
    } else {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(payload.len().min(65_535) as u16).to_be_bytes());
    }
    let mut body = payload[..payload.len().min(65_535)].to_vec();
    if to_acceptor {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&key);
        apply_mask(&mut body, key, 0);
    }
    out.extend_from_slice(&body);
    out
}

/// A valid (CRC-protected) grid message built from fuzz bytes, aimed at the
/// small mux ids and handler ids the pair uses.
fn grid_message(b: &[u8]) -> Bytes {
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let msg = Message {
        mux_id: u64::from(at(0) % 8),
        seq: u32::from(at(1) % 4),
        deadline_ms: u32::from(u16::from_le_bytes([at(2), at(3)])),
        handler: [0, 1, 2, 10, 11, 12, 78, 99][usize::from(at(4) % 8)],
        op: Op::from_u8(at(5) % 20),
        flags: Flags::from_bits(at(6) & 0x1e),
        payload: (at(7) & 1 == 1).then(|| Bytes::copy_from_slice(b.get(8..).unwrap_or_default())),
        subroute: None,
    };
    let mut out = BytesMut::new();
    msg.encode(true, &mut out);
    out.freeze()
}

/// Checks what a link reports after each step.
#[derive(Debug, Default)]
struct LinkWatch {
    closed: bool,
}

impl LinkWatch {
    fn drain(&mut self, link: &mut Link, now: Instant, config: &LinkConfig) {
        let mut out = Transmit::new();
        for _ in 0..1000 {
            if !link.poll_transmit(now, &mut out) {
                break;
            }
            out.clear();
        }
        while let Some(event) = link.poll_event() {
            assert!(!self.closed, "event after Closed: {event:?}");
            match event {
                Event::Closed(_) => self.closed = true,
                Event::Message { payload, .. } | Event::Request { payload, .. } => {
                    assert!(payload.len() <= config.max_message_size + 16);
                }
                _ => {}
            }
        }
        let limit = 2 * config.max_queued_bytes
            + (config.max_served_requests + 2) * (config.max_message_size + 64 * 1024);
        assert!(
            link.queued_bytes() <= limit,
            "queue of {} bytes",
            link.queued_bytes()
        );
        assert!(link.pending_timers() <= link.open_exchanges());
        assert!(
            link.open_exchanges()
                <= config.max_open_muxes + config.max_served_requests + config.max_served_streams
        );
        if self.closed {
            assert!(link.is_closed());
            assert_eq!(link.open_exchanges(), 0);
        }
    }
}

/// `link_input`: one side of a link pair, in any state (awaiting the
/// upgrade, awaiting `Connect` or `ConnectResponse`, connected), fed fuzzer
/// bytes in fuzzer-chosen chunks, as raw bytes, as WebSocket frames, or as
/// valid grid messages, interleaved with timeouts and EOF. Invariants: no
/// panic, bounded memory and state, `Closed` once and last, no exchange
/// left once closed.
pub fn link_input(data: &[u8], origin: Instant) {
    let Some((&selector, mut program)) = data.split_first() else {
        return;
    };
    let state = selector % 6;
    let mode = (selector / 6) % 3;
    let configs = LinkPair::configs("a:1", "b:1", small_limits);
    let mut pair = LinkPair::new(configs.clone(), origin, u64::from(selector));
    let mut scratch = Transmit::new();
    let target = match state {
        0 => 1,
        1 => {
            while pair.links[0].poll_transmit(pair.now, &mut scratch) {}
            0
        }
        2 => {
            pair.transfer(0);
            1
        }
        3 => {
            pair.transfer(0);
            pair.transfer(1);
            0
        }
        4 => {
            pair.drive();
            1
        }
        _ => {
            pair.drive();
            0
        }
    };
    let config = configs[target].clone();
    let link = &mut pair.links[target];
    let mut now = pair.now;
    let mut watch = LinkWatch::default();
    watch.drain(link, now, &config);
    let mut input = BytesMut::new();
    while let Some((&op, rest)) = program.split_first() {
        program = rest;
        let arg = usize::from(op >> 2);
        match op & 3 {
            0 | 1 => {
                let (chunk, rest) = program.split_at((arg + 1).min(program.len()));
                program = rest;
                match mode {
                    0 => input.put_slice(chunk),
                    1 => input.put_slice(&ws_frame(chunk, target == 1)),
                    _ => input.put_slice(&ws_frame(&grid_message(chunk), target == 1)),
                }
                link.handle_input(now, &mut input);
                assert!(input.len() <= config.ws.max_frame_size + 64 * 1024);
            }
            2 => {
                now += Duration::from_millis(arg as u64 * 250);
                if link.poll_timeout().is_some_and(|t| t <= now) {
                    link.handle_timeout(now);
                }
            }
            _ => {
                link.handle_eof(now);
                watch.drain(link, now, &config);
                break;
            }
        }
        watch.drain(link, now, &config);
    }
}

/// One step of a `mux_ops` program.
#[derive(Debug, Clone, Arbitrary)]
pub enum MuxOp {
    /// A request from `side` to `handler`.
    Request {
        /// Which link sends (false: dialer).
        side: bool,
        /// Target handler.
        handler: u8,
        /// Payload size.
        len: u16,
        /// Deadline in ms, if any.
        deadline_ms: Option<u16>,
    },
    /// A stream from `side`.
    OpenStream {
        /// Which link opens it.
        side: bool,
        /// Target handler.
        handler: u8,
        /// Payload size.
        len: u16,
        /// Deadline in ms, if any.
        deadline_ms: Option<u16>,
        /// Receive window.
        window: u8,
        /// Whether the caller sends.
        input: bool,
    },
    /// A stream message on the `index`-th stream `side` knows.
    Send {
        /// Which link.
        side: bool,
        /// Which stream.
        index: u8,
        /// Payload size.
        len: u16,
    },
    /// The consumer takes `n` messages.
    Consume {
        /// Which link.
        side: bool,
        /// Which stream.
        index: u8,
        /// How many.
        n: u8,
    },
    /// Answers the `index`-th served request.
    Respond {
        /// Which link.
        side: bool,
        /// Which request.
        index: u8,
        /// Success or error.
        ok: bool,
        /// Payload size.
        len: u16,
    },
    /// Finishes our direction of a stream.
    Finish {
        /// Which link.
        side: bool,
        /// Which stream.
        index: u8,
    },
    /// Ends a served stream with an error.
    FailStream {
        /// Which link.
        side: bool,
        /// Which stream.
        index: u8,
    },
    /// Cancels any exchange.
    Cancel {
        /// Which link.
        side: bool,
        /// Which exchange.
        index: u8,
    },
    /// Delivers what `side` has written.
    Deliver {
        /// Which link writes.
        side: bool,
    },
    /// Moves the clock.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// A peer message the real peer never sent, delivered to `to`.
    Inject {
        /// Receiving link.
        to: bool,
        /// Envelope mux id (small, to hit live muxes).
        mux: u8,
        /// Envelope seq.
        seq: u8,
        /// Envelope op.
        op: u8,
        /// Envelope flags.
        flags: u8,
        /// Payload.
        payload: [u8; 6],
    },
    /// The connection dies (only when `odds` < 32, so that most programs
    /// run long).
    Kill {
        /// Chance, out of 256.
        odds: u8,
    },
}

/// A whole `mux_ops` program.
#[derive(Debug, Clone)]
pub struct MuxProgram {
    /// The steps.
    pub ops: Vec<MuxOp>,
}

impl MuxProgram {
    /// Most steps in one program.
    pub const MAX_OPS: usize = 512;

    /// Reads steps until the bytes run out.
    pub fn from_bytes(data: &[u8]) -> Self {
        let mut u = Unstructured::new(data);
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < Self::MAX_OPS {
            match MuxOp::arbitrary(&mut u) {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        Self { ops }
    }
}

/// What the application of one side has open.
#[derive(Debug, Default)]
struct Books {
    /// Exchanges we opened: `true` for streams, with window.
    opened: BTreeMap<MuxId, Option<u32>>,
    /// Exchanges we serve: `true` for streams.
    served: BTreeMap<MuxId, bool>,
    /// Unconsumed messages per stream.
    unconsumed: BTreeMap<MuxId, u32>,
    /// Served streams whose output we finished (still reading input).
    finished: BTreeSet<MuxId>,
    /// Served streams whose input is over (or never existed).
    input_over: BTreeSet<MuxId>,
    closed: bool,
}

impl Books {
    /// A served or opened exchange is over.
    fn forget(&mut self, mux: MuxId) {
        self.opened.remove(&mux);
        self.served.remove(&mux);
        self.unconsumed.remove(&mux);
        self.finished.remove(&mux);
        self.input_over.remove(&mux);
    }

    fn pick(&self, index: u8, streams_only: bool, origin: Option<Origin>) -> Option<MuxId> {
        let all: Vec<MuxId> = self
            .opened
            .iter()
            .filter(|(_, w)| !streams_only || w.is_some())
            .map(|(m, _)| *m)
            .chain(
                self.served
                    .iter()
                    .filter(|(_, s)| !streams_only || **s)
                    .map(|(m, _)| *m),
            )
            .filter(|m| origin.is_none_or(|o| m.origin == o))
            .collect();
        (!all.is_empty()).then(|| all[usize::from(index) % all.len()])
    }

    fn on_event(&mut self, event: Event) {
        assert!(!self.closed, "event after Closed: {event:?}");
        match event {
            Event::Request { mux, .. } => assert!(self.served.insert(mux, false).is_none()),
            Event::StreamOpened { mux, has_input, .. } => {
                assert!(self.served.insert(mux, true).is_none());
                if !has_input {
                    self.input_over.insert(mux);
                }
            }
            Event::Response { mux, result } => {
                assert_eq!(self.opened.remove(&mux), Some(None), "response for {mux:?}");
                if let Err(CallError::Protocol(e)) = result {
                    // Only injected messages break the protocol.
                    let _ = e;
                }
            }
            Event::Ended { mux, .. } => {
                let known = match mux.origin {
                    Origin::Local => self.opened.remove(&mux).is_some_and(|w| w.is_some()),
                    Origin::Remote => self.served.remove(&mux).is_some(),
                };
                assert!(known, "end of unknown exchange {mux:?}");
                self.forget(mux);
            }
            Event::Message { mux, .. } => {
                let known = match mux.origin {
                    Origin::Local => self.opened.get(&mux).copied().flatten(),
                    Origin::Remote => self.served.get(&mux).map(|_| u32::MAX),
                };
                let window = known.unwrap_or_else(|| panic!("message for unknown stream {mux:?}"));
                let held = self.unconsumed.entry(mux).or_default();
                *held += 1;
                assert!(*held <= window, "{held} messages held, window {window}");
            }
            Event::InputEnded { mux } | Event::Writable { mux } => {
                let known = match mux.origin {
                    Origin::Local => self.opened.contains_key(&mux),
                    Origin::Remote => self.served.contains_key(&mux),
                };
                assert!(known, "event for unknown stream {mux:?}");
                if matches!(event, Event::InputEnded { .. }) {
                    self.input_over.insert(mux);
                    // Both directions done: the core let it go silently.
                    if self.finished.contains(&mux) {
                        self.forget(mux);
                    }
                }
            }
            Event::Closed(_) => {
                self.closed = true;
                assert!(
                    self.opened.is_empty(),
                    "open after Closed: {:?}",
                    self.opened
                );
                assert!(
                    self.served.is_empty(),
                    "served after Closed: {:?}",
                    self.served
                );
            }
            Event::Connected { .. } | Event::Pong { .. } => {}
        }
    }
}

/// `mux_ops`: a structure-aware program of application commands, peer
/// messages that no real peer would send, deliveries, clock moves and
/// connection loss, applied to a connected pair (model: quinn's `streams`
/// target). Invariants: every exchange ends exactly once; a stream never
/// holds more unconsumed messages than its window; bounded state; after
/// both links close nothing is left.
pub fn mux_ops(data: &[u8], origin: Instant) {
    run_program(&MuxProgram::from_bytes(data), origin);
}

/// Runs a `mux_ops` program (shared with tests that build programs).
pub fn run_program(program: &MuxProgram, origin: Instant) {
    let mut pair = LinkPair::connected(origin, small_limits);
    let mut books = [Books::default(), Books::default()];
    let payload = |len: u16| Bytes::from(vec![0xa5; usize::from(len % 2048)]);
    // Mostly registered handlers (see `LinkPair::handlers`), sometimes not.
    let handler = |h: u8| [1, 2, 3, 4, 10, 11, 12, 78, 99, 0][usize::from(h % 10)];
    for op in &program.ops {
        let now = pair.now;
        match op.clone() {
            MuxOp::Request {
                side,
                handler: handler_byte,
                len,
                deadline_ms,
            } => {
                let s = usize::from(side);
                let deadline = deadline_ms.map(|ms| now + Duration::from_millis(ms.into()));
                let h = handler(handler_byte);
                if let Ok(mux) = pair.links[s].request(now, h, None, payload(len), deadline) {
                    books[s].opened.insert(mux, None);
                }
            }
            MuxOp::OpenStream {
                side,
                handler: handler_byte,
                len,
                deadline_ms,
                window,
                input,
            } => {
                let s = usize::from(side);
                let opts = StreamOpts {
                    deadline: deadline_ms.map(|ms| now + Duration::from_millis(ms.into())),
                    window: u32::from(window % 20),
                    input,
                };
                let h = handler(handler_byte);
                if let Ok(mux) = pair.links[s].open_stream(now, h, None, payload(len), opts) {
                    books[s].opened.insert(mux, Some(opts.window.max(1)));
                }
            }
            MuxOp::Send { side, index, len } => {
                let s = usize::from(side);
                if let Some(mux) = books[s].pick(index, true, None) {
                    let _ = pair.links[s].send(now, mux, payload(len));
                }
            }
            MuxOp::Consume { side, index, n } => {
                let s = usize::from(side);
                if let Some(mux) = books[s].pick(index, true, None) {
                    let held = books[s].unconsumed.entry(mux).or_default();
                    let n = u32::from(n).min(*held);
                    *held -= n;
                    pair.links[s].consumed(now, mux, n);
                }
            }
            MuxOp::Respond {
                side,
                index,
                ok,
                len,
            } => {
                let s = usize::from(side);
                let requests: Vec<MuxId> = books[s]
                    .served
                    .iter()
                    .filter(|(_, st)| !**st)
                    .map(|(m, _)| *m)
                    .collect();
                if let Some(mux) = requests.get(usize::from(index) % requests.len().max(1)) {
                    let result = if ok {
                        Ok(payload(len))
                    } else {
                        Err(ErrorPayload::new(ErrorCode::Application, "no"))
                    };
                    // `TooLarge` still ends the exchange (the caller gets an
                    // error instead).
                    match pair.links[s].respond(now, *mux, result) {
                        Ok(()) | Err(crate::link::CommandError::TooLarge { .. }) => {
                            books[s].served.remove(mux);
                        }
                        Err(_) => {}
                    }
                }
            }
            MuxOp::Finish { side, index } => {
                let s = usize::from(side);
                if let Some(mux) = books[s].pick(index, true, None) {
                    // A served stream's handler either returns (release:
                    // no more events) or keeps reading its input.
                    if pair.links[s].finish(now, mux).is_ok() && mux.origin == Origin::Remote {
                        if index % 2 == 0 || books[s].input_over.contains(&mux) {
                            pair.links[s].release(now, mux);
                            books[s].forget(mux);
                        } else {
                            books[s].finished.insert(mux);
                        }
                    }
                }
            }
            MuxOp::FailStream { side, index } => {
                let s = usize::from(side);
                if let Some(mux) = books[s].pick(index, true, Some(Origin::Remote)) {
                    let e = ErrorPayload::new(ErrorCode::Application, "failed");
                    if pair.links[s].fail_stream(now, mux, e).is_ok() {
                        books[s].forget(mux);
                    }
                }
            }
            MuxOp::Cancel { side, index } => {
                let s = usize::from(side);
                if let Some(mux) = books[s].pick(index, false, None) {
                    pair.links[s].cancel(now, mux);
                    books[s].forget(mux);
                }
            }
            MuxOp::Deliver { side } => {
                pair.transfer(usize::from(side));
            }
            MuxOp::Advance { ms } => pair.advance(Duration::from_millis(ms.into())),
            MuxOp::Inject {
                to,
                mux,
                seq,
                op,
                flags,
                payload,
            } => {
                let t = usize::from(to);
                let msg = Message {
                    mux_id: u64::from(mux % 8),
                    seq: u32::from(seq % 8),
                    deadline_ms: 0,
                    handler: 10,
                    op: Op::from_u8(op % 20),
                    flags: Flags::from_bits(flags & 0x1e),
                    payload: Some(Bytes::copy_from_slice(
                        &payload[..usize::from(payload[0] % 7)],
                    )),
                    subroute: None,
                };
                // Only between the peer's writes, so frames stay whole.
                pair.transfer(1 - t);
                let mut wire = BytesMut::new();
                msg.encode(true, &mut wire);
                let frame = ws_frame(&wire, t == 1);
                let mut input = BytesMut::from(&frame[..]);
                pair.links[t].handle_input(pair.now, &mut input);
            }
            MuxOp::Kill { odds } if odds < 32 => pair.kill(),
            MuxOp::Kill { .. } => {}
        }
        for (s, book) in books.iter_mut().enumerate() {
            for e in pair.take_events(s) {
                book.on_event(e);
            }
            assert!(pair.links[s].pending_timers() <= pair.links[s].open_exchanges());
        }
        if books.iter().any(|b| b.closed) {
            break;
        }
    }
    // Close both links: every exchange must end, and nothing may remain.
    let now = pair.now;
    for s in 0..2 {
        pair.links[s].close(now);
    }
    pair.advance(Duration::from_secs(10));
    for (s, book) in books.iter_mut().enumerate() {
        for e in pair.take_events(s) {
            book.on_event(e);
        }
        assert!(pair.links[s].is_closed(), "side {s} did not close");
        assert_eq!(pair.links[s].open_exchanges(), 0);
        assert!(book.opened.is_empty() && book.served.is_empty());
    }
}
