//! An HTTP route's metrics, each resolved on its first record: the hot
//! path takes no family lock for the answers a node gives.

use std::sync::{Arc, OnceLock};

use gridmux_core::observe::BodyPath;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::labels::{HttpLabels, RouteBody, TtfbLabels};
use crate::timing::{NewHistogram, Timing};

/// The statuses a node answers with; any other goes through the family.
const STATUSES: [u16; 18] = [
    101, 200, 204, 206, 304, 400, 401, 403, 404, 405, 408, 413, 416, 426, 429, 431, 500, 503,
];

/// The method labels, in the order of their counters.
const METHODS: [&str; 3] = ["GET", "HEAD", "other"];

/// The body paths with bytes, in the order of their counters.
const BODIES: [BodyPath; 3] = [BodyPath::Memory, BodyPath::Sendfile, BodyPath::Copy];

/// The families an HTTP record lands in.
#[derive(Debug)]
pub(crate) struct HttpFamilies<'a> {
    pub(crate) ttfb: &'a Family<TtfbLabels, Timing, NewHistogram>,
    pub(crate) duration: &'a Family<TtfbLabels, Timing, NewHistogram>,
    pub(crate) requests: &'a Family<HttpLabels, Counter>,
    pub(crate) bodies: &'a Family<RouteBody, Counter>,
}

/// One route's label and its metrics, made on first use.
#[derive(Debug)]
pub(crate) struct RouteSlot {
    name: Arc<str>,
    timings: OnceLock<[Timing; 2]>,
    requests: [OnceLock<Counter>; METHODS.len() * STATUSES.len()],
    bodies: [OnceLock<Counter>; BODIES.len()],
}

impl RouteSlot {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: Arc::from(name),
            timings: OnceLock::new(),
            requests: std::array::from_fn(|_| OnceLock::new()),
            bodies: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The route's TTFB and duration histograms.
    pub(crate) fn timings(&self, f: &HttpFamilies<'_>) -> &[Timing; 2] {
        self.timings.get_or_init(|| {
            let labels = TtfbLabels {
                plane: "http",
                handler: None,
                route: Some(self.name.clone()),
            };
            [
                f.ttfb.get_or_create_owned(&labels),
                f.duration.get_or_create_owned(&labels),
            ]
        })
    }

    /// Counts an answer with `status` to a request with `method` (a label
    /// from `core::observe::method_label`).
    pub(crate) fn count_request(&self, f: &HttpFamilies<'_>, method: &'static str, status: u16) {
        let labels = || HttpLabels {
            route: self.name.clone(),
            method,
            status,
        };
        let m = METHODS.iter().position(|m| *m == method);
        let s = STATUSES.iter().position(|s| *s == status);
        match (m, s) {
            (Some(m), Some(s)) => self.requests[m * STATUSES.len() + s]
                .get_or_init(|| f.requests.get_or_create_owned(&labels()))
                .inc(),
            _ => f.requests.get_or_create(&labels()).inc(),
        };
    }

    /// Counts `bytes` of body sent by `body`.
    pub(crate) fn count_body(&self, f: &HttpFamilies<'_>, body: BodyPath, bytes: u64) {
        let labels = || RouteBody {
            route: self.name.clone(),
            body: body.as_str(),
        };
        match BODIES.iter().position(|b| *b == body) {
            Some(i) => self.bodies[i]
                .get_or_init(|| f.bodies.get_or_create_owned(&labels()))
                .inc_by(bytes),
            None => f.bodies.get_or_create(&labels()).inc_by(bytes),
        };
    }
}
