//! Prometheus metrics of a gridmux node: [`GridMetrics`] receives the
//! node's timing records (it is a `gridmux_core::observe::Observer`) and
//! writes them as OpenMetrics text with `prometheus-client`.
//!
//! Label sets stay bounded: handlers are ids (at most 255), peers are the
//! cluster's names given at construction (any other caller, a client, is
//! `peer="client"`), HTTP routes are the node's fixed ones plus its
//! registered file routes given at construction (anything else is
//! `route="other"`), statuses are the node's own answers. An observation
//! allocates nothing.
//!
//! ```
//! use std::time::Duration;
//! use gridmux_core::observe::{Observer, Outcome, RequestServed};
//! use gridmux_metrics::GridMetrics;
//!
//! let metrics = GridMetrics::new(&["10.0.0.1:9000", "10.0.0.2:9000"], &["files"]);
//! metrics.request_served(&RequestServed {
//!     peer: "10.0.0.2:9000", handler: 1, subroute: None, outcome: Outcome::Ok,
//!     ttfb: Some(Duration::from_micros(80)), duration: Duration::from_micros(80),
//!     bytes_in: 5, bytes_out: 5,
//! });
//! let text = metrics.encode();
//! assert!(text.contains("gridmux_ttfb_seconds_count{plane=\"grid\",handler=\"1\",route=\"\"} 1"));
//! assert!(text.ends_with("# EOF\n"));
//! ```

use std::sync::{Arc, Mutex, OnceLock};

