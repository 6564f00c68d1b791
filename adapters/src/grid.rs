//! The node: its configuration, listener, dialers and the table of peer
//! links, and [`Grid`], the handle of a running one.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use gridmux_core::auth::link::Membership;
use gridmux_core::auth::{AuthError, Keyring};
use gridmux_core::cluster::ReconnectSchedule;
use gridmux_core::http::Limits;
use gridmux_core::link::{ClientAccess, LinkConfig};
use tracing::info;

use crate::builder::{GridBuilder, MetricsAccess};
use crate::files::FilePlane;
use crate::handler::Handlers;
use crate::log_limit::LogLimit;
use crate::runtime::{self, Runtime};
use crate::shared::{LinkState, SharedLink};
use crate::signal::{CancelSignal, Changes};
use crate::{Error, Peer};
use gridmux_metrics::GridMetrics;

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
    /// At most one warning a second about failed TLS handshakes of
    /// accepted connections (apart: garbage at the port must not hide
    /// failed set-ups).
    pub(crate) tls_log: LogLimit,
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
    /// The TLS identity every connection runs under, if any.
    pub(crate) tls: Option<crate::tls::TlsConfig>,
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
            tls_log: LogLimit::new(Duration::from_secs(1)),
            tls: None,
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
    /// The handle of `node`, started.
    pub(crate) fn running(node: Arc<Node>) -> Self {
        Self {
            _running: Arc::new(Running(node.clone())),
            node,
        }
    }

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

    /// The node's metrics, if it keeps them ([`GridBuilder::metrics`]):
    /// to read histograms back ([`GridMetrics::grid_ttfb`] and friends).
    pub fn metrics(&self) -> Option<Arc<GridMetrics>> {
        self.node.metrics.as_ref().map(|(m, _)| m.clone())
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
