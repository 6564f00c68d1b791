//! The state a link's driver shares with the handles of its exchanges
//! (request futures, stream halves, handler tasks): the core `Link`
//! behind a mutex, plus the wakers and mailboxes of each exchange.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use bytes::Bytes;
use gridmux_core::auth::link::Membership;
use gridmux_core::link::{CallError, Link};
use gridmux_core::mux::{MuxHashing, MuxId};

use crate::signal::CancelSignal;
use crate::Error;

/// A map keyed by mux id, hashed with the link's key (peers choose ids).
pub(crate) type MuxMap<V> = HashMap<MuxId, V, MuxHashing>;

/// One link's shared state. Lock order: a task holds at most one link's
/// lock, and never takes the grid's peer table while holding it.
#[derive(Debug)]
pub(crate) struct SharedLink {
    state: Mutex<LinkState>,
    /// The link's tracing span (also entered by its handler tasks).
    pub(crate) span: tracing::Span,
}

impl SharedLink {
    pub(crate) fn new(link: Link, span: tracing::Span) -> Arc<Self> {
        let hashing = link.mux_hashing();
        Arc::new(Self {
            state: Mutex::new(LinkState {
                link,
                calls: MuxMap::with_hasher(hashing),
                streams: MuxMap::with_hasher(hashing),
                served: MuxMap::with_hasher(hashing),
                remote: None,
                membership: None,
                driver: None,
                queue_waiters: Vec::new(),
                next_generation: 0,
                left_table: false,
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

/// The answer slot of one of our requests, shared by the caller and the
/// link: the caller waits on it without taking the link's lock (which the
/// driver holds while it works through a batch of input).
#[derive(Debug, Default)]
pub(crate) struct AnswerSlot(Mutex<Answer>);

#[derive(Debug, Default)]
struct Answer {
    /// The caller's task, while it waits.
    waker: Option<Waker>,
    /// The answer, until the caller takes it.
    result: Option<Result<Bytes, CallError>>,
    /// An answer was given (the first one counts).
    given: bool,
}

impl AnswerSlot {
    /// A slot whose caller is `waker`'s task.
    pub(crate) fn new(waker: &Waker) -> Arc<Self> {
        let slot = Self::default();
        slot.answer().waker = Some(waker.clone());
        Arc::new(slot)
    }

    fn answer(&self) -> MutexGuard<'_, Answer> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Gives the answer and wakes the caller (a second answer is ignored).
    pub(crate) fn complete(&self, result: Result<Bytes, CallError>) {
        let waker = {
            let mut a = self.answer();
            if a.given {
                return;
            }
            a.given = true;
            a.result = Some(result);
            a.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The answer, once given (taken once); else registers the caller.
    pub(crate) fn poll(
        &self,
        cx: &std::task::Context<'_>,
    ) -> std::task::Poll<Result<Bytes, CallError>> {
        let mut a = self.answer();
        match a.result.take() {
            Some(result) => std::task::Poll::Ready(result),
            None if a.given => std::task::Poll::Ready(Err(CallError::Disconnected)),
            None => {
                register(&mut a.waker, cx.waker());
                std::task::Poll::Pending
            }
        }
    }
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
    /// Which stream of this id it is: the peer may reuse an id once the
    /// core forgot it, and a handle of the old stream must not touch the
    /// new one.
    pub(crate) generation: u64,
}

/// What [`SharedLink`] guards.
#[derive(Debug)]
pub(crate) struct LinkState {
    /// The sans-IO link.
    pub(crate) link: Link,
    /// Our requests not yet answered (the link removes a slot as it
    /// answers it).
    pub(crate) calls: MuxMap<Arc<AnswerSlot>>,
    /// Open streams, both roles.
    pub(crate) streams: MuxMap<StreamSlot>,
    /// Exchanges we serve, with the signal that cancels their handler.
    pub(crate) served: MuxMap<CancelSignal>,
    /// The peer's name, once connected (shared by handler contexts).
    pub(crate) remote: Option<Arc<str>>,
    /// Whether the peer is a member or a client, once connected.
    pub(crate) membership: Option<Membership>,
    /// The driver's waker.
    pub(crate) driver: Option<Waker>,
    /// Tasks waiting for the send queue to drain.
    pub(crate) queue_waiters: Vec<Waker>,
    /// The generation of the next stream slot.
    next_generation: u64,
    /// The closed link left the node's peer table.
    pub(crate) left_table: bool,
}

impl LinkState {
    /// Adds the slot of stream `mux` (replacing a slot of an older stream
    /// of the same id); returns its generation.
    pub(crate) fn add_slot(&mut self, mux: MuxId, mut slot: StreamSlot) -> u64 {
        self.next_generation += 1;
        slot.generation = self.next_generation;
        self.streams.insert(mux, slot);
        self.next_generation
    }

    /// Removes the served entry of `mux` if it is `signal` (a later
    /// exchange of the peer may have taken the id); returns whether it was.
    pub(crate) fn unserve(&mut self, mux: MuxId, signal: &CancelSignal) -> bool {
        let ours = self.served.get(&mux).is_some_and(|s| s.same(signal));
        if ours {
            self.served.remove(&mux);
        }
        ours
    }

    /// The slot of stream `mux` if it is still generation `generation`.
    pub(crate) fn slot(&mut self, mux: MuxId, generation: u64) -> Option<&mut StreamSlot> {
        self.streams
            .get_mut(&mux)
            .filter(|s| s.generation == generation)
    }

    /// Removes the slot of stream `mux` if it is still generation
    /// `generation`.
    pub(crate) fn take_slot(&mut self, mux: MuxId, generation: u64) -> Option<StreamSlot> {
        self.slot(mux, generation)?;
        self.streams.remove(&mux)
    }

    /// Wakes the driver if the link has something to write. Call after
    /// every command.
    pub(crate) fn flush(&mut self) {
        if self.link.has_pending_output() || self.link.is_closed() {
            if let Some(waker) = self.driver.take() {
                waker.wake();
            }
        }
    }

    /// Wakes every task waiting for the send queue.
    pub(crate) fn wake_queue_waiters(&mut self) {
        for waker in self.queue_waiters.drain(..) {
            waker.wake();
        }
    }

    /// Ends every exchange that still waits (the link is gone).
    pub(crate) fn end_everything(&mut self) {
        for (_, slot) in self.calls.drain() {
            slot.complete(Err(CallError::Disconnected));
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
