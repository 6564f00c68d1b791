//! A plain WebSocket connection (RFC 6455, [`gridmux_core::ws::Endpoint`])
//! on the runtime, in either role — what the Autobahn harnesses and the
//! interoperability tests run on. Grid links use the same driver.
//!
//! Reading waits while the application has events to take (TCP
//! backpressure); sends queue in the endpoint up to its `max_send_queue`.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::BytesMut;
use gridmux_core::ws::{self, ClientRequest, CloseCode, Endpoint, Event, Message, SendError};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::driver::{Driver, Session};
use crate::runtime::{Runtime, Socket};
use crate::shared::{register, wake};

/// One WebSocket connection. Events arrive through [`recv`](Self::recv);
/// dropping it closes the connection (1001).
#[derive(Debug)]
pub struct WebSocket {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    span: tracing::Span,
}

#[derive(Debug)]
struct State {
    endpoint: Endpoint,
    reader: Option<Waker>,
    driver: Option<Waker>,
    /// The driver stopped without a `Closed` event (shutdown).
    aborted: bool,
    /// `Closed` was handed to the application.
    finished: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    fn flush(&mut self) {
        wake(&mut self.driver);
    }
}

impl WebSocket {
    /// Connects to `addr` and sends the opening handshake of `request`
    /// (the client role; frames are masked with keys from the OS RNG).
    pub async fn connect(
        runtime: Arc<dyn Runtime>,
        addr: SocketAddr,
        request: &ClientRequest,
        config: ws::Config,
    ) -> io::Result<Self> {
        let socket = runtime.connect(addr).await?;
        let rng = Box::new(StdRng::from_os_rng());
        let endpoint = Endpoint::client(config, request, rng, Instant::now());
        Ok(Self::start(runtime, socket, endpoint, "client"))
    }

    /// [`connect`](Self::connect) over TLS: the session's handshake with
    /// `tls`'s identity, checking the server's certificate against
    /// `server_name`, then the WebSocket's (`wss`).
    pub async fn connect_tls(
        runtime: Arc<dyn Runtime>,
        addr: SocketAddr,
        server_name: &str,
        tls: &crate::tls::TlsConfig,
        request: &ClientRequest,
        config: ws::Config,
    ) -> io::Result<Self> {
        let socket = runtime.connect(addr).await?;
        let socket = crate::tls::connect_socket(socket, tls, server_name).await?;
        let rng = Box::new(StdRng::from_os_rng());
        let endpoint = Endpoint::client(config, request, rng, Instant::now());
        Ok(Self::start(runtime, socket, endpoint, "client"))
    }

    /// Serves the server role on an accepted socket (the endpoint reads and
    /// answers the opening handshake itself).
    pub fn accept(runtime: Arc<dyn Runtime>, socket: Box<dyn Socket>, config: ws::Config) -> Self {
        let endpoint = Endpoint::server(config, Instant::now());
        Self::start(runtime, socket, endpoint, "server")
    }

    fn start(
        runtime: Arc<dyn Runtime>,
        socket: Box<dyn Socket>,
        endpoint: Endpoint,
        role: &'static str,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                endpoint,
                reader: None,
                driver: None,
                aborted: false,
                finished: false,
            }),
            span: tracing::info_span!("websocket", role),
        });
        let session = WsSession {
            shared: shared.clone(),
        };
        let driver = Driver::new(session, runtime.clone(), Arc::from(socket), BytesMut::new());
        runtime.spawn(Box::pin(driver));
        Self { shared }
    }

    /// The next event: `Open`, then messages, pings and pongs, and last
    /// `Closed`; `None` after that.
    pub async fn recv(&self) -> Option<Event> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next event.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let mut st = self.shared.lock();
        if st.finished {
            return Poll::Ready(None);
        }
        let had_events = st.endpoint.has_events();
        let event = st.endpoint.poll_event();
        if had_events {
            // Taking events may queue output (a close answer) and lets the
            // driver read on once none are left.
            st.flush();
        }
        if let Some(event) = event {
            st.finished = matches!(event, Event::Closed(_));
            return Poll::Ready(Some(event));
        }
        if st.aborted {
            st.finished = true;
            return Poll::Ready(Some(Event::Closed(ws::CloseCause::Abnormal)));
        }
        register(&mut st.reader, cx.waker());
        Poll::Pending
    }

    /// Queues a message.
    pub fn send(&self, message: Message) -> Result<(), SendError> {
        let mut st = self.shared.lock();
        let sent = st.endpoint.send(message);
        st.flush();
        sent
    }

    /// Starts the closing handshake.
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        let mut st = self.shared.lock();
        let closed = st.endpoint.close(Instant::now(), code, reason);
        st.flush();
        closed
    }
}

impl Drop for WebSocket {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        if st.endpoint.is_open() {
            let _ = st.endpoint.close(Instant::now(), CloseCode::GOING_AWAY, "");
            st.flush();
        }
    }
}

/// The driver's view of a WebSocket.
#[derive(Debug)]
struct WsSession {
    shared: Arc<Shared>,
}

impl Session for WsSession {
    type State = State;
    type Conn = Endpoint;
    type Notice = ();

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    fn conn(state: &mut State) -> &mut Endpoint {
        &mut state.endpoint
    }

    fn set_waker(state: &mut State, waker: &Waker) {
        register(&mut state.driver, waker);
    }

    fn holds_input(state: &mut State) -> bool {
        state.endpoint.has_events()
    }

    fn route(&self, state: &mut State, _: &mut Vec<()>) {
        // The application takes events from the endpoint itself, in order,
        // so that it can answer a message before an error that followed
        // it closes the connection.
        if state.endpoint.has_events() {
            wake(&mut state.reader);
        }
    }

    fn notify(&mut self, _: &mut Context<'_>, _: Vec<()>) -> bool {
        false
    }

    fn span(&self) -> tracing::Span {
        self.shared.span.clone()
    }

    fn abort(&mut self) {
        let mut st = self.shared.lock();
        st.aborted = true;
        wake(&mut st.reader);
    }
}
