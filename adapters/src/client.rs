//! A client: a process that is not a cluster member (a tool, a test)
//! connecting to one node to make requests and open streams. It proves
//! itself like a member does, but with its own keys; the node serves it
//! and never calls it or dials it.

use std::sync::Arc;
use std::time::Duration;

use gridmux_core::auth::link::Membership;
use gridmux_core::auth::{AuthError, Keyring};
use gridmux_core::cluster::ReconnectSchedule;
use gridmux_core::link::LinkConfig;

use crate::builder::{new_link_config, ConfigEdit};
use crate::files::FileLimits;
use crate::grid::{Node, PeerSlot, Running};
use crate::handler::Handlers;
use crate::runtime::Runtime;
use crate::tls::TlsConfig;
use crate::{dial, Error, Peer, StartError};

/// Builds a [`Client`].
pub struct ClientBuilder {
    name: String,
    node: String,
    keys: Option<Result<Keyring, AuthError>>,
    configure: Vec<ConfigEdit>,
    reconnect: ReconnectSchedule,
    link: bool,
    file_limits: FileLimits,
    tls: Option<TlsConfig>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("name", &self.name)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The secret the node lets clients in with (the cluster's, unless the
    /// node was given separate client secrets).
    pub fn secret(self, secret: impl AsRef<[u8]>) -> Self {
        self.secrets([secret])
    }

    /// Secrets, current first: the client proves with the first and
    /// accepts a node that proves with any.
    pub fn secrets<S: AsRef<[u8]>>(mut self, secrets: impl IntoIterator<Item = S>) -> Self {
        self.keys = Some(Keyring::new(secrets));
        self
    }

    /// Adjusts the link configuration (limits and timeouts).
    pub fn configure(mut self, f: impl FnOnce(&mut LinkConfig) + Send + 'static) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    /// When failed connection attempts are retried (default: 1–2 s).
    pub fn reconnect(mut self, schedule: ReconnectSchedule) -> Self {
        self.reconnect = schedule;
        self
    }

    /// Whether to keep a link to the node (default yes). A client that
    /// only fetches files ([`Peer::fetch`]) needs none: its requests are
    /// signed one by one.
    pub fn link(mut self, keep: bool) -> Self {
        self.link = keep;
        self
    }

    /// Sets the limits of its fetches (the stall timeout, the validity of
    /// their signatures).
    pub fn file_limits(mut self, limits: FileLimits) -> Self {
        self.file_limits = limits;
        self
    }

    /// Connects over TLS 1.3 with this identity (the node must run TLS;
    /// with mutual TLS the node checks this certificate).
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Starts connecting (and re-connecting whenever the link is lost)
    /// on `runtime`.
    pub fn start(self, runtime: impl Runtime) -> Result<Client, StartError> {
        let keys = Arc::new(self.keys.ok_or(StartError::NoSecret)??);
        let peers = vec![self.name.clone(), self.node.clone()];
        let mut config = new_link_config(&self.name, peers, keys, self.configure);
        config.membership = Membership::Client;
        let runtime: Arc<dyn Runtime> = Arc::new(runtime);
        let slot = Arc::new(PeerSlot::default());
        let mut node = Node::new(
            runtime,
            config,
            Handlers::default(),
            self.reconnect,
            std::iter::once((self.node.clone(), slot.clone())),
        );
        node.files.limits = self.file_limits;
        node.tls = self.tls;
        let node = Arc::new(node);
        node.runtime
            .spawn(Box::pin(crate::tls::watch_files(node.clone())));
        if self.link {
            node.runtime
                .spawn(Box::pin(dial::dial_loop(node.clone(), self.node.clone())));
        }
        let peer = Peer::new(node.clone(), self.node, slot);
        Ok(Client {
            _running: Arc::new(Running(node.clone())),
            node,
            peer,
        })
    }
}

/// A connection to one node as a client. Cheap to clone. Call
/// [`shutdown`](Self::shutdown) to stop it; dropping the last clone stops
/// it at once.
///
/// ```no_run
/// # async fn run() -> Result<(), gridmux::Error> {
/// use std::time::Duration;
/// use gridmux::{runtime::TokioRuntime, Client};
///
/// let client = Client::builder("ops-tool", "10.0.0.1:9000")
///     .secret("cluster secret")
///     .start(TokioRuntime::current())
///     .expect("a secret was given");
/// client.wait_connected(Duration::from_secs(5)).await?;
/// let answer = client.peer().request(1, "hello").await?;
/// client.shutdown(Duration::from_secs(1)).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    /// Stops the node when the last handle goes.
    _running: Arc<Running>,
    node: Arc<Node>,
    peer: Peer,
}

impl Client {
    /// A client named `name` (for the node's logs; any name but a cluster
    /// member's) of the node at `node` (`host:port`).
    pub fn builder(name: impl Into<String>, node: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            name: name.into(),
            node: node.into(),
            keys: None,
            configure: Vec::new(),
            reconnect: ReconnectSchedule::default(),
            link: true,
            file_limits: FileLimits::default(),
            tls: None,
        }
    }

    /// The node, for requests and streams.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Waits until the link is up, or `timeout` passes.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), Error> {
        self.peer.wait_connected(timeout).await
    }

    /// Closes the link (exchanges in flight end with
    /// [`Error::Disconnected`]) and stops re-connecting; waits at most
    /// `grace` for the last bytes to go out.
    pub async fn shutdown(&self, grace: Duration) {
        self.node.shutdown(grace).await;
    }
}
