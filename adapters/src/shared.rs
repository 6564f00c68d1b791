//! The state a link's driver shares with the handles of its exchanges
//! (request futures, stream halves, handler tasks): the core `Link`
//! behind a mutex, plus the wakers and mailboxes of each exchange.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

use bytes::Bytes;
use gridmux_core::link::{CallError, Link};
use gridmux_core::mux::{IdHasher, MuxId};
use gridmux_core::ws::Transmit;

use crate::runtime::Socket;

use crate::signal::CancelSignal;
use crate::Error;

/// A map keyed by mux id (a multiplication instead of SipHash).
pub(crate) type MuxMap<V> = HashMap<MuxId, V, BuildHasherDefault<IdHasher>>;

/// One link's shared state. Lock order: a task holds at most one link's
/// lock, and never takes the grid's peer table while holding it.
#[derive(Debug)]
pub(crate) struct SharedLink {
    state: Mutex<LinkState>,
    /// The link's tracing span (also entered by its handler tasks).
    pub(crate) span: tracing::Span,
}

impl SharedLink {
    pub(crate) fn new(link: Link, socket: Arc<dyn Socket>, span: tracing::Span) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(LinkState {
                link,
                socket,
                direct: Transmit::new(),
                direct_error: None,
                writing: Arc::new(AtomicBool::new(false)),
                armed: None,
                calls: MuxMap::default(),
                streams: MuxMap::default(),
                served: MuxMap::default(),
                remote: None,
                driver: None,
                queue_waiters: Vec::new(),
            }),
            span,
        })
    }

    /// Locks the state. A panic while locked cannot leave the core link
    /// half-updated in a way that matters more than the panic itself, so a
    /// poisoned lock is taken over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The answer slot of one of our requests.
#[derive(Debug)]
pub(crate) enum CallSlot {
    /// Waiting; the waker of the caller's task.
    Waiting(Option<Waker>),
    /// Answered.
    Done(Result<Bytes, CallError>),
}

/// The mailbox of one stream (either role).
#[derive(Debug, Default)]
pub(crate) struct StreamSlot {
    /// Messages not yet taken by the receiver.
    pub(crate) inbound: VecDeque<Bytes>,
    /// No more input will come (served: the caller finished its input).
    pub(crate) input_done: bool,
    /// The stream is over: `Ok` for a clean end.
    pub(crate) end: Option<Result<(), Error>>,
    /// The receiver's waker.
    pub(crate) recv: Option<Waker>,
    /// The sender's waker (waiting for credit).
    pub(crate) send: Option<Waker>,
    /// The receiver was dropped: input is taken (and credited) on arrival.
    pub(crate) discard: bool,
}

/// What [`SharedLink`] guards.
#[derive(Debug)]
pub(crate) struct LinkState {
    /// The sans-IO link.
    pub(crate) link: Link,
    /// The link's socket: the driver reads and writes it; a caller may
    /// write it while nothing else is in flight (see [`Self::flush`]).
    socket: Arc<dyn Socket>,
    /// Bytes a caller took from the link but could not write: the driver
    /// writes them before anything else.
    pub(crate) direct: Transmit,
    /// A caller's write failed; the driver acts on it.
    pub(crate) direct_error: Option<io::Error>,
    /// Set while the driver writes outside the lock: nobody else may.
    pub(crate) writing: Arc<AtomicBool>,
    /// When the driver's timer fires (it must be woken for anything
    /// earlier).
    pub(crate) armed: Option<Instant>,
    /// Our pending requests.
    pub(crate) calls: MuxMap<CallSlot>,
    /// Open streams, both roles.
    pub(crate) streams: MuxMap<StreamSlot>,
    /// Exchanges we serve, with the signal that cancels their handler.
    pub(crate) served: MuxMap<CancelSignal>,
    /// The peer's name, once connected (shared by handler contexts).
    pub(crate) remote: Option<Arc<str>>,
    /// The driver's waker.
    pub(crate) driver: Option<Waker>,
    /// Tasks waiting for the send queue to drain.
    pub(crate) queue_waiters: Vec<Waker>,
}

impl LinkState {
    /// Gets what the link has to write on its way. Call after every
    /// command. With nothing else in flight, the calling task writes
    /// itself (saving a switch to the driver task, the larger part of a
    /// lone request's latency); otherwise, or if the socket is full, the
    /// driver is woken and batches the writes.
    pub(crate) fn flush(&mut self) {
        if !self.link.has_pending_output() && !self.link.is_closed() {
            return;
        }
        if self.link.open_exchanges() <= 1
            && !self.link.is_closed()
            && self.write_direct()
            && !self.needs_timer()
        {
            return;
        }
        if let Some(waker) = self.driver.take() {
            waker.wake();
        }
    }

    /// Whether the link wants a timeout earlier than the driver's timer.
    fn needs_timer(&self) -> bool {
        match (self.link.poll_timeout(), self.armed) {
            (Some(want), Some(armed)) => want < armed,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Writes the link's output from the calling task; returns whether
    /// all of it went out. Only while the driver is not writing (its flag
    /// is set and cleared under this lock's protection) and nothing a
    /// caller left is waiting.
    fn write_direct(&mut self) -> bool {
        if self.writing.load(Ordering::Acquire) || !self.direct.is_empty() {
            return false;
        }
        if self.direct_error.is_some() {
            return false;
        }
        let now = Instant::now();
        while self.link.poll_transmit(now, &mut self.direct) {}
        while !self.direct.is_empty() {
            let mut slices = [IoSlice::new(&[]); 16];
            let n = self.direct.io_slices(&mut slices);
            match self.socket.try_write_vectored(&slices[..n]) {
                Ok(0) => {
                    self.direct_error = Some(io::ErrorKind::WriteZero.into());
                    return false;
                }
                Ok(n) => self.direct.advance(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    self.direct_error = Some(e);
                    return false;
                }
            }
        }
        true
    }

    /// Wakes every task waiting for the send queue.
    pub(crate) fn wake_queue_waiters(&mut self) {
        for waker in self.queue_waiters.drain(..) {
            waker.wake();
        }
    }

    /// Ends every exchange that still waits (the link is gone).
    pub(crate) fn end_everything(&mut self) {
        for slot in self.calls.values_mut() {
            if let CallSlot::Waiting(waker) = slot {
                let waker = waker.take();
                *slot = CallSlot::Done(Err(CallError::Disconnected));
                if let Some(w) = waker {
                    w.wake();
                }
            }
        }
        for slot in self.streams.values_mut() {
            if slot.end.is_none() {
                slot.end = Some(Err(Error::Disconnected));
            }
            wake(&mut slot.recv);
            wake(&mut slot.send);
        }
        for signal in self.served.values() {
            signal.cancel();
        }
        self.wake_queue_waiters();
    }
}

/// Wakes and clears a waker slot.
pub(crate) fn wake(slot: &mut Option<Waker>) {
    if let Some(w) = slot.take() {
        w.wake();
    }
}

/// Stores `waker` in `slot` unless it already wakes the same task.
pub(crate) fn register(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(w) if w.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}
