//! One peer link as a pure state machine: WebSocket upgrade, the
//! `Connect` handshake, then requests and streams multiplexed over one
//! connection, with flow control, deadlines, cancellation and keepalive.
//!
//! The contract is quinn-proto's: every input is a method call with an
//! explicit `now`; outputs are polled. After every input or command, drain
//! [`Link::poll_transmit`] and [`Link::poll_event`], then read
//! [`Link::poll_timeout`] and call [`Link::handle_timeout`] when it passes.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Instant, SystemTime};
//! use bytes::{Bytes, BytesMut};
//! use gridmux_core::auth::Keyring;
//! use gridmux_core::link::{Event, HandlerKind, Link, LinkConfig};
//! use gridmux_core::ws::Transmit;
//! use rand_core::{RngCore, impls};
//!
//! # struct Counter(u64);
//! # impl RngCore for Counter {
//! #     fn next_u32(&mut self) -> u32 { self.next_u64() as u32 }
//! #     fn next_u64(&mut self) -> u64 { self.0 += 1; self.0 }
//! #     fn fill_bytes(&mut self, d: &mut [u8]) { impls::fill_bytes_via_next(self, d) }
//! # }
//! let (now, wall) = (Instant::now(), SystemTime::now());
//! let peers = vec!["a:1".to_string(), "b:1".to_string()];
//! let auth = Arc::new(Keyring::new(["secret"]).unwrap());
//! let config = |me: &str| {
//!     let mut c = LinkConfig::new(me, peers.clone(), [0; 16], auth.clone());
//!     c.handlers.register(7, None, HandlerKind::Request).unwrap();
//!     Arc::new(c)
//! };
//! // "a:1" dials "b:1" (the xxh3 rule decides; see `cluster::should_dial`).
//! let (dialer, acceptor) = if gridmux_core::cluster::should_dial("a:1", "b:1") {
//!     ("a:1", "b:1")
//! } else {
//!     ("b:1", "a:1")
//! };
//! let mut d = Link::dial(config(dialer), acceptor, now, wall, Box::new(Counter(0)));
//! let mut a = Link::accept(config(acceptor), now, wall, &mut Counter(100));
//! // Move bytes both ways until both are connected.
//! let pump = |from: &mut Link, to: &mut Link| {
//!     let mut out = Transmit::new();
//!     while from.poll_transmit(now, &mut out) {}
//!     to.handle_input(now, &mut BytesMut::from(&out.to_vec()[..]));
//! };
//! for _ in 0..4 {
//!     pump(&mut d, &mut a);
//!     pump(&mut a, &mut d);
//! }
//! assert!(matches!(d.poll_event(), Some(Event::Connected { .. })));
//! assert!(matches!(a.poll_event(), Some(Event::Connected { .. })));
//! let mux = d.request(now, 7, None, Bytes::from_static(b"ping"), None).unwrap();
//! pump(&mut d, &mut a);
//! let Some(Event::Request { mux: served, payload, .. }) = a.poll_event() else { panic!() };
//! assert_eq!(payload, "ping");
//! a.respond(now, served, Ok(Bytes::from_static(b"pong"))).unwrap();
//! pump(&mut a, &mut d);
//! assert_eq!(d.poll_event(), Some(Event::Response { mux, result: Ok(Bytes::from_static(b"pong")) }));
//! ```

mod closing;
mod commands;
mod config;
mod dispatch;
mod event;
mod observing;
mod outbox;
mod setup;
mod stream_input;
mod upgrade;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use tracing::debug;

pub use config::{
    ClientAccess, HandlerKind, HandlerTable, LinkConfig, RegisterError, StreamOpts, DEFAULT_PATH,
};
pub use event::{CallError, CommandError, Event, LinkError};
pub use upgrade::{authorize_upgrade, UpgradeRejection, CLIENT_ROLE, NODE_HEADER, NONCE_HEADER};

use crate::mux::{MuxHashing, MuxId, MuxTable, Origin, TimerQueue};
use crate::wire::Message;
use crate::ws::{self, Transmit};
use outbox::{Lane, Outbox};

