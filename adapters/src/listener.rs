//! The node's one port: HTTP/1.1 through `core::http`, `GET /health`, the
//! file plane (`/gridmux/v1/files/…`), and the authenticated upgrade to a
//! grid link at `GET /gridmux/v1`.

use std::future::poll_fn;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use gridmux_core::http::files::FILES_PREFIX;
use gridmux_core::http::{CloseReason, Event, RequestHead, Response, ServerConnection};
use gridmux_core::link::Link;
use gridmux_core::observe::BodyPath;
use gridmux_core::ws::Transmit;
use rand::rngs::StdRng;
use rand::SeedableRng as _;
use tracing::{debug, info_span, warn, Instrument as _};

use crate::builder::MetricsAccess;
use crate::driver::Driver;
use crate::files::{self, serve::Served};
use crate::grid::Node;
use crate::http_record::{HttpAnswer, RouteLabel};
use crate::io::{read_some, shutdown, write_all};
use crate::runtime::{Listener, Socket};
use crate::session::LinkSession;
use crate::shared::SharedLink;
use crate::tls;

/// Accepts connections until shutdown.
pub(crate) async fn accept_loop(node: Arc<Node>, listener: Box<dyn Listener>) {
    loop {
        let accept = poll_fn(|cx| listener.poll_accept(cx));
        match node.shutdown.run(accept).await {
            None => return,
            Some(Ok(socket)) => {
                if node.closing.load(Ordering::Acquire) {
                    shutdown(&*socket);
                    continue;
                }
                let Some(pending) = Pending::take(&node) else {
                    debug!("too many pending connections: closed a new one");
                    shutdown(&*socket);
                    continue;
                };
                let from = socket2::SockRef::from(&socket.as_fd())
                    .peer_addr()
                    .ok()
                    .and_then(|a| a.as_socket());
                let span = info_span!("conn", local = %node.local, from = ?from);
                let task = serve_connection(node.clone(), socket, pending);
                let stop = node.shutdown.clone();
                node.runtime.spawn(Box::pin(
                    async move {
                        stop.run(task).await;
                    }
                    .instrument(span),
                ));
            }
            Some(Err(e)) => {
                // Out of descriptors and the like: back off a little.
                warn!(%e, "accept failed");
                let pause = node.sleep_until(Instant::now() + Duration::from_millis(50));
                if node.shutdown.run(pause).await.is_none() {
                    return;
                }
            }
        }
    }
}

/// Serves HTTP requests on one connection until it is upgraded or closed.
async fn serve_connection(node: Arc<Node>, socket: Box<dyn Socket>, pending: Pending) {
    let timeout = node.config().handshake_timeout;
    let Some(socket) = secure(&node, socket, timeout).await else {
        return;
    };
    let mut http = ServerConnection::new(node.http, timeout, Instant::now());
    let mut input = BytesMut::new();
    let mut out = Transmit::new();
    // The answer queued in `http`, recorded once written.
    let mut answered: Option<HttpAnswer> = None;
    // When the last input was handled (a refused head dates from there).
    let mut read_at = Instant::now();
    loop {
        while let Some(event) = http.poll_event() {
            match event {
                Event::Request(head) if head.path().starts_with(FILES_PREFIX) => {
                    let started = Instant::now();
                    match files::serve::serve(&node, &head, started, &*socket, &mut http).await {
                        Served::Queued(answer) => answered = Some(answer),
                        Served::Sent => {}
                        Served::Aborted => {
                            shutdown(&*socket);
                            return;
                        }
                    }
                }
                Event::Request(head) => {
                    let started = Instant::now();
                    let (response, route) = answer(&node, &head);
                    http.respond(Instant::now(), &response);
                    let record =
                        HttpAnswer::new(started, &head, RouteLabel::Fixed(route), response.status);
                    let len = response.body.len() as u64;
                    answered = Some(record.body(len, BodyPath::Memory, head.method == "HEAD"));
                }
                Event::Upgrade(head) => {
                    let mut link = Link::accept_head(
                        node.config(),
                        &head,
                        Instant::now(),
                        SystemTime::now(),
                        &mut StdRng::from_os_rng(),
                    );
                    if let Some(binding) = socket.tls_exporter() {
                        link.secure_channel(&binding);
                    }
                    let span = info_span!("link", local = %node.local, role = "acceptor");
                    let socket: Arc<dyn Socket> = Arc::from(socket);
                    let link = SharedLink::new(link, span);
                    // Still pending until the dialer has proven itself: a
                    // replayed filter token must not open unbounded set-ups.
                    let session = LinkSession::new(link, node.clone()).pending(pending);
                    Driver::new(session, node.runtime.clone(), socket, input).await;
                    return;
                }
                Event::Closed(reason) => {
                    debug!(?reason, "http connection closed");
                    let refused = match &reason {
                        CloseReason::Refused(e) => Some(e.status()),
                        CloseReason::Timeout => Some(408),
                        _ => None,
                    };
                    while http.poll_transmit(&mut out) {}
                    let first = (!out.is_empty()).then(Instant::now);
                    let _ = node.timeout(timeout, write_all(&*socket, &mut out)).await;
                    // The last answer (`Connection: close`, HTTP/1.0).
                    if let Some(answer) = answered.take() {
                        answer.record(&node, first, Instant::now());
                    }
                    if let (Some(status), Some(first)) = (refused, first) {
                        // A refused head: no method or route to tell.
                        let record = HttpAnswer {
                            started: read_at,
                            route: RouteLabel::Fixed("other"),
                            method: "other",
                            status,
                            bytes_out: 0,
                            body: BodyPath::None,
                        };
                        record.record(&node, Some(first), Instant::now());
                    }
                    shutdown(&*socket);
                    return;
                }
            }
        }
        while http.poll_transmit(&mut out) {}
        let first = Instant::now();
        let written = node.timeout(timeout, write_all(&*socket, &mut out)).await;
        if let Some(answer) = answered.take() {
            answer.record(&node, Some(first), Instant::now());
        }
        match written {
            Some(Ok(())) => {}
            _ => return,
        }
        // Pipelined requests may already be buffered: serve them before
        // waiting for more bytes.
        if !input.is_empty() {
            http.handle_input(Instant::now(), &mut input);
            if http.has_events() {
                continue;
            }
        }
        let read = read_some(&*socket, &mut input);
        let outcome = match http.poll_timeout() {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                node.timeout(left, read).await
            }
            None => Some(read.await),
        };
        let now = Instant::now();
        read_at = now;
        match outcome {
            None => http.handle_timeout(now),
            Some(Ok(0) | Err(_)) => http.handle_eof(now),
            Some(Ok(_)) => http.handle_input(now, &mut input),
        }
    }
}

