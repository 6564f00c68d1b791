//! Calling a peer: requests (raw and typed) and streams.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gridmux_core::link::StreamOpts;
use gridmux_core::mux::MuxId;
use gridmux_core::wire::SubrouteId;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::files::{self, FetchError, FileBody};
use crate::grid::{Node, PeerSlot};
use crate::handler::{decode, encode};
use crate::runtime;
use crate::shared::{AnswerSlot, SharedLink, StreamSlot};
use crate::stream::{self, StreamReceiver, StreamSender};
use crate::Error;

/// A handle for calling one peer. Cheap to clone. Calls fail fast with
/// [`Error::Disconnected`] while the peer is not connected; see
/// [`wait_connected`](Self::wait_connected).
#[derive(Debug, Clone)]
pub struct Peer {
    node: Arc<Node>,
    name: Arc<str>,
    slot: Arc<PeerSlot>,
}

impl Peer {
    pub(crate) fn new(node: Arc<Node>, name: String, slot: Arc<PeerSlot>) -> Self {
        Self {
            node,
            name: name.into(),
            slot,
        }
    }

    fn link(&self) -> Result<Arc<SharedLink>, Error> {
        self.node.link(&self.slot)
    }

    /// The peer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a link to the peer is up.
    pub fn is_connected(&self) -> bool {
        self.link().is_ok()
    }

    /// Closes the current link to the peer, if any: its exchanges end
    /// with [`Error::Disconnected`] on both sides, and the dialing side
    /// re-dials at once.
    pub fn disconnect(&self) {
        if let Ok(link) = self.link() {
            let mut st = link.lock();
            st.link.close(Instant::now());
            st.flush();
        }
    }

    /// Waits until a link to the peer is up, or `timeout` passes.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), Error> {
        let ready = self.node.changes.wait_until(|| {
            self.node.closing.load(std::sync::atomic::Ordering::Acquire) || self.is_connected()
        });
        self.node
            .timeout(timeout, ready)
            .await
            .ok_or(Error::Timeout)?;
        self.link().map(drop)
    }

    /// Fetches `key` of the peer's file `route` (all of it, or `range`)
    /// over its file plane: a `GET` signed with the cluster secret, on a
    /// kept-alive connection. The body arrives as it is read.
    pub async fn fetch(
        &self,
        route: &str,
        key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<FileBody, FetchError> {
        files::fetch(&self.node, &self.name, route, key, range).await
    }

    /// [`fetch`](Self::fetch) written into `file` from `offset` (with
    /// `splice` on Linux); returns the bytes written. A body shorter than
    /// announced is [`FetchError::ShortBody`], never a short file passed
    /// as whole.
    pub async fn fetch_to_file(
        &self,
        route: &str,
        key: &str,
        range: Option<std::ops::Range<u64>>,
        file: &std::fs::File,
        offset: u64,
    ) -> Result<u64, FetchError> {
        let body = self.fetch(route, key, range).await?;
        body.write_to_file(file, offset).await
    }

    /// A request to `handler` with raw bytes; `.await` it for the answer.
    /// Dropping the future cancels the request at the peer.
    pub fn request(&self, handler: u8, payload: impl Into<Bytes>) -> Request {
        Request {
            peer: self.clone(),
            handler,
            subroute: None,
            timeout: None,
            payload: payload.into(),
        }
    }

    /// A typed request: `request` is sent as MessagePack and the answer
    /// decoded as `Resp`.
    pub fn call<Resp, Req>(&self, handler: u8, request: &Req) -> Call<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let (payload, error) = match encode(request) {
            Ok(p) => (p, None),
            Err(e) => (Bytes::new(), Some(Error::Codec(e))),
        };
        Call {
            request: self.request(handler, payload),
            error,
            _answer: PhantomData,
        }
    }

    /// A stream to `handler` with an initial payload; `.await` it for the
    /// sender and receiver.
    pub fn open_stream(&self, handler: u8, payload: impl Into<Bytes>) -> OpenStream {
        OpenStream {
            peer: self.clone(),
            handler,
            subroute: None,
            payload: payload.into(),
            opts: StreamOpts::default(),
            timeout: None,
        }
    }
}

/// A request being built; `.await` sends it.
#[derive(Debug)]
#[must_use = "a request does nothing until awaited"]
pub struct Request {
    peer: Peer,
    handler: u8,
    subroute: Option<SubrouteId>,
    timeout: Option<Duration>,
    payload: Bytes,
}

impl Request {
    /// Addresses a handler registered under a sub-route.
    pub fn subroute(mut self, subroute: &str) -> Self {
        self.subroute = Some(SubrouteId::new(self.handler, subroute));
        self
    }

    /// How long to wait for the answer (default: the link's default
    /// request timeout). The deadline travels to the peer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Puts the request on the link; the caller's task waits for `waker`.
    fn send(self, waker: &Waker) -> Result<Pending, Error> {
        let link = self.peer.link()?;
        let now = Instant::now();
        let mut st = link.lock();
        // Past the wire's limit, the deadline is the wire's limit.
        let deadline = self.timeout.map(|t| now + t.min(runtime::MAX_TIMEOUT));
        let mux = st
            .link
            .request(now, self.handler, self.subroute, self.payload, deadline)?;
        let answer = AnswerSlot::new(waker);
        st.calls.insert(mux, answer.clone());
        st.flush();
        drop(st);
        Ok(Pending {
            link,
            mux,
            answer,
            answered: false,
        })
    }
}

