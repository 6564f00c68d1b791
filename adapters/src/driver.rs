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
    socket: Arc<dyn Socket>,
    timer: Option<(Pin<Box<dyn Timer>>, Instant)>,
    /// Bytes read and not yet consumed by the link.
    input: BytesMut,
    /// Bytes taken from the link and not yet written.
    out: Transmit,
    /// The read side ended; the link has not heard yet.
    eof_pending: bool,
    /// A write failed; the link has not heard yet (or has, once
    /// `write_failed` is set).
    write_error: Option<io::Error>,
    write_failed: bool,
    /// Zeroed room that reads go into; split off into `input` (no copy
    /// while both come from one allocation).
    spare: BytesMut,
    read_done: bool,

    /// The peer, once connected.
    remote: Option<String>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A driver for `link` over `socket`; `input` holds bytes already read
    /// (after an HTTP head).
    pub(crate) fn new(
        link: Arc<SharedLink>,
        node: Arc<Node>,
        socket: Arc<dyn Socket>,
        input: BytesMut,
    ) -> Self {
        node.live_links.fetch_add(1, Ordering::AcqRel);
        Self {
            link,
            node,
            socket,
            timer: None,
            input,
            out: Transmit::new(),
            eof_pending: false,
            write_error: None,
            write_failed: false,
            spare: BytesMut::new(),
            read_done: false,

            remote: None,
        }
    }

    /// Whether the link ever connected (the dialer resets its back-off).
    pub(crate) fn was_connected(&self) -> bool {
        self.remote.is_some()
    }

    /// Reads what the socket has into `input`, without the link's lock,
    /// until it has nothing more or the budget is spent. Returns whether
    /// the budget ran out.
    fn read(&mut self, cx: &mut Context<'_>) -> bool {
        let mut budget = READ_BUDGET;
        while !self.read_done {
            if budget == 0 {
                return true;
            }
            budget -= 1;
            if self.spare.len() < MIN_READ {
                self.spare = BytesMut::zeroed(READ_CHUNK);
            }
            match self.socket.try_read(&mut self.spare) {
                Ok(0) => self.read_end(None),
                Ok(n) => self.input.unsplit(self.spare.split_to(n)),
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

    fn read_end(&mut self, error: Option<io::Error>) {
        debug!(error = ?error, "socket read ended");
        self.read_done = true;
        self.eof_pending = true;
    }

    /// Writes `out` without the link's lock while the socket takes it;
    /// returns whether all of it is written. A failure is recorded for
    /// the next round.
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
        true
    }

    /// Feeds the link what happened to the socket and takes its output.
    /// Runs with the link locked.
    fn exchange(&mut self, st: &mut LinkState, now: Instant) {
        if !self.input.is_empty() {
            st.link.handle_input(now, &mut self.input);
        }
        if std::mem::take(&mut self.eof_pending) {
            st.link.handle_eof(now);
        }
        if let Some(error) = &self.write_error {
            if !self.write_failed {
                debug!(%error, "socket write failed");
                self.write_failed = true;
                // The connection is gone both ways.
                st.link.handle_eof(now);
            }
            self.out.clear();
        }
        if self.timer.as_ref().is_some_and(|(_, at)| *at <= now) {
            st.link.handle_timeout(now);
        }
        // Take more only once the last batch is out: the link's
        // write-stall detection counts on it.
        if self.out.is_empty() {
            st.wake_queue_waiters();
            while self.out.len() < WRITE_BATCH && st.link.poll_transmit(now, &mut self.out) {}
            if self.write_failed {
                self.out.clear();
            }
        }
    }

    /// Routes the link's events; returns the notices for the grid.
    fn route_events(&self, st: &mut LinkState) -> Vec<Notice> {
        let mut notices = Vec::new();
        while let Some(event) = st.link.poll_event() {
            notices.extend(route(st, event, &self.link, &self.node));
        }
        notices
    }

    /// Acts on notices with the link unlocked; returns whether a handler
    /// answered (its answer waits to be written).
    fn notify(&mut self, cx: &mut Context<'_>, notices: Vec<Notice>) -> bool {
        let serves = notices.iter().any(|n| matches!(n, Notice::Serve(_)));
        if serves {
            // Handlers answering inline must not wake this very task: the
            // next round writes their answers anyway.
            self.link.lock().driver = None;
        }
        let mut answered = false;
        for notice in notices {
            match notice {
                Notice::Serve(mut task) => {
                    if task.as_mut().poll(cx).is_ready() {
                        answered = true;
                    } else {
                        self.node.runtime.spawn(task);
                    }
                }
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
        if serves {
            let mut st = self.link.lock();
            register(&mut st.driver, cx.waker());
            answered |= st.link.has_pending_output();
        }
        answered
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
        // Bounded rounds per wake-up. Socket calls happen outside the
        // link's lock, so handles are not held up by the kernel.
        for _ in 0..4 {
            let more_to_read = this.read(cx);
            let link = this.link.clone();
            let mut st = link.lock();
            register(&mut st.driver, cx.waker());
            this.exchange(&mut st, Instant::now());
            let notices = this.route_events(&mut st);
            let next = st.link.poll_timeout();
            let closed = st.link.is_closed();
            let more_output = st.link.has_pending_output();
            drop(st);
            let answered = this.notify(cx, notices);
            let written = this.write(cx);
            let failed = this.write_error.is_some();
            if closed && (this.write_failed || (written && !more_output && !answered)) {
                let _ =
                    socket2::SockRef::from(&this.socket.as_fd()).shutdown(std::net::Shutdown::Both);
                return Poll::Ready(());
            }
            let timer_fired = this.arm_timer(cx, next);
            let again = more_to_read || answered || failed || (written && more_output);
            if !timer_fired && !again {
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
            // No task context here: handlers still to run are dropped
            // (their exchanges just ended with the link).
            for notice in notices {
                match notice {
                    Notice::Connected(_) | Notice::Serve(_) => {}
                    Notice::Closed(_) => {
                        if let Some(remote) = &self.remote {
                            self.node.link_closed(remote, &self.link);
                        }
                    }
                }
            }
        }
        self.node.live_links.fetch_sub(1, Ordering::AcqRel);
        self.node.changes.notify();
    }
}