use gridmux_core::observe::{
    CallMade, HttpServed, LinkEvent, Observer, Outcome, RequestServed, StreamServed,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

mod labels;
mod names;
mod routes;
mod snapshot;
mod timing;

use labels::{
    HandlerDirection, HandlerLabel, HandlerOutcome, HttpLabels, PathLabel, PeerDirection,
    PeerLabel, PeerReason, PeerWhat, RouteBody, TtfbLabels,
};
use names::NameMap;
use routes::{HttpFamilies, RouteSlot};
pub use snapshot::Snapshot;

use timing::{NewHistogram, Sizes, Timing};

/// The content type of [`GridMetrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Histogram buckets in seconds: 25 µs to 10 s, fine enough for RPC
/// inside a cluster; MinIO's TTFB buckets (0.05 … 10) are among them.
pub const BUCKETS: [f64; 18] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of `gridmux_link_batch_messages`: grid messages per WebSocket
/// message (the default batch limit, 50, is one of them).
pub const BATCH_BUCKETS: [u64; 10] = [1, 2, 4, 8, 16, 32, 50, 64, 128, 256];

/// The metrics of one handler id, resolved once (the hot path takes no
/// family lock and hashes no label set).
#[derive(Debug)]
struct HandlerHandles {
    ttfb: Timing,
    duration: Timing,
    served: [Counter; Outcome::ALL.len()],
    calls: [Counter; Outcome::ALL.len()],
    call_latency: Timing,
    stream_ttfb: Timing,
    stream_duration: Timing,
    streams: [Counter; Outcome::ALL.len()],
    stream_msgs_in: Counter,
    stream_msgs_out: Counter,
}

/// A peer's byte counters and batch sizes, resolved once.
#[derive(Debug)]
struct PeerHandles {
    bytes_in: Counter,
    bytes_out: Counter,
    batch: Sizes,
}

impl PeerHandles {
    /// Counts payload bytes of an exchange served.
    fn count_payload(&self, bytes_in: u64, bytes_out: u64) {
        self.bytes_in.inc_by(bytes_in);
        self.bytes_out.inc_by(bytes_out);
    }
}

/// A node's metrics. Cheap to share (`Arc`); see the crate docs.
#[derive(Debug)]
pub struct GridMetrics {
    registry: Registry,
    peers: NameMap<Arc<str>>,
    routes: NameMap<RouteSlot>,
    client: Arc<str>,
    other: RouteSlot,
    ttfb: Family<TtfbLabels, Timing, NewHistogram>,
    duration: Family<TtfbLabels, Timing, NewHistogram>,
    grid_requests: Family<HandlerOutcome, Counter>,
    calls: Family<HandlerOutcome, Counter>,
    call_latency: Family<HandlerLabel, Timing, NewHistogram>,
    streams: Family<HandlerOutcome, Counter>,
    stream_messages: Family<HandlerDirection, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    http_body_bytes: Family<RouteBody, Counter>,
    links_connected: Family<PeerLabel, Counter>,
    links_lost: Family<PeerReason, Counter>,
    ping_rtt: Family<PeerLabel, Timing, NewHistogram>,
    dial_failures: Family<PeerLabel, Counter>,
    link_load: Family<PeerWhat, Gauge>,
    file_bytes: Family<PathLabel, Counter>,
    /// The sendfile crate's counters at the last scrape.
    file_seen: Mutex<gridmux_sendfile::Counters>,
    /// Per handler id, made on first use.
    handlers: Vec<OnceLock<HandlerHandles>>,
    /// Per peer name (and `client` for the rest), made at construction.
    peer_handles: NameMap<PeerHandles>,
    client_handles: PeerHandles,
}

impl GridMetrics {
    /// Metrics of a node of the cluster `peers`, serving `file_routes`.
    pub fn new(peers: &[impl AsRef<str>], file_routes: &[impl AsRef<str>]) -> Self {
        let mut registry = Registry::with_prefix("gridmux");
        let ttfb = Family::new_with_constructor(NewHistogram);
        registry.register(
            "ttfb_seconds",
            "Time to first byte of requests served: from the request complete to the first byte of its answer handed to the socket (the status line for answers without a body)",
            ttfb.clone(),
        );
        let duration = Family::new_with_constructor(NewHistogram);
        registry.register(
            "request_duration_seconds",
            "Duration of requests served, from the request complete to their last byte handed over (or their end)",
            duration.clone(),
        );
        let grid_requests = Family::default();
        registry.register(
            "grid_requests",
            "Grid requests served, by handler and outcome",
            grid_requests.clone(),
        );
        let grid_bytes = Family::default();
        registry.register(
            "grid_payload_bytes",
            "Payload bytes of grid requests and streams served, by peer and direction",
            grid_bytes.clone(),
        );
        let calls = Family::default();
        registry.register(
            "calls",
            "Grid requests made to peers, by handler and outcome",
            calls.clone(),
        );
        let call_latency = Family::new_with_constructor(NewHistogram);
        registry.register(
            "call_latency_seconds",
            "Latency of grid requests made, from queued to answered (or ended)",
            call_latency.clone(),
        );
        let streams = Family::default();
        registry.register(
            "streams",
            "Streams served, by handler and outcome",
            streams.clone(),
        );
        let stream_messages = Family::default();
        registry.register(
            "stream_messages",
            "Messages of streams served, by handler and direction",
            stream_messages.clone(),
        );
        let http_requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests served on the node's port, by route, method and status",
            http_requests.clone(),
        );
        let http_body_bytes = Family::default();
        registry.register(
            "http_body_bytes",
            "Body bytes of HTTP answers, by route and how they went out (memory, sendfile, copy)",
            http_body_bytes.clone(),
        );
        let links_connected = Family::default();
        registry.register(
            "links_connected",
            "Links that came up, by peer",
            links_connected.clone(),
        );
        let links_lost = Family::default();
        registry.register(
            "links_lost",
            "Links that went down after being up, by peer and reason",
            links_lost.clone(),
        );
        let batches: Family<PeerLabel, Sizes, NewHistogram> =
            Family::new_with_constructor(NewHistogram);
        registry.register(
            "link_batch_messages",
            "Grid messages per WebSocket message sent, by peer (more than one: merged)",
            batches.clone(),
        );
        let ping_rtt = Family::new_with_constructor(NewHistogram);
        registry.register(
            "ping_rtt_seconds",
            "Round trip of link pings, by peer",
            ping_rtt.clone(),
        );
        let dial_failures = Family::default();
        registry.register(
            "dial_failures",
            "Failed attempts to dial a peer (each is followed by a back-off), by peer",
            dial_failures.clone(),
        );
        let link_load = Family::default();
        registry.register(
            "link_load",
            "A link's load at its last ping (every ping interval), by peer and what: open_streams, open_requests, queued_bytes, inbound_bytes; 0 once the link is lost",
            link_load.clone(),
        );
        let file_bytes = Family::default();
        registry.register(
            "file_bytes",
            "File bytes moved by this process, by path: sendfile and copy (sent), splice and received_copy (received)",
            file_bytes.clone(),
        );
        let shared = |names: &[_]| -> NameMap<Arc<str>> {
            names
                .iter()
                .map(|n: &String| (n.as_str().into(), Arc::from(n.as_str())))
                .collect()
        };
        let peers: Vec<String> = peers.iter().map(|p| p.as_ref().to_owned()).collect();
        let routes: Vec<String> = file_routes
            .iter()
            .map(|r| format!("files/{}", r.as_ref()))
            .chain(["health", "upgrade", "metrics", "files", "other"].map(String::from))
            .collect();
        let handles_of = |peer: Arc<str>| PeerHandles {
            bytes_in: grid_bytes.get_or_create_owned(&PeerDirection {
                peer: peer.clone(),
                direction: "in",
            }),
            bytes_out: grid_bytes.get_or_create_owned(&PeerDirection {
                peer: peer.clone(),
                direction: "out",
            }),
            batch: batches.get_or_create_owned(&PeerLabel { peer }),
        };
        let peer_handles = peers
            .iter()
            .map(|p| (p.as_str().into(), handles_of(Arc::from(p.as_str()))))
            .collect();
        let client_handles = handles_of(Arc::from("client"));
        Self {
            handlers: (0..=u8::MAX).map(|_| OnceLock::new()).collect(),
            peer_handles,
            client_handles,
            registry,
            peers: shared(&peers),
            routes: routes
                .iter()
                .map(|r| (r.as_str().into(), RouteSlot::new(r)))
                .collect(),
            client: Arc::from("client"),
            other: RouteSlot::new("other"),
            ttfb,
            duration,
            grid_requests,
            calls,
            call_latency,
            streams,
            stream_messages,
            http_requests,
            http_body_bytes,
            links_connected,
            links_lost,
            ping_rtt,
            dial_failures,
            link_load,
            file_bytes,
            file_seen: Mutex::new(gridmux_sendfile::Counters::default()),
        }
    }

    /// The TTFB histogram of grid requests served by handler `id`.
    pub fn grid_ttfb(&self, id: u8) -> Snapshot {
        self.handler(id).ttfb.snapshot()
    }

    /// The TTFB histogram of streams served by handler `id`.
    pub fn stream_ttfb(&self, id: u8) -> Snapshot {
        self.handler(id).stream_ttfb.snapshot()
    }

    /// The TTFB histogram of HTTP answers on `route` (`health`,
    /// `upgrade`, `files/<name>`, …; an unknown one is `other`).
    pub fn http_ttfb(&self, route: &str) -> Snapshot {
        self.route(route).timings(&self.http_families())[0].snapshot()
    }

    /// The metrics as OpenMetrics text (ends with `# EOF`); serve it with
    /// [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        self.sync_file_counters();
        let mut text = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Brings the process-wide file counters up to date.
    fn sync_file_counters(&self) {
        let now = gridmux_sendfile::counters();
        let mut seen = self.file_seen.lock().unwrap_or_else(|e| e.into_inner());
        for (path, now, before) in [
            ("sendfile", now.sendfile_bytes, seen.sendfile_bytes),
            ("copy", now.copy_bytes, seen.copy_bytes),
            ("splice", now.spliced_bytes, seen.spliced_bytes),
            ("received_copy", now.received_by_copy, seen.received_by_copy),
        ] {
            let counter = self.file_bytes.get_or_create(&PathLabel { path });
            counter.inc_by(now.saturating_sub(before));
        }
        *seen = now;
    }

    /// The handles of handler `id`, made on its first record.
    fn handler(&self, id: u8) -> &HandlerHandles {
        self.handlers[usize::from(id)].get_or_init(|| {
            let labels = TtfbLabels {
                plane: "grid",
                handler: Some(id),
                route: None,
            };
            let outcomes = |family: &Family<HandlerOutcome, Counter>| {
                Outcome::ALL.map(|o| {
                    family.get_or_create_owned(&HandlerOutcome {
                        handler: id,
                        outcome: o.as_str(),
                    })
                })
            };
            let stream = TtfbLabels {
                plane: "stream",
                handler: Some(id),
                route: None,
            };
            let messages = |direction| {
                (self.stream_messages).get_or_create_owned(&HandlerDirection {
                    handler: id,
                    direction,
                })
            };
            HandlerHandles {
                stream_ttfb: self.ttfb.get_or_create_owned(&stream),
                stream_duration: self.duration.get_or_create_owned(&stream),
                streams: outcomes(&self.streams),
                stream_msgs_in: messages("in"),
                stream_msgs_out: messages("out"),
                ttfb: self.ttfb.get_or_create_owned(&labels),
                duration: self.duration.get_or_create_owned(&labels),
                served: outcomes(&self.grid_requests),
                calls: outcomes(&self.calls),
                call_latency: self
                    .call_latency
                    .get_or_create_owned(&HandlerLabel { handler: id }),
            }
        })
    }

    /// Sets a peer's load gauges (clients share `peer="client"`: the last
    /// sample of any of them).
    fn set_load(&self, peer: &Arc<str>, values: [usize; 4]) {
        let names = [
            "open_streams",
            "open_requests",
            "queued_bytes",
            "inbound_bytes",
        ];
        for (what, value) in names.into_iter().zip(values) {
            let labels = PeerWhat {
                peer: peer.clone(),
                what,
            };
            let value = i64::try_from(value).unwrap_or(i64::MAX);
            self.link_load.get_or_create(&labels).set(value);
        }
    }

    /// The handles of peer `name` (anyone else's: `client`'s).
    fn peer_handles_of(&self, name: &str) -> &PeerHandles {
        self.peer_handles.get(name).unwrap_or(&self.client_handles)
    }

    fn peer(&self, name: &str) -> Arc<str> {
        self.peers.get(name).unwrap_or(&self.client).clone()
    }

    /// Route `name`'s slot (an unknown one is `other`'s).
    fn route(&self, name: &str) -> &RouteSlot {
        self.routes.get(name).unwrap_or(&self.other)
    }

    fn http_families(&self) -> HttpFamilies<'_> {
        HttpFamilies {
            ttfb: &self.ttfb,
            duration: &self.duration,
            requests: &self.http_requests,
            bodies: &self.http_body_bytes,
        }
    }
}