/// Where the link is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Acceptor: reading the HTTP upgrade request.
    AwaitUpgrade,
    /// Dialer: the WebSocket upgrade is in flight.
    Upgrading(Box<setup::DialerSetup>),
    /// Acceptor: answered 101 with its nonce, waiting for `Connect`.
    AwaitConnect(Box<setup::AcceptorSetup>),
    /// Dialer: `Connect` sent, waiting for the acceptor's proof.
    AwaitConnectResponse(Box<setup::DialerSetup>),
    /// Exchanges may run.
    Connected,
    /// `Event::Closed` was queued.
    Closed,
}

/// One peer link. See the [module docs](self).
pub struct Link {
    config: Arc<LinkConfig>,
    phase: Phase,
    /// `None` until the acceptor has read the upgrade request.
    ws: Option<ws::Endpoint>,
    /// The peer's name, once known.
    remote: Option<String>,
    /// Maps `Instant`s to wall-clock time for the handshake and pings.
    clock_origin: (Instant, SystemTime),
    muxes: MuxTable,
    /// Served requests' answers queued, for the observer.
    answers: VecDeque<observing::PendingAnswer>,
    /// Served streams' first outputs queued, for the observer.
    first_outs: VecDeque<observing::FirstOut>,
    timers: TimerQueue,
    outbox: Outbox,
    events: VecDeque<Event>,
    /// HTTP bytes written before the WebSocket exists (acceptor).
    raw_out: Option<Bytes>,
    /// The upgrade request's answer in `raw_out`, for the observer.
    upgrade_answer: Option<observing::UpgradeAnswer>,
    handshake_deadline: Option<Instant>,
    next_ping: Option<Instant>,
    last_pong: Instant,
    /// Output has waited since then for the writer to take it.
    stall_since: Option<Instant>,
    /// Where the upgrade head may end (acceptor; parsing waits for it).
    head_scan: ws::handshake::HeadScanner,
    /// The secret the set-up was proven with, once connected.
    key_id: Option<crate::auth::KeyId>,
    /// The acceptor's set-up nonce (drawn when it is created).
    accept_nonce: crate::auth::link::Nonce,
    /// Streams removed while their last message was still queued, with
    /// its ticket: control messages about them go behind it.
    draining: HashMap<MuxId, outbox::Ticket, MuxHashing>,
    /// `draining` is swept when it reaches this size.
    draining_sweep_at: usize,
    /// While a merged frame of this many bytes is dispatched: its small
    /// payloads are copied out before they are held, so that a few held
    /// bytes never pin a large frame.
    merged_frame_len: Option<usize>,
    /// What the session beneath derived for this link (a TLS exporter),
    /// bound into both set-up proofs; empty over plain TCP.
    channel: Vec<u8>,
}

/// `draining` is first swept of entries whose message has left when it
/// holds this many (then whenever it doubles).
const DRAINING_SWEEP: usize = 256;

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("local", &self.config.local)
            .field("remote", &self.remote)
            .field("phase", &self.phase)
            .field("open_exchanges", &self.muxes.len())
            .field("queued_bytes", &self.queued_bytes())
            .finish_non_exhaustive()
    }
}

impl Link {
    fn new(config: Arc<LinkConfig>, phase: Phase, now: Instant, wall: SystemTime) -> Self {
        let crc = config.crc;
        Self {
            handshake_deadline: Some(now + config.handshake_timeout),
            config,
            phase,
            ws: None,
            remote: None,
            clock_origin: (now, wall),
            muxes: MuxTable::new(),
            answers: VecDeque::new(),
            first_outs: VecDeque::new(),
            timers: TimerQueue::new(),
            outbox: Outbox::new(crc),
            events: VecDeque::new(),
            raw_out: None,
            upgrade_answer: None,
            next_ping: None,
            last_pong: now,
            stall_since: None,
            accept_nonce: [0; crate::auth::link::NONCE_LEN],
            key_id: None,
            head_scan: ws::handshake::HeadScanner::default(),
            draining: HashMap::default(),
            draining_sweep_at: DRAINING_SWEEP,
            merged_frame_len: None,
            channel: Vec::new(),
        }
    }

