//! Routes what a link reports to the exchanges' handles, and runs the
//! handlers it asks for as tasks.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use futures_lite::FutureExt as _;
use gridmux_core::auth::link::Membership;
use gridmux_core::link::{CommandError, Event, LinkError};
use gridmux_core::mux::MuxId;
use gridmux_core::wire::{ErrorCode, ErrorPayload, SubrouteId};
use tracing::{debug, trace, Instrument as _};

use crate::grid::Node;
use crate::handler::{Context, Placement};
use crate::runtime::BoxFuture;
use crate::shared::{wake, LinkState, SharedLink, StreamSlot};
use crate::signal::CancelSignal;
use crate::HandlerError;

/// What the driver acts on after the link's lock is released.
pub(crate) enum Notice {
    /// The link is up with this peer (a member, or a client that is
    /// served but never called).
    Connected(String, Membership),
    /// The link is over.
    Closed(LinkError),
    /// A request handler to run: the driver polls it once itself (most
    /// answer at once, and their answers join the same write) and spawns
    /// it only if it has to wait.
    Serve(BoxFuture<()>),
    /// A stream handler's task, spawned outside the link's lock (a runtime
    /// may drop the future inside `spawn`, and dropping it locks the link).
    Spawn(BoxFuture<()>),
}

impl std::fmt::Debug for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connected(remote, membership) => f
                .debug_tuple("Connected")
                .field(remote)
                .field(membership)
                .finish(),
            Self::Closed(reason) => f.debug_tuple("Closed").field(reason).finish(),
            Self::Serve(_) => f.write_str("Serve(..)"),
            Self::Spawn(_) => f.write_str("Spawn(..)"),
        }
    }
}

/// Takes a closed link out of the peer table, once, before any caller
/// learns that it is gone: a caller woken with `Disconnected` (its answer
/// completes without the link's lock) must not find it there.
fn leave_table(st: &mut LinkState, link: &Arc<SharedLink>, node: &Arc<Node>) {
    if std::mem::replace(&mut st.left_table, true) {
        return;
    }
    if let Some(remote) = &st.remote {
        node.link_closed(remote, link);
    }
}

/// Routes one event. Runs with the link locked.
pub(crate) fn route(
    st: &mut LinkState,
    event: Event,
    link: &Arc<SharedLink>,
    node: &Arc<Node>,
) -> Option<Notice> {
    match event {
        Event::Connected {
            remote, membership, ..
        } => {
            st.remote = Some(remote.as_str().into());
            st.membership = Some(membership);
            return Some(Notice::Connected(remote, membership));
        }
        Event::Closed(reason) => {
            leave_table(st, link, node);
            st.end_everything();
            return Some(Notice::Closed(reason));
        }
        Event::Response { mux, result } => {
            if let Some(slot) = st.calls.remove(&mux) {
                if st.link.is_closed() {
                    // The closing link's `Disconnected` answers.
                    leave_table(st, link, node);
                }
                slot.complete(result);
            }
        }
        Event::Request {
            mux,
            handler,
            subroute,
            payload,
            deadline,
        } => {
            let ctx = Ctx {
                mux,
                handler,
                subroute,
                deadline: Some(deadline),
            };
            return serve_request(st, link, node, ctx, payload).map(|(task, placement)| {
                match placement {
                    Placement::Inline => Notice::Serve(task),
                    Placement::Spawned => Notice::Spawn(task),
                }
            });
        }
        Event::StreamOpened {
            mux,
            handler,
            subroute,
            payload,
            deadline,
            has_input,
        } => {
            let ctx = Ctx {
                mux,
                handler,
                subroute,
                deadline,
            };
            return serve_stream(st, link, node, ctx, payload, has_input).map(Notice::Spawn);
        }
        Event::Message { mux, payload } => match st.streams.get_mut(&mux) {
            Some(slot) if !slot.discard => {
                slot.inbound.push_back(payload);
                wake(&mut slot.recv);
            }
            _ => st.link.consumed(Instant::now(), mux, 1),
        },
        Event::InputEnded { mux } => {
            if let Some(slot) = st.streams.get_mut(&mux) {
                slot.input_done = true;
                wake(&mut slot.recv);
            }
        }
        Event::Writable { mux } => {
            if let Some(slot) = st.streams.get_mut(&mux) {
                wake(&mut slot.send);
            }
        }
        Event::Ended { mux, result } => {
            if let Some(signal) = st.served.remove(&mux) {
                signal.cancel();
            }
            if let Some(slot) = st.streams.get_mut(&mux) {
                slot.end = Some(result.map_err(Into::into));
                wake(&mut slot.recv);
                wake(&mut slot.send);
            }
        }
        Event::Pong { rtt } => trace!(?rtt, "link pong"),
    }
    None
}

