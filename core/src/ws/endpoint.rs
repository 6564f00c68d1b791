//! [`Endpoint`]: one WebSocket connection as a sans-IO state machine.
//!
//! ```text
//!  server: AwaitRequest ─┐                    ┌─> CloseSent ──(peer Close)──┐
//!                        ├─(handshake)─> Open ┤                             ├─> Closed
//!  client: AwaitResponse ┘                    └─(peer Close, we reply)──────┘
//!                                       client only: ... ─> AwaitEof ─(EOF or timeout)─> Closed
//! ```
//! Any protocol error goes straight to `Closed` after queueing a Close frame
//! with the matching code ("fail the WebSocket connection").

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use rand_core::RngCore;

use super::handshake::{self, ClientHandshake};
use super::{
    close_payload, parse_close_payload, ClientRequest, CloseCause, CloseCode, Config, Event, Frame,
    FrameDecoder, FrameEncoder, FrameHeader, Handshake, Message, MessageKind, OpCode,
    ProtocolError, Role, SendError, Transmit, Utf8Validator, MAX_CONTROL_PAYLOAD,
};

#[derive(Debug)]
enum State {
    /// Server: waiting for the upgrade request.
    AwaitRequest,
    /// Client: request queued, waiting for the answer.
    AwaitResponse(ClientHandshake),
    /// Messages flow both ways.
    Open,
    /// We sent Close and wait for the peer's.
    CloseSent,
    /// Client: close handshake done; waiting for the server to close TCP.
    AwaitEof(CloseCause),
    /// Over; `Event::Closed` was queued.
    Closed,
}

/// An entry of the event queue. Transitions caused by input (failing the
/// connection, answering the peer's Close) are applied when
/// [`Endpoint::poll_event`] reaches them, so the application has reacted to
/// every earlier message (e.g. echoed it) before the connection closes.
#[derive(Debug)]
enum Queued {
    Event(Event),
    Fail(ProtocolError),
    PeerClose {
        code: Option<CloseCode>,
        reason: String,
        now: Instant,
    },
}

/// A data message being reassembled from fragments.
#[derive(Debug)]
struct Assembly {
    kind: MessageKind,
    buf: BytesMut,
}

/// Pongs (and our own pings) kept queued at most. Older pongs are dropped:
/// RFC 6455 §5.5.3 allows answering only the most recent ping.
const MAX_QUEUED_CONTROL: usize = 16;
/// `poll_transmit` stops adding frames past this many bytes or chunks.
const TRANSMIT_TARGET_BYTES: usize = 256 << 10;
const TRANSMIT_MAX_CHUNKS: usize = 64;