impl Observer for GridMetrics {
    fn request_served(&self, r: &RequestServed<'_>) {
        // The id of a handler we do not serve is the peer's choice: all
        // such requests share `handler="0"` (an id no handler can have).
        let id = if r.outcome == Outcome::UnknownHandler {
            0
        } else {
            r.handler
        };
        let h = self.handler(id);
        if let Some(ttfb) = r.ttfb {
            h.ttfb.observe(ttfb);
        }
        h.duration.observe(r.duration);
        h.served[r.outcome.index()].inc();
        self.peer_handles_of(r.peer)
            .count_payload(r.bytes_in, r.bytes_out);
    }

    fn stream_served(&self, r: &StreamServed<'_>) {
        let h = self.handler(r.handler);
        if let Some(ttfb) = r.ttfb {
            h.stream_ttfb.observe(ttfb);
        }
        h.stream_duration.observe(r.duration);
        h.streams[r.outcome.index()].inc();
        h.stream_msgs_in.inc_by(r.msgs_in);
        h.stream_msgs_out.inc_by(r.msgs_out);
        self.peer_handles_of(r.peer)
            .count_payload(r.bytes_in, r.bytes_out);
    }

    fn call_made(&self, r: &CallMade<'_>) {
        let h = self.handler(r.handler);
        h.calls[r.outcome.index()].inc();
        h.call_latency.observe(r.latency);
    }

