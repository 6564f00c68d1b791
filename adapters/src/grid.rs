//! The node: its configuration, handlers, listener, dialers and the table
//! of peer links; and the builder that starts it.

use std::collections::HashMap;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gridmux_core::auth::link::Membership;
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
use crate::handler::{self, Context, Handlers, Placement};
use crate::log_limit::LogLimit;
use crate::runtime::{self, Runtime};
use crate::shared::{LinkState, SharedLink};
use crate::signal::{CancelSignal, Changes};
use crate::stream::{StreamReceiver, StreamSender};
use crate::{dial, listener, Error, HandlerError, Peer};
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
        let node = Node::new(runtime, config, self.handlers, self.reconnect, slots);
        let node = Arc::new(Node {
            http: self.http,
            max_pending_connections: self.max_pending_connections,
            local_addr,
            files: self.files,
            metrics,
            ..node
        });
        info!(local = %self.local, %local_addr, "grid started");
        node.runtime
            .spawn(Box::pin(listener::accept_loop(node.clone(), listener)));
        for peer in &self.peers {
            if should_dial(&self.local, peer) {
                node.runtime
                    .spawn(Box::pin(dial::dial_loop(node.clone(), peer.clone())));
            }
        }
        Ok(Grid {
            _running: Arc::new(Running(node.clone())),
            node,
        })
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

/// The state of a running node, shared by its tasks and handles.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) runtime: Arc<dyn Runtime>,
    /// Our name.
    pub(crate) local: String,
    /// The configuration of new links (swapped when secrets change; links
    /// keep the one they started with).
    config: RwLock<Arc<LinkConfig>>,
    pub(crate) handlers: Handlers,
    pub(crate) http: Limits,
    /// Cap of `pending_connections`.
    pub(crate) max_pending_connections: usize,
    /// Connections on our port not yet upgraded to links.
    pub(crate) pending_connections: AtomicUsize,
    pub(crate) reconnect: ReconnectSchedule,
    pub(crate) local_addr: SocketAddr,
    /// File routes, their limits and the fetch pool.
    pub(crate) files: FilePlane,
    /// The metrics served at `/metrics`, and who may scrape them.
    pub(crate) metrics: Option<(Arc<GridMetrics>, MetricsAccess)>,
    /// The connected link of each peer (the set of peers is fixed).
    links: HashMap<String, Arc<PeerSlot>>,
    /// At most one warning a second about failed set-ups.
    pub(crate) auth_log: LogLimit,
    /// Every link with a running driver: connected, in its set-up, or a
    /// client's (shutdown closes them all; dropping a secret closes those
    /// it let in).
    live: Mutex<Vec<Arc<SharedLink>>>,
    /// Fires on every link state change.
    pub(crate) changes: Changes,
    /// Set when shutdown begins: no new links or exchanges.
    pub(crate) closing: AtomicBool,
    /// Fires when shutdown's grace period is over: every task stops.
    pub(crate) shutdown: CancelSignal,
    /// Drivers still running.
    pub(crate) live_links: AtomicUsize,
}

/// The current link of one peer. Read on every call, written when links
/// come and go: a read-mostly lock.
#[derive(Debug, Default)]
pub(crate) struct PeerSlot {
    link: RwLock<Option<Arc<SharedLink>>>,
}

impl PeerSlot {
    /// The connected link, if any.
    pub(crate) fn get(&self) -> Option<Arc<SharedLink>> {
        self.link.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, link: Option<Arc<SharedLink>>) -> Option<Arc<SharedLink>> {
        let mut slot = self.link.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *slot, link)
    }
}

impl Node {
    /// A node (or client) that does not listen yet, with an empty slot
    /// for each of `peers`.
    pub(crate) fn new(
        runtime: Arc<dyn Runtime>,
        config: LinkConfig,
        handlers: Handlers,
        reconnect: ReconnectSchedule,
        slots: impl Iterator<Item = (String, Arc<PeerSlot>)>,
    ) -> Self {
        Self {
            runtime,
            local: config.local.clone(),
            config: RwLock::new(Arc::new(config)),
            handlers,
            http: Limits::default(),
            max_pending_connections: 0,
            pending_connections: AtomicUsize::new(0),
            reconnect,
            local_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            files: FilePlane::default(),
            metrics: None,
            links: slots.collect(),
            changes: Changes::default(),
            closing: AtomicBool::new(false),
            shutdown: CancelSignal::new(),
            live_links: AtomicUsize::new(0),
            live: Mutex::new(Vec::new()),
            auth_log: LogLimit::new(Duration::from_secs(1)),
        }
    }

    /// The observer of the node's records.
    pub(crate) fn observer(&self) -> Arc<dyn gridmux_core::observe::Observer> {
        self.config().observer.clone()
    }

