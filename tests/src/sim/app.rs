//! The application model: what handlers do, what callers expect, and the
//! per-event checks of invariants 1, 2 and 5.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gridmux_core::link::{CallError, CommandError, Event, Link};
use gridmux_core::mux::{MuxId, Origin};
use gridmux_core::wire::{ErrorCode, ErrorPayload};
use rand::Rng;

use super::net::Conn;
use super::swarm::Faults;
use super::world::World;

/// Handler ids of the model.
pub mod handler {
    /// Request: answers with its payload.
    pub const ECHO: u8 = 1;
    /// Request: answers with an application error.
    pub const FAIL: u8 = 2;
    /// Request: never answers.
    pub const HANG: u8 = 3;
    /// Request: "panics" (answers `HandlerPanicked`).
    pub const PANIC: u8 = 4;
    /// Request: answers `blob` bytes of the length its 4-byte
    /// payload names (a small request, a large answer).
    pub const BLOB: u8 = 5;
    /// Stream: echoes each message, ends after the caller's EOF.
    pub const STREAM_ECHO: u8 = 10;
    /// Stream without input: sends N numbered messages.
    pub const PRODUCER: u8 = 11;
    /// Stream: counts the caller's messages, answers the count.
    pub const SINK: u8 = 12;
    /// Registered nowhere.
    pub const UNKNOWN: u8 = 20;
}

/// An exchange in the model: connection, side, mux.
pub type Key = (u64, usize, MuxId);

/// How a consumer takes the messages of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    /// At once.
    Fast,
    /// After a delay.
    Slow,
    /// Not until the workload ends.
    Stopped,
}

/// A request the model sent.
#[derive(Debug, Clone)]
pub struct CallerRequest {
    /// Target handler.
    pub handler: u8,
    /// What was sent.
    pub payload: Bytes,
    /// When the caller gives up.
    pub deadline: Instant,
}

/// What a caller's stream does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Sends messages, expects them back.
    Echo,
    /// Sends nothing, expects `n` numbered messages.
    Producer(u32),
    /// Sends messages, expects their count.
    Sink,
}

/// A stream the model opened.
#[derive(Debug, Clone)]
pub struct CallerStream {
    /// What it does.
    pub kind: StreamKind,
    /// Messages still to send.
    pub plan: VecDeque<Bytes>,
    /// Messages sent.
    pub sent: Vec<Bytes>,
    /// Messages received.
    pub received: Vec<Bytes>,
    /// How they are consumed.
    pub consumer: Consumer,
    /// Received and not consumed yet.
    pub unconsumed: u32,
    /// The window announced when opening.
    pub window: u32,
    /// When the stream times out.
    pub deadline: Option<Instant>,
    /// Our EOF was requested.
    pub finished: bool,
}

/// A stream the model serves.
#[derive(Debug, Clone)]
pub struct ServedStream {
    /// Which handler.
    pub handler: u8,
    /// Echo: messages waiting for a credit to be echoed.
    pub pending: VecDeque<Bytes>,
    /// Producer: messages still to send; sink: messages counted.
    pub count: u32,
    /// The caller finished its input.
    pub input_ended: bool,
    /// When the stream times out.
    pub deadline: Option<Instant>,
}

/// Something the model does later.
#[derive(Debug, Clone)]
pub enum Action {
    /// A handler answers.
    Respond(Key, Result<Bytes, ErrorPayload>),
    /// A slow consumer takes one message.
    Consume(Key),
    /// Retry sending after a full queue.
    Pump(Key),
}

impl Action {
    /// Whether the action belongs to node `n` (dropped when it stops).
    pub fn concerns_node(&self, conns: &BTreeMap<u64, Box<Conn>>, n: usize) -> bool {
        let (Self::Respond((c, s, _), _) | Self::Consume((c, s, _)) | Self::Pump((c, s, _))) = self;
        conns.get(c).is_none_or(|conn| conn.nodes[*s] == n)
    }
}

