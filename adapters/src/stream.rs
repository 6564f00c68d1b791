//! The two halves of a stream, for both roles: a sender whose capacity is
//! the peer's credit window, and a receiver that grants credit back as
//! messages are taken.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use gridmux_core::link::CommandError;
use gridmux_core::mux::{MuxId, Origin};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::handler::{decode, encode};
use crate::shared::{register, SharedLink};
use crate::Error;

/// What both halves share; dropping the last half of a stream we opened
/// cancels it if it is still running.
#[derive(Debug)]
struct StreamRef {
    link: Arc<SharedLink>,
    mux: MuxId,
    /// Its slot's generation (a later stream may reuse the id).
    generation: u64,
}

impl Drop for StreamRef {
    fn drop(&mut self) {
        if self.mux.origin != Origin::Local {
            return; // the handler's task ends served streams
        }
        let mut st = self.link.lock();
        if let Some(slot) = st.take_slot(self.mux, self.generation) {
            if slot.end.is_none() {
                st.link.cancel(Instant::now(), self.mux);
                st.flush();
            }
        }
    }
}

/// Creates both halves of `mux` (its slot, of `generation`, must exist).
pub(crate) fn pair(
    link: Arc<SharedLink>,
    mux: MuxId,
    generation: u64,
) -> (StreamReceiver, StreamSender) {
    let shared = Arc::new(StreamRef {
        link,
        mux,
        generation,
    });
    (
        StreamReceiver {
            inner: shared.clone(),
        },
        StreamSender {
            inner: shared,
            finished: false,
        },
    )
}

/// Sends messages on a stream. `send` waits while the peer has granted no
/// credit. Dropping the sender of a stream we opened finishes our input;
/// a handler's output ends when the handler returns.
#[derive(Debug)]
pub struct StreamSender {
    inner: Arc<StreamRef>,
    finished: bool,
}

impl StreamSender {
    /// Sends one message, waiting for credit.
    pub async fn send(&mut self, message: impl Into<Bytes>) -> Result<(), Error> {
        let message = message.into();
        poll_fn(|cx| self.poll_send(cx, &message)).await
    }

    /// Sends one value encoded as MessagePack.
    pub async fn send_typed<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.send(encode(value).map_err(Error::Codec)?).await
    }

    fn poll_send(&self, cx: &Context<'_>, message: &Bytes) -> Poll<Result<(), Error>> {
        if self.finished {
            return Poll::Ready(Err(Error::Finished));
        }
        let mux = self.inner.mux;
        let mut st = self.inner.link.lock();
        let st = &mut *st;
        let generation = self.inner.generation;
        match st.slot(mux, generation).map(|s| &s.end) {
            None => return Poll::Ready(Err(Error::Disconnected)),
            Some(Some(end)) => {
                return Poll::Ready(Err(end.clone().err().unwrap_or(Error::Finished)));
            }
            Some(None) => {}
        }
        match st.link.send(Instant::now(), mux, message.clone()) {
            Ok(()) => {
                st.flush();
                Poll::Ready(Ok(()))
            }
            Err(CommandError::NoCredit) => {
                if let Some(slot) = st.slot(mux, generation) {
                    register(&mut slot.send, cx.waker());
                }
                Poll::Pending
            }
            Err(CommandError::QueueFull(_)) => {
                // One waker per waiting task, however often it is polled.
                if !st.queue_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    st.queue_waiters.push(cx.waker().clone());
                }
                st.flush();
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e.into())),
        }
    }

    /// Messages that may be sent now without waiting.
    pub fn capacity(&self) -> u32 {
        let inner = &self.inner;
        let mut st = inner.link.lock();
        if st.slot(inner.mux, inner.generation).is_none() {
            return 0;
        }
        st.link.credits(inner.mux)
    }

    /// Ends our direction of the stream (the peer sees end-of-stream after
    /// the messages already sent). For a handler this happens when it
    /// returns.
    pub fn finish(mut self) -> Result<(), Error> {
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> Result<(), Error> {
        if std::mem::replace(&mut self.finished, true) {
            return Ok(());
        }
        let mut st = self.inner.link.lock();
        // The peer may have ended the stream first: finishing an exchange
        // that is over is a no-op, and says how it ended.
        let inner = &self.inner;
        let Some(slot) = st.slot(inner.mux, inner.generation) else {
            return Ok(()); // the stream is over and forgotten
        };
        if let Some(end) = slot.end.clone() {
            return end;
        }
        let result = st.link.finish(Instant::now(), self.inner.mux);
        st.flush();
        result.map_err(Into::into)
    }
}

impl Drop for StreamSender {
    fn drop(&mut self) {
        if self.inner.mux.origin == Origin::Local {
            let _ = self.finish_inner();
        }
    }
}

/// Receives a stream's messages. Each message taken grants the peer
/// credit for one more. Also a [`futures_lite::Stream`] of
/// `Result<Bytes, Error>`.
#[derive(Debug)]
pub struct StreamReceiver {
    inner: Arc<StreamRef>,
}

impl StreamReceiver {
    /// The next message; `Ok(None)` at the end of the stream.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next message decoded from MessagePack.
    pub async fn recv_typed<T: DeserializeOwned>(&mut self) -> Result<Option<T>, Error> {
        match self.recv().await? {
            Some(bytes) => decode(&bytes).map(Some).map_err(Error::Codec),
            None => Ok(None),
        }
    }

    /// Polls for the next message.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        let mux = self.inner.mux;
        let mut st = self.inner.link.lock();
        let st = &mut *st;
        let Some(slot) = st.slot(mux, self.inner.generation) else {
            return Poll::Ready(Err(Error::Disconnected));
        };
        if let Some(message) = slot.inbound.pop_front() {
            st.link.consumed(Instant::now(), mux, 1);
            st.flush();
            return Poll::Ready(Ok(Some(message)));
        }
        match &slot.end {
            Some(Ok(())) => return Poll::Ready(Ok(None)),
            Some(Err(e)) => return Poll::Ready(Err(e.clone())),
            None => {}
        }
        if slot.input_done {
            return Poll::Ready(Ok(None));
        }
        register(&mut slot.recv, cx.waker());
        Poll::Pending
    }
}

impl futures_lite::Stream for StreamReceiver {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_recv(cx).map(Result::transpose)
    }
}

impl Drop for StreamReceiver {
    fn drop(&mut self) {
        let mux = self.inner.mux;
        let mut st = self.inner.link.lock();
        let st = &mut *st;
        if let Some(slot) = st.slot(mux, self.inner.generation) {
            slot.discard = true;
            let queued = u32::try_from(slot.inbound.len()).unwrap_or(u32::MAX);
            slot.inbound.clear();
            if queued > 0 {
                st.link.consumed(Instant::now(), mux, queued);
                st.flush();
            }
        }
    }
}
