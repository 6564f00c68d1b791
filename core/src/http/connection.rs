//! One server-side HTTP/1.1 connection as a state machine: heads in,
//! responses out, keep-alive, a head timeout, and the hand-off of a
//! WebSocket upgrade.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use super::{parse_request, HeadScanner, HttpError, Limits, RequestHead, Response};
use crate::ws::Transmit;

/// What the connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Answer it with [`ServerConnection::respond`].
    Request(RequestHead),
    /// The client asks for a WebSocket upgrade: the connection is now the
    /// caller's (bytes after the head stay in the input buffer). Check it
    /// and answer with the upgrade's own handshake.
    Upgrade(RequestHead),
    /// The connection is over: write what `poll_transmit` still yields,
    /// then close the socket. Last event.
    Closed(CloseReason),
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed it.
    Eof,
    /// No complete head arrived in time (an error answer was sent if part
    /// of one had arrived).
    Timeout,
    /// The response said so (`Connection: close` or HTTP/1.0).
    Done,
    /// The request was refused with an error answer.
    Refused(HttpError),
    /// A body sent by the caller did not complete (see
    /// [`ServerConnection::body_aborted`]).
    BodyAborted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitHead,
    AwaitResponse {
        head_only: bool,
        keep_alive: bool,
    },
    /// The caller writes a body it was told of; input waits.
    SendingBody {
        keep_alive: bool,
    },
    Upgraded,
    Closed,
}

/// A server-side connection. Feed reads to [`handle_input`](Self::handle_input)
/// (also after each response: pipelined heads may already be buffered),
/// drain [`poll_transmit`](Self::poll_transmit) and
/// [`poll_event`](Self::poll_event), and call
/// [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct ServerConnection {
    limits: Limits,
    head_timeout: Duration,
    state: State,
    deadline: Option<Instant>,
    out: VecDeque<Bytes>,
    events: VecDeque<Event>,
    /// Bytes of an incomplete head are buffered (for the timeout answer).
    partial: bool,
    /// Where the head may end (parsing waits for it).
    scanner: HeadScanner,
    /// Full parses run (a head fed byte by byte must not cost one each).
    pub(crate) parses: u64,
}

impl ServerConnection {
    /// A fresh connection; a head must complete within `head_timeout`.
    pub fn new(limits: Limits, head_timeout: Duration, now: Instant) -> Self {
        Self {
            limits,
            head_timeout,
            state: State::AwaitHead,
            deadline: Some(now + head_timeout),
            out: VecDeque::new(),
            events: VecDeque::new(),
            partial: false,
            scanner: HeadScanner::default(),
            parses: 0,
        }
    }

    /// Whether events wait for [`poll_event`](Self::poll_event).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Parses what it can; an incomplete head stays in `buf`.
    pub fn handle_input(&mut self, _now: Instant, buf: &mut BytesMut) {
        if self.state != State::AwaitHead || buf.is_empty() {
            return;
        }
        if !self.scanner.worth_parsing(buf) {
            self.partial = true;
            if buf.len() > self.limits.max_head {
                self.refuse(HttpError::HeadTooLarge {
                    max: self.limits.max_head,
                    max_headers: self.limits.max_headers,
                });
            }
            return;
        }
        self.parses += 1;
        match parse_request(buf, self.limits) {
            Ok(None) => self.partial = true,
            Ok(Some((head, len))) => {
                buf.advance(len);
                self.scanner.reset();
                self.partial = false;
                self.on_head(head);
            }
            Err(e) => self.refuse(e),
        }
    }

    fn on_head(&mut self, head: RequestHead) {
        if head.minor_version > 1 {
            return self.refuse(HttpError::Version);
        }
        match head.has_body() {
            Ok(false) => {}
            Ok(true) => return self.refuse(HttpError::BodyNotAccepted),
            Err(e) => return self.refuse(e),
        }
        self.deadline = None;
        if head.is_websocket_upgrade() {
            self.state = State::Upgraded;
            self.events.push_back(Event::Upgrade(head));
            return;
        }
        self.state = State::AwaitResponse {
            head_only: head.method == "HEAD",
            keep_alive: head.keep_alive(),
        };
        self.events.push_back(Event::Request(head));
    }

    fn refuse(&mut self, error: HttpError) {
        let answer = Response::text(error.status(), format!("{error}\n"));
        self.out.extend(answer.encode(false, true));
        self.close(CloseReason::Refused(error));
    }

    fn close(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.deadline = None;
        self.events.push_back(Event::Closed(reason));
    }

    /// Answers the pending request. Ignored unless one is pending.
    pub fn respond(&mut self, now: Instant, response: &Response) {
        let State::AwaitResponse {
            head_only,
            keep_alive,
        } = self.state
        else {
            return;
        };
        self.out.extend(response.encode(head_only, !keep_alive));
        self.finish_response(now, keep_alive);
    }

    /// Answers the pending request with `response`'s head and a body of
    /// `body_len` bytes that the caller writes itself (a file region sent
    /// with `sendfile`). Returns whether it must: not for a `HEAD`
    /// request, an empty body or a status without one, and not unless a
    /// request is pending. When it returns `true`, write what
    /// [`poll_transmit`](Self::poll_transmit) yields, then the body, then
    /// call [`body_sent`](Self::body_sent), or
    /// [`body_aborted`](Self::body_aborted) if it could not be sent whole.
    /// Until then no further request is parsed.
    pub fn respond_with_body(&mut self, now: Instant, response: &Response, body_len: u64) -> bool {
        let State::AwaitResponse {
            head_only,
            keep_alive,
        } = self.state
        else {
            return false;
        };
        self.out
            .push_back(response.encode_head(body_len, !keep_alive));
        if head_only || body_len == 0 || !response.allows_body() {
            self.finish_response(now, keep_alive);
            return false;
        }
        self.state = State::SendingBody { keep_alive };
        true
    }

    /// The body of [`respond_with_body`](Self::respond_with_body) went out
    /// whole: the connection goes on (or closes, as the response said).
    pub fn body_sent(&mut self, now: Instant) {
        if let State::SendingBody { keep_alive } = self.state {
            self.finish_response(now, keep_alive);
        }
    }

    /// The body of [`respond_with_body`](Self::respond_with_body) could
    /// not be sent whole: the connection must close without another byte,
    /// so that the client sees a body shorter than announced.
    pub fn body_aborted(&mut self) {
        if let State::SendingBody { .. } = self.state {
            self.close(CloseReason::BodyAborted);
        }
    }

    fn finish_response(&mut self, now: Instant, keep_alive: bool) {
        if keep_alive {
            self.state = State::AwaitHead;
            self.deadline = Some(now + self.head_timeout);
        } else {
            self.close(CloseReason::Done);
        }
    }

    /// The client closed its side.
    pub fn handle_eof(&mut self, _now: Instant) {
        if matches!(self.state, State::AwaitHead | State::AwaitResponse { .. }) {
            self.close(CloseReason::Eof);
        }
    }

    /// Runs the head timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state != State::AwaitHead || self.deadline.is_none_or(|d| d > now) {
            return;
        }
        if self.partial {
            self.out
                .extend(Response::text(408, "request head timed out\n").encode(false, true));
        }
        self.close(CloseReason::Timeout);
    }

    /// Appends bytes to write; returns whether it added any.
    pub fn poll_transmit(&mut self, out: &mut Transmit) -> bool {
        let any = !self.out.is_empty();
        for part in self.out.drain(..) {
            out.push(part);
        }
        any
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }
}