/// The answer to a plain HTTP request, and its route label.
fn answer(node: &Node, head: &RequestHead) -> (Response, &'static str) {
    let path = head.path();
    let route = match path {
        "/health" => "health",
        "/metrics" => "metrics",
        p if p == node.config().path => "upgrade",
        _ => "other",
    };
    if head.method != "GET" && head.method != "HEAD" {
        let response = Response::text(405, "method not allowed\n").header("Allow", "GET, HEAD");
        return (response, route);
    }
    let response = match route {
        "health" => Response::text(200, "ok"),
        "metrics" => metrics(node, head),
        "upgrade" => Response::text(426, "upgrade to a grid link\n")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13"),
        _ => Response::text(404, "not found\n"),
    };
    (response, route)
}

/// `GET /metrics`: OpenMetrics text, to a scraper with the token unless
/// the metrics are public.
fn metrics(node: &Node, head: &RequestHead) -> Response {
    let Some((metrics, access)) = &node.metrics else {
        return Response::text(404, "not found\n");
    };
    let authorization = head
        .header("authorization")
        .and_then(|v| std::str::from_utf8(v).ok());
    if *access == MetricsAccess::Token
        && !gridmux_core::auth::metrics::verify(&node.config().keys, authorization)
    {
        return Response::text(401, "metrics need the bearer token\n")
            .header("WWW-Authenticate", "Bearer realm=\"gridmux metrics\"");
    }
    Response::new(200)
        .header("Content-Type", gridmux_metrics::CONTENT_TYPE)
        .body(metrics.encode().into())
}

/// One of the node's pending connections; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Pending(Arc<Node>);

impl Pending {
    /// A place, if one is free.
    fn take(node: &Arc<Node>) -> Option<Self> {
        let taken = node.pending_connections.fetch_add(1, Ordering::AcqRel);
        if taken >= node.max_pending_connections {
            node.pending_connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(node.clone()))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending_connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs the acceptor's TLS handshake if the node has a TLS identity,
/// within `timeout`; `None` (the connection closed) if it fails. Anyone
/// who reaches the port can fail it: warnings are rate-limited.
async fn secure(
    node: &Node,
    socket: Box<dyn Socket>,
    timeout: Duration,
) -> Option<Box<dyn Socket>> {
    let Some(tls) = &node.tls else {
        return Some(socket);
    };
    // Boxed: a rustls session is large (see `dial::secure`).
    let handshake = Box::pin(tls::accept(socket, tls.server()));
    let failure = match node.timeout(timeout, handshake).await {
        Some(Ok(s)) => return Some(Box::new(s)),
        Some(Err(e)) => e,
        None => io::ErrorKind::TimedOut.into(),
    };
    match node.tls_log.allow(Instant::now()) {
        Some(0) => warn!(error = %failure, "TLS handshake of an accepted connection failed"),
        Some(suppressed) => warn!(
            error = %failure, suppressed,
            "TLS handshake of an accepted connection failed (and more since the last warning)"
        ),
        None => debug!(error = %failure, "TLS handshake of an accepted connection failed"),
    }
    None
}