    /// The wall-clock time at `now`.
    fn wall(&self, now: Instant) -> SystemTime {
        let (origin, wall) = self.clock_origin;
        wall + now.saturating_duration_since(origin)
    }

    // ---- state ----------------------------------------------------------

    /// The peer's name, once known (the dialer knows it from the start).
    pub fn remote(&self) -> Option<&str> {
        self.remote.as_deref()
    }

    /// The secret this link's set-up was proven with (its
    /// [`Keyring::key_id`](crate::auth::Keyring::key_id)), once connected:
    /// when that secret is dropped, the link should be closed.
    pub fn key_id(&self) -> Option<crate::auth::KeyId> {
        self.key_id
    }

    /// How long a closed link's last bytes (its Close frame) may wait for
    /// the socket: the WebSocket close timeout. An adapter drops the socket
    /// after it, so a peer that stopped reading cannot hold the link's task.
    pub fn close_timeout(&self) -> std::time::Duration {
        self.config.ws.close_timeout
    }

    /// How this link hashes mux ids (keyed per link: peers choose ids).
    /// Maps an application keeps by mux id should use it too.
    pub fn mux_hashing(&self) -> MuxHashing {
        self.muxes.hashing()
    }

    /// Keys the link's maps (constructors, with fresh randomness).
    fn set_hashing(&mut self, hashing: MuxHashing) {
        self.muxes = MuxTable::with_hashing(hashing);
        self.draining = HashMap::with_hasher(hashing);
    }

    /// Whether exchanges may run.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Whether the link is over (`Event::Closed` was queued).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Open exchanges (requests and streams, both roles).
    pub fn open_exchanges(&self) -> usize {
        self.muxes.len()
    }

    /// Answers and stream outputs queued whose records wait for them to
    /// be handed over.
    pub fn pending_records(&self) -> usize {
        self.answers.len() + self.first_outs.len()
    }

