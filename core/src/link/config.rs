//! Configuration of a link: identity, peers, handlers, timings and limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::link::Membership;
use crate::auth::Keyring;
use crate::wire::SubrouteId;
use crate::ws;

/// Room in a WebSocket message beyond the largest payload: the envelope,
/// its trailers, and a merged batch that one large message overflows.
const WS_OVERHEAD: usize = 64 * 1024;

/// The upgrade path of the grid.
pub const DEFAULT_PATH: &str = "/gridmux/v1";

/// What a registered handler serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerKind {
    /// Single requests.
    Request,
    /// Streams; the caller may send up to `in_capacity` messages before
    /// the handler's consumer takes some (0: the stream has no input).
    Stream {
        /// The server's receive window.
        in_capacity: u32,
    },
}

/// Why a handler could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Handler id 0 is reserved.
    #[error("handler id 0 is reserved")]
    ReservedId,
    /// The id (and sub-route) is already registered for that kind.
    #[error("handler {0} is already registered")]
    AlreadyExists(u8),
}

/// The handlers a node serves, by id and optional sub-route. This is the
/// protocol's view (which ids exist and their windows); the functions that
/// run them live with the application.
#[derive(Debug, Clone, Default)]
pub struct HandlerTable {
    requests: HashMap<(u8, Option<SubrouteId>), ()>,
    streams: HashMap<(u8, Option<SubrouteId>), u32>,
}

impl HandlerTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `id` (with `subroute`, if any) as `kind`.
    pub fn register(
        &mut self,
        id: u8,
        subroute: Option<&str>,
        kind: HandlerKind,
    ) -> Result<(), RegisterError> {
        if id == 0 {
            return Err(RegisterError::ReservedId);
        }
        let key = (id, subroute.map(|s| SubrouteId::new(id, s)));
        let fresh = match kind {
            HandlerKind::Request => self.requests.insert(key, ()).is_none(),
            HandlerKind::Stream { in_capacity } => self.streams.insert(key, in_capacity).is_none(),
        };
        fresh.then_some(()).ok_or(RegisterError::AlreadyExists(id))
    }

    /// Whether a request handler is registered.
    pub fn has_request(&self, id: u8, subroute: Option<SubrouteId>) -> bool {
        self.requests.contains_key(&(id, subroute))
    }

    /// The receive window of a stream handler, if registered.
    pub fn stream_window(&self, id: u8, subroute: Option<SubrouteId>) -> Option<u32> {
        self.streams.get(&(id, subroute)).copied()
    }
}

/// Everything a [`Link`](super::Link) needs to know. Shared between the
/// links of a node behind an `Arc`.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Our own name (`host:port`), as the peers know it.
    pub local: String,
    /// Every node of the cluster, ourselves included.
    pub peers: Vec<String>,
    /// Random id of this process; peers see it change on restart.
    pub node_id: [u8; 16],
    /// The HTTP path of the upgrade.
    pub path: String,
    /// The cluster's secrets (current first): proves this node and checks
    /// its peers.
    pub keys: Arc<Keyring>,
    /// What this side is when it dials: a member of the cluster, or a
    /// client (a tool that calls nodes and is never called).
    pub membership: Membership,
    /// Which clients the acceptor lets in.
    pub clients: ClientAccess,
    /// The handlers we serve.
    pub handlers: HandlerTable,
    /// WebSocket limits and timeouts.
    pub ws: ws::Config,
    /// Append an xxh3 CRC to every message (off only when TLS protects
    /// the link).
    pub crc: bool,
    /// Most time a dialer's TCP connect may take (DESIGN §5.5: 2 s).
    pub connect_timeout: Duration,
    /// From creation to the accepted `Connect` (5 s).
    pub handshake_timeout: Duration,
    /// Deadline of a request whose caller gives none.
    pub default_request_timeout: Duration,
    /// Link ping period.
    pub ping_interval: Duration,
    /// No pong for this long closes the link.
    pub pong_timeout: Duration,
    /// Output pending and not taken by the writer for this long closes
    /// the link.
    pub write_stall_timeout: Duration,
    /// A caller pings its streams this often.
    pub stream_ping_interval: Duration,
    /// A caller fails a stream that showed no sign of life for this long.
    pub stream_ping_timeout: Duration,
    /// A server cancels a stream not pinged for this long.
    pub stream_idle_timeout: Duration,
    /// Largest clock difference accepted in `Connect` (checked once the
    /// dialer has proven itself, so the log can say why).
    pub max_clock_skew: Duration,
    /// Largest clock difference accepted by the pre-upgrade filter.
    pub max_upgrade_skew: Duration,
    /// Largest payload of one message.
    pub max_message_size: usize,
    /// Receives the timing records of what the link serves and calls
    /// (default: none, and then no bookkeeping is kept).
    pub observer: Arc<dyn crate::observe::Observer>,
    /// Most exchanges we may have open at once (requests and streams).
    pub max_open_muxes: usize,
    /// Most streams the peer may have open with us.
    pub max_served_streams: usize,
    /// Most requests we serve at once; past it callers get `Overloaded`.
    pub max_served_requests: usize,
    /// Most bytes queued for sending; past it new requests and stream
    /// messages are refused, served requests are refused with
    /// `Overloaded`, and answers over a few hundred bytes wait
    /// ([`Link::respond`](super::Link::respond) returns `QueueFull`).
    pub max_queued_bytes: usize,
    /// Inbound byte budget: most payload bytes of the peer's exchanges
    /// held for the application (a served request's until it ends; a
    /// stream message's until consumed; a served stream's open payload
    /// until its handler returns). Past it new requests and streams are
    /// refused with `Overloaded` (one is always admitted when nothing is
    /// held); a served-stream message that would pass twice it sheds the
    /// stream holding the most, then if needed its own (`Overloaded`).
    /// What we hold of our own streams is bounded by the windows we chose.
    pub max_inbound_bytes: usize,
    /// Most messages in one merged frame.
    pub merge_max_messages: usize,
    /// Stop merging when the merged frame reaches this size.
    pub merge_max_bytes: usize,
}

