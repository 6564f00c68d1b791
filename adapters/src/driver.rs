//! Drives one sans-IO connection over one socket: reads go to
//! `handle_input`, `poll_transmit` goes to vectored writes, `poll_timeout`
//! to a timer, and events to the [`Session`] the driver works for (a grid
//! link, or a plain WebSocket).
//!
//! Reading never waits for writing: a peer that does not read our output
//! cannot stop us from reading its input (the core bounds what that input
//! may make us queue, and fails the connection past the bound). Socket
//! calls happen outside the session's lock, so handles are never held up
//! by the kernel.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gridmux_core::link::Link;
use gridmux_core::ws::{self, Transmit};
use tracing::debug;

use crate::runtime::{Runtime, Socket, Timer};

/// Room made for reads when the input buffer has less than `MIN_READ`
/// spare (reads go straight into its spare capacity).
const READ_CHUNK: usize = 64 * 1024;
/// Smallest spare room worth a read.
const MIN_READ: usize = 4 * 1024;
/// Frames at least this large (whole, header included as read) get a
/// buffer of their own size, and the read after one is a header's worth.
const LARGE_FRAME: usize = READ_CHUNK / 2;
/// Frames larger than this grow their buffer as their bytes come instead.
/// A peer announcing a frame up to this size has it reserved before its
/// payload comes: at most 4 × `READ_CHUNK` per connection (it was one
/// chunk before frames had buffers of their own).
const OWN_BUFFER_MAX: usize = 4 * READ_CHUNK;
/// Reads per wake-up before yielding to other tasks.
const READ_BUDGET: usize = 16;
/// Bytes taken from the connection per write.
const WRITE_BATCH: usize = 256 * 1024;
/// Slices per vectored write.
const MAX_SLICES: usize = 64;

/// A sans-IO connection of `gridmux_core`.
pub(crate) trait SansIo {
    fn handle_input(&mut self, now: Instant, buf: &mut BytesMut);
    fn handle_eof(&mut self, now: Instant);
    fn handle_timeout(&mut self, now: Instant);
    fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) -> bool;
    fn poll_timeout(&self) -> Option<Instant>;
    fn has_pending_output(&self) -> bool;
    /// Bytes of the frame being read that have not arrived yet (0 between
    /// frames).
    fn input_wanted(&self) -> usize;
    fn is_closed(&self) -> bool;
    /// How long a closed connection may wait to write its last bytes
    /// (its Close frame) before the socket is dropped anyway.
    fn linger(&self) -> Duration;
}

macro_rules! sans_io {
    ($t:ty, $pending:ident, $linger:expr) => {
        impl SansIo for $t {
            fn handle_input(&mut self, now: Instant, buf: &mut BytesMut) {
                <$t>::handle_input(self, now, buf);
            }
            fn handle_eof(&mut self, now: Instant) {
                <$t>::handle_eof(self, now);
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$t>::handle_timeout(self, now);
            }
            fn poll_transmit(&mut self, now: Instant, out: &mut Transmit) -> bool {
                <$t>::poll_transmit(self, now, out)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$t>::poll_timeout(self)
            }
            fn has_pending_output(&self) -> bool {
                <$t>::$pending(self)
            }
            fn input_wanted(&self) -> usize {
                <$t>::input_wanted(self)
            }
            fn is_closed(&self) -> bool {
                <$t>::is_closed(self)
            }
            fn linger(&self) -> Duration {
                $linger(self)
            }
        }
    };
}
sans_io!(Link, has_pending_output, |l: &Link| l.close_timeout());
sans_io!(ws::Endpoint, has_pending_transmit, |e: &ws::Endpoint| e
    .close_timeout());

/// What a driver works for: a connection behind a lock, and what its
/// events mean.
pub(crate) trait Session: Send + Unpin + 'static {
    /// What the lock guards.
    type State;
    /// The connection inside it.
    type Conn: SansIo;
    /// Work to do outside the lock.
    type Notice;

    fn lock(&self) -> MutexGuard<'_, Self::State>;
    fn conn(state: &mut Self::State) -> &mut Self::Conn;
    /// Stores the driver's waker (handles wake it after commands).
    fn set_waker(state: &mut Self::State, waker: &Waker);
    /// Under the lock, before output is taken: the previous batch is out.
    fn on_drained(_state: &mut Self::State) {}
    /// Under the lock: the application has not taken the connection's
    /// events yet, so no input goes in and no more is read (backpressure;
    /// grid links never hold, a plain WebSocket does).
    fn holds_input(_state: &mut Self::State) -> bool {
        false
    }
    /// Under the lock: routes the connection's events.
    fn route(&self, state: &mut Self::State, notices: &mut Vec<Self::Notice>);
    /// Outside the lock; returns whether new output may be waiting.
    fn notify(&mut self, cx: &mut Context<'_>, notices: Vec<Self::Notice>) -> bool;
    /// The span every poll runs in.
    fn span(&self) -> tracing::Span;
    /// The driver is dropped before the connection closed (forced
    /// shutdown): end it without a task context.
    fn abort(&mut self);
}

