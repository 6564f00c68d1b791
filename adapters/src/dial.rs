//! The dialing side: one task per peer this node dials, connecting,
//! running the link, and re-dialling when it is lost.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use gridmux_core::link::Link;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tracing::{debug, info_span, warn};

use crate::driver::Driver;
use crate::grid::Node;
use crate::runtime::{self, Socket};
use crate::session::LinkSession;
use crate::shared::SharedLink;
use crate::tls;

/// Keeps a link to `remote` up until shutdown. A lost link is re-dialled
/// at once; failed attempts wait as the reconnect schedule says. A link
/// that lived less than [`MIN_LINK_LIFE`] counts as a failed attempt, so a
/// peer that accepts and drops at once is not re-dialled in a tight loop.
pub(crate) async fn dial_loop(node: Arc<Node>, remote: String) {
    let mut rng = StdRng::from_os_rng();
    let mut failures = 0u32;
    while !node.closing.load(Ordering::Acquire) {
        match node.shutdown.run(dial_once(&node, &remote, &mut rng)).await {
            None => return,
            Some(Some(lived)) if lived >= MIN_LINK_LIFE => failures = 0,
            Some(_) => {
                failures = failures.saturating_add(1);
                let observer = node.observer();
                if observer.enabled() {
                    let failed = gridmux_core::observe::LinkEvent::DialFailed { peer: &remote };
                    observer.link_event(&failed);
                }
                let delay = node.reconnect.delay(failures, &mut rng);
                let wait = node.sleep_until(runtime::deadline_in(delay));
                if node.shutdown.run(wait).await.is_none() {
                    return;
                }
            }
        }
    }
}

/// Addresses of one name tried per attempt.
const MAX_ADDRESSES: usize = 4;

/// A link that lived less than this counts as a failed attempt.
const MIN_LINK_LIFE: Duration = Duration::from_secs(2);

/// One attempt; returns how long the link was connected, if it was.
async fn dial_once(node: &Arc<Node>, remote: &str, rng: &mut StdRng) -> Option<Duration> {
    let config = node.config();
    let socket = match connect(node, remote).await {
        Ok(socket) => socket,
        Err(e) => {
            debug!(%remote, %e, "no connection");
            return None;
        }
    };
    let mut link = Link::dial(
        config,
        remote,
        Instant::now(),
        SystemTime::now(),
        Box::new(StdRng::from_rng(rng)),
    );
    if let Some(binding) = socket.tls_exporter() {
        link.secure_channel(&binding);
    }
    let span = info_span!("link", local = %node.local, %remote, role = "dialer");
    let socket: Arc<dyn Socket> = Arc::from(socket);
    let shared = SharedLink::new(link, span);
    let session = LinkSession::new(shared, node.clone());
    let mut driver = Driver::new(session, node.runtime.clone(), socket, BytesMut::new());
    (&mut driver).await;
    driver.session().connected_for()
}

/// A TCP connection to `remote` (a socket address, or a name resolved on
/// the runtime's blocking pool), trying at most [`MAX_ADDRESSES`] of its
/// addresses, each within the connect timeout.
pub(crate) async fn connect(node: &Node, remote: &str) -> io::Result<Box<dyn Socket>> {
    let config = node.config();
    let addrs = match remote.parse::<SocketAddr>() {
        Ok(addr) => vec![addr],
        // A host name: the runtime's blocking pool resolves it (the system
        // resolver blocks, and a slow one must not stall a task thread).
        Err(_) => match node
            .timeout(
                config.connect_timeout,
                node.runtime.resolve(remote.to_owned()),
            )
            .await
        {
            Some(Ok(addrs)) if !addrs.is_empty() => addrs,
            Some(Err(e)) => {
                warn!(%remote, %e, "peer name does not resolve");
                return Err(e);
            }
            Some(Ok(_)) | None => {
                warn!(%remote, "peer name does not resolve to a socket address");
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "peer name does not resolve",
                ));
            }
        },
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    // Each address in turn (a name may resolve to IPv6 and IPv4).
    for addr in addrs.into_iter().take(MAX_ADDRESSES) {
        let connect = node.runtime.connect(addr);
        match node.timeout(config.connect_timeout, connect).await {
            Some(Ok(s)) => return secure(node, remote, s).await,
            Some(Err(e)) => {
                debug!(%remote, %addr, %e, "connect failed");
                last = e;
            }
            None => {
                debug!(%remote, %addr, "connect timed out");
                last = io::ErrorKind::TimedOut.into();
            }
        }
    }
    Err(last)
}

/// Runs the TLS handshake on a new connection if the node has a TLS
/// identity (within the handshake timeout); else the socket as it is.
async fn secure(node: &Node, remote: &str, socket: Box<dyn Socket>) -> io::Result<Box<dyn Socket>> {
    let Some(tls) = &node.tls else {
        return Ok(socket);
    };
    let name = tls::server_name(remote)?;
    // Boxed: a rustls session is large, and so would every future be that
    // awaits a connection (fetches run on callers' stacks).
    let handshake = Box::pin(tls::connect(socket, tls.client(), name));
    match node
        .timeout(node.config().handshake_timeout, handshake)
        .await
    {
        Some(Ok(s)) => Ok(Box::new(s)),
        Some(Err(e)) => {
            warn!(%remote, %e, "TLS handshake failed");
            Err(e)
        }
        None => {
            warn!(%remote, "TLS handshake timed out");
            Err(io::ErrorKind::TimedOut.into())
        }
    }
}