    /// Bytes queued for sending and not yet taken by `poll_transmit`.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.bytes() + self.ws.as_ref().map_or(0, ws::Endpoint::queued_bytes)
    }

    /// Payload bytes held for the application (see
    /// [`LinkConfig::max_inbound_bytes`]).
    pub fn inbound_bytes(&self) -> usize {
        self.muxes.inbound_bytes()
    }

    /// The part of [`inbound_bytes`](Self::inbound_bytes) held for
    /// exchanges the peer opened.
    pub fn served_inbound_bytes(&self) -> usize {
        self.muxes.served_inbound_bytes()
    }

    /// Numbers the muxes this link opens `counter << shift` (simulations
    /// of a peer that chooses ids a weak hash would put in one bucket).
    #[cfg(feature = "fuzzing")]
    pub fn shift_mux_ids(&mut self, shift: u32) {
        self.muxes.shift_ids(shift);
    }

    /// Numbers the next muxes this link opens from 1 again (tests of a
    /// peer that reuses the ids of exchanges that are over).
    #[cfg(feature = "fuzzing")]
    pub fn rewind_mux_ids(&mut self) {
        self.muxes.rewind_ids();
    }

    /// Whether a served request or stream open of `size` bytes fits in the
    /// inbound budget (what we hold of the peer's exchanges; one always
    /// fits when nothing is held, so a budget below the message size
    /// cannot refuse everything).
    fn within_budget(&self, size: usize) -> bool {
        let held = self.muxes.served_inbound_bytes();
        held == 0 || held.saturating_add(size) <= self.config.max_inbound_bytes
    }

    /// Entries in the timer queue (one per exchange at most).
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    // ---- inputs ---------------------------------------------------------

    /// Consumes what it can of the bytes read from the socket; an
    /// incomplete tail stays in `buf`.
    pub fn handle_input(&mut self, now: Instant, buf: &mut BytesMut) {
        if matches!(self.phase, Phase::Closed) {
            buf.clear();
            return;
        }
        if self.phase == Phase::AwaitUpgrade {
            self.read_upgrade(now, buf);
        }
        if self.ws.is_none() {
            if self.phase != Phase::AwaitUpgrade {
                buf.clear();
            }
            return;
        }
        // During the set-up the endpoint hands over one message at a time
        // (the peer's proof lifts its limits): feed it until it stops.
        while let Some(ws) = &mut self.ws {
            let before = buf.len();
            ws.handle_input(now, buf);
            self.pump_ws(now);
            if buf.is_empty() || buf.len() == before || self.phase == Phase::Closed {
                break;
            }
        }
    }

    /// The peer closed its sending side.
    pub fn handle_eof(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        match &mut self.ws {
            Some(ws) => {
                ws.handle_eof(now);
                self.pump_ws(now);
            }
            None => self.fail(now, LinkError::WebSocket(ws::CloseCause::Abnormal)),
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        if let Some(ws) = &mut self.ws {
            ws.handle_timeout(now);
            self.pump_ws(now);
        }
        if self.handshake_deadline.is_some_and(|t| t <= now) {
            self.handshake_deadline = None;
            self.fail(now, LinkError::HandshakeTimeout);
        }
        if let Some(since) = self.stall_since.filter(|_| self.is_live()) {
            if now.saturating_duration_since(since) >= self.config.write_stall_timeout {
                self.fail(now, LinkError::WriteStall(now - since));
            }
        }
        if self.phase != Phase::Connected {
            return;
        }
        let silent = now.saturating_duration_since(self.last_pong);
        if silent >= self.config.pong_timeout {
            self.fail(now, LinkError::PongTimeout(silent));
            return;
        }
        if self.next_ping.is_some_and(|t| t <= now) {
            self.send_link_ping(now);
            self.next_ping = Some(now + self.config.ping_interval);
        }
        while let Some(mux) = self.timers.pop_due(now) {
            self.on_mux_timer(now, mux);
        }
    }

    // ---- outputs --------------------------------------------------------

    /// Appends bytes to write to `out`; returns whether it added any. Call
    /// it when the socket can take more, until it returns `false`.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) -> bool {
        let before = out.len();
        if let Some(raw) = self.raw_out.take() {
            out.push(raw);
            self.upgrade_answer_sent(now);
        }
        if let Some(ws) = &mut self.ws {
            while ws.queued_bytes() < WS_QUEUE_TARGET && ws.is_open() {
                let Some(message) = self
                    .outbox
                    .next_ws_message(self.config.merge_max_messages, self.config.merge_max_bytes)
                else {
                    break;
                };
                if let Err(e) = ws.send(ws::Message::binary(message)) {
                    debug!(error = %e, "websocket refused a grid message");
                    break;
                }
                if let Some(peer) = self.remote.as_deref() {
                    let messages = self.outbox.last_batch();
                    if self.config.observer.enabled() {
                        self.config.observer.batch_sent(peer, messages);
                    }
                }
            }
            while ws.poll_transmit(now, out) {}
            if !ws.is_open() {
                // What went out before it closed is recorded; what is
                // still queued never will go.
                self.flush_answers(now);
                self.outbox.clear();
                self.drop_answers(now);
            }
        }
        self.flush_answers(now);
        let progressed = out.len() > before;
        if progressed || !self.has_pending_output() {
            self.stall_since = self.has_pending_output().then_some(now);
        }
        progressed
    }

    /// Whether the link is not closed.
    fn is_live(&self) -> bool {
        self.phase != Phase::Closed
    }

    /// Whether output waits for [`poll_transmit`](Self::poll_transmit)
    /// (an adapter waits for the socket to be writable while this holds).
    pub fn has_pending_output(&self) -> bool {
        self.raw_out.is_some()
            || !self.outbox.is_empty()
            || self
                .ws
                .as_ref()
                .is_some_and(ws::Endpoint::has_pending_transmit)
    }

    /// Bytes of the WebSocket frame being read that have not arrived yet
    /// (see [`ws::Endpoint::input_wanted`]).
    pub fn input_wanted(&self) -> usize {
        if matches!(self.phase, Phase::Closed) {
            return 0;
        }
        self.ws.as_ref().map_or(0, ws::Endpoint::input_wanted)
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        let mut next = self.ws.as_ref().and_then(ws::Endpoint::poll_timeout);
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.handshake_deadline);
        if self.is_live() {
            consider(
                self.stall_since
                    .map(|t| t + self.config.write_stall_timeout),
            );
        }
        if self.phase == Phase::Connected {
            consider(self.next_ping);
            consider(Some(self.last_pong + self.config.pong_timeout));
            consider(self.timers.next());
        }
        next
    }

    // ---- internals ------------------------------------------------------

    /// Queues a grid message; a data message gets its place in line.
    fn send_msg(&mut self, now: Instant, lane: Lane, msg: &Message) -> Option<outbox::Ticket> {
        let ticket = self.outbox.push(lane, msg, true);
        if self.stall_since.is_none() {
            self.stall_since = Some(now);
        }
        // Data is bounded where it is queued (commands check the queue,
        // served work is refused while it is full). Control messages answer
        // the peer's input; a peer that keeps sending without reading them
        // is cut off.
        if self.outbox.control_bytes() > self.config.max_queued_bytes {
            self.fail(now, LinkError::Overflow(self.outbox.control_bytes()));
        }
        ticket
    }

    /// Handles what the WebSocket endpoint reported.
    fn pump_ws(&mut self, now: Instant) {
        while let Some(event) = self.ws.as_mut().and_then(ws::Endpoint::poll_event) {
            match event {
                ws::Event::Open(handshake) => self.on_ws_open(now, &handshake),
                ws::Event::Message(m) if m.kind() == ws::MessageKind::Binary => {
                    self.on_ws_message(now, m.into_payload());
                }
                ws::Event::Message(_) => {
                    let e = LinkError::Malformed("a text frame on a grid link".into());
                    self.fail(now, e);
                }
                ws::Event::Ping(_) => {}
                // gridmux never sends WebSocket pings, so a pong is either a
                // foreign peer or a binary frame whose opcode a flipped bit
                // turned into 0xA: its grid message would vanish unnoticed
                // (the CRC covers grid bytes, not WebSocket headers).
                ws::Event::Pong(_) => {
                    let e = LinkError::Malformed("unsolicited WebSocket pong".into());
                    self.fail(now, e);
                }
                ws::Event::Closed(cause) => self.on_ws_closed(now, cause),
            }
        }
    }

    /// Re-registers `mux`'s timer after its state changed.
    fn reschedule(&mut self, mux: MuxId) {
        let wake_and_slot = match mux.origin {
            Origin::Local => match self.muxes.out_requests.get_mut(&mux.id) {
                Some(r) => Some((Some(r.deadline), &mut r.timer)),
                None => self
                    .muxes
                    .streams
                    .get_mut(&mux)
                    .map(|s| (s.wake(), &mut s.timer)),
            },
            Origin::Remote => match self.muxes.in_requests.get_mut(&mux.id) {
                Some(r) => Some((Some(r.deadline), &mut r.timer)),
                None => self
                    .muxes
                    .streams
                    .get_mut(&mux)
                    .map(|s| (s.wake(), &mut s.timer)),
            },
        };
        if let Some((wake, slot)) = wake_and_slot {
            self.timers.reschedule(mux, slot, wake);
        }
    }

    /// Forgets `slot`'s timer entry (the exchange is being removed).
    fn drop_timer(&mut self, mux: MuxId, slot: Option<Instant>) {
        let mut slot = slot;
        self.timers.reschedule(mux, &mut slot, None);
    }
}

/// Grid messages are moved into the WebSocket endpoint while it holds less
/// than this; the rest waits in the outbox, where control messages can
/// still overtake data and backlog can be merged.
const WS_QUEUE_TARGET: usize = 64 * 1024;

/// The longest prefix of `s` of at most `max` bytes that ends on a char
/// boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