/// The identity of an exchange we serve.
struct Ctx {
    mux: MuxId,
    handler: u8,
    subroute: Option<SubrouteId>,
    deadline: Option<Instant>,
}

impl Ctx {
    /// Registers the exchange as served, with the signal that cancels its
    /// handler, and returns that signal and the handler's context.
    fn serve(&self, st: &mut LinkState) -> (CancelSignal, Context) {
        let cancel = CancelSignal::new();
        st.served.insert(self.mux, cancel.clone());
        let context = Context {
            caller: st.remote.clone().unwrap_or_else(|| "".into()),
            client: st.membership == Some(Membership::Client),
            handler: self.handler,
            subroute: self.subroute,
            deadline: self.deadline,
            cancel: cancel.clone(),
        };
        (cancel, context)
    }
}

/// The task that serves a request and where it runs, or `None` if the
/// handler is unknown (answered at once).
fn serve_request(
    st: &mut LinkState,
    link: &Arc<SharedLink>,
    node: &Arc<Node>,
    ctx: Ctx,
    payload: Bytes,
) -> Option<(BoxFuture<()>, Placement)> {
    let mux = ctx.mux;
    let Some((f, placement)) = node.handlers.request(ctx.handler, ctx.subroute) else {
        // The core checked the protocol's table; the two are built together.
        let e = ErrorPayload::new(ErrorCode::UnknownHandler, "no such handler");
        let _ = st.link.respond(Instant::now(), mux, Err(e));
        return None;
    };
    let (f, placement) = (f.clone(), *placement);
    let (cancel, context) = ctx.serve(st);
    let link = link.clone();
    let span = link.span.clone();
    let guard = ServedGuard::new(&link, mux, &cancel, None);
    let task: BoxFuture<()> = Box::pin(
        async move {
            // Called here, not under the link's lock (the handler may drop
            // what it is given right away, and handles lock the link), and
            // inside the panic guard (the call itself may panic).
            let future = async move { f(context, payload).await };
            let outcome = run_handler(&cancel, future).await;
            guard.disarm();
            let Some(outcome) = outcome else {
                return;
            };
            let result = outcome.map_err(payload_of);
            answer(&link, mux, &cancel, result).await;
        }
        .instrument(span),
    );
    Some((task, placement))
}

fn serve_stream(
    st: &mut LinkState,
    link: &Arc<SharedLink>,
    node: &Arc<Node>,
    ctx: Ctx,
    payload: Bytes,
    has_input: bool,
) -> Option<BoxFuture<()>> {
    let now = Instant::now();
    let mux = ctx.mux;
    let Some(f) = node.handlers.stream(ctx.handler, ctx.subroute) else {
        let e = ErrorPayload::new(ErrorCode::UnknownHandler, "no such handler");
        let _ = st.link.fail_stream(now, mux, e);
        return None;
    };
    let f = f.clone();
    let (cancel, context) = ctx.serve(st);
    let generation = st.add_slot(
        mux,
        StreamSlot {
            input_done: !has_input,
            ..StreamSlot::default()
        },
    );
    let (rx, tx) = crate::stream::pair(link.clone(), mux, generation);
    let link = link.clone();
    let span = link.span.clone();
    let guard = ServedGuard::new(&link, mux, &cancel, Some(generation));
    Some(Box::pin(
        async move {
            // Not under the link's lock, inside the panic guard (see
            // `serve_request`).
            let future = async move { f(context, payload, rx, tx).await };
            let outcome = run_handler(&cancel, future).await;
            guard.disarm();
            let mut st = link.lock();
            // The peer may have opened a new stream of this id once ours
            // was over: that one is not ours to end.
            if st.take_slot(mux, generation).is_none() {
                return;
            }
            st.unserve(mux, &cancel);
            let now = Instant::now();
            let sent = match outcome {
                None => Ok(()),
                // `release` below finishes an output still open.
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => st.link.fail_stream(now, mux, payload_of(e)),
            };
            // The handler is gone: the stream stops counting once its EOF
            // is out, and a caller still sending is told to stop.
            st.link.release(now, mux);
            if let Err(e) = sent {
                debug!(%e, ?mux, "stream end not sent");
            }
            st.flush();
        }
        .instrument(span),
    ))
}