    /// The configuration for a new link.
    pub(crate) fn config(&self) -> Arc<LinkConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the secrets new links use.
    /// Applies `edit` to the configuration of new links, then closes the
    /// links whose set-up secret the new configuration no longer accepts
    /// (a dropped secret may have leaked: nothing it let in stays).
    fn reconfigure(&self, edit: impl FnOnce(&mut LinkConfig)) {
        let next = {
            let mut config = self.config.write().unwrap_or_else(|e| e.into_inner());
            let mut next = LinkConfig::clone(&config);
            edit(&mut next);
            *config = Arc::new(next);
            config.clone()
        };
        for link in self.live_links() {
            let mut st = link.lock();
            if revoked(&next, &st) {
                info!(remote = ?st.remote, "closing a link set up with a secret no longer accepted");
                st.link.close(Instant::now());
                st.flush();
            }
        }
    }

    /// Closes a link that just connected with a secret dropped while it
    /// was in its set-up (`reconfigure` only sees connected links); returns
    /// whether it was. Runs with the link locked.
    pub(crate) fn close_if_revoked(&self, st: &mut LinkState) -> bool {
        if !revoked(&self.config(), st) {
            return false;
        }
        info!(remote = ?st.remote, "closing a link set up with a secret dropped meanwhile");
        st.link.close(Instant::now());
        st.flush();
        true
    }

    /// The slot of `peer`, if it is one.
    pub(crate) fn slot(&self, peer: &str) -> Option<Arc<PeerSlot>> {
        self.links.get(peer).cloned()
    }

    /// The connected link in `slot`, failing fast while there is none.
    pub(crate) fn link(&self, slot: &PeerSlot) -> Result<Arc<SharedLink>, Error> {
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::Shutdown);
        }
        slot.get().ok_or(Error::Disconnected)
    }

    /// A link's driver starts: it is live until [`unregister`](Self::unregister).
    /// Once shutdown has begun, it is closed at once.
    pub(crate) fn register(&self, link: &Arc<SharedLink>) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(link.clone());
        if self.closing.load(Ordering::Acquire) {
            close(link);
        }
    }

    /// A link's driver is gone.
    pub(crate) fn unregister(&self, link: &Arc<SharedLink>) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|l| !Arc::ptr_eq(l, link));
    }

    /// The live links (the registry's lock is not held on return).
    fn live_links(&self) -> Vec<Arc<SharedLink>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops accepting work and closes every live link (idempotent).
    fn begin_shutdown(&self) {
        if !self.closing.swap(true, Ordering::AcqRel) {
            info!(local = %self.local, "grid shutting down");
        }
        for link in self.live_links() {
            close(&link);
        }
        self.changes.notify();
    }

    /// Stops every task of the node now (idempotent).
    pub(crate) fn stop_now(&self) {
        self.begin_shutdown();
        self.files.pool.clear();
        self.shutdown.cancel();
        self.changes.notify();
    }

    /// A link to `remote` connected (it authenticated fully); it replaces
    /// an older one (the peer restarted before we noticed the old link die).
    pub(crate) fn link_connected(&self, remote: &str, link: &Arc<SharedLink>) {
        // Installed under the link's lock, as `link_closed` runs: a link
        // that failed in the round it connected is never installed (it
        // would look connected while every call fails).
        let mut st = link.lock();
        if st.link.is_closed() || self.close_if_revoked(&mut st) {
            return;
        }
        let old = self
            .links
            .get(remote)
            .and_then(|slot| slot.replace(Some(link.clone())));
        drop(st);
        if let Some(old) = old.filter(|old| !Arc::ptr_eq(old, link)) {
            let mut st = old.lock();
            st.link.close(Instant::now());
            st.flush();
        }
        if self.closing.load(Ordering::Acquire) {
            let mut st = link.lock();
            st.link.close(Instant::now());
            st.flush();
        }
        self.changes.notify();
    }

    /// A link to `remote` closed. Called with that link locked (slot locks
    /// are never held while a link is locked elsewhere).
    pub(crate) fn link_closed(&self, remote: &str, link: &Arc<SharedLink>) {
        if let Some(slot) = self.links.get(remote) {
            let mut current = slot.link.write().unwrap_or_else(|e| e.into_inner());
            if current.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
                *current = None;
            }
        }
        self.changes.notify();
    }

    /// The peers with a connected link.
    fn connected(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .links
            .iter()
            .filter(|(_, slot)| slot.get().is_some())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// Completes at `deadline`.
    pub(crate) async fn sleep_until(&self, deadline: Instant) {
        runtime::sleep_until(&*self.runtime, deadline).await;
    }

    /// Runs `future` until it completes or `limit` passes.
    pub(crate) async fn timeout<T>(
        &self,
        limit: Duration,
        future: impl Future<Output = T>,
    ) -> Option<T> {
        runtime::timeout(&*self.runtime, limit, future).await
    }
}