/// One WebSocket connection, client or server, as a sans-IO state machine.
///
/// # Driving it
/// Feed bytes read from the socket to [`handle_input`](Self::handle_input),
/// EOF to [`handle_eof`](Self::handle_eof), and call
/// [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout).
/// After every input or command, drain [`poll_transmit`](Self::poll_transmit)
/// (and write what it yields) and [`poll_event`](Self::poll_event) until both
/// are empty — reacting to an event, or reaching the peer's Close in the event
/// queue, can queue output — then read `poll_timeout` again. `now` must never
/// go backwards. After [`Event::Closed`], write out the remaining transmit
/// and close the socket.
///
/// Input that fails or closes the connection takes effect when `poll_event`
/// reaches it, so the application can still answer every message that
/// arrived before it.
///
/// ```
/// use std::time::Instant;
/// use bytes::BytesMut;
/// use gridmux_core::ws::{ClientRequest, Config, Endpoint, Event, Message, Transmit};
///
/// let now = Instant::now();
/// # use rand::SeedableRng;
/// let rng = Box::new(rand::rngs::SmallRng::seed_from_u64(1));
/// let mut client = Endpoint::client(Config::default(), &ClientRequest::new("h", "/"), rng, now);
/// let mut server = Endpoint::server(Config::default(), now);
/// // Shuttle bytes between the two until both are quiet.
/// let mut wire = Transmit::new();
/// for _ in 0..3 {
///     while client.poll_transmit(now, &mut wire) {}
///     server.handle_input(now, &mut BytesMut::from(&wire.to_vec()[..]));
///     wire.clear();
///     while server.poll_transmit(now, &mut wire) {}
///     client.handle_input(now, &mut BytesMut::from(&wire.to_vec()[..]));
///     wire.clear();
///     if client.is_open() {
///         client.send(Message::text("hi")).unwrap();
///         break;
///     }
/// }
/// while client.poll_transmit(now, &mut wire) {}
/// server.handle_input(now, &mut BytesMut::from(&wire.to_vec()[..]));
/// assert!(matches!(server.poll_event(), Some(Event::Open(_))));
/// assert_eq!(server.poll_event(), Some(Event::Message(Message::text("hi"))));
/// ```
pub struct Endpoint {
    role: Role,
    config: Config,
    state: State,
    decoder: FrameDecoder,
    /// Where the handshake head may end (parsing waits for it).
    head_scan: handshake::HeadScanner,
    /// Stop decoding after each event ([`set_one_at_a_time`](Self::set_one_at_a_time)).
    one_at_a_time: bool,
    encoder: FrameEncoder,
    /// Source of client masking keys (client role only).
    rng: Option<Box<dyn RngCore + Send>>,
    assembly: Option<Assembly>,
    utf8: Utf8Validator,
    /// Handshake bytes, sent before any frame.
    raw: Option<Bytes>,
    /// Pongs answering the peer's pings, sent first; bounded by dropping
    /// the oldest.
    pongs: VecDeque<Frame>,
    /// Our pings, sent ahead of data; bounded by refusing new ones.
    pings: VecDeque<Frame>,
    /// Data frames in order.
    data: VecDeque<Frame>,
    queued_data_bytes: usize,
    /// Our Close frame, sent once `data` is empty.
    close_frame: Option<Frame>,
    close_sent: bool,
    events: VecDeque<Queued>,
    /// A Close or a protocol error was read: later input is ignored.
    input_done: bool,
    timer: Option<Instant>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("queued_data_bytes", &self.queued_data_bytes)
            .field("timer", &self.timer)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    fn new(role: Role, config: Config, state: State, timer: Option<Instant>) -> Self {
        Self {
            role,
            decoder: FrameDecoder::new(role, config.max_frame_size),
            head_scan: handshake::HeadScanner::default(),
            one_at_a_time: false,
            config,
            state,
            encoder: FrameEncoder::new(),
            rng: None,
            assembly: None,
            utf8: Utf8Validator::new(),
            raw: None,
            pongs: VecDeque::new(),
            pings: VecDeque::new(),
            data: VecDeque::new(),
            queued_data_bytes: 0,
            close_frame: None,
            close_sent: false,
            events: VecDeque::new(),
            input_done: false,
            timer,
        }
    }

    /// A server waiting for the client's upgrade request.
    pub fn server(config: Config, now: Instant) -> Self {
        let deadline = now + config.handshake_timeout;
        Self::new(Role::Server, config, State::AwaitRequest, Some(deadline))
    }

    /// A client that sends `request`; `rng` supplies the handshake nonce and
    /// the masking keys, so it should be unpredictable (RFC 6455 §10.3).
    pub fn client(
        config: Config,
        request: &ClientRequest,
        mut rng: Box<dyn RngCore + Send>,
        now: Instant,
    ) -> Self {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        Self::client_with_nonce(config, request, nonce, rng, now)
    }

    /// A client whose handshake nonce (`Sec-WebSocket-Key`, before base64)
    /// the caller drew, for protocols that bind it (the grid's set-up).
    pub fn client_with_nonce(
        config: Config,
        request: &ClientRequest,
        nonce: [u8; 16],
        rng: Box<dyn RngCore + Send>,
        now: Instant,
    ) -> Self {
        let (wire, hs) = request.encode(nonce);
        let deadline = now + config.handshake_timeout;
        let mut ep = Self::new(
            Role::Client,
            config,
            State::AwaitResponse(hs),
            Some(deadline),
        );
        ep.raw = Some(wire);
        ep.rng = Some(rng);
        ep
    }

    /// An endpoint on a connection whose upgrade was done elsewhere (e.g. by an
    /// HTTP router). A client role needs `rng` for masking keys.
    pub fn upgraded(config: Config, role: Role, rng: Option<Box<dyn RngCore + Send>>) -> Self {
        let mut ep = Self::new(role, config, State::Open, None);
        ep.rng = rng;
        ep.events
            .push_back(Queued::Event(Event::Open(Handshake::Preupgraded)));
        ep
    }

    /// Whether [`handle_input`](Self::handle_input) stops after each event,
    /// leaving the rest of the input in the buffer: a protocol on top that
    /// changes the limits after a message (its peer's proof) sees that
    /// message before the next frame is checked.
    pub fn set_one_at_a_time(&mut self, on: bool) {
        self.one_at_a_time = on;
    }

    /// Changes the largest frame and message accepted from now on (a
    /// protocol on top may accept only small messages until its peer has
    /// authenticated).
    pub fn set_limits(&mut self, max_frame_size: usize, max_message_size: usize) {
        self.config.max_frame_size = max_frame_size;
        self.config.max_message_size = max_message_size;
        self.decoder.set_max_frame_size(max_frame_size);
    }