/// Ends an exchange we serve whose handler task is dropped before it
/// finished (a runtime shutting down drops tasks, even before their first
/// poll): the caller is told at once instead of waiting for its deadline.
/// Moved into the task, so it goes wherever the task goes.
struct ServedGuard {
    link: Arc<SharedLink>,
    mux: MuxId,
    /// The exchange's cancel signal: it knows its served entry by it (once
    /// the core forgot the exchange, the peer may reuse the id).
    signal: CancelSignal,
    /// A stream's slot generation.
    stream: Option<u64>,
    armed: bool,
}

impl ServedGuard {
    fn new(link: &Arc<SharedLink>, mux: MuxId, signal: &CancelSignal, stream: Option<u64>) -> Self {
        Self {
            link: link.clone(),
            mux,
            signal: signal.clone(),
            stream,
            armed: true,
        }
    }

    /// The task finished normally: it ends the exchange itself.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for ServedGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Never dropped under the link's lock: handler tasks are spawned
        // and dropped outside it.
        let mut st = self.link.lock();
        if let Some(generation) = self.stream {
            st.take_slot(self.mux, generation);
        }
        // Still served under this id only if the entry is its own.
        if st.unserve(self.mux, &self.signal) {
            st.link.cancel(Instant::now(), self.mux);
            st.flush();
        }
    }
}

/// Queues a handler's answer. A large answer waits while the link's send
/// queue is full; the request's end (its deadline, a cancel, the link's
/// end) stops the wait. Checked under the link's lock, where the end is
/// routed: a later request that reuses the id never gets this answer.
async fn answer(
    link: &SharedLink,
    mux: MuxId,
    cancel: &CancelSignal,
    result: Result<Bytes, ErrorPayload>,
) {
    let queued = std::future::poll_fn(|cx| {
        let mut st = link.lock();
        let st = &mut *st;
        if cancel.is_cancelled() {
            debug!(?mux, "answer dropped: the request ended while it waited");
            return Poll::Ready(());
        }
        let outcome = st.link.respond(Instant::now(), mux, result.clone());
        if let Err(CommandError::QueueFull(_)) = outcome {
            if !st.queue_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                st.queue_waiters.push(cx.waker().clone());
            }
            st.flush();
            return Poll::Pending;
        }
        if let Err(e) = outcome {
            debug!(%e, ?mux, "answer not sent");
        }
        st.unserve(mux, cancel);
        st.flush();
        Poll::Ready(())
    });
    // The signal wakes a wait the queue would not end soon.
    futures_lite::future::or(queued, cancel.cancelled()).await;
}

/// Runs a handler until it returns, panics (an error answer) or is
/// cancelled (`None`: nobody waits for an answer).
async fn run_handler<T>(
    cancel: &CancelSignal,
    future: impl Future<Output = Result<T, HandlerError>>,
) -> Option<Result<T, Failure>> {
    let outcome = cancel.run(AssertUnwindSafe(future).catch_unwind()).await?;
    Some(match outcome {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::Error(e)),
        Err(_) => Err(Failure::Panicked),
    })
}

/// How a handler failed.
enum Failure {
    Error(HandlerError),
    Panicked,
}

fn payload_of(failure: Failure) -> ErrorPayload {
    match failure {
        Failure::Error(e) => ErrorPayload::new(ErrorCode::Application, e.0),
        Failure::Panicked => ErrorPayload::new(ErrorCode::HandlerPanicked, "handler panicked"),
    }
}