impl LinkConfig {
    /// Defaults (MinIO's timings) for node `local` of the cluster `peers`.
    pub fn new(
        local: impl Into<String>,
        peers: Vec<String>,
        node_id: [u8; 16],
        keys: Arc<Keyring>,
    ) -> Self {
        let max_message_size = 16 << 20;
        Self {
            local: local.into(),
            peers,
            node_id,
            path: DEFAULT_PATH.to_owned(),
            keys,
            membership: Membership::Member,
            clients: ClientAccess::ClusterSecret,
            handlers: HandlerTable::new(),
            ws: ws::Config {
                max_frame_size: max_message_size + WS_OVERHEAD,
                max_message_size: max_message_size + WS_OVERHEAD,
                ..ws::Config::default()
            },
            crc: true,
            connect_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(5),
            default_request_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(10),
            pong_timeout: Duration::from_secs(20),
            write_stall_timeout: Duration::from_secs(4),
            stream_ping_interval: Duration::from_secs(15),
            stream_ping_timeout: Duration::from_secs(30),
            stream_idle_timeout: Duration::from_secs(60),
            max_clock_skew: Duration::from_secs(5 * 60),
            max_upgrade_skew: Duration::from_secs(15 * 60),
            max_message_size,
            observer: Arc::new(crate::observe::NoObserver),
            max_open_muxes: 100_000,
            max_served_streams: 10_000,
            max_served_requests: 10_000,
            max_queued_bytes: 64 << 20,
            max_inbound_bytes: 64 << 20,
            merge_max_messages: 50,
            merge_max_bytes: 32 * 1024 - 1024,
        }
    }

    /// Sets the WebSocket message limit from `max_message_size`, leaving
    /// room for the envelope and trailers.
    pub fn sync_ws_limits(&mut self) {
        let max = self.max_message_size + WS_OVERHEAD;
        self.ws.max_frame_size = max;
        self.ws.max_message_size = max;
    }
}

/// Which clients (tools that are not cluster members) an acceptor lets in.
#[derive(Debug, Clone, Default)]
pub enum ClientAccess {
    /// None: every client set-up is refused.
    Refused,
    /// Clients proving with a secret of the cluster's keyring.
    #[default]
    ClusterSecret,
    /// Clients proving with a secret of this separate keyring (the cluster
    /// secrets do not let clients in).
    Keyring(Arc<Keyring>),
}

impl ClientAccess {
    /// The keyring that checks clients, if clients are allowed.
    pub fn keys<'a>(&'a self, cluster: &'a Arc<Keyring>) -> Option<&'a Arc<Keyring>> {
        match self {
            Self::Refused => None,
            Self::ClusterSecret => Some(cluster),
            Self::Keyring(keys) => Some(keys),
        }
    }
}

/// Options of a stream a caller opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOpts {
    /// When the stream times out; `None` for never (kept alive by pings).
    pub deadline: Option<std::time::Instant>,
    /// How many server messages we accept before granting credits.
    pub window: u32,
    /// Whether we send messages (otherwise the open carries EOF).
    pub input: bool,
}

impl Default for StreamOpts {
    fn default() -> Self {
        Self {
            deadline: None,
            window: 16,
            input: true,
        }
    }
}
