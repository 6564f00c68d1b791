//! [`GridBuilder`]: a node's configuration, handlers and routes, and
//! starting it.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use bytes::Bytes;
use gridmux_core::auth::{AuthError, Keyring};
use gridmux_core::cluster::{should_dial, ReconnectSchedule};
use gridmux_core::http::Limits;
use gridmux_core::link::{ClientAccess, LinkConfig, RegisterError};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::info;

use crate::files::{FileHandler, FileLimits, FilePlane};
use crate::grid::{Grid, Node};
use crate::handler::{self, Context, Handlers, Placement};
use crate::runtime::Runtime;
use crate::stream::{StreamReceiver, StreamSender};
use crate::tls::TlsConfig;
use crate::{dial, listener, HandlerError};
use gridmux_metrics::GridMetrics;

/// Who may scrape a node's `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsAccess {
    /// A scraper with the bearer token of the cluster's secret
    /// ([`Grid::metrics_token`]); others get `401`.
    #[default]
    Token,
    /// Anyone who can reach the port.
    Public,
}

/// Why a grid did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A handler could not be registered.
    #[error("handler registration: {0}")]
    Register(#[from] RegisterError),
    /// The local name is not in the peer list.
    #[error("the local node {0:?} is not in the peer list")]
    NotAPeer(String),
    /// The local name is not a socket address and no listener was given.
    #[error("cannot listen on {0:?}: not a socket address")]
    BadAddress(String),
    /// No cluster secret was given.
    #[error("no cluster secret: call `secret` or `secrets`")]
    NoSecret,
    /// A secret list was empty or held an empty secret.
    #[error("secrets: {0}")]
    Secret(#[from] AuthError),
    /// A file route name is not valid.
    #[error("invalid file route {0:?}: use 1-64 of A-Z a-z 0-9 . _ -")]
    FileRoute(String),
    /// Binding or adopting the listener failed.
    #[error("listener: {0}")]
    Listen(#[from] std::io::Error),
}

/// A change to the link configuration, applied at start.
pub(crate) type ConfigEdit = Box<dyn FnOnce(&mut LinkConfig) + Send>;

/// Builds and starts a [`Grid`].
pub struct GridBuilder {
    local: String,
    peers: Vec<String>,
    keys: Option<Result<Keyring, AuthError>>,
    clients: Option<Result<ClientAccess, AuthError>>,
    handlers: Handlers,
    error: Option<RegisterError>,
    listener: Option<TcpListener>,
    configure: Vec<ConfigEdit>,
    reconnect: ReconnectSchedule,
    http: Limits,
    max_pending_connections: usize,
    files: FilePlane,
    bad_route: Option<String>,
    metrics: Option<MetricsAccess>,
    tls: Option<TlsConfig>,
}

impl std::fmt::Debug for GridBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GridBuilder")
            .field("local", &self.local)
            .field("peers", &self.peers)
            .field("handlers", &self.handlers)
            .finish_non_exhaustive()
    }
}

impl GridBuilder {
    pub(crate) fn new(local: String, peers: Vec<String>) -> Self {
        Self {
            local,
            peers,
            keys: None,
            clients: None,
            handlers: Handlers::default(),
            error: None,
            listener: None,
            configure: Vec::new(),
            reconnect: ReconnectSchedule::default(),
            http: Limits::default(),
            max_pending_connections: 1024,
            files: FilePlane::default(),
            bad_route: None,
            metrics: None,
            tls: None,
        }
    }

    /// The cluster's secret: links are set up only between nodes that
    /// prove they hold it (see `gridmux_core::auth`).
    pub fn secret(self, secret: impl AsRef<[u8]>) -> Self {
        self.secrets([secret])
    }

    /// The cluster's secrets, current first: the node proves with the
    /// first and accepts any (rotation without downtime; see
    /// [`Grid::set_secrets`]).
    pub fn secrets<S: AsRef<[u8]>>(mut self, secrets: impl IntoIterator<Item = S>) -> Self {
        self.keys = Some(Keyring::new(secrets));
        self
    }

    /// Which clients (tools such as `gridmux call` that are not cluster
    /// members) may connect: by default those holding a cluster secret.
    /// Clients call this node and are never called.
    pub fn clients(mut self, access: ClientAccess) -> Self {
        self.clients = Some(Ok(access));
        self
    }