    /// How long the close handshake may take (the configured close
    /// timeout): an adapter drops a closed connection's unwritten bytes
    /// after it.
    pub fn close_timeout(&self) -> std::time::Duration {
        self.config.close_timeout
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether messages can be sent.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Bytes of data messages queued and not yet handed to `poll_transmit`.
    pub fn queued_bytes(&self) -> usize {
        self.queued_data_bytes
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) has something to yield.
    pub fn has_pending_transmit(&self) -> bool {
        self.raw.is_some()
            || !self.pongs.is_empty()
            || !self.pings.is_empty()
            || !self.data.is_empty()
            || self.close_frame.is_some()
    }

    /// Bytes of the frame being read that have not arrived yet, as its
    /// header says (0 between frames, or when no more input is taken): an
    /// adapter can give the frame a buffer of its size before it comes.
    pub fn input_wanted(&self) -> usize {
        match self.state {
            State::Open | State::CloseSent if !self.input_done => self.decoder.payload_wanted(),
            _ => 0,
        }
    }

    /// Bytes held for a fragmented message being reassembled.
    pub fn reassembly_bytes(&self) -> usize {
        self.assembly.as_ref().map_or(0, |a| a.buf.len())
    }

    // ---- inputs ---------------------------------------------------------

    /// Consumes what it can of the bytes read from the socket. Unconsumed
    /// bytes (an incomplete frame or head) stay in `buf` for the next call.
    pub fn handle_input(&mut self, now: Instant, buf: &mut BytesMut) {
        match &self.state {
            State::AwaitRequest => self.read_request(buf),
            State::AwaitResponse(_) => self.read_response(buf),
            State::Open | State::CloseSent if !self.input_done => {}
            State::Open | State::CloseSent | State::AwaitEof(_) | State::Closed => {
                buf.clear();
                return;
            }
        }
        while matches!(self.state, State::Open | State::CloseSent) && !self.input_done {
            let before = self.events.len();
            match self.decode_one(buf) {
                Ok(Some(frame)) => self.on_frame(now, frame),
                Ok(None) => break,
                Err(e) => self.defer_fail(e),
            }
            if self.one_at_a_time && self.events.len() > before {
                break;
            }
        }
        if self.input_done || self.is_closed() {
            buf.clear();
        }
    }

    /// The peer closed its side of the transport.
    pub fn handle_eof(&mut self, _now: Instant) {
        let cause = match std::mem::replace(&mut self.state, State::Closed) {
            State::Closed => return,
            State::AwaitEof(cause) => cause,
            _ => CloseCause::Abnormal,
        };
        self.close_later(cause);
    }

    /// Time passed; call at or after [`poll_timeout`](Self::poll_timeout).
    /// Early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer.is_none_or(|t| now < t) {
            return;
        }
        self.timer = None;
        let cause = match std::mem::replace(&mut self.state, State::Closed) {
            State::AwaitRequest | State::AwaitResponse(_) => CloseCause::HandshakeTimeout,
            State::CloseSent => CloseCause::CloseTimeout,
            State::AwaitEof(cause) => cause,
            state @ (State::Open | State::Closed) => {
                self.state = state;
                return;
            }
        };
        self.close_later(cause);
    }

    // ---- commands -------------------------------------------------------

    /// Queues a message, sent as one frame.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::NotOpen);
        }
        let len = message.payload().len();
        if self.queued_data_bytes > 0 && self.queued_data_bytes + len > self.config.max_send_queue {
            return Err(SendError::QueueFull {
                queued: self.queued_data_bytes,
                max: self.config.max_send_queue,
            });
        }
        let opcode = match message.kind() {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        };
        self.queued_data_bytes += len;
        self.data
            .push_back(Frame::new(opcode, message.into_payload()));
        Ok(())
    }

    /// Queues a ping (payload at most 125 bytes), sent ahead of data.
    pub fn ping(&mut self, payload: Bytes) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::NotOpen);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong(payload.len()));
        }
        if self.pings.len() >= MAX_QUEUED_CONTROL {
            return Err(SendError::QueueFull {
                queued: self.pings.len(),
                max: MAX_QUEUED_CONTROL,
            });
        }
        self.pings.push_back(Frame::new(OpCode::Ping, payload));
        Ok(())
    }

    /// Starts the close handshake after the queued data; the reason is cut
    /// to fit a control frame. Closing a connection still in its handshake
    /// ends it at once.
    pub fn close(&mut self, now: Instant, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if !code.is_sendable() {
            return Err(SendError::InvalidCloseCode(code));
        }
        match self.state {
            State::Open => {
                self.close_frame = Some(Frame::new(OpCode::Close, close_payload(code, reason)));
                self.state = State::CloseSent;
                self.timer = Some(now + self.config.close_timeout);
            }
            State::AwaitRequest | State::AwaitResponse(_) => {
                self.raw = None;
                self.state = State::Closed;
                self.close_later(CloseCause::Clean {
                    code: None,
                    reason: String::new(),
                    initiated_locally: true,
                });
            }
            State::CloseSent | State::AwaitEof(_) | State::Closed => {}
        }
        Ok(())
    }

    // ---- outputs --------------------------------------------------------

    /// Appends bytes to write to `out`; returns whether it added any. Call
    /// until it returns `false`.
    #[must_use]
    pub fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) -> bool {
        let before = out.len();
        if let Some(raw) = self.raw.take() {
            out.push(raw);
        }
        while out.len() < TRANSMIT_TARGET_BYTES && out.chunk_count() < TRANSMIT_MAX_CHUNKS {
            let frame = if let Some(f) = self.pongs.pop_front().or_else(|| self.pings.pop_front()) {
                f
            } else if let Some(f) = self.data.pop_front() {
                self.queued_data_bytes -= f.payload.len();
                f
            } else if let Some(f) = self.close_frame.take() {
                self.close_sent = true;
                f
            } else {
                break;
            };
            let mask = self.rng.as_mut().map(|rng| rng.next_u32().to_ne_bytes());
            self.encoder.encode(&frame, mask, out);
        }
        self.encoder.flush(out);
        out.len() > before
    }

    /// Whether events wait for [`poll_event`](Self::poll_event). Feed no
    /// more input until they are polled: the close handshake and deferred
    /// failures settle as the events before them are taken.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            match self.events.pop_front()? {
                Queued::Event(event) => return Some(event),
                // Already over (EOF or a timeout came first): nothing to apply.
                Queued::Fail(_) | Queued::PeerClose { .. } if self.is_closed() => {}
                Queued::Fail(error) => return Some(self.fail_now(error)),
                Queued::PeerClose { code, reason, now } => {
                    if let Some(event) = self.apply_peer_close(code, reason, now) {
                        return Some(event);
                    }
                }
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    // ---- internals ------------------------------------------------------

    fn read_request(&mut self, buf: &mut BytesMut) {
        if !self.head_scan.worth_parsing(buf) && buf.len() <= self.config.max_handshake_size {
            return;
        }
        match handshake::parse_request(buf, self.config.max_handshake_size) {
            Ok(None) => {}
            Ok(Some((request, len))) => {
                buf.advance(len);
                self.raw = Some(handshake::accept_response(&request));
                self.open(Handshake::Server(request));
            }
            Err(e) => {
                buf.clear();
                self.raw = Some(handshake::reject_response(&e));
                self.state = State::Closed;
                self.close_later(CloseCause::Failed(e.into()));
            }
        }
    }

    fn read_response(&mut self, buf: &mut BytesMut) {
        let State::AwaitResponse(hs) = &self.state else {
            return;
        };
        if !self.head_scan.worth_parsing(buf) && buf.len() <= self.config.max_handshake_size {
            return;
        }
        match hs.parse_response(buf, self.config.max_handshake_size) {
            Ok(None) => {}
            Ok(Some((response, len))) => {
                buf.advance(len);
                self.open(Handshake::Client(response));
            }
            Err(e) => {
                buf.clear();
                self.state = State::Closed;
                self.close_later(CloseCause::Failed(e.into()));
            }
        }
    }

    fn open(&mut self, handshake: Handshake) {
        self.state = State::Open;
        self.timer = None;
        self.events.push_back(Queued::Event(Event::Open(handshake)));
    }

    /// Decodes one frame, checking message-level rules (fragment order, size,
    /// UTF-8) on every payload byte as it arrives.
    fn decode_one(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        let Self {
            decoder,
            assembly,
            utf8,
            config,
            ..
        } = self;
        decoder.decode_with(buf, |header: &FrameHeader, payload: &[u8]| {
            let text = match (header.opcode, &*assembly) {
                (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
                (OpCode::Text | OpCode::Binary, Some(_)) => {
                    return Err(ProtocolError::ExpectedContinuation)
                }
                (OpCode::Continuation, Some(a)) => a.kind == MessageKind::Text,
                (OpCode::Text, None) => true,
                _ => false,
            };
            if !header.opcode.is_control() {
                let so_far = assembly.as_ref().map_or(0, |a| a.buf.len()) as u64;
                let len = so_far + header.payload_len;
                if len > config.max_message_size as u64 {
                    return Err(ProtocolError::MessageTooBig {
                        len,
                        max: config.max_message_size,
                    });
                }
            }
            if text {
                utf8.feed(payload)?;
            }
            Ok(())
        })
    }

    fn on_frame(&mut self, now: Instant, frame: Frame) {
        match frame.opcode {
            OpCode::Text | OpCode::Binary => {
                let kind = if frame.opcode == OpCode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                };
                if frame.fin {
                    self.deliver(kind, frame.payload);
                } else {
                    self.assembly = Some(Assembly {
                        kind,
                        buf: BytesMut::from(&frame.payload[..]),
                    });
                }
            }
            OpCode::Continuation => {
                // decode_one guarantees a message is in progress.
                let Some(assembly) = self.assembly.as_mut() else {
                    return;
                };
                assembly.buf.extend_from_slice(&frame.payload);
                if frame.fin {
                    if let Some(a) = self.assembly.take() {
                        self.deliver(a.kind, a.buf.freeze());
                    }
                }
            }
            OpCode::Ping => {
                if self.is_open() {
                    if self.pongs.len() >= MAX_QUEUED_CONTROL {
                        self.pongs.pop_front();
                    }
                    self.pongs
                        .push_back(Frame::new(OpCode::Pong, frame.payload.clone()));
                }
                self.events
                    .push_back(Queued::Event(Event::Ping(frame.payload)));
            }
            OpCode::Pong => self
                .events
                .push_back(Queued::Event(Event::Pong(frame.payload))),
            OpCode::Close => self.on_close(now, &frame.payload),
        }
    }

    fn deliver(&mut self, kind: MessageKind, payload: Bytes) {
        if kind == MessageKind::Text {
            if let Err(e) = self.utf8.finish() {
                return self.defer_fail(e.into());
            }
        }
        let message = Message::validated(kind, payload);
        self.events
            .push_back(Queued::Event(Event::Message(message)));
    }

    fn on_close(&mut self, now: Instant, payload: &[u8]) {
        match parse_close_payload(payload) {
            Ok((code, reason)) => {
                self.input_done = true;
                self.events
                    .push_back(Queued::PeerClose { code, reason, now });
            }
            Err(e) => self.defer_fail(e.into()),
        }
    }

    /// Answers the peer's Close once the application has seen every earlier
    /// event. Returns the final event if the connection is over.
    fn apply_peer_close(
        &mut self,
        code: Option<CloseCode>,
        reason: String,
        now: Instant,
    ) -> Option<Event> {
        let initiated_locally = matches!(self.state, State::CloseSent);
        if !initiated_locally {
            // Echo the peer's code (RFC 6455 §5.5.1), after queued data.
            let echo = code.map_or_else(Bytes::new, |c| close_payload(c, ""));
            self.close_frame = Some(Frame::new(OpCode::Close, echo));
        }
        let cause = CloseCause::Clean {
            code,
            reason,
            initiated_locally,
        };
        match self.role {
            // The server closes the TCP connection first (RFC 6455 §7.1.1).
            Role::Server => Some(self.close_now(cause)),
            Role::Client => {
                self.state = State::AwaitEof(cause);
                // Keep the close timer if we started the handshake.
                self.timer = Some(self.timer.unwrap_or(now + self.config.close_timeout));
                None
            }
        }
    }

    /// Schedules failing the connection after the events already queued.
    fn defer_fail(&mut self, error: ProtocolError) {
        self.input_done = true;
        self.events.push_back(Queued::Fail(error));
    }

    /// Fails the connection (RFC 6455 §7.1.7): queues a Close with the
    /// error's code behind what the application already queued in answer to
    /// earlier messages, and ends. Returns the final event.
    fn fail_now(&mut self, error: ProtocolError) -> Event {
        tracing::debug!(role = ?self.role, %error, "failing WebSocket connection");
        self.assembly = None;
        if !self.close_sent {
            let payload = close_payload(error.close_code(), "");
            self.close_frame = Some(Frame::new(OpCode::Close, payload));
        }
        self.close_now(CloseCause::Failed(error))
    }

    /// Enters `Closed` and returns the final event.
    fn close_now(&mut self, cause: CloseCause) -> Event {
        self.state = State::Closed;
        self.timer = None;
        Event::Closed(cause)
    }

    /// Enters `Closed` and queues the final event behind the others.
    fn close_later(&mut self, cause: CloseCause) {
        let event = self.close_now(cause);
        self.events.push_back(Queued::Event(event));
    }
}