/// Every exchange the model has open, and counters.
#[derive(Debug, Default)]
pub struct App {
    /// Requests we sent.
    pub requests: BTreeMap<Key, CallerRequest>,
    /// Streams we opened.
    pub streams: BTreeMap<Key, CallerStream>,
    /// Requests we serve (deadline).
    pub served_requests: BTreeMap<Key, Instant>,
    /// Streams we serve.
    pub served_streams: BTreeMap<Key, ServedStream>,
    /// Served streams whose handler finished cleanly: `(conn, side, id)`.
    pub finished_served: BTreeSet<(u64, usize, u64)>,
    /// Requests cancelled before they were written, as the serving side
    /// would see them: `(conn, side, id)`. They must never be served.
    pub cancelled_unsent: BTreeSet<(u64, usize, u64)>,
    /// Outcome counters.
    pub stats: Stats,
}

/// Outcome counters of a run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Requests answered with the expected result.
    pub responses_ok: u64,
    /// Requests that ended with an error.
    pub responses_err: u64,
    /// Streams that ended cleanly with the expected content.
    pub streams_ok: u64,
    /// Streams that ended with an error.
    pub streams_err: u64,
    /// Links that closed.
    pub links_closed: u64,
}

impl Stats {
    /// Adds another run's counters.
    pub fn add(&mut self, other: &Self) {
        self.responses_ok += other.responses_ok;
        self.responses_err += other.responses_err;
        self.streams_ok += other.streams_ok;
        self.streams_err += other.streams_err;
        self.links_closed += other.links_closed;
    }
}

impl App {
    /// Whether nothing is open.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
            && self.streams.is_empty()
            && self.served_requests.is_empty()
            && self.served_streams.is_empty()
    }

    /// Counts for error messages.
    pub fn summary(&self) -> String {
        format!(
            "{} requests, {} streams, {} served requests, {} served streams open",
            self.requests.len(),
            self.streams.len(),
            self.served_requests.len(),
            self.served_streams.len()
        )
    }

    /// Drops everything of one side of a connection (its process died).
    pub fn forget(&mut self, conn: u64, side: usize) {
        let keep = |k: &Key| k.0 != conn || k.1 != side;
        self.requests.retain(|k, _| keep(k));
        self.streams.retain(|k, _| keep(k));
        self.served_requests.retain(|k, _| keep(k));
        self.served_streams.retain(|k, _| keep(k));
    }

    fn has_side(&self, conn: u64, side: usize) -> bool {
        let on = |k: &Key| k.0 == conn && k.1 == side;
        self.requests.keys().any(on)
            || self.streams.keys().any(on)
            || self.served_requests.keys().any(on)
            || self.served_streams.keys().any(on)
    }
}

/// Whether an error is one the model allows for an exchange that did not
/// succeed: it must never be a protocol violation.
pub(super) fn acceptable(error: &CallError, also: &[ErrorCode]) -> bool {
    match error {
        CallError::Disconnected | CallError::Timeout => true,
        // Overloaded: limits; Canceled: the serving side cancelled.
        CallError::Remote { code, .. } => {
            matches!(code, ErrorCode::Overloaded | ErrorCode::Canceled) || also.contains(code)
        }
        CallError::Canceled | CallError::Protocol(_) | CallError::Overloaded(_) => false,
    }
}

impl World {
    pub(super) fn link(&mut self, key: Key) -> Option<&mut Link> {
        self.conns.get_mut(&key.0)?.links[key.1].as_mut()
    }