    /// Lets in clients that prove with one of these secrets (not with the
    /// cluster's), current first.
    pub fn client_secrets<S: AsRef<[u8]>>(mut self, secrets: impl IntoIterator<Item = S>) -> Self {
        self.clients = Some(Keyring::new(secrets).map(|k| ClientAccess::Keyring(Arc::new(k))));
        self
    }

    /// Serves on this already bound listener instead of binding the local
    /// name (lets tests bind port 0 before naming the nodes).
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Runs every connection of the node over TLS 1.3 with this identity:
    /// links (both ways), the HTTP planes on its port, and its fetches.
    /// Every node of the cluster needs one (a plain peer cannot link).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Adjusts the link configuration: limits and timeouts (see
    /// [`LinkConfig`]). Identity, peers and handlers are set by the builder.
    pub fn configure(mut self, f: impl FnOnce(&mut LinkConfig) + Send + 'static) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    /// When failed dial attempts are retried (default: 1–2 s).
    pub fn reconnect(mut self, schedule: ReconnectSchedule) -> Self {
        self.reconnect = schedule;
        self
    }

    /// Limits of the HTTP request heads on the node's port.
    pub fn http_limits(mut self, limits: Limits) -> Self {
        self.http = limits;
        self
    }

    /// Serves `route` of the file plane with `handler`
    /// (`GET`/`HEAD /gridmux/v1/files/<route>?key=…`, signed by a holder of
    /// the cluster secret). A route is 1–64 of `A-Z a-z 0-9 . _ -`; an
    /// invalid one makes [`start`](Self::start) fail. A directory is served
    /// with a [`DirResolver`](gridmux_sendfile::DirResolver).
    pub fn files(mut self, route: &str, handler: impl FileHandler) -> Self {
        if !gridmux_core::http::files::valid_route(route) {
            self.bad_route.get_or_insert_with(|| route.to_owned());
        }
        let label = format!("files/{route}").into();
        let handler = Arc::new(handler);
        (self.files.routes).insert(route.to_owned(), crate::files::Route { handler, label });
        self
    }

    /// Receives the node's timing records (requests served and made, HTTP
    /// answers with their time to first byte, link events); see
    /// `gridmux_core::observe` and the `gridmux-metrics` crate.
    pub fn observer(self, observer: Arc<dyn gridmux_core::observe::Observer>) -> Self {
        self.configure(move |c| c.observer = observer)
    }

    /// Keeps Prometheus metrics of the node (`gridmux-metrics`) and serves
    /// them at `GET /metrics` as OpenMetrics text: with
    /// [`MetricsAccess::Token`], to a scraper sending `Authorization:
    /// Bearer <token>` ([`Grid::metrics_token`]); with
    /// [`MetricsAccess::Public`], to anyone. It is the node's observer
    /// (it replaces one set with [`observer`](Self::observer)).
    pub fn metrics(mut self, access: MetricsAccess) -> Self {
        self.metrics = Some(access);
        self
    }

    /// Sets the file plane's limits (transfers at once, send timeout).
    pub fn file_limits(mut self, limits: FileLimits) -> Self {
        self.files.limits = limits;
        self
    }

    /// Most connections on the node's port that have not become grid links
    /// yet (HTTP requests, upgrades in progress); more are closed at once
    /// (default 1024). Bounds what idle or slow clients can hold.
    pub fn max_pending_connections(mut self, n: usize) -> Self {
        self.max_pending_connections = n.max(1);
        self
    }

    fn record(mut self, result: Result<(), RegisterError>) -> Self {
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Registers a request handler on raw bytes. It runs as a task of its
    /// own, so it may block (read a file, take a lock) without holding up
    /// the link, which carries all traffic between two nodes.
    pub fn handler<F, Fut>(self, id: u8, f: F) -> Self
    where
        F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, HandlerError>> + Send + 'static,
    {
        self.handler_at(id, None, f)
    }

    /// Registers a request handler on raw bytes under a sub-route.
    pub fn handler_at<F, Fut>(mut self, id: u8, subroute: Option<&str>, f: F) -> Self
    where
        F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, HandlerError>> + Send + 'static,
    {
        let f = handler::raw(f);
        let result = self
            .handlers
            .add_request(id, subroute, f, Placement::Spawned);
        self.record(result)
    }

    /// Registers a request handler that never blocks (it answers from
    /// memory, or awaits without blocking): the link's own task polls it
    /// first, so an answer given at once costs no task switch and joins
    /// the same write. A handler that blocks here stalls its whole link.
    pub fn inline_handler<F, Fut>(mut self, id: u8, f: F) -> Self
    where
        F: Fn(Context, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, HandlerError>> + Send + 'static,
    {
        let f = handler::raw(f);
        let result = self.handlers.add_request(id, None, f, Placement::Inline);
        self.record(result)
    }

    /// Registers a typed request handler (MessagePack via rmp-serde).
    pub fn typed_handler<Req, Resp, F, Fut>(mut self, id: u8, f: F) -> Self
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        F: Fn(Context, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
    {
        let f = handler::typed(f);
        let result = self.handlers.add_request(id, None, f, Placement::Spawned);
        self.record(result)
    }

    /// Registers a stream handler. The caller may send up to `in_capacity`
    /// messages before the handler takes some (0: the stream has no input).
    pub fn stream_handler<F, Fut>(self, id: u8, in_capacity: u32, f: F) -> Self
    where
        F: Fn(Context, Bytes, StreamReceiver, StreamSender) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.stream_handler_at(id, None, in_capacity, f)
    }

    /// Registers a stream handler under a sub-route.
    pub fn stream_handler_at<F, Fut>(
        mut self,
        id: u8,
        subroute: Option<&str>,
        in_capacity: u32,
        f: F,
    ) -> Self
    where
        F: Fn(Context, Bytes, StreamReceiver, StreamSender) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let result = self
            .handlers
            .add_stream(id, subroute, in_capacity, handler::stream(f));
        self.record(result)
    }

    /// Starts the node on `runtime`: listens, and dials the peers this node
    /// dials (the other side dials the rest).
    pub fn start(self, runtime: impl Runtime) -> Result<Grid, StartError> {
        if let Some(e) = self.error {
            return Err(e.into());
        }
        if let Some(route) = self.bad_route {
            return Err(StartError::FileRoute(route));
        }
        if !self.peers.contains(&self.local) {
            return Err(StartError::NotAPeer(self.local));
        }
        let keys = Arc::new(self.keys.ok_or(StartError::NoSecret)??);
        let clients = self.clients.transpose()?.unwrap_or_default();
        let listener = match self.listener {
            Some(l) => l,
            None => {
                let addr: SocketAddr = self
                    .local
                    .parse()
                    .map_err(|_| StartError::BadAddress(self.local.clone()))?;
                TcpListener::bind(addr)?
            }
        };
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let runtime: Arc<dyn Runtime> = Arc::new(runtime);
        let listener = runtime.adopt_listener(listener)?;
        let mut config = new_link_config(&self.local, self.peers.clone(), keys, self.configure);
        let metrics = self.metrics.map(|access| {
            let routes: Vec<&String> = self.files.routes.keys().collect();
            let metrics = Arc::new(GridMetrics::new(&self.peers, &routes));
            config.observer = metrics.clone();
            (metrics, access)
        });
        config.handlers = self.handlers.table.clone();
        config.clients = clients;
        let slots = (self.peers.iter())
            .filter(|p| **p != self.local)
            .map(|p| (p.clone(), Arc::default()));
        let mut node = Node::new(runtime, config, self.handlers, self.reconnect, slots);
        node.http = self.http;
        node.max_pending_connections = self.max_pending_connections;
        node.local_addr = local_addr;
        node.files = self.files;
        node.metrics = metrics;
        node.tls = self.tls;
        let node = Arc::new(node);
        info!(local = %self.local, %local_addr, "grid started");
        node.runtime
            .spawn(Box::pin(listener::accept_loop(node.clone(), listener)));
        node.runtime
            .spawn(Box::pin(crate::tls::watch_files(node.clone())));
        for peer in &self.peers {
            if should_dial(&self.local, peer) {
                node.runtime
                    .spawn(Box::pin(dial::dial_loop(node.clone(), peer.clone())));
            }
        }
        Ok(Grid::running(node))
    }
}

/// The link configuration of a node or client named `local`: defaults,
/// then the user's edits, then what the builder owns.
pub(crate) fn new_link_config(
    local: &str,
    peers: Vec<String>,
    keys: Arc<Keyring>,
    edits: Vec<ConfigEdit>,
) -> LinkConfig {
    let mut node_id = [0; 16];
    StdRng::from_os_rng().fill_bytes(&mut node_id);
    let mut config = LinkConfig::new(local, peers.clone(), node_id, keys);
    let default_max = config.max_message_size;
    for f in edits {
        f(&mut config);
    }
    if config.max_message_size != default_max {
        // The WebSocket limits follow the message limit.
        config.sync_ws_limits();
    }
    config.local = local.to_owned();
    config.peers = peers;
    config.node_id = node_id;
    config
}