/// A running node of the grid. Cheap to clone; every clone is the same
/// node. Call [`shutdown`](Self::shutdown) to stop it gracefully; when the
/// last clone is dropped without it, the node stops at once (links close
/// without a grace period, every task ends, the port is freed).
#[derive(Debug, Clone)]
pub struct Grid {
    /// Stops the node when the last handle goes.
    _running: Arc<Running>,
    node: Arc<Node>,
}

impl Grid {
    /// A builder for node `local` of the cluster `peers` (which includes
    /// `local`). Names are `host:port` strings, the same on every node.
    pub fn builder(
        local: impl Into<String>,
        peers: impl IntoIterator<Item = impl Into<String>>,
    ) -> GridBuilder {
        GridBuilder::new(local.into(), peers.into_iter().map(Into::into).collect())
    }

    /// The bearer token that scrapes `/metrics` (of the current secret;
    /// any secret's token is accepted during a change of secret).
    pub fn metrics_token(&self) -> String {
        gridmux_core::auth::metrics::token(&self.node.config().keys)
    }

    /// The node's metrics as OpenMetrics text, if it keeps them
    /// ([`GridBuilder::metrics`]).
    pub fn metrics_text(&self) -> Option<String> {
        self.node.metrics.as_ref().map(|(m, _)| m.encode())
    }

    /// This node's name.
    pub fn local(&self) -> &str {
        &self.node.local
    }

    /// Replaces the cluster's secrets, current first, for links set up
    /// from now on. Links already up stay up, except those set up with a
    /// secret no longer in the list: a dropped secret may have leaked, so
    /// they are closed (and re-dialled with a listed secret). A rolling
    /// change across the cluster, one node at a time, never leaves a pair
    /// unable to connect: add the new secret second on every node, then
    /// make it first on every node, then drop the old one.
    pub fn set_secrets<S: AsRef<[u8]>>(
        &self,
        secrets: impl IntoIterator<Item = S>,
    ) -> Result<(), AuthError> {
        let keys = Arc::new(Keyring::new(secrets)?);
        self.node.reconfigure(|c| c.keys = keys);
        Ok(())
    }

    /// Replaces which clients may connect, for links set up from now on;
    /// client links set up with a secret no longer accepted are closed.
    pub fn set_client_access(&self, access: ClientAccess) {
        self.node.reconfigure(|c| c.clients = access);
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.node.local_addr
    }

    /// A handle for calling `name`; fails for names outside the cluster
    /// and for ourselves.
    pub fn peer(&self, name: &str) -> Result<Peer, Error> {
        let slot = self
            .node
            .slot(name)
            .ok_or_else(|| Error::UnknownPeer(name.to_owned()))?;
        Ok(Peer::new(self.node.clone(), name.to_owned(), slot))
    }

    /// The peers a link is up with, sorted.
    pub fn connected_peers(&self) -> Vec<String> {
        self.node.connected()
    }

    /// Waits until every peer is connected, or `timeout` passes.
    pub async fn wait_all_connected(&self, timeout: Duration) -> Result<(), Error> {
        let node = &self.node;
        let total = node.links.len();
        let all = node.changes.wait_until(|| node.connected().len() == total);
        node.timeout(timeout, all).await.ok_or(Error::Timeout)
    }

    /// Stops the node: no new links or exchanges; every link is closed
    /// (in-flight exchanges end with [`Error::Disconnected`] on both sides,
    /// handlers are cancelled) and its last bytes flushed, for at most
    /// `grace`; then every task of the node stops.
    pub async fn shutdown(&self, grace: Duration) {
        self.node.shutdown(grace).await;
    }
}

impl Node {
    /// See [`Grid::shutdown`]. Every call does the whole job, so a call
    /// dropped half-way (a `timeout` around it) leaves nothing for later
    /// calls to wait on.
    pub(crate) async fn shutdown(&self, grace: Duration) {
        self.begin_shutdown();
        let drained = self
            .changes
            .wait_until(|| self.live_links.load(Ordering::Acquire) == 0);
        let _ = self.timeout(grace, drained).await;
        self.stop_now();
    }
}

/// Whether `config` no longer accepts the secret a connected link was set
/// up with.
fn revoked(config: &LinkConfig, st: &LinkState) -> bool {
    let keys = match st.membership {
        Some(Membership::Member) => Some(&config.keys),
        Some(Membership::Client) => config.clients.keys(&config.keys),
        None => return false,
    };
    !st.link
        .key_id()
        .is_some_and(|id| keys.is_some_and(|k| k.contains(&id)))
}

/// Closes `link` (its exchanges end; its driver flushes and stops).
fn close(link: &SharedLink) {
    let mut st = link.lock();
    st.link.close(Instant::now());
    st.flush();
}

/// The owner of a running node's tasks: when the last [`Grid`] or
/// [`Client`](crate::Client) handle is dropped without a shutdown, the
/// node stops at once (its links close, its accept and dial loops end and
/// its port is freed).
#[derive(Debug)]
pub(crate) struct Running(pub(crate) Arc<Node>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.stop_now();
    }
}