impl IntoFuture for Request {
    type Output = Result<Bytes, Error>;
    type IntoFuture = RequestFuture;

    fn into_future(self) -> RequestFuture {
        RequestFuture(State::Unsent(self))
    }
}

/// The answer to a [`Request`]: sent when first polled. Dropping it
/// before the answer cancels the request at the peer.
#[derive(Debug)]
pub struct RequestFuture(State);

#[derive(Debug)]
enum State {
    Unsent(Request),
    Sent(Pending),
    Done,
}

/// A request on the wire.
#[derive(Debug)]
struct Pending {
    link: Arc<SharedLink>,
    mux: MuxId,
    /// Where its answer arrives.
    answer: Arc<AnswerSlot>,
    answered: bool,
}

impl Future for RequestFuture {
    type Output = Result<Bytes, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let pending = match std::mem::replace(&mut self.0, State::Done) {
            State::Unsent(request) => match request.send(cx.waker()) {
                Ok(pending) => {
                    self.0 = State::Sent(pending);
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e)),
            },
            State::Sent(pending) => pending,
            State::Done => return Poll::Ready(Err(Error::Canceled)),
        };
        let mut pending = pending;
        match pending.answer.poll(cx) {
            Poll::Pending => {
                self.0 = State::Sent(pending);
                Poll::Pending
            }
            Poll::Ready(result) => {
                pending.answered = true;
                Poll::Ready(result.map_err(Into::into))
            }
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let mut st = self.link.lock();
        // Still in the table: not answered yet, so cancel it. (Answered
        // and not taken: the link is already done with it, and the id may
        // belong to a later request.)
        let ours = (st.calls.get(&self.mux)).is_some_and(|s| Arc::ptr_eq(s, &self.answer));
        if ours {
            st.calls.remove(&self.mux);
            st.link.cancel(Instant::now(), self.mux);
            st.flush();
        }
    }
}

/// A typed request being built; `.await` sends it.
#[derive(Debug)]
#[must_use = "a call does nothing until awaited"]
pub struct Call<Resp> {
    request: Request,
    error: Option<Error>,
    _answer: PhantomData<fn() -> Resp>,
}

impl<Resp: DeserializeOwned> Call<Resp> {
    /// Addresses a handler registered under a sub-route.
    pub fn subroute(mut self, subroute: &str) -> Self {
        self.request = self.request.subroute(subroute);
        self
    }

    /// How long to wait for the answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.request = self.request.timeout(timeout);
        self
    }
}

impl<Resp: DeserializeOwned + Send + 'static> IntoFuture for Call<Resp> {
    type Output = Result<Resp, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Resp, Error>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        let request = match self.error {
            Some(e) => Err(e),
            None => Ok(self.request.into_future()),
        };
        Box::pin(async move {
            let answer = request?.await?;
            decode(&answer).map_err(Error::Codec)
        })
    }
}

/// A stream being opened; `.await` opens it.
#[derive(Debug)]
#[must_use = "a stream is not opened until awaited"]
pub struct OpenStream {
    peer: Peer,
    handler: u8,
    subroute: Option<SubrouteId>,
    payload: Bytes,
    opts: StreamOpts,
    timeout: Option<Duration>,
}

impl OpenStream {
    /// Addresses a handler registered under a sub-route.
    pub fn subroute(mut self, subroute: &str) -> Self {
        self.subroute = Some(SubrouteId::new(self.handler, subroute));
        self
    }

    /// Ends the stream with [`Error::Timeout`] after `timeout` (default:
    /// never; pings keep it alive). The deadline travels to the peer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How many messages the peer may send before we take some
    /// (default 16).
    pub fn window(mut self, window: u32) -> Self {
        self.opts.window = window.max(1);
        self
    }

    /// We send nothing: the stream carries only the peer's output.
    pub fn no_input(mut self) -> Self {
        self.opts.input = false;
        self
    }

    fn open(mut self) -> Result<(StreamSender, StreamReceiver), Error> {
        let link = self.peer.link()?;
        let now = Instant::now();
        // A stream's timeout past the wire's limit means no deadline.
        self.opts.deadline = self
            .timeout
            .filter(|t| *t < runtime::MAX_TIMEOUT)
            .map(|t| now + t);
        let mut st = link.lock();
        let mux = st
            .link
            .open_stream(now, self.handler, self.subroute, self.payload, self.opts)?;
        let generation = st.add_slot(mux, StreamSlot::default());
        st.flush();
        drop(st);
        let (rx, tx) = stream::pair(link, mux, generation);
        Ok((tx, rx))
    }
}

impl IntoFuture for OpenStream {
    type Output = Result<(StreamSender, StreamReceiver), Error>;
    type IntoFuture = std::future::Ready<Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        std::future::ready(self.open())
    }
}