    /// Handles one event of link `(conn, side)`.
    pub(super) fn on_event(&mut self, conn: u64, side: usize, event: Event) {
        self.trace
            .record(self.ms(), format!("c{conn}/{side} {}", short(&event)));
        match event {
            Event::Connected { .. } => self.on_connected(conn, side),
            Event::Request {
                mux,
                handler,
                payload,
                deadline,
                ..
            } => {
                self.delivered_requests += 1;
                self.serve_request((conn, side, mux), handler, payload, deadline);
            }
            Event::Response { mux, result } => self.on_response((conn, side, mux), result),
            Event::StreamOpened {
                mux,
                handler,
                payload,
                deadline,
                has_input,
                ..
            } => {
                self.delivered_streams += 1;
                let count = match handler {
                    handler::PRODUCER => payload
                        .get(..4)
                        .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap_or_default())),
                    _ => 0,
                };
                let served = ServedStream {
                    handler,
                    pending: VecDeque::new(),
                    count,
                    input_ended: !has_input,
                    deadline,
                };
                self.app.served_streams.insert((conn, side, mux), served);
                self.pump_served((conn, side, mux));
            }
            Event::Message { mux, payload } => self.on_message((conn, side, mux), payload),
            Event::InputEnded { mux } => {
                let key = (conn, side, mux);
                match self.app.served_streams.get_mut(&key) {
                    Some(s) => s.input_ended = true,
                    None => return self.violate(format!("input end for unknown stream {key:?}")),
                }
                self.pump_served(key);
            }
            Event::Writable { mux } => match mux.origin {
                Origin::Local => self.pump_caller((conn, side, mux)),
                Origin::Remote => self.pump_served((conn, side, mux)),
            },
            Event::Ended { mux, result } => self.on_ended((conn, side, mux), result),
            Event::Pong { .. } => {}
            Event::Closed(reason) => self.on_closed(conn, side, &reason.to_string()),
        }
    }

    fn on_connected(&mut self, conn: u64, side: usize) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.connected[side] = true;
        let nodes = c.nodes;
        if let Some(forgery) = c.forged {
            return self.violate(format!("{forgery:?} brought link c{conn}/{side} up"));
        }
        if side == 0 {
            self.record_setup(conn);
            if let Some(d) = self.nodes[nodes[0]].dials.get_mut(&nodes[1]) {
                d.failures = 0;
            }
            return;
        }
        // A new session replaces any older link of the same pair.
        let now = self.now;
        let older: Vec<u64> = self
            .conns
            .iter()
            .filter(|(id, c)| **id != conn && c.nodes == nodes)
            .map(|(id, _)| *id)
            .collect();
        for id in older {
            if let Some(link) = self.conns.get_mut(&id).and_then(|c| c.links[1].as_mut()) {
                link.close(now);
            }
            self.drain(id, 1);
        }
    }

    fn on_closed(&mut self, conn: u64, side: usize, reason: &str) {
        self.app.stats.links_closed += 1;
        if self.app.has_side(conn, side) {
            return self.violate(format!("exchanges outlived link c{conn}/{side} ({reason})"));
        }
        if self.swarm.faults == Faults::None {
            return self.violate(format!(
                "link c{conn}/{side} closed without a fault: {reason}"
            ));
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.closed[side] = true;
        let (dialer, acceptor, connected) = (c.nodes[0], c.nodes[1], c.connected[0]);
        if side != 0 || !self.nodes[dialer].alive {
            return;
        }
        let dial = self.nodes[dialer].dials.entry(acceptor).or_default();
        if dial.conn != Some(conn) {
            return;
        }
        if connected {
            // A lost link is re-dialled at once.
            dial.conn = None;
            dial.next_attempt = Some(self.now);
        } else {
            self.dial_failed(dialer, acceptor);
        }
    }

    // ---- requests -------------------------------------------------------

    fn serve_request(&mut self, key: Key, handler: u8, payload: Bytes, deadline: Instant) {
        if self.app.cancelled_unsent.remove(&(key.0, key.1, key.2.id)) {
            return self.violate(format!(
                "request {key:?} was served although it was cancelled before it was written"
            ));
        }
        self.app.served_requests.insert(key, deadline);
        let result = match handler {
            handler::ECHO => Ok(payload),
            handler::FAIL => Err(ErrorPayload::new(
                ErrorCode::Application,
                fail_text(&payload),
            )),
            handler::PANIC => Err(ErrorPayload::new(ErrorCode::HandlerPanicked, "panic")),
            handler::BLOB => Ok(blob(&payload)),
            handler::HANG => return,
            other => return self.violate(format!("request for unregistered handler {other}")),
        };
        let delay = match self.rng.random_range(0..10) {
            0..=4 => Duration::ZERO,
            5..=8 => Duration::from_millis(self.rng.random_range(0..100)),
            _ => deadline
                .saturating_duration_since(self.now)
                .mul_f64(self.rng.random_range(0.0..2.0)),
        };
        if delay.is_zero() {
            self.perform(Action::Respond(key, result));
        } else {
            self.schedule(self.now + delay, Action::Respond(key, result));
        }
    }

    fn on_response(&mut self, key: Key, result: Result<Bytes, CallError>) {
        let Some(req) = self.app.requests.remove(&key) else {
            return self.violate(format!("response for no open request {key:?}"));
        };
        if self.now > req.deadline {
            return self.violate(format!("request {key:?} answered after its deadline"));
        }
        let ok = match (&result, req.handler) {
            (Ok(p), handler::ECHO) => *p == req.payload,
            (Ok(p), handler::BLOB) => *p == blob(&req.payload),
            (Ok(_), _) => false,
            (Err(e), handler::ECHO | handler::HANG) => acceptable(e, &[]),
            (Err(e), handler::FAIL) => match e {
                CallError::Remote {
                    code: ErrorCode::Application,
                    message,
                } => *message == fail_text(&req.payload),
                e => acceptable(e, &[]),
            },
            (Err(e), handler::PANIC) => acceptable(e, &[ErrorCode::HandlerPanicked]),
            // Past the message size limit the handler's answer is an error.
            (Err(e), handler::BLOB) => acceptable(e, &[ErrorCode::Application]),
            (Err(e), _) => acceptable(e, &[ErrorCode::UnknownHandler]),
        };
        if !ok {
            let got = match &result {
                Ok(p) => format!("Ok({} bytes, first {:?})", p.len(), p.first()),
                Err(e) => format!("Err({e})"),
            };
            return self.violate(format!(
                "wrong answer for {key:?} (handler {}, request of {} bytes): {got}",
                req.handler,
                req.payload.len()
            ));
        }
        match result {
            Ok(_) => self.app.stats.responses_ok += 1,
            Err(_) => self.app.stats.responses_err += 1,
        }
    }

    /// Performs a scheduled action.
    pub(super) fn perform(&mut self, action: Action) {
        let now = self.now;
        match action {
            Action::Respond(key, result) => {
                let Some(deadline) = self.app.served_requests.remove(&key) else {
                    return; // ended already (deadline, cancel, link loss)
                };
                let Some(link) = self.link(key) else {
                    return;
                };
                match link.respond(now, key.2, result.clone()) {
                    Ok(()) | Err(CommandError::TooLarge { .. }) => {}
                    // A large answer waits while the send queue is full.
                    Err(CommandError::QueueFull(_)) => {
                        self.app.served_requests.insert(key, deadline);
                        let at = now + Duration::from_millis(10);
                        self.schedule(at, Action::Respond(key, result));
                    }
                    // The link ended it in input the model has not seen
                    // yet: its `Ended` event is queued and must follow.
                    Err(CommandError::UnknownMux) => {
                        self.app.served_requests.insert(key, deadline);
                    }
                    Err(e) => self.violate(format!("respond to live request {key:?} refused: {e}")),
                }
            }
            Action::Consume(key) => {
                let Some(stream) = self.app.streams.get_mut(&key) else {
                    return;
                };
                stream.unconsumed = stream.unconsumed.saturating_sub(1);
                if let Some(link) = self.link(key) {
                    link.consumed(now, key.2, 1);
                }
            }
            Action::Pump(key) => match key.2.origin {
                Origin::Local => self.pump_caller(key),
                Origin::Remote => self.pump_served(key),
            },
        }
    }
}

/// The answer of the `BLOB` handler to `request`.
pub(super) fn blob(request: &Bytes) -> Bytes {
    let len = request
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap_or_default()));
    Bytes::from(vec![0xb1; len as usize])
}

fn fail_text(payload: &Bytes) -> String {
    format!("failed on {} bytes", payload.len())
}

/// A one-line description of an event for the trace.
fn short(event: &Event) -> String {
    match event {
        Event::Request {
            mux,
            handler,
            payload,
            ..
        } => format!("Request {mux:?} h{handler} {}B", payload.len()),
        Event::Response { mux, result } => format!(
            "Response {mux:?} {}",
            match result {
                Ok(p) => format!("Ok {}B", p.len()),
                Err(e) => format!("Err {e}"),
            }
        ),
        Event::StreamOpened {
            mux,
            handler,
            has_input,
            ..
        } => format!("StreamOpened {mux:?} h{handler} input={has_input}"),
        Event::Message { mux, payload } => format!("Message {mux:?} {}B", payload.len()),
        other => format!("{other:?}"),
    }
}