    fn link_event(&self, e: &LinkEvent<'_>) {
        match *e {
            LinkEvent::Connected { peer } => {
                let peer = self.peer(peer);
                self.links_connected
                    .get_or_create(&PeerLabel { peer })
                    .inc();
            }
            LinkEvent::Lost { peer, reason } => {
                let peer = self.peer(peer);
                self.set_load(&peer, [0; 4]);
                self.links_lost
                    .get_or_create(&PeerReason { peer, reason })
                    .inc();
            }
            LinkEvent::Load {
                peer,
                open_streams,
                open_requests,
                queued_bytes,
                inbound_bytes,
            } => {
                let peer = self.peer(peer);
                let values = [open_streams, open_requests, queued_bytes, inbound_bytes];
                self.set_load(&peer, values);
            }
            LinkEvent::DialFailed { peer } => {
                let peer = self.peer(peer);
                self.dial_failures.get_or_create(&PeerLabel { peer }).inc();
            }
            LinkEvent::PingRtt { peer, rtt } => {
                let peer = self.peer(peer);
                self.ping_rtt
                    .get_or_create(&PeerLabel { peer })
                    .observe(rtt);
            }
        }
    }

    fn batch_sent(&self, peer: &str, messages: usize) {
        self.peer_handles_of(peer).batch.observe(messages);
    }

    fn http_served(&self, r: &HttpServed<'_>) {
        let (route, families) = (self.route(r.route), self.http_families());
        let [ttfb, duration] = route.timings(&families);
        if let Some(t) = r.ttfb {
            ttfb.observe(t);
        }
        duration.observe(r.duration);
        route.count_request(&families, r.method, r.status);
        if r.bytes_out > 0 {
            route.count_body(&families, r.body, r.bytes_out);
        }
    }
}

#[cfg(test)]
mod tests;