/// The task of one connection. Completes when it is closed and its last
/// bytes are written (or the socket failed).
pub(crate) struct Driver<S: Session> {
    session: S,
    io: Io,
    finished: bool,
}

/// The socket side of a driver.
struct Io {
    runtime: Arc<dyn Runtime>,
    socket: Arc<dyn Socket>,
    timer: Option<(Pin<Box<dyn Timer>>, Instant)>,
    /// Bytes read and not yet consumed.
    input: BytesMut,
    /// `input` grew since the connection last saw it.
    fresh_input: bool,
    /// The session held input back in the last round.
    held: bool,
    /// Bytes of the frame in progress not in `input` yet (the connection's
    /// count after its last input, less what was read since).
    frame_rest: usize,
    /// The last frame whose size was known was large: at a frame boundary
    /// the next read takes a header's worth only, so that the frame after
    /// it can get a buffer of its size before its payload comes (no copy).
    large_frames: bool,
    /// That header read was made and the frame's size is not known yet.
    peeked: bool,
    /// Bytes taken from the connection and not yet written.
    out: Transmit,
    read_done: bool,
    /// The read side ended; the connection has not heard yet.
    eof_pending: bool,
    /// A write failed; the connection has not heard yet (or has, once
    /// `write_failed` is set).
    write_error: Option<io::Error>,
    write_failed: bool,
    /// The connection is closed; its last bytes may wait for the socket
    /// until then, no longer (a peer that stopped reading must not hold
    /// the task, and the dialer's next attempt, forever).
    linger_until: Option<Instant>,
}

impl<S: Session> std::fmt::Debug for Driver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("unwritten", &self.io.out.len())
            .finish_non_exhaustive()
    }
}

impl<S: Session> Driver<S> {
    /// A driver for `session` over `socket`; `input` holds bytes already
    /// read (after an HTTP head).
    pub(crate) fn new(
        session: S,
        runtime: Arc<dyn Runtime>,
        socket: Arc<dyn Socket>,
        input: BytesMut,
    ) -> Self {
        let io = Io {
            runtime,
            socket,
            timer: None,
            fresh_input: !input.is_empty(),
            held: false,
            frame_rest: 0,
            large_frames: false,
            peeked: false,
            input,
            out: Transmit::new(),
            read_done: false,
            eof_pending: false,
            write_error: None,
            write_failed: false,
            linger_until: None,
        };
        Self {
            session,
            io,
            finished: false,
        }
    }

    /// The session (after the driver completed: how it went).
    pub(crate) fn session(&self) -> &S {
        &self.session
    }
}

