//! Records of the HTTP answers on the node's port for the observer
//! (`core::observe::HttpServed`), with bounded route labels.

use std::sync::Arc;
use std::time::Instant;

use gridmux_core::http::RequestHead;
use gridmux_core::observe::{method_label, BodyPath, HttpServed};

use crate::grid::Node;

/// A route label: a fixed one, or a registered file route's.
#[derive(Debug, Clone)]
pub(crate) enum RouteLabel {
    Fixed(&'static str),
    Shared(Arc<str>),
}

impl RouteLabel {
    fn as_str(&self) -> &str {
        match self {
            Self::Fixed(s) => s,
            Self::Shared(s) => s,
        }
    }
}

/// An answer on its way out, and what its record needs.
#[derive(Debug)]
pub(crate) struct HttpAnswer {
    pub(crate) started: Instant,
    pub(crate) route: RouteLabel,
    pub(crate) method: &'static str,
    pub(crate) status: u16,
    pub(crate) bytes_out: u64,
    pub(crate) body: BodyPath,
}

impl HttpAnswer {
    /// An answer to `head`, received at `started`.
    pub(crate) fn new(
        started: Instant,
        head: &RequestHead,
        route: RouteLabel,
        status: u16,
    ) -> Self {
        Self {
            started,
            route,
            method: method_label(&head.method),
            status,
            bytes_out: 0,
            body: BodyPath::None,
        }
    }

    /// With a body of `len` bytes sent by `body` (none for a `HEAD`).
    pub(crate) fn body(mut self, len: u64, body: BodyPath, head_only: bool) -> Self {
        if !head_only && len > 0 {
            self.bytes_out = len;
            self.body = body;
        }
        self
    }

    /// Records it: its first byte was handed over at `first` (if at all),
    /// its last by `done`.
    pub(crate) fn record(&self, node: &Node, first: Option<Instant>, done: Instant) {
        let observer = node.observer();
        if !observer.enabled() {
            return;
        }
        observer.http_served(&HttpServed {
            route: self.route.as_str(),
            method: self.method,
            status: self.status,
            ttfb: first.map(|t| t.saturating_duration_since(self.started)),
            duration: done.saturating_duration_since(self.started),
            bytes_out: self.bytes_out,
            body: self.body,
        });
    }
}
