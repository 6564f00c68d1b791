//! Drives one core link over one socket: reads go to `handle_input`,
//! `poll_transmit` goes to vectored writes, `poll_timeout` to a timer, and
//! events to the exchanges' handles.
//!
//! Reading never waits for writing: a peer that does not read our output
//! cannot stop us from reading its input (the core bounds what that input
//! may make us queue, and fails the link past the bound).

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use gridmux_core::link::LinkError;
use gridmux_core::ws::Transmit;
use tracing::{debug, info};

use crate::dispatch::{route, Notice};
use crate::grid::Node;
use crate::runtime::{Socket, Timer};
use crate::shared::{register, LinkState, SharedLink};

/// Bytes read per `read` call (the buffer is refilled when less is left).
const READ_CHUNK: usize = 64 * 1024;
/// Smallest spare room worth a read.
const MIN_READ: usize = 4 * 1024;
/// Reads per wake-up before yielding to other tasks.
const READ_BUDGET: usize = 16;
/// Bytes taken from the link per write.
const WRITE_BATCH: usize = 256 * 1024;
/// Slices per vectored write.
const MAX_SLICES: usize = 64;

/// The task of one link. Completes when the link is closed and its last
/// bytes are written (or the socket failed).
pub(crate) struct Driver {
    link: Arc<SharedLink>,
    node: Arc<Node>,
    socket: Box<dyn Socket>,
    timer: Option<(Pin<Box<dyn Timer>>, Instant)>,
    /// Bytes read and not yet consumed by the link.
    input: BytesMut,
    /// Zeroed room that reads go into; split off into `input` (no copy
    /// while both come from one allocation).
    spare: BytesMut,
    /// Bytes taken from the link and not yet written.
    out: Transmit,
    read_done: bool,
    write_done: bool,
    /// Polled at least once.
    started: bool,
    /// The peer, once connected.
    remote: Option<String>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("remote", &self.remote)
            .field("unwritten", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A driver for `link` over `socket`; `input` holds bytes already read
    /// (after an HTTP head).
    pub(crate) fn new(
        link: Arc<SharedLink>,
        node: Arc<Node>,
        socket: Box<dyn Socket>,
        input: BytesMut,
    ) -> Self {
        node.live_links.fetch_add(1, Ordering::AcqRel);
        Self {
            link,
            node,
            socket,
            timer: None,
            input,
            spare: BytesMut::new(),
            out: Transmit::new(),
            read_done: false,
            write_done: false,
            started: false,
            remote: None,
        }
    }

    /// Whether the link ever connected (the dialer resets its back-off).
    pub(crate) fn was_connected(&self) -> bool {
        self.remote.is_some()
    }

    /// Reads until the socket has nothing more or the budget is spent;
    /// returns whether the budget ran out.
    fn read(&mut self, cx: &mut Context<'_>, st: &mut LinkState, now: Instant) -> bool {
        let mut budget = READ_BUDGET;
        while !self.read_done {
            if budget == 0 {
                return true;
            }
            if self.spare.len() < MIN_READ {
                self.spare = BytesMut::zeroed(READ_CHUNK);
            }
            match self.socket.try_read(&mut self.spare) {
                Ok(0) => self.on_read_end(st, now, None),
                Ok(n) => {
                    budget -= 1;
                    self.input.unsplit(self.spare.split_to(n));
                    st.link.handle_input(now, &mut self.input);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    budget -= 1;
                    match self.socket.poll_readable(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => self.on_read_end(st, now, Some(e)),
                        Poll::Pending => break,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.on_read_end(st, now, Some(e)),
            }
        }
        false
    }

    fn on_read_end(&mut self, st: &mut LinkState, now: Instant, error: Option<io::Error>) {
        debug!(error = ?error, "socket read ended");
        self.read_done = true;
        st.link.handle_eof(now);
    }

    /// Writes what the link has while the socket takes it; returns whether
    /// anything was written.
    fn write(&mut self, cx: &mut Context<'_>, st: &mut LinkState, now: Instant) -> bool {
        let mut wrote = false;
        while !self.write_done {
            if self.out.is_empty() {
                while self.out.len() < WRITE_BATCH && st.link.poll_transmit(now, &mut self.out) {}
                if self.out.is_empty() {
                    break;
                }
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = self.out.io_slices(&mut slices);
            match self.socket.try_write_vectored(&slices[..n]) {
                Ok(0) => self.on_write_error(st, now, io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out.advance(n);
                    wrote = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.socket.poll_writable(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(e)) => self.on_write_error(st, now, e),
                        Poll::Pending => break,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.on_write_error(st, now, e),
            }
        }
        wrote
    }

    fn on_write_error(&mut self, st: &mut LinkState, now: Instant, error: io::Error) {
        debug!(%error, "socket write failed");
        self.write_done = true;
        self.out.clear();
        // The connection is gone both ways.
        st.link.handle_eof(now);
        while st.link.poll_transmit(now, &mut self.out) {}
        self.out.clear();
    }

    /// Routes the link's events; returns the notices for the grid.
    fn route_events(&self, st: &mut LinkState) -> Vec<Notice> {
        let mut notices = Vec::new();
        while let Some(event) = st.link.poll_event() {
            notices.extend(route(st, event, &self.link, &self.node));
        }
        notices
    }

    fn notify(&mut self, notices: Vec<Notice>) {
        for notice in notices {
            match notice {
                Notice::Connected(remote) => {
                    info!(%remote, "link up");
                    self.node.link_connected(&remote, &self.link);
                    self.remote = Some(remote);
                }
                Notice::Closed(reason) => {
                    match (&self.remote, &reason) {
                        (Some(remote), _) => info!(%remote, %reason, "link down"),
                        (None, LinkError::Refused(_) | LinkError::Rejected(_)) => {
                            info!(%reason, "link refused");
                        }
                        (None, _) => debug!(%reason, "link failed before connecting"),
                    }
                    if let Some(remote) = &self.remote {
                        self.node.link_closed(remote, &self.link);
                    }
                }
            }
        }
    }

    /// Arms the timer for `next`; returns whether it already fired.
    fn arm_timer(&mut self, cx: &mut Context<'_>, next: Option<Instant>) -> bool {
        let Some(next) = next else {
            self.timer = None;
            return false;
        };
        match &mut self.timer {
            Some((timer, at)) if *at == next => {}
            Some((timer, at)) => {
                timer.as_mut().reset(next);
                *at = next;
            }
            None => self.timer = Some((self.node.runtime.timer(next), next)),
        }
        let (timer, _) = self.timer.as_mut().expect("armed above");
        timer.as_mut().poll_fire(cx).is_ready()
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let span = this.link.span.clone();
        let _entered = span.enter();
        // Bounded rounds per wake-up; each round is a full drain.
        for _ in 0..4 {
            let link = this.link.clone();
            let mut st = link.lock();
            register(&mut st.driver, cx.waker());
            let now = Instant::now();
            if !this.input.is_empty() && !this.started {
                // Bytes that came with the HTTP head.
                st.link.handle_input(now, &mut this.input);
            }
            this.started = true;
            let more_to_read = this.read(cx, &mut st, now);
            if this.timer.as_ref().is_some_and(|(_, at)| *at <= now) {
                st.link.handle_timeout(now);
            }
            let mut notices = this.route_events(&mut st);
            if this.write(cx, &mut st, now) {
                st.wake_queue_waiters();
            }
            notices.extend(this.route_events(&mut st));
            let next = st.link.poll_timeout();
            let finished = st.link.is_closed()
                && (this.write_done || (this.out.is_empty() && !st.link.has_pending_output()));
            drop(st);
            this.notify(notices);
            if finished {
                let _ =
                    socket2::SockRef::from(&this.socket.as_fd()).shutdown(std::net::Shutdown::Both);
                return Poll::Ready(());
            }
            let timer_fired = this.arm_timer(cx, next);
            if !timer_fired && !more_to_read {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // A driver dropped before its link closed (forced shutdown) ends
        // the link's exchanges here.
        let mut st = self.link.lock();
        if !st.link.is_closed() {
            st.link.close(Instant::now());
            let notices = self.route_events(&mut st);
            drop(st);
            self.notify(notices);
        }
        self.node.live_links.fetch_sub(1, Ordering::AcqRel);
        self.node.changes.notify();
    }
}