impl Io {
    /// Reads what the socket has into `input` until it has nothing more
    /// or the budget is spent; returns whether the budget ran out.
    fn read(&mut self, cx: &mut Context<'_>) -> bool {
        let mut budget = READ_BUDGET;
        while !self.read_done && !self.held {
            if budget == 0 {
                return true;
            }
            budget -= 1;
            let full = self.input.capacity() - self.input.len() < MIN_READ;
            if full && self.fresh_input && self.frame_rest == 0 {
                // Full: the connection takes what it can first, so that
                // only a partial frame moves to make room, and its size is
                // known when it does. (With a frame's rest known, the
                // input is that frame's start alone.)
                return true;
            }
            let header = self.at_large_frame_boundary();
            let read = if header {
                self.read_header()
            } else {
                self.make_room();
                self.socket.try_read_spare(&mut self.input)
            };
            match read {
                Ok(0) => self.read_end(None),
                Ok(_) if header => {
                    self.fresh_input = true;
                    if !self.size_from_header() {
                        // Not a header alone: the connection takes it.
                        return true;
                    }
                }
                Ok(n) => {
                    self.fresh_input = true;
                    let rest = self.frame_rest;
                    self.frame_rest = rest.saturating_sub(n);
                    if self.large_frames && rest > 0 && self.frame_rest == 0 {
                        // A large frame is whole in its own buffer: the
                        // connection takes it before more is read.
                        return true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.socket.poll_readable(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => self.read_end(Some(e)),
                        Poll::Pending => break,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.read_end(Some(e)),
            }
        }
        false
    }

    /// Gives `input` at least `MIN_READ` spare bytes to read into. The
    /// buffer is reused when nothing else holds it (what is left, a
    /// partial frame, moves to its front) and it is not much larger than
    /// what is left needs; else a new one takes what is left: `READ_CHUNK`,
    /// or the next power of two above it, so a frame larger than a chunk
    /// is copied a bounded number of times in all, and the buffer of a
    /// large frame is let go once the frames after it are small again.
    ///
    /// A large frame whose header the connection has read gets a buffer of
    /// its own size instead: its payload is read into it and never copied.
    fn make_room(&mut self) {
        let len = self.input.len();
        if self.frame_rest > 0 {
            let frame = len + self.frame_rest;
            self.peeked = false;
            self.large_frames = (LARGE_FRAME..=OWN_BUFFER_MAX).contains(&frame);
            if self.large_frames {
                if self.input.capacity() < frame {
                    let mut own = BytesMut::with_capacity(frame);
                    own.extend_from_slice(&self.input);
                    self.input = own;
                }
                return;
            }
        }
        let fits = READ_CHUNK.max(len + MIN_READ).next_power_of_two();
        // Oversized for what is left: a large frame came before.
        let oversized = self.input.capacity() > 2 * fits;
        if !oversized
            && (self.input.capacity() - len >= MIN_READ
                || self
                    .input
                    .try_reclaim(READ_CHUNK.saturating_sub(len).max(MIN_READ)))
        {
            return;
        }
        let mut fresh = BytesMut::with_capacity(fits);
        fresh.extend_from_slice(&self.input);
        self.input = fresh;
    }

    /// Whether the next read is a header's worth: after a large frame, at
    /// a frame boundary. If the last such read brought small frames only,
    /// reads are whole again.
    fn at_large_frame_boundary(&mut self) -> bool {
        if !self.large_frames || self.frame_rest > 0 || !self.input.is_empty() {
            return false;
        }
        if std::mem::take(&mut self.peeked) {
            self.large_frames = false;
            return false;
        }
        true
    }

    /// Reads at most a frame header's bytes into `input`.
    fn read_header(&mut self) -> io::Result<usize> {
        let mut head = [0u8; ws::MAX_HEADER_LEN];
        let n = self.socket.try_read(&mut head)?;
        self.input.extend_from_slice(&head[..n]);
        self.peeked = true;
        Ok(n)
    }

    /// After a header's worth was read: when it is one data frame's whole
    /// header, the frame can have a buffer of its own (up to
    /// `OWN_BUFFER_MAX`) and more of it is to come, notes how much (the
    /// next read gives the frame its buffer, no round through the
    /// connection first); returns whether it did. Anything else (a
    /// control frame, reserved bits, a larger frame) goes to the
    /// connection first, which checks the header: an announcement nobody
    /// checked reserves `OWN_BUFFER_MAX` at most, and turns off no bound.
    fn size_from_header(&mut self) -> bool {
        let len = self.input.len();
        // Reserved bits, a control or a reserved opcode: the connection's
        // to judge (data frames: continuation 0, text 1, binary 2).
        let data_frame = self
            .input
            .first()
            .is_some_and(|b0| b0 & 0x70 == 0 && b0 & 0x0f <= 2);
        match ws::frame_len(&self.input).and_then(|f| usize::try_from(f).ok()) {
            Some(frame) if data_frame && frame > len && frame <= OWN_BUFFER_MAX => {
                self.frame_rest = frame - len;
                true
            }
            _ => false,
        }
    }

    fn read_end(&mut self, error: Option<io::Error>) {
        debug!(error = ?error, "socket read ended");
        self.read_done = true;
        self.eof_pending = true;
    }

    /// Writes `out` while the socket takes it; returns whether all of it
    /// is written. A failure is recorded for the next round.
    fn write(&mut self, cx: &mut Context<'_>) -> bool {
        while !self.out.is_empty() && self.write_error.is_none() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = self.out.io_slices(&mut slices);
            match self.socket.try_write_vectored(&slices[..n]) {
                Ok(0) => self.write_error = Some(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.socket.poll_writable(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => self.write_error = Some(e),
                        Poll::Pending => return false,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.write_error = Some(e),
            }
        }
        if self.write_error.is_none() {
            // A layer under us (TLS) may still hold some of it.
            match self.socket.poll_flush(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => self.write_error = Some(e),
                Poll::Pending => return false,
            }
        }
        true
    }

    /// Feeds the connection what happened to the socket and takes its
    /// output. Runs with the session locked. One input per round: the
    /// core's events are drained between inputs (a WebSocket endpoint
    /// settles its close handshake only as its events are polled), so an
    /// end of stream that arrives with the last bytes waits one round, and
    /// so does input when a timer is due.
    fn exchange<S: Session>(&mut self, state: &mut S::State, now: Instant) {
        let timer_due = self.timer.as_ref().is_some_and(|(_, at)| *at <= now);
        let drained = self.out.is_empty();
        if drained {
            S::on_drained(state);
        }
        self.held = S::holds_input(state);
        let conn = S::conn(state);
        if timer_due {
            // Time first: a peer that keeps sending must not starve the
            // timers (pings, deadlines). Input waits one round.
            conn.handle_timeout(now);
        } else if self.held {
            // Only time and output move until the application catches up.
        } else if std::mem::take(&mut self.fresh_input) {
            conn.handle_input(now, &mut self.input);
            self.frame_rest = conn.input_wanted();
        } else if std::mem::take(&mut self.eof_pending) {
            conn.handle_eof(now);
        } else if let Some(error) = self.write_error.as_ref().filter(|_| !self.write_failed) {
            debug!(%error, "socket write failed");
            self.write_failed = true;
            // The connection is gone both ways.
            conn.handle_eof(now);
        }
        if self.write_failed {
            self.out.clear();
        }
        // Take more only once the last batch is out: the core's
        // write-stall detection counts on it.
        if drained && !self.write_failed {
            while self.out.len() < WRITE_BATCH && conn.poll_transmit(now, &mut self.out) {}
        }
    }

    /// Whether an input waits for the next round.
    fn deferred(&self) -> bool {
        !self.held
            && (self.fresh_input
                || self.eof_pending
                || (self.write_error.is_some() && !self.write_failed))
    }

    /// Arms the timer for `next`; returns whether it already fired.
    fn arm_timer(&mut self, cx: &mut Context<'_>, next: Option<Instant>) -> bool {
        let Some(next) = next else {
            self.timer = None;
            return false;
        };
        match &mut self.timer {
            Some((_, at)) if *at == next => {}
            Some((timer, at)) => {
                timer.as_mut().reset(next);
                *at = next;
            }
            None => self.timer = Some((self.runtime.timer(next), next)),
        }
        let (timer, _) = self.timer.as_mut().expect("armed above");
        timer.as_mut().poll_fire(cx).is_ready()
    }
}

impl<S: Session> Future for Driver<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let span = this.session.span();
        let _entered = span.enter();
        // Bounded rounds per wake-up.
        let io = &mut this.io;
        for _ in 0..4 {
            let was_held = io.held;
            let more_to_read = io.read(cx);
            let mut notices = Vec::new();
            let mut guard = this.session.lock();
            let state = &mut *guard;
            S::set_waker(state, cx.waker());
            io.exchange::<S>(state, Instant::now());
            this.session.route(state, &mut notices);
            let conn = S::conn(state);
            let mut next = conn.poll_timeout();
            let closed = conn.is_closed();
            let more_output = conn.has_pending_output();
            let linger = conn.linger();
            drop(guard);
            let answered = this.session.notify(cx, notices);
            let written = io.write(cx);
            let now = Instant::now();
            let lingered = closed && *io.linger_until.get_or_insert(now + linger) <= now;
            if closed && (io.write_failed || lingered || (written && !more_output && !answered)) {
                if lingered && !io.write_failed {
                    debug!("closed connection dropped with unwritten bytes after its linger");
                }
                crate::io::shutdown(&*io.socket);
                this.finished = true;
                return Poll::Ready(());
            }
            if let Some(until) = io.linger_until {
                next = Some(next.map_or(until, |n| n.min(until)));
            }
            let timer_fired = io.arm_timer(cx, next);
            // Released from holding: read what waited (and register for
            // readiness again).
            let released = was_held && !io.held;
            let again =
                more_to_read || released || answered || io.deferred() || (written && more_output);
            if !timer_fired && !again {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<S: Session> Drop for Driver<S> {
    fn drop(&mut self) {
        if !self.finished {
            self.session.abort();
        }
    }
}

#[cfg(all(test, feature = "tokio"))]
#[path = "driver_tests.rs"]
mod tests;
